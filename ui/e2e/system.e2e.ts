/**
 * The System page's live metrics, against the real daemon: the tiles follow
 * executions run through the API while the page is open, and an error from
 * the metrics endpoint (a daemon older than the UI, a token without the
 * scope) is shown the way every page shows one.
 */
import type { Browser, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  expectNoPageErrors,
  launchBrowser,
  openPage,
  screenshot,
  screenshotOnFailure,
  signIn,
  startDaemon,
  type Daemon,
} from "./harness";

const poll = { timeout: 20_000 };

describe("live metrics on the system page", () => {
  let daemon: Daemon;
  let browser: Browser;
  let page: Page;
  let errors: string[];

  /** A POST to the API with the bootstrap token; fails the test on an unexpected status. */
  async function post<T>(path: string, body: unknown, status = 201): Promise<T> {
    const response = await daemon.api(path, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    expect(response.status, `${path}: ${await response.clone().text()}`).toBe(status);
    return (await response.json()) as T;
  }

  /** The big number of the tile with `testId`, as shown. */
  function tileValue(testId: string) {
    return page.getByTestId(testId).getByTestId("metric-value").textContent();
  }

  beforeAll(async () => {
    daemon = await startDaemon();
    browser = await launchBrowser();
    ({ page, errors } = await openPage(browser, daemon.url));
    await signIn(page, daemon);
  });

  afterEach((context) => screenshotOnFailure(page, context));

  afterAll(async () => {
    await browser?.close();
    await daemon?.stop();
  });

  it("follows executions run while the page is open: their count, rate and median duration", async () => {
    await page.getByRole("link", { name: "System", exact: true }).click();
    const metrics = page.getByTestId("live-metrics");
    // The first answer is in before anything runs, so the rate has a sample to grow from.
    await expect.poll(() => tileValue("metric-live-sessions"), poll).toBe("0");
    expect(await metrics.getByTestId("executions-total").textContent()).toBe("0");
    expect(await tileValue("metric-p50")).toBe("—");

    const template = await post<{ id: string }>("/templates", { name: "metrics" });
    const session = await post<{ id: string }>("/sessions", {
      template_id: template.id,
      workspace_id: "ws",
      base_commit_oid: "HEAD",
      worktree_path: daemon.worktree,
    });
    await post("/executions/repl", { session_id: session.id, input: "var n = 20; n + 1" });
    await post("/executions/repl", { session_id: session.id, input: 'console.log("hi"); n * 2' });

    await expect.poll(async () => Number(await metrics.getByTestId("executions-total").textContent()), poll).toBe(2);
    await expect
      .poll(async () => Number(await metrics.getByTestId("execution-rate-peak").textContent()), poll)
      .toBeGreaterThan(0);
    await expect.poll(() => tileValue("metric-p50"), poll).toMatch(/^\d+(\.\d+)? (ms|s)$/);
    await expect.poll(() => tileValue("metric-p99"), poll).toMatch(/^\d+(\.\d+)? (ms|s)$/);
    await expect.poll(() => tileValue("metric-live-sessions"), poll).toBe("1");
    expect(await page.getByTestId("metric-p50").getByRole("img").getAttribute("aria-label")).toMatch(
      /^Median duration: \d/,
    );
    const sessions = page.getByTestId("metric-sessions").getByRole("img", { name: /^Sessions by status/ });
    expect(await sessions.getAttribute("aria-label")).toContain("1 ready");
    // A few samples in, so the screenshot shows lines rather than dots.
    const line = page.getByTestId("metric-live-sessions").locator("polyline").last();
    await expect.poll(async () => (await line.getAttribute("points"))?.split(" ").length ?? 0, poll).toBeGreaterThan(4);
    await screenshot(page, "system-metrics");
    expectNoPageErrors(errors);
  });

  it.each([
    {
      what: "a daemon older than the UI (404)",
      status: 404,
      error: { code: "NOT_FOUND", message: "no such route; see /api/v1/openapi.json", details: {} },
      shows: "does not report metrics",
    },
    {
      what: "a token without the read scope (403)",
      status: 403,
      error: { code: "FORBIDDEN", message: "this token lacks the read scope", details: { required_scope: "read" } },
      shows: "needs a token with the read scope",
    },
  ])("shows the error of $what in place of the tiles", async ({ status, error, shows }) => {
    await page.route("**/api/v1/metrics/summary", (route) =>
      route.fulfill({ status, contentType: "application/json", body: JSON.stringify({ error }) }),
    );
    try {
      await page.goto("/system");
      const panel = page.getByTestId("live-metrics").getByTestId("api-error");
      await panel.getByTestId("error-code").getByText(error.code).waitFor();
      await panel.getByText(`HTTP ${status}`).waitFor();
      await expect.poll(() => panel.textContent(), poll).toContain(shows);
      await panel.getByRole("button", { name: "Retry" }).waitFor();
      expect(await page.getByTestId("metric-live-sessions").count()).toBe(0);
      // The rest of the page still works.
      await page.getByTestId("health-stat").getByText("ok").waitFor();
      expectNoPageErrors(errors);
    } finally {
      await page.unroute("**/api/v1/metrics/summary");
    }
  });
});

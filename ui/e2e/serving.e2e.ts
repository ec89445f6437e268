/**
 * How the daemon serves the UI: deep links reload, the API and Swagger UI
 * are never shadowed, and failures show a code and message, never a blank page.
 */
import type { Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import { expectNoPageErrors, screenshot, signedInPage, type Daemon } from "./harness";

describe("the daemon serving the UI", () => {
  let daemon: Daemon;
  let page: Page;
  let errors: string[];

  signedInPage((signedIn) => ({ daemon, page, errors } = signedIn));

  it("serves the app for a deep link and shows a missing session's error code", async () => {
    const response = await page.goto("/sessions/00000000-0000-4000-8000-000000000000");
    expect(response?.status()).toBe(200);
    expect(response?.headers()["content-type"]).toContain("text/html");
    const error = page.getByTestId("api-error");
    await error.getByTestId("error-code").getByText("SESSION_NOT_FOUND").waitFor();
    expect((await error.getByTestId("error-message").textContent())?.length).toBeGreaterThan(0);
    expectNoPageErrors(errors);
  });

  it("answers a malformed id with the API's validation error", async () => {
    await page.goto("/templates/not-a-uuid");
    await page.getByTestId("api-error").getByTestId("error-code").getByText("VALIDATION_ERROR").waitFor();
    expectNoPageErrors(errors);
  });

  it("says so for an unknown page", async () => {
    await page.goto("/no/such/page");
    await page.getByText("No such page").waitFor();
    expectNoPageErrors(errors);
  });

  it("never shadows the API or Swagger UI", async () => {
    const unknownApi = await fetch(`${daemon.url}/api/v2/templates`);
    expect(unknownApi.status).toBe(404);
    expect(((await unknownApi.json()) as { error: { code: string } }).error.code).toBe("NOT_FOUND");
    const health = await fetch(`${daemon.url}/api/v1/health`); // the one route open without a token
    expect(await health.json()).toEqual({ status: "ok" });
    const docs = await fetch(`${daemon.url}/docs/`);
    expect(docs.status).toBe(200);
    expect((await docs.text()).toLowerCase()).toContain("swagger");
    const missingAsset = await fetch(`${daemon.url}/assets/missing-0000.js`);
    expect(missingAsset.status).toBe(404);
    const wrongMethod = await fetch(`${daemon.url}/templates`, { method: "POST" });
    expect(wrongMethod.status).toBe(405);
  });

  it("serves hashed assets with long caching and the index without", async () => {
    const index = await fetch(`${daemon.url}/`);
    expect(index.headers.get("cache-control")).toBe("no-cache");
    const html = await index.text();
    const script = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    expect(script, html).toBeTruthy();
    const asset = await fetch(`${daemon.url}${script}`);
    expect(asset.status).toBe(200);
    expect(asset.headers.get("content-type")).toContain("javascript");
    expect(asset.headers.get("cache-control")).toContain("immutable");
  });

  it("shows a limit error with its code, and the events kept up to the limit", async () => {
    const post = async (path: string, body: unknown) => {
      const response = await daemon.api(path, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      expect(response.status, `${path}: ${await response.clone().text()}`).toBe(201);
      return (await response.json()) as { id: string };
    };
    const template = await post("/templates", {
      name: "tight",
      settings: { limits: { wall_ms: 1000, cpu_ms: 1000 } },
    });
    const session = await post("/sessions", {
      template_id: template.id,
      workspace_id: "ws",
      base_commit_oid: "HEAD",
      worktree_path: daemon.worktree,
    });
    await page.goto(`/sessions/${session.id}`);
    await page.getByTestId("code-editor").click();
    await page.keyboard.insertText('console.log("before the loop");\nwhile (true) {}');
    await page.keyboard.press("Control+Enter");
    const entry = page.getByTestId("transcript-entry").last();
    // The line streams in before the limit stops the loop.
    await entry.locator('[data-event-type="console"]').getByText("before the loop").waitFor();
    await expect.poll(() => entry.getAttribute("data-state"), { timeout: 20_000 }).toBe("done");
    await entry.getByTestId("status-badge").getByText("timeout").waitFor();
    await entry.getByTestId("execution-error").getByText("EXECUTION_TIMEOUT").waitFor();
    await expect.poll(() => entry.getByTestId("execution-error").textContent()).toContain("rolled back");
    await entry.getByRole("link", { name: /event log/ }).waitFor();
    await screenshot(page, "session-limit-error");
    expectNoPageErrors(errors);
  });

  it("shows a network error, not a blank page, when the daemon goes away", async () => {
    await page.goto("/system");
    await page.getByTestId("health-stat").getByText("ok").waitFor();
    await daemon.stop();
    await page.getByRole("link", { name: "Templates", exact: true }).click();
    const error = page.getByTestId("api-error");
    await error.getByTestId("error-code").getByText("NETWORK_ERROR").waitFor({ timeout: 20_000 });
    await page.getByTestId("health-indicator").getByText("Daemon unreachable").waitFor({ timeout: 20_000 });
    expectNoPageErrors(errors);
  });
});

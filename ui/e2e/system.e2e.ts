/**
 * The System page against the real daemon. Its live metrics: the tiles follow
 * executions run through the API while the page is open, and an error from
 * the metrics endpoint (a daemon older than the UI, a token without the
 * scope) is shown the way every page shows one. Its nodes: the one daemon is
 * the one live node, marked as this node, and its session count follows the
 * sessions started through the API.
 */
import type { Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import { expectNoPageErrors, screenshot, signedInPage, type Daemon, postTo } from "./harness";

const poll = { timeout: 20_000 };

describe("live metrics on the system page", () => {
  let daemon: Daemon;
  let page: Page;
  let errors: string[];

  /** A POST to the API with the bootstrap token; fails the test on an unexpected status. */
  function post<T>(path: string, body: unknown, status = 201): Promise<T> {
    return postTo<T>(daemon, path, body, status);
  }

  /** The big number of the tile with `testId`, as shown. */
  function tileValue(testId: string) {
    return page.getByTestId(testId).getByTestId("metric-value").textContent();
  }

  signedInPage((signedIn) => ({ daemon, page, errors } = signedIn));

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

describe("nodes on the system page", () => {
  let daemon: Daemon;
  let page: Page;
  let errors: string[];

  /** What `GET /nodes` says, with the bootstrap token. */
  async function apiNodes(): Promise<{ id: string; url: string; this_node: boolean; max_sessions: number }[]> {
    const response = await daemon.api("/nodes");
    expect(response.status, await response.clone().text()).toBe(200);
    return (await response.json()) as { id: string; url: string; this_node: boolean; max_sessions: number }[];
  }

  signedInPage((signedIn) => ({ daemon, page, errors } = signedIn));

  it("shows the daemon as the one live node, marked as this node, and follows its sessions", async () => {
    const [node, ...others] = await apiNodes();
    expect(others).toEqual([]);
    expect(node?.this_node).toBe(true);
    if (!node) throw new Error("no node");

    await page.getByRole("link", { name: "System", exact: true }).click();
    const card = page.getByTestId("nodes-card");
    const rows = card.getByTestId("node-row");
    await rows.first().waitFor();
    expect(await rows.count()).toBe(1);
    const row = rows.first();
    expect(await row.getAttribute("data-node-id")).toBe(node.id);
    expect(await row.getByTestId("node-id").textContent()).toBe(node.id.slice(0, 8));
    expect(await row.getByTestId("node-id").getAttribute("title")).toBe(node.id);
    expect(await row.getByTestId("node-status").textContent()).toBe("live");
    expect(await row.getByTestId("this-node").textContent()).toBe("this node");
    expect(await row.getByTestId("node-url").textContent()).toBe(daemon.url);
    expect(await row.getByTestId("node-version").textContent()).toMatch(/^\d+\.\d+\.\d+/);
    expect(await row.getByTestId("node-sessions").textContent()).toBe(`0 / ${node.max_sessions}`);
    expect(await card.getByTestId("nodes-summary").textContent()).toBe(
      `1 live node · 0 / ${node.max_sessions} sessions`,
    );
    expect(await row.getByTestId("node-heartbeat").textContent()).toMatch(/^\d+s ago$/);

    // The heartbeat is read again while the page is open: the node renews its lease every few seconds.
    const heartbeat = row.getByTestId("node-heartbeat");
    const firstRenewal = await heartbeat.getAttribute("title");
    await expect.poll(() => heartbeat.getAttribute("title"), poll).not.toBe(firstRenewal);
    expect(await heartbeat.textContent()).toMatch(/^\d+s ago$/);

    const template = await postTo<{ id: string }>(daemon, "/templates", { name: "nodes" });
    const session = await postTo<{ id: string; node_id: string | null }>(daemon, "/sessions", {
      template_id: template.id,
      workspace_id: "ws",
      base_commit_oid: "HEAD",
      worktree_path: daemon.worktree,
    });
    expect(session.node_id).toBe(node.id);
    await expect.poll(() => row.getByTestId("node-sessions").textContent(), poll).toBe(`1 / ${node.max_sessions}`);
    const meter = row.getByRole("meter");
    expect(await meter.getAttribute("aria-valuenow")).toBe("1");
    await expect
      .poll(() => card.getByTestId("nodes-summary").textContent(), poll)
      .toBe(`1 live node · 1 / ${node.max_sessions} sessions`);
    expect(await rows.count()).toBe(1);
    await screenshot(page, "system-nodes");

    // The session's page names the node that runs it.
    await page.goto(`/sessions/${session.id}`);
    const onSession = page.getByTestId("session-node");
    await onSession.waitFor();
    expect(await onSession.textContent()).toBe(`node ${node.id.slice(0, 8)}`);
    expect(await onSession.getByRole("link").getAttribute("title")).toBe(node.id);

    await postTo(daemon, `/sessions/${session.id}/close`, {}, 200);
    await page.goto("/system");
    await expect
      .poll(() => rows.first().getByTestId("node-sessions").textContent(), poll)
      .toBe(`0 / ${node.max_sessions}`);
    expectNoPageErrors(errors);
  });

  it("lists the other nodes: this one first, then the live ones, then the lost ones, full and overdue ones marked", async () => {
    const [self] = await apiNodes();
    if (!self) throw new Error("no node");
    const now = Date.now();
    const iso = (secondsAgo: number) => new Date(now - secondsAgo * 1000).toISOString();
    const other = (id: string, url: string, fields: Record<string, unknown>) => ({
      id,
      url,
      version: "0.1.0",
      status: "live",
      this_node: false,
      started_at: iso(600),
      heartbeat_at: iso(1),
      lease_expires_at: iso(-9),
      lost_at: null,
      max_sessions: 64,
      active_sessions: 0,
      ...fields,
    });
    const lost = other("11111111-1111-4111-8111-111111111111", "http://10.0.0.3:3210", {
      status: "lost",
      started_at: iso(3600),
      heartbeat_at: iso(300),
      lease_expires_at: iso(290),
      lost_at: iso(288),
    });
    const full = other("22222222-2222-4222-8222-222222222222", "http://10.0.0.2:3210", {
      started_at: iso(60),
      active_sessions: 64,
    });
    const overdue = other("33333333-3333-4333-8333-333333333333", "http://10.0.0.4:3210", {
      heartbeat_at: iso(15),
      lease_expires_at: iso(5),
      active_sessions: 3,
    });
    // In the API's order (live first, newest first): the page puts the node that answered first.
    const cluster = [full, { ...self, active_sessions: 2 }, overdue, lost];
    await page.route("**/api/v1/nodes", (route) =>
      route.fulfill({ status: 200, contentType: "application/json", body: JSON.stringify(cluster) }),
    );
    try {
      await page.goto("/system");
      const card = page.getByTestId("nodes-card");
      const rows = card.getByTestId("node-row");
      await expect.poll(() => rows.count(), poll).toBe(4);
      const ids = await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-node-id")));
      expect(ids).toEqual([self.id, full.id, overdue.id, lost.id]);
      expect(await card.getByTestId("this-node").count()).toBe(1);
      expect(await rows.nth(0).getByTestId("this-node").count()).toBe(1);
      expect(await rows.getByTestId("node-status").allTextContents()).toEqual(["live", "live", "live", "lost"]);
      expect(await rows.getByTestId("node-sessions").allTextContents()).toEqual([
        `2 / ${self.max_sessions}`,
        "64 / 64",
        "3 / 64",
        "0 / 64",
      ]);
      expect(await rows.nth(1).getByRole("meter").getAttribute("aria-valuetext")).toBe("64 / 64 sessions (full)");
      expect(await card.getByTestId("lease-overdue").count()).toBe(1);
      expect(await rows.nth(2).getByTestId("lease-overdue").count()).toBe(1);
      expect(await rows.nth(3).getByTestId("node-heartbeat").textContent()).toBe("5m ago");
      expect(await rows.nth(2).getByTestId("node-heartbeat").textContent()).toMatch(/^1[5-9]s ago$/);
      expect(await card.getByTestId("nodes-summary").textContent()).toBe(
        `3 live nodes, 1 lost · ${2 + 64 + 3} / ${self.max_sessions + 64 + 64} sessions`,
      );
      await screenshot(page, "system-nodes-cluster");
      expectNoPageErrors(errors);
    } finally {
      await page.unroute("**/api/v1/nodes");
    }
  });

  it.each([
    {
      what: "a daemon older than the UI (404)",
      status: 404,
      body: { error: { code: "NOT_FOUND", message: "no such route; see /api/v1/openapi.json", details: {} } },
      shows: "does not list its nodes",
    },
    {
      what: "a token without the read scope (403)",
      status: 403,
      body: {
        error: { code: "FORBIDDEN", message: "this token lacks the read scope", details: { required_scope: "read" } },
      },
      shows: "needs a token with the read scope",
    },
  ])("shows the error of $what in place of the table", async ({ status, body, shows }) => {
    await page.route("**/api/v1/nodes", (route) =>
      route.fulfill({ status, contentType: "application/json", body: JSON.stringify(body) }),
    );
    try {
      await page.goto("/system");
      const panel = page.getByTestId("nodes-card").getByTestId("api-error");
      await panel.getByTestId("error-code").getByText(body.error.code).waitFor();
      await panel.getByText(`HTTP ${status}`).waitFor();
      await expect.poll(() => panel.textContent(), poll).toContain(shows);
      await panel.getByRole("button", { name: "Retry" }).waitFor();
      expect(await page.getByTestId("node-row").count()).toBe(0);
      // The rest of the page still works.
      await page.getByTestId("health-stat").getByText("ok").waitFor();
      await page.getByTestId("metric-live-sessions").waitFor();
      expectNoPageErrors(errors);
    } finally {
      await page.unroute("**/api/v1/nodes");
    }
  });

  it("says so when the daemon lists no node", async () => {
    await page.route("**/api/v1/nodes", (route) =>
      route.fulfill({ status: 200, contentType: "application/json", body: "[]" }),
    );
    try {
      await page.goto("/system");
      const card = page.getByTestId("nodes-card");
      await card.getByTestId("empty-state").getByText("No nodes").waitFor();
      expect(await card.getByTestId("node-row").count()).toBe(0);
      expect(await card.getByTestId("nodes-summary").count()).toBe(0);
      expectNoPageErrors(errors);
    } finally {
      await page.unroute("**/api/v1/nodes");
    }
  });
});

/**
 * Live executions in a browser, against the real daemon (SPEC §10): the
 * console opens on the session's earlier executions, streams output while
 * code runs, cancels it (rolling the session back), attaches to a run
 * started elsewhere, and forks the session. One session serves every test.
 */
import type { Page } from "playwright-core";
import { beforeAll, describe, expect, it } from "vitest";
import { expectNoPageErrors, screenshot, signedInPage, type Daemon, postTo } from "./harness";

const poll = { timeout: 15_000 };

describe("live executions in a browser", () => {
  let daemon: Daemon;
  let page: Page;
  let errors: string[];
  let templateId = "";
  let sessionId = "";

  /** A POST to the API with the bootstrap token; fails the test on an unexpected status. */
  function post<T>(path: string, body: unknown, status = 201): Promise<T> {
    return postTo<T>(daemon, path, body, status);
  }

  /** Types `source` into the console's editor and runs it; returns its transcript entry. */
  async function runInConsole(source: string) {
    await page.getByTestId("code-editor").click();
    await page.keyboard.insertText(source);
    await page.keyboard.press("Control+Enter");
    return page.getByTestId("transcript-entry").last();
  }

  async function ranToTheEnd(entry: ReturnType<Page["getByTestId"]>) {
    await expect.poll(() => entry.getAttribute("data-state"), poll).toBe("done");
  }

  signedInPage((signedIn) => ({ daemon, page, errors } = signedIn));

  beforeAll(async () => {
    templateId = (await post<{ id: string }>("/templates", { name: "live" })).id;
    sessionId = (
      await post<{ id: string }>("/sessions", {
        template_id: templateId,
        workspace_id: "ws",
        base_commit_oid: "HEAD",
        worktree_path: daemon.worktree,
      })
    ).id;
    // Run before the page is ever opened: the console must find it there.
    await post("/executions/repl", {
      session_id: sessionId,
      input: 'var before = "from before";\nconsole.log("earlier line");\n40 + 1',
    });
  });

  it("opens the console on the session's earlier executions", async () => {
    await page.goto(`/sessions/${sessionId}`);
    const earlier = page.getByTestId("transcript-entry").filter({ hasText: "earlier line" });
    await ranToTheEnd(earlier);
    await earlier.locator('[data-event-type="console"]').getByText("earlier line").waitFor();
    await expect.poll(() => earlier.getByTestId("value-preview").textContent(), poll).toBe("41");
    await page.getByTestId("history-item").filter({ hasText: "var before" }).waitFor();
    expectNoPageErrors(errors);
  });

  it("shows output as it happens, with Cancel offered until the value comes", async () => {
    const entry = await runInConsole("console.log('a'); const t = Date.now(); while (Date.now() - t < 2000) {}; 'b'");
    await entry.locator('[data-event-type="console"]').getByText("a", { exact: true }).waitFor();
    // The line is there while the execution still runs.
    expect(await entry.getAttribute("data-state")).toBe("running");
    expect(await entry.getByRole("button", { name: "Cancel" }).isVisible()).toBe(true);
    expect(await page.getByRole("button", { name: "Running…" }).isDisabled()).toBe(true);
    await screenshot(page, "session-live-output");

    await ranToTheEnd(entry);
    await expect.poll(() => entry.getByTestId("value-preview").textContent(), poll).toContain("b");
    expect(await entry.getByRole("button", { name: "Cancel" }).count()).toBe(0);
    // The history follows on its own: no reload, no refresh button.
    const item = page.getByTestId("history-item").filter({ hasText: "console.log('a')" });
    await expect.poll(() => item.getAttribute("data-status"), poll).toBe("ok");
    expectNoPageErrors(errors);
  });

  it("cancels an endless loop and rolls the session back to its state before it", async () => {
    await ranToTheEnd(await runInConsole("var x = 41"));
    const loop = await runInConsole('x = 99;\nconsole.log("looping");\nwhile (true) {}');
    await loop.locator('[data-event-type="console"]').getByText("looping").waitFor();
    await loop.getByRole("button", { name: "Cancel" }).click();
    await ranToTheEnd(loop);
    await loop.getByTestId("status-badge").getByText("cancelled").waitFor();
    await expect
      .poll(() => loop.getByTestId("execution-outcome").textContent(), poll)
      .toBe("cancelled — session rolled back to its state before this execution");
    await screenshot(page, "session-cancelled");

    const after = await runInConsole("x");
    await ranToTheEnd(after);
    await expect.poll(() => after.getByTestId("value-preview").textContent(), poll).toBe("41");
    const item = page.getByTestId("history-item").filter({ hasText: "x = 99" });
    await expect.poll(() => item.getAttribute("data-status"), poll).toBe("cancelled");
    expectNoPageErrors(errors);
  });

  it("attaches to a run started elsewhere when the page opens", async () => {
    await post(
      "/executions/repl",
      { session_id: sessionId, input: 'console.log("from elsewhere");\nwhile (true) {}', wait: false },
      202,
    );
    await page.reload();
    const entry = page.getByTestId("transcript-entry").filter({ hasText: "from elsewhere" });
    await entry.locator('[data-event-type="console"]').getByText("from elsewhere").waitFor();
    expect(await entry.getAttribute("data-state")).toBe("running");
    expect(await page.getByRole("button", { name: "Running…" }).isDisabled()).toBe(true);
    // The earlier runs are there too, oldest first, the cancelled one saying so.
    const entries = page.getByTestId("transcript-entry");
    await expect.poll(() => entries.first().textContent(), poll).toContain("earlier line");
    await page.getByTestId("execution-outcome").first().waitFor();

    await entry.getByRole("button", { name: "Cancel" }).click();
    await ranToTheEnd(entry);
    await entry.getByTestId("status-badge").getByText("cancelled").waitFor();
    await page.getByRole("button", { name: "Run", exact: true }).waitFor();
    expectNoPageErrors(errors);
  });

  it("awaits at the top level, streams a timer's output, and keeps the awaited declaration", async () => {
    const entry = await runInConsole(
      "setTimeout(() => console.log('tick'), 50);\nconst awaited = await new Promise(r => setTimeout(() => r(6 * 7), 400));\nawaited",
    );
    await entry.locator('[data-event-type="console"]').getByText("tick", { exact: true }).waitFor();
    await ranToTheEnd(entry);
    await expect.poll(() => entry.getByTestId("value-preview").textContent(), poll).toBe("42");
    const next = await runInConsole("awaited + crypto.randomUUID().length");
    await ranToTheEnd(next);
    await expect.poll(() => next.getByTestId("value-preview").textContent(), poll).toBe("78");
    expectNoPageErrors(errors);
  });

  it("cancels a running execution from its own page", async () => {
    const running = await post<{ id: string }>(
      "/executions/repl",
      { session_id: sessionId, input: 'console.log("on its page");\nwhile (true) {}', wait: false },
      202,
    );
    await page.goto(`/executions/${running.id}`);
    const header = page.getByTestId("execution-page").locator(".page-header");
    await header.getByTestId("status-badge").getByText("running").waitFor();
    await page.getByTestId("event-log").getByText("on its page", { exact: true }).waitFor();
    await header.getByRole("button", { name: "Cancel" }).click();
    await header.getByTestId("status-badge").getByText("cancelled").waitFor();
    await page.getByTestId("execution-error").getByText("CANCELLED", { exact: true }).waitFor();
    await page.goto(`/sessions/${sessionId}`);
    expectNoPageErrors(errors);
  });

  it("forks the session into one that says where it came from and has its heap", async () => {
    const source = `/sessions/${sessionId}`;
    await page.getByRole("button", { name: "Fork session" }).click();
    await page.waitForURL((url) => url.pathname !== source && /^\/sessions\/[0-9a-f-]{36}$/.test(url.pathname));
    const forkId = new URL(page.url()).pathname.split("/").pop() ?? "";
    const forkedFrom = page.getByTestId("session-detail-page").getByTestId("forked-from");
    await expect.poll(() => forkedFrom.textContent(), poll).toBe(`forked from ${sessionId.slice(0, 8)}`);
    expect(await forkedFrom.getByRole("link").getAttribute("href")).toBe(source);

    const heap = await runInConsole("[x, before]");
    await ranToTheEnd(heap);
    const value = heap.locator('[data-event-type="value"]');
    await value.getByText('"from before"').waitFor();
    await value.getByText("41", { exact: true }).waitFor();
    await screenshot(page, "session-fork");

    await page.getByRole("link", { name: "Sessions", exact: true }).first().click();
    const row = page.getByTestId("session-row").filter({ hasText: forkId.slice(0, 8) });
    await expect
      .poll(() => row.getByTestId("forked-from").textContent(), poll)
      .toBe(`forked from ${sessionId.slice(0, 8)}`);
    expectNoPageErrors(errors);
  });

  it("switches checkpoints off in a template's settings", async () => {
    await page.goto(`/templates/${templateId}`);
    const settings = page.getByTestId("settings-card");
    const checkpoints = settings.getByLabel("Checkpoints");
    await expect.poll(() => checkpoints.isChecked(), poll).toBe(true);
    await settings.getByText("rolls it back instead of losing it").waitFor();
    await checkpoints.click();
    await settings.getByRole("button", { name: "Save settings" }).click();
    await settings.getByText("Saved ✓").waitFor();
    const saved = (await (await daemon.api(`/templates/${templateId}/settings`)).json()) as {
      runtime: { checkpoints: boolean };
    };
    expect(saved.runtime.checkpoints).toBe(false);
    expectNoPageErrors(errors);
  });
});

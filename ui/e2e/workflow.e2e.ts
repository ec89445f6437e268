/**
 * The whole workflow a person follows in the browser, against the real
 * daemon: template → startup file, library, module, settings → session →
 * REPL value and console lines → an exception → an API error → run a file →
 * event log → close. Each main page is saved as a screenshot.
 */
import type { Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import { expectNoPageErrors, screenshot, signedInPage, type Daemon } from "./harness";

const poll = { timeout: 15_000 };

describe("the workflow in a browser", () => {
  let daemon: Daemon;
  let page: Page;
  let errors: string[];
  let sessionUrl = "";

  signedInPage((signedIn) => ({ daemon, page, errors } = signedIn), {
    "setup.js": 'var greeting = "hello from setup";\nconsole.log("setup ran");\n',
    "scripts/hello.js": [
      'console.log("hello " + __ARGS__.who);',
      'console.info("mode=" + __ENV__.MODE);',
      "({ ok: true, who: __ARGS__.who, chunks: _.chunk([1, 2, 3, 4], 2) })",
      "",
    ].join("\n"),
  });

  it("starts on an empty sessions page that points to templates", async () => {
    await page.goto("/");
    await page.waitForURL(/\/sessions$/);
    await page.getByTestId("empty-state").getByText("No sessions yet").waitFor();
    await page.getByTestId("health-indicator").getByText("Daemon healthy").waitFor();
    expectNoPageErrors(errors);
  });

  it("creates a template and configures a startup file, a library, a module and settings", async () => {
    await page.getByRole("link", { name: "Templates", exact: true }).click();
    await page.getByTestId("empty-state").getByText("No templates yet").waitFor();
    await screenshot(page, "templates-empty");

    await page.getByRole("button", { name: "New template" }).first().click();
    const dialog = page.getByTestId("create-template-dialog");
    await dialog.getByLabel("Name").fill("e2e-template");
    await dialog.getByRole("button", { name: "Create template" }).click();
    await page.waitForURL(/\/templates\/[0-9a-f-]{36}$/);
    await page.getByRole("heading", { name: "e2e-template" }).waitFor();

    const startup = page.getByTestId("startup-files-card");
    await startup.getByLabel("Startup file path").fill("setup.js");
    await startup.getByRole("button", { name: "Add startup file" }).click();
    await startup.getByTestId("startup-file-row").filter({ hasText: "setup.js" }).waitFor();

    const libraries = page.getByTestId("libraries-card");
    const lodash = libraries.getByTestId("catalog-library").filter({ hasText: "lodash-4.17.21" });
    await lodash.getByText("cached", { exact: true }).waitFor();
    const moment = libraries.getByTestId("catalog-library").filter({ hasText: "moment-2.29.4" });
    await moment.getByText("not cached").waitFor();
    await lodash.getByRole("button", { name: "Add library lodash-4.17.21" }).click();
    await libraries.getByTestId("configured-library").filter({ hasText: "lodash-4.17.21" }).waitFor();

    const modules = page.getByTestId("modules-card");
    const fsSwitch = modules.getByLabel("Enable module fs");
    await fsSwitch.click();
    await expect.poll(() => fsSwitch.isChecked(), poll).toBe(true);
    await expect.poll(() => fsSwitch.isDisabled(), poll).toBe(false);
    await page.reload();
    await expect.poll(() => fsSwitch.isChecked(), poll).toBe(true);
    await fsSwitch.click();
    await expect.poll(() => fsSwitch.isChecked(), poll).toBe(false);
    await expect.poll(() => fsSwitch.isDisabled(), poll).toBe(false);

    const settings = page.getByTestId("settings-card");
    await settings.locator('input[name="wall_ms"]').fill("10000");
    await settings.getByRole("button", { name: "Save settings" }).click();
    await settings.getByText("Saved ✓").waitFor();
    await page.reload();
    await expect.poll(() => page.locator('input[name="wall_ms"]').inputValue(), poll).toBe("10000");

    // A limit the daemon rejects comes back with its code and message.
    await settings.locator('input[name="cpu_ms"]').fill("0");
    await settings.getByRole("button", { name: "Save settings" }).click();
    await settings.getByTestId("error-code").getByText("VALIDATION_ERROR").waitFor();
    await settings.getByRole("button", { name: "Discard changes" }).click();

    const capabilities = page.getByTestId("capabilities-card");
    await capabilities.getByLabel("Kind").selectOption("env");
    await capabilities.getByLabel("Capability name").fill("HOME");
    await capabilities.getByRole("button", { name: "Add capability" }).click();
    await capabilities.getByTestId("capability-row").filter({ hasText: "HOME" }).waitFor();

    await screenshot(page, "template-detail");
    await page.getByRole("link", { name: "Templates", exact: true }).first().click();
    await page.getByTestId("template-row").filter({ hasText: "e2e-template" }).waitFor();
    await screenshot(page, "templates");
    expectNoPageErrors(errors);
  });

  it("starts a session from the template, running the startup file", async () => {
    await page.getByRole("link", { name: "e2e-template" }).click();
    await page.getByRole("button", { name: "Start session" }).click();
    const dialog = page.getByTestId("create-session-dialog");
    await dialog.getByLabel("Worktree path").fill(daemon.worktree);
    await dialog.getByRole("button", { name: "Start session" }).click();
    await page.waitForURL(/\/sessions\/[0-9a-f-]{36}$/);
    sessionUrl = page.url();
    await page.getByTestId("session-detail-page").getByTestId("status-badge").first().getByText("ready").waitFor();
    const startup = page.getByTestId("history-item").filter({ hasText: "setup.js" });
    await startup.waitFor();
    expect(await startup.getAttribute("data-kind")).toBe("startup");
    expectNoPageErrors(errors);
  });

  it("runs REPL snippets and shows values and console lines", async () => {
    const editor = page.getByTestId("code-editor");
    await editor.click();
    await page.keyboard.insertText(
      'console.log("hello from the REPL", 1 + 1);\nconsole.warn("careful");\nconsole.error("bad thing");\n({ greeting, lib: _.VERSION, list: [1, 2, 3] })',
    );
    // The editor highlights JavaScript.
    expect(await editor.locator("span").count()).toBeGreaterThan(3);
    await page.keyboard.press("Control+Enter");

    const entry = page.getByTestId("transcript-entry").last();
    await expect.poll(() => entry.getAttribute("data-state"), poll).toBe("done");
    await entry.locator('[data-event-type="console"][data-level="log"]').getByText("hello from the REPL 2").waitFor();
    await entry.locator('[data-event-type="console"][data-level="warn"]').getByText("careful").waitFor();
    await entry.locator('[data-event-type="console"][data-level="error"]').getByText("bad thing").waitFor();
    const value = entry.locator('[data-event-type="value"]');
    await value.getByTestId("json-tree").waitFor();
    await value.getByText('"hello from setup"').waitFor();
    await value.getByText('"4.17.21"').waitFor();
    // The tree folds.
    await value.getByRole("button", { name: /Array\(3\)/ }).click();
    await value.getByText("0:").waitFor();
    await value.getByRole("button", { name: /Array\(3\)/ }).click();
    await expect.poll(() => value.getByText("0:").count(), poll).toBe(0);

    // State persists between calls; the Run button works as well as the shortcut.
    await editor.click();
    await page.keyboard.insertText("let x = 20");
    await page.keyboard.press("Control+Enter");
    await expect.poll(() => page.getByTestId("transcript-entry").last().getAttribute("data-state"), poll).toBe("done");
    await editor.click();
    await page.keyboard.insertText("x * 2 + 2");
    await page.getByRole("button", { name: "Run", exact: true }).click();
    const answer = page.getByTestId("transcript-entry").last();
    await expect.poll(() => answer.getAttribute("data-state"), poll).toBe("done");
    await expect.poll(() => answer.getByTestId("value-preview").textContent(), poll).toBe("42");

    // Up recalls earlier inputs, Down walks back to the empty draft.
    await editor.click();
    await page.keyboard.press("ArrowUp");
    await expect.poll(() => editor.textContent(), poll).toBe("x * 2 + 2");
    await page.keyboard.press("ArrowUp");
    await expect.poll(() => editor.textContent(), poll).toBe("let x = 20");
    await page.keyboard.press("ArrowDown");
    await page.keyboard.press("ArrowDown");
    await expect.poll(() => editor.locator(".cm-placeholder").count(), poll).toBe(1);
    await screenshot(page, "session-repl");
    expectNoPageErrors(errors);
  });

  it("shows a thrown error with its code, message and stack", async () => {
    await page.getByTestId("code-editor").click();
    await page.keyboard.insertText('function explode() { throw new TypeError("boom: " + x); }\nexplode()');
    await page.keyboard.press("Control+Enter");
    const entry = page.getByTestId("transcript-entry").last();
    await expect.poll(() => entry.getAttribute("data-state"), poll).toBe("done");
    const exception = entry.getByTestId("exception");
    await exception.getByText("TypeError: boom: 20", { exact: true }).waitFor();
    await expect.poll(() => exception.getByTestId("exception-stack").textContent(), poll).toContain("explode");
    await entry.getByTestId("execution-error").getByText("EXCEPTION").waitFor();
    await entry.getByTestId("status-badge").getByText("error").waitFor();
    expectNoPageErrors(errors);
  });

  it("shows an API error's code and message when a file path leaves the worktree", async () => {
    await page.getByRole("tab", { name: "Run file" }).click();
    await page.getByLabel("Path (relative to the worktree)").fill("../outside.js");
    await page.getByRole("button", { name: "Run file" }).click();
    const entry = page.getByTestId("transcript-entry").last();
    await expect.poll(() => entry.getAttribute("data-state"), poll).toBe("failed");
    await entry.getByTestId("error-code").getByText("INVALID_PATH").waitFor();
    await expect.poll(() => entry.getByTestId("error-message").textContent(), poll).toContain("..");
    expectNoPageErrors(errors);
  });

  it("runs a file with args and env", async () => {
    await page.getByLabel("Path (relative to the worktree)").fill("scripts/hello.js");
    await page.locator('textarea[name="run-file-args"]').fill('{"who": "e2e"}');
    await page.locator('textarea[name="run-file-env"]').fill("MODE=test");
    await page.getByRole("button", { name: "Run file" }).click();
    const entry = page.getByTestId("transcript-entry").last();
    await expect.poll(() => entry.getAttribute("data-state"), poll).toBe("done");
    await entry.locator('[data-event-type="console"]').getByText("hello e2e").waitFor();
    await entry.locator('[data-event-type="console"][data-level="info"]').getByText("mode=test").waitFor();
    await entry.locator('[data-event-type="value"]').getByText('"e2e"').waitFor();
    expectNoPageErrors(errors);
  });

  it("opens each execution's event log from the history", async () => {
    const item = page.getByTestId("history-item").filter({ hasText: "scripts/hello.js" });
    await item.getByRole("button").first().click();
    const rows = item.getByTestId("event-log-row");
    await expect.poll(() => rows.count(), poll).toBeGreaterThanOrEqual(3);
    const types = await rows.evaluateAll((elements) =>
      elements.map((element) => element.getAttribute("data-event-type")),
    );
    expect(types[0]).toBe("input_echo");
    expect(types).toContain("console");
    expect(types[types.length - 1]).toBe("value");
    await screenshot(page, "session-history");

    await item.getByRole("link", { name: "Open execution →" }).click();
    await page.waitForURL(/\/executions\/[0-9a-f-]{36}$/);
    const page_ = page.getByTestId("execution-page");
    await page_.getByTestId("status-badge").first().getByText("ok").waitFor();
    await page_.getByTestId("event-log").getByText("hello e2e").waitFor();
    await screenshot(page, "execution");
    expectNoPageErrors(errors);
  });

  it("closes the session, which then refuses to run code", async () => {
    await page.goto(sessionUrl);
    await page.getByRole("button", { name: "Close session" }).click();
    await page.getByTestId("closed-banner").waitFor();
    await page.getByTestId("session-detail-page").getByTestId("status-badge").first().getByText("closed").waitFor();
    expect(await page.getByRole("button", { name: "Run", exact: true }).isDisabled()).toBe(true);

    await page.getByRole("link", { name: "Sessions", exact: true }).first().click();
    await page.getByRole("button", { name: "closed", exact: true }).click();
    await page.waitForURL(/status=closed/);
    await page.getByTestId("session-row").first().waitFor();
    expect(await page.getByTestId("session-row").getAttribute("data-status")).toBe("closed");
    await page.getByRole("button", { name: "ready", exact: true }).click();
    await page.getByTestId("empty-state").getByText("No ready sessions").waitFor();
    await page.getByRole("button", { name: "all", exact: true }).click();
    await page.getByTestId("session-row").first().waitFor();
    await screenshot(page, "sessions");
    expectNoPageErrors(errors);
  });

  it("shows health, readiness, the runtime summary and the catalogs on the system page", async () => {
    await page.getByRole("link", { name: "System", exact: true }).click();
    await page.getByTestId("health-stat").getByText("ok").waitFor();
    await page.getByTestId("ready-stat").getByText("ready", { exact: true }).waitFor();
    await expect.poll(() => page.getByTestId("summary-stat").locator(".stat-value").textContent(), poll).toBe("0");
    const lodash = page.getByTestId("catalog-library-row").filter({ hasText: "lodash-4.17.21" });
    await lodash.getByText("cached", { exact: true }).waitFor();
    await page.getByTestId("module-catalog").getByText("fs", { exact: true }).waitFor();
    expect(
      await page
        .getByRole("link", { name: /API docs/ })
        .first()
        .getAttribute("href"),
    ).toBe("/docs/");
    await screenshot(page, "system");
    expectNoPageErrors(errors);
  });

  it("deletes the template after asking, leaving its session in place", async () => {
    await page.getByRole("link", { name: "Templates", exact: true }).click();
    const row = page.getByTestId("template-row").filter({ hasText: "e2e-template" });
    await row.getByRole("button", { name: "Delete" }).click();
    const dialog = page.getByTestId("confirm-dialog");
    await dialog.getByText("Sessions already made from it keep running").waitFor();
    await dialog.getByRole("button", { name: "Delete template" }).click();
    await page.getByTestId("empty-state").getByText("No templates yet").waitFor();

    await page.getByRole("link", { name: "Sessions", exact: true }).click();
    await page.getByTestId("session-row").getByText("deleted").waitFor();
    expectNoPageErrors(errors);
  });
});

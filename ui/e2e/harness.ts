/**
 * The end-to-end harness: a real `vm-system serve` on a free port with a
 * temporary database, worktree and library cache, and a real headless
 * Chromium driven by playwright-core.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { expect, inject, type TestContext } from "vitest";

export interface Daemon {
  url: string;
  home: string;
  worktree: string;
  cacheDir: string;
  logs: () => string;
  stop: () => Promise<void>;
}

/** A stand-in for lodash: the daemon loads `<id>-<version>.js` from its cache directory. */
const FAKE_LODASH = `var _ = {
  VERSION: "4.17.21",
  chunk: function (items, size) {
    var out = [];
    for (var i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
    return out;
  }
};
`;

export async function startDaemon(files: Record<string, string> = {}): Promise<Daemon> {
  const home = mkdtempSync(path.join(tmpdir(), "vm-e2e-"));
  const worktree = path.join(home, "worktree");
  const cacheDir = path.join(home, "cache");
  mkdirSync(worktree);
  mkdirSync(cacheDir);
  writeFileSync(path.join(cacheDir, "lodash-4.17.21.js"), FAKE_LODASH);
  for (const [name, contents] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(worktree, name)), { recursive: true });
    writeFileSync(path.join(worktree, name), contents);
  }
  const child = spawn(
    inject("binary"),
    ["serve", "--listen", "127.0.0.1:0", "--db", path.join(home, "vm.db"), "--cache-dir", cacheDir],
    { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, VM_SYSTEM_LOG: process.env.VM_SYSTEM_LOG ?? "info" } },
  );
  let output = "";
  const verbose = process.env.VM_TEST_LOG === "1";
  child.stderr?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
    if (verbose) process.stderr.write(chunk);
  });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the daemon did not start within 30 s:\n${output}`)), 30_000);
    child.stdout?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      const match = /vm-system listening on (http:\/\/\S+)/.exec(output);
      if (match?.[1]) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`the daemon exited with ${code} before listening:\n${output}`));
    });
  });
  return {
    url,
    home,
    worktree,
    cacheDir,
    logs: () => output,
    stop: () => stopChild(child).then(() => rmSync(home, { recursive: true, force: true })),
  };
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill("SIGTERM");
  });
}

/** Debian's Chromium, headless, with everything that would reach the network turned off. */
export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: inject("chromium"),
    headless: true,
    chromiumSandbox: false,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-quic",
      "--no-first-run",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/**
 * A page that fails the test on any uncaught error in the app: a page that
 * crashes while rendering must not pass because its text happened to match.
 */
export async function openPage(browser: Browser, baseURL: string): Promise<{ page: Page; errors: string[] }> {
  const context = await browser.newContext({ baseURL, viewport: { width: 1440, height: 900 } });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on("pageerror", (error) => errors.push(`pageerror: ${error.message}`));
  page.setDefaultTimeout(15_000);
  return { page, errors };
}

export function expectNoPageErrors(errors: string[]) {
  expect(errors, "uncaught errors in the page").toEqual([]);
}

export async function screenshot(page: Page, name: string): Promise<string> {
  const dir = inject("artifacts");
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** Saves what the page looked like when a test failed, as `failed-<test>.png`. */
export async function screenshotOnFailure(page: Page | undefined, context: TestContext): Promise<void> {
  if (!page || context.task.result?.state !== "fail") return;
  const name = context.task.name.replace(/[^a-z0-9]+/gi, "-").toLowerCase();
  await screenshot(page, `failed-${name}`).catch(() => undefined);
}

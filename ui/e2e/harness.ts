/**
 * The end-to-end harness: a real `vm-system serve` on a free port with a
 * temporary database, data directory, worktree root and library cache, and a
 * real headless Chromium driven by playwright-core.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, expect, inject, type TestContext } from "vitest";

export interface Daemon {
  url: string;
  home: string;
  worktree: string;
  cacheDir: string;
  /** Where the daemon keeps `admin-token-<port>` (`VM_SYSTEM_DATA_DIR`). */
  dataDir: string;
  /** The bootstrap admin token the daemon printed; null with `--auth=off`. */
  token: string | null;
  /** A call to `/api/v1<path>` carrying the bootstrap token (or `as`). */
  api: (path: string, init?: RequestInit & { as?: string | null }) => Promise<Response>;
  logs: () => string;
  stop: () => Promise<void>;
}

export interface DaemonOptions {
  /** `serve --auth=off`: no tokens at all. */
  authOff?: boolean;
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

export async function startDaemon(files: Record<string, string> = {}, options: DaemonOptions = {}): Promise<Daemon> {
  const home = mkdtempSync(path.join(tmpdir(), "vm-e2e-"));
  const worktree = path.join(home, "worktree");
  const cacheDir = path.join(home, "cache");
  const dataDir = path.join(home, "data");
  mkdirSync(worktree);
  mkdirSync(cacheDir);
  writeFileSync(path.join(cacheDir, "lodash-4.17.21.js"), FAKE_LODASH);
  for (const [name, contents] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(worktree, name)), { recursive: true });
    writeFileSync(path.join(worktree, name), contents);
  }
  const args = ["serve", "--listen", "127.0.0.1:0", "--db", path.join(home, "vm.db"), "--cache-dir", cacheDir];
  args.push("--worktree-root", home);
  if (options.authOff) args.push("--auth=off");
  const child = spawn(inject("binary"), args, {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, VM_SYSTEM_LOG: process.env.VM_SYSTEM_LOG ?? "info", VM_SYSTEM_DATA_DIR: dataDir },
  });
  let output = "";
  let stdout = "";
  const verbose = process.env.VM_TEST_LOG === "1";
  child.stderr?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
    if (verbose) process.stderr.write(chunk);
  });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the daemon did not start within 30 s:\n${output}`)), 30_000);
    child.stdout?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
      stdout += chunk.toString();
      const match = /vm-system listening on (http:\/\/\S+)/.exec(stdout);
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
  const token = options.authOff ? null : bootstrapToken(stdout, dataDir, url);
  return {
    url,
    home,
    worktree,
    cacheDir,
    dataDir,
    token,
    api: (apiPath, { as = token, ...init } = {}) => {
      const headers = new Headers(init.headers);
      if (as) headers.set("authorization", `Bearer ${as}`);
      return fetch(`${url}/api/v1${apiPath}`, { ...init, headers });
    },
    logs: () => output,
    stop: () => stopChild(child).then(() => rmSync(home, { recursive: true, force: true })),
  };
}

/**
 * The secret `serve` prints as "Bootstrap admin token (shown once): …" before it says
 * it is listening, or else the one it saved in `<data dir>/admin-token-<port>`.
 */
function bootstrapToken(stdout: string, dataDir: string, url: string): string {
  const printed = /^Bootstrap admin token \(shown once\): (vmsys_\S+)\s*$/m.exec(stdout)?.[1];
  if (printed) return printed;
  const port = new URL(url).port;
  const saved = readFileSync(path.join(dataDir, `admin-token-${port}`), "utf8").trim();
  if (!saved.startsWith("vmsys_")) throw new Error(`no bootstrap token printed or saved:\n${stdout}`);
  return saved;
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

/**
 * Signs the page's tab in with the daemon's bootstrap token through the link
 * `serve` prints (`/#token=…`), and waits until the app shows who is signed in.
 */
export async function signIn(page: Page, daemon: Daemon, target = "/"): Promise<void> {
  if (!daemon.token) throw new Error("this daemon runs without tokens");
  await page.goto(`${target}#token=${daemon.token}`);
  await page.getByTestId("identity").waitFor();
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

/** What {@link signedInPage} hands a `describe` block once it is up. */
export interface SignedIn {
  daemon: Daemon;
  browser: Browser;
  page: Page;
  errors: string[];
}

/**
 * The usual fixture of a `describe` block: before its tests, a daemon (with
 * `files` in its worktree), a browser and a page signed in with the bootstrap
 * token, handed to `ready`; a screenshot after each failed test; everything
 * stopped after the last one. Hooks registered after this call run after it.
 */
export function signedInPage(
  ready: (signedIn: SignedIn) => void,
  files: Record<string, string> = {},
  options: DaemonOptions = {},
): void {
  let daemon: Daemon | undefined;
  let browser: Browser | undefined;
  let page: Page | undefined;
  beforeAll(async () => {
    daemon = await startDaemon(files, options);
    browser = await launchBrowser();
    const opened = await openPage(browser, daemon.url);
    page = opened.page;
    await signIn(page, daemon);
    ready({ daemon, browser, page, errors: opened.errors });
  });
  afterEach((context) => screenshotOnFailure(page, context));
  afterAll(async () => {
    await browser?.close();
    await daemon?.stop();
  });
}

/** A POST to the daemon's API with its bootstrap token; fails the test on an unexpected status. */
export async function postTo<T>(daemon: Daemon, path: string, body: unknown, status = 201): Promise<T> {
  const response = await daemon.api(path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  expect(response.status, `${path}: ${await response.clone().text()}`).toBe(status);
  return (await response.json()) as T;
}

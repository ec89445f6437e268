/**
 * Signing in, against the real daemon with tokens on: the login screen, the
 * sign-in link `serve` prints, signing out, a revoked token, a token too
 * small for an action, where the token is kept, the Tokens page, and a
 * daemon with `--auth=off` that asks nobody.
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

const TOKEN_KEY = "vm-system.token";

interface Created {
  secret: string;
  token: { id: string; name: string };
}

describe("signing in", () => {
  let daemon: Daemon;
  let browser: Browser;
  let page: Page | undefined;
  let errors: string[];

  /** A fresh tab in a fresh browser context: nothing in its storage yet. */
  async function freshPage(): Promise<Page> {
    ({ page, errors } = await openPage(browser, daemon.url));
    return page;
  }

  async function createToken(name: string, scopes: string[]): Promise<Created> {
    const response = await daemon.api("/tokens", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name, scopes }),
    });
    expect(response.status, await response.clone().text()).toBe(201);
    return (await response.json()) as Created;
  }

  beforeAll(async () => {
    daemon = await startDaemon();
    browser = await launchBrowser();
  });

  afterEach(async (context) => {
    await screenshotOnFailure(page, context);
    await page?.context().close();
    page = undefined;
  });

  afterAll(async () => {
    await browser?.close();
    await daemon?.stop();
  });

  it("asks for a token, shows why a wrong one is refused, and signs in with the bootstrap token", async () => {
    const page = await freshPage();
    await page.goto("/templates");
    const login = page.getByTestId("login-page");
    await login.getByRole("heading", { name: "Sign in" }).waitFor();
    // It says where the token comes from: this daemon's token file and `token create`.
    await login.getByText(`admin-token-${new URL(daemon.url).port}`).waitFor();
    await login.getByText("vm-system token create").waitFor();
    expect(await page.getByLabel("API token").getAttribute("type")).toBe("password");
    await screenshot(page, "login");

    await page.getByLabel("API token").fill(`vmsys_${"0".repeat(64)}`);
    await page.getByRole("button", { name: "Sign in" }).click();
    const error = login.getByTestId("api-error");
    await error.getByTestId("error-code").getByText("UNAUTHENTICATED").waitFor();
    expect((await error.getByTestId("error-message").textContent())?.length).toBeGreaterThan(0);
    expect(await page.evaluate((key) => sessionStorage.getItem(key), TOKEN_KEY)).toBeNull();

    await page.getByLabel("API token").fill(daemon.token ?? "");
    await page.getByRole("button", { name: "Sign in" }).click();
    // The page asked for before signing in opens.
    await page.getByTestId("templates-page").getByTestId("empty-state").getByText("No templates yet").waitFor();
    expect(new URL(page.url()).pathname).toBe("/templates");
    const identity = page.getByTestId("identity");
    await identity.getByTestId("identity-name").getByText("bootstrap").waitFor();
    await identity.getByTestId("identity-scopes").getByText("admin").waitFor();
    expectNoPageErrors(errors);
  });

  it("signs in from the link serve prints, drops the token from the address, and signs out", async () => {
    const page = await freshPage();
    await page.goto(`/sessions#token=${daemon.token}`);
    await page.getByTestId("identity").getByText("bootstrap").waitFor();
    await page.getByTestId("empty-state").getByText("No sessions yet").waitFor();
    const href = await page.evaluate(() => location.href);
    expect(href).not.toContain("token");
    expect(href).not.toContain("#");
    expect(new URL(href).pathname).toBe("/sessions");

    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByTestId("login-page").getByRole("heading", { name: "Sign in" }).waitFor();
    expect(await page.evaluate((key) => sessionStorage.getItem(key), TOKEN_KEY)).toBeNull();
    // A reload stays signed out.
    await page.reload();
    await page.getByTestId("login-page").waitFor();
    expectNoPageErrors(errors);
  });

  it("goes back to the login screen with the daemon's message when the token stops working", async () => {
    const created = await createToken("e2e-revoked", ["read"]);
    const page = await freshPage();
    await page.goto(`/#token=${created.secret}`);
    await page.getByTestId("identity").getByText("e2e-revoked").waitFor();
    await page.getByTestId("identity").getByText("read").waitFor();

    const revoked = await daemon.api(`/tokens/${created.token.id}`, { method: "DELETE" });
    expect(revoked.status).toBe(200);
    // The System page asks for something the sessions page has not cached;
    // a background refetch may get the 401 first and take the link away.
    await page
      .getByRole("link", { name: "System", exact: true })
      .click({ timeout: 3_000 })
      .catch(() => undefined);
    const notice = page.getByTestId("login-notice");
    await notice.waitFor();
    expect(await notice.textContent()).toContain("revoked");
    expect(await page.evaluate((key) => sessionStorage.getItem(key), TOKEN_KEY)).toBeNull();

    // A token that never existed, left in the tab's storage, ends the same way.
    await page.evaluate((key) => sessionStorage.setItem(key, `vmsys_${"f".repeat(64)}`), TOKEN_KEY);
    await page.reload();
    await page.getByTestId("login-notice").waitFor();
    expect(await page.evaluate((key) => sessionStorage.getItem(key), TOKEN_KEY)).toBeNull();
    expectNoPageErrors(errors);
  });

  it("keeps the token in this tab's sessionStorage only: no cookie, no localStorage", async () => {
    const page = await freshPage();
    await signIn(page, daemon, "/templates");
    await page.getByRole("link", { name: "System", exact: true }).click();
    await page.getByTestId("health-stat").getByText("ok").waitFor();
    const token = daemon.token ?? "";
    const stored = await page.evaluate(() => ({
      cookie: document.cookie,
      local: JSON.stringify(Object.entries(localStorage)),
      session: JSON.stringify(Object.entries(sessionStorage)),
    }));
    expect(stored.cookie).not.toContain(token);
    expect(stored.local).not.toContain(token);
    expect(stored.session).toContain(token);
    const cookies = await page.context().cookies();
    expect(JSON.stringify(cookies)).not.toContain(token);
    expectNoPageErrors(errors);
  });

  it("shows a token's missing scope as an error and stays signed in", async () => {
    const reader = await createToken("e2e-reader", ["read"]);
    const page = await freshPage();
    await page.goto(`/templates#token=${reader.secret}`);
    await page.getByTestId("identity").getByText("e2e-reader").waitFor();
    // Only admins see the Tokens page.
    expect(await page.getByRole("link", { name: "Tokens", exact: true }).count()).toBe(0);
    await page.getByRole("button", { name: "New template" }).first().click();
    const dialog = page.getByTestId("create-template-dialog");
    await dialog.getByLabel("Name").fill("not-allowed");
    await dialog.getByRole("button", { name: "Create template" }).click();
    const error = dialog.getByTestId("api-error");
    await error.getByTestId("error-code").getByText("FORBIDDEN").waitFor();
    await expect.poll(() => error.getByTestId("error-message").textContent()).toContain("admin");
    await error.getByTestId("error-hint").getByText("admin").waitFor();
    expect(await page.getByTestId("login-page").count()).toBe(0);
    await page.getByTestId("identity").getByText("e2e-reader").waitFor();
    expectNoPageErrors(errors);
  });

  it("makes a token on the Tokens page, shows its secret once, and revokes it", async () => {
    const page = await freshPage();
    await page.context().grantPermissions(["clipboard-read", "clipboard-write"]);
    await signIn(page, daemon);
    await page.getByRole("link", { name: "Tokens", exact: true }).click();
    const bootstrapRow = page.getByTestId("token-row").filter({ hasText: "bootstrap" });
    await bootstrapRow.getByText("this tab").waitFor();

    await page.getByRole("button", { name: "New token" }).click();
    const dialog = page.getByTestId("create-token-dialog");
    await dialog.getByLabel("Token name").fill("e2e-ci");
    await dialog.getByRole("radio", { name: /^execute/ }).check();
    await dialog.getByLabel("Expires").selectOption({ label: "in 7 days" });
    await dialog.getByRole("button", { name: "Create token" }).click();
    const secretField = dialog.getByLabel("Token secret");
    await secretField.waitFor();
    const secret = await secretField.inputValue();
    expect(secret).toMatch(/^vmsys_/);
    await dialog.getByRole("button", { name: "Copy secret" }).click();
    await dialog.getByRole("button", { name: "Copied ✓" }).waitFor();
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(secret);
    await screenshot(page, "token-created");
    await dialog.getByRole("button", { name: "Done" }).click();

    const row = page.getByTestId("token-row").filter({ hasText: "e2e-ci" });
    await expect.poll(() => row.getAttribute("data-status")).toBe("active");
    await row.getByText("execute").waitFor();
    const whoami = await daemon.api("/whoami", { as: secret });
    expect(await whoami.json()).toMatchObject({ name: "e2e-ci", scopes: ["execute"] });
    await screenshot(page, "tokens");

    await row.getByRole("button", { name: "Revoke token e2e-ci" }).click();
    await page.getByTestId("confirm-dialog").getByRole("button", { name: "Revoke token" }).click();
    await expect.poll(() => row.getAttribute("data-status")).toBe("revoked");
    expect((await daemon.api("/whoami", { as: secret })).status).toBe(401);
    expectNoPageErrors(errors);
  });
});

describe("a daemon with --auth=off", () => {
  let daemon: Daemon;
  let browser: Browser;
  let page: Page | undefined;

  beforeAll(async () => {
    daemon = await startDaemon({}, { authOff: true });
    browser = await launchBrowser();
  });

  afterEach((context) => screenshotOnFailure(page, context));

  afterAll(async () => {
    await browser?.close();
    await daemon?.stop();
  });

  it("opens the app without asking for a token", async () => {
    let errors: string[];
    ({ page, errors } = await openPage(browser, daemon.url));
    await page.goto("/templates");
    await page.getByTestId("templates-page").getByText("No templates yet").waitFor();
    await page.getByTestId("identity").getByText("Authentication off").waitFor();
    expect(await page.getByTestId("login-page").count()).toBe(0);
    expect(await page.getByRole("button", { name: "Sign out" }).count()).toBe(0);
    expectNoPageErrors(errors);
  });
});

import createClient from "openapi-fetch";
import { describe, expect, it, vi } from "vitest";
import {
  authMiddleware,
  bearer,
  normaliseSecret,
  refusalMessage,
  TOKEN_KEY,
  tokenFromFragment,
  tokenOfHeader,
  TokenStore,
  type TokenStorage,
} from "./auth";
import type { paths } from "./schema.gen";

const SECRET = "vmsys_" + "ab".repeat(32);

function memoryStorage(initial: Record<string, string> = {}): TokenStorage & { items: Map<string, string> } {
  const items = new Map(Object.entries(initial));
  return {
    items,
    getItem: (key) => items.get(key) ?? null,
    setItem: (key, value) => void items.set(key, value),
    removeItem: (key) => void items.delete(key),
  };
}

function envelope(status: number, code: string, message: string): Response {
  return new Response(JSON.stringify({ error: { code, message, details: {} } }), {
    status,
    headers: { "content-type": "application/json" },
  });
}

/** A client on a fake daemon that records each request and answers with `answer`. */
function clientWith(store: TokenStore, answer: (request: Request) => Response) {
  const seen: Request[] = [];
  const client = createClient<paths>({
    baseUrl: "http://daemon.test/api/v1",
    fetch: (request: Request) => {
      seen.push(request);
      return Promise.resolve(answer(request));
    },
  });
  client.use(authMiddleware(store));
  return { client, seen };
}

describe("the token fragment", () => {
  it("yields the token and keeps the rest of the fragment", () => {
    expect(tokenFromFragment(`#token=${SECRET}`)).toEqual({ token: SECRET, rest: "" });
    expect(tokenFromFragment(`#token=${SECRET}&tab=2`)).toEqual({ token: SECRET, rest: "#tab=2" });
    expect(tokenFromFragment("#section")).toEqual({ token: null, rest: "#section" });
    expect(tokenFromFragment("")).toEqual({ token: null, rest: "" });
    expect(tokenFromFragment("#token=")).toEqual({ token: null, rest: "" });
  });

  it("is stored and removed from the address bar without a new history entry", () => {
    const storage = memoryStorage();
    const store = new TokenStore(storage);
    const replaceState = vi.fn();
    const adopted = store.adoptFragment(
      { hash: `#token=${SECRET}`, pathname: "/templates", search: "?x=1" },
      { replaceState, state: { idx: 0 } },
    );
    expect(adopted).toBe(true);
    expect(store.token).toBe(SECRET);
    expect(storage.items.get(TOKEN_KEY)).toBe(SECRET);
    expect(replaceState).toHaveBeenCalledWith({ idx: 0 }, "", "/templates?x=1");
  });

  it("leaves a location without a token alone", () => {
    const store = new TokenStore(memoryStorage());
    const replaceState = vi.fn();
    expect(store.adoptFragment({ hash: "#top", pathname: "/", search: "" }, { replaceState, state: null })).toBe(false);
    expect(replaceState).not.toHaveBeenCalled();
    expect(store.token).toBeNull();
  });
});

describe("the token store", () => {
  it("starts from what sessionStorage holds", () => {
    expect(new TokenStore(memoryStorage({ [TOKEN_KEY]: SECRET })).token).toBe(SECRET);
    expect(new TokenStore(memoryStorage()).token).toBeNull();
    expect(new TokenStore(null).token).toBeNull();
  });

  it("keeps a token in storage until sign-out, telling subscribers each time", () => {
    const storage = memoryStorage();
    const store = new TokenStore(storage);
    const listener = vi.fn();
    store.subscribe(listener);
    const first = store.signIn(SECRET);
    expect(storage.items.get(TOKEN_KEY)).toBe(SECRET);
    expect(store.snapshot()).toEqual({ token: SECRET, notice: null, generation: first });
    const second = store.signOut();
    expect(second).toBeGreaterThan(first);
    expect(storage.items.has(TOKEN_KEY)).toBe(false);
    expect(store.snapshot().token).toBeNull();
    expect(listener).toHaveBeenCalledTimes(2);
  });

  it("still works in memory when storage throws", () => {
    const broken: TokenStorage = {
      getItem: () => {
        throw new Error("SecurityError");
      },
      setItem: () => {
        throw new Error("QuotaExceededError");
      },
      removeItem: () => undefined,
    };
    const store = new TokenStore(broken);
    store.signIn(SECRET);
    expect(store.token).toBe(SECRET);
  });

  it("signs out on a refusal of its own token only", () => {
    const store = new TokenStore(memoryStorage());
    store.signIn(SECRET);
    store.refused("vmsys_older", 'token "old" has been revoked');
    store.refused(null, "no bearer token");
    expect(store.token).toBe(SECRET);
    store.refused(SECRET, 'token "laptop" has been revoked');
    expect(store.snapshot()).toMatchObject({ token: null, notice: 'token "laptop" has been revoked' });
  });
});

describe("pasted secrets", () => {
  it("are trimmed, unprefixed, or taken from a sign-in link", () => {
    expect(normaliseSecret(`  ${SECRET}\n`)).toBe(SECRET);
    expect(normaliseSecret(`Bearer ${SECRET}`)).toBe(SECRET);
    expect(normaliseSecret(`http://127.0.0.1:3210/#token=${SECRET}`)).toBe(SECRET);
  });

  it("round-trip through the header", () => {
    expect(tokenOfHeader(bearer(SECRET))).toBe(SECRET);
    expect(tokenOfHeader(null)).toBeNull();
    expect(tokenOfHeader("Basic abc")).toBeNull();
  });
});

describe("the API middleware", () => {
  it("sends the tab's token as a bearer token on every call", async () => {
    const store = new TokenStore(memoryStorage());
    store.signIn(SECRET);
    const { client, seen } = clientWith(store, () => Response.json([]));
    await client.GET("/templates");
    await client.POST("/templates", { body: { name: "t" } });
    expect(seen.map((request) => request.headers.get("authorization"))).toEqual([bearer(SECRET), bearer(SECRET)]);
  });

  it("sends nothing when signed out, and never overrides a token the call names", async () => {
    const store = new TokenStore(memoryStorage());
    const { client, seen } = clientWith(store, () => Response.json({ name: "x", scopes: [] }));
    await client.GET("/whoami");
    expect(seen[0]?.headers.has("authorization")).toBe(false);
    store.signIn(SECRET);
    await client.GET("/whoami", { headers: { authorization: bearer("vmsys_candidate") } });
    expect(seen[1]?.headers.get("authorization")).toBe(bearer("vmsys_candidate"));
  });

  it("signs the tab out with the daemon's message on a 401", async () => {
    const store = new TokenStore(memoryStorage());
    store.signIn(SECRET);
    const { client } = clientWith(store, () => envelope(401, "UNAUTHENTICATED", 'token "ci" has expired'));
    const { error, response } = await client.GET("/templates");
    expect(response.status).toBe(401);
    expect(error).toMatchObject({ error: { code: "UNAUTHENTICATED" } });
    expect(store.snapshot()).toMatchObject({ token: null, notice: 'token "ci" has expired' });
  });

  it("keeps the token on a 403, which the page shows as an error", async () => {
    const store = new TokenStore(memoryStorage());
    store.signIn(SECRET);
    const { client } = clientWith(store, () =>
      envelope(403, "FORBIDDEN", 'token "viewer" lacks the admin scope (it has read)'),
    );
    const { response } = await client.POST("/templates", { body: { name: "t" } });
    expect(response.status).toBe(403);
    expect(store.token).toBe(SECRET);
  });

  it("leaves the tab signed in when a candidate token is refused", async () => {
    const store = new TokenStore(memoryStorage());
    const { client } = clientWith(store, () => envelope(401, "UNAUTHENTICATED", "unknown token"));
    await client.GET("/whoami", { headers: { authorization: bearer("vmsys_wrong") } });
    expect(store.snapshot()).toMatchObject({ token: null, notice: null });
  });
});

describe("refusal messages", () => {
  it("come from the envelope, or say what happened", async () => {
    expect(await refusalMessage(envelope(401, "UNAUTHENTICATED", "no bearer token"))).toBe("no bearer token");
    expect(await refusalMessage(new Response("nope", { status: 401 }))).toBe("the daemon refused the token");
  });
});

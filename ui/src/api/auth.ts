/**
 * The API token of this browser tab. It lives in memory and in
 * `sessionStorage` (never a cookie, never `localStorage`), so it ends with the
 * tab; every API call carries it as `Authorization: Bearer …`; a daemon that
 * answers 401 to it makes the tab forget it. Knows nothing of React.
 */
import type { Middleware } from "openapi-fetch";

/** The `sessionStorage` key holding the token. */
export const TOKEN_KEY = "vm-system.token";

/** The part of `Storage` used here, so tests can pass a map. */
export interface TokenStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

export interface AuthState {
  /** The secret sent with every call, or null when signed out. */
  token: string | null;
  /** Why the tab was signed out (the daemon's 401 message), for the login screen. */
  notice: string | null;
  /** Counts sign-ins and sign-outs, so caches can be keyed by the token without holding it. */
  generation: number;
}

export function bearer(token: string): string {
  return `Bearer ${token}`;
}

/** The token in an `Authorization: Bearer …` header value, or null. */
export function tokenOfHeader(header: string | null): string | null {
  const match = header === null ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1] ?? null;
}

/**
 * What a person pasted into the token field, as a secret: trimmed, without a
 * `Bearer ` prefix, or taken from a whole `…/#token=…` link.
 */
export function normaliseSecret(input: string): string {
  const text = input.trim();
  const hash = text.indexOf("#");
  if (hash >= 0) {
    const fromLink = tokenFromFragment(text.slice(hash)).token;
    if (fromLink !== null) return fromLink;
  }
  return tokenOfHeader(text) ?? text;
}

/**
 * Splits a location fragment (`#token=…&other`) into the token and what
 * remains of the fragment (`""` when nothing does, else `#…`).
 */
export function tokenFromFragment(hash: string): { token: string | null; rest: string } {
  const body = hash.startsWith("#") ? hash.slice(1) : hash;
  if (!/(^|&)token=/.test(body)) return { token: null, rest: hash };
  const params = new URLSearchParams(body);
  const token = params.get("token")?.trim() || null;
  params.delete("token");
  const rest = params.toString();
  return { token, rest: rest === "" ? "" : `#${rest}` };
}

/** `sessionStorage` when the browser lets this page use it, else null (memory only). */
export function browserStorage(): TokenStorage | null {
  try {
    return typeof sessionStorage === "undefined" ? null : sessionStorage;
  } catch {
    return null; // storage disabled: reading the property throws a SecurityError
  }
}

/**
 * The tab's token and who is told when it changes. `snapshot` and
 * `subscribe` fit React's `useSyncExternalStore`.
 */
export class TokenStore {
  private state: AuthState;
  private readonly listeners = new Set<() => void>();

  constructor(private readonly storage: TokenStorage | null) {
    this.state = { token: this.read(), notice: null, generation: 0 };
  }

  get token(): string | null {
    return this.state.token;
  }

  readonly snapshot = (): AuthState => this.state;

  readonly subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  /** Keeps `secret` for this tab; returns the new generation. */
  signIn(secret: string): number {
    this.write(secret);
    return this.update({ token: secret, notice: null });
  }

  /** Forgets the token, with the reason the login screen shows (if any). */
  signOut(notice: string | null = null): number {
    this.write(null);
    return this.update({ token: null, notice });
  }

  /**
   * The daemon refused `sent` with 401: sign out, unless the tab holds
   * another token by now (a late answer to a request made before a new
   * sign-in) or the request carried none (the start-up probe).
   */
  refused(sent: string | null, message: string): void {
    if (sent === null || sent !== this.state.token) return;
    this.signOut(message);
  }

  /**
   * Takes a `#token=…` fragment (the link `vm-system serve` prints) into the
   * store and removes it from the address bar with `replaceState`, so the
   * secret stays neither in the history nor in a copied URL.
   */
  adoptFragment(
    location: Pick<Location, "hash" | "pathname" | "search">,
    history: Pick<History, "replaceState" | "state">,
  ): boolean {
    const { token, rest } = tokenFromFragment(location.hash);
    if (rest === location.hash) return false; // no token in the fragment
    history.replaceState(history.state, "", `${location.pathname}${location.search}${rest}`);
    if (token === null) return false;
    this.signIn(token);
    return true;
  }

  private update(next: Pick<AuthState, "token" | "notice">): number {
    this.state = { ...next, generation: this.state.generation + 1 };
    for (const listener of [...this.listeners]) listener();
    return this.state.generation;
  }

  private read(): string | null {
    try {
      return this.storage?.getItem(TOKEN_KEY) || null;
    } catch {
      return null;
    }
  }

  private write(token: string | null): void {
    try {
      if (token === null) this.storage?.removeItem(TOKEN_KEY);
      else this.storage?.setItem(TOKEN_KEY, token);
    } catch {
      // Storage full or disabled: the token still lives in memory for this page.
    }
  }
}

/** The daemon's message in a 401 answer, or a fixed one when it sent no envelope. */
export async function refusalMessage(response: Response): Promise<string> {
  try {
    const body: unknown = await response.clone().json();
    const message = (body as { error?: { message?: unknown } } | null)?.error?.message;
    if (typeof message === "string" && message !== "") return message;
  } catch {
    // not JSON: fall through
  }
  return "the daemon refused the token";
}

/**
 * The openapi-fetch middleware: adds the tab's token to every request that
 * names none itself, and signs the tab out when the daemon refuses it.
 */
export function authMiddleware(store: TokenStore): Middleware {
  return {
    onRequest({ request }) {
      const token = store.token;
      if (token !== null && !request.headers.has("authorization")) {
        request.headers.set("authorization", bearer(token));
      }
      return request;
    },
    async onResponse({ request, response }) {
      if (response.status !== 401) return undefined;
      const sent = tokenOfHeader(request.headers.get("authorization"));
      if (sent !== null) store.refused(sent, await refusalMessage(response));
      return undefined;
    },
  };
}

/**
 * The one client of the daemon's REST API. Types come from
 * `schema.gen.ts`, generated from `openapi/openapi.json` (`npm run gen:api`);
 * nothing here restates an API shape by hand.
 */
import createClient from "openapi-fetch";
import { authMiddleware, bearer, browserStorage, TokenStore } from "./auth";
import type { components, paths } from "./schema.gen";

type Schemas = components["schemas"];
export type Template = Schemas["TemplateView"];
export type TemplateDetail = Schemas["TemplateDetailView"];
export type Settings = Schemas["SettingsView"];
export type SettingsBody = Schemas["SettingsBody"];
export type Capability = Schemas["CapabilityView"];
export type CreateCapabilityBody = Schemas["CreateCapabilityBody"];
export type StartupFile = Schemas["StartupFileView"];
export type CreateStartupFileBody = Schemas["CreateStartupFileBody"];
export type CatalogModule = Schemas["CatalogModuleView"];
export type CatalogLibrary = Schemas["CatalogLibraryView"];
export type Session = Schemas["SessionView"];
export type SessionStatus = Schemas["SessionStatusView"];
export type CreateSessionBody = Schemas["CreateSessionBody"];
export type Execution = Schemas["ExecutionView"];
export type ExecutionWithEvents = Schemas["ExecutionWithEventsView"];
export type ExecutionStatus = Schemas["ExecutionStatusView"];
export type ExecutionKind = Schemas["ExecutionKindView"];
export type ExecutionEvent = Schemas["EventView"];
export type RunFileBody = Schemas["RunFileBody"];
export type RuntimeSummary = Schemas["RuntimeSummaryView"];
export type Health = Schemas["HealthView"];
export type Scope = Schemas["ScopeView"];
export type Token = Schemas["TokenView"];
export type TokenStatus = Schemas["TokenStatusView"];
export type CreateTokenBody = Schemas["CreateTokenBody"];
export type CreatedToken = Schemas["CreatedTokenView"];
export type WhoAmI = Schemas["WhoAmIView"];
type ErrorEnvelope = Schemas["ErrorEnvelope"];

/** Where the API lives: the daemon serves the UI and the API from one origin. */
export const API_BASE = "/api/v1";

/** This tab's API token (memory and `sessionStorage`). */
export const tokens = new TokenStore(browserStorage());

export const api = createClient<paths>({ baseUrl: API_BASE });
api.use(authMiddleware(tokens));

/**
 * Every failed call, as the UI shows it: the daemon's error code and message
 * (or a code made up here for failures that never reached the daemon).
 */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: unknown;
  readonly requestId: string | null;

  constructor(init: { status: number; code: string; message: string; details?: unknown; requestId?: string | null }) {
    super(init.message);
    this.name = "ApiError";
    this.status = init.status;
    this.code = init.code;
    this.details = init.details ?? null;
    this.requestId = init.requestId ?? null;
  }

  /** Builds the error from a non-2xx answer; `body` is what openapi-fetch parsed. */
  static fromResponse(response: Response, body: unknown): ApiError {
    const requestId = response.headers.get("x-request-id");
    if (isEnvelope(body)) {
      const { code, message, details } = body.error;
      return new ApiError({ status: response.status, code, message, details, requestId });
    }
    const text = typeof body === "string" && body.trim() !== "" ? body.trim().slice(0, 300) : response.statusText;
    return new ApiError({
      status: response.status,
      code: `HTTP_${response.status}`,
      message: text || "the daemon answered without an error envelope",
      requestId,
    });
  }

  /** A request that got no answer: the daemon is down or unreachable. */
  static network(cause: unknown): ApiError {
    const reason = cause instanceof Error ? cause.message : String(cause);
    return new ApiError({
      status: 0,
      code: "NETWORK_ERROR",
      message: `cannot reach the daemon (${reason})`,
    });
  }
}

function isEnvelope(body: unknown): body is ErrorEnvelope {
  if (typeof body !== "object" || body === null || !("error" in body)) return false;
  const inner = body.error;
  return (
    typeof inner === "object" &&
    inner !== null &&
    typeof (inner as { code?: unknown }).code === "string" &&
    typeof (inner as { message?: unknown }).message === "string"
  );
}

/** Turns normalised error objects of any origin into an `ApiError`. */
export function toApiError(error: unknown): ApiError {
  if (error instanceof ApiError) return error;
  if (error instanceof Error) return new ApiError({ status: 0, code: "CLIENT_ERROR", message: error.message });
  return new ApiError({ status: 0, code: "CLIENT_ERROR", message: String(error) });
}

type Outcome<D> = { data?: D; error?: unknown; response: Response };

/**
 * Awaits an openapi-fetch call and returns its data, or throws an `ApiError`
 * carrying the daemon's code and message.
 */
export async function unwrap<D>(call: Promise<Outcome<D>>): Promise<D> {
  let outcome: Outcome<D>;
  try {
    outcome = await call;
  } catch (cause) {
    throw ApiError.network(cause);
  }
  const { data, error, response } = outcome;
  if (!response.ok) throw ApiError.fromResponse(response, error);
  return data as D;
}

/**
 * Who a token is (`GET /whoami`). With `token` null the request carries no
 * token: a daemon running with `--auth=off` answers 200, any other 401.
 */
export function whoAmI(token: string | null): Promise<WhoAmI> {
  const headers = token === null ? {} : { authorization: bearer(token) };
  return unwrap(api.GET("/whoami", { headers }));
}

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
export type CreateTemplateBody = Schemas["CreateTemplateBody"];
export type TemplateDetail = Schemas["TemplateDetailView"];
export type Settings = Schemas["SettingsView"];
export type SettingsBody = Schemas["SettingsBody"];
export type Capability = Schemas["CapabilityView"];
export type CreateCapabilityBody = Schemas["CreateCapabilityBody"];
export type CapabilityKind = Schemas["CapabilityKindView"];
export type StartupFile = Schemas["StartupFileView"];
export type CreateStartupFileBody = Schemas["CreateStartupFileBody"];
export type ModuleName = Schemas["ModuleNameBody"]["name"];
export type LibraryName = Schemas["LibraryNameBody"]["name"];
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
export type MetricsSummary = Schemas["MetricsSummaryView"];
/** One daemon serving the database (every daemon is a node). */
export type DaemonNode = Schemas["NodeView"];
export type NodeStatus = Schemas["NodeStatusView"];
export type Health = Schemas["HealthView"];
export type Ready = Schemas["ReadyView"];
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

/**
 * Answers are read as JSON: an operation that can also answer another media
 * type (the live event stream) is typed by its JSON answer, and the one call
 * that wants the stream asks for it with `parseAs: "stream"`.
 */
export const api = createClient<paths, `application/json${string}`>({ baseUrl: API_BASE });
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
  /** Seconds the daemon asked to wait before trying again (`Retry-After`, sent with 503). */
  readonly retryAfter: number | null;

  constructor(init: {
    status: number;
    code: string;
    message: string;
    details?: unknown;
    requestId?: string | null;
    retryAfter?: number | null;
  }) {
    super(init.message);
    this.name = "ApiError";
    this.status = init.status;
    this.code = init.code;
    this.details = init.details ?? null;
    this.requestId = init.requestId ?? null;
    this.retryAfter = init.retryAfter ?? null;
  }

  /** Builds the error from a non-2xx answer; `body` is what openapi-fetch parsed. */
  static fromResponse(response: Response, body: unknown): ApiError {
    const requestId = response.headers.get("x-request-id");
    const retryAfter = retryAfterSeconds(response.headers.get("retry-after"));
    if (isEnvelope(body)) {
      const { code, message, details } = body.error;
      return new ApiError({ status: response.status, code, message, details, requestId, retryAfter });
    }
    const text = typeof body === "string" && body.trim() !== "" ? body.trim().slice(0, 300) : response.statusText;
    return new ApiError({
      status: response.status,
      code: `HTTP_${response.status}`,
      message: text || "the daemon answered without an error envelope",
      requestId,
      retryAfter,
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

/** `Retry-After` as whole seconds; the HTTP-date form (never sent by the daemon) is ignored. */
function retryAfterSeconds(raw: string | null): number | null {
  if (raw === null || !/^\d+$/.test(raw.trim())) return null;
  return Number(raw.trim());
}

/** The execution an API error points at: limit errors and store outages carry `details.execution_id`. */
export function executionIdOf(error: ApiError): string | null {
  const details = error.details;
  if (typeof details !== "object" || details === null) return null;
  const id = (details as { execution_id?: unknown }).execution_id;
  return typeof id === "string" ? id : null;
}

/** Whether the daemon is up but its database is not: `STORE_UNAVAILABLE` (503) or `STORAGE_FULL` (507). */
export function isStoreOutage(error: ApiError): boolean {
  return error.code === "STORE_UNAVAILABLE" || error.code === "STORAGE_FULL";
}

/**
 * What to do about a store outage, in words, or null for any other error:
 * wait (for as long as `Retry-After` says) or free disk space, and, when the
 * error names an execution, that it ran and will be stored.
 */
export function storeOutageHint(error: ApiError): string | null {
  if (!isStoreOutage(error)) return null;
  const full = error.code === "STORAGE_FULL";
  const execution = executionIdOf(error);
  if (execution !== null) {
    const what = full ? "The disk holding the daemon's database is full." : "The daemon's database is not answering.";
    return (
      `${what} Execution ${execution.slice(0, 8)} ran: the daemon keeps its result in memory and stores it ` +
      "once the database takes writes again, so there is no need to run it again."
    );
  }
  if (full)
    return "The disk holding the daemon's database is full: free space on the daemon's machine, then try again.";
  const wait = error.retryAfter !== null ? `in ${error.retryAfter} s` : "in a moment";
  return `The daemon's database is not answering (down, overloaded or locked): try again ${wait}.`;
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

/** The nodes serving the daemon's database (`GET /nodes`): live ones first, then newest first. */
export function listNodes(): Promise<DaemonNode[]> {
  return unwrap(api.GET("/nodes"));
}

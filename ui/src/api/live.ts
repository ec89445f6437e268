/**
 * Follows one execution live: `GET /executions/{id}/events` as Server-Sent
 * Events, read from `fetch` (every call carries the tab's bearer token, which
 * `EventSource` cannot send), resuming a dropped connection from the last
 * event seen (`Last-Event-ID`) until the daemon sends `end`. Knows nothing of
 * React.
 */
import { api, ApiError, isStoreOutage, toApiError, unwrap, type Execution } from "./client";
import { readEvent, type AnyEvent } from "./events";
import { SseParser, type SseMessage } from "./sse";

/** Opens the event stream after `lastSeq`; throws an `ApiError` when the daemon refuses. */
export type OpenStream = (
  executionId: string,
  lastSeq: number,
  signal: AbortSignal,
) => Promise<ReadableStream<Uint8Array>>;

export interface FollowOptions {
  /** Events up to this `seq` are known already: the stream starts after it. Default 0. */
  afterSeq?: number;
  /** Stops following; the promise then rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Each new event, once, in `seq` order; one this UI cannot read arrives as an `UnknownEvent`. */
  onEvent: (event: AnyEvent) => void;
  /** The connection dropped and is opened again after a pause (attempt 1, 2, …). */
  onReconnect?: (attempt: number, cause: ApiError) => void;
  /** How the stream is opened; the daemon through the API client unless a test says otherwise. */
  open?: OpenStream;
  /** How a pause between attempts is waited. */
  sleep?: (ms: number, signal: AbortSignal | undefined) => Promise<void>;
  /** Nothing at all for this long (the daemon sends a heartbeat every 15 s): the connection is dead. */
  idleMs?: number;
  /** The pause before each consecutive attempt; a failure past the last one gives up. */
  backoffMs?: readonly number[];
}

/** Pauses before consecutive reconnects: about 16 s in all before giving up. */
export const BACKOFF_MS: readonly number[] = [250, 500, 1000, 2000, 4000, 8000];

/** Three heartbeats missed. */
export const IDLE_MS = 45_000;

/** The event stream through the API client, so that the token and a refused token are handled as for any call. */
export const openEventStream: OpenStream = async (executionId, lastSeq, signal) => {
  const headers: Record<string, string> = { accept: "text/event-stream" };
  if (lastSeq > 0) headers["last-event-id"] = String(lastSeq);
  const body = await unwrap(
    api.GET("/executions/{id}/events", {
      params: { path: { id: executionId } },
      headers,
      parseAs: "stream",
      signal,
    }),
  );
  if (!body) throw streamError("STREAM_CLOSED", "the daemon answered the event stream without a body");
  return body;
};

/**
 * Follows `executionId` until it ends and returns the execution as it ended.
 * Network failures, a stream that closes or goes silent before `end`, and
 * transient daemon errors (5xx, store outages) are retried from the last
 * event seen, so that no event is missed or repeated; other errors (an
 * unknown execution, a refused token) are thrown at once.
 */
export async function followExecution(executionId: string, options: FollowOptions): Promise<Execution> {
  const { signal, onEvent, open = openEventStream, sleep = pause, idleMs = IDLE_MS, backoffMs = BACKOFF_MS } = options;
  let lastSeq = options.afterSeq ?? 0;
  let failures = 0;
  for (;;) {
    throwIfAborted(signal);
    let alive = false; // whether this connection received anything at all
    let cause: ApiError;
    try {
      const ended = await readStream(executionId, lastSeq, {
        open,
        signal,
        idleMs,
        onActivity: () => (alive = true),
        onMessage: (message) => {
          const event = parseEvent(message, executionId);
          if (event !== null && event.seq > lastSeq) {
            lastSeq = event.seq;
            onEvent(event);
          }
        },
      });
      if (ended !== null) return ended;
      cause = streamError("STREAM_CLOSED", "the event stream closed before the execution ended");
    } catch (caught) {
      throwIfAborted(signal);
      cause = toApiError(caught);
      if (!isRetryable(cause)) throw cause;
    }
    failures = alive ? 1 : failures + 1;
    const wait = backoffMs[failures - 1];
    if (wait === undefined) throw cause;
    options.onReconnect?.(failures, cause);
    await sleep(wait, signal);
  }
}

/** Whether following again may help: the connection failed, not the request. */
export function isRetryable(error: ApiError): boolean {
  if (error.code === "NETWORK_ERROR" || error.code === "STREAM_CLOSED" || error.code === "STREAM_STALLED") return true;
  if (isStoreOutage(error)) return true;
  return error.status >= 500 || error.status === 408 || error.status === 429;
}

interface ReadOptions {
  open: OpenStream;
  signal: AbortSignal | undefined;
  idleMs: number;
  onActivity: () => void;
  onMessage: (message: SseMessage) => void;
}

/**
 * One connection: hands each message on, and returns the execution when
 * `end` comes, or null when the stream closes first. Throws the daemon's
 * `error` message as an `ApiError`, and `STREAM_STALLED` after `idleMs` of
 * silence.
 */
async function readStream(executionId: string, lastSeq: number, options: ReadOptions): Promise<Execution | null> {
  const { signal } = options;
  const connection = new AbortController();
  let stalled = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const watch = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      stalled = true;
      connection.abort();
    }, options.idleMs);
  };
  const stop = () => connection.abort();
  signal?.addEventListener("abort", stop);
  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  connection.signal.addEventListener("abort", () => void reader?.cancel().catch(() => undefined));
  const interrupted = () => {
    throwIfAborted(signal);
    return stalled
      ? streamError("STREAM_STALLED", `the event stream sent nothing for ${options.idleMs / 1000} s`)
      : null;
  };
  try {
    watch();
    let body: ReadableStream<Uint8Array>;
    try {
      body = await options.open(executionId, lastSeq, connection.signal);
    } catch (caught) {
      throw interrupted() ?? caught;
    }
    reader = body.getReader();
    if (connection.signal.aborted) void reader.cancel().catch(() => undefined);
    const decoder = new TextDecoder();
    const parser = new SseParser();
    const handle = (messages: SseMessage[]): Execution | null => {
      for (const message of messages) {
        if (message.event === "end") return parseEnd(message);
        if (message.event === "error") throw parseError(message);
        options.onMessage(message);
      }
      return null;
    };
    for (;;) {
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await reader.read();
      } catch (caught) {
        throw interrupted() ?? ApiError.network(caught);
      }
      const interruption = interrupted();
      if (interruption) throw interruption;
      if (chunk.done) return handle([...parser.push(decoder.decode()), ...parser.end()]);
      watch();
      options.onActivity();
      const ended = handle(parser.push(decoder.decode(chunk.value, { stream: true })));
      if (ended !== null) return ended;
    }
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", stop);
    // Frees the connection whatever happened (after `end` the daemon closes it too).
    connection.abort();
  }
}

function parseJson(message: SseMessage): unknown {
  try {
    return JSON.parse(message.data);
  } catch {
    throw streamError("CLIENT_ERROR", `the daemon sent a ${message.event} message that is not JSON`);
  }
}

function parseEvent(message: SseMessage, executionId: string): AnyEvent | null {
  if (message.event !== "event") return null; // another kind a newer daemon may send
  const event = readEvent(parseJson(message), executionId);
  if (event === null) throw streamError("CLIENT_ERROR", "the daemon sent an event without seq");
  return event;
}

function parseEnd(message: SseMessage): Execution {
  const execution = parseJson(message) as Partial<Execution> | null;
  if (typeof execution?.id !== "string" || typeof execution.status !== "string") {
    throw streamError("CLIENT_ERROR", "the daemon ended the event stream without the execution");
  }
  return execution as Execution;
}

function parseError(message: SseMessage): ApiError {
  const body = parseJson(message) as { error?: { code?: unknown; message?: unknown; details?: unknown } } | null;
  const error = body?.error;
  return new ApiError({
    status: 0,
    code: typeof error?.code === "string" ? error.code : "STREAM_ERROR",
    message: typeof error?.message === "string" ? error.message : "the event stream failed",
    details: error?.details,
  });
}

function streamError(code: string, message: string): ApiError {
  return new ApiError({ status: 0, code, message });
}

/** Why `signal` stopped the follower: its reason when that is an error, else an `AbortError`. */
function abortReason(signal: AbortSignal | undefined): Error {
  const reason: unknown = signal?.reason;
  return reason instanceof Error ? reason : new DOMException("the follower was stopped", "AbortError");
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortReason(signal);
}

function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", stop);
      resolve();
    }, ms);
    const stop = () => {
      clearTimeout(timer);
      reject(abortReason(signal));
    };
    signal?.addEventListener("abort", stop, { once: true });
  });
}

import { describe, expect, it } from "vitest";
import { ApiError, type Execution, type ExecutionEvent } from "./client";
import type { AnyEvent } from "./events";
import { followExecution, isRetryable, type OpenStream } from "./live";

const ID = "0b9e2c1a-0000-4000-8000-000000000001";

function event(seq: number, text = `line ${seq}`): ExecutionEvent {
  return { execution_id: ID, seq, ts: "2030-01-01T00:00:00Z", type: "console", payload: { level: "log", text } };
}

function execution(status: Execution["status"] = "ok"): Execution {
  return {
    id: ID,
    session_id: "s",
    kind: "repl",
    input: "x",
    args: {},
    env: {},
    status,
    started_at: "2030-01-01T00:00:00Z",
    metrics: { duration_ms: 1, event_count: 3, output_bytes: 10 },
  };
}

const sseEvent = (e: ExecutionEvent) => `event: event\nid: ${e.seq}\ndata: ${JSON.stringify(e)}\n\n`;
const sseEnd = (x: Execution) => `event: end\ndata: ${JSON.stringify(x)}\n\n`;
const sseError = (code: string) =>
  `event: error\ndata: ${JSON.stringify({ error: { code, message: `${code} happened`, details: {} } })}\n\n`;

/** A body that sends `chunks` and then closes, or stays open (until cancelled) with `open`. */
function body(chunks: string[], { open = false } = {}): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  return new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(encoder.encode(chunk));
      if (!open) controller.close();
    },
  });
}

/** Answers each connection with the next of `answers`, recording the `lastSeq` each was opened with. */
function script(answers: (ReadableStream<Uint8Array> | ApiError)[]) {
  const opened: number[] = [];
  const open: OpenStream = (_id, lastSeq) => {
    opened.push(lastSeq);
    const answer = answers.shift();
    if (answer === undefined) return Promise.reject(new Error("no more answers scripted"));
    return answer instanceof ApiError ? Promise.reject(answer) : Promise.resolve(answer);
  };
  return { open, opened };
}

const waits: number[] = [];
const noSleep = (ms: number) => {
  waits.push(ms);
  return Promise.resolve();
};

function follow(open: OpenStream, extra: Partial<Parameters<typeof followExecution>[1]> = {}) {
  const seen: number[] = [];
  const reconnects: string[] = [];
  waits.length = 0;
  const done = followExecution(ID, {
    open,
    sleep: noSleep,
    onEvent: (e) => seen.push(e.seq),
    onReconnect: (_attempt, cause) => reconnects.push(cause.code),
    ...extra,
  });
  return { done, seen, reconnects };
}

describe("followExecution", () => {
  it("hands on each event in order and returns the execution from `end`", async () => {
    const { open, opened } = script([
      body([sseEvent(event(1)), ": heartbeat\n\n", sseEvent(event(2)), sseEnd(execution())]),
    ]);
    const { done, seen, reconnects } = follow(open);
    await expect(done).resolves.toMatchObject({ id: ID, status: "ok" });
    expect(seen).toEqual([1, 2]);
    expect(opened).toEqual([0]);
    expect(reconnects).toEqual([]);
  });

  it("reconnects after a dropped stream from the last event seen, without a gap or a duplicate", async () => {
    const { open, opened } = script([
      body([sseEvent(event(1)), sseEvent(event(2))]),
      // A daemon that resends what the client has must not show it twice.
      body([sseEvent(event(2)), sseEvent(event(3)), sseEnd(execution())]),
    ]);
    const { done, seen, reconnects } = follow(open);
    await expect(done).resolves.toMatchObject({ status: "ok" });
    expect(seen).toEqual([1, 2, 3]);
    expect(opened).toEqual([0, 2]);
    expect(reconnects).toEqual(["STREAM_CLOSED"]);
  });

  it("starts after the events it is told are known already", async () => {
    const { open, opened } = script([body([sseEvent(event(5)), sseEnd(execution())])]);
    const { done, seen } = follow(open, { afterSeq: 4 });
    await done;
    expect(opened).toEqual([4]);
    expect(seen).toEqual([5]);
  });

  it("retries network failures and store outages with a growing pause", async () => {
    const { open, opened } = script([
      ApiError.network(new TypeError("fetch failed")),
      new ApiError({ status: 503, code: "STORE_UNAVAILABLE", message: "down" }),
      body([sseEvent(event(1)), sseError("STORE_UNAVAILABLE")]),
      body([sseEnd(execution("cancelled"))]),
    ]);
    const { done, seen, reconnects } = follow(open);
    await expect(done).resolves.toMatchObject({ status: "cancelled" });
    expect(seen).toEqual([1]);
    expect(opened).toEqual([0, 0, 0, 1]);
    expect(reconnects).toEqual(["NETWORK_ERROR", "STORE_UNAVAILABLE", "STORE_UNAVAILABLE"]);
    // The connection that brought an event starts the pauses over.
    expect(waits).toEqual([250, 500, 250]);
  });

  it("gives up when the daemon answers with a client error or an error message", async () => {
    const missing = new ApiError({ status: 404, code: "EXECUTION_NOT_FOUND", message: "no such execution" });
    const notFound = follow(script([missing]).open);
    await expect(notFound.done).rejects.toBe(missing);
    expect(notFound.reconnects).toEqual([]);

    const broken = follow(script([body([sseEvent(event(1)), sseError("INTERNAL")])]).open);
    await expect(broken.done).rejects.toMatchObject({ code: "INTERNAL", message: "INTERNAL happened" });
    expect(broken.seen).toEqual([1]);
  });

  it("gives up after its last pause when nothing comes through", async () => {
    const down = () => ApiError.network(new TypeError("connection refused"));
    const { open, opened } = script([down(), down(), down()]);
    const { done } = follow(open, { backoffMs: [10, 20] });
    await expect(done).rejects.toMatchObject({ code: "NETWORK_ERROR" });
    expect(opened).toHaveLength(3);
    expect(waits).toEqual([10, 20]);
  });

  it("reconnects a stream that goes silent for longer than the heartbeat allows", async () => {
    const { open, opened } = script([
      body([sseEvent(event(1))], { open: true }),
      body([sseEvent(event(2)), sseEnd(execution())]),
    ]);
    const { done, seen, reconnects } = follow(open, { idleMs: 30 });
    await expect(done).resolves.toMatchObject({ status: "ok" });
    expect(seen).toEqual([1, 2]);
    expect(opened).toEqual([0, 1]);
    expect(reconnects).toEqual(["STREAM_STALLED"]);
  });

  it("stops when its signal is aborted, cancelling the stream", async () => {
    let cancelled = false;
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(sseEvent(event(1))));
      },
      cancel() {
        cancelled = true;
      },
    });
    const controller = new AbortController();
    const { done, seen } = follow(script([stream]).open, {
      signal: controller.signal,
      onEvent: (e) => {
        seen.push(e.seq);
        controller.abort();
      },
    });
    await expect(done).rejects.toMatchObject({ name: "AbortError" });
    expect(seen).toEqual([1]);
    expect(cancelled).toBe(true);
  });

  it("hands on an event newer than this UI as unknown, and carries on", async () => {
    const raw = (data: unknown) => `event: event\ndata: ${JSON.stringify(data)}\n\n`;
    const newer = { execution_id: ID, seq: 2, ts: "2030-01-01T00:00:00Z", type: "trace", payload: { depth: 3 } };
    const broken = { execution_id: ID, seq: 3, ts: "2030-01-01T00:00:00Z", type: "console", payload: "text" };
    const { open } = script([
      body([sseEvent(event(1)), raw(newer), raw(broken), sseEvent(event(4)), sseEnd(execution())]),
    ]);
    const seen: AnyEvent[] = [];
    await followExecution(ID, { open, onEvent: (e) => seen.push(e) });
    expect(seen.map((e) => e.type)).toEqual(["console", "unknown", "unknown", "console"]);
    expect(seen[1]).toEqual({ ...newer, type: "unknown", sentType: "trace" });
    expect(seen[2]).toMatchObject({ seq: 3, sentType: "console", payload: "text" });
  });

  it("gives up on an event without a seq to place it by", async () => {
    const noSeq = `event: event\ndata: ${JSON.stringify({ type: "console", payload: { level: "log", text: "x" } })}\n\n`;
    const { done, reconnects } = follow(script([body([noSeq, sseEnd(execution())])]).open);
    await expect(done).rejects.toMatchObject({ code: "CLIENT_ERROR" });
    expect(reconnects).toEqual([]);
  });

  it("reads text cut anywhere, even inside a character", async () => {
    const bytes = new TextEncoder().encode(sseEvent(event(1, "héllo ✓")) + sseEnd(execution()));
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < bytes.length; i += 3) controller.enqueue(bytes.slice(i, i + 3));
        controller.close();
      },
    });
    const texts: unknown[] = [];
    await followExecution(ID, { open: script([stream]).open, onEvent: (e) => texts.push(e.payload) });
    expect(texts).toEqual([{ level: "log", text: "héllo ✓" }]);
  });
});

describe("isRetryable", () => {
  it("retries the connection's failures, not the request's", () => {
    const error = (status: number, code: string) => new ApiError({ status, code, message: code });
    expect(isRetryable(error(0, "NETWORK_ERROR"))).toBe(true);
    expect(isRetryable(error(502, "HTTP_502"))).toBe(true);
    expect(isRetryable(error(507, "STORAGE_FULL"))).toBe(true);
    expect(isRetryable(error(401, "UNAUTHENTICATED"))).toBe(false);
    expect(isRetryable(error(404, "EXECUTION_NOT_FOUND"))).toBe(false);
    expect(isRetryable(error(0, "CLIENT_ERROR"))).toBe(false);
  });
});

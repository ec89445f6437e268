import { describe, expect, it } from "vitest";
import { ApiError, type Execution, type ExecutionEvent } from "../../api/client";
import {
  accepted,
  addPending,
  appendEvent,
  busyEntry,
  cleared,
  emptyTranscript,
  ended,
  lastSeq,
  loaded,
  mergeExecutions,
  refused,
  retried,
  stateAfterStop,
  streamFailed,
  type Transcript,
} from "./transcript";

function execution(n: number, patch: Partial<Execution> = {}): Execution {
  return {
    id: `exec-${n}`,
    session_id: "s",
    kind: "repl",
    input: `snippet ${n}`,
    args: {},
    env: {},
    status: "ok",
    started_at: `2030-01-01T00:00:${String(n).padStart(2, "0")}Z`,
    metrics: { duration_ms: 1, event_count: 1, output_bytes: 1 },
    ...patch,
  };
}

/** As the daemon lists them: newest first. */
const list = (...executions: Execution[]) => [...executions].reverse();

function event(executionId: string, seq: number): ExecutionEvent {
  return {
    execution_id: executionId,
    seq,
    ts: "2030-01-01T00:00:00Z",
    type: "console",
    payload: { level: "log", text: `${seq}` },
  };
}

const ids = (transcript: Transcript) => transcript.entries.map((entry) => entry.executionId ?? entry.key);

describe("the transcript a console opens with", () => {
  it("shows the newest executions oldest first, bounded", () => {
    const all = Array.from({ length: 25 }, (_, i) => execution(i + 1));
    const transcript = mergeExecutions(emptyTranscript, list(...all), 20);
    expect(ids(transcript)).toEqual(all.slice(5).map((e) => e.id));
    expect(transcript.entries.every((entry) => entry.state === "loading")).toBe(true);
  });

  it("follows a running execution and reads the ended ones", () => {
    const transcript = mergeExecutions(
      emptyTranscript,
      list(execution(1), execution(2, { kind: "run_file", path: "a.js", status: "running" })),
    );
    expect(transcript.entries.map((e) => [e.state, e.kind, e.input])).toEqual([
      ["loading", "repl", "snippet 1"],
      ["running", "run_file", "a.js"],
    ]);
    expect(busyEntry(transcript)?.executionId).toBe("exec-2");
  });

  it("takes in only executions it does not show yet, in start order", () => {
    let transcript = mergeExecutions(emptyTranscript, list(execution(1), execution(3)));
    transcript = loaded(transcript, "exec-1", [event("exec-1", 1)]);
    const again = mergeExecutions(transcript, list(execution(1), execution(3)));
    expect(again).toBe(transcript);
    const more = mergeExecutions(transcript, list(execution(1), execution(2), execution(3), execution(4)));
    expect(ids(more)).toEqual(["exec-1", "exec-2", "exec-3", "exec-4"]);
    expect(more.entries[0]?.events).toHaveLength(1);
  });

  it("reads again an execution whose stream failed once the list says it has ended", () => {
    let transcript = mergeExecutions(emptyTranscript, list(execution(1, { status: "running" })));
    transcript = streamFailed(transcript, "exec-1", ApiError.network("down"));
    expect(transcript.entries[0]).toMatchObject({ state: "running", error: { code: "NETWORK_ERROR" } });
    transcript = mergeExecutions(transcript, list(execution(1, { status: "cancelled" })));
    expect(transcript.entries[0]).toMatchObject({ state: "loading", error: undefined });
    expect(transcript.entries[0]?.execution?.status).toBe("cancelled");
  });
});

describe("a run from the console", () => {
  const start = (transcript: Transcript, key: string, at = "2030-01-01T00:00:30Z") =>
    addPending(transcript, { key, kind: "repl", input: "1 + 1", at });

  it("is pending, then the running execution the daemon answered", () => {
    let transcript = start(mergeExecutions(emptyTranscript, list(execution(1))), "local-1");
    expect(busyEntry(transcript)?.state).toBe("pending");
    const running = execution(31, { status: "running", started_at: "2030-01-01T00:00:31Z" });
    transcript = accepted(transcript, "local-1", running);
    expect(transcript.entries[1]).toMatchObject({ key: "local-1", executionId: "exec-31", state: "running" });
  });

  it("is never placed before what is shown, whatever the clocks say", () => {
    const transcript = start(mergeExecutions(emptyTranscript, list(execution(40))), "local-1", "2029-12-31T23:00:00Z");
    expect(ids(transcript)).toEqual(["exec-40", "local-1"]);
  });

  it("is shown once when the list brought its execution in before the answer", () => {
    const running = execution(31, { status: "running" });
    let transcript = start(emptyTranscript, "local-1");
    transcript = mergeExecutions(transcript, list(running));
    transcript = accepted(transcript, "local-1", running);
    expect(ids(transcript)).toEqual(["exec-31"]);
  });

  it("streams events in once each, then ends", () => {
    let transcript = accepted(start(emptyTranscript, "local-1"), "local-1", execution(31, { status: "running" }));
    for (const seq of [1, 2, 2, 1, 3]) transcript = appendEvent(transcript, "exec-31", event("exec-31", seq));
    const entry = transcript.entries[0];
    expect(entry?.events.map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(entry && lastSeq(entry)).toBe(3);
    transcript = ended(transcript, execution(31, { status: "ok" }));
    expect(transcript.entries[0]).toMatchObject({ state: "done", execution: { status: "ok" } });
    expect(busyEntry(transcript)).toBeUndefined();
  });

  it("reads the stored events when a cancel answers while no stream runs", () => {
    let transcript = accepted(start(emptyTranscript, "local-1"), "local-1", execution(31, { status: "running" }));
    transcript = ended(transcript, execution(31, { status: "cancelled" }), false);
    expect(transcript.entries[0]?.state).toBe("loading");
  });

  it("is failed when the daemon refuses it, or reads the execution a limit error names", () => {
    const invalid = new ApiError({ status: 422, code: "INVALID_PATH", message: "no" });
    expect(refused(start(emptyTranscript, "local-1"), "local-1", invalid, null).entries[0]).toMatchObject({
      state: "failed",
      error: invalid,
      executionId: null,
    });
    const limit = new ApiError({ status: 422, code: "EXECUTION_TIMEOUT", message: "slow" });
    expect(refused(start(emptyTranscript, "local-1"), "local-1", limit, "exec-9").entries[0]).toMatchObject({
      state: "loading",
      executionId: "exec-9",
    });
  });

  it("can be followed or read again after a failure", () => {
    let transcript = mergeExecutions(emptyTranscript, list(execution(1), execution(2, { status: "running" })));
    transcript = streamFailed(transcript, "exec-1", ApiError.network("down"));
    transcript = streamFailed(transcript, "exec-2", ApiError.network("down"));
    expect(transcript.entries.map((e) => e.state)).toEqual(["done", "running"]);
    transcript = retried(retried(transcript, "exec-1"), "exec-2");
    expect(transcript.entries.map((e) => [e.state, e.error])).toEqual([
      ["loading", undefined],
      ["running", undefined],
    ]);
  });
});

describe("clearing the console", () => {
  it("keeps a run under way and leaves out what started before", () => {
    const executions = list(execution(1), execution(2), execution(3, { status: "running" }));
    let transcript = mergeExecutions(emptyTranscript, executions);
    transcript = cleared(transcript, executions);
    expect(ids(transcript)).toEqual(["exec-3"]);
    expect(mergeExecutions(transcript, executions)).toBe(transcript);
    const later = mergeExecutions(transcript, list(execution(1), execution(2), execution(3), execution(4)));
    expect(ids(later)).toEqual(["exec-3", "exec-4"]);
  });
});

describe("stateAfterStop", () => {
  it("says what a stop left of the session", () => {
    const stopped = (details: Record<string, unknown>) => ({
      error: { code: "CANCELLED", message: "cancelled", details },
    });
    expect(stateAfterStop(stopped({ rolled_back: true, runtime_lost: false }))).toBe(
      "session rolled back to its state before this execution",
    );
    expect(stateAfterStop(stopped({ rolled_back: false, runtime_lost: true }))).toMatch(/runtime was lost/);
    expect(stateAfterStop(stopped({ rolled_back: false, runtime_lost: false }))).toMatch(/keeps what/);
    expect(stateAfterStop({ error: { code: "EXCEPTION", message: "boom", details: {} } })).toBeNull();
    expect(stateAfterStop({ error: undefined })).toBeNull();
  });
});

/**
 * What the console shows, as data: one entry per execution of the session
 * (the recent ones the daemon lists, then each run from here or elsewhere),
 * oldest first, plus runs refused before they became executions. Pure
 * functions over an immutable state; `useTranscript` does the calls.
 */
import type { ApiError, Execution, ExecutionKind } from "../../api/client";
import type { AnyEvent } from "../../api/events";

/** How many of the session's earlier executions the console shows when it opens. */
export const TRANSCRIPT_LIMIT = 20;

/**
 * - `pending`: asked the daemon to run it, no answer yet;
 * - `running`: the execution runs, its events stream in;
 * - `loading`: it has ended, its stored events are being read;
 * - `done`: it has ended and all its events are here;
 * - `failed`: the daemon refused to run it (`error`), so there is no execution.
 */
export type EntryState = "pending" | "running" | "loading" | "done" | "failed";

export interface TranscriptEntry {
  /** Stable across the entry's life: a local key until the daemon names the execution. */
  key: string;
  kind: ExecutionKind;
  /** The snippet or the file path. */
  input: string;
  executionId: string | null;
  /** The daemon's `started_at` (until it answers, when it was asked): the transcript's order. */
  startedAt: string;
  state: EntryState;
  /** In `seq` order, each once. */
  events: AnyEvent[];
  /** The execution as last seen: running, then as it ended. */
  execution?: Execution;
  /** Why the run was refused, or why its events could not be read or followed. */
  error?: ApiError;
  /** A cancel was asked and has not been answered yet. */
  cancelling?: boolean;
  /** Why the cancel failed. */
  cancelError?: ApiError;
}

export interface Transcript {
  entries: TranscriptEntry[];
  /** Executions that started at or before this (`started_at`) were cleared from view. */
  clearedAt: string | null;
}

export const emptyTranscript: Transcript = { entries: [], clearedAt: null };

const saved = new Map<string, Transcript>();
const listeners = new Set<() => void>();
let nextKey = 1;

/**
 * Each session's console as this tab last showed it, so navigating away and
 * back loses nothing, and a call that ends after its page was left still
 * lands. Its `subscribe` and `get` fit React's `useSyncExternalStore`.
 */
export const transcriptStore = {
  get: (sessionId: string): Transcript => saved.get(sessionId) ?? emptyTranscript,
  update: (sessionId: string, change: (transcript: Transcript) => Transcript): void => {
    const current = transcriptStore.get(sessionId);
    const next = change(current);
    if (next === current) return;
    saved.set(sessionId, next);
    for (const listener of [...listeners]) listener();
  },
  subscribe: (listener: () => void): (() => void) => {
    listeners.add(listener);
    return () => listeners.delete(listener);
  },
};

export function newEntryKey(): string {
  return `local-${nextKey++}`;
}

function byStart(a: TranscriptEntry, b: TranscriptEntry): number {
  return a.startedAt < b.startedAt ? -1 : a.startedAt > b.startedAt ? 1 : 0;
}

function inputOf(execution: Execution): string {
  return execution.kind === "repl" ? (execution.input ?? "") : (execution.path ?? execution.input ?? "");
}

function entryOf(execution: Execution): TranscriptEntry {
  return {
    key: execution.id,
    kind: execution.kind,
    input: inputOf(execution),
    executionId: execution.id,
    startedAt: execution.started_at,
    state: execution.status === "running" ? "running" : "loading",
    events: [],
    execution,
  };
}

function updateEntry(
  transcript: Transcript,
  found: (entry: TranscriptEntry) => boolean,
  patch: (entry: TranscriptEntry) => TranscriptEntry,
): Transcript {
  const index = transcript.entries.findIndex(found);
  const entry = transcript.entries[index];
  if (entry === undefined) return transcript;
  const next = patch(entry);
  if (next === entry) return transcript;
  const entries = [...transcript.entries];
  entries[index] = next;
  return { ...transcript, entries: entries.sort(byStart) };
}

const byExecution = (id: string) => (entry: TranscriptEntry) => entry.executionId === id;
const byKey = (key: string) => (entry: TranscriptEntry) => entry.key === key;

/**
 * Takes in the session's executions (newest first, as the daemon lists
 * them): the newest `limit` that started after the last clear and are not
 * shown yet become entries, `running` or `loading` by their status. An entry
 * whose stream failed while the list says its execution has ended is read
 * again.
 */
export function mergeExecutions(
  transcript: Transcript,
  newestFirst: readonly Execution[],
  limit = TRANSCRIPT_LIMIT,
): Transcript {
  const known = new Map(transcript.entries.map((entry) => [entry.executionId, entry]));
  const added: TranscriptEntry[] = [];
  let changed = false;
  const entries = transcript.entries.map((entry) => {
    const listed = entry.executionId === null ? undefined : newestFirst.find((e) => e.id === entry.executionId);
    if (listed && entry.state === "running" && entry.error && listed.status !== "running") {
      changed = true;
      return { ...entry, state: "loading" as const, error: undefined, execution: listed };
    }
    return entry;
  });
  for (const execution of newestFirst.slice(0, limit)) {
    if (known.has(execution.id)) continue;
    if (transcript.clearedAt !== null && execution.started_at <= transcript.clearedAt) continue;
    added.push(entryOf(execution));
  }
  if (added.length === 0 && !changed) return transcript;
  return { ...transcript, entries: [...entries, ...added].sort(byStart) };
}

/** A run asked from this console, shown at once. */
export function addPending(
  transcript: Transcript,
  entry: { key: string; kind: ExecutionKind; input: string; at: string },
): Transcript {
  // Never before what is shown already, whatever this machine's clock says against the daemon's.
  const last = transcript.entries[transcript.entries.length - 1]?.startedAt;
  const pending: TranscriptEntry = {
    key: entry.key,
    kind: entry.kind,
    input: entry.input,
    executionId: null,
    startedAt: last !== undefined && last > entry.at ? last : entry.at,
    state: "pending",
    events: [],
  };
  return { ...transcript, entries: [...transcript.entries, pending].sort(byStart) };
}

/**
 * The daemon took the run: the entry now is that execution. When the list
 * brought the execution in first, that entry stays and this one goes.
 */
export function accepted(transcript: Transcript, key: string, execution: Execution): Transcript {
  if (transcript.entries.some(byExecution(execution.id))) {
    return { ...transcript, entries: transcript.entries.filter((entry) => entry.key !== key) };
  }
  return updateEntry(transcript, byKey(key), (entry) => ({
    ...entry,
    executionId: execution.id,
    startedAt: execution.started_at,
    state: execution.status === "running" ? "running" : "loading",
    execution,
  }));
}

/**
 * The daemon refused the run. When the error names a stored execution (a
 * limit that stopped it), its events are read (`loading`), with the error
 * kept beside them.
 */
export function refused(transcript: Transcript, key: string, error: ApiError, executionId: string | null): Transcript {
  return updateEntry(transcript, byKey(key), (entry) =>
    executionId !== null && !transcript.entries.some(byExecution(executionId))
      ? { ...entry, state: "loading", error, executionId }
      : { ...entry, state: "failed", error },
  );
}

/** A live event; one already shown (by `seq`) is ignored. */
export function appendEvent(transcript: Transcript, executionId: string, event: AnyEvent): Transcript {
  return updateEntry(transcript, byExecution(executionId), (entry) => {
    const last = entry.events[entry.events.length - 1];
    if (last !== undefined && event.seq <= last.seq) return entry;
    return { ...entry, events: [...entry.events, event] };
  });
}

/**
 * The execution ended: its stream's `end` (every event is here: `done`), or
 * the answer to a cancel while no stream runs (its events are read again:
 * `loading`).
 */
export function ended(transcript: Transcript, execution: Execution, complete = true): Transcript {
  return updateEntry(transcript, byExecution(execution.id), (entry) => ({
    ...entry,
    state: complete && entry.state !== "loading" ? "done" : "loading",
    execution,
    error: complete ? entry.error : undefined,
    cancelling: false,
  }));
}

/** An ended execution's stored events were read. */
export function loaded(transcript: Transcript, executionId: string, events: AnyEvent[], execution?: Execution) {
  return updateEntry(transcript, byExecution(executionId), (entry) => ({
    ...entry,
    state: "done",
    events: [...events].sort((a, b) => a.seq - b.seq),
    execution: execution ?? entry.execution,
  }));
}

/**
 * Following or reading the execution failed: the entry keeps what it has
 * and shows why (a running one stays `running`, to be followed again).
 */
export function streamFailed(transcript: Transcript, executionId: string, error: ApiError): Transcript {
  return updateEntry(transcript, byExecution(executionId), (entry) => ({
    ...entry,
    state: entry.state === "loading" ? "done" : entry.state,
    error,
  }));
}

export function cancelling(transcript: Transcript, executionId: string): Transcript {
  return updateEntry(transcript, byExecution(executionId), (entry) => ({
    ...entry,
    cancelling: true,
    cancelError: undefined,
  }));
}

/** Try again what failed: follow a running execution, or read an ended one's events. */
export function retried(transcript: Transcript, executionId: string): Transcript {
  return updateEntry(transcript, byExecution(executionId), (entry) => ({
    ...entry,
    state: entry.state === "running" ? "running" : "loading",
    error: undefined,
  }));
}

export function cancelFailed(transcript: Transcript, executionId: string, error: ApiError | undefined): Transcript {
  return updateEntry(transcript, byExecution(executionId), (entry) => ({
    ...entry,
    cancelling: false,
    cancelError: error,
  }));
}

/**
 * Clears the console: ended and refused entries go, and executions that
 * started until now stay out; a run still under way stays.
 */
export function cleared(transcript: Transcript, newestFirst: readonly Execution[]): Transcript {
  const busy = (entry: TranscriptEntry) => entry.state === "pending" || entry.state === "running";
  let clearedAt = transcript.clearedAt;
  const later = (at: string) => {
    if (clearedAt === null || at > clearedAt) clearedAt = at;
  };
  for (const entry of transcript.entries) if (!busy(entry) && entry.executionId !== null) later(entry.startedAt);
  for (const execution of newestFirst) if (execution.status !== "running") later(execution.started_at);
  return { entries: transcript.entries.filter(busy), clearedAt };
}

/** The entry of a run under way (at most one per session), if any. */
export function busyEntry(transcript: Transcript): TranscriptEntry | undefined {
  return transcript.entries.find((entry) => entry.state === "pending" || entry.state === "running");
}

/** The `seq` of the last event an entry holds, 0 for none: where following resumes. */
export function lastSeq(entry: TranscriptEntry): number {
  return entry.events[entry.events.length - 1]?.seq ?? 0;
}

/**
 * What a stopped execution left of the session, in words, from its error's
 * `details` (`rolled_back`, `runtime_lost`); null when it was not stopped.
 */
export function stateAfterStop(execution: Pick<Execution, "error">): string | null {
  const details = execution.error?.details;
  if (!details) return null;
  if (details.rolled_back === true) return "session rolled back to its state before this execution";
  if (details.runtime_lost === true) return "the session's runtime was lost with its state";
  if (details.rolled_back === false) return "the session keeps what this execution did before it stopped";
  return null;
}

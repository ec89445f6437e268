/**
 * What the console shows: one entry per run from this browser, kept per
 * session while the app is open so navigating away and back loses nothing.
 */
import type { ApiError, ExecutionWithEvents } from "../../api/client";

export interface TranscriptEntry {
  key: number;
  kind: "repl" | "run_file";
  /** The snippet or the file path, shown while the run is pending. */
  input: string;
  state: "pending" | "done" | "failed";
  execution?: ExecutionWithEvents;
  error?: ApiError;
}

const transcripts = new Map<string, TranscriptEntry[]>();
let nextKey = 1;

export function loadTranscript(sessionId: string): TranscriptEntry[] {
  return transcripts.get(sessionId) ?? [];
}

export function storeTranscript(sessionId: string, entries: TranscriptEntry[]): void {
  transcripts.set(sessionId, entries);
}

export function newEntryKey(): number {
  return nextKey++;
}

/**
 * REPL input history, shell style: Up walks back through earlier inputs,
 * Down walks forward and finally returns to the draft being typed.
 */

export interface History {
  /** Oldest first. */
  entries: string[];
  /** Index into `entries` while browsing; `null` when editing the draft. */
  cursor: number | null;
  /** What was in the editor before browsing started. */
  draft: string;
}

export const MAX_HISTORY = 200;

export function emptyHistory(entries: string[] = []): History {
  return { entries: entries.slice(-MAX_HISTORY), cursor: null, draft: "" };
}

/** Records a submitted input (skipping blanks and repeats of the last one). */
export function record(history: History, input: string): History {
  const trimmed = input.trim();
  if (trimmed === "") return { ...history, cursor: null, draft: "" };
  const last = history.entries[history.entries.length - 1];
  const entries = last === input ? history.entries : [...history.entries, input].slice(-MAX_HISTORY);
  return { entries, cursor: null, draft: "" };
}

/** Up: returns the new state and the text to show, or null when there is nothing older. */
export function back(history: History, current: string): { history: History; text: string } | null {
  if (history.entries.length === 0) return null;
  if (history.cursor === null) {
    const cursor = history.entries.length - 1;
    return { history: { ...history, cursor, draft: current }, text: history.entries[cursor] ?? "" };
  }
  if (history.cursor === 0) return null;
  const cursor = history.cursor - 1;
  return { history: { ...history, cursor }, text: history.entries[cursor] ?? "" };
}

/** Down: returns the new state and the text to show, or null when already at the draft. */
export function forward(history: History): { history: History; text: string } | null {
  if (history.cursor === null) return null;
  if (history.cursor >= history.entries.length - 1) {
    return { history: { ...history, cursor: null }, text: history.draft };
  }
  const cursor = history.cursor + 1;
  return { history: { ...history, cursor }, text: history.entries[cursor] ?? "" };
}

const STORAGE_KEY = "vm-system:repl-history";

export function loadHistory(): string[] {
  try {
    const raw = window.localStorage.getItem(STORAGE_KEY);
    const parsed: unknown = raw ? JSON.parse(raw) : [];
    return Array.isArray(parsed) ? parsed.filter((x): x is string => typeof x === "string") : [];
  } catch {
    return [];
  }
}

export function saveHistory(entries: string[]): void {
  try {
    window.localStorage.setItem(STORAGE_KEY, JSON.stringify(entries.slice(-MAX_HISTORY)));
  } catch {
    // Private mode or a full quota: history stays in memory only.
  }
}

/** The session console: a transcript of runs, the REPL editor and the run-file form. */
import { lazy, Suspense, useEffect, useRef, useState } from "react";
import { useQueryClient } from "@tanstack/react-query";
import { Link } from "react-router";
import {
  api,
  executionIdOf,
  isStoreOutage,
  toApiError,
  unwrap,
  type ExecutionWithEvents,
  type RunFileBody,
} from "../../api/client";
import { decodeExecutionError } from "../../api/events";
import { keys } from "../../api/queries";
import { Kbd, MOD_KEY, StatusBadge } from "../../components/bits";
import type { CodeEditorHandle } from "../../components/CodeEditor";
import { EventItem } from "../../components/EventItem";
import { ErrorPanel } from "../../components/feedback";
import { formatBytes, formatDuration } from "../../lib/format";
import { back, emptyHistory, forward, loadHistory, record, saveHistory, type History } from "../../lib/history";
import { loadTranscript, newEntryKey, storeTranscript, type TranscriptEntry } from "./transcript";

// CodeMirror is most of the bundle: load it with the first console, not the first page.
const CodeEditor = lazy(() => import("../../components/CodeEditor").then((module) => ({ default: module.CodeEditor })));

function ExecutionFooter({ execution }: { execution: ExecutionWithEvents }) {
  const error = decodeExecutionError(execution.error);
  return (
    <div className="entry-foot">
      <StatusBadge status={execution.status} />
      {error ? (
        <span className="entry-error" data-testid="execution-error">
          <span className="mono strong">{error.code}</span> {error.message}
        </span>
      ) : null}
      <span className="muted small">
        {formatDuration(execution.metrics.duration_ms)} · {execution.metrics.event_count} events ·{" "}
        {formatBytes(execution.metrics.output_bytes)}
      </span>
      <Link className="small" to={`/executions/${execution.id}`}>
        event log →
      </Link>
    </div>
  );
}

function Entry({ entry }: { entry: TranscriptEntry }) {
  const events = entry.execution?.events ?? [];
  const echoed = events.some((event) => event.type === "input_echo");
  return (
    <div className={`entry entry-${entry.state}`} data-testid="transcript-entry" data-state={entry.state}>
      {!echoed ? (
        <div className="event event-input">
          <span className="prompt" aria-hidden="true">
            {entry.kind === "run_file" ? "▶" : "›"}
          </span>
          <pre>{entry.kind === "run_file" ? `run ${entry.input}` : entry.input}</pre>
        </div>
      ) : null}
      {events.map((event) => (
        <EventItem key={event.seq} event={event} />
      ))}
      {entry.state === "pending" ? (
        <div className="entry-foot">
          <span className="spinner small" aria-hidden="true" /> <span className="muted small">running…</span>
        </div>
      ) : null}
      {entry.error ? (
        <>
          <ErrorPanel error={entry.error} compact />
          {executionIdOf(entry.error) ? (
            <Link className="small" to={`/executions/${executionIdOf(entry.error)}`}>
              {isStoreOutage(entry.error)
                ? "open the execution (stored once the database is back) →"
                : "open the stored execution and its events →"}
            </Link>
          ) : null}
        </>
      ) : null}
      {entry.execution && !entry.error ? <ExecutionFooter execution={entry.execution} /> : null}
    </div>
  );
}

function parseArgs(text: string): Record<string, unknown> | undefined {
  if (text.trim() === "") return undefined;
  const parsed: unknown = JSON.parse(text);
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new Error('args must be a JSON object, e.g. {"limit": 10}');
  }
  return parsed as Record<string, unknown>;
}

function parseEnv(text: string): Record<string, string> | undefined {
  const lines = text
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"));
  if (lines.length === 0) return undefined;
  const env: Record<string, string> = {};
  for (const line of lines) {
    const eq = line.indexOf("=");
    if (eq <= 0) throw new Error(`env line "${line}" is not KEY=VALUE`);
    env[line.slice(0, eq).trim()] = line.slice(eq + 1);
  }
  return env;
}

export function SessionConsole({ sessionId, ready }: { sessionId: string; ready: boolean }) {
  const [entries, setEntries] = useState<TranscriptEntry[]>(() => loadTranscript(sessionId));
  const [mode, setMode] = useState<"repl" | "run_file">("repl");
  const [busy, setBusy] = useState(false);
  const [source, setSource] = useState("");
  const [path, setPath] = useState("");
  const [args, setArgs] = useState("");
  const [env, setEnv] = useState("");
  const [formError, setFormError] = useState<string | null>(null);
  const history = useRef<History>(emptyHistory(loadHistory()));
  const editor = useRef<CodeEditorHandle | null>(null);
  const scroller = useRef<HTMLDivElement>(null);
  const queryClient = useQueryClient();

  useEffect(() => storeTranscript(sessionId, entries), [sessionId, entries]);
  useEffect(() => {
    const element = scroller.current;
    if (element) element.scrollTop = element.scrollHeight;
  }, [entries]);

  const update = (key: number, patch: Partial<TranscriptEntry>) =>
    setEntries((current) => current.map((entry) => (entry.key === key ? { ...entry, ...patch } : entry)));

  const run = async (kind: "repl" | "run_file", input: string, call: () => Promise<ExecutionWithEvents>) => {
    const key = newEntryKey();
    setBusy(true);
    setEntries((current) => [...current, { key, kind, input, state: "pending" }]);
    try {
      const execution = await call();
      update(key, { state: "done", execution });
    } catch (caught) {
      const error = toApiError(caught);
      update(key, { state: "failed", error });
      const executionId = executionIdOf(error);
      // After a store outage the execution is not stored yet: nothing to read back.
      if (executionId && !isStoreOutage(error)) {
        // A limit stopped it: the execution is stored with its events up to the limit.
        try {
          const [execution, events] = await Promise.all([
            unwrap(api.GET("/executions/{id}", { params: { path: { id: executionId } } })),
            unwrap(api.GET("/executions/{id}/events", { params: { path: { id: executionId } } })),
          ]);
          update(key, { execution: { ...execution, events } });
        } catch {
          // The error panel already says what happened.
        }
      }
    } finally {
      setBusy(false);
      void queryClient.invalidateQueries({ queryKey: keys.executions(sessionId) });
      void queryClient.invalidateQueries({ queryKey: keys.session(sessionId) });
      void queryClient.invalidateQueries({ queryKey: keys.sessions });
    }
  };

  const submitRepl = (text: string) => {
    if (busy || text.trim() === "") return;
    history.current = record(history.current, text);
    saveHistory(history.current.entries);
    editor.current?.setText("");
    void run("repl", text, () =>
      unwrap(api.POST("/executions/repl", { body: { session_id: sessionId, input: text } })),
    );
  };

  const submitFile = () => {
    if (busy || path.trim() === "") return;
    let body: RunFileBody;
    try {
      body = { session_id: sessionId, path: path.trim(), args: parseArgs(args), env: parseEnv(env) };
    } catch (error) {
      setFormError((error as Error).message);
      return;
    }
    setFormError(null);
    void run("run_file", path.trim(), () => unwrap(api.POST("/executions/run-file", { body })));
  };

  return (
    <section className="card console" data-testid="console">
      <div className="console-head">
        <div className="tabs" role="tablist">
          <button
            type="button"
            role="tab"
            aria-selected={mode === "repl"}
            className={mode === "repl" ? "active" : ""}
            onClick={() => setMode("repl")}
          >
            REPL
          </button>
          <button
            type="button"
            role="tab"
            aria-selected={mode === "run_file"}
            className={mode === "run_file" ? "active" : ""}
            onClick={() => setMode("run_file")}
          >
            Run file
          </button>
        </div>
        {entries.length > 0 ? (
          <button type="button" className="link-button small" onClick={() => setEntries([])}>
            Clear console
          </button>
        ) : null}
      </div>
      <div className="transcript" ref={scroller} data-testid="transcript" aria-live="polite">
        {entries.length === 0 ? (
          <div className="transcript-empty muted">
            {ready
              ? "Results appear here. Variables persist between runs: try `let x = 20`, then `x * 2 + 2`."
              : "This session is not ready, so it cannot run code. Its execution history stays readable."}
          </div>
        ) : (
          entries.map((entry) => <Entry key={entry.key} entry={entry} />)
        )}
      </div>
      {mode === "repl" ? (
        <div className="repl-input">
          <Suspense fallback={<div className="code-editor code-editor-loading muted small">Loading the editor…</div>}>
            <CodeEditor
              handleRef={editor}
              ariaLabel="JavaScript input"
              placeholder={ready ? "JavaScript…" : "session not ready"}
              onChange={setSource}
              onSubmit={submitRepl}
              onHistoryBack={(current) => {
                const step = back(history.current, current);
                if (!step) return null;
                history.current = step.history;
                return step.text;
              }}
              onHistoryForward={() => {
                const step = forward(history.current);
                if (!step) return null;
                history.current = step.history;
                return step.text;
              }}
            />
          </Suspense>
          <div className="repl-actions">
            <span className="muted small">
              <Kbd>{MOD_KEY}</Kbd>+<Kbd>Enter</Kbd> runs · <Kbd>↑</Kbd>
              <Kbd>↓</Kbd> history
            </span>
            <button
              type="button"
              className="button primary"
              disabled={busy || !ready || source.trim() === ""}
              onClick={() => submitRepl(source)}
            >
              {busy ? "Running…" : "Run"}
            </button>
          </div>
        </div>
      ) : (
        <form
          className="form run-file-form"
          onSubmit={(event) => {
            event.preventDefault();
            submitFile();
          }}
        >
          <label className="field">
            <span>Path (relative to the worktree)</span>
            <input
              name="run-file-path"
              className="mono"
              placeholder="scripts/hello.js"
              value={path}
              onChange={(event) => setPath(event.target.value)}
            />
          </label>
          <div className="grid-fields two">
            <label className="field">
              <span>
                Args <span className="muted">(JSON object → __ARGS__)</span>
              </span>
              <textarea
                name="run-file-args"
                className="mono"
                rows={2}
                placeholder='{"limit": 10}'
                value={args}
                onChange={(event) => setArgs(event.target.value)}
              />
            </label>
            <label className="field">
              <span>
                Env <span className="muted">(KEY=VALUE lines → __ENV__)</span>
              </span>
              <textarea
                name="run-file-env"
                className="mono"
                rows={2}
                placeholder="MODE=dry-run"
                value={env}
                onChange={(event) => setEnv(event.target.value)}
              />
            </label>
          </div>
          {formError ? (
            <div className="inline-error" role="alert">
              {formError}
            </div>
          ) : null}
          <div className="form-actions">
            <button type="submit" className="button primary" disabled={busy || !ready || path.trim() === ""}>
              {busy ? "Running…" : "Run file"}
            </button>
          </div>
        </form>
      )}
    </section>
  );
}

/**
 * The session console: a live transcript of the session's executions (its
 * recent ones when it opens, then each run as its events stream in), the
 * REPL editor and the run-file form, and Cancel while something runs.
 */
import { lazy, Suspense, useEffect, useRef, useState } from "react";
import { Link } from "react-router";
import { api, executionIdOf, isStoreOutage, unwrap, type Execution, type RunFileBody } from "../../api/client";
import { Kbd, MOD_KEY, StatusBadge } from "../../components/bits";
import type { CodeEditorHandle } from "../../components/CodeEditor";
import { EventItem } from "../../components/EventItem";
import { ErrorPanel, Loading } from "../../components/feedback";
import { formatBytes, formatDuration } from "../../lib/format";
import { back, emptyHistory, forward, loadHistory, record, saveHistory, type History } from "../../lib/history";
import { stateAfterStop, type TranscriptEntry } from "./transcript";
import { useTranscript } from "./useTranscript";

// CodeMirror is most of the bundle: load it with the first console, not the first page.
const CodeEditor = lazy(() => import("../../components/CodeEditor").then((module) => ({ default: module.CodeEditor })));

/** How close to the bottom the transcript counts as "at the bottom", where new output keeps it. */
const STICK_PX = 48;

function ExecutionFooter({ execution }: { execution: Execution }) {
  const { error } = execution;
  const after = stateAfterStop(execution);
  return (
    <div className="entry-foot">
      <StatusBadge status={execution.status} />
      {execution.status === "cancelled" ? (
        <span className="entry-outcome" data-testid="execution-outcome">
          cancelled{after ? ` — ${after}` : ""}
        </span>
      ) : error ? (
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

const PROMPT: Record<TranscriptEntry["kind"], string> = { repl: "›", run_file: "▶", startup: "▶" };
const LABEL: Record<TranscriptEntry["kind"], string> = { repl: "", run_file: "run ", startup: "startup " };

function Entry({
  entry,
  onCancel,
  onRetry,
}: {
  entry: TranscriptEntry;
  onCancel: (executionId: string) => void;
  onRetry: (executionId: string) => void;
}) {
  const echoed = entry.events.some((event) => event.type === "input_echo");
  const executionId = entry.executionId;
  const live = entry.state === "pending" || entry.state === "running";
  return (
    <div
      className={`entry entry-${entry.state}`}
      data-testid="transcript-entry"
      data-state={entry.state}
      data-kind={entry.kind}
      data-execution-id={executionId ?? undefined}
    >
      {!echoed ? (
        <div className="event event-input">
          <span className="prompt" aria-hidden="true">
            {PROMPT[entry.kind]}
          </span>
          <pre>{`${LABEL[entry.kind]}${entry.input}`}</pre>
        </div>
      ) : null}
      {entry.events.map((event) => (
        <EventItem key={event.seq} event={event} />
      ))}
      {live ? (
        <div className="entry-foot" data-testid="entry-running">
          <span className="spinner small" aria-hidden="true" />
          <span className="muted small">{entry.state === "pending" ? "starting…" : "running…"}</span>
          {entry.state === "running" && executionId !== null ? (
            <button
              type="button"
              className="button small danger-quiet"
              title="Stop this execution. With checkpoints on, the session goes back to its state from before it."
              disabled={entry.cancelling}
              onClick={() => onCancel(executionId)}
            >
              {entry.cancelling ? "Cancelling…" : "Cancel"}
            </button>
          ) : null}
        </div>
      ) : null}
      {entry.state === "loading" ? (
        <div className="entry-foot">
          <span className="spinner small" aria-hidden="true" />
          <span className="muted small">reading its events…</span>
        </div>
      ) : null}
      {entry.cancelError ? <ErrorPanel error={entry.cancelError} compact title="Cancel failed" /> : null}
      {entry.error ? (
        <>
          <ErrorPanel
            error={entry.error}
            compact
            title={entry.state === "running" ? "Lost the live output" : undefined}
            onRetry={executionId !== null && entry.state !== "failed" ? () => onRetry(executionId) : undefined}
          />
          {entry.state === "failed" && executionIdOf(entry.error) ? (
            <Link className="small" to={`/executions/${executionIdOf(entry.error)}`}>
              {isStoreOutage(entry.error)
                ? "open the execution (stored once the database is back) →"
                : "open the stored execution and its events →"}
            </Link>
          ) : null}
        </>
      ) : null}
      {entry.state === "done" && entry.execution ? <ExecutionFooter execution={entry.execution} /> : null}
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
  const transcript = useTranscript(sessionId);
  const { entries, busy } = transcript;
  const [mode, setMode] = useState<"repl" | "run_file">("repl");
  const [source, setSource] = useState("");
  const [path, setPath] = useState("");
  const [args, setArgs] = useState("");
  const [env, setEnv] = useState("");
  const [formError, setFormError] = useState<string | null>(null);
  const history = useRef<History>(emptyHistory(loadHistory()));
  const editor = useRef<CodeEditorHandle | null>(null);
  const scroller = useRef<HTMLDivElement>(null);
  const atBottom = useRef(true);

  // New output keeps the transcript at its end, unless the reader scrolled up.
  useEffect(() => {
    const element = scroller.current;
    if (element && atBottom.current) element.scrollTop = element.scrollHeight;
  }, [entries]);

  const submitRepl = (text: string) => {
    if (busy || text.trim() === "") return;
    history.current = record(history.current, text);
    saveHistory(history.current.entries);
    editor.current?.setText("");
    atBottom.current = true;
    void transcript.run("repl", text, () =>
      unwrap(api.POST("/executions/repl", { body: { session_id: sessionId, input: text, wait: false } })),
    );
  };

  const submitFile = () => {
    if (busy || path.trim() === "") return;
    let body: RunFileBody;
    try {
      body = { session_id: sessionId, path: path.trim(), args: parseArgs(args), env: parseEnv(env), wait: false };
    } catch (error) {
      setFormError((error as Error).message);
      return;
    }
    setFormError(null);
    atBottom.current = true;
    void transcript.run("run_file", path.trim(), () => unwrap(api.POST("/executions/run-file", { body })));
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
        {entries.some((entry) => entry !== busy) ? (
          <button type="button" className="link-button small" onClick={transcript.clear}>
            Clear console
          </button>
        ) : null}
      </div>
      <div
        className="transcript"
        ref={scroller}
        data-testid="transcript"
        role="log"
        aria-label="Console output"
        aria-live="polite"
        aria-busy={transcript.opening}
        onScroll={(event) => {
          const element = event.currentTarget;
          atBottom.current = element.scrollHeight - element.scrollTop - element.clientHeight < STICK_PX;
        }}
      >
        {entries.length > 0 ? (
          entries.map((entry) => (
            <Entry
              key={entry.key}
              entry={entry}
              onCancel={(id) => void transcript.cancel(id)}
              onRetry={transcript.retry}
            />
          ))
        ) : transcript.opening ? (
          <Loading label="Loading the session's earlier executions…" />
        ) : transcript.openError ? (
          <ErrorPanel error={transcript.openError} compact title="Its earlier executions could not be listed" />
        ) : (
          <div className="transcript-empty muted">
            {ready
              ? "Results appear here as they happen. Variables persist between runs: try `let x = 20`, then `x * 2 + 2`."
              : "This session is not ready, so it cannot run code. Its execution history stays readable."}
          </div>
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
              disabled={busy !== undefined || !ready || source.trim() === ""}
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
            <button
              type="submit"
              className="button primary"
              disabled={busy !== undefined || !ready || path.trim() === ""}
            >
              {busy ? "Running…" : "Run file"}
            </button>
          </div>
        </form>
      )}
    </section>
  );
}

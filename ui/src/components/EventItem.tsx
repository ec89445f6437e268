/** One execution event, rendered by its type. */
import { useState } from "react";
import type { ExecutionEvent } from "../api/client";
import { decodeEvent, isStructured } from "../api/events";
import { JsonTree } from "./JsonTree";

export function ValueView({
  valueType,
  preview,
  json,
  hasJson,
}: {
  valueType: string;
  preview: string;
  json: unknown;
  hasJson: boolean;
}) {
  const [tree, setTree] = useState(true);
  const structured = hasJson && isStructured(json);
  return (
    <div className="value-view">
      <div className="value-line">
        <span className="value-arrow" aria-hidden="true">
          ←
        </span>
        <span className="value-type">{valueType}</span>
        {structured ? (
          <button type="button" className="link-button small" onClick={() => setTree((v) => !v)}>
            {tree ? "preview" : "tree"}
          </button>
        ) : null}
      </div>
      {structured && tree ? (
        <JsonTree value={json} />
      ) : (
        <pre className={`value-preview value-${valueType}`} data-testid="value-preview">
          {preview}
        </pre>
      )}
    </div>
  );
}

export function ExceptionView({ message, stack }: { message: string; stack: string }) {
  // Engines start the stack with the message; the message is already shown above it.
  const frames = stack.startsWith(message) ? stack.slice(message.length).replace(/^\n/, "") : stack;
  const hasStack = frames.trim() !== "";
  return (
    <div className="exception" data-testid="exception">
      <div className="exception-message">{message}</div>
      {hasStack ? (
        <details className="exception-stack" open>
          <summary>Stack</summary>
          <pre data-testid="exception-stack">{frames}</pre>
        </details>
      ) : null}
    </div>
  );
}

function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

export function EventItem({ event, showSeq = false }: { event: ExecutionEvent; showSeq?: boolean }) {
  const decoded = decodeEvent(event);
  const seq = showSeq ? <span className="event-seq">#{event.seq}</span> : null;
  switch (decoded.kind) {
    case "input_echo":
      return (
        <div className="event event-input" data-event-type="input_echo">
          {seq}
          <span className="prompt" aria-hidden="true">
            ›
          </span>
          <pre>{decoded.text}</pre>
        </div>
      );
    case "console":
      return (
        <div
          className={`event event-console level-${decoded.level}`}
          data-event-type="console"
          data-level={decoded.level}
        >
          {seq}
          <span className="level-tag">{decoded.level}</span>
          <pre>{decoded.text}</pre>
        </div>
      );
    case "value":
      return (
        <div className="event event-value" data-event-type="value">
          {seq}
          <ValueView {...decoded} />
        </div>
      );
    case "exception":
      return (
        <div className="event event-exception" data-event-type="exception">
          {seq}
          <ExceptionView message={decoded.message} stack={decoded.stack} />
        </div>
      );
    case "system":
      return (
        <div className={`event event-system level-${decoded.level}`} data-event-type="system">
          {seq}
          <span className="level-tag">system</span>
          <span>{decoded.message}</span>
        </div>
      );
    case "stdout":
    case "stderr":
      return (
        <div className={`event event-${decoded.kind}`} data-event-type={decoded.kind}>
          {seq}
          <span className="level-tag">{decoded.kind}</span>
          <pre>{decoded.text}</pre>
        </div>
      );
    case "fetch": {
      const refused = decoded.status === null;
      return (
        <div
          className={`event event-fetch${refused ? " refused" : ""}`}
          data-event-type="fetch"
          data-code={decoded.code ?? undefined}
        >
          {seq}
          <span className="level-tag">fetch</span>
          <pre>
            {decoded.method} {decoded.url}
            {decoded.finalUrl ? ` → ${decoded.finalUrl}` : ""}
            {refused
              ? ` refused: ${decoded.code ?? "ERROR"}${decoded.error ? ` ${decoded.error}` : ""}`
              : ` ${decoded.status} · ${formatBytes(decoded.bytes)} · ${decoded.ms} ms`}
          </pre>
        </div>
      );
    }
    case "unknown":
      return (
        <div className="event event-unknown" data-event-type={decoded.type}>
          {seq}
          <span className="level-tag">{decoded.type}</span>
          <pre>{JSON.stringify(decoded.payload, null, 2)}</pre>
        </div>
      );
  }
}

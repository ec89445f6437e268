/** One execution event, rendered by its type. */
import { useState, type ReactNode } from "react";
import { describeFetch, isRefused, isStructured, stackFrames, type AnyEvent, type ValuePayload } from "../api/events";
import { JsonTree } from "./JsonTree";

/** A completion value: its preview, or a foldable tree when its JSON form has something to fold. */
export function ValueView({ value }: { value: ValuePayload }) {
  const [tree, setTree] = useState(true);
  const structured = isStructured(value.json);
  return (
    <div className="value-view">
      <div className="value-line">
        <span className="value-arrow" aria-hidden="true">
          ←
        </span>
        <span className="value-type">{value.type}</span>
        {structured ? (
          <button type="button" className="link-button small" onClick={() => setTree((v) => !v)}>
            {tree ? "preview" : "tree"}
          </button>
        ) : null}
      </div>
      {structured && tree ? (
        <JsonTree value={value.json} />
      ) : (
        <pre className={`value-preview value-${value.type}`} data-testid="value-preview">
          {value.preview}
        </pre>
      )}
    </div>
  );
}

export function ExceptionView({ message, stack }: { message: string; stack: string }) {
  const frames = stackFrames(message, stack);
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

/** An event this UI cannot read, shown as the JSON payload the daemon sent. */
function RawEvent({ type, payload, seq }: { type: string; payload: unknown; seq: ReactNode }) {
  return (
    <div className="event event-unknown" data-event-type={type}>
      {seq}
      <span className="level-tag">{type}</span>
      <pre>{payload === undefined ? "(no payload)" : JSON.stringify(payload, null, 2)}</pre>
    </div>
  );
}

export function EventItem({ event, showSeq = false }: { event: AnyEvent; showSeq?: boolean }) {
  const seq = showSeq ? <span className="event-seq">#{event.seq}</span> : null;
  switch (event.type) {
    case "input_echo":
      return (
        <div className="event event-input" data-event-type="input_echo">
          {seq}
          <span className="prompt" aria-hidden="true">
            ›
          </span>
          <pre>{event.payload.text}</pre>
        </div>
      );
    case "console":
      return (
        <div
          className={`event event-console level-${event.payload.level}`}
          data-event-type="console"
          data-level={event.payload.level}
        >
          {seq}
          <span className="level-tag">{event.payload.level}</span>
          <pre>{event.payload.text}</pre>
        </div>
      );
    case "value":
      return (
        <div className="event event-value" data-event-type="value">
          {seq}
          <ValueView value={event.payload} />
        </div>
      );
    case "exception":
      return (
        <div className="event event-exception" data-event-type="exception">
          {seq}
          <ExceptionView message={event.payload.message} stack={event.payload.stack} />
        </div>
      );
    case "system":
      return (
        <div className={`event event-system level-${event.payload.level}`} data-event-type="system">
          {seq}
          <span className="level-tag">system</span>
          <span>{event.payload.message}</span>
        </div>
      );
    case "stdout":
    case "stderr":
      return (
        <div className={`event event-${event.type}`} data-event-type={event.type}>
          {seq}
          <span className="level-tag">{event.type}</span>
          <pre>{event.payload.text}</pre>
        </div>
      );
    case "fetch":
      return (
        <div
          className={`event event-fetch${isRefused(event.payload) ? " refused" : ""}`}
          data-event-type="fetch"
          data-code={event.payload.code ?? undefined}
        >
          {seq}
          <span className="level-tag">fetch</span>
          <pre>{describeFetch(event.payload)}</pre>
        </div>
      );
    case "unknown":
      return <RawEvent type={event.sentType ?? "unknown"} payload={event.payload} seq={seq} />;
    default: {
      // Events read over REST are typed, not checked: one newer than this UI lands here.
      const raw = event as { type?: unknown; payload?: unknown };
      return <RawEvent type={String(raw.type)} payload={raw.payload} seq={seq} />;
    }
  }
}

/** A foldable view of a JSON value: objects and arrays open and close. */
import { useState } from "react";

function Primitive({ value }: { value: unknown }) {
  if (value === null) return <span className="json-null">null</span>;
  switch (typeof value) {
    case "string":
      return <span className="json-string">{JSON.stringify(value)}</span>;
    case "number":
      return <span className="json-number">{String(value)}</span>;
    case "boolean":
      return <span className="json-boolean">{String(value)}</span>;
    default:
      return <span className="json-other">{JSON.stringify(value) ?? "undefined"}</span>;
  }
}

function summary(value: object): string {
  if (Array.isArray(value)) return `Array(${value.length})`;
  const count = Object.keys(value).length;
  return `{…} ${count} ${count === 1 ? "key" : "keys"}`;
}

function Node({ name, value, depth, openDepth }: { name?: string; value: unknown; depth: number; openDepth: number }) {
  const [open, setOpen] = useState(depth < openDepth);
  const label = name !== undefined ? <span className="json-key">{name}: </span> : null;
  if (typeof value !== "object" || value === null) {
    return (
      <div className="json-row">
        {label}
        <Primitive value={value} />
      </div>
    );
  }
  const entries: [string, unknown][] = Array.isArray(value)
    ? value.map((item, index) => [String(index), item])
    : Object.entries(value);
  if (entries.length === 0) {
    return (
      <div className="json-row">
        {label}
        <span className="json-other">{Array.isArray(value) ? "[]" : "{}"}</span>
      </div>
    );
  }
  return (
    <div className="json-node">
      <button type="button" className="json-toggle" aria-expanded={open} onClick={() => setOpen((v) => !v)}>
        <span className="json-caret">{open ? "▾" : "▸"}</span>
        {label}
        <span className="json-summary">{summary(value)}</span>
      </button>
      {open ? (
        <div className="json-children">
          {entries.map(([key, child]) => (
            <Node key={key} name={key} value={child} depth={depth + 1} openDepth={openDepth} />
          ))}
        </div>
      ) : null}
    </div>
  );
}

export function JsonTree({ value, openDepth = 1 }: { value: unknown; openDepth?: number }) {
  return (
    <div className="json-tree" data-testid="json-tree">
      <Node value={value} depth={0} openDepth={openDepth} />
    </div>
  );
}

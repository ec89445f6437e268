/**
 * Reads an event's `payload` by its `type`. The OpenAPI document types the
 * payload as any JSON (its description lists the shapes), so this narrows it
 * at run time and falls back to raw JSON for anything unexpected.
 */
import type { ExecutionEvent } from "./client";

export type ConsoleLevel = "log" | "info" | "warn" | "error" | "debug";
export type SystemLevel = "info" | "warn" | "error";

export type DecodedEvent =
  | { kind: "input_echo"; text: string }
  | { kind: "console"; level: ConsoleLevel; text: string }
  | { kind: "value"; valueType: string; preview: string; json: unknown; hasJson: boolean }
  | { kind: "exception"; message: string; stack: string }
  | { kind: "system"; level: SystemLevel; message: string }
  | { kind: "stdout" | "stderr"; text: string }
  | {
      kind: "fetch";
      method: string;
      url: string;
      finalUrl: string | null;
      status: number | null;
      bytes: number;
      ms: number;
      code: string | null;
      error: string | null;
    }
  | { kind: "unknown"; type: string; payload: unknown };

const CONSOLE_LEVELS: readonly string[] = ["log", "info", "warn", "error", "debug"];
const SYSTEM_LEVELS: readonly string[] = ["info", "warn", "error"];

function field(payload: unknown, name: string): unknown {
  if (typeof payload !== "object" || payload === null) return undefined;
  return (payload as Record<string, unknown>)[name];
}

function text(payload: unknown, name: string): string | undefined {
  const value = field(payload, name);
  return typeof value === "string" ? value : undefined;
}

function number(payload: unknown, name: string): number | undefined {
  const value = field(payload, name);
  return typeof value === "number" ? value : undefined;
}

export function decodeEvent(event: Pick<ExecutionEvent, "type" | "payload">): DecodedEvent {
  const { type, payload } = event;
  const unknown: DecodedEvent = { kind: "unknown", type, payload };
  switch (type) {
    case "input_echo": {
      const value = text(payload, "text") ?? text(payload, "input") ?? text(payload, "path");
      if (value !== undefined) return { kind: "input_echo", text: value };
      return typeof payload === "string" ? { kind: "input_echo", text: payload } : unknown;
    }
    case "console": {
      const line = text(payload, "text");
      if (line === undefined) return unknown;
      const level = text(payload, "level") ?? "log";
      return { kind: "console", level: (CONSOLE_LEVELS.includes(level) ? level : "log") as ConsoleLevel, text: line };
    }
    case "value": {
      const preview = text(payload, "preview");
      if (preview === undefined) return unknown;
      const hasJson = typeof payload === "object" && payload !== null && "json" in payload;
      return {
        kind: "value",
        valueType: text(payload, "type") ?? "unknown",
        preview,
        json: field(payload, "json"),
        hasJson,
      };
    }
    case "exception": {
      const message = text(payload, "message");
      if (message === undefined) return unknown;
      return { kind: "exception", message, stack: text(payload, "stack") ?? "" };
    }
    case "system": {
      const message = text(payload, "message");
      if (message === undefined) return unknown;
      const level = text(payload, "level") ?? "info";
      return { kind: "system", level: (SYSTEM_LEVELS.includes(level) ? level : "info") as SystemLevel, message };
    }
    case "stdout":
    case "stderr": {
      const value = text(payload, "text") ?? (typeof payload === "string" ? payload : undefined);
      return value === undefined ? unknown : { kind: type, text: value };
    }
    case "fetch": {
      const method = text(payload, "method");
      const url = text(payload, "url");
      if (method === undefined || url === undefined) return unknown;
      return {
        kind: "fetch",
        method,
        url,
        finalUrl: text(payload, "final_url") ?? null,
        status: number(payload, "status") ?? null,
        bytes: number(payload, "bytes") ?? 0,
        ms: number(payload, "ms") ?? 0,
        code: text(payload, "code") ?? null,
        error: text(payload, "error") ?? null,
      };
    }
    default:
      return unknown;
  }
}

/** An execution's `result` (its value event payload) or `error` (`code`, `message`). */
export function decodeResult(
  result: unknown,
): { valueType: string; preview: string; json: unknown; hasJson: boolean } | null {
  const decoded = decodeEvent({ type: "value", payload: result });
  return decoded.kind === "value" ? decoded : null;
}

export function decodeExecutionError(error: unknown): { code: string; message: string } | null {
  const code = text(error, "code");
  const message = text(error, "message");
  if (code === undefined && message === undefined) return null;
  return { code: code ?? "ERROR", message: message ?? "" };
}

/** Whether a JSON value deserves a foldable tree rather than one line. */
export function isStructured(json: unknown): json is object {
  return (
    typeof json === "object" && json !== null && (Array.isArray(json) ? json.length > 0 : Object.keys(json).length > 0)
  );
}

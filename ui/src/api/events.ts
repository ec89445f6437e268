/**
 * Execution events as the UI holds them. The OpenAPI document types each
 * event exactly (`ExecutionEvent` is a union discriminated by `type`, so a
 * `switch` on `event.type` gives the typed payload); this module adds the
 * one check made where events arrive as JSON text (the live stream), and
 * the presentation helpers the event views share.
 */
import type { ExecutionEvent } from "./client";
import type { components } from "./schema.gen";
import { formatBytes } from "../lib/format";

type Schemas = components["schemas"];
export type EventType = ExecutionEvent["type"];
/** A `value` event's payload, and an ended execution's `result`. */
export type ValuePayload = Schemas["ValuePayload"];
export type FetchPayload = Schemas["FetchPayload"];

/**
 * An event this UI cannot read: a `type` newer than it, or a payload that is
 * not an object. It is shown as the JSON the daemon sent.
 */
export interface UnknownEvent {
  type: "unknown";
  execution_id: string;
  seq: number;
  ts: string;
  /** The `type` the daemon sent, or null when it sent none as text. */
  sentType: string | null;
  /** The `payload` the daemon sent (undefined when it sent none). */
  payload: unknown;
}

/** An event as the UI shows it: one the OpenAPI document describes, or an unknown one. */
export type AnyEvent = ExecutionEvent | UnknownEvent;

/** Every `type` of the OpenAPI document: a type added there does not compile until it is listed here. */
const EVENT_TYPES: Record<EventType, true> = {
  input_echo: true,
  console: true,
  value: true,
  exception: true,
  system: true,
  stdout: true,
  stderr: true,
  fetch: true,
};

function isEventType(type: unknown): type is EventType {
  return typeof type === "string" && Object.hasOwn(EVENT_TYPES, type);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Reads an event that arrived as JSON text. One whose `type` this UI knows
 * and whose `payload` is an object is taken as the OpenAPI document types it;
 * anything else becomes an `UnknownEvent`, so that a daemon newer than this
 * UI shows raw JSON instead of breaking it. Null when it is not an event at
 * all (no `seq` to place it by).
 */
export function readEvent(json: unknown, executionId: string): AnyEvent | null {
  if (!isObject(json) || typeof json.seq !== "number") return null;
  if (isEventType(json.type) && isObject(json.payload)) return json as unknown as ExecutionEvent;
  return {
    type: "unknown",
    execution_id: typeof json.execution_id === "string" ? json.execution_id : executionId,
    seq: json.seq,
    ts: typeof json.ts === "string" ? json.ts : "",
    sentType: typeof json.type === "string" ? json.type : null,
    payload: json.payload,
  };
}

/** Whether a JSON value deserves a foldable tree rather than one line. */
export function isStructured(json: unknown): json is object {
  return (
    typeof json === "object" && json !== null && (Array.isArray(json) ? json.length > 0 : Object.keys(json).length > 0)
  );
}

/** An exception's stack without its first line when that repeats the message (engines start the stack with it). */
export function stackFrames(message: string, stack: string): string {
  return stack.startsWith(message) ? stack.slice(message.length).replace(/^\n/, "") : stack;
}

/** Whether `fetch` was refused or failed: no HTTP status came back. */
export function isRefused(fetch: FetchPayload): boolean {
  return (fetch.status ?? null) === null;
}

/** One line for a `fetch` event: the request, where it led, and its answer or why it got none. */
export function describeFetch(fetch: FetchPayload): string {
  const request = `${fetch.method} ${fetch.url}${fetch.final_url ? ` → ${fetch.final_url}` : ""}`;
  const status = fetch.status ?? null;
  if (status === null) return `${request} refused: ${fetch.code ?? "ERROR"}${fetch.error ? ` ${fetch.error}` : ""}`;
  return `${request} ${status} · ${formatBytes(fetch.bytes)} · ${fetch.ms} ms`;
}

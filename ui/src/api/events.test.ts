import { describe, expect, it } from "vitest";
import type { ExecutionEvent } from "./client";
import { describeFetch, isRefused, isStructured, readEvent, stackFrames, type FetchPayload } from "./events";

const ID = "0b9e2c1a-0000-4000-8000-000000000001";
const at = { execution_id: ID, seq: 7, ts: "2030-01-01T00:00:00Z" };

describe("readEvent", () => {
  it("takes each documented event as it is, typed by its type", () => {
    const events: ExecutionEvent[] = [
      { ...at, type: "input_echo", payload: { text: "1 + 1" } },
      { ...at, type: "console", payload: { level: "warn", text: "careful" } },
      { ...at, type: "value", payload: { type: "object", preview: "{ a: 1 }", json: { a: 1 } } },
      { ...at, type: "exception", payload: { message: "Error: boom", stack: "at <eval>" } },
      { ...at, type: "system", payload: { message: "wall limit", level: "error" } },
      { ...at, type: "stdout", payload: { text: "out" } },
      { ...at, type: "stderr", payload: { text: "oops" } },
      {
        ...at,
        type: "fetch",
        payload: { method: "GET", url: "http://a/", final_url: null, status: null, bytes: 0, ms: 1, code: "X" },
      },
    ];
    for (const event of events) expect(readEvent(JSON.parse(JSON.stringify(event)), ID)).toEqual(event);
  });

  it("narrows the payload by a switch on the type", () => {
    const event = readEvent({ ...at, type: "console", payload: { level: "info", text: "hi" } }, ID);
    if (event?.type !== "console") throw new Error(`read as ${event?.type}`);
    expect(`${event.payload.level}: ${event.payload.text}`).toBe("info: hi");
  });

  it("keeps an event of a type newer than this UI, with the payload it sent", () => {
    expect(readEvent({ ...at, type: "telemetry", payload: { n: 1 } }, ID)).toEqual({
      ...at,
      type: "unknown",
      sentType: "telemetry",
      payload: { n: 1 },
    });
    // `toString` is on every object's prototype: it is no more a type than "telemetry".
    expect(readEvent({ ...at, type: "toString", payload: {} }, ID)).toMatchObject({ type: "unknown" });
  });

  it("keeps a known type whose payload is not an object as unknown", () => {
    for (const payload of [42, "text", null, [1, 2], undefined]) {
      expect(readEvent({ ...at, type: "console", payload }, ID)).toEqual({
        ...at,
        type: "unknown",
        sentType: "console",
        payload,
      });
    }
  });

  it("fills what an unknown event lacks and refuses what is not an event", () => {
    expect(readEvent({ seq: 3, type: 5, payload: {} }, ID)).toEqual({
      type: "unknown",
      execution_id: ID,
      seq: 3,
      ts: "",
      sentType: null,
      payload: {},
    });
    expect(readEvent({ type: "console", payload: { level: "log", text: "x" } }, ID)).toBeNull();
    expect(readEvent({ ...at, seq: "7", type: "console", payload: { level: "log", text: "x" } }, ID)).toBeNull();
    expect(readEvent([at], ID)).toBeNull();
    expect(readEvent(null, ID)).toBeNull();
    expect(readEvent("event", ID)).toBeNull();
  });
});

describe("describeFetch", () => {
  const answered: FetchPayload = {
    method: "GET",
    url: "http://api.example.com/a",
    final_url: "http://api.example.com/b",
    status: 200,
    bytes: 1536,
    ms: 3,
    code: null,
    error: null,
  };

  it("says where an answered request led and what came back", () => {
    expect(isRefused(answered)).toBe(false);
    expect(describeFetch(answered)).toBe(
      "GET http://api.example.com/a → http://api.example.com/b 200 · 1.5 KiB · 3 ms",
    );
    expect(describeFetch({ ...answered, final_url: null, method: "POST", bytes: 12 })).toBe(
      "POST http://api.example.com/a 200 · 12 B · 3 ms",
    );
  });

  it("says why a refused request got no answer", () => {
    const refused: FetchPayload = {
      ...answered,
      final_url: null,
      status: null,
      bytes: 0,
      code: "ERR_HOST_NOT_ALLOWED",
      error: "example.invalid:80 is not in the allow list",
    };
    expect(isRefused(refused)).toBe(true);
    expect(describeFetch(refused)).toBe(
      "GET http://api.example.com/a refused: ERR_HOST_NOT_ALLOWED example.invalid:80 is not in the allow list",
    );
    // Optional fields may be left out altogether.
    const bare: FetchPayload = { method: "GET", url: "http://x/", bytes: 0, ms: 0 };
    expect(isRefused(bare)).toBe(true);
    expect(describeFetch(bare)).toBe("GET http://x/ refused: ERROR");
  });
});

describe("stackFrames", () => {
  it("drops the message that starts the stack, and keeps a stack that does not repeat it", () => {
    expect(stackFrames("Error: boom", "Error: boom\n  at f (main.js:1)")).toBe("  at f (main.js:1)");
    expect(stackFrames("Error: boom", "  at f (main.js:1)")).toBe("  at f (main.js:1)");
    expect(stackFrames("Error: boom", "Error: boom")).toBe("");
  });
});

describe("isStructured", () => {
  it("is true only for non-empty objects and arrays", () => {
    expect(isStructured({ a: 1 })).toBe(true);
    expect(isStructured([1])).toBe(true);
    expect(isStructured({})).toBe(false);
    expect(isStructured([])).toBe(false);
    expect(isStructured("x")).toBe(false);
    expect(isStructured(null)).toBe(false);
    expect(isStructured(undefined)).toBe(false);
  });
});

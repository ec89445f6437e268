import { describe, expect, it } from "vitest";
import { decodeEvent, decodeExecutionError, decodeResult, isStructured } from "./events";

describe("decodeEvent", () => {
  it("reads each documented payload shape", () => {
    expect(decodeEvent({ type: "input_echo", payload: { text: "1 + 1" } })).toEqual({
      kind: "input_echo",
      text: "1 + 1",
    });
    expect(decodeEvent({ type: "console", payload: { level: "warn", text: "careful" } })).toEqual({
      kind: "console",
      level: "warn",
      text: "careful",
    });
    expect(decodeEvent({ type: "value", payload: { type: "object", preview: "{ a: 1 }", json: { a: 1 } } })).toEqual({
      kind: "value",
      valueType: "object",
      preview: "{ a: 1 }",
      json: { a: 1 },
      hasJson: true,
    });
    expect(decodeEvent({ type: "exception", payload: { message: "Error: boom", stack: "at <eval>" } })).toEqual({
      kind: "exception",
      message: "Error: boom",
      stack: "at <eval>",
    });
    expect(decodeEvent({ type: "system", payload: { message: "wall limit", level: "error" } })).toEqual({
      kind: "system",
      level: "error",
      message: "wall limit",
    });
    expect(decodeEvent({ type: "stderr", payload: { text: "oops" } })).toEqual({ kind: "stderr", text: "oops" });
    expect(
      decodeEvent({
        type: "fetch",
        payload: {
          method: "GET",
          url: "http://api.example.com/a",
          final_url: "http://api.example.com/b",
          status: 200,
          bytes: 12,
          ms: 3,
          code: null,
          error: null,
        },
      }),
    ).toEqual({
      kind: "fetch",
      method: "GET",
      url: "http://api.example.com/a",
      finalUrl: "http://api.example.com/b",
      status: 200,
      bytes: 12,
      ms: 3,
      code: null,
      error: null,
    });
  });

  it("reads a refused fetch with its code and no status", () => {
    const payload = {
      method: "GET",
      url: "http://example.invalid/",
      final_url: null,
      status: null,
      bytes: 0,
      ms: 1,
      code: "ERR_HOST_NOT_ALLOWED",
      error: "example.invalid:80 is not in the allow list",
    };
    expect(decodeEvent({ type: "fetch", payload })).toMatchObject({
      kind: "fetch",
      status: null,
      code: "ERR_HOST_NOT_ALLOWED",
    });
    expect(decodeEvent({ type: "fetch", payload: { url: "http://x/" } })).toMatchObject({ kind: "unknown" });
  });

  it("keeps a value without json apart from one whose json is null", () => {
    const noJson = decodeEvent({ type: "value", payload: { type: "function", preview: "[Function f]" } });
    const nullJson = decodeEvent({ type: "value", payload: { type: "null", preview: "null", json: null } });
    expect(noJson).toMatchObject({ hasJson: false });
    expect(nullJson).toMatchObject({ hasJson: true, json: null });
  });

  it("treats an unknown console level as log", () => {
    expect(decodeEvent({ type: "console", payload: { level: "trace", text: "x" } })).toMatchObject({ level: "log" });
  });

  it("falls back to raw JSON for unknown types and malformed payloads", () => {
    expect(decodeEvent({ type: "telemetry", payload: { n: 1 } })).toEqual({
      kind: "unknown",
      type: "telemetry",
      payload: { n: 1 },
    });
    expect(decodeEvent({ type: "console", payload: 42 })).toMatchObject({ kind: "unknown" });
    expect(decodeEvent({ type: "exception", payload: null })).toMatchObject({ kind: "unknown" });
  });
});

describe("execution result and error", () => {
  it("reads the result as a value payload", () => {
    expect(decodeResult({ type: "number", preview: "42", json: 42 })).toMatchObject({ preview: "42", json: 42 });
    expect(decodeResult(undefined)).toBeNull();
  });

  it("reads the error's code and message", () => {
    expect(decodeExecutionError({ code: "EXCEPTION", message: "Error: boom" })).toEqual({
      code: "EXCEPTION",
      message: "Error: boom",
    });
    expect(decodeExecutionError(undefined)).toBeNull();
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
  });
});

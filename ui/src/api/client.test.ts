import { describe, expect, it } from "vitest";
import { ApiError, toApiError, unwrap } from "./client";

function response(status: number, headers: Record<string, string> = {}): Response {
  return new Response(null, { status, headers });
}

describe("ApiError", () => {
  it("carries the envelope's code, message and details with the request id", () => {
    const error = ApiError.fromResponse(response(422, { "x-request-id": "req-1" }), {
      error: { code: "INVALID_PATH", message: "'..' would leave the worktree", details: { field: "path" } },
    });
    expect(error).toMatchObject({
      status: 422,
      code: "INVALID_PATH",
      message: "'..' would leave the worktree",
      details: { field: "path" },
      requestId: "req-1",
    });
  });

  it("names the HTTP status when the body is not an envelope", () => {
    const error = ApiError.fromResponse(response(502), "Bad Gateway from a proxy");
    expect(error.code).toBe("HTTP_502");
    expect(error.message).toBe("Bad Gateway from a proxy");
  });

  it("wraps anything thrown", () => {
    expect(toApiError(new TypeError("boom"))).toMatchObject({ code: "CLIENT_ERROR", message: "boom" });
    const original = new ApiError({ status: 404, code: "SESSION_NOT_FOUND", message: "no such session" });
    expect(toApiError(original)).toBe(original);
  });
});

describe("unwrap", () => {
  it("returns the data of a 2xx answer", async () => {
    await expect(unwrap(Promise.resolve({ data: { status: "ok" }, response: response(200) }))).resolves.toEqual({
      status: "ok",
    });
  });

  it("throws the daemon's error for a non-2xx answer", async () => {
    const call = Promise.resolve({
      error: { error: { code: "SESSION_BUSY", message: "another execution is running", details: {} } },
      response: response(409),
    });
    await expect(unwrap(call)).rejects.toMatchObject({ status: 409, code: "SESSION_BUSY" });
  });

  it("reports a failed fetch as a network error", async () => {
    await expect(unwrap(Promise.reject(new TypeError("Failed to fetch")))).rejects.toMatchObject({
      code: "NETWORK_ERROR",
      status: 0,
    });
  });
});

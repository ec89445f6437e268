import { describe, expect, it } from "vitest";
import { ApiError, executionIdOf, isStoreOutage, storeOutageHint, toApiError, unwrap } from "./client";

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

describe("store outages", () => {
  const outage = (code: string, status: number, details: unknown, retryAfter?: string) =>
    ApiError.fromResponse(response(status, retryAfter ? { "retry-after": retryAfter } : {}), {
      error: { code, message: "the store is unavailable: pool timed out", details },
    });

  it("reads Retry-After as seconds and ignores other forms", () => {
    expect(outage("STORE_UNAVAILABLE", 503, {}, "2").retryAfter).toBe(2);
    expect(outage("STORE_UNAVAILABLE", 503, {}, "Wed, 21 Oct 2015 07:28:00 GMT").retryAfter).toBeNull();
    expect(outage("STORE_UNAVAILABLE", 503, {}).retryAfter).toBeNull();
  });

  it("says when to try again, or to free disk space", () => {
    expect(storeOutageHint(outage("STORE_UNAVAILABLE", 503, { reason: "x" }, "2"))).toContain("try again in 2 s");
    expect(storeOutageHint(outage("STORAGE_FULL", 507, { reason: "x" }))).toContain("free space");
  });

  it("says that an execution named in the details ran and will be stored", () => {
    const error = outage(
      "STORE_UNAVAILABLE",
      503,
      { reason: "x", execution_id: "0123abcd-0000-4000-8000-000000000000" },
      "2",
    );
    expect(isStoreOutage(error)).toBe(true);
    expect(executionIdOf(error)).toBe("0123abcd-0000-4000-8000-000000000000");
    const hint = storeOutageHint(error) ?? "";
    expect(hint).toContain("Execution 0123abcd ran");
    expect(hint).toContain("no need to run it again");
  });

  it("has nothing to add to other errors", () => {
    const busy = new ApiError({ status: 409, code: "SESSION_BUSY", message: "busy" });
    expect(isStoreOutage(busy)).toBe(false);
    expect(storeOutageHint(busy)).toBeNull();
  });
});

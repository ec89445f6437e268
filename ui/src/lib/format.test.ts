import { describe, expect, it } from "vitest";
import { firstLine, formatBytes, formatDuration, relativeTime, shortId } from "./format";

describe("format", () => {
  it("shortens ids", () => {
    expect(shortId("6c1d4c52-aaaa-bbbb")).toBe("6c1d4c52");
  });

  it("formats durations and sizes", () => {
    expect(formatDuration(12)).toBe("12 ms");
    expect(formatDuration(1500)).toBe("1.50 s");
    expect(formatDuration(125_000)).toBe("2 min 5 s");
    expect(formatBytes(2048)).toBe("2.0 KiB");
    expect(formatBytes(512)).toBe("512 B");
    expect(formatBytes(12_345_678)).toBe("11.8 MiB");
    expect(formatBytes(3 * 1024 ** 3)).toBe("3.00 GiB");
  });

  it("says how long ago, or how soon", () => {
    const now = Date.parse("2025-01-01T12:00:00Z");
    expect(relativeTime("2025-01-01T11:59:58Z", now)).toBe("just now");
    expect(relativeTime("2025-01-01T11:58:00Z", now)).toBe("2 min ago");
    expect(relativeTime(undefined, now)).toBe("—");
    expect(relativeTime("2025-01-01T15:00:00Z", now)).toBe("in 3 h");
  });

  it("keeps the first line of a snippet", () => {
    expect(firstLine("let x = 1\nx + 1")).toBe("let x = 1 …");
    expect(firstLine("a".repeat(100), 10)).toBe(`${"a".repeat(9)}…`);
  });
});

import { describe, expect, it } from "vitest";
import {
  formatCount,
  formatMs,
  formatRate,
  formatUptime,
  peak,
  pushSample,
  ratePerSecond,
  rates,
  SAMPLE_CAPACITY,
  type Sample,
} from "./metrics";

const at = (seconds: number, total: number): Sample<{ total: number }> => ({ at: seconds * 1000, value: { total } });

describe("the sample buffer", () => {
  it("appends samples oldest first", () => {
    const buffer = pushSample(pushSample([], at(1, 0)), at(3, 2));
    expect(buffer.map((sample) => sample.at)).toEqual([1000, 3000]);
  });

  it("keeps only the newest samples beyond its capacity", () => {
    let buffer: readonly Sample<{ total: number }>[] = [];
    for (let second = 1; second <= SAMPLE_CAPACITY + 5; second++) buffer = pushSample(buffer, at(second, second));
    expect(buffer).toHaveLength(SAMPLE_CAPACITY);
    expect(buffer[0]?.at).toBe(6000);
    expect(buffer.at(-1)?.at).toBe((SAMPLE_CAPACITY + 5) * 1000);
    expect(pushSample(pushSample(pushSample([], at(1, 0), 2), at(2, 0), 2), at(3, 0), 2).map((s) => s.at)).toEqual([
      2000, 3000,
    ]);
  });

  it("ignores a sample that is not newer than the last one", () => {
    const buffer = pushSample([], at(5, 1));
    expect(pushSample(buffer, at(5, 9))).toBe(buffer);
    expect(pushSample(buffer, at(4, 9))).toBe(buffer);
  });

  it("does not change the buffer it was given", () => {
    const buffer = pushSample([], at(1, 0));
    pushSample(buffer, at(2, 0));
    expect(buffer).toHaveLength(1);
  });
});

describe("executions per second", () => {
  it("divides the counter's growth by the seconds between the samples", () => {
    expect(ratePerSecond({ at: 0, count: 10 }, { at: 2000, count: 14 })).toBe(2);
    expect(ratePerSecond({ at: 0, count: 10 }, { at: 4000, count: 11 })).toBe(0.25);
    expect(ratePerSecond({ at: 0, count: 10 }, { at: 2000, count: 10 })).toBe(0);
  });

  it("is never negative: a counter that went down (the daemon restarted) gives 0", () => {
    expect(ratePerSecond({ at: 0, count: 50 }, { at: 2000, count: 3 })).toBe(0);
  });

  it("has no rate when no time passed", () => {
    expect(ratePerSecond({ at: 2000, count: 1 }, { at: 2000, count: 5 })).toBeNull();
    expect(ratePerSecond({ at: 3000, count: 1 }, { at: 2000, count: 5 })).toBeNull();
  });

  it("gives the first sample no rate and every later one the rate since the one before", () => {
    const samples = [at(0, 0), at(2, 4), at(4, 4), at(8, 6), at(10, 0)];
    expect(rates(samples, (value) => value.total)).toEqual([null, 2, 0, 0.5, 0]);
    expect(rates([at(0, 7)], (value) => value.total)).toEqual([null]);
    expect(rates([], (value: { total: number }) => value.total)).toEqual([]);
  });

  it("finds the peak, skipping gaps", () => {
    expect(peak([null, 2, 0, 0.5])).toBe(2);
    expect(peak([null])).toBeNull();
    expect(peak([])).toBeNull();
  });
});

describe("how the numbers read", () => {
  it("formats durations in milliseconds", () => {
    expect(formatMs(0.423)).toBe("0.42 ms");
    expect(formatMs(3.2)).toBe("3.2 ms");
    expect(formatMs(40.5)).toBe("40.5 ms");
    expect(formatMs(250.4)).toBe("250 ms");
    expect(formatMs(1500)).toBe("1.50 s");
    expect(formatMs(null)).toBe("—");
    expect(formatMs(undefined)).toBe("—");
  });

  it("formats rates, uptimes and counts", () => {
    expect(formatRate(null)).toBe("—");
    expect(formatRate(0)).toBe("0");
    expect(formatRate(0.5)).toBe("0.50");
    expect(formatRate(12.34)).toBe("12.3");
    expect(formatUptime(12)).toBe("12 s");
    expect(formatUptime(303)).toBe("5 min 3 s");
    expect(formatUptime(2 * 3600 + 5 * 60 + 9)).toBe("2 h 5 min");
    expect(formatUptime(3 * 86400 + 4 * 3600)).toBe("3 d 4 h");
    expect(formatCount(1234567)).toBe("1,234,567");
  });
});

import { describe, expect, it } from "vitest";
import { pointsAttribute, sparklineRange, sparklineSegments } from "./sparkline";

const box = { width: 100, height: 20 };

describe("sparkline scaling", () => {
  it("spans the box: the first value on the left edge, the last on the right", () => {
    expect(sparklineSegments([0, 5, 10], box)).toEqual([
      [
        [0, 20],
        [50, 10],
        [100, 0],
      ],
    ]);
  });

  it("puts 0 on the bottom edge and the highest value on the top edge", () => {
    const [line] = sparklineSegments([4, 2, 4], box);
    expect(line?.map(([, y]) => y)).toEqual([0, 10, 0]);
  });

  it("keeps padding free on every side", () => {
    expect(sparklineSegments([0, 10], { ...box, pad: 2 })).toEqual([
      [
        [2, 18],
        [98, 2],
      ],
    ]);
  });

  it("draws a short series against the right edge when the box has more slots", () => {
    expect(sparklineSegments([1, 1], { ...box, slots: 5 })).toEqual([
      [
        [75, 0],
        [100, 0],
      ],
    ]);
  });

  it("lays a flat series of zeros on the baseline and a single value on the right edge", () => {
    expect(sparklineSegments([0, 0], box)).toEqual([
      [
        [0, 20],
        [100, 20],
      ],
    ]);
    expect(sparklineSegments([7], box)).toEqual([[[100, 0]]]);
  });

  it("breaks the line at gaps", () => {
    expect(sparklineSegments([null, 2, null, 4, 4], box)).toEqual([
      [[25, 10]],
      [
        [75, 0],
        [100, 0],
      ],
    ]);
    expect(sparklineSegments([null, null], box)).toEqual([]);
    expect(sparklineSegments([], box)).toEqual([]);
  });

  it("ranges from 0, or from a negative low, to the high", () => {
    expect(sparklineRange([3, 9])).toEqual({ lo: 0, hi: 9 });
    expect(sparklineRange([-2, 4])).toEqual({ lo: -2, hi: 4 });
    expect(sparklineRange([0, null])).toEqual({ lo: 0, hi: 1 });
    expect(sparklineRange([Number.NaN])).toEqual({ lo: 0, hi: 1 });
  });

  it("writes points as SVG wants them", () => {
    expect(
      pointsAttribute([
        [0, 20],
        [50.5, 10],
      ]),
    ).toBe("0,20 50.5,10");
  });
});

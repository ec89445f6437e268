/**
 * Where a sparkline's points go: a series scaled into a box, its gaps (null)
 * breaking the line. Pure geometry; `components/Sparkline.tsx` draws it.
 */

export interface SparklineBox {
  width: number;
  height: number;
  /** Room kept free on every side, so the stroke and the end dot are not clipped. */
  pad?: number;
  /**
   * How many samples the box has room for; the series is drawn against its
   * right edge, so a line that has only begun grows from the right. Defaults
   * to the series' length (the line spans the whole box).
   */
  slots?: number;
}

export type Point = readonly [x: number, y: number];

/** The series' range on the y axis: from 0 (or the lowest value, if negative) to the highest. */
export function sparklineRange(values: readonly (number | null)[]): { lo: number; hi: number } {
  let lo = 0;
  let hi = 0;
  for (const value of values) {
    if (value === null || !Number.isFinite(value)) continue;
    lo = Math.min(lo, value);
    hi = Math.max(hi, value);
  }
  // A flat series still needs a range: it lies on the baseline, or on top when it is not 0.
  if (hi <= lo) hi = lo + 1;
  return { lo, hi };
}

const round = (n: number) => Math.round(n * 100) / 100;

/**
 * The series as runs of points between gaps: x by the sample's slot, y
 * scaled so the range's bottom sits on the box's bottom edge and its top on
 * the top edge (SVG's y grows downwards).
 */
export function sparklineSegments(values: readonly (number | null)[], box: SparklineBox): Point[][] {
  const pad = box.pad ?? 0;
  const slots = Math.max(box.slots ?? values.length, values.length);
  const { lo, hi } = sparklineRange(values);
  const innerWidth = box.width - 2 * pad;
  const innerHeight = box.height - 2 * pad;
  const first = slots - values.length;
  const x = (index: number) => (slots <= 1 ? box.width - pad : pad + ((first + index) * innerWidth) / (slots - 1));
  const y = (value: number) => pad + (1 - (value - lo) / (hi - lo)) * innerHeight;

  const segments: Point[][] = [];
  let run: Point[] = [];
  values.forEach((value, index) => {
    if (value === null || !Number.isFinite(value)) {
      if (run.length > 0) segments.push(run);
      run = [];
      return;
    }
    run.push([round(x(index)), round(y(value))]);
  });
  if (run.length > 0) segments.push(run);
  return segments;
}

/** Points as SVG's `points` attribute wants them: "x,y x,y …". */
export function pointsAttribute(points: readonly Point[]): string {
  return points.map(([x, y]) => `${x},${y}`).join(" ");
}

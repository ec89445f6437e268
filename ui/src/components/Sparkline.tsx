/** A small hand-drawn line chart of a metric's recent samples, named for screen readers by its latest value. */
import { pointsAttribute, sparklineSegments, type Point } from "../lib/sparkline";

const WIDTH = 200;
const HEIGHT = 40;
const PAD = 3;

export function Sparkline({
  values,
  label,
  latest,
  slots,
  tone = "accent",
}: {
  /** Oldest first; null is a gap (no value for that sample). */
  values: readonly (number | null)[];
  /** What the line shows, e.g. "Live sessions". */
  label: string;
  /** The latest value as the tile shows it, e.g. "2" or "3.2 ms". */
  latest: string;
  /** How many samples the chart has room for (the line grows from the right). */
  slots?: number;
  tone?: "accent" | "ok" | "warn" | "bad" | "info";
}) {
  const segments = sparklineSegments(values, { width: WIDTH, height: HEIGHT, pad: PAD, slots });
  const last: Point | undefined = segments[segments.length - 1]?.at(-1);
  const baseline = HEIGHT - PAD;
  return (
    <svg
      className={`sparkline spark-${tone}`}
      viewBox={`0 0 ${WIDTH} ${HEIGHT}`}
      role="img"
      aria-label={`${label}: ${latest}`}
      data-testid="sparkline"
    >
      <line className="spark-baseline" x1={PAD} x2={WIDTH - PAD} y1={baseline} y2={baseline} />
      {segments.map((points, index) => {
        const start = points[0];
        const end = points[points.length - 1];
        if (start === undefined || end === undefined) return null;
        const area = [[start[0], baseline] as const, ...points, [end[0], baseline] as const];
        return (
          <g key={index}>
            <polygon className="spark-area" points={pointsAttribute(area)} />
            <polyline className="spark-line" points={pointsAttribute(points)} />
          </g>
        );
      })}
      {last ? <circle className="spark-dot" cx={last[0]} cy={last[1]} r={2.5} /> : null}
    </svg>
  );
}

/**
 * The System page's live history: a bounded buffer of samples, the per-second
 * rates derived from a counter in them, and how the numbers read (sizes are
 * `formatBytes` in `format.ts`). Pure: the page owns the clock and the buffer.
 */

/** One answer and when it arrived (milliseconds on this tab's clock). */
export interface Sample<T> {
  at: number;
  value: T;
}

/** Two minutes at one sample every two seconds. */
export const SAMPLE_CAPACITY = 60;

/**
 * The buffer with `sample` appended and the oldest dropped beyond `capacity`.
 * A sample no newer than the last one changes nothing (the same buffer comes
 * back), so offering the same answer twice is harmless.
 */
export function pushSample<T>(
  buffer: readonly Sample<T>[],
  sample: Sample<T>,
  capacity: number = SAMPLE_CAPACITY,
): readonly Sample<T>[] {
  const last = buffer[buffer.length - 1];
  if (last !== undefined && sample.at <= last.at) return buffer;
  const next = [...buffer, sample];
  return next.length > capacity ? next.slice(next.length - capacity) : next;
}

/**
 * How fast a counter grew between two samples, per second: null when no time
 * passed between them, and 0 when the counter went down (a daemon that
 * restarted counts from zero again), never negative.
 */
export function ratePerSecond(
  before: { at: number; count: number },
  after: { at: number; count: number },
): number | null {
  const seconds = (after.at - before.at) / 1000;
  if (!(seconds > 0)) return null;
  return Math.max(0, (after.count - before.count) / seconds);
}

/** The rate at each sample since the one before it; the first sample has none (null). */
export function rates<T>(samples: readonly Sample<T>[], count: (value: T) => number): (number | null)[] {
  return samples.map((sample, index) => {
    const previous = index > 0 ? samples[index - 1] : undefined;
    if (previous === undefined) return null;
    return ratePerSecond(
      { at: previous.at, count: count(previous.value) },
      { at: sample.at, count: count(sample.value) },
    );
  });
}

/** The largest number in a series, ignoring gaps; null when there is none. */
export function peak(values: readonly (number | null)[]): number | null {
  let best: number | null = null;
  for (const value of values) {
    if (value !== null && Number.isFinite(value) && (best === null || value > best)) best = value;
  }
  return best;
}

/** An execution's duration: "0.42 ms", "3.2 ms", "250 ms", "1.50 s"; "—" for none. */
export function formatMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "—";
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 100) return `${ms.toFixed(1)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

/** A per-second rate: "0", "0.50", "12.3"; "—" for none. */
export function formatRate(perSecond: number | null | undefined): string {
  if (perSecond === null || perSecond === undefined || !Number.isFinite(perSecond)) return "—";
  if (perSecond === 0) return "0";
  return perSecond < 10 ? perSecond.toFixed(2) : perSecond.toFixed(1);
}

/** How long the daemon has run: "12 s", "5 min 3 s", "2 h 5 min", "3 d 4 h". */
export function formatUptime(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "—";
  const whole = Math.floor(seconds);
  if (whole < 60) return `${whole} s`;
  const minutes = Math.floor(whole / 60);
  if (minutes < 60) return `${minutes} min ${whole % 60} s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `${hours} h ${minutes % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

/** A count with thousands separators: "1,234,567". */
export function formatCount(count: number): string {
  return Number.isFinite(count) ? Math.round(count).toLocaleString("en-US") : "—";
}

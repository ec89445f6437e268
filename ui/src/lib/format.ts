/** Small display helpers: ids, times, durations. */

export function shortId(id: string): string {
  return id.length > 8 ? id.slice(0, 8) : id;
}

export function formatDuration(ms: number | undefined | null): string {
  if (ms === undefined || ms === null || Number.isNaN(ms)) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  const minutes = Math.floor(ms / 60_000);
  const seconds = Math.round((ms % 60_000) / 1000);
  return `${minutes} min ${seconds} s`;
}

/** "512 B", "1.5 KiB", "11.8 MiB", "2.00 GiB". */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return "—";
  if (bytes < 1024) return `${Math.round(bytes)} B`;
  if (bytes < 1024 ** 2) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
  return `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
}

/** "3 min ago", "just now", "in 2 d" (a future moment), or the date for anything over a week away. */
export function relativeTime(iso: string | undefined | null, now: number = Date.now()): string {
  if (!iso) return "—";
  const at = Date.parse(iso);
  if (Number.isNaN(at)) return iso;
  const signed = Math.round((now - at) / 1000);
  const seconds = Math.abs(signed);
  const say = (amount: string) => (signed < 0 ? `in ${amount}` : `${amount} ago`);
  if (seconds < 5) return "just now";
  if (seconds < 60) return say(`${seconds} s`);
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return say(`${minutes} min`);
  const hours = Math.round(minutes / 60);
  if (hours < 24) return say(`${hours} h`);
  const days = Math.round(hours / 24);
  if (days < 7) return say(`${days} d`);
  return new Date(at).toLocaleDateString();
}

export function absoluteTime(iso: string | undefined | null): string {
  if (!iso) return "";
  const at = Date.parse(iso);
  return Number.isNaN(at) ? iso : new Date(at).toLocaleString();
}

/** First line of a snippet, shortened for lists. */
export function firstLine(source: string | undefined | null, max = 80): string {
  if (!source) return "";
  const lines = source.trim().split("\n");
  const first = lines[0] ?? "";
  const more = lines.length > 1 ? " …" : "";
  return first.length > max ? `${first.slice(0, max - 1)}…` : first + more;
}

/** "14:03:07.412": when in the day an event happened, to the millisecond. */
export function clockTime(iso: string): string {
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return iso;
  const pad = (n: number, width = 2) => String(n).padStart(width, "0");
  return `${pad(at.getHours())}:${pad(at.getMinutes())}:${pad(at.getSeconds())}.${pad(at.getMilliseconds(), 3)}`;
}

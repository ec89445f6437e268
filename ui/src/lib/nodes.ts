/**
 * The System page's nodes table, as words and numbers: how old a heartbeat
 * (or a start, or a loss) is, how full a node is, which tone its status takes and the order the rows
 * come in. Pure: the page owns the clock (the time of the last answer).
 */

/** What this file reads of a node (a `NodeView`); tests build it by hand. */
export interface NodeLike {
  id: string;
  status: "live" | "lost";
  this_node: boolean;
  started_at: string;
  max_sessions: number;
  active_sessions: number;
}

/**
 * How long before `now` (milliseconds) the instant `iso` was, in the largest
 * whole unit that keeps the number small, as `vm-system ops nodes` says it:
 * `2s ago`, `5m ago`, `3h ago`, `2d ago`; `in 2s` when `iso` is ahead of this
 * machine's clock (the clocks disagree); "—" for no or an unreadable time.
 */
export function formatAge(iso: string | null | undefined, now: number): string {
  if (!iso) return "—";
  const at = Date.parse(iso);
  if (Number.isNaN(at) || !Number.isFinite(now)) return "—";
  // Whole seconds toward zero, like the CLI: 1.9 s ago is "1s ago", 0.4 s ahead is "0s ago".
  const seconds = Math.trunc((now - at) / 1000);
  const magnitude = Math.abs(seconds);
  let amount: string;
  if (magnitude < 120) amount = `${magnitude}s`;
  else if (magnitude < 7_200) amount = `${Math.floor(magnitude / 60)}m`;
  else if (magnitude < 172_800) amount = `${Math.floor(magnitude / 3_600)}h`;
  else amount = `${Math.floor(magnitude / 86_400)}d`;
  return seconds < 0 ? `in ${amount}` : `${amount} ago`;
}

/** "3 / 64": a node's live sessions out of the most it runs. */
export function formatCapacity(active: number, max: number): string {
  return `${active} / ${max}`;
}

/** How full a node is, from 0 to 1 (a node with no room at all counts as full). */
export function capacityShare(active: number, max: number): number {
  if (!(max > 0)) return active > 0 ? 1 : 0;
  return Math.min(1, Math.max(0, active / max));
}

/** Whether a node takes no more sessions (a create placed on it would be `NO_CAPACITY`). */
export function isFull(node: Pick<NodeLike, "active_sessions" | "max_sessions">): boolean {
  return node.active_sessions >= node.max_sessions;
}

/** The badge tone of a node's status, in the UI's tones: live is ok, lost is bad. */
export function nodeStatusTone(status: NodeLike["status"]): "ok" | "bad" {
  return status === "live" ? "ok" : "bad";
}

/**
 * The rows in the order the table shows them: live nodes first (the one that
 * answered first of all), then lost ones; newest started first within each.
 * A new array: the one given is left as it is.
 */
export function sortNodes<T extends NodeLike>(nodes: readonly T[]): T[] {
  const rank = (node: NodeLike) => (node.status === "live" ? (node.this_node ? 0 : 1) : 2);
  const started = (node: NodeLike) => {
    const at = Date.parse(node.started_at);
    return Number.isNaN(at) ? -Infinity : at;
  };
  return [...nodes].sort((a, b) => rank(a) - rank(b) || started(b) - started(a) || a.id.localeCompare(b.id));
}

/** What the table's description says: how many nodes are live and lost, and the live ones' sessions. */
export interface NodesSummary {
  live: number;
  lost: number;
  activeSessions: number;
  maxSessions: number;
}

export function summarizeNodes(nodes: readonly NodeLike[]): NodesSummary {
  const summary: NodesSummary = { live: 0, lost: 0, activeSessions: 0, maxSessions: 0 };
  for (const node of nodes) {
    if (node.status === "live") {
      summary.live += 1;
      summary.activeSessions += node.active_sessions;
      summary.maxSessions += node.max_sessions;
    } else {
      summary.lost += 1;
    }
  }
  return summary;
}

/** "2 live nodes, 1 lost · 3 / 512 sessions"; "1 live node · 0 / 256 sessions". */
export function describeNodes(summary: NodesSummary): string {
  const live = `${summary.live} live ${summary.live === 1 ? "node" : "nodes"}`;
  const lost = summary.lost > 0 ? `, ${summary.lost} lost` : "";
  return `${live}${lost} · ${formatCapacity(summary.activeSessions, summary.maxSessions)} sessions`;
}

/** Whether a node's URL can be a link (http or https); anything else is shown as text. */
export function isWebUrl(url: string): boolean {
  return /^https?:\/\/[^\s]+$/i.test(url);
}

/**
 * Whether a node still counts as live although its lease ran out before `now`:
 * it stopped renewing, and the next sweep by another node marks it lost.
 */
export function isLeaseOverdue(node: { status: NodeLike["status"]; lease_expires_at: string }, now: number): boolean {
  if (node.status !== "live") return false;
  const until = Date.parse(node.lease_expires_at);
  return !Number.isNaN(until) && until < now;
}

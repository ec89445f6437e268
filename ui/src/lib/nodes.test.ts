import { describe, expect, it } from "vitest";
import {
  capacityShare,
  describeNodes,
  formatCapacity,
  formatAge,
  isFull,
  isLeaseOverdue,
  isWebUrl,
  nodeStatusTone,
  sortNodes,
  summarizeNodes,
  type NodeLike,
} from "./nodes";

const NOW = Date.parse("2030-01-01T12:00:00Z");

function node(id: string, overrides: Partial<NodeLike> = {}): NodeLike {
  return {
    id,
    status: "live",
    this_node: false,
    started_at: "2030-01-01T10:00:00Z",
    max_sessions: 64,
    active_sessions: 0,
    ...overrides,
  };
}

describe("an age", () => {
  it("says it like `vm-system ops nodes`: seconds, minutes, hours, days", () => {
    expect(formatAge("2030-01-01T12:00:00Z", NOW)).toBe("0s ago");
    expect(formatAge("2030-01-01T11:59:58Z", NOW)).toBe("2s ago");
    expect(formatAge("2030-01-01T11:58:01Z", NOW)).toBe("119s ago");
    expect(formatAge("2030-01-01T11:58:00Z", NOW)).toBe("2m ago");
    expect(formatAge("2030-01-01T11:55:00Z", NOW)).toBe("5m ago");
    expect(formatAge("2030-01-01T09:00:00Z", NOW)).toBe("3h ago");
    expect(formatAge("2029-12-30T12:00:01Z", NOW)).toBe("47h ago");
    expect(formatAge("2029-12-29T12:00:00Z", NOW)).toBe("3d ago");
  });

  it("counts whole seconds, so a fraction never shows", () => {
    expect(formatAge("2030-01-01T11:59:58.100Z", NOW)).toBe("1s ago");
    expect(formatAge("2030-01-01T11:59:59.999Z", NOW)).toBe("0s ago");
  });

  it("says `in` when the heartbeat is ahead of this machine's clock", () => {
    expect(formatAge("2030-01-01T12:00:03Z", NOW)).toBe("in 3s");
    expect(formatAge("2030-01-01T12:10:00Z", NOW)).toBe("in 10m");
    expect(formatAge("2030-01-01T12:00:00.400Z", NOW)).toBe("0s ago");
  });

  it("shows a dash for no time or one it cannot read", () => {
    expect(formatAge(null, NOW)).toBe("—");
    expect(formatAge(undefined, NOW)).toBe("—");
    expect(formatAge("", NOW)).toBe("—");
    expect(formatAge("yesterday-ish", NOW)).toBe("—");
    expect(formatAge("2030-01-01T12:00:00Z", Number.NaN)).toBe("—");
  });
});

describe("capacity", () => {
  it("reads as active / max", () => {
    expect(formatCapacity(3, 64)).toBe("3 / 64");
    expect(formatCapacity(0, 256)).toBe("0 / 256");
  });

  it("is a share between 0 and 1", () => {
    expect(capacityShare(0, 64)).toBe(0);
    expect(capacityShare(16, 64)).toBe(0.25);
    expect(capacityShare(64, 64)).toBe(1);
    expect(capacityShare(70, 64)).toBe(1);
    expect(capacityShare(-1, 64)).toBe(0);
    expect(capacityShare(0, 0)).toBe(0);
    expect(capacityShare(2, 0)).toBe(1);
  });

  it("is full at the most sessions a node runs", () => {
    expect(isFull({ active_sessions: 63, max_sessions: 64 })).toBe(false);
    expect(isFull({ active_sessions: 64, max_sessions: 64 })).toBe(true);
    expect(isFull({ active_sessions: 0, max_sessions: 0 })).toBe(true);
  });
});

describe("status", () => {
  it("takes the UI's tones: live ok, lost bad", () => {
    expect(nodeStatusTone("live")).toBe("ok");
    expect(nodeStatusTone("lost")).toBe("bad");
  });
});

describe("an overdue lease", () => {
  it("is a live node whose lease ran out before now", () => {
    expect(isLeaseOverdue({ status: "live", lease_expires_at: "2030-01-01T11:59:59Z" }, NOW)).toBe(true);
    expect(isLeaseOverdue({ status: "live", lease_expires_at: "2030-01-01T12:00:00Z" }, NOW)).toBe(false);
    expect(isLeaseOverdue({ status: "live", lease_expires_at: "2030-01-01T12:00:05Z" }, NOW)).toBe(false);
  });

  it("is never a lost node, nor a time it cannot read", () => {
    expect(isLeaseOverdue({ status: "lost", lease_expires_at: "2030-01-01T11:00:00Z" }, NOW)).toBe(false);
    expect(isLeaseOverdue({ status: "live", lease_expires_at: "soon" }, NOW)).toBe(false);
  });
});

describe("the rows' order", () => {
  it("puts this node first, then the other live nodes, then lost ones, newest started first", () => {
    const nodes = [
      node("lost-old", { status: "lost", started_at: "2030-01-01T08:00:00Z" }),
      node("live-old", { started_at: "2030-01-01T09:00:00Z" }),
      node("lost-new", { status: "lost", started_at: "2030-01-01T11:00:00Z" }),
      node("this", { this_node: true, started_at: "2030-01-01T07:00:00Z" }),
      node("live-new", { started_at: "2030-01-01T11:30:00Z" }),
    ];
    expect(sortNodes(nodes).map((n) => n.id)).toEqual(["this", "live-new", "live-old", "lost-new", "lost-old"]);
  });

  it("leaves the list it is given as it was and keeps the rows' own fields", () => {
    const nodes = [node("b", { status: "lost" }), node("a", { active_sessions: 3 })];
    const sorted = sortNodes(nodes);
    expect(nodes.map((n) => n.id)).toEqual(["b", "a"]);
    expect(sorted[0]).toBe(nodes[1]);
  });

  it("orders ties (and unreadable start times) the same way every time", () => {
    const nodes = [node("b"), node("c", { started_at: "not a time" }), node("a")];
    expect(sortNodes(nodes).map((n) => n.id)).toEqual(["a", "b", "c"]);
    expect(sortNodes([...nodes].reverse()).map((n) => n.id)).toEqual(["a", "b", "c"]);
  });
});

describe("the summary", () => {
  it("counts live and lost nodes and the live ones' sessions", () => {
    const summary = summarizeNodes([
      node("a", { this_node: true, active_sessions: 3, max_sessions: 64 }),
      node("b", { active_sessions: 1, max_sessions: 256 }),
      node("c", { status: "lost", active_sessions: 0, max_sessions: 64 }),
    ]);
    expect(summary).toEqual({ live: 2, lost: 1, activeSessions: 4, maxSessions: 320 });
    expect(describeNodes(summary)).toBe("2 live nodes, 1 lost · 4 / 320 sessions");
  });

  it("says one node in the singular and leaves out lost when there are none", () => {
    expect(describeNodes(summarizeNodes([node("a", { max_sessions: 256 })]))).toBe("1 live node · 0 / 256 sessions");
    expect(describeNodes(summarizeNodes([]))).toBe("0 live nodes · 0 / 0 sessions");
  });
});

describe("node URLs", () => {
  it("links http and https URLs only", () => {
    expect(isWebUrl("http://127.0.0.1:3210")).toBe(true);
    expect(isWebUrl("https://node-2.internal:8443/")).toBe(true);
    expect(isWebUrl("javascript:alert(1)")).toBe(false);
    expect(isWebUrl("127.0.0.1:3210")).toBe(false);
    expect(isWebUrl("")).toBe(false);
  });
});

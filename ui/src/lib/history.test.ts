import { describe, expect, it } from "vitest";
import { back, emptyHistory, forward, MAX_HISTORY, record } from "./history";

describe("REPL history", () => {
  it("walks back through earlier inputs and forward to the draft", () => {
    let history = record(record(emptyHistory(), "let x = 1"), "x + 1");
    const first = back(history, "draft");
    expect(first?.text).toBe("x + 1");
    history = first!.history;
    const second = back(history, "ignored");
    expect(second?.text).toBe("let x = 1");
    history = second!.history;
    expect(back(history, "")).toBeNull();
    const third = forward(history);
    expect(third?.text).toBe("x + 1");
    const fourth = forward(third!.history);
    expect(fourth?.text).toBe("draft");
    expect(forward(fourth!.history)).toBeNull();
  });

  it("does nothing with an empty history", () => {
    expect(back(emptyHistory(), "x")).toBeNull();
    expect(forward(emptyHistory())).toBeNull();
  });

  it("skips blanks and immediate repeats, and stays bounded", () => {
    let history = record(emptyHistory(), "   ");
    expect(history.entries).toEqual([]);
    history = record(record(history, "a"), "a");
    expect(history.entries).toEqual(["a"]);
    for (let i = 0; i < MAX_HISTORY + 10; i++) history = record(history, `n${i}`);
    expect(history.entries).toHaveLength(MAX_HISTORY);
    expect(history.entries[history.entries.length - 1]).toBe(`n${MAX_HISTORY + 9}`);
  });
});

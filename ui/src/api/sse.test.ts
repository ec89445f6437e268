import { describe, expect, it } from "vitest";
import { SseParser, type SseMessage } from "./sse";

function parseAll(chunks: string[]): SseMessage[] {
  const parser = new SseParser();
  return [...chunks.flatMap((chunk) => parser.push(chunk)), ...parser.end()];
}

describe("SseParser", () => {
  it("reads the daemon's three kinds of message", () => {
    const text =
      'event: event\nid: 1\ndata: {"seq":1}\n\n' +
      'event: event\nid: 2\ndata: {"seq":2}\n\n' +
      'event: end\ndata: {"status":"ok"}\n\n';
    expect(parseAll([text])).toEqual([
      { event: "event", data: '{"seq":1}', id: "1" },
      { event: "event", data: '{"seq":2}', id: "2" },
      { event: "end", data: '{"status":"ok"}', id: null },
    ]);
  });

  it("gives the same messages however the text is cut into chunks", () => {
    const text = 'event: event\r\nid: 7\r\ndata: {"a":\r\ndata: 1}\r\n\r\n: heartbeat\n\nevent: end\rdata: x\r\r';
    const whole = parseAll([text]);
    expect(whole).toEqual([
      { event: "event", data: '{"a":\n1}', id: "7" },
      { event: "end", data: "x", id: null },
    ]);
    for (let size = 1; size <= 5; size++) {
      const chunks: string[] = [];
      for (let i = 0; i < text.length; i += size) chunks.push(text.slice(i, i + size));
      expect(parseAll(chunks), `chunks of ${size}`).toEqual(whole);
    }
  });

  it("skips comments (the heartbeat) and blocks without data", () => {
    expect(parseAll([": keep-alive\n\n", "id: 3\n\n", "event: ping\n\n", "data: only\n\n"])).toEqual([
      { event: "message", data: "only", id: null },
    ]);
  });

  it("strips one space after the colon and reads a field without one", () => {
    expect(parseAll(["data:  two spaces\ndata\ndata:none\n\n"])).toEqual([
      { event: "message", data: " two spaces\n\nnone", id: null },
    ]);
  });

  it("ignores retry and unknown fields, and an id holding NUL", () => {
    expect(parseAll(["retry: 10\nfoo: bar\nid: a\0b\ndata: x\n\n"])).toEqual([
      { event: "message", data: "x", id: null },
    ]);
  });

  it("drops a message the stream ended in the middle of", () => {
    expect(parseAll(['event: event\ndata: {"seq":1}\n\nevent: end\ndata: {"st'])).toEqual([
      { event: "event", data: '{"seq":1}', id: null },
    ]);
  });
});

/**
 * A parser for Server-Sent Events (the `text/event-stream` format of the
 * HTML standard), fed text as it arrives in chunks of any size. Knows
 * nothing of fetch, executions or the daemon.
 */

/** One dispatched message: its `event:` type, its `data:` lines joined by "\n", its `id:`. */
export interface SseMessage {
  /** `message` when the block named no `event:`. */
  event: string;
  data: string;
  /** The block's own `id:` field, or null when it had none. */
  id: string | null;
}

export class SseParser {
  /** Text not yet split into lines: a partial line, or one ending in a lone CR that an LF may follow. */
  private buffer = "";
  private event = "";
  private data: string[] = [];
  private id: string | null = null;

  /** Parses `chunk` and returns the messages it completed, in order. */
  push(chunk: string): SseMessage[] {
    this.buffer += chunk;
    const messages: SseMessage[] = [];
    const text = this.buffer;
    let start = 0;
    for (let i = 0; i < text.length; i++) {
      const char = text[i];
      if (char !== "\n" && char !== "\r") continue;
      // A CR that ends the chunk may be the first half of a CRLF: wait for the next chunk.
      if (char === "\r" && i + 1 === text.length) break;
      const line = text.slice(start, i);
      if (char === "\r" && text[i + 1] === "\n") i++;
      start = i + 1;
      this.line(line, messages);
    }
    this.buffer = text.slice(start);
    return messages;
  }

  /**
   * The stream ended: a final lone CR still ends its line, and a message
   * without its closing blank line is dropped, as the standard says.
   */
  end(): SseMessage[] {
    const messages: SseMessage[] = [];
    if (this.buffer.endsWith("\r")) this.line(this.buffer.slice(0, -1), messages);
    this.buffer = "";
    this.reset();
    return messages;
  }

  private line(line: string, messages: SseMessage[]): void {
    if (line === "") {
      // A blank line ends a block; one with no data (only comments, say) dispatches nothing.
      if (this.data.length > 0) {
        messages.push({ event: this.event || "message", data: this.data.join("\n"), id: this.id });
      }
      this.reset();
      return;
    }
    if (line.startsWith(":")) return; // a comment: the daemon's heartbeat
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "event":
        this.event = value;
        break;
      case "data":
        this.data.push(value);
        break;
      case "id":
        if (!value.includes("\0")) this.id = value;
        break;
      default:
        // `retry:` and unknown fields: the follower keeps its own backoff.
        break;
    }
  }

  private reset(): void {
    this.event = "";
    this.data = [];
    this.id = null;
  }
}

/** The full, ordered event log of one execution; read again now and then while it runs. */
import { useEffect, useRef } from "react";
import { useEvents } from "../api/queries";
import { absoluteTime, clockTime } from "../lib/format";
import { EventItem } from "./EventItem";
import { EmptyState, QueryState } from "./feedback";

export function EventLog({ executionId, running = false }: { executionId: string; running?: boolean }) {
  const events = useEvents(executionId, true, running);
  const { refetch } = events;
  const wasRunning = useRef(running);
  useEffect(() => {
    // The last poll may have come before the last events: read once more when it ends.
    if (wasRunning.current && !running) void refetch();
    wasRunning.current = running;
  }, [running, refetch]);
  return (
    <QueryState query={events} label="Loading events…">
      {(list) =>
        list.length === 0 ? (
          <EmptyState title="No events" />
        ) : (
          <div className="event-log" data-testid="event-log">
            {list.map((event) => (
              <div className="event-log-row" key={event.seq} data-testid="event-log-row" data-event-type={event.type}>
                <span className="event-log-meta">
                  <span className="mono">#{event.seq}</span>
                  <span className="event-type">{event.type}</span>
                  <time className="muted small" dateTime={event.ts} title={absoluteTime(event.ts)}>
                    {clockTime(event.ts)}
                  </time>
                </span>
                <EventItem event={event} />
              </div>
            ))}
          </div>
        )
      }
    </QueryState>
  );
}

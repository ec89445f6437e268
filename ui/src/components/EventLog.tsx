/** The full, ordered event log of one execution. */
import { useEvents } from "../api/queries";
import { absoluteTime, clockTime } from "../lib/format";
import { EventItem } from "./EventItem";
import { EmptyState, QueryState } from "./feedback";

export function EventLog({ executionId }: { executionId: string }) {
  const events = useEvents(executionId);
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

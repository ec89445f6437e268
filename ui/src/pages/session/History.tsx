/**
 * A session's executions, newest first; each opens to its event log. It
 * follows on its own: runs from the console refresh it as they start and
 * end, and polling brings in runs from elsewhere.
 */
import { useState } from "react";
import { Link } from "react-router";
import type { Execution } from "../../api/client";
import { useExecutions } from "../../api/queries";
import { StatusBadge, Tag, Time } from "../../components/bits";
import { EventLog } from "../../components/EventLog";
import { EmptyState, QueryState } from "../../components/feedback";
import { firstLine, formatDuration } from "../../lib/format";

const KIND_LABEL: Record<string, string> = { repl: "repl", run_file: "file", startup: "startup" };

function label(execution: Execution): string {
  if (execution.kind === "repl") return firstLine(execution.input, 60);
  return execution.path ?? firstLine(execution.input, 60);
}

export function ExecutionHistory({ sessionId }: { sessionId: string }) {
  const executions = useExecutions(sessionId);
  const [open, setOpen] = useState<string | null>(null);
  return (
    <section className="card history" data-testid="execution-history">
      <div className="card-head">
        <div>
          <h2>Execution history</h2>
          <p className="card-description">
            Newest first, including startup files; updates as runs start and end. Open one to see its event log.
          </p>
        </div>
      </div>
      <QueryState query={executions} label="Loading executions…">
        {(list) =>
          list.length === 0 ? (
            <EmptyState title="No executions yet">Run a snippet or a file and it shows up here.</EmptyState>
          ) : (
            <ul className="history-list">
              {list.map((execution) => {
                const expanded = open === execution.id;
                return (
                  <li
                    key={execution.id}
                    className={expanded ? "history-item open" : "history-item"}
                    data-testid="history-item"
                    data-kind={execution.kind}
                    data-status={execution.status}
                  >
                    <button
                      type="button"
                      className="history-row"
                      aria-expanded={expanded}
                      onClick={() => setOpen(expanded ? null : execution.id)}
                    >
                      <Tag tone={execution.kind === "startup" ? "info" : "muted"}>{KIND_LABEL[execution.kind]}</Tag>
                      <span className="history-label mono">
                        {label(execution) || <span className="muted">(empty)</span>}
                      </span>
                      <StatusBadge status={execution.status} />
                      <span className="muted small nowrap">{formatDuration(execution.metrics.duration_ms)}</span>
                    </button>
                    {expanded ? (
                      <div className="history-detail">
                        <div className="history-detail-head">
                          <span className="muted small">
                            started <Time iso={execution.started_at} /> · {execution.metrics.event_count} events
                          </span>
                          <Link className="small" to={`/executions/${execution.id}`}>
                            Open execution →
                          </Link>
                        </div>
                        <EventLog executionId={execution.id} running={execution.status === "running"} />
                      </div>
                    ) : null}
                  </li>
                );
              })}
            </ul>
          )
        }
      </QueryState>
    </section>
  );
}

/** One execution: what ran, how it ended, and its whole event log. */
import { Link, useParams } from "react-router";
import { decodeExecutionError, decodeResult } from "../api/events";
import { useExecution } from "../api/queries";
import { Card, CopyId, PageHeader, StatusBadge, Tag, Time, useTitle } from "../components/bits";
import { ValueView } from "../components/EventItem";
import { EventLog } from "../components/EventLog";
import { QueryState } from "../components/feedback";
import { absoluteTime, formatBytes, formatDuration } from "../lib/format";

export function ExecutionPage() {
  const { id = "" } = useParams();
  const execution = useExecution(id);
  useTitle(`Execution ${id.slice(0, 8)}`);
  return (
    <div className="page" data-testid="execution-page">
      <QueryState query={execution} label="Loading the execution…">
        {(detail) => {
          const result = decodeResult(detail.result);
          const error = decodeExecutionError(detail.error);
          return (
            <>
              <PageHeader
                crumbs={[
                  { to: "/sessions", label: "Sessions" },
                  { to: `/sessions/${detail.session_id}`, label: detail.session_id.slice(0, 8) },
                ]}
                title={
                  <span className="title-with-badge">
                    Execution <span className="mono">{detail.id.slice(0, 8)}</span>
                    <StatusBadge status={detail.status} />
                  </span>
                }
                subtitle={
                  <span className="meta-row">
                    <Tag tone="info">{detail.kind}</Tag>
                    <span title={absoluteTime(detail.started_at)}>
                      started <Time iso={detail.started_at} />
                    </span>
                    <span>{formatDuration(detail.metrics.duration_ms)}</span>
                    <span>{detail.metrics.event_count} events</span>
                    <span>{formatBytes(detail.metrics.output_bytes)} output</span>
                    <CopyId id={detail.id} />
                  </span>
                }
              />
              <div className="detail-grid">
                <div className="detail-col">
                  <Card title={detail.kind === "repl" ? "Input" : "File"}>
                    {detail.path ? (
                      <div className="kv">
                        <span>path</span>
                        <code>{detail.path}</code>
                      </div>
                    ) : null}
                    {detail.input ? <pre className="code-block">{detail.input}</pre> : null}
                    {Object.keys(detail.args).length > 0 ? (
                      <div className="kv">
                        <span>args</span>
                        <code>{JSON.stringify(detail.args)}</code>
                      </div>
                    ) : null}
                    {Object.keys(detail.env).length > 0 ? (
                      <div className="kv">
                        <span>env</span>
                        <code>{JSON.stringify(detail.env)}</code>
                      </div>
                    ) : null}
                  </Card>
                  <Card title="Outcome">
                    {error ? (
                      <div className="error-panel compact" data-testid="execution-error">
                        <div className="error-head">
                          <span className="error-code">{error.code}</span>
                        </div>
                        <div className="error-message">{error.message}</div>
                      </div>
                    ) : null}
                    {result ? <ValueView {...result} /> : null}
                    {!error && !result ? <p className="muted">No value.</p> : null}
                    <p className="small muted">
                      {detail.ended_at ? <>ended {absoluteTime(detail.ended_at)}</> : "still running"} ·{" "}
                      <Link to={`/sessions/${detail.session_id}`}>back to the session</Link>
                    </p>
                  </Card>
                </div>
                <div className="detail-col">
                  <Card
                    title="Event log"
                    description="Every event in order, as the daemon stored it."
                    testId="event-log-card"
                  >
                    <EventLog executionId={detail.id} />
                  </Card>
                </div>
              </div>
            </>
          );
        }}
      </QueryState>
    </div>
  );
}

/** One execution: what ran, how it ended (or Cancel while it runs), and its whole event log. */
import { useMutation, useQueryClient } from "@tanstack/react-query";
import { Link, useParams } from "react-router";
import { api, toApiError, unwrap } from "../api/client";
import { keys, useExecution } from "../api/queries";
import { Card, CopyId, PageHeader, StatusBadge, Tag, Time, useTitle } from "../components/bits";
import { ValueView } from "../components/EventItem";
import { EventLog } from "../components/EventLog";
import { ErrorPanel, QueryState } from "../components/feedback";
import { absoluteTime, formatBytes, formatDuration } from "../lib/format";

export function ExecutionPage() {
  const { id = "" } = useParams();
  const execution = useExecution(id);
  useTitle(`Execution ${id.slice(0, 8)}`);
  const queryClient = useQueryClient();
  const cancel = useMutation({
    mutationFn: () => unwrap(api.POST("/executions/{id}/cancel", { params: { path: { id } } })),
    // Ended either way: cancelled now, or on its own meanwhile (`EXECUTION_NOT_RUNNING`).
    onSettled: (ended) => {
      if (ended) {
        queryClient.setQueryData(keys.execution(id), ended);
        void queryClient.invalidateQueries({ queryKey: keys.executions(ended.session_id) });
      } else {
        void queryClient.invalidateQueries({ queryKey: keys.execution(id) });
      }
      void queryClient.invalidateQueries({ queryKey: keys.events(id) });
    },
  });
  return (
    <div className="page" data-testid="execution-page">
      <QueryState query={execution} label="Loading the execution…">
        {(detail) => {
          const { result, error } = detail;
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
                actions={
                  detail.status === "running" ? (
                    <button
                      type="button"
                      className="button danger-quiet"
                      title="Stop this execution. With checkpoints on, the session goes back to its state from before it."
                      disabled={cancel.isPending}
                      onClick={() => cancel.mutate()}
                    >
                      {cancel.isPending ? "Cancelling…" : "Cancel"}
                    </button>
                  ) : undefined
                }
              />
              {cancel.error && toApiError(cancel.error).code !== "EXECUTION_NOT_RUNNING" ? (
                <ErrorPanel error={cancel.error} compact title="Cancel failed" />
              ) : null}
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
                    {result ? <ValueView value={result} /> : null}
                    {!error && !result ? (
                      <p className="muted">
                        {detail.status === "running" ? "No value yet: it still runs." : "No value."}
                      </p>
                    ) : null}
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
                    <EventLog executionId={detail.id} running={detail.status === "running"} />
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

/** One session: what it is (and what it was forked from), its console, and its execution history. */
import { Link, useParams } from "react-router";
import { useSession, useTemplates } from "../api/queries";
import { CopyId, PageHeader, StatusBadge, Time, useTitle } from "../components/bits";
import { ErrorPanel, QueryState } from "../components/feedback";
import { shortId } from "../lib/format";
import { SessionConsole } from "./session/Console";
import { ExecutionHistory } from "./session/History";
import { useConsoleBusy } from "./session/useTranscript";
import { ForkedFrom, useCloseSession, useForkSession } from "./SessionsPage";

export function SessionDetailPage() {
  const { id = "" } = useParams();
  const session = useSession(id);
  useTitle(`Session ${id.slice(0, 8)}`);
  const templates = useTemplates();
  const close = useCloseSession();
  const fork = useForkSession();
  const running = useConsoleBusy(id);
  return (
    <div className="page wide" data-testid="session-detail-page">
      <QueryState query={session} label="Loading the session…">
        {(detail) => {
          const template = templates.data?.find((t) => t.id === detail.template_id);
          const live = detail.status === "ready" || detail.status === "starting";
          return (
            <>
              <PageHeader
                crumbs={[{ to: "/sessions", label: "Sessions" }]}
                title={
                  <span className="title-with-badge">
                    Session <span className="mono">{detail.id.slice(0, 8)}</span>
                    <StatusBadge status={detail.status} />
                  </span>
                }
                subtitle={
                  <span className="meta-row">
                    <span>
                      template{" "}
                      <Link to={`/templates/${detail.template_id}`}>
                        {template?.name ?? detail.template_id.slice(0, 8)}
                      </Link>
                    </span>
                    <span className="mono" title="worktree">
                      {detail.worktree_path}
                    </span>
                    <span>
                      {detail.workspace_id} <span className="mono muted">@{detail.base_commit_oid}</span>
                    </span>
                    <span>
                      created <Time iso={detail.created_at} />
                    </span>
                    {detail.closed_at ? (
                      <span>
                        closed <Time iso={detail.closed_at} />
                      </span>
                    ) : null}
                    <ForkedFrom session={detail} />
                    {detail.node_id ? (
                      <span data-testid="session-node">
                        node{" "}
                        <Link to="/system" className="mono" title={detail.node_id}>
                          {shortId(detail.node_id)}
                        </Link>
                      </span>
                    ) : null}
                    <CopyId id={detail.id} />
                  </span>
                }
                actions={
                  live ? (
                    <>
                      <button
                        type="button"
                        className="button"
                        title={
                          running
                            ? "An execution is running: fork once it has ended"
                            : "Start a new session whose heap is a copy of this one's: every variable, function and loaded module"
                        }
                        disabled={fork.isPending || running || detail.status !== "ready"}
                        onClick={() => fork.mutate(detail.id)}
                      >
                        {fork.isPending ? "Forking…" : "Fork session"}
                      </button>
                      <button
                        type="button"
                        className="button"
                        disabled={close.isPending}
                        onClick={() => close.mutate(detail.id)}
                      >
                        {close.isPending ? "Closing…" : "Close session"}
                      </button>
                    </>
                  ) : undefined
                }
              />
              {close.error ? <ErrorPanel error={close.error} compact title="Closing failed" /> : null}
              {fork.error ? <ErrorPanel error={fork.error} compact title="Forking failed" /> : null}
              {detail.last_error ? (
                <div className="banner banner-bad" role="alert" data-testid="last-error">
                  <strong>Last error:</strong> {detail.last_error}
                </div>
              ) : null}
              {detail.status === "closed" ? (
                <div className="banner" data-testid="closed-banner">
                  This session is closed: its runtime is gone, its executions stay readable.
                </div>
              ) : null}
              <div className="session-grid">
                <SessionConsole key={detail.id} sessionId={detail.id} ready={detail.status === "ready"} />
                <ExecutionHistory sessionId={detail.id} />
              </div>
            </>
          );
        }}
      </QueryState>
    </div>
  );
}

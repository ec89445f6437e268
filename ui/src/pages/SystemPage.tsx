/**
 * The daemon: health, its database, what is alive, the nodes serving the database, its live
 * metrics, the catalogs, and where the API docs are.
 */
import { Link } from "react-router";
import { useCatalogLibraries, useCatalogModules, useHealth, useReady, useRuntimeSummary } from "../api/queries";
import { Card, PageHeader, Tag, useTitle } from "../components/bits";
import { ErrorPanel, Loading, QueryState } from "../components/feedback";
import { LiveMetrics } from "./system/LiveMetrics";
import { Nodes } from "./system/Nodes";

export function SystemPage() {
  useTitle("System");
  const health = useHealth();
  const ready = useReady();
  const summary = useRuntimeSummary();
  const modules = useCatalogModules();
  const libraries = useCatalogLibraries();
  return (
    <div className="page" data-testid="system-page">
      <PageHeader
        title="System"
        subtitle="The daemon this UI talks to, and every daemon serving its database."
        actions={
          <a className="button" href="/docs/" target="_blank" rel="noreferrer">
            API docs (Swagger UI) ↗
          </a>
        }
      />
      <div className="stat-row">
        <div className="stat" data-testid="health-stat">
          <div className="stat-label">Health</div>
          {health.isPending ? (
            <Loading label="Checking…" />
          ) : health.error ? (
            <ErrorPanel error={health.error} compact onRetry={() => void health.refetch()} />
          ) : (
            <div className="stat-value">
              <Tag tone={health.data?.status === "ok" ? "ok" : "bad"}>{health.data?.status ?? "unknown"}</Tag>
            </div>
          )}
        </div>
        <div className="stat" data-testid="ready-stat">
          <div className="stat-label">Database</div>
          {ready.isPending ? (
            <Loading label="Checking…" />
          ) : ready.error ? (
            <ErrorPanel error={ready.error} compact onRetry={() => void ready.refetch()} />
          ) : (
            <div className="stat-value">
              <Tag tone="ok">{ready.data?.status ?? "unknown"}</Tag>
              {ready.data && ready.data.pending_writes > 0 ? (
                <div className="muted small" data-testid="pending-writes">
                  {ready.data.pending_writes} finished execution(s) waiting to be stored
                </div>
              ) : null}
            </div>
          )}
        </div>
        <div className="stat" data-testid="summary-stat">
          <div className="stat-label">Active sessions</div>
          <QueryState query={summary} label="Loading…">
            {(data) => (
              <>
                <div className="stat-value big">{data.active_sessions}</div>
                <div className="stat-ids">
                  {data.active_session_ids.map((id) => (
                    <Link key={id} to={`/sessions/${id}`} className="mono small">
                      {id.slice(0, 8)}
                    </Link>
                  ))}
                </div>
              </>
            )}
          </QueryState>
        </div>
        <div className="stat">
          <div className="stat-label">API</div>
          <div className="stat-links">
            <a href="/docs/">Swagger UI at /docs</a>
            <a href="/api/v1/openapi.json">OpenAPI document</a>
            <a href="/api/v1/health">/api/v1/health</a>
            <a href="/api/v1/ready">/api/v1/ready</a>
          </div>
        </div>
      </div>
      <Nodes />
      <LiveMetrics />
      <div className="detail-grid">
        <div className="detail-col">
          <Card title="Native module catalog" description="Modules a template may enable." testId="module-catalog">
            <QueryState query={modules} label="Loading modules…">
              {(list) => (
                <table className="table compact">
                  <thead>
                    <tr>
                      <th>Name</th>
                      <th>Description</th>
                    </tr>
                  </thead>
                  <tbody>
                    {list.map((module) => (
                      <tr key={module.name}>
                        <td className="mono">{module.name}</td>
                        <td>{module.description}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              )}
            </QueryState>
          </Card>
        </div>
        <div className="detail-col">
          <Card
            title="Library catalog"
            description={
              <>
                Libraries a template may load. Fill the cache with <code>vm-system libs download</code>.
              </>
            }
            testId="library-catalog-card"
          >
            <QueryState query={libraries} label="Loading libraries…">
              {(list) => (
                <table className="table compact">
                  <thead>
                    <tr>
                      <th>Library</th>
                      <th>Global</th>
                      <th>Cache</th>
                    </tr>
                  </thead>
                  <tbody>
                    {list.map((library) => (
                      <tr key={library.name} data-testid="catalog-library-row">
                        <td>
                          <div className="mono">{library.name}</div>
                          <div className="muted small">{library.description}</div>
                        </td>
                        <td className="mono">{library.global}</td>
                        <td>{library.cached ? <Tag tone="ok">cached</Tag> : <Tag tone="warn">not cached</Tag>}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              )}
            </QueryState>
          </Card>
        </div>
      </div>
    </div>
  );
}

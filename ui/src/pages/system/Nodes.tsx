/**
 * The nodes serving the daemon's database, one row each: which one answered,
 * where it listens, whether it is live, how full it is and how long ago it
 * renewed its lease. Read as often as the live metrics while the tab is
 * visible; the ages count from the time of the last answer.
 */
import { toApiError, type DaemonNode } from "../../api/client";
import { METRICS_POLL_MS, useNodes } from "../../api/queries";
import { Card } from "../../components/bits";
import { EmptyState, ErrorPanel, Loading } from "../../components/feedback";
import { absoluteTime, shortId } from "../../lib/format";
import {
  capacityShare,
  describeNodes,
  formatCapacity,
  formatAge,
  isFull,
  isLeaseOverdue,
  isWebUrl,
  nodeStatusTone,
  sortNodes,
  summarizeNodes,
} from "../../lib/nodes";

export function Nodes() {
  const query = useNodes();
  const { data, error, dataUpdatedAt } = query;
  const retry = () => void query.refetch();
  return (
    <Card
      title="Nodes"
      testId="nodes-card"
      description={
        <>
          Every daemon serving this database, read every {METRICS_POLL_MS / 1000} s while this tab is visible.
          {data && data.length > 0 ? (
            <>
              {" "}
              <span data-testid="nodes-summary">{describeNodes(summarizeNodes(data))}</span>.
            </>
          ) : null}
        </>
      }
    >
      {error ? (
        <ErrorPanel
          error={error}
          title={errorTitle(error, data !== undefined)}
          compact={data !== undefined}
          onRetry={retry}
        />
      ) : null}
      {data === undefined ? (
        error ? null : (
          <Loading label="Reading the nodes…" />
        )
      ) : data.length === 0 ? (
        <EmptyState title="No nodes">
          The daemon lists no node, not even itself: it may still be starting. The list refreshes on its own.
        </EmptyState>
      ) : (
        <NodesTable nodes={data} now={dataUpdatedAt} />
      )}
    </Card>
  );
}

function errorTitle(error: unknown, stale: boolean): string {
  if (toApiError(error).status === 404) return "This daemon does not list its nodes (it may be older than this UI).";
  return stale ? "The nodes stopped updating: the table shows the last answer." : "Cannot read the nodes.";
}

function NodesTable({ nodes, now }: { nodes: readonly DaemonNode[]; now: number }) {
  return (
    <table className="table compact" data-testid="nodes-table">
      <thead>
        <tr>
          <th>Node</th>
          <th>URL</th>
          <th>Status</th>
          <th>Sessions</th>
          <th>Heartbeat</th>
          <th>Started</th>
          <th>Version</th>
        </tr>
      </thead>
      <tbody>
        {sortNodes(nodes).map((node) => (
          <NodeRow key={node.id} node={node} now={now} />
        ))}
      </tbody>
    </table>
  );
}

function NodeRow({ node, now }: { node: DaemonNode; now: number }) {
  const overdue = isLeaseOverdue(node, now);
  return (
    <tr data-testid="node-row" data-node-id={node.id} data-status={node.status}>
      <td>
        <span className="mono" title={node.id} data-testid="node-id">
          {shortId(node.id)}
        </span>{" "}
        {node.this_node ? (
          <span
            className="badge tone-info"
            data-testid="this-node"
            title="The node that answered: the daemon this UI talks to"
          >
            this node
          </span>
        ) : null}
      </td>
      <td>
        {isWebUrl(node.url) ? (
          <a className="mono small" href={node.url} data-testid="node-url">
            {node.url}
          </a>
        ) : (
          <span className="mono small" data-testid="node-url">
            {node.url}
          </span>
        )}
      </td>
      <td>
        <span
          className={`badge tone-${nodeStatusTone(node.status)}`}
          data-testid="node-status"
          title={
            node.status === "live"
              ? "Renews its lease and runs sessions"
              : "Stopped, or stopped renewing its lease: its sessions were failed over"
          }
        >
          {node.status}
        </span>
        {node.status === "lost" && node.lost_at ? (
          <time className="muted small" dateTime={node.lost_at} title={`Lost ${absoluteTime(node.lost_at)}`}>
            {formatAge(node.lost_at, now)}
          </time>
        ) : null}
      </td>
      <td>
        <Capacity node={node} />
      </td>
      <td>
        <time
          className="mono small"
          dateTime={node.heartbeat_at}
          data-testid="node-heartbeat"
          title={`Last renewed ${absoluteTime(node.heartbeat_at)}; lease until ${absoluteTime(node.lease_expires_at)}`}
        >
          {formatAge(node.heartbeat_at, now)}
        </time>{" "}
        {overdue ? (
          <span
            className="badge tone-warn"
            data-testid="lease-overdue"
            title="Its lease ran out: the next node to renew its own lease marks it lost"
          >
            overdue
          </span>
        ) : null}
      </td>
      <td>
        <time className="mono small" dateTime={node.started_at} title={absoluteTime(node.started_at)}>
          {formatAge(node.started_at, now)}
        </time>
      </td>
      <td className="mono small" data-testid="node-version">
        {node.version}
      </td>
    </tr>
  );
}

/** Live sessions out of the most the node runs, as a bar and "3 / 64". */
function Capacity({ node }: { node: DaemonNode }) {
  const { active_sessions: active, max_sessions: max } = node;
  const share = capacityShare(active, max);
  const tone = node.status === "lost" ? "muted" : isFull(node) ? "bad" : "info";
  const label = `${formatCapacity(active, max)} sessions${isFull(node) && node.status === "live" ? " (full)" : ""}`;
  return (
    <div style={{ display: "flex", alignItems: "center", gap: 8 }}>
      <div
        className="stacked-bar"
        role="meter"
        aria-label={`Sessions on node ${shortId(node.id)}`}
        aria-valuemin={0}
        aria-valuemax={max}
        aria-valuenow={Math.min(active, max)}
        aria-valuetext={label}
        title={label}
        style={{ width: 88, flex: "none", margin: 0, height: 8 }}
      >
        {share > 0 ? <span className={`stacked-part fill-${tone}`} style={{ flexGrow: share }} /> : null}
        {share < 1 ? <span style={{ flexGrow: 1 - share, flexBasis: 0 }} /> : null}
      </div>
      <span className="mono small" data-testid="node-sessions">
        {formatCapacity(active, max)}
      </span>
    </div>
  );
}

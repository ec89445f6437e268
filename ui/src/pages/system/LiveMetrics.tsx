/**
 * The daemon's key metrics as tiles, each a number and a chart of the last
 * two minutes, read every two seconds while the tab is visible. The history
 * lives in this component only: leaving the page forgets it.
 */
import { useState, type ReactNode } from "react";
import { METRICS_POLL_MS, useMetricsSummary } from "../../api/queries";
import { toApiError, type MetricsSummary } from "../../api/client";
import { Sparkline } from "../../components/Sparkline";
import { ErrorPanel, Loading } from "../../components/feedback";
import { formatBytes } from "../../lib/format";
import {
  formatCount,
  formatMs,
  formatRate,
  formatUptime,
  peak,
  pushSample,
  rates,
  SAMPLE_CAPACITY,
  type Sample,
} from "../../lib/metrics";

type Samples = readonly Sample<MetricsSummary>[];

/** How an execution ended, in the order the UI lists them everywhere. */
const ENDED = ["ok", "error", "timeout", "cancelled"] as const;
/** The limits, in the order of a template's settings. */
const LIMITS = ["cpu", "wall", "memory", "events", "output"] as const;

/** The summary query and every answer it got while this page was shown, oldest first. */
function useMetricsHistory() {
  const query = useMetricsSummary();
  const [samples, setSamples] = useState<Samples>([]);
  const { data, dataUpdatedAt } = query;
  // A new answer joins the history while rendering (React's pattern for state derived from props).
  if (data !== undefined && dataUpdatedAt > (samples.at(-1)?.at ?? 0)) {
    setSamples(pushSample(samples, { at: dataUpdatedAt, value: data }));
  }
  return { query, samples };
}

export function LiveMetrics() {
  const { query, samples } = useMetricsHistory();
  const current = samples.at(-1)?.value ?? query.data;
  const retry = () => void query.refetch();
  return (
    <section className="metrics" aria-labelledby="metrics-title" data-testid="live-metrics">
      <div className="metrics-head">
        <h2 id="metrics-title">Live metrics</h2>
        <p className="card-description">
          Read every {METRICS_POLL_MS / 1000} s while this tab is visible; the charts show the last{" "}
          {(SAMPLE_CAPACITY * METRICS_POLL_MS) / 60_000} minutes.
          {current ? (
            <>
              {" "}
              Up <span data-testid="metrics-uptime">{formatUptime(current.uptime_seconds)}</span> ·{" "}
              {formatCount(current.http_requests_total)} HTTP requests.
            </>
          ) : null}
        </p>
      </div>
      {query.error ? (
        <ErrorPanel
          error={query.error}
          title={errorTitle(query.error, current !== undefined)}
          compact={current !== undefined}
          onRetry={retry}
        />
      ) : null}
      {current ? (
        <MetricTiles current={current} samples={samples} />
      ) : query.error ? null : (
        <Loading label="Reading metrics…" />
      )}
    </section>
  );
}

function errorTitle(error: unknown, stale: boolean): string {
  if (toApiError(error).status === 404) return "This daemon does not report metrics (it may be older than this UI).";
  return stale ? "Metrics stopped updating: the tiles show the last answer." : "Cannot read the metrics.";
}

function MetricTiles({ current, samples }: { current: MetricsSummary; samples: Samples }) {
  const series = (pick: (summary: MetricsSummary) => number | null | undefined) =>
    samples.map((sample) => pick(sample.value) ?? null);
  const chart = (label: string, values: (number | null)[], latest: string, tone?: "ok" | "warn" | "info") => (
    <Sparkline values={values} label={label} latest={latest} slots={SAMPLE_CAPACITY} tone={tone} />
  );

  const executionRates = rates(samples, (summary) => summary.executions_total);
  const rateNow = executionRates.at(-1) ?? null;
  const ratePeak = peak(executionRates);
  const p50 = current.duration_ms.p50 ?? null;
  const p99 = current.duration_ms.p99 ?? null;
  const limitHits = totalOf(current.limit_hits);
  const sessionsTotal = totalOf(current.sessions);

  return (
    <div className="metric-grid">
      <Tile label="Live sessions" value={formatCount(current.live_sessions)} testId="metric-live-sessions">
        {chart(
          "Live sessions",
          series((s) => s.live_sessions),
          formatCount(current.live_sessions),
        )}
      </Tile>

      <Tile label="Sessions by status" value={formatCount(sessionsTotal)} testId="metric-sessions">
        <StackedBar
          label="Sessions by status"
          parts={[
            { name: "starting", count: current.sessions.starting, tone: "info" },
            { name: "ready", count: current.sessions.ready, tone: "ok" },
            { name: "crashed", count: current.sessions.crashed, tone: "bad" },
            { name: "closed", count: current.sessions.closed, tone: "muted" },
          ]}
        />
      </Tile>

      <Tile
        label="Executions / s"
        value={formatRate(rateNow)}
        testId="metric-execution-rate"
        foot={
          <>
            <span data-testid="executions-total">{formatCount(current.executions_total)}</span> ended since start
            {ratePeak !== null ? (
              <>
                {" "}
                · peak <span data-testid="execution-rate-peak">{formatRate(ratePeak)}</span>/s
              </>
            ) : null}
            <Breakdown counts={current.executions} names={ENDED} />
          </>
        }
      >
        {chart("Executions per second", executionRates, formatRate(rateNow), "info")}
      </Tile>

      <Tile
        label="Duration p50"
        value={formatMs(p50)}
        testId="metric-p50"
        foot={`over the last ${plural(current.duration_ms.count, "execution", "executions")}`}
      >
        {chart(
          "Median duration",
          series((s) => s.duration_ms.p50),
          formatMs(p50),
        )}
      </Tile>

      <Tile
        label="Duration p99"
        value={formatMs(p99)}
        testId="metric-p99"
        foot={`over the last ${plural(current.duration_ms.count, "execution", "executions")}`}
      >
        {chart(
          "99th percentile duration",
          series((s) => s.duration_ms.p99),
          formatMs(p99),
        )}
      </Tile>

      <Tile
        label="Limit hits"
        value={formatCount(limitHits)}
        testId="metric-limit-hits"
        foot={<Breakdown counts={current.limit_hits} names={LIMITS} highlight />}
      >
        {chart(
          "Limit hits",
          series((s) => totalOf(s.limit_hits)),
          formatCount(limitHits),
          "warn",
        )}
      </Tile>

      <Tile label="Running executions" value={formatCount(current.executions.running)} testId="metric-running">
        {chart(
          "Running executions",
          series((s) => s.executions.running),
          formatCount(current.executions.running),
        )}
      </Tile>

      <Tile label="SSE clients" value={formatCount(current.sse_clients)} testId="metric-sse-clients">
        {chart(
          "SSE clients",
          series((s) => s.sse_clients),
          formatCount(current.sse_clients),
        )}
      </Tile>

      <Tile
        label="Worker memory (RSS)"
        value={formatBytes(current.workers.rss_bytes)}
        testId="metric-worker-rss"
        foot={`${plural(current.workers.processes, "worker process", "worker processes")} · ${current.workers.cpu_seconds.toFixed(1)} s CPU`}
      >
        {chart(
          "Worker memory",
          series((s) => s.workers.rss_bytes),
          formatBytes(current.workers.rss_bytes),
          "ok",
        )}
      </Tile>
    </div>
  );
}

function plural(count: number, one: string, many: string): string {
  return `${formatCount(count)} ${count === 1 ? one : many}`;
}

function totalOf(counts: Record<string, number>): number {
  return Object.values(counts).reduce((sum, count) => sum + count, 0);
}

function Tile({
  label,
  value,
  testId,
  foot,
  children,
}: {
  label: string;
  value: string;
  testId: string;
  foot?: ReactNode;
  children: ReactNode;
}) {
  return (
    <div className="stat metric-tile" data-testid={testId}>
      <div className="stat-label">{label}</div>
      <div className="metric-value" data-testid="metric-value">
        {value}
      </div>
      <div className="metric-chart">{children}</div>
      {foot ? <div className="metric-foot">{foot}</div> : null}
    </div>
  );
}

/** Named counts in a row, in the order given ("cpu 0 · wall 1 …"); with `highlight`, the ones above 0 stand out. */
function Breakdown<K extends string>({
  counts,
  names,
  highlight = false,
}: {
  counts: Record<K, number>;
  names: readonly K[];
  highlight?: boolean;
}) {
  return (
    <ul className="metric-breakdown">
      {names.map((name) => (
        <li key={name} className={highlight && counts[name] > 0 ? "metric-hot" : undefined} data-name={name}>
          {name} <span className="mono">{formatCount(counts[name])}</span>
        </li>
      ))}
    </ul>
  );
}

/** One bar split by share, with a legend; read out as "Sessions by status: 2 ready, 5 closed". */
function StackedBar({
  label,
  parts,
}: {
  label: string;
  parts: { name: string; count: number; tone: "ok" | "info" | "bad" | "muted" }[];
}) {
  const total = parts.reduce((sum, part) => sum + part.count, 0);
  const said = parts
    .filter((part) => part.count > 0)
    .map((part) => `${part.count} ${part.name}`)
    .join(", ");
  return (
    <>
      <div className="stacked-bar" role="img" aria-label={`${label}: ${said || "none"}`}>
        {total > 0
          ? parts
              .filter((part) => part.count > 0)
              .map((part) => (
                <span
                  key={part.name}
                  className={`stacked-part fill-${part.tone}`}
                  style={{ flexGrow: part.count }}
                  title={`${part.count} ${part.name}`}
                />
              ))
          : null}
      </div>
      <ul className="metric-breakdown">
        {parts.map((part) => (
          <li key={part.name} data-name={part.name}>
            <span className={`legend-swatch fill-${part.tone}`} aria-hidden="true" />
            {part.name} <span className="mono">{formatCount(part.count)}</span>
          </li>
        ))}
      </ul>
    </>
  );
}

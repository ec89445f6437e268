//! `/metrics` (Prometheus text) and `/metrics/summary` (the same facts as
//! JSON, for the web UI's system page). Both need the `read` scope.

use std::sync::Arc;

use poem_openapi::payload::{Json, PlainText};
use poem_openapi::{ApiResponse, Object, OpenApi};
use vm_domain::execution::ExecutionStatus;
use vm_domain::session::SessionStatus;
use vm_domain::telemetry::{DurationSummary, ExecutionStats, Limit};

use super::Tag;
use crate::error::ApiResult;
use crate::guard::Reader;
use crate::metrics::{self, Scraped};
use crate::Services;

pub struct SystemApi(pub Arc<Services>);

/// `GET /metrics`: its one success.
#[derive(ApiResponse)]
pub enum MetricsText {
    /// Every metric in the Prometheus text exposition format 0.0.4, with a `# HELP` and a
    /// `# TYPE` line each.
    #[oai(status = 200, content_type = "text/plain; version=0.0.4; charset=utf-8")]
    Ok(PlainText<String>),
}

/// Sessions in the store, by status.
#[derive(Debug, Clone, Object)]
pub struct SessionCountsView {
    pub starting: u64,
    pub ready: u64,
    pub crashed: u64,
    pub closed: u64,
}

/// Executions running now, and those ended since the daemon started by status.
#[derive(Debug, Clone, Object)]
pub struct ExecutionCountsView {
    /// Running now.
    pub running: u64,
    pub ok: u64,
    pub error: u64,
    pub timeout: u64,
    pub cancelled: u64,
}

/// Durations of the last 1024 ended executions, in milliseconds.
#[derive(Debug, Clone, Object)]
pub struct DurationSummaryView {
    /// How many executions the percentiles cover (at most 1024).
    pub count: u64,
    /// The median (nearest rank); null when no execution has ended yet.
    pub p50: Option<f64>,
    /// The 99th percentile (nearest rank); null when no execution has ended yet.
    pub p99: Option<f64>,
}

/// Executions stopped by each limit since the daemon started.
#[derive(Debug, Clone, Object)]
pub struct LimitHitsView {
    /// `cpu_ms`.
    pub cpu: u64,
    /// `wall_ms`.
    pub wall: u64,
    /// `mem_mb`.
    pub memory: u64,
    /// `max_events`.
    pub events: u64,
    /// `max_output_kb`.
    pub output: u64,
}

/// The live session worker processes, as the kernel counts them now.
#[derive(Debug, Clone, Object)]
pub struct WorkerStatsView {
    pub processes: u64,
    /// Resident memory, summed.
    pub rss_bytes: u64,
    /// CPU time (user and system) used so far, summed.
    pub cpu_seconds: f64,
}

/// What `/metrics` counts, as JSON: since the daemon started, and now.
#[derive(Debug, Clone, Object)]
pub struct MetricsSummaryView {
    pub uptime_seconds: u64,
    pub sessions: SessionCountsView,
    /// Sessions whose runtime is alive in memory.
    pub live_sessions: u64,
    pub executions: ExecutionCountsView,
    /// Executions ended since the daemon started (the sum of the four end statuses).
    pub executions_total: u64,
    pub duration_ms: DurationSummaryView,
    pub limit_hits: LimitHitsView,
    /// Live event streams open now.
    pub sse_clients: u64,
    /// HTTP requests answered since the daemon started.
    pub http_requests_total: u64,
    pub workers: WorkerStatsView,
}

fn session_counts(counts: &[(SessionStatus, u64); 4]) -> SessionCountsView {
    let of = |wanted: SessionStatus| counts.iter().find(|(s, _)| *s == wanted).map_or(0, |(_, n)| *n);
    SessionCountsView {
        starting: of(SessionStatus::Starting),
        ready: of(SessionStatus::Ready),
        crashed: of(SessionStatus::Crashed),
        closed: of(SessionStatus::Closed),
    }
}

fn execution_counts(stats: &ExecutionStats) -> ExecutionCountsView {
    ExecutionCountsView {
        running: stats.running(),
        ok: stats.ended(ExecutionStatus::Ok),
        error: stats.ended(ExecutionStatus::Error),
        timeout: stats.ended(ExecutionStatus::Timeout),
        cancelled: stats.ended(ExecutionStatus::Cancelled),
    }
}

impl From<DurationSummary> for DurationSummaryView {
    fn from(summary: DurationSummary) -> Self {
        Self { count: summary.count, p50: summary.p50_ms.map(|ms| ms as f64), p99: summary.p99_ms.map(|ms| ms as f64) }
    }
}

fn limit_hits(stats: &ExecutionStats) -> LimitHitsView {
    LimitHitsView {
        cpu: stats.limit_hits(Limit::Cpu),
        wall: stats.limit_hits(Limit::Wall),
        memory: stats.limit_hits(Limit::Memory),
        events: stats.limit_hits(Limit::Events),
        output: stats.limit_hits(Limit::Output),
    }
}

#[OpenApi(tag = "Tag::Ops")]
impl SystemApi {
    /// Prometheus metrics.
    ///
    /// Executions, limit hits, sessions, worker processes, HTTP requests, event streams and the
    /// store, in the text exposition format; point a Prometheus scrape job here with a bearer
    /// token of scope `read`. The README lists every metric.
    #[oai(path = "/metrics", method = "get", operation_id = "metrics")]
    async fn metrics(&self, _caller: Reader) -> ApiResult<MetricsText> {
        Ok(MetricsText::Ok(PlainText(metrics::render(&self.0).await)))
    }

    /// The metrics as JSON, for the web UI's system page.
    ///
    /// The same facts as `/metrics`: counts since the daemon started, and sessions, workers and
    /// event streams as they are now. Durations are over the last 1024 ended executions.
    #[oai(path = "/metrics/summary", method = "get", operation_id = "metricsSummary")]
    async fn summary(&self, _caller: Reader) -> ApiResult<Json<MetricsSummaryView>> {
        let services = &self.0;
        let scraped = Scraped::read(services).await;
        let sessions = session_counts(&scraped.sessions?);
        let stats = services.executions.stats();
        let executions = execution_counts(stats);
        let executions_total = executions.ok + executions.error + executions.timeout + executions.cancelled;
        let processes = scraped.processes;
        Ok(Json(MetricsSummaryView {
            uptime_seconds: metrics::uptime().as_secs(),
            sessions,
            live_sessions: scraped.live_sessions,
            executions,
            executions_total,
            duration_ms: stats.durations().into(),
            limit_hits: limit_hits(stats),
            sse_clients: metrics::sse_clients(),
            http_requests_total: metrics::http_requests(),
            workers: WorkerStatsView {
                processes: processes.workers,
                rss_bytes: processes.worker_rss_bytes,
                cpu_seconds: processes.worker_cpu_seconds,
            },
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_declares_the_exposition_format_the_response_carries() {
        let meta = <MetricsText as ApiResponse>::meta();
        assert_eq!(meta.responses[0].content[0].content_type, metrics::CONTENT_TYPE);
    }

    #[test]
    fn the_summary_lists_every_session_status() {
        let counts = [
            (SessionStatus::Starting, 1),
            (SessionStatus::Ready, 2),
            (SessionStatus::Crashed, 3),
            (SessionStatus::Closed, 4),
        ];
        let view = session_counts(&counts);
        assert_eq!((view.starting, view.ready, view.crashed, view.closed), (1, 2, 3, 4));
    }
}

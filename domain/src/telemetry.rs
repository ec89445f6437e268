//! What the executions of this process did, counted as each one ends: the
//! `vm_execution*` and `vm_limit_hits_total` metrics, sent to the `metrics`
//! facade (a no-op until the daemon installs a recorder) and kept here as
//! the same facts for the daemon's JSON summary. Knows no exporter and no
//! HTTP.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit};

use crate::execution::{ExecutionKind, ExecutionStatus, Metrics};
use crate::ports::LimitHit;

/// Metric names, in the Prometheus style: `vm_` prefix, base units.
pub mod names {
    /// Counter, labels `kind` and `status`.
    pub const EXECUTIONS_TOTAL: &str = "vm_executions_total";
    /// Gauge.
    pub const EXECUTIONS_RUNNING: &str = "vm_executions_running";
    /// Histogram, label `kind`.
    pub const EXECUTION_DURATION: &str = "vm_execution_duration_seconds";
    /// Counter.
    pub const EXECUTION_EVENTS: &str = "vm_execution_events_total";
    /// Counter.
    pub const EXECUTION_OUTPUT_BYTES: &str = "vm_execution_output_bytes_total";
    /// Counter, label `limit`.
    pub const LIMIT_HITS: &str = "vm_limit_hits_total";
}

/// How many of the last ended executions [`ExecutionStats::durations`] looks at.
pub const DURATION_WINDOW: usize = 1024;

/// The limit that stopped an execution, as `vm_limit_hits_total` labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Cpu,
    Wall,
    Memory,
    Events,
    Output,
}

impl Limit {
    pub const ALL: [Limit; 5] = [Self::Cpu, Self::Wall, Self::Memory, Self::Events, Self::Output];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Wall => "wall",
            Self::Memory => "memory",
            Self::Events => "events",
            Self::Output => "output",
        }
    }

    fn index(&self) -> usize {
        *self as usize
    }
}

impl From<LimitHit> for Limit {
    fn from(hit: LimitHit) -> Self {
        match hit {
            LimitHit::CpuTime { .. } => Self::Cpu,
            LimitHit::WallTime { .. } => Self::Wall,
            LimitHit::Memory { .. } => Self::Memory,
            LimitHit::Events { .. } => Self::Events,
            LimitHit::Output { .. } => Self::Output,
        }
    }
}

/// The statuses an execution ends in, in the order [`ExecutionStats`] keeps them.
const ENDED: [ExecutionStatus; 4] =
    [ExecutionStatus::Ok, ExecutionStatus::Error, ExecutionStatus::Timeout, ExecutionStatus::Cancelled];

fn ended_index(status: ExecutionStatus) -> Option<usize> {
    ENDED.iter().position(|s| *s == status)
}

fn kind_index(kind: ExecutionKind) -> usize {
    ExecutionKind::ALL.iter().position(|k| *k == kind).expect("ALL lists every kind")
}

/// The durations of the last [`DURATION_WINDOW`] ended executions, in
/// milliseconds, oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DurationRing(VecDeque<u64>);

impl DurationRing {
    /// Adds a duration, forgetting the oldest past [`DURATION_WINDOW`].
    pub fn push(&mut self, duration_ms: u64) {
        if self.0.len() == DURATION_WINDOW {
            self.0.pop_front();
        }
        self.0.push_back(duration_ms);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The nearest-rank `p`th percentile (0 < p ≤ 100): the smallest
    /// duration that at least `p` % of the window do not exceed; `None`
    /// when the window is empty.
    pub fn percentile(&self, p: f64) -> Option<u64> {
        let mut sorted: Vec<u64> = self.0.iter().copied().collect();
        sorted.sort_unstable();
        nearest_rank(&sorted, p)
    }

    /// How many durations there are, with their 50th and 99th percentiles.
    pub fn summary(&self) -> DurationSummary {
        let mut sorted: Vec<u64> = self.0.iter().copied().collect();
        sorted.sort_unstable();
        DurationSummary {
            count: sorted.len() as u64,
            p50_ms: nearest_rank(&sorted, 50.0),
            p99_ms: nearest_rank(&sorted, 99.0),
        }
    }
}

fn nearest_rank(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p.clamp(0.0, 100.0) / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Percentiles of recent execution durations; see [`DurationRing::summary`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationSummary {
    pub count: u64,
    pub p50_ms: Option<u64>,
    pub p99_ms: Option<u64>,
}

/// The executions of this process: how many run now, how many ended in each
/// status, what they produced and which limits stopped them. Updated
/// together with the facade's metrics, so that both tell the same story.
#[derive(Debug, Default)]
pub struct ExecutionStats {
    running: AtomicU64,
    /// By kind ([`ExecutionKind::ALL`]), then by status ([`ENDED`]).
    ended: [[AtomicU64; 4]; 3],
    events: AtomicU64,
    output_bytes: AtomicU64,
    limit_hits: [AtomicU64; 5],
    /// A std `Mutex`: held only to push or copy.
    durations: Mutex<DurationRing>,
}

impl ExecutionStats {
    /// Fresh counts; also gives the facade's metrics their help texts and
    /// their series at zero, so that a scrape shows them before anything ran.
    pub fn new() -> Self {
        describe_counter!(
            names::EXECUTIONS_TOTAL,
            Unit::Count,
            "Executions ended since the daemon started, by kind (repl, run_file, startup) and status (ok, error, timeout, cancelled)."
        );
        describe_gauge!(names::EXECUTIONS_RUNNING, Unit::Count, "Executions running now.");
        describe_histogram!(
            names::EXECUTION_DURATION,
            Unit::Seconds,
            "Wall time of ended executions, from start to end, by kind."
        );
        describe_counter!(names::EXECUTION_EVENTS, Unit::Count, "Events recorded by ended executions.");
        describe_counter!(
            names::EXECUTION_OUTPUT_BYTES,
            Unit::Bytes,
            "Output bytes (console, stdout, stderr) recorded by ended executions."
        );
        describe_counter!(
            names::LIMIT_HITS,
            Unit::Count,
            "Executions stopped by a limit, by limit (cpu, wall, memory, events, output)."
        );
        for kind in ExecutionKind::ALL {
            for status in ENDED {
                counter!(names::EXECUTIONS_TOTAL, "kind" => kind.as_str(), "status" => status.as_str()).increment(0);
            }
        }
        for limit in Limit::ALL {
            counter!(names::LIMIT_HITS, "limit" => limit.as_str()).increment(0);
        }
        counter!(names::EXECUTION_EVENTS).increment(0);
        counter!(names::EXECUTION_OUTPUT_BYTES).increment(0);
        gauge!(names::EXECUTIONS_RUNNING).increment(0.0);
        Self::default()
    }

    /// An execution starts: it counts as running until the returned value
    /// is ended or dropped.
    pub fn start(self: &Arc<Self>, kind: ExecutionKind) -> RunningExecution {
        self.running.fetch_add(1, Ordering::Relaxed);
        gauge!(names::EXECUTIONS_RUNNING).increment(1.0);
        RunningExecution { stats: self.clone(), kind }
    }

    /// Executions running now.
    pub fn running(&self) -> u64 {
        self.running.load(Ordering::Relaxed)
    }

    /// Executions of any kind that ended in `status` since this process
    /// started (0 for `running`).
    pub fn ended(&self, status: ExecutionStatus) -> u64 {
        let Some(at) = ended_index(status) else { return 0 };
        self.ended.iter().map(|by_status| by_status[at].load(Ordering::Relaxed)).sum()
    }

    /// Executions of `kind` that ended in `status`.
    pub fn ended_of(&self, kind: ExecutionKind, status: ExecutionStatus) -> u64 {
        ended_index(status).map_or(0, |at| self.ended[kind_index(kind)][at].load(Ordering::Relaxed))
    }

    /// Executions stopped by `limit`.
    pub fn limit_hits(&self, limit: Limit) -> u64 {
        self.limit_hits[limit.index()].load(Ordering::Relaxed)
    }

    /// Events recorded by ended executions.
    pub fn events(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }

    /// Output bytes recorded by ended executions.
    pub fn output_bytes(&self) -> u64 {
        self.output_bytes.load(Ordering::Relaxed)
    }

    /// Percentiles of the last [`DURATION_WINDOW`] ended executions' durations.
    pub fn durations(&self) -> DurationSummary {
        self.durations.lock().unwrap_or_else(PoisonError::into_inner).summary()
    }

    fn record_end(&self, kind: ExecutionKind, status: ExecutionStatus, metrics: &Metrics, limit: Option<Limit>) {
        let Some(at) = ended_index(status) else { return };
        self.ended[kind_index(kind)][at].fetch_add(1, Ordering::Relaxed);
        self.events.fetch_add(metrics.event_count, Ordering::Relaxed);
        self.output_bytes.fetch_add(metrics.output_bytes, Ordering::Relaxed);
        self.durations.lock().unwrap_or_else(PoisonError::into_inner).push(metrics.duration_ms);
        counter!(names::EXECUTIONS_TOTAL, "kind" => kind.as_str(), "status" => status.as_str()).increment(1);
        histogram!(names::EXECUTION_DURATION, "kind" => kind.as_str()).record(metrics.duration_ms as f64 / 1000.0);
        counter!(names::EXECUTION_EVENTS).increment(metrics.event_count);
        counter!(names::EXECUTION_OUTPUT_BYTES).increment(metrics.output_bytes);
        if let Some(limit) = limit {
            self.limit_hits[limit.index()].fetch_add(1, Ordering::Relaxed);
            counter!(names::LIMIT_HITS, "limit" => limit.as_str()).increment(1);
        }
    }
}

/// An execution counted as running; see [`ExecutionStats::start`].
pub struct RunningExecution {
    stats: Arc<ExecutionStats>,
    kind: ExecutionKind,
}

impl RunningExecution {
    /// The execution ended in `status` (never `running`), having cost
    /// `metrics`; `limit` is the limit that stopped it, if one did.
    pub fn end(self, status: ExecutionStatus, metrics: &Metrics, limit: Option<Limit>) {
        self.stats.record_end(self.kind, status, metrics, limit);
    }
}

impl Drop for RunningExecution {
    fn drop(&mut self) {
        self.stats.running.fetch_sub(1, Ordering::Relaxed);
        gauge!(names::EXECUTIONS_RUNNING).decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(durations: impl IntoIterator<Item = u64>) -> DurationRing {
        let mut ring = DurationRing::default();
        durations.into_iter().for_each(|d| ring.push(d));
        ring
    }

    #[test]
    fn an_empty_ring_has_no_percentiles() {
        let summary = DurationRing::default().summary();
        assert_eq!(summary, DurationSummary { count: 0, p50_ms: None, p99_ms: None });
    }

    #[test]
    fn percentiles_are_nearest_rank_whatever_the_order_of_arrival() {
        let cases: &[(&str, Vec<u64>, u64, u64)] = &[
            ("one value is every percentile", vec![7], 7, 7),
            ("two values: the median is the lower", vec![30, 10], 10, 30),
            ("an even count", vec![4, 1, 3, 2], 2, 4),
            ("1 to 100 shuffled", (1..=100).rev().collect(), 50, 99),
            ("one slow outlier in 200 sits above p99", (0..199).map(|_| 5).chain([9000]).collect(), 5, 5),
        ];
        for (label, durations, p50, p99) in cases {
            let summary = ring(durations.iter().copied()).summary();
            assert_eq!((summary.p50_ms, summary.p99_ms), (Some(*p50), Some(*p99)), "{label}");
            assert_eq!(summary.count, durations.len() as u64, "{label}");
        }
        assert_eq!(ring([1, 2, 3]).percentile(100.0), Some(3));
        assert_eq!(ring([1, 2, 3]).percentile(0.0), Some(1), "p0 is the minimum");
    }

    #[test]
    fn the_ring_keeps_only_the_last_1024_durations() {
        let ring = ring((1..=DURATION_WINDOW as u64 + 500).map(|i| i * 10));
        assert_eq!(ring.len(), DURATION_WINDOW);
        let summary = ring.summary();
        assert_eq!(summary.count, DURATION_WINDOW as u64);
        // The window holds 5010 ..= 15240 (in steps of 10): its rank-512 value is 10120.
        assert_eq!(summary.p50_ms, Some(10_120));
        assert_eq!(ring.percentile(0.0), Some(5010), "the oldest 500 are gone");
    }

    #[test]
    fn an_ended_execution_counts_once_by_kind_status_and_limit_and_stops_running() {
        let stats = Arc::new(ExecutionStats::new());
        let run = stats.start(ExecutionKind::Repl);
        let other = stats.start(ExecutionKind::Startup);
        assert_eq!(stats.running(), 2);
        let cost = Metrics { duration_ms: 120, event_count: 3, output_bytes: 11 };
        run.end(ExecutionStatus::Timeout, &cost, Some(LimitHit::CpuTime { limit_ms: 100 }.into()));
        assert_eq!(stats.running(), 1);
        drop(other);
        assert_eq!(stats.running(), 0, "a dropped execution stops running without counting as ended");
        assert_eq!(stats.ended(ExecutionStatus::Timeout), 1);
        assert_eq!(stats.ended_of(ExecutionKind::Repl, ExecutionStatus::Timeout), 1);
        assert_eq!(stats.ended_of(ExecutionKind::Startup, ExecutionStatus::Timeout), 0);
        assert_eq!(ENDED.iter().map(|s| stats.ended(*s)).sum::<u64>(), 1);
        assert_eq!((stats.events(), stats.output_bytes()), (3, 11));
        assert_eq!(Limit::ALL.map(|l| stats.limit_hits(l)), [1, 0, 0, 0, 0]);
        assert_eq!(stats.durations(), DurationSummary { count: 1, p50_ms: Some(120), p99_ms: Some(120) });
    }
}

//! Prometheus metrics over the `metrics` facade: the recorder (installed by
//! the daemon at start, rendered by `GET /metrics`; no HTTP server of its
//! own), the middleware that times every request by OpenAPI operation, the
//! count of open event streams, and the gauges read at scrape time
//! (sessions, worker processes, store connections). The domain and the
//! store record their own metrics through the same facade.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use poem::http::Method;
use poem::{Endpoint, IntoResponse, Request, Response};
use poem_openapi::OperationId;
use vm_domain::ports::{Connections, ProcessStats};
use vm_domain::session::SessionStatus;
use vm_domain::DomainError;

use crate::{Services, API_PREFIX};

/// The names of the metrics recorded here.
pub mod names {
    /// Counter, labels `route`, `method`, `status`.
    pub const HTTP_REQUESTS: &str = "vm_http_requests_total";
    /// Histogram, label `route`.
    pub const HTTP_DURATION: &str = "vm_http_request_duration_seconds";
    /// Gauge.
    pub const SSE_CLIENTS: &str = "vm_sse_clients";
    /// Gauge, label `status`.
    pub const SESSIONS: &str = "vm_sessions";
    /// Gauge.
    pub const SESSIONS_LIVE: &str = "vm_sessions_live";
    /// Gauge.
    pub const WORKER_PROCESSES: &str = "vm_worker_processes";
    /// Gauge.
    pub const WORKER_RSS: &str = "vm_worker_rss_bytes";
    /// Gauge: a sum over the live workers, which drops when one ends.
    pub const WORKER_CPU: &str = "vm_worker_cpu_seconds";
    /// Gauge.
    pub const ZYGOTES: &str = "vm_zygotes";
    /// Gauge.
    pub const CHECKPOINTS: &str = "vm_checkpoints";
    /// Gauge, label `state` (`in_use`, `idle`, `max`).
    pub const STORE_CONNECTIONS: &str = "vm_store_pool_connections";
}

/// The `route` of requests that reached no OpenAPI operation: unknown
/// paths and methods, and requests refused before routing.
pub const UNMATCHED: &str = "unmatched";

/// Histogram buckets of every duration, in seconds: from a store query
/// (half a millisecond) to a long execution (a minute).
const BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// How often histogram samples are folded into their buckets when nobody
/// scrapes, so that they do not pile up in memory.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// `text/plain; version=0.0.4`: the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

struct Installed {
    handle: PrometheusHandle,
    since: Instant,
}

static INSTALLED: OnceLock<Installed> = OnceLock::new();
/// Requests answered since the process started (the sum of
/// `vm_http_requests_total`).
static HTTP_REQUESTS: AtomicU64 = AtomicU64::new(0);
/// Event streams open now (`vm_sse_clients`).
static SSE_CLIENTS: AtomicU64 = AtomicU64::new(0);

/// Installs the Prometheus recorder as the facade's global recorder and
/// describes the metrics recorded here; the daemon calls it at start,
/// before opening the store and building the services, so that their
/// metrics are described and counted from the first. Later calls return
/// the same handle. Inside a tokio runtime, a task folds histogram samples
/// every [`UPKEEP_EVERY`].
pub fn install_recorder() -> &'static PrometheusHandle {
    let installed = INSTALLED.get_or_init(|| {
        let recorder = PrometheusBuilder::new().set_buckets(BUCKETS).expect("BUCKETS is not empty").build_recorder();
        let handle = recorder.handle();
        if let Err(err) = metrics::set_global_recorder(recorder) {
            tracing::warn!(error = %err, "another metrics recorder is installed: /metrics shows only what it renders");
        }
        describe();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let upkeep = handle.clone();
            runtime.spawn(async move {
                let mut tick = tokio::time::interval(UPKEEP_EVERY);
                loop {
                    tick.tick().await;
                    upkeep.run_upkeep();
                }
            });
        }
        Installed { handle, since: Instant::now() }
    });
    &installed.handle
}

/// Time since [`install_recorder`] first ran (the daemon's start).
pub fn uptime() -> Duration {
    INSTALLED.get().map(|i| i.since.elapsed()).unwrap_or_default()
}

/// Requests answered since the process started.
pub fn http_requests() -> u64 {
    HTTP_REQUESTS.load(Ordering::Relaxed)
}

/// Event streams open now.
pub fn sse_clients() -> u64 {
    SSE_CLIENTS.load(Ordering::Relaxed)
}

fn describe() {
    use names::*;
    describe_counter!(
        HTTP_REQUESTS,
        Unit::Count,
        "HTTP requests answered, by route (the OpenAPI operation id; unmatched, openapi, docs or ui otherwise), method and status."
    );
    describe_histogram!(HTTP_DURATION, Unit::Seconds, "Time to answer an HTTP request (to its headers), by route.");
    describe_gauge!(SSE_CLIENTS, Unit::Count, "Live event streams (Server-Sent Events) open now.");
    describe_gauge!(SESSIONS, Unit::Count, "Sessions in the store, by status (starting, ready, crashed, closed).");
    describe_gauge!(SESSIONS_LIVE, Unit::Count, "Sessions whose runtime is alive in this daemon's memory.");
    describe_gauge!(WORKER_PROCESSES, Unit::Count, "Live session worker processes.");
    describe_gauge!(WORKER_RSS, Unit::Bytes, "Resident memory of the live session worker processes, summed.");
    describe_gauge!(
        WORKER_CPU,
        Unit::Seconds,
        "CPU time (user and system) used so far by the live session worker processes, summed; drops when one ends."
    );
    describe_gauge!(ZYGOTES, Unit::Count, "Zygote processes kept ready to start sessions from.");
    describe_gauge!(CHECKPOINTS, Unit::Count, "Session checkpoints (forked copies) waiting to take over.");
    describe_gauge!(
        STORE_CONNECTIONS,
        Unit::Count,
        "Store connections by state: in_use, idle, and max (the most the store opens)."
    );
    gauge!(SSE_CLIENTS).increment(0.0);
}

/// The `route` label of a request to `path` answered with `response`.
fn route_of(path: &str, response: &Response) -> &'static str {
    if let Some(id) = response.data::<OperationId>() {
        return id.0;
    }
    let answered = response.status().is_success() || response.status().is_redirection();
    let openapi = path.strip_prefix(API_PREFIX) == Some("/openapi.json");
    match () {
        _ if !answered => UNMATCHED,
        _ if openapi => "openapi",
        _ if path == "/docs" || path.starts_with("/docs/") => "docs",
        _ if !path.starts_with("/api/") => "ui",
        _ => UNMATCHED,
    }
}

/// The `method` label: the standard methods by name, anything else `other`.
fn method_label(method: &Method) -> &'static str {
    const KNOWN: [(Method, &str); 7] = [
        (Method::GET, "GET"),
        (Method::POST, "POST"),
        (Method::PUT, "PUT"),
        (Method::DELETE, "DELETE"),
        (Method::HEAD, "HEAD"),
        (Method::OPTIONS, "OPTIONS"),
        (Method::PATCH, "PATCH"),
    ];
    KNOWN.iter().find(|(known, _)| known == method).map_or("other", |(_, label)| label)
}

/// Middleware around the whole application: counts and times each request
/// by route, method and status (`vm_http_requests_total`,
/// `vm_http_request_duration_seconds`), up to its response's headers.
pub async fn observe<E: Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    let started = Instant::now();
    let method = method_label(req.method());
    let path = req.uri().path().to_owned();
    let response = crate::error::respond(next.call(req).await).await;
    let route = route_of(&path, &response);
    let status = response.status().as_u16().to_string();
    HTTP_REQUESTS.fetch_add(1, Ordering::Relaxed);
    counter!(names::HTTP_REQUESTS, "route" => route, "method" => method, "status" => status).increment(1);
    histogram!(names::HTTP_DURATION, "route" => route).record(started.elapsed().as_secs_f64());
    Ok(response)
}

/// Around the OpenAPI service: answers an operation's error in the
/// envelope at once, as the application's catch-all would, keeping the
/// operation id on the response for [`observe`] and the audit log (the
/// catch-all answers a bad body or parameter without it).
pub async fn keep_operation_id<E: Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    match next.call(req).await {
        Ok(response) => Ok(response.into_response()),
        Err(err) => {
            let operation = err.data::<OperationId>().copied();
            let mut response = crate::error::envelope_poem_error(err).await;
            if let Some(operation) = operation {
                response.set_data(operation);
            }
            Ok(response)
        }
    }
}

/// An open event stream, counted in `vm_sse_clients` until dropped.
pub struct SseClient(());

impl SseClient {
    pub fn open() -> Self {
        SSE_CLIENTS.fetch_add(1, Ordering::Relaxed);
        gauge!(names::SSE_CLIENTS).increment(1.0);
        Self(())
    }
}

impl Drop for SseClient {
    fn drop(&mut self) {
        SSE_CLIENTS.fetch_sub(1, Ordering::Relaxed);
        gauge!(names::SSE_CLIENTS).decrement(1.0);
    }
}

/// What is read at scrape time: sessions by status (from the store, which
/// may be out), live runtimes, worker processes and store connections.
pub struct Scraped {
    pub sessions: Result<[(SessionStatus, u64); 4], DomainError>,
    pub live_sessions: u64,
    pub processes: ProcessStats,
    pub connections: Connections,
}

impl Scraped {
    pub async fn read(services: &Services) -> Self {
        Self {
            sessions: services.sessions.count_by_status().await,
            live_sessions: services.sessions.live_sessions().len() as u64,
            processes: services.sessions.process_stats(),
            connections: services.store_health.connections(),
        }
    }

    /// Sets the scrape-time gauges. Sessions by status keep their last
    /// values while the store is out: the rest of a scrape still works then.
    fn record(&self) {
        use names::*;
        match &self.sessions {
            Ok(counts) => {
                for (status, n) in counts {
                    gauge!(SESSIONS, "status" => status.as_str()).set(*n as f64);
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "metrics: sessions by status not read; the gauge keeps its last values")
            }
        }
        gauge!(SESSIONS_LIVE).set(self.live_sessions as f64);
        let processes = &self.processes;
        gauge!(WORKER_PROCESSES).set(processes.workers as f64);
        gauge!(WORKER_RSS).set(processes.worker_rss_bytes as f64);
        gauge!(WORKER_CPU).set(processes.worker_cpu_seconds);
        gauge!(ZYGOTES).set(processes.zygotes as f64);
        gauge!(CHECKPOINTS).set(processes.checkpoints as f64);
        let connections = &self.connections;
        gauge!(STORE_CONNECTIONS, "state" => "in_use").set(connections.in_use as f64);
        gauge!(STORE_CONNECTIONS, "state" => "idle").set(connections.idle as f64);
        gauge!(STORE_CONNECTIONS, "state" => "max").set(connections.max as f64);
    }
}

/// Every metric in the Prometheus text format, after reading the
/// scrape-time gauges.
pub async fn render(services: &Services) -> String {
    let handle = install_recorder();
    Scraped::read(services).await.record();
    handle.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(status: u16, operation: Option<&'static str>) -> Response {
        let mut response = Response::builder().status(poem::http::StatusCode::from_u16(status).unwrap()).finish();
        if let Some(id) = operation {
            response.set_data(OperationId(id));
        }
        response
    }

    #[test]
    fn a_route_is_its_operation_id_or_a_fixed_name() {
        let cases = [
            ("an operation, answered", "/api/v1/templates", 201, Some("createTemplate"), "createTemplate"),
            ("an operation, refused", "/api/v1/metrics", 401, Some("metrics"), "metrics"),
            ("an unknown API path", "/api/v1/nope", 404, None, UNMATCHED),
            ("a wrong method", "/api/v1/templates", 405, None, UNMATCHED),
            ("a refused host", "/api/v1/templates", 421, None, UNMATCHED),
            ("the OpenAPI document", "/api/v1/openapi.json", 200, None, "openapi"),
            ("Swagger UI", "/docs/index.html", 200, None, "docs"),
            ("the web UI", "/sessions/abc", 200, None, "ui"),
            ("a missing UI file", "/nope.js", 404, None, UNMATCHED),
        ];
        for (label, path, status, operation, route) in cases {
            assert_eq!(route_of(path, &answered(status, operation)), route, "{label}");
        }
    }

    #[test]
    fn unusual_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
    }
}

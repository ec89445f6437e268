//! `/metrics` and `/metrics/summary` through the real daemon (issue 14): a
//! known sequence of requests and executions, then a scrape parsed as
//! Prometheus parses it, whose counters must be exactly what happened and
//! agree with the JSON summary.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::time::Duration;

use prometheus_parse::{Sample, Scrape, Value as Metric};
use serde_json::{json, Value};

use crate::harness::{client, eventually, Daemon, Home};
use crate::runtime::{repl, session, template};

/// A scrape of `/metrics`, parsed.
struct Metrics(Scrape);

impl Metrics {
    fn scrape(daemon: &Daemon) -> Self {
        let response = daemon.get_raw("/api/v1/metrics");
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(response.headers()["content-type"], "text/plain; version=0.0.4; charset=utf-8");
        let text = response.text().expect("a text body");
        let scrape = Scrape::parse(text.lines().map(|line| Ok(line.to_owned()))).expect("Prometheus text parses");
        Self(scrape)
    }

    /// The samples of `name` whose labels include `labels`.
    fn samples<'a>(&'a self, name: &'a str, labels: &'a [(&'a str, &'a str)]) -> impl Iterator<Item = &'a Sample> {
        self.0
            .samples
            .iter()
            .filter(move |s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
    }

    /// The one counter or gauge `name` with exactly these labels; 0 when
    /// absent (a series appears with its first increment).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<&Sample> =
            self.samples(name, labels).filter(|s| s.labels.iter().count() == labels.len()).collect();
        assert!(found.len() <= 1, "{name}{labels:?} is one series: {found:?}");
        match found.first().map(|s| &s.value) {
            None => 0.0,
            Some(Metric::Counter(v) | Metric::Gauge(v)) => *v,
            Some(other) => panic!("{name}{labels:?} is not a counter or gauge: {other:?}"),
        }
    }

    /// Sum of the counter `name` over the series whose labels include `labels`.
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples(name, labels)
            .map(|s| match s.value {
                Metric::Counter(v) => v,
                ref other => panic!("{name} is not a counter: {other:?}"),
            })
            .sum()
    }

    /// A histogram's observations: its `+Inf` bucket, checked against its `_count`.
    fn histogram_count(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let buckets: Vec<&Sample> = self.samples(name, labels).collect();
        assert_eq!(buckets.len(), 1, "{name}{labels:?}: one histogram");
        let Metric::Histogram(counts) = &buckets[0].value else { panic!("{name} is a histogram") };
        let infinite = counts.iter().find(|b| b.less_than.is_infinite()).expect("a +Inf bucket").count;
        assert!(counts.windows(2).all(|w| w[0].count <= w[1].count), "{name}: buckets are cumulative");
        let count_name = format!("{name}_count");
        let count = self.samples(&count_name, labels).map(|s| untyped(&s.value)).next().expect("a _count line");
        assert_eq!(infinite, count, "{name}{labels:?}: the +Inf bucket is the count");
        count
    }
}

fn untyped(value: &Metric) -> f64 {
    match value {
        Metric::Untyped(v) | Metric::Counter(v) | Metric::Gauge(v) => *v,
        other => panic!("not a number: {other:?}"),
    }
}

fn summary(daemon: &Daemon) -> Value {
    let (status, summary) = daemon.get("/metrics/summary");
    assert_eq!(status, 200, "{summary}");
    summary
}

/// Every line of an event stream until the server ends it.
fn read_stream(response: reqwest::blocking::Response) -> Vec<String> {
    BufReader::new(response).lines().map_while(Result::ok).collect()
}

#[test]
fn metrics_count_a_known_sequence_exactly_and_the_summary_agrees() {
    let home = Home::new();
    let daemon = Daemon::start(&home);
    // Before anything ran: the execution series exist, at zero.
    let empty = Metrics::scrape(&daemon);
    for (name, labels) in [
        ("vm_executions_total", &[("kind", "repl"), ("status", "ok")][..]),
        ("vm_executions_total", &[("kind", "startup"), ("status", "cancelled")]),
        ("vm_limit_hits_total", &[("limit", "memory")]),
    ] {
        assert_eq!(empty.samples(name, labels).count(), 1, "{name}{labels:?}");
        assert_eq!(empty.value(name, labels), 0.0, "{name}{labels:?}");
    }

    let t = template(&daemon, json!({ "limits": { "cpu_ms": 300 } }), &[], &[]);
    let s = session(&daemon, &home, &t);
    for input in ["1 + 1", "console.log('hello'); 2"] {
        let (status, body) = repl(&daemon, &s, input);
        assert_eq!((status, body["status"].as_str()), (201, Some("ok")), "{body}");
    }
    let (status, body) = repl(&daemon, &s, "throw new Error('boom')");
    assert_eq!((status, body["status"].as_str()), (201, Some("error")), "{body}");
    let (status, body) = repl(&daemon, &s, "while (true) {}");
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("EXECUTION_TIMEOUT")), "{body}");
    let (status, _) = daemon.get("/no/such/route");
    assert_eq!(status, 404);

    // An event stream, open while its execution waits on a timer.
    let (status, running) = daemon.post(
        "/executions/repl",
        json!({ "session_id": s, "input": "await new Promise(r => setTimeout(r, 2500)); 'late'", "wait": false }),
    );
    assert_eq!(status, 202, "{running}");
    let stream = daemon
        .http()
        .get(format!("{}/api/v1/executions/{}/events", daemon.url, running["id"].as_str().unwrap()))
        .header("accept", "text/event-stream")
        .send()
        .expect("the daemon answers");
    assert_eq!(stream.status().as_u16(), 200);
    let open = summary(&daemon);
    assert_eq!((open["sse_clients"].as_u64(), open["executions"]["running"].as_u64()), (Some(1), Some(1)), "{open}");
    let lines = read_stream(stream);
    assert!(lines.iter().any(|l| l == "event: end"), "{lines:?}");
    eventually(Duration::from_secs(5), "the closed stream to be uncounted", || {
        (summary(&daemon)["sse_clients"] == 0).then_some(())
    });
    let unauthenticated = client(None).get(format!("{}/api/v1/metrics", daemon.url)).send().unwrap();
    assert_eq!(unauthenticated.status().as_u16(), 401);

    let m = Metrics::scrape(&daemon);
    let after = summary(&daemon);

    // Executions: exactly what ran, by kind and status, and what stopped one.
    let executions = |status: &str| m.value("vm_executions_total", &[("kind", "repl"), ("status", status)]);
    let by_status = ["ok", "error", "timeout", "cancelled"].map(executions);
    assert_eq!(by_status, [3.0, 1.0, 1.0, 0.0]);
    assert_eq!(m.sum("vm_executions_total", &[("kind", "startup")]), 0.0);
    assert_eq!(m.value("vm_executions_running", &[]), 0.0);
    let hits = ["cpu", "wall", "memory", "events", "output"].map(|l| m.value("vm_limit_hits_total", &[("limit", l)]));
    assert_eq!(hits, [1.0, 0.0, 0.0, 0.0, 0.0]);
    assert_eq!(m.histogram_count("vm_execution_duration_seconds", &[("kind", "repl")]), 5.0);
    let (_, stored) = daemon.get(&format!("/executions?session_id={s}"));
    let stored = stored.as_array().expect("a list").clone();
    assert_eq!(stored.len(), 5);
    let total = |field: &str| stored.iter().map(|e| e["metrics"][field].as_u64().unwrap()).sum::<u64>() as f64;
    assert_eq!(m.value("vm_execution_events_total", &[]), total("event_count"));
    assert_eq!(m.value("vm_execution_output_bytes_total", &[]), total("output_bytes"));

    // HTTP: each request by its operation, the unknown route as unmatched.
    let requests = |route: &str, method: &str, status: &str| {
        m.value("vm_http_requests_total", &[("route", route), ("method", method), ("status", status)])
    };
    assert_eq!(requests("createTemplate", "POST", "201"), 1.0);
    assert_eq!(requests("replaceTemplateSettings", "PUT", "200"), 1.0);
    assert_eq!(requests("createSession", "POST", "201"), 1.0);
    assert_eq!(requests("runRepl", "POST", "201"), 3.0);
    assert_eq!(requests("runRepl", "POST", "422"), 1.0);
    assert_eq!(requests("runRepl", "POST", "202"), 1.0);
    assert_eq!(requests("unmatched", "GET", "404"), 1.0);
    assert_eq!(requests("listExecutionEvents", "GET", "200"), 1.0);
    assert_eq!(requests("metrics", "GET", "401"), 1.0);
    assert_eq!(requests("metrics", "GET", "200"), 1.0, "the first scrape; this one is counted once answered");
    assert_eq!(m.histogram_count("vm_http_request_duration_seconds", &[("route", "runRepl")]), 5.0);
    let all_requests = m.sum("vm_http_requests_total", &[]);
    let all_timed: f64 =
        m.0.samples
            .iter()
            .filter(|s| s.metric == "vm_http_request_duration_seconds")
            .map(|s| match &s.value {
                Metric::Histogram(b) => b.iter().find(|b| b.less_than.is_infinite()).unwrap().count,
                _ => 0.0,
            })
            .sum();
    assert_eq!(all_requests, all_timed, "every counted request is timed");

    // Now: sessions, runtimes, streams, workers, the store.
    assert_eq!(m.value("vm_sessions", &[("status", "ready")]), 1.0);
    assert_eq!(m.value("vm_sessions", &[("status", "crashed")]), 0.0);
    assert_eq!(m.value("vm_sessions_live", &[]), 1.0);
    assert_eq!(m.value("vm_sse_clients", &[]), 0.0);
    assert_eq!(m.value("vm_worker_processes", &[]), 1.0);
    assert!(m.value("vm_worker_rss_bytes", &[]) > 1_000_000.0);
    // The loop killed at its CPU limit took its time along; the checkpoint that took over has used little.
    assert_eq!(m.samples("vm_worker_cpu_seconds", &[]).count(), 1);
    assert!(m.value("vm_zygotes", &[]) >= 1.0);
    assert_eq!(m.value("vm_store_pool_connections", &[("state", "max")]), 9.0, "8 SQLite readers and the writer");
    assert_eq!(m.histogram_count("vm_store_query_duration_seconds", &[("op", "sessions.insert")]), 1.0);
    assert_eq!(m.histogram_count("vm_store_query_duration_seconds", &[("op", "executions.insert")]), 5.0);

    // Every metric says what it is.
    let names: BTreeMap<&str, ()> = m.0.samples.iter().map(|s| (s.metric.as_str(), ())).collect();
    for name in names.keys().filter(|n| n.starts_with("vm_")) {
        let base = name.trim_end_matches("_count").trim_end_matches("_sum");
        assert!(m.0.docs.get(*name).or(m.0.docs.get(base)).is_some_and(|d| !d.is_empty()), "{name} has no HELP");
    }

    // The summary tells the same story.
    assert_eq!(after["executions"], json!({ "running": 0, "ok": 3, "error": 1, "timeout": 1, "cancelled": 0 }));
    assert_eq!(after["executions_total"], 5);
    assert_eq!(after["limit_hits"], json!({ "cpu": 1, "wall": 0, "memory": 0, "events": 0, "output": 0 }));
    assert_eq!(after["sessions"], json!({ "starting": 0, "ready": 1, "crashed": 0, "closed": 0 }));
    assert_eq!((after["live_sessions"].as_u64(), after["sse_clients"].as_u64()), (Some(1), Some(0)));
    assert_eq!(after["duration_ms"]["count"], 5);
    let (p50, p99) = (after["duration_ms"]["p50"].as_f64().unwrap(), after["duration_ms"]["p99"].as_f64().unwrap());
    assert!(p50 <= p99 && p99 >= 1000.0, "the timer execution took over a second: {after}");
    assert_eq!(after["http_requests_total"].as_f64(), Some(all_requests + 1.0), "the scrape itself, and no more");
    assert_eq!(after["workers"]["processes"], 1);
    assert!(after["workers"]["rss_bytes"].as_u64().unwrap() > 1_000_000);
    assert!(after["uptime_seconds"].is_u64());
}

#[test]
fn metrics_need_a_token_with_scope_read() {
    let home = Home::new();
    let daemon = Daemon::start(&home);
    for path in ["/api/v1/metrics", "/api/v1/metrics/summary"] {
        let refused = client(None).get(format!("{}{path}", daemon.url)).send().unwrap();
        assert_eq!(refused.status().as_u16(), 401, "{path}");
        let body: Value = refused.json().unwrap();
        assert_eq!(body["error"]["code"], "UNAUTHENTICATED", "{path}");
    }
    let (status, created) =
        daemon.post("/tokens", json!({ "name": "prometheus", "scopes": ["read"], "expires_at": null }));
    assert_eq!(status, 201, "{created}");
    let reader = client(created["secret"].as_str());
    let scraped = reader.get(format!("{}/api/v1/metrics", daemon.url)).send().unwrap();
    assert_eq!(scraped.status().as_u16(), 200);
    assert!(scraped.text().unwrap().contains("# TYPE vm_executions_total counter"));
}

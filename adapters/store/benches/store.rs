//! The two backends side by side through the ports: the store's share of a
//! REPL call (an execution with 3 events) and an execution with 1,000
//! events, each an `insert` then a `finish`. `cargo bench -p vm-store`.
//!
//! PostgreSQL runs in a throwaway cluster with its durable defaults (fsync
//! and synchronous commit on); SQLite is the daemon's file in WAL mode with
//! `synchronous = NORMAL`. Without the PostgreSQL programs only SQLite runs.

use std::collections::BTreeMap;

use chrono::{DurationRound, TimeDelta, Utc};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use serde_json::{json, Map};
use vm_domain::event::{ConsoleLevel, Event, EventPayload};
use vm_domain::execution::{Execution, ExecutionKind, ExecutionStatus, Metrics};
use vm_domain::ids::{ExecutionId, SessionId, TemplateId};
use vm_domain::paths::WorktreePath;
use vm_domain::session::{Label, Session, SessionStatus};
use vm_domain::Timestamp;
use vm_store::{Database, PostgresUrl, Stores};

fn now() -> Timestamp {
    Utc::now().duration_trunc(TimeDelta::microseconds(1)).expect("now is in range")
}

/// A running REPL execution and the `events` events it will finish with.
fn execution(session_id: SessionId, events: usize) -> (Execution, Execution, Vec<Event>) {
    let started_at = now();
    let running = Execution {
        id: ExecutionId::new(),
        session_id,
        kind: ExecutionKind::Repl,
        input: Some("for (let i = 0; i < n; i++) console.log(i)".into()),
        path: None,
        args: Map::new(),
        env: BTreeMap::new(),
        status: ExecutionStatus::Running,
        started_at,
        ended_at: None,
        result: None,
        error: None,
        metrics: Metrics::default(),
    };
    let recorded: Vec<Event> = (1..=events as i64)
        .map(|seq| Event {
            execution_id: running.id,
            seq,
            ts: started_at,
            payload: EventPayload::Console { level: ConsoleLevel::Log, text: format!("line {seq} of the output") },
        })
        .collect();
    let done = Execution {
        status: ExecutionStatus::Ok,
        ended_at: Some(started_at),
        result: Some(json!({ "type": "undefined", "preview": "undefined" })),
        metrics: Metrics { duration_ms: 1, event_count: events as u64, output_bytes: 20 * events as u64 },
        ..running.clone()
    };
    (running, done, recorded)
}

async fn a_session(stores: &Stores) -> SessionId {
    let session = Session {
        id: SessionId::new(),
        template_id: TemplateId::new(),
        workspace_id: Label::parse("workspace_id", "bench").expect("a label"),
        base_commit_oid: Label::parse("base_commit_oid", "bench").expect("a label"),
        worktree_path: WorktreePath::from_stored("/tmp"),
        status: SessionStatus::Ready,
        created_at: now(),
        closed_at: None,
        last_error: None,
    };
    stores.sessions.insert(&session).await.expect("the session is stored");
    session.id
}

fn backends(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let dir = tempfile::tempdir().expect("a temp dir");
    let cluster = match vm_testpg::Binaries::locate() {
        Some(_) => Some(vm_testpg::Cluster::start(vm_testpg::Options { durable: true }).expect("a cluster starts")),
        None => {
            eprintln!("PostgreSQL server programs not found: benchmarking SQLite only");
            None
        }
    };
    let mut databases = vec![("sqlite", Database::Sqlite(dir.path().join("bench.db")))];
    if let Some(cluster) = &cluster {
        let url = cluster.create_database().expect("a database");
        databases.push(("postgres", Database::Postgres(PostgresUrl::new(url))));
    }

    for (name, database) in &databases {
        let stores = rt.block_on(vm_store::open(database)).expect("the store opens");
        let session = rt.block_on(a_session(&stores));
        let mut group = c.benchmark_group(*name);
        group.sample_size(40);
        for events in [3, 1_000] {
            group.bench_function(format!("execution_with_{events}_events"), |b| {
                b.to_async(&rt).iter_batched(
                    || execution(session, events),
                    |(running, done, recorded)| {
                        let stores = stores.clone();
                        async move {
                            stores.executions.insert(&running).await.expect("insert");
                            stores.executions.finish(&done, &recorded).await.expect("finish");
                        }
                    },
                    BatchSize::SmallInput,
                )
            });
        }
        group.finish();
        rt.block_on(stores.close());
    }
}

criterion_group!(benches, backends);
criterion_main!(benches);

//! The two backends side by side through the ports: the store's share of a
//! REPL call (an execution with 3 events), an execution with 1,000 events
//! (each an `insert` then a `finish`), 8 REPL executions of 8 sessions at
//! once, and then the REPL call, a session's newest 50 executions and the
//! start-up scan for `running` ones with 100,000 executions in the
//! database. `cargo bench -p vm-store`.
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
        forked_from: None,
        node_id: None,
    };
    stores.sessions.insert(&session).await.expect("the session is stored");
    session.id
}

/// The store's share of one execution: `insert` as it starts, `finish`
/// with its events.
async fn record(stores: Stores, (running, done, recorded): (Execution, Execution, Vec<Event>)) {
    stores.executions.insert(&running).await.expect("insert");
    stores.executions.finish(&done, &recorded).await.expect("finish");
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
    let mut pg_url = None;
    if let Some(cluster) = &cluster {
        let url = cluster.create_database().expect("a database");
        pg_url = Some(url.clone());
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
                    |run| record(stores.clone(), run),
                    BatchSize::SmallInput,
                )
            });
        }
        let sessions: Vec<SessionId> =
            rt.block_on(async { futures::future::join_all((0..8).map(|_| a_session(&stores))).await });
        group.bench_function("eight_concurrent_executions_with_3_events", |b| {
            b.to_async(&rt).iter_batched(
                || sessions.iter().map(|s| execution(*s, 3)).collect::<Vec<_>>(),
                |batch| {
                    let stores = stores.clone();
                    async move {
                        futures::future::join_all(batch.into_iter().map(|run| record(stores.clone(), run))).await;
                    }
                },
                BatchSize::SmallInput,
            )
        });

        rt.block_on(prefill(database, pg_url.as_deref(), &stores, session, PREFILLED));
        group.bench_function("execution_with_3_events_among_100k", |b| {
            b.to_async(&rt).iter_batched(
                || execution(session, 3),
                |run| record(stores.clone(), run),
                BatchSize::SmallInput,
            )
        });
        group.bench_function("newest_50_of_a_session_among_100k", |b| {
            b.to_async(&rt).iter(|| async { stores.executions.list(Some(session), 50).await.expect("list") })
        });
        group.bench_function("running_scan_among_100k", |b| {
            b.to_async(&rt).iter(|| async { stores.executions.running().await.expect("running") })
        });
        group.finish();
        rt.block_on(stores.close());
    }
}

/// Executions already in the database for the "among 100k" benchmarks.
const PREFILLED: i64 = 100_000;

/// Adds finished executions of `session`, 3 events each, until it has
/// `total`, with one plain SQL statement per table (the ports would take
/// minutes on a durable PostgreSQL).
async fn prefill(database: &Database, pg_url: Option<&str>, stores: &Stores, session: SessionId, total: i64) {
    let have = stores.executions.list(Some(session), u32::MAX).await.expect("list").len() as i64;
    let missing = total - have;
    if missing <= 0 {
        return;
    }
    match database {
        Database::Sqlite(path) => {
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.expect("a connection");
            let mut tx = pool.begin().await.expect("a transaction");
            sqlx::query(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $2) \
                 INSERT INTO executions (id, session_id, kind, input, path, args, env, status, started_at, ended_at, \
                                         result, error, duration_ms, event_count, output_bytes) \
                 SELECT lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) \
                              || '-a' || substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6))), \
                        $1, 'repl', '1 + 1', NULL, '{}', '{}', 'ok', \
                        strftime('%Y-%m-%dT%H:%M:%f000Z', 'now', '-' || i || ' seconds'), \
                        strftime('%Y-%m-%dT%H:%M:%f000Z', 'now', '-' || i || ' seconds'), \
                        '{\"type\":\"number\",\"preview\":\"2\"}', NULL, 1, 3, 1 FROM n",
            )
            .bind(session.to_string())
            .bind(missing)
            .execute(&mut *tx)
            .await
            .expect("prefill executions");
            sqlx::query(
                "INSERT INTO execution_events (execution_id, seq, ts, type, payload) \
                 SELECT e.id, s.seq, e.started_at, 'console', '{\"level\":\"log\",\"text\":\"line\"}' \
                 FROM executions e, (SELECT 1 AS seq UNION ALL SELECT 2 UNION ALL SELECT 3) s \
                 WHERE e.event_count = 3 AND e.input = '1 + 1' AND e.path IS NULL AND e.kind = 'repl' \
                   AND NOT EXISTS (SELECT 1 FROM execution_events x WHERE x.execution_id = e.id)",
            )
            .execute(&mut *tx)
            .await
            .expect("prefill events");
            tx.commit().await.expect("prefill commits");
            pool.close().await;
        }
        Database::Postgres(_) => {
            let pool = sqlx::PgPool::connect(pg_url.expect("the cluster's URL")).await.expect("a connection");
            let mut tx = pool.begin().await.expect("a transaction");
            sqlx::query(
                "INSERT INTO executions (id, session_id, kind, input, path, args, env, status, started_at, ended_at, \
                                         result, error, duration_ms, event_count, output_bytes) \
                 SELECT gen_random_uuid(), $1, 'repl', '\"1 + 1\"', NULL, '{}', '{}', 'ok', \
                        now() - i * interval '1 second', now() - i * interval '1 second', \
                        '{\"type\":\"number\",\"preview\":\"2\"}', NULL, 1, 3, 1 \
                 FROM generate_series(1, $2) AS i",
            )
            .bind(session.as_uuid())
            .bind(missing)
            .execute(&mut *tx)
            .await
            .expect("prefill executions");
            sqlx::query(
                "INSERT INTO execution_events (execution_id, seq, ts, type, payload) \
                 SELECT e.id, s.seq, e.started_at, 'console', '{\"level\":\"log\",\"text\":\"line\"}' \
                 FROM executions e CROSS JOIN generate_series(1, 3) AS s (seq) \
                 WHERE NOT EXISTS (SELECT 1 FROM execution_events x WHERE x.execution_id = e.id)",
            )
            .execute(&mut *tx)
            .await
            .expect("prefill events");
            tx.commit().await.expect("prefill commits");
            pool.close().await;
        }
    }
}

criterion_group!(benches, backends);
criterion_main!(benches);

//! What only PostgreSQL has: a server that may be unreachable, URLs with
//! passwords and pool settings, native column types, and reconnecting.

use std::net::TcpListener;

use sqlx::postgres::PgPoolOptions;
use vm_domain::ids::TemplateId;
use vm_domain::ports::{SessionStore, TemplateStore};
use vm_domain::template::Settings;
use vm_store::{OpenError, PostgresStore, PostgresUrl};

use crate::harness::{fresh_postgres_url, migrations_before};
use crate::seed::{at, session, template};

/// A port on 127.0.0.1 that nothing listens on.
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test]
async fn an_unreachable_server_is_one_sentence_naming_host_and_port() {
    let port = closed_port();
    let url = PostgresUrl::new(format!("postgres://vm:s3cret@127.0.0.1:{port}/vm"));

    let err = PostgresStore::connect(&url).await.unwrap_err();

    assert!(matches!(err, OpenError::Unreachable { .. }), "{err:?}");
    assert_eq!(err.to_string(), format!("cannot reach the PostgreSQL server at 127.0.0.1:{port}: connection refused"));
    assert!(!format!("{err} {err:?}").contains("s3cret"));
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_within_the_acquire_timeout() {
    // A listener that accepts into its backlog but never speaks.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let url = PostgresUrl::new(format!("postgres://vm@127.0.0.1:{port}/vm?acquire_timeout=1"));

    let clock = std::time::Instant::now();
    let err = PostgresStore::connect(&url).await.unwrap_err();

    assert!(clock.elapsed() < std::time::Duration::from_secs(5), "took {:?}", clock.elapsed());
    assert_eq!(
        err.to_string(),
        format!("cannot reach the PostgreSQL server at 127.0.0.1:{port}: no answer within 1 s")
    );
}

#[tokio::test]
async fn a_missing_database_is_refused_by_the_named_server() {
    let Some(url) = fresh_postgres_url() else { return };
    let missing = PostgresUrl::new(url.redacted().rsplit_once('/').unwrap().0.to_owned() + "/no_such_db");

    let err = PostgresStore::connect(&missing).await.unwrap_err();

    let message = err.to_string();
    assert!(matches!(err, OpenError::Refused { .. }), "{err:?}");
    assert!(message.starts_with("the PostgreSQL server at 127.0.0.1:"), "{message}");
    assert!(message.contains("\"no_such_db\" does not exist"), "{message}");
}

#[tokio::test]
async fn columns_are_uuid_timestamptz_jsonb_and_json() {
    let Some(url) = fresh_postgres_url() else { return };
    let store = PostgresStore::connect(&url).await.unwrap();
    let type_of = async |table: &str, column: &str| -> String {
        sqlx::query_scalar(
            "SELECT data_type FROM information_schema.columns WHERE table_name = $1 AND column_name = $2",
        )
        .bind(table)
        .bind(column)
        .fetch_one(store.pool())
        .await
        .unwrap_or_else(|err| panic!("{table}.{column}: {err}"))
    };

    assert_eq!(type_of("templates", "id").await, "uuid");
    assert_eq!(type_of("sessions", "template_id").await, "uuid");
    assert_eq!(type_of("executions", "started_at").await, "timestamp with time zone");
    assert_eq!(type_of("execution_events", "ts").await, "timestamp with time zone");
    assert_eq!(type_of("template_settings", "settings").await, "jsonb");
    assert_eq!(type_of("template_capabilities", "config").await, "json");
    assert_eq!(type_of("executions", "input").await, "json");
    assert_eq!(type_of("execution_events", "payload").await, "json");
    assert_eq!(type_of("executions", "pk").await, "bigint");
}

#[tokio::test]
async fn pool_settings_in_the_url_reach_the_pool() {
    let Some(url) = fresh_postgres_url() else { return };
    let tuned = PostgresUrl::new(format!("{}?max_connections=3&min_connections=2&acquire_timeout=4", url.redacted()));

    let store = PostgresStore::connect(&tuned).await.unwrap();

    let options = store.pool().options();
    assert_eq!(options.get_max_connections(), 3);
    assert_eq!(options.get_min_connections(), 2);
    assert_eq!(options.get_acquire_timeout(), std::time::Duration::from_secs(4));
}

#[tokio::test]
async fn reconnecting_keeps_the_data_and_applies_migrations_once() {
    let Some(url) = fresh_postgres_url() else { return };
    let demo = template("demo", at(1));
    let made = session(demo.id, at(2));
    {
        let store = PostgresStore::connect(&url).await.unwrap();
        TemplateStore::insert(&store, &demo, &Settings::default()).await.unwrap();
        SessionStore::insert(&store, &made).await.unwrap();
        store.close().await;
    }

    let store = PostgresStore::connect(&url).await.unwrap();

    assert_eq!(TemplateStore::get(&store, demo.id).await.unwrap(), Some(demo));
    assert_eq!(SessionStore::get(&store, made.id).await.unwrap(), Some(made));
    let applied: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations").fetch_one(store.pool()).await.unwrap();
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/postgres")).unwrap().count();
    assert_eq!(applied, migrations as i64);
}

#[tokio::test]
async fn a_session_stored_before_forks_were_recorded_reads_as_forked_from_none() {
    let Some(url) = vm_testpg::fresh_database_url() else { return };
    let old = session(TemplateId::new(), at(1));
    {
        let pool = PgPoolOptions::new().max_connections(1).connect(&url).await.unwrap();
        migrations_before("postgres", 3).await.run(&pool).await.unwrap();
        sqlx::query(
            "INSERT INTO sessions (id, template_id, workspace_id, base_commit_oid, worktree_path, status, created_at) \
             VALUES ($1, $2, $3, $4, $5, 'ready', $6)",
        )
        .bind(old.id.as_uuid())
        .bind(old.template_id.as_uuid())
        .bind(old.workspace_id.as_str())
        .bind(old.base_commit_oid.as_str())
        .bind(old.worktree_path.as_path().to_string_lossy().into_owned())
        .bind(old.created_at)
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
    }

    let store = PostgresStore::connect(&PostgresUrl::new(url)).await.expect("the store migrates the older schema");

    assert_eq!(old.forked_from, None);
    assert_eq!(SessionStore::get(&store, old.id).await.unwrap(), Some(old.clone()));
    assert_eq!(SessionStore::list(&store, None).await.unwrap(), [old]);
}

#[tokio::test]
async fn forked_from_is_a_uuid_without_a_foreign_key() {
    let Some(url) = fresh_postgres_url() else { return };
    let store = PostgresStore::connect(&url).await.unwrap();

    let (data_type, nullable): (String, String) = sqlx::query_as(
        "SELECT data_type, is_nullable FROM information_schema.columns \
         WHERE table_name = 'sessions' AND column_name = 'forked_from'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    let keys: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_constraint WHERE conrelid = 'sessions'::regclass AND contype = 'f'",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();

    assert_eq!((data_type.as_str(), nullable.as_str()), ("uuid", "YES"));
    assert_eq!(keys, 0, "deleting a parent session must not touch its forks");
}

//! What only SQLite has: the file, its pragmas, and reopening it.

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};
use vm_domain::ids::TemplateId;
use vm_domain::ports::{SessionStore, StoreHealth, TemplateStore};
use vm_domain::template::Settings;
use vm_store::SqliteStore;

use crate::harness::migrations_before;
use crate::seed::{at, session, template};

#[tokio::test]
async fn opening_creates_the_file_and_its_missing_parent_directories() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state/nested/vm-system.db");

    let store = SqliteStore::open(&path).await.unwrap();

    assert!(path.is_file());
    assert!(TemplateStore::list(&store).await.unwrap().is_empty());
}

#[tokio::test]
async fn connections_use_wal_foreign_keys_normal_sync_a_busy_timeout_and_no_auto_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("vm-system.db")).await.unwrap();
    let pragma = async |name: &str| -> String {
        sqlx::query_scalar(&format!("SELECT CAST({name} AS TEXT) FROM pragma_{name}"))
            .fetch_one(store.pool())
            .await
            .unwrap_or_else(|err| panic!("pragma {name}: {err}"))
    };

    assert_eq!(pragma("journal_mode").await, "wal");
    assert_eq!(pragma("foreign_keys").await, "1");
    assert_eq!(pragma("synchronous").await, "1", "1 is NORMAL");
    let busy_timeout: i64 = sqlx::query_scalar("PRAGMA busy_timeout").fetch_one(store.pool()).await.unwrap();
    assert_eq!(busy_timeout, 1500, "SQLITE_BUSY must surface (as 503) within 2 s");
    let auto_checkpoint: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint").fetch_one(store.pool()).await.unwrap();
    assert_eq!(auto_checkpoint, 0, "checkpoints run in the background, not on a request");
}

#[tokio::test]
async fn reopening_the_same_file_keeps_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vm-system.db");
    let demo = template("demo", at(1));
    let made = session(demo.id, at(2));
    {
        let store = SqliteStore::open(&path).await.unwrap();
        TemplateStore::insert(&store, &demo, &Settings::default()).await.unwrap();
        SessionStore::insert(&store, &made).await.unwrap();
        store.close().await;
    }

    let store = SqliteStore::open(&path).await.unwrap();

    assert_eq!(TemplateStore::get(&store, demo.id).await.unwrap(), Some(demo));
    assert_eq!(SessionStore::get(&store, made.id).await.unwrap(), Some(made));
}

#[tokio::test]
async fn a_session_stored_before_forks_were_recorded_reads_as_forked_from_none() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vm-system.db");
    let old = session(TemplateId::new(), at(1));
    {
        let mut conn = SqliteConnectOptions::new().filename(&path).create_if_missing(true).connect().await.unwrap();
        migrations_before("sqlite", 3).await.run(&mut conn).await.unwrap();
        sqlx::query(
            "INSERT INTO sessions (id, template_id, workspace_id, base_commit_oid, worktree_path, status, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, 'ready', ?6)",
        )
        .bind(old.id.to_string())
        .bind(old.template_id.to_string())
        .bind(old.workspace_id.as_str())
        .bind(old.base_commit_oid.as_str())
        .bind(old.worktree_path.as_path().to_string_lossy().into_owned())
        .bind(old.created_at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
    }

    let store = SqliteStore::open(&path).await.expect("the store migrates the older file");

    assert_eq!(old.forked_from, None);
    assert_eq!(SessionStore::get(&store, old.id).await.unwrap(), Some(old.clone()));
    assert_eq!(SessionStore::list(&store, None).await.unwrap(), [old]);
}

#[tokio::test]
async fn connections_count_the_readers_and_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("vm-system.db")).await.unwrap();
    TemplateStore::list(&store).await.unwrap();
    // A reader goes back to the pool on a task of its own, just after the read.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while store.connections().in_use > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let idle = store.connections();
    assert_eq!((idle.in_use, idle.max), (0, 9), "8 readers and the writer: {idle:?}");
    assert!(idle.idle >= 2, "a reader and the writer stay open: {idle:?}");
    let reading = store.pool().acquire().await.unwrap();
    assert_eq!(store.connections().in_use, 1);
    drop(reading);
}

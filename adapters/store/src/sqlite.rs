//! [`SqliteStore`]: the store on one SQLite file, with the schema of
//! `migrations/sqlite/`. What only SQLite has lives here: opening and
//! migrating the file, binding and reading its text columns, and the
//! write path.
//!
//! The write path keeps writes off each other's toes and checkpoints off
//! the request path:
//! - one writer connection, taken in turn (FIFO) by every write, so that
//!   writers queue in memory instead of sleeping in SQLite's busy handler;
//! - readers from a pool, which never wait for the writer (WAL);
//! - no automatic checkpoint on any connection: a background task runs a
//!   passive checkpoint every [`CHECKPOINT_EVERY`], and a `RESTART` one only
//!   when the WAL has grown past [`WAL_RESTART_PAGES`];
//! - a failed commit is rolled back, and a connection that cannot roll
//!   back is discarded and reopened by the next write, so the store heals
//!   once the cause (a full disk) is gone.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::TryStreamExt;
use serde::de::DeserializeOwned;
use sqlx::migrate::Migrator;
use sqlx::query::Query;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{Arguments, ConnectOptions, Connection, Executor, Row, Sqlite};
use tokio::sync::{Mutex, OwnedMutexGuard};
use tokio::task::JoinHandle;
use uuid::Uuid;
use vm_domain::event::Event;
use vm_domain::ports::Connections;
use vm_domain::{DomainError, Timestamp};

use crate::dialect::{Dialect, NameList, ReadRow, Value, Write};
use crate::error::{corrupt_column, OpenError};
use crate::rows::{parse_instant, timestamp_text};
use crate::store::Store;

/// The store on one SQLite file.
pub type SqliteStore = Store<SqliteDb>;

static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// Reader connections. Readers never wait for the writer in WAL mode.
const MAX_READERS: u32 = 8;

/// How long a call waits for a reader or for its turn at the writer before
/// the store counts as unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_millis(1_500);

/// How long a statement waits for a lock held outside this writer (another
/// process, or a `RESTART` checkpoint) before failing with `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_millis(1_500);

/// How often the background task checkpoints the WAL. Often enough that
/// the WAL holds little that is not in the database file yet: after a full
/// disk, freeing room for that backlog is what lets writes resume.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// WAL frames (pages) past which a checkpoint restarts the WAL from its
/// start, waiting for readers and the writer, instead of running beside
/// them: 4,096 pages are 16 MiB at SQLite's default page size.
const WAL_RESTART_PAGES: i64 = 4_096;

/// The size the WAL file is cut back to when it restarts (4 MiB), so that
/// a burst does not keep its disk space.
const JOURNAL_SIZE_LIMIT: &str = "4194304";

/// Events per multi-row `INSERT`: five parameters each, far below SQLite's
/// limit of 32766 parameters per statement.
const EVENTS_PER_INSERT: usize = 1_000;

impl SqliteStore {
    /// Opens the database at `path`, creating the file (and its parent
    /// directories) if missing, and applies pending migrations. Connections
    /// use WAL, `synchronous = NORMAL`, foreign keys and a busy timeout.
    pub async fn open(path: &Path) -> Result<Self, OpenError> {
        let open_error = |reason: String| OpenError::Sqlite { path: path.to_owned(), reason };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|err| open_error(err.to_string()))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            .pragma("wal_autocheckpoint", "0")
            .pragma("journal_size_limit", JOURNAL_SIZE_LIMIT);
        let mut writer = options.connect().await.map_err(|err| open_error(crate::error::chain(&err)))?;
        MIGRATOR.run(&mut writer).await.map_err(|err| OpenError::Migrate {
            database: path.display().to_string(),
            reason: crate::error::chain(&err),
        })?;
        let readers = SqlitePoolOptions::new()
            .max_connections(MAX_READERS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options.clone())
            .await
            .map_err(|err| open_error(err.to_string()))?;
        let checkpointer = tokio::spawn(checkpoint_loop(options.clone(), path.to_owned()));
        tracing::debug!(path = %path.display(), "SQLite store open");
        Ok(Store::new(SqliteDb {
            readers,
            writer: Arc::new(Mutex::new(Writer { conn: Some(writer), in_transaction: false, options })),
            checkpointer: std::sync::Mutex::new(Some(checkpointer)),
        }))
    }

    /// The reader pool, for diagnostics and tests; the services go through
    /// the ports.
    pub fn pool(&self) -> &SqlitePool {
        &self.db.readers
    }
}

/// A SQLite database: a reader pool, the one writer connection, and the
/// checkpointing task.
pub struct SqliteDb {
    readers: SqlitePool,
    writer: Arc<Mutex<Writer>>,
    checkpointer: std::sync::Mutex<Option<JoinHandle<()>>>,
}

/// The writer connection, `None` after it was discarded, and whether a
/// transaction on it was left open by a write that did not commit.
struct Writer {
    conn: Option<SqliteConnection>,
    in_transaction: bool,
    options: SqliteConnectOptions,
}

impl Writer {
    /// The connection, clean (no transaction open) and reopened if it was
    /// discarded.
    async fn ready(&mut self) -> Result<&mut SqliteConnection, sqlx::Error> {
        if self.in_transaction {
            self.roll_back().await;
        }
        if self.conn.is_none() {
            self.conn = Some(self.options.connect().await?);
            tracing::info!("SQLite writer connection reopened");
        }
        Ok(self.conn.as_mut().expect("just ensured"))
    }

    /// Ends whatever transaction is open: `ROLLBACK`, and if that fails
    /// (other than for there being none) the connection is discarded, to
    /// be reopened by the next write.
    async fn roll_back(&mut self) {
        self.in_transaction = false;
        if let Some(conn) = self.conn.as_mut() {
            match conn.execute("ROLLBACK").await {
                Err(err) if !is_no_transaction(&err) => {
                    tracing::warn!(error = %err, "discarding the SQLite writer connection: rollback failed");
                    self.conn = None;
                }
                _ => {}
            }
        }
    }
}

impl SqliteDb {
    /// Waits for the writer's turn, within [`ACQUIRE_TIMEOUT`].
    async fn writer(&self) -> Result<OwnedMutexGuard<Writer>, sqlx::Error> {
        tokio::time::timeout(ACQUIRE_TIMEOUT, self.writer.clone().lock_owned())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)
    }
}

/// Passive checkpoints beside readers and the writer; a `RESTART` one when
/// the WAL has grown past [`WAL_RESTART_PAGES`] (readers kept it from
/// restarting). Its own connection; errors are logged and retried.
async fn checkpoint_loop(options: SqliteConnectOptions, path: PathBuf) {
    let mut conn: Option<SqliteConnection> = None;
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if conn.is_none() {
            match options.connect().await {
                Ok(opened) => conn = Some(opened),
                Err(err) => {
                    tracing::warn!(path = %path.display(), error = %err, "checkpoint connection failed");
                    continue;
                }
            }
        }
        let c = conn.as_mut().expect("just ensured");
        match checkpoint(c, "PASSIVE").await {
            Ok(wal_pages) if wal_pages > WAL_RESTART_PAGES => {
                if let Err(err) = checkpoint(c, "RESTART").await {
                    tracing::warn!(error = %err, wal_pages, "WAL restart checkpoint failed");
                }
            }
            Ok(_) => {}
            Err(err) => {
                tracing::warn!(path = %path.display(), error = %err, "WAL checkpoint failed");
                conn = None;
            }
        }
    }
}

/// Runs one checkpoint; the WAL's size in frames.
async fn checkpoint(conn: &mut SqliteConnection, mode: &str) -> Result<i64, sqlx::Error> {
    let row = sqlx::query(&format!("PRAGMA wal_checkpoint({mode})")).fetch_one(&mut *conn).await?;
    row.try_get::<i64, _>(1)
}

fn bind<'q>(
    query: Query<'q, Sqlite, SqliteArguments<'q>>,
    value: &Value<'q>,
) -> Query<'q, Sqlite, SqliteArguments<'q>> {
    match value {
        Value::Id(id) => query.bind(id.map(|id| id.hyphenated().to_string())),
        Value::Text(text) | Value::FreeText(text) => query.bind(*text),
        Value::Json(json) => query.bind(json.clone()),
        Value::At(at) => query.bind(at.map(timestamp_text)),
        Value::Int(n) => query.bind(*n),
        Value::Bool(b) => query.bind(*b),
    }
}

fn statement<'q>(sql: &'q str, params: &'q [Value<'q>]) -> Query<'q, Sqlite, SqliteArguments<'q>> {
    params.iter().fold(sqlx::query(sql), bind)
}

#[async_trait]
impl Dialect for SqliteDb {
    type Row = SqliteRow;
    type Write = SqliteWrite;

    const SELECT_TEMPLATES: &'static str = "SELECT t.id, t.name, t.engine, t.is_active, t.created_at, t.updated_at, \
           (SELECT json_group_array(m.name ORDER BY m.name) \
              FROM template_modules m WHERE m.template_id = t.id) AS modules, \
           (SELECT json_group_array(l.name ORDER BY l.position) \
              FROM template_libraries l WHERE l.template_id = t.id) AS libraries \
         FROM templates t";

    /// Every write transaction holds the one writer already.
    const LOCK_TEMPLATE: Option<&'static str> = None;

    async fn fetch_all(&self, sql: &str, params: &[Value<'_>]) -> Result<Vec<SqliteRow>, sqlx::Error> {
        statement(sql, params).fetch_all(&self.readers).await
    }

    async fn fetch_optional(&self, sql: &str, params: &[Value<'_>]) -> Result<Option<SqliteRow>, sqlx::Error> {
        statement(sql, params).fetch_optional(&self.readers).await
    }

    async fn execute(&self, sql: &str, params: &[Value<'_>]) -> Result<u64, sqlx::Error> {
        let mut writer = self.writer().await?;
        let conn = writer.ready().await?;
        Ok(statement(sql, params).execute(conn).await?.rows_affected())
    }

    /// Takes the writer's turn; `BEGIN IMMEDIATE` goes with the first
    /// statement.
    async fn begin(&self) -> Result<SqliteWrite, sqlx::Error> {
        let mut writer = self.writer().await?;
        writer.ready().await?;
        Ok(SqliteWrite { writer, begun: false, tail: String::new(), tail_args: SqliteArguments::default() })
    }

    async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1").execute(&self.readers).await.map(|_| ())
    }

    /// The reader pool's connections and the writer: in use while a write
    /// holds its turn, idle otherwise (unless it was discarded).
    fn connections(&self) -> Connections {
        let open = u64::from(self.readers.size());
        let idle = self.readers.num_idle() as u64;
        let (writing, writer_idle) = match self.writer.try_lock() {
            Ok(writer) => (0, u64::from(writer.conn.is_some())),
            Err(_) => (1, 0),
        };
        Connections {
            in_use: open.saturating_sub(idle) + writing,
            idle: idle + writer_idle,
            max: u64::from(MAX_READERS) + 1,
        }
    }

    /// Stops checkpointing, checkpoints the whole WAL back into the file
    /// through the writer, and closes every connection.
    async fn close(&self) {
        if let Some(task) = self.checkpointer.lock().expect("never poisoned").take() {
            task.abort();
        }
        self.readers.close().await;
        let mut writer = self.writer.lock().await;
        if let Ok(conn) = writer.ready().await {
            if let Err(err) = checkpoint(conn, "TRUNCATE").await {
                tracing::warn!(error = %err, "final WAL checkpoint failed");
            }
        }
        if let Some(conn) = writer.conn.take() {
            let _ = conn.close().await;
        }
    }
}

/// A transaction on the writer connection; it holds the writer's turn.
///
/// Each statement costs a round trip to the connection's thread, so the
/// transaction sends as few scripts as it can: `BEGIN IMMEDIATE` goes with
/// its first statement, and bulk inserts, whose outcome nothing waits for,
/// go with `COMMIT`. Finishing an execution is two round trips.
pub struct SqliteWrite {
    writer: OwnedMutexGuard<Writer>,
    /// Whether `BEGIN IMMEDIATE` was sent.
    begun: bool,
    /// Bulk inserts to send with the next statement or `COMMIT`: SQL with
    /// positional `?` parameters, and their values.
    tail: String,
    tail_args: SqliteArguments<'static>,
}

impl SqliteWrite {
    fn conn(&mut self) -> Result<&mut SqliteConnection, sqlx::Error> {
        self.writer.conn.as_mut().ok_or(sqlx::Error::PoolClosed)
    }

    /// `BEGIN IMMEDIATE; ` the first time, then nothing. From here on a
    /// failure leaves the transaction for the next write to roll back.
    fn begin_once(&mut self) -> &'static str {
        if self.begun {
            return "";
        }
        self.begun = true;
        self.writer.in_transaction = true;
        "BEGIN IMMEDIATE; "
    }

    /// Sends the tail (with `BEGIN IMMEDIATE` if not sent yet, and `COMMIT`
    /// if asked) as one script.
    async fn send_tail(&mut self, commit: bool) -> Result<(), sqlx::Error> {
        let begin = self.begin_once();
        let script = format!("{begin}{}{}", std::mem::take(&mut self.tail), if commit { "COMMIT" } else { "" });
        let args = std::mem::take(&mut self.tail_args);
        sqlx::query_with(&script, args).execute(self.conn()?).await?;
        Ok(())
    }

    /// What the next statement must carry before it: the tail is sent on
    /// its own first (its parameters are numbered from the script's start).
    async fn prefix(&mut self) -> Result<&'static str, sqlx::Error> {
        if !self.tail.is_empty() {
            self.send_tail(false).await?;
        }
        Ok(self.begin_once())
    }

    /// Appends one statement with `params` positional `?` parameters to
    /// the tail (positional ones, because sqlx numbers `?N` of a later
    /// statement wrongly when an earlier one leaves gaps); the caller then
    /// pushes their values.
    async fn push_tail(&mut self, params: usize, sql: &str) -> Result<(), sqlx::Error> {
        if self.tail_args.len() + params > MAX_SCRIPT_PARAMS {
            self.send_tail(false).await?;
        }
        self.tail.push_str(sql);
        self.tail.push_str("; ");
        Ok(())
    }

    fn push_arg<T>(&mut self, value: T) -> Result<(), sqlx::Error>
    where
        T: sqlx::Encode<'static, Sqlite> + sqlx::Type<Sqlite> + 'static,
    {
        self.tail_args.add(value).map_err(sqlx::Error::Encode)
    }
}

/// Parameters in one script, below SQLite's limit of 32766.
const MAX_SCRIPT_PARAMS: usize = 30_000;

/// The error of a `ROLLBACK` with no transaction open: SQLite already
/// rolled back (it does on some failed commits).
fn is_no_transaction(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.message().contains("no transaction is active"))
}

#[async_trait]
impl Write for SqliteWrite {
    type Row = SqliteRow;

    /// The rows `sql` changed, whatever ran before it in the same script.
    async fn execute(&mut self, sql: &str, params: &[Value<'_>]) -> Result<u64, sqlx::Error> {
        let prefix = self.prefix().await?;
        if prefix.is_empty() {
            return Ok(statement(sql, params).execute(self.conn()?).await?.rows_affected());
        }
        let script = format!("{prefix}{sql}");
        // A script's summed count would include `BEGIN`'s, which SQLite
        // reports as the last count of the connection: take the last
        // statement's own. (sqlx deprecates multi-statement queries for
        // portability; only SQLite runs this.)
        #[allow(deprecated)]
        let mut results = statement(&script, params).fetch_many(self.conn()?);
        let mut changed = 0;
        while let Some(step) = results.try_next().await? {
            if let sqlx::Either::Left(done) = step {
                changed = done.rows_affected();
            }
        }
        Ok(changed)
    }

    async fn fetch_optional(&mut self, sql: &str, params: &[Value<'_>]) -> Result<Option<SqliteRow>, sqlx::Error> {
        let prefix = self.prefix().await?;
        if !prefix.is_empty() {
            self.conn()?.execute(prefix).await?;
        }
        statement(sql, params).fetch_optional(self.conn()?).await
    }

    async fn insert_events(&mut self, events: &[Event]) -> Result<(), sqlx::Error> {
        for chunk in events.chunks(EVENTS_PER_INSERT) {
            let rows = vec!["(?, ?, ?, ?, ?)"; chunk.len()].join(", ");
            self.push_tail(
                chunk.len() * 5,
                &format!("INSERT INTO execution_events (execution_id, seq, ts, type, payload) VALUES {rows}"),
            )
            .await?;
            for event in chunk {
                self.push_arg(event.execution_id.to_string())?;
                self.push_arg(event.seq)?;
                self.push_arg(timestamp_text(event.ts))?;
                self.push_arg(event.payload.type_name().to_owned())?;
                self.push_arg(event.payload.payload_json().to_string())?;
            }
        }
        Ok(())
    }

    async fn insert_names(&mut self, list: NameList, template: Uuid, names: &[&str]) -> Result<(), sqlx::Error> {
        let id = template.hyphenated().to_string();
        for name in names {
            match list {
                NameList::Modules => {
                    self.push_tail(
                        2,
                        "INSERT INTO template_modules (template_id, name) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    )
                    .await?;
                    self.push_arg(id.clone())?;
                    self.push_arg((*name).to_owned())?;
                }
                NameList::Libraries => {
                    self.push_tail(
                        3,
                        "INSERT INTO template_libraries (template_id, name, position) \
                         SELECT ?, ?, COALESCE(MAX(position) + 1, 0) FROM template_libraries WHERE template_id = ? \
                         ON CONFLICT DO NOTHING",
                    )
                    .await?;
                    self.push_arg(id.clone())?;
                    self.push_arg((*name).to_owned())?;
                    self.push_arg(id.clone())?;
                }
            }
        }
        Ok(())
    }

    /// Sends the tail with `COMMIT`. On failure: `ROLLBACK`, and if even
    /// that fails the connection is discarded (the next write reopens it).
    async fn commit(mut self) -> Result<(), sqlx::Error> {
        if !self.begun && self.tail.is_empty() {
            return Ok(());
        }
        match self.send_tail(true).await {
            Ok(()) => {
                self.writer.in_transaction = false;
                Ok(())
            }
            Err(err) => {
                self.writer.roll_back().await;
                Err(err)
            }
        }
    }
}

/// Column reads: ids, instants and JSON are text in SQLite.
impl ReadRow for SqliteRow {
    fn nullable_id<T: From<Uuid>>(&self, column: &str) -> Result<Option<T>, DomainError> {
        let text: Option<String> = get(self, column)?;
        text.map(|text| {
            Uuid::parse_str(&text).map(T::from).map_err(|e| corrupt_column(column, format!("{text:?}: {e}")))
        })
        .transpose()
    }

    fn text(&self, column: &str) -> Result<Option<String>, DomainError> {
        get(self, column)
    }

    fn free_text(&self, column: &str) -> Result<Option<String>, DomainError> {
        get(self, column)
    }

    fn json<T: DeserializeOwned>(&self, column: &str) -> Result<Option<T>, DomainError> {
        let text: Option<String> = get(self, column)?;
        text.map(|text| serde_json::from_str(&text).map_err(|e| corrupt_column(column, format!("{text:?}: {e}"))))
            .transpose()
    }

    fn at(&self, column: &str) -> Result<Option<Timestamp>, DomainError> {
        let text: Option<String> = get(self, column)?;
        text.map(|text| parse_instant(&text).map_err(|e| corrupt_column(column, e))).transpose()
    }

    fn int(&self, column: &str) -> Result<i64, DomainError> {
        get(self, column)
    }

    fn flag(&self, column: &str) -> Result<bool, DomainError> {
        get(self, column)
    }
}

fn get<'r, T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>>(
    row: &'r SqliteRow,
    column: &str,
) -> Result<T, DomainError> {
    row.try_get(column).map_err(|e| corrupt_column(column, e))
}

//! [`PostgresStore`]: the store on one PostgreSQL database, with the schema
//! of `migrations/postgres/`. What only PostgreSQL has lives here:
//! connecting (with one sentence for an unreachable or refusing server),
//! migrating, binding and reading native column types, and bulk inserts
//! from arrays. Writes are transactions from the pool; PostgreSQL runs
//! them side by side.

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::migrate::Migrator;
use sqlx::postgres::types::Oid;
use sqlx::postgres::{PgArgumentBuffer, PgArguments, PgConnectOptions, PgPool, PgPoolOptions, PgRow, PgTypeInfo};
use sqlx::query::Query;
use sqlx::{ConnectOptions, Connection, Postgres, Row, Transaction};
use uuid::Uuid;
use vm_domain::event::Event;
use vm_domain::ports::Connections;
use vm_domain::{DomainError, Timestamp};

use crate::dialect::{Dialect, NameList, ReadRow, Value, Write};
use crate::error::{chain, corrupt_column, OpenError};
use crate::location::{PoolSettings, PostgresUrl};
use crate::rows::json_text;
use crate::store::Store;

/// The store on one PostgreSQL database.
pub type PostgresStore = Store<PgDb>;

static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

impl PostgresStore {
    /// Connects to the database at `url` and applies pending migrations.
    ///
    /// A first connection is made on its own, within the pool's
    /// `acquire_timeout`, so that an unreachable server or a refused login
    /// is reported at once as one sentence naming host and port (the pool
    /// would retry a refused connection until its timeout and forget why).
    pub async fn connect(url: &PostgresUrl) -> Result<Self, OpenError> {
        let (driver_url, settings) = url.split()?;
        let options = PgConnectOptions::from_url(&driver_url)
            .map_err(|e| OpenError::InvalidUrl { url: url.redacted(), reason: e.to_string() })?;
        let server = server_of(&options);
        let first = tokio::time::timeout(settings.acquire_timeout, options.connect()).await.map_err(|_| {
            OpenError::Unreachable {
                server: server.clone(),
                reason: format!("no answer within {} s", settings.acquire_timeout.as_secs()),
            }
        })?;
        match first {
            Ok(conn) => {
                let _ = conn.close().await;
            }
            Err(sqlx::Error::Database(db)) => {
                return Err(OpenError::Refused { server, reason: db.message().to_owned() });
            }
            Err(err @ (sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_))) => {
                return Err(OpenError::Unreachable { server, reason: unreachable_reason(&err) });
            }
            Err(err) => return Err(OpenError::Refused { server, reason: chain(&err) }),
        }
        let pool = pool_options(&settings)
            .connect_with(options.clone())
            .await
            .map_err(|err| OpenError::Unreachable { server: server.clone(), reason: chain(&err) })?;
        let database = format!("{server}/{}", options.get_database().unwrap_or(options.get_username()));
        MIGRATOR.run(&pool).await.map_err(|err| OpenError::Migrate { database, reason: chain(&err) })?;
        tracing::debug!(%server, max_connections = settings.max_connections, "PostgreSQL store open");
        Ok(Store::new(PgDb { pool }))
    }

    /// The connection pool, for diagnostics and tests; the services go
    /// through the ports.
    pub fn pool(&self) -> &PgPool {
        &self.db.pool
    }
}

fn pool_options(settings: &PoolSettings) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .min_connections(settings.min_connections)
        .acquire_timeout(settings.acquire_timeout)
        .idle_timeout(Some(settings.idle_timeout))
}

/// `host:port`, or the unix socket directory and port.
fn server_of(options: &PgConnectOptions) -> String {
    match options.get_socket() {
        Some(socket) => format!("{} (port {})", socket.display(), options.get_port()),
        None => format!("{}:{}", options.get_host(), options.get_port()),
    }
}

/// The I/O error's own words ("Connection refused", "failed to lookup
/// address information: …"), without Rust's "(os error N)".
fn unreachable_reason(err: &sqlx::Error) -> String {
    let text = match err {
        sqlx::Error::Io(io) => io.to_string(),
        other => chain(other),
    };
    match text.find(" (os error") {
        Some(cut) => text[..cut].to_lowercase(),
        None => text,
    }
}

/// A PostgreSQL database: its connection pool.
pub struct PgDb {
    pool: PgPool,
}

/// Serialised JSON bound as `json`, so that one statement text serves both
/// backends (no `::json` casts); `jsonb` columns take it by assignment cast.
struct JsonText(String);

impl sqlx::Type<Postgres> for JsonText {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(JSON_OID)
    }
}

/// `json`'s type oid (`pg_type`), fixed since PostgreSQL 9.2.
const JSON_OID: Oid = Oid(114);

impl sqlx::Encode<'_, Postgres> for JsonText {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        buf.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }
}

fn bind<'q>(query: Query<'q, Postgres, PgArguments>, value: &Value<'q>) -> Query<'q, Postgres, PgArguments> {
    match value {
        Value::Id(id) => query.bind(*id),
        Value::Text(text) => query.bind(*text),
        Value::FreeText(text) => query.bind(text.map(|t| JsonText(json_text(t)))),
        Value::Json(json) => query.bind(json.clone().map(JsonText)),
        Value::At(at) => query.bind(*at),
        Value::Int(n) => query.bind(*n),
        Value::Bool(b) => query.bind(*b),
    }
}

fn statement<'q>(sql: &'q str, params: &'q [Value<'q>]) -> Query<'q, Postgres, PgArguments> {
    params.iter().fold(sqlx::query(sql), bind)
}

#[async_trait]
impl Dialect for PgDb {
    type Row = PgRow;
    type Write = PgWrite;

    /// Module names in byte order (`COLLATE "C"`), as SQLite sorts them.
    const SELECT_TEMPLATES: &'static str = "SELECT t.id, t.name, t.engine, t.is_active, t.created_at, t.updated_at, \
           COALESCE((SELECT json_agg(m.name ORDER BY m.name COLLATE \"C\") \
              FROM template_modules m WHERE m.template_id = t.id), '[]'::json) AS modules, \
           COALESCE((SELECT json_agg(l.name ORDER BY l.position) \
              FROM template_libraries l WHERE l.template_id = t.id), '[]'::json) AS libraries \
         FROM templates t";

    /// Writers of one template's lists take turns, as SQLite's one writer does.
    const LOCK_TEMPLATE: Option<&'static str> = Some("SELECT 1 FROM templates WHERE id = $1 FOR UPDATE");

    async fn fetch_all(&self, sql: &str, params: &[Value<'_>]) -> Result<Vec<PgRow>, sqlx::Error> {
        statement(sql, params).fetch_all(&self.pool).await
    }

    async fn fetch_optional(&self, sql: &str, params: &[Value<'_>]) -> Result<Option<PgRow>, sqlx::Error> {
        statement(sql, params).fetch_optional(&self.pool).await
    }

    async fn execute(&self, sql: &str, params: &[Value<'_>]) -> Result<u64, sqlx::Error> {
        Ok(statement(sql, params).execute(&self.pool).await?.rows_affected())
    }

    async fn begin(&self) -> Result<PgWrite, sqlx::Error> {
        Ok(PgWrite(self.pool.begin().await?))
    }

    async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ())
    }

    fn connections(&self) -> Connections {
        let open = u64::from(self.pool.size());
        let idle = self.pool.num_idle() as u64;
        Connections {
            in_use: open.saturating_sub(idle),
            idle,
            max: u64::from(self.pool.options().get_max_connections()),
        }
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

/// A transaction on a pooled connection. sqlx rolls it back when dropped
/// uncommitted, and a connection that fails is not returned to the pool.
pub struct PgWrite(Transaction<'static, Postgres>);

#[async_trait]
impl Write for PgWrite {
    type Row = PgRow;

    async fn execute(&mut self, sql: &str, params: &[Value<'_>]) -> Result<u64, sqlx::Error> {
        Ok(statement(sql, params).execute(&mut *self.0).await?.rows_affected())
    }

    async fn fetch_optional(&mut self, sql: &str, params: &[Value<'_>]) -> Result<Option<PgRow>, sqlx::Error> {
        statement(sql, params).fetch_optional(&mut *self.0).await
    }

    /// One `INSERT … SELECT FROM UNNEST` of all events as five arrays,
    /// however many there are.
    async fn insert_events(&mut self, events: &[Event]) -> Result<(), sqlx::Error> {
        let Some(first) = events.first() else { return Ok(()) };
        let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
        let stamps: Vec<Timestamp> = events.iter().map(|e| e.ts).collect();
        let types: Vec<&str> = events.iter().map(|e| e.payload.type_name()).collect();
        let payloads: Vec<String> = events.iter().map(|e| e.payload.payload_json().to_string()).collect();
        sqlx::query(
            "INSERT INTO execution_events (execution_id, seq, ts, type, payload) \
             SELECT $1, seq, ts, type, payload::json \
             FROM UNNEST($2::bigint[], $3::timestamptz[], $4::text[], $5::text[]) AS e (seq, ts, type, payload)",
        )
        .bind(first.execution_id.as_uuid())
        .bind(&seqs)
        .bind(&stamps)
        .bind(&types)
        .bind(&payloads)
        .execute(&mut *self.0)
        .await?;
        Ok(())
    }

    async fn insert_names(&mut self, list: NameList, template: Uuid, names: &[&str]) -> Result<(), sqlx::Error> {
        let insert = match list {
            NameList::Modules => {
                "INSERT INTO template_modules (template_id, name) SELECT $1, name FROM UNNEST($2::text[]) AS m (name) \
                 ON CONFLICT DO NOTHING"
            }
            NameList::Libraries => {
                "INSERT INTO template_libraries (template_id, name, position) \
                 SELECT $1, name, \
                        COALESCE((SELECT MAX(position) + 1 FROM template_libraries WHERE template_id = $1), 0) \
                        + position - 1 \
                 FROM UNNEST($2::text[]) WITH ORDINALITY AS l (name, position) \
                 ON CONFLICT DO NOTHING"
            }
        };
        sqlx::query(insert).bind(template).bind(names).execute(&mut *self.0).await?;
        Ok(())
    }

    async fn commit(self) -> Result<(), sqlx::Error> {
        self.0.commit().await
    }
}

/// Column reads: native `uuid`, `timestamptz` and `json`/`jsonb`; free text
/// is a JSON string.
impl ReadRow for PgRow {
    fn nullable_id<T: From<Uuid>>(&self, column: &str) -> Result<Option<T>, DomainError> {
        Ok(get::<Option<Uuid>>(self, column)?.map(T::from))
    }

    fn text(&self, column: &str) -> Result<Option<String>, DomainError> {
        get(self, column)
    }

    fn free_text(&self, column: &str) -> Result<Option<String>, DomainError> {
        match get::<Option<serde_json::Value>>(self, column)? {
            None => Ok(None),
            Some(serde_json::Value::String(text)) => Ok(Some(text)),
            Some(other) => Err(corrupt_column(column, format!("{other} is not a JSON string"))),
        }
    }

    fn json<T: DeserializeOwned>(&self, column: &str) -> Result<Option<T>, DomainError> {
        get::<Option<serde_json::Value>>(self, column)?
            .map(|value| {
                let shown = value.to_string();
                serde_json::from_value(value).map_err(|e| corrupt_column(column, format!("JSON {shown}: {e}")))
            })
            .transpose()
    }

    fn at(&self, column: &str) -> Result<Option<Timestamp>, DomainError> {
        get(self, column)
    }

    fn int(&self, column: &str) -> Result<i64, DomainError> {
        get(self, column)
    }

    fn flag(&self, column: &str) -> Result<bool, DomainError> {
        get(self, column)
    }
}

fn get<'r, T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>>(
    row: &'r PgRow,
    column: &str,
) -> Result<T, DomainError> {
    row.try_get(column).map_err(|e| corrupt_column(column, e))
}

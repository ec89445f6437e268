//! Where the store lives, as `--db` gives it: a SQLite file path or a
//! `postgres://` URL with optional pool settings. Neither `Display` nor
//! `Debug` ever shows a password.

use std::convert::Infallible;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::error::OpenError;

/// The store to open.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file, created on first start.
    Sqlite(PathBuf),
    /// A PostgreSQL database.
    Postgres(PostgresUrl),
}

impl Database {
    /// `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        match self {
            Database::Sqlite(_) => "sqlite",
            Database::Postgres(_) => "postgres",
        }
    }
}

/// Anything starting with `postgres://` or `postgresql://` is a PostgreSQL
/// URL (checked when opened, so that a parse error never echoes a password);
/// anything else is a SQLite path.
impl FromStr for Database {
    type Err = Infallible;

    fn from_str(raw: &str) -> Result<Self, Infallible> {
        let lower = raw.get(..13).unwrap_or(raw).to_ascii_lowercase();
        Ok(if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            Database::Postgres(PostgresUrl(raw.to_owned()))
        } else {
            Database::Sqlite(PathBuf::from(raw))
        })
    }
}

impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "{}", path.display()),
            Database::Postgres(url) => fmt::Display::fmt(url, f),
        }
    }
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            Database::Postgres(url) => f.debug_tuple("Postgres").field(url).finish(),
        }
    }
}

/// A `postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?…]` URL as given. Shown
/// (by `Display` and `Debug`) with the password replaced by `***`.
///
/// Besides sqlx's parameters (`sslmode`, `application_name`, …) the query
/// may set the connection pool: see [`PoolSettings`].
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl(String);

impl PostgresUrl {
    pub fn new(raw: impl Into<String>) -> Self {
        Self(raw.into())
    }

    /// The URL with every password replaced by `***`: the one in the
    /// user-info part and a `password=` query parameter.
    pub fn redacted(&self) -> String {
        redact(&self.0)
    }

    /// The URL for the driver, without the pool parameters, and the pool
    /// settings they gave.
    pub(crate) fn split(&self) -> Result<(url::Url, PoolSettings), OpenError> {
        let invalid = |reason: String| OpenError::InvalidUrl { url: self.redacted(), reason };
        let mut url = url::Url::parse(&self.0).map_err(|e| invalid(e.to_string()))?;
        let mut pool = PoolSettings::default();
        let mut kept = Vec::new();
        for (key, value) in url.query_pairs() {
            let seconds = || value.parse::<u64>().map(Duration::from_secs);
            let number = || value.parse::<u32>();
            let bad = |_| invalid(format!("{key}={value} is not a whole number"));
            match &*key {
                "max_connections" => pool.max_connections = number().map_err(bad)?,
                "min_connections" => pool.min_connections = number().map_err(bad)?,
                "acquire_timeout" => pool.acquire_timeout = seconds().map_err(bad)?,
                "idle_timeout" => pool.idle_timeout = seconds().map_err(bad)?,
                _ => kept.push((key.into_owned(), value.into_owned())),
            }
        }
        if pool.max_connections == 0 || pool.min_connections > pool.max_connections {
            return Err(invalid("max_connections must be at least 1 and at least min_connections".into()));
        }
        if kept.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(kept);
        }
        Ok((url, pool))
    }
}

impl fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostgresUrl({:?})", self.redacted())
    }
}

/// The PostgreSQL connection pool, set by query parameters of the URL of
/// the same names (timeouts in whole seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    /// Most open connections (`max_connections`, default 16). Each HTTP
    /// request holds at most one, briefly.
    pub max_connections: u32,
    /// Connections kept open when idle (`min_connections`, default 1).
    pub min_connections: u32,
    /// How long a query waits for a free connection, and how long the
    /// first connection at start may take (`acquire_timeout`, default 2, so
    /// that an unreachable server is a 503 within 2 s).
    pub acquire_timeout: Duration,
    /// An idle connection above `min_connections` is closed after this
    /// (`idle_timeout`, default 600).
    pub idle_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 16,
            min_connections: 1,
            acquire_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(600),
        }
    }
}

/// Replaces the password after `user:` (everything up to the last `@`
/// before the host; a stray `@`, `/` or `?` in an unencoded password only
/// widens what is hidden) and any `password=` parameter by `***`.
fn redact(raw: &str) -> String {
    let Some((scheme, rest)) = raw.split_once("://") else {
        return raw.to_owned();
    };
    let (userinfo, hostpart) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let mut out = format!("{scheme}://");
    if let Some(userinfo) = userinfo {
        match userinfo.split_once(':') {
            Some((user, _password)) => {
                out.push_str(user);
                out.push_str(":***");
            }
            None => out.push_str(userinfo),
        }
        out.push('@');
    }
    match hostpart.split_once('?') {
        Some((before, query)) => {
            out.push_str(before);
            out.push('?');
            let params: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                    _ => pair.to_owned(),
                })
                .collect();
            out.push_str(&params.join("&"));
        }
        None => out.push_str(hostpart),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_urls_and_paths_are_told_apart_by_scheme() {
        let cases = [
            ("postgres://vm@db:5432/vm", "postgres"),
            ("PostgreSQL://vm@db/vm", "postgres"),
            ("vm-system.db", "sqlite"),
            ("/var/lib/vm/postgres://odd.db", "sqlite"),
            ("sqlite.db?mode=rwc", "sqlite"),
        ];
        for (raw, backend) in cases {
            assert_eq!(raw.parse::<Database>().unwrap().backend(), backend, "{raw}");
        }
    }

    #[test]
    fn passwords_never_show_in_display_or_debug() {
        let cases = [
            ("postgres://vm:s3cret@db:5432/vm", "postgres://vm:***@db:5432/vm"),
            ("postgres://vm:p@ss/w?rd@db/vm?sslmode=disable", "postgres://vm:***@db/vm?sslmode=disable"),
            ("postgres://vm@db/vm?password=s3cret&sslmode=disable", "postgres://vm@db/vm?password=***&sslmode=disable"),
            ("postgres://db/vm", "postgres://db/vm"),
        ];
        for (raw, shown) in cases {
            let db: Database = raw.parse().unwrap();
            assert_eq!(db.to_string(), shown);
            let debug = format!("{db:?}");
            assert!(!debug.contains("s3cret") && !debug.contains("p@ss"), "{debug}");
        }
    }

    #[test]
    fn pool_settings_come_from_the_query_and_leave_the_driver_url() {
        let url = PostgresUrl::new("postgres://vm@db/vm?max_connections=4&sslmode=disable&acquire_timeout=3");
        let (driver, pool) = url.split().unwrap();
        assert_eq!(driver.as_str(), "postgres://vm@db/vm?sslmode=disable");
        assert_eq!(pool.max_connections, 4);
        assert_eq!(pool.acquire_timeout, Duration::from_secs(3));
        assert_eq!(pool.idle_timeout, PoolSettings::default().idle_timeout);

        let (driver, pool) = PostgresUrl::new("postgres://vm@db/vm").split().unwrap();
        assert_eq!((driver.as_str(), pool), ("postgres://vm@db/vm", PoolSettings::default()));
    }

    #[test]
    fn bad_pool_settings_are_invalid_urls_without_the_password() {
        for raw in ["postgres://vm:s3cret@db/vm?max_connections=lots", "postgres://vm:s3cret@db/vm?max_connections=0"] {
            let err = PostgresUrl::new(raw).split().unwrap_err();
            let message = err.to_string();
            assert!(message.starts_with("invalid PostgreSQL URL postgres://vm:***@db/vm"), "{message}");
            assert!(!message.contains("s3cret"), "{message}");
        }
    }
}

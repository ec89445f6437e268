//! `require('database')`: SQLite from JavaScript. `configure(path | ':memory:')`
//! opens a database file inside the worktree (or in memory), `query` returns
//! rows as objects, `exec` returns `{ changes, lastInsertRowid }`, `close` closes.
//!
//! A session's SQL reaches no file but its own database: the file's directory
//! is resolved beneath the worktree descriptor and SQLite opens the file
//! through that directory's descriptor (`/proc/self/fd/N/name`, final
//! component `O_NOFOLLOW`), so the journal and WAL land beside it. An
//! authorizer refuses `ATTACH`, `DETACH`, `load_extension` and every pragma
//! outside a short list; `SQLITE_LIMIT_ATTACHED` is 0 (which also stops
//! `VACUUM INTO`), defensive mode is on and schemas are not trusted.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use boa_engine::native_function::NativeFunction;
use boa_engine::object::builtins::JsArray;
use boa_engine::object::ObjectInitializer;
use boa_engine::property::{Attribute, PropertyKey};
use boa_engine::{js_string, Context, JsArgs, JsError, JsNativeError, JsObject, JsResult, JsString, JsValue};
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use rusqlite::config::DbConfig;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, Statement};

use super::{coded, resolve_beneath, string_arg, Host, PathError};

/// Permissions of a database file `configure` creates (before the umask).
const FILE_MODE: u32 = 0o644;

/// Pragmas a session may run, with or without a value: they read the schema
/// or tune this connection, and touch no other file. Anything else (such as
/// `temp_store_directory`, `data_store_directory`, `writable_schema`,
/// `trusted_schema`, `temp_store`, `mmap_size`, `soft_heap_limit`) is refused.
const ALLOWED_PRAGMAS: &[&str] = &[
    "analysis_limit",
    "application_id",
    "auto_vacuum",
    "automatic_index",
    "busy_timeout",
    "cache_size",
    "cache_spill",
    "case_sensitive_like",
    "cell_size_check",
    "collation_list",
    "compile_options",
    "data_version",
    "database_list",
    "defer_foreign_keys",
    "encoding",
    "foreign_key_check",
    "foreign_key_list",
    "foreign_keys",
    "freelist_count",
    "function_list",
    "ignore_check_constraints",
    "incremental_vacuum",
    "index_info",
    "index_list",
    "index_xinfo",
    "integrity_check",
    "journal_mode",
    "journal_size_limit",
    "locking_mode",
    "max_page_count",
    "module_list",
    "optimize",
    "page_count",
    "page_size",
    "pragma_list",
    "query_only",
    "quick_check",
    "recursive_triggers",
    "reverse_unordered_selects",
    "schema_version",
    "secure_delete",
    "synchronous",
    "table_info",
    "table_list",
    "table_xinfo",
    "user_version",
    "wal_autocheckpoint",
    "wal_checkpoint",
];
/// Why `ATTACH` is refused; `VACUUM INTO` attaches its target, so it is refused with the same words.
const ATTACH_REFUSED: &str =
    "ATTACH is not allowed (nor VACUUM INTO, which attaches its target): a session's database stays inside its worktree";
/// Journal modes a session may choose: all keep their files beside the database.
const JOURNAL_MODES: &[&str] = &["delete", "truncate", "persist", "memory", "wal", "off"];

/// The open database.
pub struct Open {
    /// Declared first: dropped (closed) before the directory it was opened through.
    connection: Connection,
    /// Why the authorizer refused the last statement, for the exception.
    refused: Refusal,
    /// The database's directory, beneath the worktree; SQLite reaches the
    /// file, its journal and its WAL through this descriptor. `None` in memory.
    _directory: Option<OwnedFd>,
}

/// The authorizer's last refusal; the authorizer must be `Send`.
type Refusal = Arc<Mutex<Option<String>>>;

pub fn module(context: &mut Context) -> JsObject {
    ObjectInitializer::new(context)
        .function(NativeFunction::from_fn_ptr(configure), js_string!("configure"), 1)
        .function(NativeFunction::from_fn_ptr(query), js_string!("query"), 2)
        .function(NativeFunction::from_fn_ptr(exec), js_string!("exec"), 2)
        .function(NativeFunction::from_fn_ptr(close), js_string!("close"), 0)
        .build()
}

fn sqlite_error(function: &str, err: rusqlite::Error, context: &mut Context) -> JsError {
    coded(format!("database.{function}: {err}"), "ERR_SQLITE", context)
}

/// The exception for a failed statement: the authorizer's reason, as
/// `ERR_ACCESS_DENIED`, when it refused one; otherwise SQLite's error.
fn statement_error(function: &str, open: &Open, err: rusqlite::Error, context: &mut Context) -> JsError {
    let refused = open.refused.lock().map(|mut reason| reason.take()).unwrap_or(None);
    let reason = refused.or_else(|| {
        // `VACUUM INTO` attaches its target internally, which the limit stops.
        err.to_string().contains("too many attached databases").then(|| ATTACH_REFUSED.into())
    });
    match reason {
        Some(reason) => coded(format!("database.{function}: {reason}"), "ERR_ACCESS_DENIED", context),
        None => sqlite_error(function, err, context),
    }
}

fn denied(target: &str, reason: &str, context: &mut Context) -> JsError {
    let message = format!("database.configure: access to '{target}' denied: {reason}");
    coded(message, "ERR_ACCESS_DENIED", context)
}

/// `configure(':memory:')`, `configure('data/app.db')` or
/// `configure({ path })`: opens (creating the file if needed), closing any
/// database opened before. Returns `{ path }`, relative to the worktree.
fn configure(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let target = match args.get_or_undefined(0) {
        value if value.is_string() => value.to_string(context)?.to_std_string_escaped(),
        value => match value.as_object() {
            Some(options) => {
                let path = options.get(js_string!("path"), context)?;
                string_arg(&[path], 0, "database.configure: path", context)?
            }
            None => {
                return Err(JsNativeError::typ()
                    .with_message("database.configure: pass a path inside the worktree or ':memory:'")
                    .into())
            }
        },
    };
    let host = Host::of(context);
    host.database.borrow_mut().take();
    let (connection, directory, shown) = if target == ":memory:" {
        let connection = Connection::open_in_memory_with_flags(open_flags())
            .map_err(|err| sqlite_error("configure", err, context))?;
        (connection, None, target.clone())
    } else {
        match open_file(&host, &target) {
            Ok((connection, directory, relative)) => {
                (connection, Some(directory), host.shown(&host.worktree.borrow().join(relative)))
            }
            Err(Failure::Denied(reason)) => return Err(denied(&target, &reason, context)),
            Err(Failure::Io(err)) => {
                let code = super::io_code(&err);
                return Err(coded(format!("database.configure: cannot open '{target}': {err}"), code, context));
            }
            Err(Failure::Sqlite(err)) => return Err(sqlite_error("configure", err, context)),
        }
    };
    let refused = confine(&connection).map_err(|err| sqlite_error("configure", err, context))?;
    let result = ObjectInitializer::new(context)
        .property(js_string!("path"), JsString::from(shown.as_str()), Attribute::all())
        .build();
    *host.database.borrow_mut() = Some(Open { connection, refused, _directory: directory });
    Ok(result.into())
}

/// Why a database file could not be opened.
enum Failure {
    /// It leads outside the worktree or could: `ERR_ACCESS_DENIED`.
    Denied(String),
    /// An ordinary I/O error: Node's code.
    Io(std::io::Error),
    /// SQLite could not open it: `ERR_SQLITE`.
    Sqlite(rusqlite::Error),
}

impl From<PathError> for Failure {
    fn from(err: PathError) -> Self {
        match err {
            PathError::Denied(reason) => Self::Denied(reason),
            PathError::Io(err) => Self::Io(err),
        }
    }
}

/// The flags of every connection: read-write, created if missing, no URI
/// filenames, one thread.
fn open_flags() -> OpenFlags {
    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX
}

/// Opens the database file `target` inside the worktree: its directory is
/// opened beneath the worktree, the file itself (created if missing) must be
/// a regular file, not a symlink, with one link, and so must a journal, WAL
/// or shared-memory file already beside it. SQLite then opens it through the
/// directory's descriptor, and the name must still be that same file.
/// Returns the connection, the directory and the path relative to the worktree.
fn open_file(host: &Host, target: &str) -> Result<(Connection, OwnedFd, std::path::PathBuf), Failure> {
    let (directory, name, relative) = host.open_parent(target)?;
    let name = Path::new(&name);
    let identity = |flags: OFlag, name: &Path| -> Result<Option<(u64, u64)>, Failure> {
        let mode = Mode::from_bits_truncate(FILE_MODE);
        let file = match resolve_beneath(&directory, name, flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, mode) {
            Ok(fd) => std::fs::File::from(fd),
            Err(PathError::Io(err)) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(PathError::Denied(_)) => {
                return Err(Failure::Denied(format!(
                    "'{}' is a symlink; a database file must be a regular file in the worktree",
                    name.display()
                )))
            }
            Err(err) => return Err(err.into()),
        };
        let meta = file.metadata().map_err(Failure::Io)?;
        if meta.file_type().is_symlink() {
            return Err(Failure::Denied(format!(
                "'{}' is a symlink; a database file must be a regular file in the worktree",
                name.display()
            )));
        }
        if !meta.is_file() {
            return Err(Failure::Denied(format!("'{}' is not a regular file", name.display())));
        }
        if meta.nlink() > 1 {
            return Err(Failure::Denied(format!(
                "'{}' has {} hard links; a hard link can point outside the worktree",
                name.display(),
                meta.nlink()
            )));
        }
        Ok(Some((meta.dev(), meta.ino())))
    };
    let created = OFlag::O_RDONLY | OFlag::O_CREAT | OFlag::O_NONBLOCK | OFlag::O_NOCTTY;
    let before = identity(created, name)?;
    for suffix in ["-journal", "-wal", "-shm"] {
        let mut beside = name.as_os_str().to_os_string();
        beside.push(suffix);
        identity(OFlag::O_PATH, Path::new(&beside))?;
    }
    let through = Path::new("/proc/self/fd").join(directory.as_raw_fd().to_string()).join(name);
    let connection = Connection::open_with_flags(&through, open_flags()).map_err(Failure::Sqlite)?;
    if identity(OFlag::O_PATH, name)? != before {
        return Err(Failure::Denied(format!("'{}' was replaced while it was being opened", name.display())));
    }
    Ok((connection, directory, relative))
}

/// Confines a new connection: the authorizer, no attached databases (which
/// also refuses `VACUUM INTO`), defensive mode, untrusted schemas, temporary
/// tables and indices in memory rather than in a directory outside the
/// worktree. Returns where the authorizer leaves its reasons.
fn confine(connection: &Connection) -> rusqlite::Result<Refusal> {
    connection.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
    connection.set_db_config(DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false)?;
    connection.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0);
    connection.pragma_update(None, "temp_store", "MEMORY")?;
    let refused: Refusal = Arc::new(Mutex::new(None));
    let slot = refused.clone();
    connection.authorizer(Some(move |auth: AuthContext<'_>| match verdict(&auth.action) {
        None => Authorization::Allow,
        Some(reason) => {
            if let Ok(mut last) = slot.lock() {
                *last = Some(reason);
            }
            Authorization::Deny
        }
    }));
    Ok(refused)
}

/// `None` to allow an action, or why it is refused.
fn verdict(action: &AuthAction<'_>) -> Option<String> {
    match *action {
        AuthAction::Attach { .. } => Some(ATTACH_REFUSED.into()),
        AuthAction::Detach { .. } => {
            Some("DETACH is not allowed: a session's database stays inside its worktree".into())
        }
        AuthAction::Function { function_name } if function_name.eq_ignore_ascii_case("load_extension") => {
            Some("load_extension is not allowed: a session cannot load native code into SQLite".into())
        }
        AuthAction::Pragma { pragma_name, pragma_value } => {
            let name = pragma_name.to_ascii_lowercase();
            if !ALLOWED_PRAGMAS.contains(&name.as_str()) {
                return Some(format!(
                    "PRAGMA {name} is not allowed: it can reach files outside the worktree or the engine's \
                     internals (allowed: {})",
                    ALLOWED_PRAGMAS.join(", ")
                ));
            }
            let mode = pragma_value.map(|v| v.trim_matches(|c| c == '\'' || c == '"').to_ascii_lowercase());
            match mode {
                Some(mode) if name == "journal_mode" && !JOURNAL_MODES.contains(&mode.as_str()) => {
                    Some(format!("PRAGMA journal_mode = {mode} is not allowed (allowed: {})", JOURNAL_MODES.join(", ")))
                }
                _ => None,
            }
        }
        AuthAction::Unknown { code, .. } => {
            Some(format!("SQLite action {code} is not allowed: this worker does not know what it does"))
        }
        _ => None,
    }
}

/// Runs `f` on the open database, or throws when none is configured.
fn with_open<T>(
    function: &str,
    context: &mut Context,
    f: impl FnOnce(&Open, &mut Context) -> JsResult<T>,
) -> JsResult<T> {
    let host = Host::of(context);
    let database = host.database.borrow();
    match database.as_ref() {
        Some(open) => {
            if let Ok(mut reason) = open.refused.lock() {
                reason.take();
            }
            f(open, context)
        }
        None => {
            drop(database);
            let message = format!(
                "database.{function}: no database is open; call configure(path) or configure(':memory:') first"
            );
            Err(coded(message, "ERR_NO_DATABASE", context))
        }
    }
}

/// `query(sql, params?)`: the rows of one statement, as objects keyed by
/// column name.
fn query(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let sql = string_arg(args, 0, "database.query: sql", context)?;
    let params = params_of(args.get_or_undefined(1), "query", context)?;
    let rows = with_open("query", context, |open, context| {
        let mut statement =
            open.connection.prepare(&sql).map_err(|err| statement_error("query", open, err, context))?;
        bind(&mut statement, &params).map_err(|err| statement_error("query", open, err, context))?;
        let columns: Vec<String> = statement.column_names().into_iter().map(str::to_owned).collect();
        let mut values: Vec<Vec<Value>> = Vec::new();
        let mut rows = statement.raw_query();
        loop {
            match rows.next() {
                Ok(Some(row)) => {
                    let mut record = Vec::with_capacity(columns.len());
                    for i in 0..columns.len() {
                        record.push(row.get_ref(i).map(Value::from).unwrap_or(Value::Null));
                    }
                    values.push(record);
                }
                Ok(None) => break,
                Err(err) => return Err(statement_error("query", open, err, context)),
            }
        }
        Ok((columns, values))
    })?;
    let (columns, records) = rows;
    let mut objects = Vec::with_capacity(records.len());
    for record in records {
        let object = JsObject::with_object_proto(context.intrinsics());
        for (column, value) in columns.iter().zip(record) {
            let value = to_js(value, context);
            object.create_data_property_or_throw(PropertyKey::from(JsString::from(column.as_str())), value, context)?;
        }
        objects.push(JsValue::from(object));
    }
    Ok(JsArray::from_iter(objects, context).into())
}

/// `exec(sql, params?)`: runs statements; with params, exactly one.
/// Returns `{ changes, lastInsertRowid }`.
fn exec(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let sql = string_arg(args, 0, "database.exec: sql", context)?;
    let params = params_of(args.get_or_undefined(1), "exec", context)?;
    let (changes, rowid) = with_open("exec", context, |open, context| {
        let connection = &open.connection;
        let changes = if params.is_none() {
            let before = connection.total_changes();
            connection.execute_batch(&sql).map_err(|err| statement_error("exec", open, err, context))?;
            connection.total_changes() - before
        } else {
            let mut statement = connection.prepare(&sql).map_err(|err| statement_error("exec", open, err, context))?;
            bind(&mut statement, &params).map_err(|err| statement_error("exec", open, err, context))?;
            statement.raw_execute().map_err(|err| statement_error("exec", open, err, context))? as u64
        };
        Ok((changes, connection.last_insert_rowid()))
    })?;
    let result = ObjectInitializer::new(context)
        .property(js_string!("changes"), changes as f64, Attribute::all())
        .property(js_string!("lastInsertRowid"), rowid as f64, Attribute::all())
        .build();
    Ok(result.into())
}

fn close(_: &JsValue, _: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let closed = Host::of(context).database.borrow_mut().take();
    Ok(closed.is_some().into())
}

/// Parameters: positional (an array) or named (an object; `name` binds
/// `:name`, `@name` or `$name`).
enum Params {
    Positional(Vec<Value>),
    Named(Vec<(String, Value)>),
}

fn params_of(value: &JsValue, function: &str, context: &mut Context) -> JsResult<Option<Params>> {
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    let Some(object) = value.as_object() else {
        return Err(JsNativeError::typ()
            .with_message(format!("database.{function}: params must be an array or an object"))
            .into());
    };
    if object.is_array() {
        let length = object.get(js_string!("length"), context)?.to_length(context)?;
        let mut values = Vec::new();
        for i in 0..length {
            values.push(to_sql(&object.get(i, context)?, function, context)?);
        }
        return Ok(Some(Params::Positional(values)));
    }
    let mut named = Vec::new();
    for key in object.own_property_keys(context)? {
        let value = object.get(key.clone(), context)?;
        named.push((key.to_string(), to_sql(&value, function, context)?));
    }
    Ok(Some(Params::Named(named)))
}

fn bind(statement: &mut Statement<'_>, params: &Option<Params>) -> rusqlite::Result<()> {
    match params {
        None => Ok(()),
        Some(Params::Positional(values)) => {
            for (i, value) in values.iter().enumerate() {
                statement.raw_bind_parameter(i + 1, value)?;
            }
            Ok(())
        }
        Some(Params::Named(values)) => {
            for (name, value) in values {
                let index = [":", "@", "$"]
                    .iter()
                    .find_map(|prefix| statement.parameter_index(&format!("{prefix}{name}")).ok().flatten())
                    .or_else(|| statement.parameter_index(name).ok().flatten());
                match index {
                    Some(index) => statement.raw_bind_parameter(index, value)?,
                    None => return Err(rusqlite::Error::InvalidParameterName(name.clone())),
                }
            }
            Ok(())
        }
    }
}

fn to_sql(value: &JsValue, function: &str, context: &mut Context) -> JsResult<Value> {
    if value.is_null() || value.is_undefined() {
        return Ok(Value::Null);
    }
    if let Some(b) = value.as_boolean() {
        return Ok(Value::Integer(i64::from(b)));
    }
    if let Some(n) = value.as_number() {
        let whole = n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0;
        return Ok(if whole { Value::Integer(n as i64) } else { Value::Real(n) });
    }
    if value.is_string() {
        return Ok(Value::Text(value.to_string(context)?.to_std_string_escaped()));
    }
    if value.is_bigint() {
        let text = value.to_string(context)?.to_std_string_escaped();
        return text.parse::<i64>().map(Value::Integer).map_err(|_| {
            JsNativeError::range()
                .with_message(format!("database.{function}: {text} does not fit SQLite's INTEGER"))
                .into()
        });
    }
    Err(JsNativeError::typ()
        .with_message(format!("database.{function}: parameters must be null, booleans, numbers, bigints or strings"))
        .into())
}

fn to_js(value: Value, context: &mut Context) -> JsValue {
    match value {
        Value::Null => JsValue::null(),
        Value::Integer(i) => JsValue::from(i as f64),
        Value::Real(f) => JsValue::from(f),
        Value::Text(s) => JsString::from(s.as_str()).into(),
        Value::Blob(bytes) => JsArray::from_iter(bytes.into_iter().map(JsValue::from), context).into(),
    }
}

//! `require('database')`: SQLite from JavaScript. `configure(path | ':memory:')`
//! opens a database file inside the worktree (or in memory), `query` returns
//! rows as objects, `exec` returns `{ changes, lastInsertRowid }`, `close` closes.

use boa_engine::native_function::NativeFunction;
use boa_engine::object::builtins::JsArray;
use boa_engine::object::ObjectInitializer;
use boa_engine::property::{Attribute, PropertyKey};
use boa_engine::{js_string, Context, JsArgs, JsNativeError, JsObject, JsResult, JsString, JsValue};
use rusqlite::types::Value;
use rusqlite::{Connection, Statement};

use super::{coded, string_arg, Host};

/// The open database.
pub struct Open {
    connection: Connection,
}

pub fn module(context: &mut Context) -> JsObject {
    ObjectInitializer::new(context)
        .function(NativeFunction::from_fn_ptr(configure), js_string!("configure"), 1)
        .function(NativeFunction::from_fn_ptr(query), js_string!("query"), 2)
        .function(NativeFunction::from_fn_ptr(exec), js_string!("exec"), 2)
        .function(NativeFunction::from_fn_ptr(close), js_string!("close"), 0)
        .build()
}

fn sqlite_error(function: &str, err: rusqlite::Error, context: &mut Context) -> boa_engine::JsError {
    coded(format!("database.{function}: {err}"), "ERR_SQLITE", context)
}

/// `configure(':memory:')`, `configure('data/app.db')` or
/// `configure({ path })`: opens (creating the file if needed), closing any
/// database opened before. Returns `{ path }`.
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
    let opened = if target == ":memory:" {
        Connection::open_in_memory().map(|c| (c, target.clone()))
    } else {
        let path = match host.confine(&target) {
            Ok(path) => path,
            Err(reason) => {
                let message = format!("database.configure: access to '{target}' denied: {reason}");
                return Err(coded(message, "ERR_ACCESS_DENIED", context));
            }
        };
        Connection::open(&path).map(|c| (c, host.shown(&path)))
    };
    let (connection, shown) = opened.map_err(|err| sqlite_error("configure", err, context))?;
    let result = ObjectInitializer::new(context)
        .property(js_string!("path"), JsString::from(shown.as_str()), Attribute::all())
        .build();
    *host.database.borrow_mut() = Some(Open { connection });
    Ok(result.into())
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
        Some(open) => f(open, context),
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
        let mut statement = open.connection.prepare(&sql).map_err(|err| sqlite_error("query", err, context))?;
        bind(&mut statement, &params).map_err(|err| sqlite_error("query", err, context))?;
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
                Err(err) => return Err(sqlite_error("query", err, context)),
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
            connection.execute_batch(&sql).map_err(|err| sqlite_error("exec", err, context))?;
            connection.total_changes() - before
        } else {
            let mut statement = connection.prepare(&sql).map_err(|err| sqlite_error("exec", err, context))?;
            bind(&mut statement, &params).map_err(|err| sqlite_error("exec", err, context))?;
            statement.raw_execute().map_err(|err| sqlite_error("exec", err, context))? as u64
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

//! `require('fs')`: synchronous file functions confined to the session
//! worktree. Paths are relative to it; `..` and symlinks that lead outside
//! are refused with `ERR_ACCESS_DENIED`; I/O errors carry Node's codes.

use std::io::Write;
use std::path::PathBuf;

use boa_engine::native_function::NativeFunction;
use boa_engine::object::builtins::JsArray;
use boa_engine::object::ObjectInitializer;
use boa_engine::property::Attribute;
use boa_engine::{js_string, Context, JsArgs, JsNativeError, JsObject, JsResult, JsString, JsValue};

use super::{coded, io_code, string_arg, Host};

pub fn module(context: &mut Context) -> JsObject {
    ObjectInitializer::new(context)
        .function(NativeFunction::from_fn_ptr(read_file_sync), js_string!("readFileSync"), 2)
        .function(NativeFunction::from_fn_ptr(write_file_sync), js_string!("writeFileSync"), 2)
        .function(NativeFunction::from_fn_ptr(append_file_sync), js_string!("appendFileSync"), 2)
        .function(NativeFunction::from_fn_ptr(exists_sync), js_string!("existsSync"), 1)
        .function(NativeFunction::from_fn_ptr(readdir_sync), js_string!("readdirSync"), 1)
        .function(NativeFunction::from_fn_ptr(mkdir_sync), js_string!("mkdirSync"), 2)
        .function(NativeFunction::from_fn_ptr(stat_sync), js_string!("statSync"), 1)
        .function(NativeFunction::from_fn_ptr(unlink_sync), js_string!("unlinkSync"), 1)
        .build()
}

/// The confined path of argument 0, or the refusal as an exception.
fn path_arg(args: &[JsValue], function: &str, context: &mut Context) -> JsResult<(PathBuf, String)> {
    let raw = string_arg(args, 0, &format!("fs.{function}: the path"), context)?;
    match Host::of(context).confine(&raw) {
        Ok(path) => Ok((path, raw)),
        Err(reason) => {
            Err(coded(format!("fs.{function}: access to '{raw}' denied: {reason}"), "ERR_ACCESS_DENIED", context))
        }
    }
}

fn io_error(err: &std::io::Error, op: &str, raw: &str, context: &mut Context) -> boa_engine::JsError {
    let code = io_code(err);
    let text = match err.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_owned(),
        std::io::ErrorKind::AlreadyExists => "file already exists".to_owned(),
        _ => err.to_string(),
    };
    coded(format!("{code}: {text}, {op} '{raw}'"), code, context)
}

fn data_arg(args: &[JsValue], function: &str, context: &mut Context) -> JsResult<String> {
    match args.get_or_undefined(1) {
        value if value.is_string() => Ok(value.to_string(context)?.to_std_string_escaped()),
        _ => Err(JsNativeError::typ()
            .with_message(format!("fs.{function}: the data must be a string (use JSON.stringify for objects)"))
            .into()),
    }
}

fn read_file_sync(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let (path, raw) = path_arg(args, "readFileSync", context)?;
    match std::fs::read(&path) {
        Ok(bytes) => Ok(JsString::from(String::from_utf8_lossy(&bytes).as_ref()).into()),
        Err(err) => Err(io_error(&err, "open", &raw, context)),
    }
}

fn write_file_sync(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let (path, raw) = path_arg(args, "writeFileSync", context)?;
    let data = data_arg(args, "writeFileSync", context)?;
    std::fs::write(&path, data).map_err(|err| io_error(&err, "open", &raw, context))?;
    Ok(JsValue::undefined())
}

fn append_file_sync(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let (path, raw) = path_arg(args, "appendFileSync", context)?;
    let data = data_arg(args, "appendFileSync", context)?;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut file| file.write_all(data.as_bytes()))
        .map_err(|err| io_error(&err, "open", &raw, context))?;
    Ok(JsValue::undefined())
}

fn exists_sync(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let (path, _) = path_arg(args, "existsSync", context)?;
    Ok(path.exists().into())
}

fn readdir_sync(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let args = if args.is_empty() { vec![js_string!(".").into()] } else { args.to_vec() };
    let (path, raw) = path_arg(&args, "readdirSync", context)?;
    let entries = std::fs::read_dir(&path).map_err(|err| io_error(&err, "scandir", &raw, context))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|err| io_error(&err, "scandir", &raw, context))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    let names = names.into_iter().map(|n| JsValue::from(JsString::from(n.as_str())));
    Ok(JsArray::from_iter(names, context).into())
}

fn mkdir_sync(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let (path, raw) = path_arg(args, "mkdirSync", context)?;
    let recursive = match args.get_or_undefined(1).as_object() {
        Some(options) => options.get(js_string!("recursive"), context)?.to_boolean(),
        None => false,
    };
    let made = if recursive { std::fs::create_dir_all(&path) } else { std::fs::create_dir(&path) };
    made.map_err(|err| io_error(&err, "mkdir", &raw, context))?;
    Ok(JsValue::undefined())
}

fn stat_sync(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let (path, raw) = path_arg(args, "statSync", context)?;
    let meta = std::fs::metadata(&path).map_err(|err| io_error(&err, "stat", &raw, context))?;
    let mtime_ms = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    let (is_file, is_dir) = (meta.is_file(), meta.is_dir());
    let stats = ObjectInitializer::new(context)
        .property(js_string!("size"), meta.len() as f64, Attribute::all())
        .property(js_string!("mtimeMs"), mtime_ms, Attribute::all())
        .function(NativeFunction::from_copy_closure(move |_, _, _| Ok(is_file.into())), js_string!("isFile"), 0)
        .function(NativeFunction::from_copy_closure(move |_, _, _| Ok(is_dir.into())), js_string!("isDirectory"), 0)
        .build();
    Ok(stats.into())
}

fn unlink_sync(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let (path, raw) = path_arg(args, "unlinkSync", context)?;
    std::fs::remove_file(&path).map_err(|err| io_error(&err, "unlink", &raw, context))?;
    Ok(JsValue::undefined())
}

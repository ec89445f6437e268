//! `require('fs')`: synchronous file functions confined to the session
//! worktree. Every path is resolved by the kernel beneath the worktree's
//! directory descriptor (`openat2` with `RESOLVE_BENEATH`) and the descriptor
//! it returns is what is read, written or listed: never a check, then an open
//! by name, so swapping a symlink in between gains nothing. `..`, absolute
//! paths outside, symlinks leading out and files with several hard links are
//! refused with `ERR_ACCESS_DENIED`; other I/O errors carry Node's codes.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use boa_engine::native_function::NativeFunction;
use boa_engine::object::builtins::JsArray;
use boa_engine::object::ObjectInitializer;
use boa_engine::property::Attribute;
use boa_engine::{js_string, Context, JsArgs, JsError, JsNativeError, JsObject, JsResult, JsString, JsValue};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use nix::unistd::UnlinkatFlags;

use super::{coded, io_code, string_arg, Host, PathError};

/// Permissions of a file `fs` creates (before the umask), as Node's default.
const FILE_MODE: u32 = 0o644;
/// Permissions of a directory `fs` creates (before the umask), as Node's default.
const DIRECTORY_MODE: u32 = 0o777;

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

/// The path argument (argument 0) of `fs.<function>`.
fn path_arg(args: &[JsValue], function: &str, context: &mut Context) -> JsResult<String> {
    string_arg(args, 0, &format!("fs.{function}: the path"), context)
}

/// A refusal (`ERR_ACCESS_DENIED`) or an I/O error of `op` on `raw`, as an exception.
fn failure(err: PathError, function: &str, op: &str, raw: &str, context: &mut Context) -> JsError {
    match err {
        PathError::Denied(reason) => {
            coded(format!("fs.{function}: access to '{raw}' denied: {reason}"), "ERR_ACCESS_DENIED", context)
        }
        PathError::Io(err) => io_error(&err, op, raw, context),
    }
}

fn io_error(err: &std::io::Error, op: &str, raw: &str, context: &mut Context) -> JsError {
    let code = io_code(err);
    let text = match err.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_owned(),
        std::io::ErrorKind::AlreadyExists => "file already exists".to_owned(),
        std::io::ErrorKind::IsADirectory => "illegal operation on a directory".to_owned(),
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

/// Opens `raw` beneath the worktree with `flags` and vouches for what was
/// opened, through the descriptor: a regular file with a single link. A file
/// with more links may be an outside file linked in, so it is refused;
/// nothing has been read or changed yet (no `O_TRUNC`). `O_NONBLOCK` keeps a
/// FIFO from stalling the open; it changes nothing for regular files.
fn open_file(host: &Host, raw: &str, flags: OFlag) -> Result<File, PathError> {
    let flags = flags | OFlag::O_NOCTTY | OFlag::O_NONBLOCK;
    let file = File::from(host.open_beneath(raw, flags, Mode::from_bits_truncate(FILE_MODE))?);
    let meta = file.metadata().map_err(PathError::Io)?;
    if meta.is_dir() {
        return Err(PathError::Io(std::io::Error::from_raw_os_error(Errno::EISDIR as i32)));
    }
    if !meta.is_file() {
        let err = std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file");
        return Err(PathError::Io(err));
    }
    if meta.nlink() > 1 {
        return Err(PathError::Denied(format!(
            "it has {} hard links; a hard link can point outside the worktree",
            meta.nlink()
        )));
    }
    Ok(file)
}

fn read_file_sync(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let raw = path_arg(args, "readFileSync", context)?;
    let host = Host::of(context);
    let mut bytes = Vec::new();
    let read = open_file(&host, &raw, OFlag::O_RDONLY)
        .and_then(|mut file| file.read_to_end(&mut bytes).map_err(PathError::Io));
    match read {
        Ok(_) => Ok(JsString::from(String::from_utf8_lossy(&bytes).as_ref()).into()),
        Err(err) => Err(failure(err, "readFileSync", "open", &raw, context)),
    }
}

/// Writes `data` to `raw`, creating it; replaces the contents unless
/// `append`. The file is truncated only after [`open_file`] vouched for it.
fn write(function: &str, args: &[JsValue], append: bool, context: &mut Context) -> JsResult<JsValue> {
    let raw = path_arg(args, function, context)?;
    let data = data_arg(args, function, context)?;
    let host = Host::of(context);
    let flags = OFlag::O_WRONLY | OFlag::O_CREAT | if append { OFlag::O_APPEND } else { OFlag::empty() };
    let written = open_file(&host, &raw, flags).and_then(|mut file| {
        if !append {
            file.set_len(0).map_err(PathError::Io)?;
        }
        file.write_all(data.as_bytes()).map_err(PathError::Io)
    });
    written.map_err(|err| failure(err, function, "open", &raw, context))?;
    Ok(JsValue::undefined())
}

fn write_file_sync(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    write("writeFileSync", args, false, context)
}

fn append_file_sync(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    write("appendFileSync", args, true, context)
}

/// `existsSync(path)`: `false` for what cannot be found; a path outside the
/// worktree is still refused with an exception, so it never answers for one.
fn exists_sync(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let raw = path_arg(args, "existsSync", context)?;
    match Host::of(context).open_beneath(&raw, OFlag::O_PATH, Mode::empty()) {
        Ok(_) => Ok(true.into()),
        Err(PathError::Io(_)) => Ok(false.into()),
        Err(denied) => Err(failure(denied, "existsSync", "access", &raw, context)),
    }
}

fn readdir_sync(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let raw = if args.is_empty() { ".".to_owned() } else { path_arg(args, "readdirSync", context)? };
    let host = Host::of(context);
    let listed = host
        .open_beneath(&raw, OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty())
        .and_then(|directory| list(directory).map_err(PathError::of_errno));
    let mut names = listed.map_err(|err| failure(err, "readdirSync", "scandir", &raw, context))?;
    names.sort();
    let names = names.into_iter().map(|n| JsValue::from(JsString::from(n.as_str())));
    Ok(JsArray::from_iter(names, context).into())
}

/// The entries of an open directory, without `.` and `..`.
fn list(directory: OwnedFd) -> nix::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in nix::dir::Dir::from_fd(directory)?.iter() {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name != "." && name != ".." {
            names.push(name);
        }
    }
    Ok(names)
}

/// `mkdirSync(path, { recursive })`: `mkdirat` on the last name in its
/// parent, opened beneath the worktree; recursively, one component at a
/// time, each parent opened afresh from the worktree.
fn mkdir_sync(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let raw = path_arg(args, "mkdirSync", context)?;
    let recursive = match args.get_or_undefined(1).as_object() {
        Some(options) => options.get(js_string!("recursive"), context)?.to_boolean(),
        None => false,
    };
    let host = Host::of(context);
    let made = if recursive { make_all(&host, &raw) } else { make_one(&host, &raw) };
    made.map_err(|err| failure(err, "mkdirSync", "mkdir", &raw, context))?;
    Ok(JsValue::undefined())
}

fn make_one(host: &Host, raw: &str) -> Result<(), PathError> {
    let relative = host.relative(raw)?;
    if relative.as_os_str().is_empty() {
        return Err(PathError::Io(std::io::Error::from_raw_os_error(Errno::EEXIST as i32)));
    }
    let (parent, name, _) = host.open_parent(raw)?;
    nix::sys::stat::mkdirat(&parent, name.as_os_str(), Mode::from_bits_truncate(DIRECTORY_MODE))
        .map_err(PathError::of_errno)
}

fn make_all(host: &Host, raw: &str) -> Result<(), PathError> {
    let relative = host.relative(raw)?;
    let mut parent = PathBuf::new();
    for name in relative.iter() {
        let directory = host.open_relative(&parent, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty())?;
        match nix::sys::stat::mkdirat(&directory, name, Mode::from_bits_truncate(DIRECTORY_MODE)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(errno) => return Err(PathError::of_errno(errno)),
        }
        parent.push(name);
    }
    // What exists under the last name must be a directory beneath the worktree.
    host.open_relative(&relative, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).map(drop).map_err(
        |err| match err {
            PathError::Io(err) if err.raw_os_error() == Some(Errno::ENOTDIR as i32) => {
                PathError::Io(std::io::Error::from_raw_os_error(Errno::EEXIST as i32))
            }
            other => other,
        },
    )
}

/// `statSync(path)`: follows symlinks (inside the worktree) like Node's, and
/// reads the metadata through the descriptor it opened.
fn stat_sync(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let raw = path_arg(args, "statSync", context)?;
    let opened = Host::of(context).open_beneath(&raw, OFlag::O_PATH, Mode::empty());
    let meta = opened
        .and_then(|fd| File::from(fd).metadata().map_err(PathError::Io))
        .map_err(|err| failure(err, "statSync", "stat", &raw, context))?;
    let mtime_ms = meta.mtime() as f64 * 1000.0 + meta.mtime_nsec() as f64 / 1_000_000.0;
    let (is_file, is_dir) = (meta.is_file(), meta.is_dir());
    let stats = ObjectInitializer::new(context)
        .property(js_string!("size"), meta.len() as f64, Attribute::all())
        .property(js_string!("mtimeMs"), mtime_ms, Attribute::all())
        .function(NativeFunction::from_copy_closure(move |_, _, _| Ok(is_file.into())), js_string!("isFile"), 0)
        .function(NativeFunction::from_copy_closure(move |_, _, _| Ok(is_dir.into())), js_string!("isDirectory"), 0)
        .build();
    Ok(stats.into())
}

/// `unlinkSync(path)`: `unlinkat` on the last name in its parent, opened
/// beneath the worktree; a symlink is removed, not what it points to.
fn unlink_sync(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let raw = path_arg(args, "unlinkSync", context)?;
    let host = Host::of(context);
    let removed = host.open_parent(&raw).and_then(|(parent, name, _)| {
        nix::unistd::unlinkat(&parent, Path::new(&name), UnlinkatFlags::NoRemoveDir).map_err(PathError::of_errno)
    });
    removed.map_err(|err| failure(err, "unlinkSync", "unlink", &raw, context))?;
    Ok(JsValue::undefined())
}

//! `require('exec')`: `exec.run(program, args, options)` runs an allowed
//! program (no shell) in the worktree and returns `{ code, signal, stdout,
//! stderr }`; its output is also recorded as `stdout`/`stderr` events.
//! The program is the file the daemon resolved when the session started,
//! with a fixed environment plus only the variables the policy allows.

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use boa_engine::native_function::NativeFunction;
use boa_engine::object::builtins::JsArray;
use boa_engine::object::ObjectInitializer;
use boa_engine::property::Attribute;
use boa_engine::{js_string, Context, JsArgs, JsNativeError, JsObject, JsResult, JsString, JsValue};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use vm_domain::event::EventPayload;
use vm_domain::sandbox::exec_env_refusal;

use super::{coded, io_code, string_arg, Host};
use crate::worker::{console, limits};

/// Where programs are looked up; workers run with a cleared environment.
pub const PROGRAM_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Variables every program gets besides `PATH` and `HOME` (the worktree):
/// git reads no system or user configuration (a `.gitconfig` planted in the
/// worktree is ignored) and never prompts. Harmless for other programs.
const BASE_ENV: &[(&str, &str)] = &[
    ("LANG", "C.UTF-8"),
    ("GIT_CONFIG_NOSYSTEM", "1"),
    ("GIT_CONFIG_GLOBAL", "/dev/null"),
    ("GIT_TERMINAL_PROMPT", "0"),
];

pub fn module(context: &mut Context) -> JsObject {
    let allowed: Vec<JsValue> =
        Host::of(context).exec_allow.borrow().iter().map(|p| JsString::from(p.name.as_str()).into()).collect();
    let allowed = JsArray::from_iter(allowed, context);
    ObjectInitializer::new(context)
        .function(NativeFunction::from_fn_ptr(run), js_string!("run"), 3)
        .property(js_string!("allowed"), allowed, Attribute::READONLY | Attribute::ENUMERABLE)
        .build()
}

/// What `exec.run` was asked to do.
struct Invocation {
    program: String,
    args: Vec<String>,
    cwd: String,
    env: Vec<(String, String)>,
    timeout: Option<Duration>,
}

fn invocation(args: &[JsValue], context: &mut Context) -> JsResult<Invocation> {
    let program = string_arg(args, 0, "exec.run: the program", context)?;
    let mut list = Vec::new();
    match args.get_or_undefined(1) {
        value if value.is_undefined() || value.is_null() => {}
        value => {
            let array = value
                .as_object()
                .filter(|o| o.is_array())
                .ok_or_else(|| JsNativeError::typ().with_message("exec.run: args must be an array of strings"))?;
            let length = array.get(js_string!("length"), context)?.to_length(context)?;
            for i in 0..length {
                let item = array.get(i, context)?;
                if !item.is_string() && !item.is_number() {
                    return Err(JsNativeError::typ().with_message("exec.run: args must be an array of strings").into());
                }
                list.push(item.to_string(context)?.to_std_string_escaped());
            }
        }
    }
    let mut invocation = Invocation { program, args: list, cwd: ".".into(), env: Vec::new(), timeout: None };
    if let Some(options) = args.get_or_undefined(2).as_object() {
        let cwd = options.get(js_string!("cwd"), context)?;
        if !cwd.is_undefined() {
            invocation.cwd = cwd.to_string(context)?.to_std_string_escaped();
        }
        let timeout = options.get(js_string!("timeout_ms"), context)?;
        if !timeout.is_undefined() {
            let ms = timeout.to_number(context)?;
            if !(ms.is_finite() && ms > 0.0) {
                return Err(JsNativeError::range()
                    .with_message("exec.run: timeout_ms must be a positive number")
                    .into());
            }
            invocation.timeout = Some(Duration::from_millis(ms as u64));
        }
        if let Some(env) = options.get(js_string!("env"), context)?.as_object() {
            for key in env.own_property_keys(context)? {
                let value = env.get(key.clone(), context)?.to_string(context)?.to_std_string_escaped();
                invocation.env.push((key.to_string(), value));
            }
        }
    }
    Ok(invocation)
}

fn run(_: &JsValue, args: &[JsValue], context: &mut Context) -> JsResult<JsValue> {
    let call = invocation(args, context)?;
    let host = Host::of(context);
    let program = host.exec_allow.borrow().iter().find(|p| p.name == call.program).cloned();
    let Some(program) = program else {
        let allowed: Vec<String> = host.exec_allow.borrow().iter().map(|p| p.name.clone()).collect();
        let list = if allowed.is_empty() { "none".to_owned() } else { allowed.join(", ") };
        let message = format!(
            "exec.run: program '{}' is not allowed; allowed programs: {list} (a template allows programs with a \
             `module` capability named `exec` whose config is {{\"allow\": [\"git\", ...]}})",
            call.program
        );
        return Err(coded(message, "ERR_PROGRAM_NOT_ALLOWED", context));
    };
    let Some(path) = program.path else {
        let message = format!(
            "exec.run: program '{}' is allowed but was not found on the daemon's PATH when the session started",
            call.program
        );
        return Err(coded(message, "ENOENT", context));
    };
    let refused = {
        let env_allow = host.exec_env_allow.borrow();
        call.env.iter().find_map(|(name, _)| exec_env_refusal(name, &env_allow))
    };
    if let Some(reason) = refused {
        return Err(coded(format!("exec.run: env: {reason}"), "ERR_ENV_NOT_ALLOWED", context));
    }
    let cwd = match host.confine(&call.cwd) {
        Ok(cwd) => cwd,
        Err(reason) => {
            let message = format!("exec.run: working directory '{}' denied: {reason}", call.cwd);
            return Err(coded(message, "ERR_ACCESS_DENIED", context));
        }
    };
    let now = Instant::now();
    let deadline = match (host.deadline.get(), call.timeout) {
        (Some(job), Some(own)) => Some(job.min(now + own)),
        (job, own) => job.or(own.map(|own| now + own)),
    };
    limits::arm_process_count();
    let confinement = match crate::sandbox::prepare_program() {
        Ok(confinement) => confinement,
        Err(err) => {
            let message = format!("exec.run: cannot confine '{}': {err}", call.program);
            return Err(coded(message, "EPERM", context));
        }
    };
    let scope = confinement.scope();
    let worktree = host.worktree.borrow().clone();
    let mut command = Command::new(&path);
    // SAFETY: the closure only makes system calls (its filter and ruleset
    // were made before the fork).
    unsafe { command.pre_exec(move || crate::sandbox::confine_program(scope)) };
    let spawned = command
        .arg0(&call.program)
        .args(&call.args)
        .current_dir(&cwd)
        .env_clear()
        .env("PATH", PROGRAM_PATH)
        .env("HOME", &worktree)
        .envs(BASE_ENV.iter().copied())
        .envs(call.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    drop(confinement);
    let mut child = match spawned {
        Ok(child) => child,
        Err(err) => {
            let code = io_code(&err);
            return Err(coded(format!("exec.run: cannot run '{}': {err}", call.program), code, context));
        }
    };
    let budget = host.capture.borrow().output_left();
    let collected = collect(&mut child, deadline, budget);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&collected.stdout).into_owned(),
        String::from_utf8_lossy(&collected.stderr).into_owned(),
    );
    for event in [EventPayload::Stdout { text: stdout.clone() }, EventPayload::Stderr { text: stderr.clone() }] {
        if event.output_bytes() == 0 {
            continue;
        }
        let recorded = host.capture.borrow_mut().record(event);
        if let Err(hit) = recorded {
            return Err(console::limit_error(hit));
        }
    }
    if collected.timed_out {
        let waited = deadline.map_or(0, |d| d.saturating_duration_since(now).as_millis());
        let message = format!("exec.run: '{}' timed out after {waited} ms and was killed", call.program);
        return Err(coded(message, "ETIMEDOUT", context));
    }
    let (code, signal) = match collected.status {
        Some(status) => (status.code(), status.signal()),
        None => (None, None),
    };
    let result = ObjectInitializer::new(context)
        .property(js_string!("code"), code.map_or(JsValue::null(), JsValue::from), Attribute::all())
        .property(
            js_string!("signal"),
            signal.map_or(JsValue::null(), |s| JsString::from(signal_name(s).as_str()).into()),
            Attribute::all(),
        )
        .property(js_string!("stdout"), JsString::from(stdout.as_str()), Attribute::all())
        .property(js_string!("stderr"), JsString::from(stderr.as_str()), Attribute::all())
        .build();
    Ok(result.into())
}

/// A program's output and end.
struct Collected {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    status: Option<std::process::ExitStatus>,
    timed_out: bool,
}

/// Reads both pipes until they close, the deadline passes (the program is
/// killed) or the output passes `budget` bytes (the program is killed and
/// the caller's output limit trips on what was read). No threads: `poll`.
fn collect(child: &mut Child, deadline: Option<Instant>, budget: u64) -> Collected {
    let mut stdout = child.stdout.take().map(|pipe| std::fs::File::from(OwnedFd::from(pipe)));
    let mut stderr = child.stderr.take().map(|pipe| std::fs::File::from(OwnedFd::from(pipe)));
    let mut out = Collected { stdout: Vec::new(), stderr: Vec::new(), status: None, timed_out: false };
    let mut chunk = vec![0u8; 64 * 1024];
    while stdout.is_some() || stderr.is_some() {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if left == Some(Duration::ZERO) {
            out.timed_out = true;
            break;
        }
        let timeout = left.map_or(PollTimeout::NONE, |l| {
            PollTimeout::try_from(l.as_millis().clamp(1, i32::MAX as u128) as i32).unwrap_or(PollTimeout::MAX)
        });
        let ready = {
            let mut fds = Vec::new();
            if let Some(pipe) = &stdout {
                fds.push(PollFd::new(pipe.as_fd(), PollFlags::POLLIN));
            }
            if let Some(pipe) = &stderr {
                fds.push(PollFd::new(pipe.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, timeout) {
                Ok(_) => fds.iter().map(|fd| fd.revents().is_some_and(|r| !r.is_empty())).collect::<Vec<_>>(),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => break,
            }
        };
        let mut index = 0;
        for (pipe, sink) in [(&mut stdout, &mut out.stdout), (&mut stderr, &mut out.stderr)] {
            let Some(reader) = pipe.as_mut() else { continue };
            let is_ready = ready.get(index).copied().unwrap_or(false);
            index += 1;
            if !is_ready {
                continue;
            }
            match reader.read(&mut chunk) {
                Ok(0) | Err(_) => *pipe = None,
                Ok(n) => sink.extend_from_slice(&chunk[..n]),
            }
        }
        if (out.stdout.len() + out.stderr.len()) as u64 > budget {
            break;
        }
    }
    let over_budget = (out.stdout.len() + out.stderr.len()) as u64 > budget;
    if out.timed_out || over_budget {
        let _ = child.kill();
        out.status = child.wait().ok();
        return out;
    }
    // The pipes closed; the program is ending. Wait for it within the deadline.
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                out.status = Some(status);
                return out;
            }
            Ok(None) if deadline.is_some_and(|d| Instant::now() >= d) => {
                out.timed_out = true;
                let _ = child.kill();
                out.status = child.wait().ok();
                return out;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
            Err(_) => return out,
        }
    }
}

fn signal_name(signal: i32) -> String {
    nix::sys::signal::Signal::try_from(signal).map_or_else(|_| format!("signal {signal}"), |s| s.as_str().to_owned())
}

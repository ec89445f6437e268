//! `vm-system exec …`: run REPL snippets and files in a session (waiting for
//! the end, or not), cancel them, and read executions and their events
//! (`--follow` streams them live until the execution ends).

use std::collections::BTreeMap;
use std::io::Read;
use uuid::Uuid;

use clap::Subcommand;
use serde_json::Value;
use vm_http::dto::{EventView, ExecutionStatusView, ExecutionView, ExecutionWithEventsView, ReplBody, RunFileBody};

use super::output::{
    block, clip, one_line, or_dash, stderr, stdout, time, time_or_dash, to_yaml, Ctx, Failure, Format, Outcome, Table,
};
use crate::client::{ClientError, Followed, Reply};

#[derive(Debug, Subcommand)]
pub enum ExecCommand {
    /// Evaluate a snippet in the session's global scope ('-' reads it from stdin).
    Repl {
        /// The session's id.
        #[arg(value_name = "SESSION", value_parser = super::uuid)]
        session: Uuid,
        /// JavaScript source, or '-' for stdin.
        input: String,
        /// Print the running execution at once instead of waiting for its end; follow it with
        /// `exec events EXECUTION --follow`, stop it with `exec cancel EXECUTION`.
        #[arg(long)]
        no_wait: bool,
    },
    /// Run a file of the session's worktree.
    RunFile {
        /// The session's id.
        #[arg(value_name = "SESSION", value_parser = super::uuid)]
        session: Uuid,
        /// Path relative to the session's worktree.
        path: String,
        /// A JSON object the script sees as the global __ARGS__.
        #[arg(long, value_name = "JSON", value_parser = super::json_object)]
        args: Option<BTreeMap<String, Value>>,
        /// A variable the script sees in the global __ENV__; repeat for more.
        #[arg(long = "env", value_name = "KEY=VALUE", value_parser = key_value)]
        env: Vec<(String, String)>,
        /// Print the running execution at once instead of waiting for its end; follow it with
        /// `exec events EXECUTION --follow`, stop it with `exec cancel EXECUTION`.
        #[arg(long)]
        no_wait: bool,
    },
    /// List executions, newest first.
    List {
        /// Only executions of this session.
        #[arg(long, value_name = "SESSION", value_parser = super::id)]
        session_id: Option<String>,
        /// At most this many (1 to 1000; default 50).
        #[arg(long, value_name = "N")]
        limit: Option<i64>,
    },
    /// Show one execution.
    Get {
        /// The execution's id.
        #[arg(value_name = "EXECUTION", value_parser = super::id)]
        execution: String,
    },
    /// Show an execution's events in order.
    Events {
        /// The execution's id.
        #[arg(value_name = "EXECUTION", value_parser = super::id)]
        execution: String,
        /// Only events after this sequence number.
        #[arg(long, value_name = "N")]
        after_seq: Option<i64>,
        /// Stream events as they happen until the execution ends (resuming after a dropped
        /// connection without a gap); exit 1 if it did not end ok.
        #[arg(long)]
        follow: bool,
        /// Ignored: --follow used to poll at this interval and now streams.
        #[arg(long, value_name = "MS", hide = true)]
        interval_ms: Option<u64>,
    },
    /// Cancel a running execution; prints it as it ended (`cancelled`).
    ///
    /// With checkpoints on (the template default), the session is rolled back to its state
    /// before the execution and stays ready; files written and programs run are not undone.
    Cancel {
        /// The execution's id.
        #[arg(value_name = "EXECUTION", value_parser = super::id)]
        execution: String,
    },
}

fn key_value(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err("expected KEY=VALUE".into()),
    }
}

pub async fn run(ctx: &Ctx, command: ExecCommand) -> Outcome {
    let client = &ctx.client;
    match command {
        ExecCommand::Repl { session, input, no_wait } => {
            let input = if input == "-" { read_stdin()? } else { input };
            let body = ReplBody { session_id: session, input, wait: None };
            if no_wait {
                return started_run(ctx, client.submit_repl(&body).await?);
            }
            finished_run(ctx, client.repl(&body).await).await
        }
        ExecCommand::RunFile { session, path, args, env, no_wait } => {
            let env = (!env.is_empty()).then(|| env.into_iter().collect());
            let body = RunFileBody { session_id: session, path, args, env, wait: None };
            if no_wait {
                return started_run(ctx, client.submit_run_file(&body).await?);
            }
            finished_run(ctx, client.run_file(&body).await).await
        }
        ExecCommand::List { session_id, limit } => {
            let reply = client.executions(session_id.as_deref(), limit).await?;
            ctx.show(
                &reply.raw,
                || executions_table(&reply.value),
                || reply.value.iter().map(|e| e.id.to_string()).collect(),
            )
        }
        ExecCommand::Get { execution } => {
            let reply = client.execution(&execution).await?;
            ctx.show(&reply.raw, || execution_text(&reply.value), || vec![reply.value.id.to_string()])
        }
        ExecCommand::Events { execution, after_seq, follow: false, .. } => {
            let reply = client.events(&execution, after_seq).await?;
            ctx.show(
                &reply.raw,
                || {
                    let mut text = events_header();
                    reply.value.iter().for_each(|e| text.push_str(&event_line(e)));
                    text
                },
                || reply.value.iter().map(|e| e.seq.to_string()).collect(),
            )
        }
        ExecCommand::Events { execution, after_seq, follow: true, .. } => follow(ctx, &execution, after_seq).await,
        ExecCommand::Cancel { execution } => {
            let reply = client.cancel_execution(&execution).await?;
            ctx.show(&reply.raw, || execution_text(&reply.value), || vec![reply.value.id.to_string()])
        }
    }
}

/// Prints an execution submitted with `--no-wait`, still `running`: its
/// block (text), its id (`-q`) or the API object; in text, how to follow it.
fn started_run(ctx: &Ctx, reply: Reply<ExecutionView>) -> Outcome {
    let id = reply.value.id.to_string();
    ctx.show(&reply.raw, || execution_text(&reply.value), || vec![id.clone()])?;
    if ctx.format == Format::Text && !ctx.quiet {
        stderr(&format!("follow it: vm-system exec events {id} --follow\nstop it:   vm-system exec cancel {id}\n"));
    }
    Ok(())
}

fn read_stdin() -> Result<String, Failure> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|err| Failure::Usage(format!("cannot read the snippet from stdin: {err}")))?;
    Ok(input)
}

/// Prints a REPL or file run. Text: console lines and the value on stdout,
/// exceptions and system messages on stderr, like a REPL. When a limit
/// stopped it (an API error naming the execution), the events up to the limit
/// are printed before the error.
async fn finished_run(ctx: &Ctx, result: Result<Reply<ExecutionWithEventsView>, ClientError>) -> Outcome {
    let reply = match result {
        Ok(reply) => reply,
        Err(err) => {
            // A limit error names its stored execution; a store outage names one that is not stored yet.
            if let ClientError::Api { details, message, code, .. } = &err {
                let stored = !matches!(code.as_str(), "STORE_UNAVAILABLE" | "STORAGE_FULL");
                let execution = details.get("execution_id").and_then(Value::as_str).filter(|_| stored);
                if let (Some(id), Format::Text, false) = (execution, ctx.format, ctx.quiet) {
                    if let Ok(events) = ctx.client.events(id, None).await {
                        // The final system event names the limit, as the error line below does.
                        let says_the_error = |e: &EventView| {
                            e.kind == "system" && e.payload.get("message").and_then(Value::as_str) == Some(message)
                        };
                        events.value.iter().filter(|e| !says_the_error(e)).for_each(|e| {
                            print_run_event(e);
                        });
                    }
                }
            }
            return Err(err.into());
        }
    };
    let done = &reply.value;
    let ok = done.execution.status == ExecutionStatusView::Ok;
    if ctx.quiet || ctx.format != Format::Text {
        ctx.show(&reply.raw, String::new, || vec![done.execution.id.to_string()])?;
    } else {
        let mut threw = false;
        for event in &done.events {
            threw |= print_run_event(event);
        }
        if !ok && !threw {
            stderr(&format!("{}\n", failure_line(&done.execution)));
        }
    }
    if ok {
        Ok(())
    } else {
        Err(Failure::NotOk)
    }
}

/// One event of a run, printed the way a REPL would. Returns whether it was
/// an exception.
pub(super) fn print_run_event(event: &EventView) -> bool {
    let text = |key: &str| event.payload.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
    let line = |s: String| if s.ends_with('\n') { s } else { format!("{s}\n") };
    match event.kind.as_str() {
        "input_echo" => {}
        "console" => match text("level").as_str() {
            "warn" | "error" => stderr(&line(text("text"))),
            _ => stdout(&line(text("text"))),
        },
        "value" => stdout(&line(text("preview"))),
        "exception" => {
            let stack = text("stack");
            let shown = if stack.is_empty() { text("message") } else { stack };
            stderr(&line(format!("Uncaught {shown}")));
            return true;
        }
        "system" => stderr(&line(format!("vm-system: {}", text("message")))),
        "stdout" => stdout(&text("text")),
        "stderr" => stderr(&text("text")),
        "fetch" => match fetch_summary(&event.payload) {
            Some(Fetched { text, refused: false }) => stdout(&line(format!("fetch {text}"))),
            Some(Fetched { text, refused: true }) => stderr(&line(format!("fetch {text}"))),
            None => stderr(&line(format!("fetch: {}", event.payload))),
        },
        other => stderr(&line(format!("{other}: {}", event.payload))),
    }
    false
}

/// A `fetch` event in words, as the web UI shows it.
struct Fetched {
    /// `GET url[ → final_url] 200 · 5 B · 3 ms`, or
    /// `GET url refused: CODE message` when no response came.
    text: String,
    /// No response came (`status` null): refused, failed, too large …
    refused: bool,
}

/// `None` when the payload lacks its `method` or `url`.
fn fetch_summary(payload: &Value) -> Option<Fetched> {
    let text = |key: &str| payload.get(key).and_then(Value::as_str);
    let number = |key: &str| payload.get(key).and_then(Value::as_u64);
    let (method, url) = (text("method")?, text("url")?);
    let mut shown = format!("{method} {url}");
    if let Some(final_url) = text("final_url") {
        shown.push_str(&format!(" → {final_url}"));
    }
    let refused = match number("status") {
        Some(status) => {
            let (bytes, ms) = (number("bytes").unwrap_or(0), number("ms").unwrap_or(0));
            shown.push_str(&format!(" {status} · {} · {ms} ms", size(bytes)));
            false
        }
        None => {
            shown.push_str(&format!(" refused: {}", text("code").unwrap_or("ERROR")));
            if let Some(error) = text("error") {
                shown.push_str(&format!(" {error}"));
            }
            true
        }
    };
    Some(Fetched { text: shown, refused })
}

/// `5 B`, `1.5 KiB`, `2.0 MiB`.
fn size(bytes: u64) -> String {
    const KIB: u64 = 1024;
    match bytes {
        b if b < KIB => format!("{b} B"),
        b if b < KIB * KIB => format!("{:.1} KiB", b as f64 / KIB as f64),
        b => format!("{:.1} MiB", b as f64 / (KIB * KIB) as f64),
    }
}

fn status_name(status: ExecutionStatusView) -> &'static str {
    match status {
        ExecutionStatusView::Running => "running",
        ExecutionStatusView::Ok => "ok",
        ExecutionStatusView::Error => "error",
        ExecutionStatusView::Timeout => "timeout",
        ExecutionStatusView::Cancelled => "cancelled",
    }
}

fn kind_name(execution: &ExecutionView) -> &'static str {
    match execution.kind {
        vm_http::dto::ExecutionKindView::Repl => "repl",
        vm_http::dto::ExecutionKindView::RunFile => "run_file",
        vm_http::dto::ExecutionKindView::Startup => "startup",
    }
}

/// `CODE: message` of an execution that did not end ok.
pub(super) fn failure_line(execution: &ExecutionView) -> String {
    let field = |key: &str| {
        execution.error.as_ref().map(|e| match key {
            "code" => e.code.as_str(),
            _ => e.message.as_str(),
        })
    };
    match (field("code"), field("message")) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        _ => format!("execution {} ended {}", execution.id, status_name(execution.status)),
    }
}

/// `exec events --follow`: prints events as the daemon streams them until
/// the execution has ended (at once when it already has). JSON prints one
/// event per line (JSON Lines), YAML one document per event; the exit code
/// is that of `exec repl`: 0 when it ended ok, 1 when not.
async fn follow(ctx: &Ctx, execution: &str, after_seq: Option<i64>) -> Outcome {
    if !ctx.quiet && ctx.format == Format::Text {
        stdout(&events_header());
    }
    let mut stream = ctx.client.follow(execution, after_seq);
    while let Some(item) = stream.next().await? {
        match item {
            Followed::Event(event) => match (ctx.quiet, ctx.format) {
                (true, _) => stdout(&format!("{}\n", event.value.seq)),
                (false, Format::Text) => stdout(&event_line(&event.value)),
                (false, Format::Json) => stdout(&format!("{}\n", serde_json::to_string(&event.raw).expect("JSON"))),
                (false, Format::Yaml) => stdout(&format!("---\n{}", to_yaml(&event.raw))),
            },
            Followed::End(end) => return ended(ctx, &end.value),
        }
    }
    Err(Failure::Other(anyhow::anyhow!("the event stream of execution {execution} ended without its end")))
}

/// The exit of a command that saw `execution` end: `Ok` when it ended ok;
/// otherwise (in text) its `CODE: message` on stderr, and exit code 1.
fn ended(ctx: &Ctx, execution: &ExecutionView) -> Outcome {
    if execution.status == ExecutionStatusView::Ok {
        return Ok(());
    }
    if ctx.format == Format::Text && !ctx.quiet {
        stderr(&format!("{}\n", failure_line(execution)));
    }
    Err(Failure::NotOk)
}

// ---------------------------------------------------------------- text

fn events_header() -> String {
    "SEQ   TYPE        DETAIL\n".into()
}

/// One event as a fixed-width line, so followed events stay aligned.
fn event_line(event: &EventView) -> String {
    let text = |key: &str| event.payload.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
    let detail = match event.kind.as_str() {
        "console" | "system" => {
            format!("{}: {}", text("level"), text(if event.kind == "console" { "text" } else { "message" }))
        }
        "value" => text("preview"),
        "exception" => text("message"),
        "input_echo" | "stdout" | "stderr" => text("text"),
        "fetch" => fetch_summary(&event.payload).map(|f| f.text).unwrap_or_else(|| event.payload.to_string()),
        _ => event.payload.to_string(),
    };
    let line = format!("{:<4}  {:<10}  {}", event.seq, event.kind, one_line(&detail));
    format!("{}\n", line.trim_end())
}

fn source(execution: &ExecutionView) -> String {
    let raw = execution.path.clone().or_else(|| execution.input.clone()).unwrap_or_default();
    clip(&one_line(raw.trim()), 48)
}

fn executions_table(executions: &[ExecutionView]) -> String {
    let mut table = Table::new(&["ID", "KIND", "STATUS", "STARTED", "DURATION", "SOURCE"]);
    for e in executions {
        table.row(vec![
            e.id.to_string(),
            kind_name(e).into(),
            status_name(e.status).into(),
            time(&e.started_at),
            format!("{}ms", e.metrics.duration_ms),
            source(e),
        ]);
    }
    table.render()
}

fn execution_text(e: &ExecutionView) -> String {
    let preview = e.result.as_ref().map(|r| r.preview.clone());
    let error = e.error.as_ref().map(|_| failure_line(e));
    let mut pairs = vec![
        ("id", e.id.to_string()),
        ("session", e.session_id.to_string()),
        ("kind", kind_name(e).into()),
        ("status", status_name(e.status).into()),
        ("input", or_dash(&e.input)),
        ("path", or_dash(&e.path)),
        ("args", if e.args.is_empty() { "-".into() } else { compact(&e.args) }),
        ("env", if e.env.is_empty() { "-".into() } else { compact(&e.env) }),
        ("started", time(&e.started_at)),
        ("ended", time_or_dash(&e.ended_at)),
        ("duration", format!("{}ms", e.metrics.duration_ms)),
        ("events", e.metrics.event_count.to_string()),
        ("output", format!("{} bytes", e.metrics.output_bytes)),
        ("result", or_dash(&preview)),
        ("error", or_dash(&error)),
    ];
    if let Some(state) = state_after(e) {
        pairs.push(("rolled back", state.into()));
    }
    block(&pairs)
}

/// Whether a stopped execution rolled its session back, in words, from its
/// error's details (`rolled_back`, `runtime_lost`); `None` when they say
/// nothing (an exception, an execution still running).
pub(super) fn state_after(execution: &ExecutionView) -> Option<&'static str> {
    let details = &execution.error.as_ref()?.details;
    let flag = |key: &str| details.get(key).and_then(Value::as_bool);
    match (flag("rolled_back"), flag("runtime_lost")) {
        (Some(true), _) => Some("yes, the session is back to its state before this execution"),
        (_, Some(true)) => Some("no, the runtime was stopped and the session is crashed"),
        (Some(false), _) => Some("no, the session keeps what the execution did"),
        _ => None,
    }
}

/// Compact JSON of the maps shown in `exec get`.
fn compact(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).expect("maps of JSON values always serialise")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: i64, kind: &str, payload: Value) -> EventView {
        EventView { execution_id: uuid::Uuid::nil(), seq, ts: chrono::Utc::now(), kind: kind.into(), payload }
    }

    #[test]
    fn event_lines_name_the_type_and_keep_multiline_text_on_one_line() {
        let cases = [
            ("echo", event(1, "input_echo", serde_json::json!({"text": "1 +\n1"})), "1     input_echo  1 +\\n1\n"),
            (
                "console",
                event(2, "console", serde_json::json!({"level": "log", "text": "hi"})),
                "2     console     log: hi\n",
            ),
            (
                "value",
                event(3, "value", serde_json::json!({"type": "number", "preview": "2", "json": 2})),
                "3     value       2\n",
            ),
            (
                "system",
                event(4, "system", serde_json::json!({"level": "warn", "message": "stopped"})),
                "4     system      warn: stopped\n",
            ),
            (
                "fetch",
                event(5, "fetch", fetch_payload(Some(200), None)),
                "5     fetch       GET http://127.0.0.1:8080/hello 200 · 5 B · 3 ms\n",
            ),
        ];
        for (label, event, expected) in cases {
            assert_eq!(event_line(&event), expected, "{label}");
        }
    }

    fn fetch_payload(status: Option<u16>, code: Option<&str>) -> Value {
        serde_json::json!({
            "method": "GET",
            "url": "http://127.0.0.1:8080/hello",
            "final_url": null,
            "status": status,
            "bytes": if status.is_some() { 5 } else { 0 },
            "ms": 3,
            "code": code,
            "error": code.map(|_| "example.invalid:80 is not in the allow list"),
        })
    }

    #[test]
    fn fetch_events_read_as_the_ui_shows_them() {
        let ok = fetch_summary(&fetch_payload(Some(200), None)).expect("a fetch");
        assert_eq!((ok.text.as_str(), ok.refused), ("GET http://127.0.0.1:8080/hello 200 · 5 B · 3 ms", false));
        let refused = fetch_summary(&fetch_payload(None, Some("ERR_HOST_NOT_ALLOWED"))).expect("a fetch");
        assert_eq!(
            (refused.text.as_str(), refused.refused),
            (
                "GET http://127.0.0.1:8080/hello refused: ERR_HOST_NOT_ALLOWED example.invalid:80 is not in the \
                 allow list",
                true
            )
        );
        let mut redirected = fetch_payload(Some(200), None);
        redirected["final_url"] = "http://127.0.0.1:8080/there".into();
        redirected["bytes"] = 1536.into();
        assert_eq!(
            fetch_summary(&redirected).expect("a fetch").text,
            "GET http://127.0.0.1:8080/hello → http://127.0.0.1:8080/there 200 · 1.5 KiB · 3 ms"
        );
        assert!(fetch_summary(&serde_json::json!({ "url": "http://x/" })).is_none(), "no method");
        assert_eq!(
            (size(1023), size(1024), size(3 * 1024 * 1024)),
            ("1023 B".into(), "1.0 KiB".into(), "3.0 MiB".into())
        );
    }

    #[test]
    fn env_flags_must_be_key_equals_value() {
        assert_eq!(key_value("A=1=2"), Ok(("A".into(), "1=2".into())));
        assert!(key_value("A").is_err());
        assert!(key_value("=1").is_err());
    }
}

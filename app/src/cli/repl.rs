//! `vm-system repl SESSION`: an interactive REPL on a session. Each entry is
//! submitted without waiting and its events print as they stream in; Ctrl+C
//! cancels a running entry and brings the prompt back. Line editing, history
//! and multi-line entries come from rustyline; `input` says when an entry is
//! complete.

use std::path::{Path, PathBuf};
use std::time::Duration;
use uuid::Uuid;

use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use rustyline::{Config, Editor};
use serde_json::Value;
use tokio::signal::unix::{signal, Signal, SignalKind};
use vm_http::dto::{EventView, ExecutionStatusView, ExecutionView, ReplBody, SessionStatusView, SessionView};

use super::exec::{failure_line, print_run_event, state_after};
use super::output::{stderr, stdout, Ctx, Failure, Format, Outcome};
use crate::client::{ClientError, Followed};

mod input;

const PROMPT: &str = "> ";

/// How long the end of a cancelled entry is awaited on its stream before
/// the execution the cancel answered is taken as its end.
const CANCEL_GRACE: Duration = Duration::from_secs(3);

/// Entries kept in the history file.
const HISTORY_SIZE: usize = 1000;

/// `.help`.
const HELP: &str = "\
Type JavaScript and press Enter: it runs in the session's global scope, and its console
output and value print as they come. An entry with an open bracket, template literal or
comment goes on over more lines.

  .help      this list
  .session   the session this REPL runs in
  .exit      leave (or Ctrl+D at an empty prompt)

Keys: Ctrl+C while an entry runs cancels it (the session rolls back to its state before
the entry when its template keeps checkpoints); Ctrl+C at the prompt clears the line;
Up/Down and Ctrl+R search the history.
";

#[derive(Debug, clap::Args)]
pub struct ReplArgs {
    /// The session's id.
    #[arg(value_name = "SESSION", value_parser = super::uuid)]
    session: Uuid,
    /// Where entries are kept across runs ('' keeps none)
    /// [default: $XDG_STATE_HOME/vm-system/repl_history, else ~/.local/state/vm-system/repl_history].
    #[arg(long, value_name = "FILE", env = "VM_SYSTEM_REPL_HISTORY")]
    history_file: Option<PathBuf>,
}

/// What the loop does after a REPL command.
enum Flow {
    Continue,
    Exit,
}

pub async fn run(ctx: &Ctx, args: ReplArgs) -> Outcome {
    if ctx.quiet || ctx.format != Format::Text {
        return Err(Failure::Usage("repl is interactive and prints text: -o and -q do not apply to it".into()));
    }
    let session = ready_session(ctx, &args.session.to_string()).await?;
    let history = HistoryFile::open(args.history_file.map_or_else(default_history_file, non_empty));
    let config = Config::builder()
        .auto_add_history(false)
        .history_ignore_space(true)
        .history_ignore_dups(true)
        .and_then(|b| b.max_history_size(HISTORY_SIZE))
        .map_err(|err| Failure::Other(anyhow::anyhow!("cannot configure the line editor: {err}")))?
        .build();
    let mut editor: Editor<input::JsHelper, DefaultHistory> = Editor::with_config(config)
        .map_err(|err| Failure::Other(anyhow::anyhow!("cannot open the terminal: {err}")))?;
    editor.set_helper(Some(input::JsHelper));
    history.load(&mut editor);
    let mut interrupts =
        signal(SignalKind::interrupt()).map_err(|err| Failure::Other(anyhow::anyhow!("cannot catch Ctrl+C: {err}")))?;
    stdout(&format!(
        "vm-system repl: session {} (workspace {}). .help for help, .exit or Ctrl+D to leave.\n",
        session.id, session.workspace_id
    ));
    let mut hinted = false;
    loop {
        let read = tokio::task::block_in_place(|| editor.readline(PROMPT));
        match read {
            Ok(line) if line.trim().is_empty() => {}
            Ok(line) => {
                history.add(&mut editor, &line);
                if input::is_command(&line) {
                    match command(ctx, &session.id, line.trim()).await? {
                        Flow::Continue => continue,
                        Flow::Exit => return Ok(()),
                    }
                }
                evaluate(ctx, &session.id, &line, &mut interrupts).await?;
            }
            Err(ReadlineError::Interrupted) => {
                if !hinted {
                    stderr("(the line is cleared; .exit or Ctrl+D leaves)\n");
                    hinted = true;
                }
            }
            Err(ReadlineError::Eof) => return Ok(()),
            Err(err) => return Err(Failure::Other(anyhow::anyhow!("cannot read the terminal: {err}"))),
        }
    }
}

/// The session, when it can run code; otherwise why not, in words.
async fn ready_session(ctx: &Ctx, id: &str) -> Result<SessionView, Failure> {
    let session = ctx.client.session(id).await?.value;
    let why = match session.status {
        SessionStatusView::Ready => return Ok(session),
        SessionStatusView::Starting => "is still starting; try again in a moment".to_owned(),
        SessionStatusView::Closed => {
            format!("is closed; start a new one with `vm-system session create --template-id {}`", session.template_id)
        }
        SessionStatusView::Crashed => format!(
            "has crashed ({}); start a new one with `vm-system session create --template-id {}`",
            session.last_error.as_deref().unwrap_or("no reason recorded"),
            session.template_id
        ),
    };
    Err(Failure::Other(anyhow::anyhow!("session {id} {why}")))
}

/// A REPL command: `.help`, `.session`, `.exit`.
async fn command(ctx: &Ctx, session: &Uuid, line: &str) -> Result<Flow, Failure> {
    match line.split_whitespace().next().unwrap_or_default() {
        ".exit" => return Ok(Flow::Exit),
        ".help" => stdout(HELP),
        ".session" => match ctx.client.session(&session.to_string()).await {
            Ok(reply) => stdout(&super::session::session_text(&reply.value)),
            Err(err) => report(&err),
        },
        other => stderr(&format!("unknown command {other}; .help lists them\n")),
    }
    Ok(Flow::Continue)
}

/// Runs one entry: submits it without waiting, prints its events as they
/// stream in, and cancels it on Ctrl+C. Fails (ending the REPL) only when
/// the session can no longer run code.
async fn evaluate(ctx: &Ctx, session: &Uuid, source: &str, interrupts: &mut Signal) -> Outcome {
    // A Ctrl+C pressed before this entry is not meant for it.
    while take_pending(interrupts) {}
    let body = ReplBody { session_id: *session, input: source.to_owned(), wait: None };
    let started = match ctx.client.submit_repl(&body).await {
        Ok(reply) => reply.value,
        Err(err) => return refused(err),
    };
    let mut stream = ctx.client.follow(&started.id.to_string(), None);
    let mut shown = Shown::default();
    let mut cancelled: Option<ExecutionView> = None;
    let mut give_up: Option<tokio::time::Instant> = None;
    let end = loop {
        let grace = tokio::time::sleep_until(give_up.unwrap_or_else(|| tokio::time::Instant::now() + CANCEL_GRACE));
        tokio::select! {
            item = stream.next() => match item {
                Ok(Some(Followed::Event(event))) => shown.event(&event.value),
                Ok(Some(Followed::End(end))) => break Some(end.value),
                Ok(None) => break cancelled,
                Err(err) => {
                    report(&err);
                    break cancelled;
                }
            },
            Some(()) = interrupts.recv(), if give_up.is_none() => {
                stderr("\n"); // past the terminal's "^C"
                match ctx.client.cancel_execution(&started.id.to_string()).await {
                    Ok(reply) => cancelled = Some(reply.value),
                    // It ended on its own meanwhile: its end is on the stream.
                    Err(ClientError::Api { code, .. }) if code == "EXECUTION_NOT_RUNNING" => {}
                    Err(err) => report(&err),
                }
                give_up = Some(tokio::time::Instant::now() + CANCEL_GRACE);
            }
            () = grace, if give_up.is_some() => break cancelled,
        }
    };
    match end {
        Some(end) => shown.end(&end),
        None => Ok(()),
    }
}

/// Whether a Ctrl+C is already waiting (consuming it).
fn take_pending(interrupts: &mut Signal) -> bool {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    matches!(interrupts.poll_recv(&mut cx), std::task::Poll::Ready(Some(())))
}

/// An entry the daemon did not start: the REPL goes on, unless the session
/// is gone.
fn refused(err: ClientError) -> Outcome {
    if let ClientError::Api { code, .. } = &err {
        if matches!(code.as_str(), "SESSION_NOT_READY" | "SESSION_NOT_FOUND") {
            return Err(err.into());
        }
    }
    report(&err);
    Ok(())
}

fn report(err: &ClientError) {
    match err {
        ClientError::Api { .. } => stderr(&format!("{err}\n")),
        _ => stderr(&format!("error: {err}\n")),
    }
}

/// What an entry's events printed, to say its end without repeating them.
#[derive(Default)]
struct Shown {
    threw: bool,
    system: Vec<String>,
}

impl Shown {
    fn event(&mut self, event: &EventView) {
        if event.kind == "system" {
            let message = event.payload.get("message").and_then(Value::as_str).unwrap_or_default();
            self.system.push(message.to_owned());
        }
        self.threw |= print_run_event(event);
    }

    /// Says how an entry that did not end ok ended, and whether the session
    /// was rolled back; fails when the session lost its runtime.
    fn end(&self, end: &ExecutionView) -> Outcome {
        if end.status == ExecutionStatusView::Ok {
            return Ok(());
        }
        let error = |key: &str| {
            end.error.as_ref().map(|e| match key {
                "code" => e.code.as_str(),
                _ => e.message.as_str(),
            })
        };
        let message = error("message").unwrap_or_default();
        let said = self.threw || (!message.is_empty() && self.system.iter().any(|m| m == message));
        if !said {
            stderr(&format!("{}\n", failure_line(end)));
        }
        let details = end.error.as_ref().map(|e| &e.details);
        let flag = |key: &str| details.and_then(|d| d.get(key)).and_then(Value::as_bool) == Some(true);
        if flag("runtime_lost") {
            return Err(Failure::Other(anyhow::anyhow!(
                "session {} lost its runtime and is crashed; start a new one with `vm-system session create`",
                end.session_id
            )));
        }
        if flag("rolled_back") && !message.contains("rolled back") {
            if let Some(state) = state_after(end) {
                stderr(&format!("vm-system: rolled back: {state}\n"));
            }
        }
        Ok(())
    }
}

/// The history file of `repl`, and whether it can be written.
struct HistoryFile {
    path: Option<PathBuf>,
}

impl HistoryFile {
    /// Makes the file's directory (`0700`) when missing.
    fn open(path: Option<PathBuf>) -> Self {
        if let Some(dir) = path.as_deref().and_then(Path::parent).filter(|d| !d.as_os_str().is_empty()) {
            use std::os::unix::fs::DirBuilderExt;
            if let Err(err) = std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir) {
                stderr(&format!("vm-system: history is not kept: cannot make {}: {err}\n", dir.display()));
                return Self { path: None };
            }
        }
        Self { path }
    }

    fn load(&self, editor: &mut Editor<input::JsHelper, DefaultHistory>) {
        let Some(path) = self.path.as_deref().filter(|p| p.exists()) else { return };
        if let Err(err) = editor.load_history(path) {
            stderr(&format!("vm-system: cannot read the history file {}: {err}\n", path.display()));
        }
    }

    /// Adds an entry and appends it to the file at once, so that a REPL
    /// that is killed keeps what was typed.
    fn add(&self, editor: &mut Editor<input::JsHelper, DefaultHistory>, line: &str) {
        if !editor.add_history_entry(line).unwrap_or(false) {
            return;
        }
        if let Some(path) = &self.path {
            if let Err(err) = editor.append_history(path) {
                tracing::debug!(%err, path = %path.display(), "history not saved");
            }
        }
    }
}

fn non_empty(path: PathBuf) -> Option<PathBuf> {
    (!path.as_os_str().is_empty()).then_some(path)
}

/// `$XDG_STATE_HOME/vm-system/repl_history`, else
/// `~/.local/state/vm-system/repl_history`: history is this user's state,
/// not the daemon's data (whose directory may belong to another user).
fn default_history_file() -> Option<PathBuf> {
    let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    let state =
        env("XDG_STATE_HOME").filter(|p| p.is_absolute()).or_else(|| env("HOME").map(|h| h.join(".local/state")))?;
    Some(state.join("vm-system").join("repl_history"))
}

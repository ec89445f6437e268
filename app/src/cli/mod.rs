//! The command tree. `serve` runs the daemon; every other command is a
//! client of a running daemon's REST API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::client::{Client, Credentials};
use crate::logging::LogFormat;
use crate::serve::{self, ServeConfig};

mod completions;
mod exec;
mod help;
mod libs;
mod ops;
mod output;
mod repl;
mod session;
mod template;
mod token;

/// Long-lived, sandboxed JavaScript runtimes over HTTP.
#[derive(Debug, Parser)]
#[command(name = "vm-system", version, about, propagate_version = true, disable_help_subcommand = true)]
#[command(after_help = "Guides: `vm-system help` lists them; start with `vm-system help getting-started`.")]
pub struct Cli {
    /// Log filter: error, warn, info, debug, trace, or a tracing directive.
    #[arg(long, global = true, env = "VM_SYSTEM_LOG", default_value = "info")]
    pub log_level: String,

    /// Where the daemon listens (for every command but `serve`).
    #[arg(long, global = true, env = "VM_SYSTEM_URL", default_value = "http://127.0.0.1:3210")]
    pub server_url: String,

    /// API token of client commands (`vm-system help security`). Without it, a
    /// command talking to a daemon on this machine uses the daemon's
    /// bootstrap admin token file, when it can read it.
    #[arg(long, global = true, env = "VM_SYSTEM_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// Output format of client commands: text (tables and blocks), or the API objects as json or yaml.
    #[arg(short = 'o', long, global = true, value_enum, default_value = "text")]
    pub output: output::Format,

    /// Print only ids (names for lists of names), one per line, e.g. `T=$(vm-system template create x -q)`.
    #[arg(short = 'q', long, global = true, conflicts_with = "output")]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: REST API under /api/v1, Swagger UI at /docs.
    Serve {
        /// Address to listen on; port 0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:3210")]
        listen: SocketAddr,
        /// SQLite database file (created on first start), or a PostgreSQL URL
        /// `postgres://USER[:PASSWORD]@HOST:PORT/DB` (the password is never logged).
        #[arg(long, default_value = "vm-system.db")]
        db: vm_store::Database,
        /// Directory of downloaded libraries (`<id>-<version>.js`).
        #[arg(long, default_value = ".vm-cache/libraries")]
        cache_dir: PathBuf,
        /// Confine every session in the kernel sandbox (`vm-system help security`).
        /// `off` runs session code with the daemon's own rights: only on a
        /// trusted machine, and logged loudly at every start.
        #[arg(long, value_enum, default_value_t = serve::SandboxSwitch::On)]
        sandbox: serve::SandboxSwitch,
        /// When the daemon runs as root: the unprivileged user sessions run as,
        /// a name or UID[:GID]. Worktrees stay owned by their owner.
        #[arg(long, default_value = "nobody")]
        sandbox_user: String,
        /// Log lines on stderr: `text` to read, or `json`, one object per line with the ids of
        /// the request, session and execution as fields (`vm-system help operations`).
        #[arg(long, value_enum, env = "VM_SYSTEM_LOG_FORMAT", default_value_t = LogFormat::Text)]
        log_format: LogFormat,
        /// On SIGTERM or Ctrl+C the daemon refuses new work and lets running executions go on
        /// for this long (e.g. 30s, 500ms), then cancels the rest; a second signal stops at once.
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        shutdown_timeout: Duration,
        #[command(flatten)]
        security: Box<serve::SecurityArgs>,
        #[command(flatten)]
        node: serve::NodeArgs,
    },
    /// Measure a running daemon: REPL round trips and executions per second.
    Bench(crate::bench::BenchArgs),
    /// Templates: runtime profiles with settings, startup files, modules and libraries.
    #[command(subcommand)]
    Template(Box<template::TemplateCommand>),
    /// Sessions: live runtimes made from a template, bound to a worktree.
    #[command(subcommand)]
    Session(session::SessionCommand),
    /// Executions: run snippets and files in a session, cancel them, follow their events live.
    #[command(subcommand)]
    Exec(exec::ExecCommand),
    /// An interactive prompt on a session: history, multi-line entries, Ctrl+C cancels.
    ///
    /// Each entry runs in the session's global scope; console lines print as they happen, then
    /// the value or the exception. An open bracket, template literal or block comment continues
    /// the entry on the next line. Ctrl+C while an entry runs cancels it (and says whether the
    /// session was rolled back); at the prompt it clears the line. Ctrl+D or `.exit` leaves;
    /// `.help` lists the commands. Exits 1 when the session is missing, closed or crashed.
    Repl(repl::ReplArgs),
    /// Operations: daemon health, readiness (store, runtime, drain) and the runtimes alive in it.
    #[command(subcommand)]
    Ops(ops::OpsCommand),
    /// Print a completion script: `source <(vm-system completions bash)`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Built-in guides (`vm-system help` lists them), or a command's help.
    Help(help::HelpArgs),
    /// Libraries: fill the local cache the daemon loads them from (`download`), see what it holds (`list`).
    #[command(subcommand)]
    Libs(libs::LibsCommand),
    /// API tokens: make, list, show and revoke them (admin); `whoami` shows the token in use.
    #[command(subcommand)]
    Token(token::TokenCommand),
}

impl Cli {
    /// How log lines are written: `serve --log-format`; client commands write text.
    pub fn log_format(&self) -> LogFormat {
        match &self.command {
            Command::Serve { log_format, .. } => *log_format,
            _ => LogFormat::Text,
        }
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let context = || ctx(&cli.server_url, cli.token.as_deref(), cli.output, cli.quiet);
    match cli.command {
        Command::Serve {
            listen,
            db,
            cache_dir,
            sandbox,
            sandbox_user,
            log_format: _,
            shutdown_timeout,
            security,
            node,
        } => {
            let sandbox = serve::sandbox_mode(sandbox, &sandbox_user)?;
            serve::run(ServeConfig { listen, db, cache_dir, sandbox, shutdown_timeout, security: *security, node })
                .await
        }
        Command::Bench(args) => {
            let credentials =
                Credentials::resolve(cli.token.as_deref(), &cli.server_url).map_err(anyhow::Error::msg)?;
            let creator = match &args.sessions_on {
                Some(url) => {
                    let credentials = Credentials::resolve(cli.token.as_deref(), url).map_err(anyhow::Error::msg)?;
                    Some(Client::new(url, credentials)?)
                }
                None => None,
            };
            crate::bench::run(Client::new(&cli.server_url, credentials)?, creator, args).await
        }
        Command::Template(command) => output::finish(async { template::run(&context()?, *command).await }.await),
        Command::Session(command) => output::finish(async { session::run(&context()?, command).await }.await),
        Command::Exec(command) => output::finish(async { exec::run(&context()?, command).await }.await),
        Command::Repl(args) => output::finish(async { repl::run(&context()?, args).await }.await),
        Command::Ops(command) => output::finish(async { ops::run(&context()?, command).await }.await),
        Command::Completions { shell } => {
            completions::run(shell);
            Ok(())
        }
        Command::Help(args) => output::finish(help::run(args)),
        Command::Libs(command) => output::finish(libs::run(cli.output, command).await),
        Command::Token(command) => output::finish(async { token::run(&context()?, command).await }.await),
    }
}

/// What a REST client command needs: the client of `--server-url`, sending
/// the token of `--token` (or the local token file), and the output settings.
fn ctx(
    server_url: &str,
    token: Option<&str>,
    format: output::Format,
    quiet: bool,
) -> Result<output::Ctx, output::Failure> {
    let credentials = Credentials::resolve(token, server_url).map_err(output::Failure::Usage)?;
    Ok(output::Ctx { client: Client::new(server_url, credentials)?, format, quiet })
}

/// A non-blank id argument (an unset shell variable is caught before sending).
fn id(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err("an id is required (is the shell variable set?)".into());
    }
    Ok(trimmed.to_owned())
}

/// An id the API takes in a request body (a session's, a template's): a UUID.
fn uuid(raw: &str) -> Result<uuid::Uuid, String> {
    let id = id(raw)?;
    id.parse().map_err(|_| format!("{id:?} is not an id (ids are UUIDs, as `vm-system session list` shows)"))
}

/// A JSON object argument (`--config`, `--args`), checked before sending.
fn json_object(raw: &str) -> Result<std::collections::BTreeMap<String, serde_json::Value>, String> {
    match serde_json::from_str::<serde_json::Value>(raw) {
        Ok(serde_json::Value::Object(map)) => Ok(map.into_iter().collect()),
        Ok(_) => Err("expected a JSON object, e.g. '{\"key\": 1}'".into()),
        Err(err) => Err(format!("not valid JSON: {err}")),
    }
}

//! The command tree. `serve` runs the daemon; every other command is a
//! client of a running daemon's REST API.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::serve::{self, ServeConfig};

/// Long-lived, sandboxed JavaScript runtimes over HTTP.
#[derive(Debug, Parser)]
#[command(name = "vm-system", version, about, propagate_version = true)]
pub struct Cli {
    /// Log filter: error, warn, info, debug, trace, or a tracing directive.
    #[arg(long, global = true, env = "VM_SYSTEM_LOG", default_value = "info")]
    pub log_level: String,

    /// Where the daemon listens (for every command but `serve`).
    #[arg(long, global = true, env = "VM_SYSTEM_URL", default_value = "http://127.0.0.1:3210")]
    pub server_url: String,

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
        /// SQLite database file (created on first start).
        #[arg(long, default_value = "vm-system.db")]
        db: PathBuf,
        /// Directory of downloaded libraries (`<id>-<version>.js`).
        #[arg(long, default_value = ".vm-cache/libraries")]
        cache_dir: PathBuf,
    },
    /// Measure a running daemon: REPL round trips and executions per second.
    Bench(crate::bench::BenchArgs),
}

pub fn init_logging(level: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(level).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { listen, db, cache_dir } => serve::run(ServeConfig { listen, db, cache_dir }).await,
        Command::Bench(args) => crate::bench::run(&cli.server_url, args).await,
    }
}

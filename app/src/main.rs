//! The `vm-system` binary: the daemon (`serve`) and the command line.
//!
//! Layout:
//! - `cli`: the clap command tree.
//! - `client`: the typed REST client the commands other than `serve` use.
//! - `bench`: load measurements against a running daemon.
//! - `logging`: log lines as text or flat JSON (`serve --log-format`).
//! - `serve`: wiring of the adapters into the domain and the HTTP server.
//! - `shutdown`: the graceful drain on SIGTERM or Ctrl+C.
//! - `ui_assets`: the web UI at `/` (embedded in release builds).

mod auth;
mod bench;
mod cli;
mod client;
mod db_lock;
mod logging;
mod serve;
mod shutdown;
mod ui_assets;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    logging::init(&cli.log_level, cli.log_format());
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

//! The `vm-system` binary: the daemon (`serve`) and the command line.
//!
//! Layout:
//! - `cli`: the clap command tree.
//! - `client`: the typed REST client the commands other than `serve` use.
//! - `bench`: load measurements against a running daemon.
//! - `serve`: wiring of the adapters into the domain and the HTTP server.
//! - `ui_assets`: the web UI at `/` (embedded in release builds).

mod auth;
mod bench;
mod cli;
mod client;
mod serve;
mod ui_assets;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    cli::init_logging(&cli.log_level);
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

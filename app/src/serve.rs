//! `vm-system serve`: opens the store, reconciles what a previous process
//! left, wires adapters into the domain services and serves HTTP until
//! Ctrl+C or SIGTERM.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use poem::listener::{Acceptor, Listener, TcpListener};
use vm_domain::ports::SystemClock;
use vm_http::Services;
use vm_runtime_boa::sandbox::SandboxMode;
use vm_runtime_boa::{BoaRuntime, FsLibraryCache};
use vm_store::Database;

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    /// A SQLite file or a `postgres://` URL; shown without its password.
    pub db: Database,
    pub cache_dir: PathBuf,
    pub sandbox: SandboxMode,
}

/// `--sandbox`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SandboxSwitch {
    On,
    Off,
}

/// The sandbox `--sandbox` and `--sandbox-user` ask for. A root daemon's
/// sessions run as the sandbox user, which must exist and not be root.
pub fn sandbox_mode(switch: SandboxSwitch, user: &str) -> anyhow::Result<SandboxMode> {
    match switch {
        SandboxSwitch::Off => Ok(SandboxMode::Off),
        SandboxSwitch::On => Ok(SandboxMode::on(user)?),
    }
}

/// Builds the services over a store (SQLite file or PostgreSQL database)
/// and a library cache. A store that cannot be opened is one sentence
/// naming the file or the server's host and port.
pub async fn services(db: &Database, cache_dir: PathBuf, sandbox: SandboxMode) -> anyhow::Result<Arc<Services>> {
    match sandbox {
        SandboxMode::Off => tracing::warn!(
            "SANDBOX OFF (--sandbox=off): session code and the programs it runs have the daemon's own rights \
             over files, processes and the network; use this only on a trusted machine"
        ),
        SandboxMode::On { run_as } => {
            vm_runtime_boa::sandbox::check(sandbox).map_err(|err| {
                anyhow::anyhow!("{err}; sessions cannot be confined on this machine (see `vm-system help security`; --sandbox=off runs them unconfined)")
            })?;
            match run_as {
                Some(user) => {
                    tracing::info!(uid = user.uid, gid = user.gid, "sandbox on: sessions run as an unprivileged user")
                }
                None => tracing::info!("sandbox on: sessions run in user namespaces of their own"),
            }
        }
    }
    let store = vm_store::open(db).await?;
    let boa = Arc::new(BoaRuntime::new(cache_dir.clone(), sandbox));
    if let Err(err) = boa.warm_up().await {
        tracing::warn!(error = %err, "cannot prepare a worker ahead of the first session");
    }
    if sandbox.is_on() {
        boa.probe().await.map_err(|err| {
            anyhow::anyhow!("a test session could not start in the sandbox: {err} (see `vm-system help security`; --sandbox=off runs sessions unconfined)")
        })?;
    }
    let services = Services::new(
        store.templates,
        store.sessions,
        store.executions,
        boa,
        Arc::new(FsLibraryCache::new(cache_dir)),
        Arc::new(SystemClock),
    );
    let report = services.sessions.reconcile_after_restart().await.context("cannot reconcile the database")?;
    if report.closed_sessions + report.finalised_executions > 0 {
        tracing::warn!(
            closed_sessions = report.closed_sessions,
            finalised_executions = report.finalised_executions,
            "reconciled what the previous process left behind"
        );
    }
    Ok(Arc::new(services))
}

pub async fn run(config: ServeConfig) -> anyhow::Result<()> {
    let services = services(&config.db, config.cache_dir.clone(), config.sandbox).await?;
    let acceptor = TcpListener::bind(config.listen)
        .into_acceptor()
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let local =
        acceptor.local_addr().into_iter().find_map(|addr| addr.as_socket_addr().copied()).unwrap_or(config.listen);
    tracing::info!(db = %config.db, backend = config.db.backend(), cache_dir = %config.cache_dir.display(), "store ready");
    if !crate::ui_assets::is_built() {
        tracing::warn!("the web UI is not built into this binary; / says how to build it (the API works as ever)");
    }
    // Registered before the address is announced, so that a SIGTERM sent as
    // soon as the daemon says it listens stops it gracefully.
    let shutdown = shutdown_signal();
    println!("vm-system listening on http://{local}");
    std::io::stdout().flush().ok();
    poem::Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(
            vm_http::app(services, Some(crate::ui_assets::endpoint())),
            shutdown,
            Some(Duration::from_secs(5)),
        )
        .await
        .context("the HTTP server failed")?;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on Ctrl+C or SIGTERM. The SIGTERM handler is installed when
/// this is called, not when the future is first polled.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler succeeds on unix");
    async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
        #[cfg(not(unix))]
        ctrl_c.await.ok();
        tracing::info!("shutting down");
    }
}

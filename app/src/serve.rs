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
use vm_domain::ports::{Clock, JsRuntime, SystemClock};
use vm_domain::services::{SessionService, TemplateService};
use vm_http::Services;
use vm_runtime_boa::{BoaRuntime, FsLibraryCache};
use vm_store::SqliteStore;

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub db: PathBuf,
    pub cache_dir: PathBuf,
}

/// Builds the services over a store file and a library cache.
pub async fn services(db: &std::path::Path, cache_dir: PathBuf) -> anyhow::Result<Arc<Services>> {
    let store =
        Arc::new(SqliteStore::open(db).await.with_context(|| format!("cannot open the database {}", db.display()))?);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let runtime: Arc<dyn JsRuntime> = Arc::new(BoaRuntime::new(cache_dir.clone()));
    let templates = TemplateService::new(
        store.clone(),
        Arc::new(FsLibraryCache::new(cache_dir)),
        clock.clone(),
        vec![runtime.engine().to_owned()],
    );
    let (sessions, executions) = SessionService::new(store.clone(), store.clone(), store, runtime, clock);
    let report = sessions.reconcile_after_restart().await.context("cannot reconcile the database")?;
    if report.closed_sessions + report.finalised_executions > 0 {
        tracing::warn!(
            closed_sessions = report.closed_sessions,
            finalised_executions = report.finalised_executions,
            "reconciled what the previous process left behind"
        );
    }
    Ok(Arc::new(Services { templates, sessions, executions }))
}

pub async fn run(config: ServeConfig) -> anyhow::Result<()> {
    let services = services(&config.db, config.cache_dir.clone()).await?;
    let acceptor = TcpListener::bind(config.listen)
        .into_acceptor()
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let local =
        acceptor.local_addr().into_iter().find_map(|addr| addr.as_socket_addr().copied()).unwrap_or(config.listen);
    tracing::info!(db = %config.db.display(), cache_dir = %config.cache_dir.display(), "store ready");
    println!("vm-system listening on http://{local}");
    std::io::stdout().flush().ok();
    poem::Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(vm_http::app(services, None), shutdown_signal(), Some(Duration::from_secs(5)))
        .await
        .context("the HTTP server failed")?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler succeeds on unix");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await.ok();
    tracing::info!("shutting down");
}

//! The graceful drain of `serve`. The first SIGTERM or SIGINT (Ctrl+C)
//! makes the daemon refuse new executions, sessions and forks with
//! `SHUTTING_DOWN` and answer `/ready` with 503, while it keeps serving
//! (probes, reads, cancels, the live streams of running executions); the
//! executions running may end on their own for `--shutdown-timeout`, the
//! rest are cancelled; then the HTTP server stops accepting and closes its
//! connections. A second signal stops at once.

use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use vm_domain::services::ExecutionService;

/// The stop signals received so far, counted from the moment
/// [`Signals::install`] ran.
pub struct Signals {
    received: watch::Receiver<u32>,
}

impl Signals {
    /// Installs the SIGTERM and SIGINT handlers now, not when first
    /// polled, so that a signal sent as soon as the daemon says it listens
    /// is not missed. Must run inside the tokio runtime.
    pub fn install() -> std::io::Result<Self> {
        let mut term = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let (count, received) = watch::channel(0u32);
        tokio::spawn(async move {
            loop {
                let name = tokio::select! {
                    Some(()) = term.recv() => "SIGTERM",
                    Some(()) = interrupt.recv() => "SIGINT",
                    else => return,
                };
                // Logged before it is acted on, so that the log reads in order.
                match *count.borrow() {
                    0 => tracing::info!(signal = name, "stop signal received: draining (a second one stops at once)"),
                    _ => tracing::warn!(signal = name, "second stop signal: stopping at once"),
                }
                count.send_modify(|n| *n += 1);
            }
        });
        Ok(Self { received })
    }

    /// Resolves once `n` signals have arrived (never, should the handlers
    /// go away).
    pub async fn received(&self, n: u32) {
        let mut received = self.received.clone();
        if received.wait_for(|count| *count >= n).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// The HTTP server's shutdown signal: resolves after the first stop signal,
/// once the drain is over (see the module doc).
pub async fn drained(signals: &Signals, executions: &ExecutionService, timeout: Duration) {
    signals.received(1).await;
    executions.drain(timeout).await;
    tracing::info!("closing the HTTP server: no new connection, requests in flight may finish");
}

//! The host half: `BoaRuntime` implements the `JsRuntime` port by keeping
//! each session's [`SessionEngine`] on a dedicated thread and talking to it
//! over channels. It never touches a boa value and never blocks a tokio worker.

use std::collections::HashMap;
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::{mpsc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};

use async_trait::async_trait;
use tokio::sync::oneshot;
use vm_domain::ids::SessionId;
use vm_domain::ports::{Ending, Job, JsRuntime, Outcome, RuntimeError, RuntimeSpec};

use crate::engine::{SessionEngine, THREAD_STACK_BYTES};

/// What the host asks of a session's engine thread.
enum Command {
    Run { job: Job, reply: oneshot::Sender<Outcome> },
}

/// A live engine thread: the way to reach it, and the thread itself, to tell
/// whether it is still alive.
struct Worker {
    commands: mpsc::Sender<Command>,
    thread: JoinHandle<()>,
}

/// The boa runtime. Each session's engine lives on its own thread, which
/// ends when the session is closed (its command channel is dropped).
pub struct BoaRuntime {
    cache_dir: PathBuf,
    /// A std `Mutex`: it is only held to look up or change the map, never
    /// across an `.await`.
    workers: Mutex<HashMap<SessionId, Worker>>,
}

impl BoaRuntime {
    /// A runtime that loads template libraries from `cache_dir`.
    pub fn new(cache_dir: PathBuf) -> Self {
        Self { cache_dir, workers: Mutex::new(HashMap::new()) }
    }

    fn workers(&self) -> MutexGuard<'_, HashMap<SessionId, Worker>> {
        self.workers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl JsRuntime for BoaRuntime {
    fn engine(&self) -> &'static str {
        "boa"
    }

    async fn start(&self, spec: RuntimeSpec) -> Result<(), RuntimeError> {
        let session = spec.session_id;
        if self.workers().get(&session).is_some_and(|w| !w.thread.is_finished()) {
            return Err(RuntimeError::Internal(format!("session {session} already has a live runtime")));
        }
        let (commands, inbox) = mpsc::channel();
        let (ready, started) = oneshot::channel();
        let cache_dir = self.cache_dir.clone();
        let thread = thread::Builder::new()
            .name(format!("boa-{session}"))
            .stack_size(THREAD_STACK_BYTES)
            .spawn(move || serve(&spec, &cache_dir, ready, &inbox))
            .map_err(|err| RuntimeError::StartFailed(format!("cannot start the engine thread: {err}")))?;
        match started.await {
            Ok(Ok(())) => {
                self.workers().insert(session, Worker { commands, thread });
                Ok(())
            }
            Ok(Err(err)) => Err(err),
            Err(_) => Err(RuntimeError::StartFailed("the engine thread died while starting".into())),
        }
    }

    async fn run(&self, session: SessionId, job: Job) -> Result<Outcome, RuntimeError> {
        let unavailable = || RuntimeError::Unavailable(session.to_string());
        let commands = self.workers().get(&session).map(|w| w.commands.clone()).ok_or_else(unavailable)?;
        let (reply, outcome) = oneshot::channel();
        if commands.send(Command::Run { job, reply }).is_err() {
            self.workers().remove(&session);
            return Err(unavailable());
        }
        match outcome.await {
            Ok(outcome) => {
                if matches!(outcome.ending, Ending::Crashed { .. }) {
                    self.workers().remove(&session);
                }
                Ok(outcome)
            }
            Err(_) => {
                self.workers().remove(&session);
                let reason = "the engine thread ended while running the job".to_owned();
                Ok(Outcome { events: Vec::new(), ending: Ending::Crashed { reason } })
            }
        }
    }

    async fn close(&self, session: SessionId) {
        self.workers().remove(&session);
    }

    fn live_sessions(&self) -> Vec<SessionId> {
        self.workers().iter().filter(|(_, w)| !w.thread.is_finished()).map(|(id, _)| *id).collect()
    }
}

/// The engine thread: build the engine, report, then run jobs until the
/// host drops the channel. A panic inside boa ends the thread with a
/// `Crashed` outcome, since the engine's state can no longer be trusted.
fn serve(
    spec: &RuntimeSpec,
    cache_dir: &std::path::Path,
    ready: oneshot::Sender<Result<(), RuntimeError>>,
    inbox: &mpsc::Receiver<Command>,
) {
    let engine = panic::catch_unwind(AssertUnwindSafe(|| SessionEngine::start(spec, cache_dir)))
        .unwrap_or_else(|panic| Err(RuntimeError::StartFailed(format!("the engine panicked: {}", panic_text(&panic)))));
    let mut engine = match engine {
        Ok(engine) => {
            let _ = ready.send(Ok(()));
            engine
        }
        Err(err) => {
            let _ = ready.send(Err(err));
            return;
        }
    };
    while let Ok(Command::Run { job, reply }) = inbox.recv() {
        match panic::catch_unwind(AssertUnwindSafe(|| engine.run(job))) {
            Ok(outcome) => {
                let _ = reply.send(outcome);
            }
            Err(panic) => {
                let reason = format!("the engine panicked: {}", panic_text(&panic));
                let _ = reply.send(Outcome { events: Vec::new(), ending: Ending::Crashed { reason } });
                return;
            }
        }
    }
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

//! The host half: `BoaRuntime` implements the `JsRuntime` port with one
//! supervised worker process per session, forked from a zygote that already
//! evaluated the session's libraries. It never touches a boa value.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use async_trait::async_trait;
use tokio::sync::{Notify, OnceCell};
use tracing::Instrument;
use vm_domain::catalog::LibraryRef;
use vm_domain::ids::SessionId;
use vm_domain::paths::WorktreePath;
use vm_domain::ports::{Ending, Job, JsRuntime, LiveEvents, Outcome, ProcessStats, RuntimeError, RuntimeSpec};
use vm_domain::sandbox::SandboxPolicy;
use vm_domain::template::CapabilityKind;
use vm_domain::template::Settings;

use crate::library_cache::library_file;
use crate::net::FetchPolicy;
use crate::proc_stat;
use crate::protocol::{AllowedProgram, BootSpec, LibraryFile, SandboxSpec, ZygoteSpec};
use crate::sandbox::SandboxMode;
use crate::supervisor::{Idle, Supervisor};
use crate::worker::modules::exec::PROGRAM_PATH;
use crate::zygotes::Zygote;

/// What identifies a zygote's preparation: its libraries in order, each
/// with the size and modification time of its file, so a re-downloaded
/// library gets a fresh zygote.
type Fingerprint = Vec<(String, u64, Option<SystemTime>)>;

/// A zygote being started or running, shared by the sessions that need it.
struct ZygoteSlot {
    fingerprint: Fingerprint,
    zygote: OnceCell<Arc<Zygote>>,
}

/// Sessions whose worker died on its own while idle, each with what
/// happened, in the order they died; see [`JsRuntime::next_lost`].
#[derive(Default)]
struct Losses {
    /// A std `Mutex`: only held to push or pop, never across an `.await`.
    queue: Mutex<VecDeque<(SessionId, String)>>,
    /// One permit per loss pushed, for whoever waits in `next_lost`.
    arrived: Notify,
}

impl Losses {
    fn push(&self, session: SessionId, reason: String) {
        locked(&self.queue).push_back((session, reason));
        self.arrived.notify_one();
    }

    fn pop(&self) -> Option<(SessionId, String)> {
        locked(&self.queue).pop_front()
    }
}

/// How long the readiness check waits for a zygote to start.
const HEALTH_WITHIN: std::time::Duration = std::time::Duration::from_millis(900);

/// Workers by session. A std `Mutex`: only held to look up or change the
/// map, never across an `.await`.
type Workers = Mutex<HashMap<SessionId, Arc<Supervisor>>>;

/// The boa runtime. Each session's engine lives in its own live worker
/// process, beside the checkpoint it took before the next job; closing the
/// session (or dropping the runtime) kills them. A session and the sessions
/// forked from it are a family with one keeper process, which reaps them
/// all and reports each exit status (see [`crate::family`]). A live worker
/// that dies while idle is noticed at once by a watch task per session: its
/// checkpoint takes over, or, without one, the loss is queued for
/// [`JsRuntime::next_lost`].
pub struct BoaRuntime {
    cache_dir: PathBuf,
    /// The binary started as a zygote: this very program by default.
    program: PathBuf,
    /// Zygotes by library names, in order. A std `Mutex`: only held to look
    /// up or change the map, never across an `.await`.
    zygotes: Mutex<HashMap<Vec<String>, Arc<ZygoteSlot>>>,
    /// Shared with each worker's watch task, which removes a worker that
    /// died while idle.
    workers: Arc<Workers>,
    losses: Arc<Losses>,
    /// How sessions are confined; see [`crate::sandbox`].
    sandbox: SandboxMode,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl BoaRuntime {
    /// A runtime that loads template libraries from `cache_dir`, confines
    /// every session as `sandbox` says (check the machine first with
    /// [`crate::sandbox::check`]: a session whose confinement cannot be
    /// applied fails to start), and starts its workers from the running
    /// binary (`/proc/self/exe`, the same build even if the file was
    /// replaced since).
    pub fn new(cache_dir: PathBuf, sandbox: SandboxMode) -> Self {
        crate::worker::keep_entry();
        Self {
            cache_dir,
            program: PathBuf::from("/proc/self/exe"),
            zygotes: Mutex::new(HashMap::new()),
            workers: Arc::default(),
            losses: Arc::default(),
            sandbox,
        }
    }

    /// Starts workers from `program` instead: any binary that links this
    /// crate (see [`crate::worker`]).
    pub fn with_worker_program(mut self, program: PathBuf) -> Self {
        self.program = program;
        self
    }

    /// What a session's worker confines itself to, from the domain's policy.
    fn sandbox_spec(&self, spec: &RuntimeSpec) -> Option<SandboxSpec> {
        let SandboxMode::On { run_as } = self.sandbox else { return None };
        let policy = SandboxPolicy::for_session(
            spec.worktree.as_path(),
            &absolute(&self.cache_dir),
            &spec.settings.resolver.roots,
        );
        Some(SandboxSpec { read_only: policy.read_only, devices: policy.devices, run_as })
    }

    /// Starts the zygote for sessions without libraries ahead of the first
    /// session, so that one is fast too.
    pub async fn warm_up(&self) -> Result<(), RuntimeError> {
        self.zygote(Vec::new()).await.map(|_| ())
    }

    /// Starts a throwaway session on an empty directory, runs `1 + 1` in it
    /// and closes it: proof, at the daemon's start, that sessions can be
    /// started (and confined) on this machine.
    pub async fn probe(&self) -> Result<(), RuntimeError> {
        let failed = |what: &str, err: &dyn std::fmt::Display| RuntimeError::StartFailed(format!("{what}: {err}"));
        let dir = tempfile::Builder::new()
            .prefix("vm-system-probe-")
            .tempdir()
            .map_err(|e| failed("cannot make a probe directory", &e))?;
        let worktree =
            WorktreePath::parse(&dir.path().to_string_lossy()).map_err(|e| failed("bad probe directory", &e))?;
        let session = SessionId::new();
        let spec = RuntimeSpec {
            session_id: session,
            worktree,
            settings: Settings::default(),
            modules: Vec::new(),
            libraries: Vec::new(),
            capabilities: Vec::new(),
        };
        self.start(spec).await?;
        let outcome = self.run(session, Job::Eval { source: "1 + 1".into() }, Arc::new(|_| {})).await;
        self.close(session).await;
        match outcome?.ending {
            Ending::Completed => Ok(()),
            other => Err(RuntimeError::StartFailed(format!("the probe session did not complete `1 + 1`: {other:?}"))),
        }
    }

    /// The process id of a session's live worker, while it lives.
    pub fn worker_pid(&self, session: SessionId) -> Option<i32> {
        locked(&self.workers).get(&session).and_then(|w| w.worker_pid())
    }

    /// The live session's supervisor.
    fn worker(&self, session: SessionId) -> Result<Arc<Supervisor>, RuntimeError> {
        locked(&self.workers)
            .get(&session)
            .filter(|w| w.is_alive())
            .cloned()
            .ok_or_else(|| RuntimeError::Unavailable(session.to_string()))
    }

    /// Forgets `worker` as `session`'s, unless another took its place.
    fn forget(workers: &Workers, session: SessionId, worker: &Arc<Supervisor>) {
        let mut workers = locked(workers);
        if workers.get(&session).is_some_and(|w| Arc::ptr_eq(w, worker)) {
            workers.remove(&session);
        }
    }

    /// Watches, off the caller's task, the live worker of `worker`: when it
    /// ends while idle, its checkpoint takes over; without one, the session
    /// is forgotten and the loss queued. Holds the worker only weakly, so
    /// that closing the session or dropping the runtime still drops (and
    /// kills) it.
    fn watch(&self, session: SessionId, worker: &Arc<Supervisor>) {
        let worker = Arc::downgrade(worker);
        let workers = Arc::downgrade(&self.workers);
        let losses = Arc::downgrade(&self.losses);
        // Its own root span: the session's, not the request's that started it.
        let span = tracing::error_span!(parent: None, "worker", session_id = %session);
        let watching = async move {
            loop {
                let Some(ended) = worker.upgrade().map(|w| w.live_ended()) else { return };
                if !ended.await {
                    return;
                }
                let Some(current) = worker.upgrade() else { return };
                match current.recover_idle().await {
                    Idle::Watch => continue,
                    Idle::Over => return,
                    Idle::Lost(reason) => {
                        let (Some(workers), Some(losses)) = (workers.upgrade(), losses.upgrade()) else { return };
                        Self::forget(&workers, session, &current);
                        losses.push(session, reason);
                        return;
                    }
                }
            }
        };
        tokio::spawn(watching.instrument(span));
    }

    /// The cache files of `libraries`, in order. A missing one fails the
    /// start with what to do about it.
    fn library_files(&self, libraries: &[LibraryRef]) -> Result<(Vec<LibraryFile>, Fingerprint), RuntimeError> {
        let mut files = Vec::new();
        let mut fingerprint = Vec::new();
        for library in libraries {
            let path = library_file(&self.cache_dir, library);
            let meta = std::fs::metadata(&path).map_err(|err| {
                RuntimeError::StartFailed(match err.kind() {
                    std::io::ErrorKind::NotFound => format!(
                        "library {library} is not in the cache at {}; run `vm-system libs download`",
                        path.display()
                    ),
                    _ => format!("cannot read library {library} at {}: {err}", path.display()),
                })
            })?;
            let path = absolute(&path);
            fingerprint.push((library.to_string(), meta.len(), meta.modified().ok()));
            files.push(LibraryFile { name: library.to_string(), path, global: library.info().global.to_owned() });
        }
        Ok((files, fingerprint))
    }

    /// The zygote prepared with `libraries`, started on first use. A zygote
    /// whose library files changed, or that died, is replaced.
    async fn zygote(&self, libraries: Vec<LibraryRef>) -> Result<Arc<Zygote>, RuntimeError> {
        let (files, fingerprint) = self.library_files(&libraries)?;
        let names: Vec<String> = libraries.iter().map(ToString::to_string).collect();
        let slot = {
            let mut zygotes = locked(&self.zygotes);
            let current = zygotes.get(&names).cloned();
            let usable = current
                .as_ref()
                .is_some_and(|slot| slot.fingerprint == fingerprint && slot.zygote.get().is_none_or(|z| z.is_alive()));
            match (usable, current) {
                (true, Some(slot)) => slot,
                _ => {
                    // A replaced zygote lives on while its workers do: each holds it.
                    let slot = Arc::new(ZygoteSlot { fingerprint, zygote: OnceCell::new() });
                    zygotes.insert(names.clone(), slot.clone());
                    slot
                }
            }
        };
        let spec = ZygoteSpec { libraries: files, sandbox: self.sandbox.is_on(), run_as: self.sandbox.run_as() };
        let started =
            slot.zygote.get_or_try_init(|| async { Zygote::start(&self.program, &spec).await.map(Arc::new) }).await;
        match started {
            Ok(zygote) => Ok(zygote.clone()),
            Err(reason) => {
                let mut zygotes = locked(&self.zygotes);
                if zygotes.get(&names).is_some_and(|s| Arc::ptr_eq(s, &slot)) {
                    zygotes.remove(&names);
                }
                Err(reason.into())
            }
        }
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The enabled `module` capabilities named `exec`.
fn exec_capabilities(spec: &RuntimeSpec) -> impl Iterator<Item = &serde_json::Map<String, serde_json::Value>> {
    spec.capabilities
        .iter()
        .filter(|c| c.kind == CapabilityKind::Module && c.name == "exec" && c.enabled)
        .map(|c| &c.config)
}

/// The strings of `key` (an array) in every `exec` capability, sorted, once each.
fn exec_config_list(spec: &RuntimeSpec, key: &str) -> Vec<String> {
    let mut names: Vec<String> = exec_capabilities(spec)
        .filter_map(|config| config.get(key).and_then(|a| a.as_array()))
        .flatten()
        .filter_map(|p| p.as_str().map(str::to_owned))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Programs the `exec` module may run: the `allow` lists of the enabled
/// `module` capabilities named `exec`, each resolved now by the daemon's
/// own `PATH`.
fn exec_allow(spec: &RuntimeSpec) -> Vec<AllowedProgram> {
    let worktree = spec.worktree.as_path();
    exec_config_list(spec, "allow")
        .into_iter()
        .map(|name| {
            let path = resolve_program(&name, worktree);
            AllowedProgram { name, path }
        })
        .collect()
}

/// Where `name` is: an absolute path as given, or the first executable file
/// of that name in the daemon's `PATH` (relative entries skipped), symlinks
/// resolved. Never a file inside `worktree`.
fn resolve_program(name: &str, worktree: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let candidates: Vec<PathBuf> = if name.contains('/') {
        vec![PathBuf::from(name)].into_iter().filter(|p| p.is_absolute()).collect()
    } else {
        let search = std::env::var_os("PATH").unwrap_or_else(|| PROGRAM_PATH.into());
        std::env::split_paths(&search).filter(|dir| dir.is_absolute()).map(|dir| dir.join(name)).collect()
    };
    candidates.into_iter().find_map(|candidate| {
        let real = candidate.canonicalize().ok()?;
        let meta = real.metadata().ok()?;
        let runnable = meta.is_file() && meta.permissions().mode() & 0o111 != 0;
        (runnable && !real.starts_with(worktree)).then_some(real)
    })
}

#[async_trait]
impl JsRuntime for BoaRuntime {
    fn engine(&self) -> &'static str {
        "boa"
    }

    async fn start(&self, spec: RuntimeSpec) -> Result<(), RuntimeError> {
        let session = spec.session_id;
        if locked(&self.workers).get(&session).is_some_and(|w| w.is_alive()) {
            return Err(RuntimeError::Internal(format!("session {session} already has a live runtime")));
        }
        // A capability that cannot be a policy stops the start: fail closed.
        let fetch = FetchPolicy::from_capabilities(&spec.capabilities)
            .map_err(|err| RuntimeError::StartFailed(err.to_string()))?
            .map(Arc::new);
        let mut zygote = self.zygote(spec.libraries.clone()).await?;
        let forked = match zygote.fork(&session.to_string()).await {
            Ok(forked) => forked,
            Err(_) if !zygote.is_alive() => {
                zygote = self.zygote(spec.libraries.clone()).await?;
                zygote.fork(&session.to_string()).await?
            }
            Err(reason) => return Err(reason.into()),
        };
        let boot = BootSpec {
            session_id: session.to_string(),
            worktree: spec.worktree.as_path().to_path_buf(),
            limits: spec.settings.limits,
            console: spec.settings.runtime.console,
            strict: spec.settings.runtime.strict,
            modules: spec.modules.iter().map(|m| m.as_str().to_owned()).collect(),
            exec_allow: exec_allow(&spec),
            exec_env_allow: exec_config_list(&spec, "env"),
            esm: spec.settings.runtime.esm,
            resolver: spec.settings.resolver.clone(),
            sandbox: self.sandbox_spec(&spec),
            checkpoints: spec.settings.runtime.checkpoints,
            fetch: fetch.is_some(),
        };
        let supervisor = Arc::new(Supervisor::boot(forked, boot, zygote, fetch).await?);
        locked(&self.workers).insert(session, supervisor.clone());
        self.watch(session, &supervisor);
        Ok(())
    }

    async fn run(&self, session: SessionId, job: Job, live: LiveEvents) -> Result<Outcome, RuntimeError> {
        let worker = self.worker(session)?;
        let outcome = worker.run(job.into(), &*live).await;
        let lost = match &outcome.ending {
            Ending::Limit { state, .. } | Ending::Cancelled { state } | Ending::Crashed { state, .. } => {
                state.is_lost()
            }
            Ending::Completed | Ending::Threw => false,
        };
        if lost {
            Self::forget(&self.workers, session, &worker);
            worker.close();
        }
        Ok(outcome)
    }

    async fn cancel(&self, session: SessionId) -> bool {
        let worker = locked(&self.workers).get(&session).cloned();
        worker.is_some_and(|w| w.cancel())
    }

    async fn fork(&self, from: SessionId, to: SessionId) -> Result<(), RuntimeError> {
        let source = self.worker(from)?;
        if locked(&self.workers).get(&to).is_some_and(|w| w.is_alive()) {
            return Err(RuntimeError::Internal(format!("session {to} already has a live runtime")));
        }
        let forked = Arc::new(source.fork(&to.to_string()).await?);
        locked(&self.workers).insert(to, forked.clone());
        self.watch(to, &forked);
        Ok(())
    }

    async fn close(&self, session: SessionId) {
        let worker = locked(&self.workers).remove(&session);
        if let Some(worker) = worker {
            worker.close();
        }
    }

    /// The zygote of sessions without libraries is alive, or starts again
    /// within [`HEALTH_WITHIN`]: every session is forked from a zygote.
    async fn health(&self) -> Result<(), RuntimeError> {
        match tokio::time::timeout(HEALTH_WITHIN, self.warm_up()).await {
            Ok(ready) => ready,
            Err(_) => Err(RuntimeError::Unavailable(format!(
                "the zygote sessions start from did not start within {} ms",
                HEALTH_WITHIN.as_millis()
            ))),
        }
    }

    fn live_sessions(&self) -> Vec<SessionId> {
        locked(&self.workers).iter().filter(|(_, w)| w.is_alive()).map(|(id, _)| *id).collect()
    }

    /// Each live session's worker process, as `/proc` has it now (one that
    /// ended meanwhile is left out), its waiting checkpoint, and the
    /// zygotes ready for the next session.
    fn process_stats(&self) -> ProcessStats {
        let workers: Vec<Arc<Supervisor>> = locked(&self.workers).values().cloned().collect();
        let mut stats = ProcessStats::default();
        for worker in workers {
            stats.checkpoints += u64::from(worker.has_checkpoint());
            let Some(pid) = worker.worker_pid() else { continue };
            let (Some(rss), Some(cpu_ns)) = (proc_stat::rss_bytes(pid), proc_stat::cpu_time_ns(pid)) else { continue };
            stats.workers += 1;
            stats.worker_rss_bytes += rss;
            stats.worker_cpu_seconds += cpu_ns as f64 / 1e9;
        }
        let zygotes = locked(&self.zygotes);
        stats.zygotes = zygotes.values().filter(|slot| slot.zygote.get().is_some_and(|z| z.is_alive())).count() as u64;
        stats
    }

    async fn next_lost(&self) -> (SessionId, String) {
        loop {
            if let Some(loss) = self.losses.pop() {
                return loss;
            }
            // A loss pushed since the pop left a permit: this returns at once.
            self.losses.arrived.notified().await;
        }
    }

    fn take_lost(&self) -> Vec<(SessionId, String)> {
        std::iter::from_fn(|| self.losses.pop()).collect()
    }
}

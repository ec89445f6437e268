//! A `BoaRuntime` with a temporary worktree and library cache, and helpers
//! to read outcomes.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};
use tempfile::TempDir;
use vm_domain::catalog::ModuleName;
use vm_domain::event::{ConsoleLevel, EventPayload};
use vm_domain::ids::{CapabilityId, SessionId, TemplateId};
use vm_domain::paths::WorktreePath;
use vm_domain::ports::{Ending, Job, JsRuntime, LiveEvents, Outcome, RuntimeError, RuntimeSpec};
use vm_domain::template::{Capability, CapabilityKind, Settings};
use vm_runtime_boa::sandbox::SandboxMode;
use vm_runtime_boa::BoaRuntime;

pub struct Harness {
    pub runtime: BoaRuntime,
    pub worktree: TempDir,
    pub cache: TempDir,
}

impl Harness {
    pub fn new() -> Self {
        Self::with_sandbox(SandboxMode::on("nobody").expect("the sandbox user exists"))
    }

    /// A runtime whose sessions run unconfined, as with `--sandbox=off`.
    pub fn unsandboxed() -> Self {
        Self::with_sandbox(SandboxMode::Off)
    }

    fn with_sandbox(sandbox: SandboxMode) -> Self {
        let cache = tempfile::tempdir().expect("a temp cache dir");
        Self {
            runtime: BoaRuntime::new(cache.path().to_path_buf(), sandbox),
            worktree: tempfile::tempdir().expect("a temp worktree"),
            cache,
        }
    }

    pub fn spec(&self) -> RuntimeSpec {
        RuntimeSpec {
            session_id: SessionId::new(),
            worktree: WorktreePath::parse(self.worktree.path().to_str().expect("a UTF-8 temp path"))
                .expect("a worktree"),
            settings: Settings::default(),
            modules: Vec::new(),
            libraries: Vec::new(),
            capabilities: Vec::new(),
        }
    }

    pub async fn session(&self) -> SessionId {
        self.session_with(|_| {}).await
    }

    pub async fn session_with(&self, configure: impl FnOnce(&mut RuntimeSpec)) -> SessionId {
        let mut spec = self.spec();
        configure(&mut spec);
        let id = spec.session_id;
        self.runtime.start(spec).await.expect("the session starts");
        id
    }

    pub async fn eval(&self, session: SessionId, source: &str) -> Outcome {
        self.run(session, Job::Eval { source: source.into() }).await.expect("the session is live")
    }

    /// Runs a job; the outcome holds the events handed to its live
    /// callback, then any the runtime returned.
    pub async fn run(&self, session: SessionId, job: Job) -> Result<Outcome, RuntimeError> {
        let (live, seen) = collector();
        let mut outcome = self.runtime.run(session, job, live).await?;
        let mut events = std::mem::take(&mut *seen.lock().expect("the collector"));
        events.append(&mut outcome.events);
        outcome.events = events;
        Ok(outcome)
    }

    pub fn write(&self, path: &str, text: &str) -> PathBuf {
        let file = self.worktree.path().join(path);
        std::fs::create_dir_all(file.parent().expect("a parent")).expect("dirs");
        std::fs::write(&file, text).expect("a written file");
        file.canonicalize().expect("a real path")
    }

    pub fn cache_library(&self, name: &str, text: &str) {
        std::fs::write(self.cache.path().join(format!("{name}.js")), text).expect("a cached library");
    }

    /// The canonical worktree path.
    pub fn root(&self) -> PathBuf {
        self.worktree.path().canonicalize().expect("a real worktree")
    }
}

/// A live callback that keeps what it is handed.
pub fn collector() -> (LiveEvents, Arc<Mutex<Vec<EventPayload>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    (Arc::new(move |event| sink.lock().expect("the collector").push(event)), seen)
}

/// Enables native modules on a spec.
pub fn with_modules(spec: &mut RuntimeSpec, names: &[&str]) {
    spec.modules = names.iter().map(|n| ModuleName::parse(n).expect("a catalog module")).collect();
}

/// A `module` capability named `exec` allowing `programs`.
pub fn exec_capability(programs: &[&str]) -> Capability {
    let mut config = Map::new();
    config.insert("allow".into(), Value::from(programs.to_vec()));
    Capability {
        id: CapabilityId::new(),
        template_id: TemplateId::new(),
        kind: CapabilityKind::Module,
        name: "exec".into(),
        enabled: true,
        config,
        created_at: chrono_now(),
    }
}

fn chrono_now() -> vm_domain::Timestamp {
    serde_json::from_value(Value::from("2026-01-02T03:04:05Z")).expect("a timestamp")
}

pub fn log(text: &str) -> EventPayload {
    EventPayload::Console { level: ConsoleLevel::Log, text: text.into() }
}

pub fn value(kind: &str, preview: &str, json: Option<Value>) -> EventPayload {
    EventPayload::Value { kind: kind.into(), preview: preview.into(), json }
}

pub fn completed(events: Vec<EventPayload>) -> Outcome {
    Outcome { events, ending: Ending::Completed }
}

/// The exception event of an outcome that threw.
pub fn exception(outcome: &Outcome) -> (String, String) {
    assert_eq!(outcome.ending, Ending::Threw, "{outcome:?}");
    match outcome.events.last() {
        Some(EventPayload::Exception { message, stack }) => (message.clone(), stack.clone()),
        other => panic!("expected an exception event last, got {other:?}"),
    }
}

/// The value event's JSON of an outcome that completed.
pub fn json_of(outcome: &Outcome) -> Value {
    assert_eq!(outcome.ending, Ending::Completed, "{outcome:?}");
    match outcome.events.last() {
        Some(EventPayload::Value { json: Some(json), .. }) => json.clone(),
        other => panic!("expected a value with JSON last, got {other:?}"),
    }
}

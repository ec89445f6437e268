//! The `fetch` requests of one running job, as the daemon keeps them: each
//! performed on a task of its own (a few at a time, the rest waiting their
//! turn), answered with a frame and a body file, and recorded as a `fetch`
//! event. [`crate::supervisor`] writes the answers to the worker.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Write as _;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::task::{AbortHandle, Id, JoinError, JoinSet};
use tokio::time::Instant;
use vm_domain::event::EventPayload;

use super::policy::shown_text;
use super::{perform, FetchPolicy, Performed, Refusal};
use crate::protocol::{encode, FetchRefusal, FetchRequest, Request};

/// Requests of a job performed at once; later ones wait their turn.
pub const MAX_CONCURRENT: usize = 8;
/// Requests of a job waiting for a turn; more are refused.
pub const MAX_WAITING: usize = 1024;

/// The worker's answer to a request: its [`Request::FetchDone`] frame, the
/// body file that follows it, and the `fetch` event it records.
pub struct Answer {
    pub frame: Vec<u8>,
    pub body: Option<OwnedFd>,
    pub event: EventPayload,
}

/// A request id the job already used: the worker broke the protocol.
#[derive(Debug)]
pub struct Duplicate;

/// A request being performed or waiting.
struct Pending {
    id: u64,
    method: String,
    url: String,
    since: Instant,
}

/// The requests of the running job.
pub struct JobFetches {
    /// `None`: the session has no `fetch` capability.
    policy: Option<Arc<FetchPolicy>>,
    /// The job's wall-clock deadline, which every request must meet.
    deadline: Instant,
    /// The requests being performed, as tasks that return their answer.
    pub tasks: JoinSet<Answer>,
    running: HashMap<Id, (Pending, AbortHandle)>,
    waiting: VecDeque<(Pending, FetchRequest)>,
    /// Ids the job used.
    seen: HashSet<u64>,
}

impl JobFetches {
    pub fn new(policy: Option<Arc<FetchPolicy>>, deadline: Instant) -> Self {
        Self {
            policy,
            deadline,
            tasks: JoinSet::new(),
            running: HashMap::new(),
            waiting: VecDeque::new(),
            seen: HashSet::new(),
        }
    }

    /// Takes the worker's request `id`: the answer at once when it is
    /// refused before anything is sent (no capability, too many waiting),
    /// otherwise `None` and its answer comes from [`JobFetches::tasks`].
    pub fn request(&mut self, id: u64, request: FetchRequest) -> Result<Option<Answer>, Duplicate> {
        if !self.seen.insert(id) {
            return Err(Duplicate);
        }
        let pending = Pending { id, method: request.method.clone(), url: request.url.clone(), since: Instant::now() };
        let refusal = match &self.policy {
            None => Refusal::new(
                "ERR_FETCH_DISABLED",
                "fetch is not enabled for this session: add a `net` capability named `fetch` listing the hosts it \
                 may reach",
            ),
            Some(_) if self.waiting.len() >= MAX_WAITING => Refusal::new(
                "ERR_TOO_MANY_FETCHES",
                format!(
                    "more than {MAX_WAITING} fetch requests of this job are waiting for one of {MAX_CONCURRENT} turns"
                ),
            ),
            Some(_) => {
                self.waiting.push_back((pending, request));
                self.start_waiting();
                return Ok(None);
            }
        };
        Ok(Some(answer(pending, Performed { result: Err(refusal), bytes: 0, redirects: 0 })))
    }

    /// The answer of a finished task, if it is still wanted; starts a
    /// waiting request in its place.
    pub fn finished(&mut self, done: Result<(Id, Answer), JoinError>) -> Option<Answer> {
        let (id, done) = match done {
            Ok((id, done)) => (id, Some(done)),
            Err(err) => (err.id(), None),
        };
        let pending = self.running.remove(&id);
        self.start_waiting();
        match (done, pending) {
            (Some(done), _) => Some(done),
            (None, Some((pending, _))) => {
                let refusal = Refusal::new("ERR_FETCH_FAILED", "the daemon's fetch task failed");
                Some(answer(pending, Performed { result: Err(refusal), bytes: 0, redirects: 0 }))
            }
            // Aborted at the script's word: its event was made then.
            (None, None) => None,
        }
    }

    /// Stops request `id` at the script's word (an `AbortSignal`, or its
    /// promise dropped) and returns its `fetch` event; `None` when it is
    /// not running or waiting (already answered, or never asked).
    pub fn abort(&mut self, id: u64) -> Option<EventPayload> {
        let pending = if let Some(task) = self.running.iter().find(|(_, (p, _))| p.id == id).map(|(task, _)| *task) {
            let (pending, handle) = self.running.remove(&task).expect("the entry just found");
            handle.abort();
            self.start_waiting();
            pending
        } else {
            let at = self.waiting.iter().position(|(pending, _)| pending.id == id)?;
            self.waiting.remove(at).expect("the entry just found").0
        };
        let refusal = Refusal::new("ERR_FETCH_ABORTED", "the script aborted the fetch");
        Some(event(&pending, &Performed { result: Err(refusal), bytes: 0, redirects: 0 }))
    }

    fn start_waiting(&mut self) {
        let Some(policy) = &self.policy else { return };
        while self.tasks.len() < MAX_CONCURRENT {
            let Some((pending, request)) = self.waiting.pop_front() else { return };
            let (policy, deadline) = (policy.clone(), self.deadline);
            let meta = Pending {
                id: pending.id,
                method: pending.method.clone(),
                url: pending.url.clone(),
                since: pending.since,
            };
            let task = self.tasks.spawn(async move { answer(pending, perform(&policy, request, deadline).await) });
            self.running.insert(task.id(), (meta, task));
        }
    }

    /// Stops every request still running or waiting (the job is over) and
    /// returns their `fetch` events: a request may have reached its server.
    pub fn abandon(&mut self) -> Vec<EventPayload> {
        self.tasks.abort_all();
        let running = self.running.drain().map(|(_, (pending, _))| pending);
        let waiting = self.waiting.drain(..).map(|(pending, _)| pending);
        let mut left: Vec<Pending> = running.chain(waiting).collect();
        left.sort_by_key(|pending| pending.id);
        left.into_iter()
            .map(|pending| {
                let refusal = Refusal::new("ERR_FETCH_ABORTED", "the job ended before the fetch did");
                event(&pending, &Performed { result: Err(refusal), bytes: 0, redirects: 0 })
            })
            .collect()
    }
}

/// The `fetch` event of a request as it went.
fn event(pending: &Pending, performed: &Performed) -> EventPayload {
    let (status, final_url, code, error) = match &performed.result {
        Ok((head, _)) => (Some(head.status), (performed.redirects > 0).then(|| shown_text(&head.url)), None, None),
        Err(refusal) => (None, None, Some(refusal.code.to_owned()), Some(refusal.message.clone())),
    };
    EventPayload::Fetch {
        method: pending.method.clone(),
        url: shown_text(&pending.url),
        final_url,
        status,
        bytes: performed.bytes,
        ms: u64::try_from(pending.since.elapsed().as_millis()).unwrap_or(u64::MAX),
        code,
        error,
    }
}

/// The answer to a request as it went.
fn answer(pending: Pending, mut performed: Performed) -> Answer {
    let mut body = None;
    if let Ok((_, bytes)) = &performed.result {
        match body_file(bytes) {
            Ok(file) => body = Some(file),
            Err(err) => {
                let message = format!("the daemon cannot hold the response body: {err}");
                performed.result = Err(Refusal::new("ERR_FETCH_FAILED", message));
            }
        }
    }
    let event = event(&pending, &performed);
    let result = match performed.result {
        Ok((head, _)) => Ok(head),
        Err(Refusal { code, message }) => Err(FetchRefusal { code: code.to_owned(), message }),
    };
    let frame = encode(&Request::FetchDone { id: pending.id, result, event: event.clone() });
    Answer { frame, body, event }
}

/// A memory file holding `bytes`, for the worker to read.
fn body_file(bytes: &[u8]) -> std::io::Result<OwnedFd> {
    use nix::sys::memfd::{memfd_create, MFdFlags};
    let fd = memfd_create(c"vm-fetch-body", MFdFlags::MFD_CLOEXEC)?;
    let mut file = std::fs::File::from(fd);
    file.write_all(bytes)?;
    Ok(OwnedFd::from(file))
}

/// The job's `fetch` events. The daemon makes each and sends it with its
/// answer; the worker counts it against the job's `max_events` and echoes
/// it, and then it is recorded, in its place among the worker's events. An
/// event the daemon did not make (a forgery) is dropped; one the worker
/// never echoed (a limit stopped the job, it died, the answer came too
/// late) is recorded when the job ends.
#[derive(Default)]
pub struct FetchLedger {
    /// A std `Mutex`: only held to push or take, never across an `.await`.
    unechoed: Mutex<Vec<EventPayload>>,
}

impl FetchLedger {
    /// An event sent to the worker with its answer.
    pub fn expect(&self, event: EventPayload) {
        locked(&self.unechoed).push(event);
    }

    /// Hands a worker's event to `live`; a `fetch` one only when it is one
    /// the daemon made and not echoed before.
    pub fn forward(&self, event: EventPayload, live: &(dyn Fn(EventPayload) + Send + Sync)) {
        if matches!(event, EventPayload::Fetch { .. }) {
            let mut unechoed = locked(&self.unechoed);
            let Some(at) = unechoed.iter().position(|expected| *expected == event) else { return };
            unechoed.remove(at);
        }
        live(event);
    }

    /// The events the worker never echoed.
    pub fn take(&self) -> Vec<EventPayload> {
        std::mem::take(&mut *locked(&self.unechoed))
    }
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetch_event(url: &str) -> EventPayload {
        EventPayload::Fetch {
            method: "GET".into(),
            url: url.into(),
            final_url: None,
            status: Some(200),
            bytes: 2,
            ms: 1,
            code: None,
            error: None,
        }
    }

    #[test]
    fn the_ledger_records_echoed_fetch_events_once_and_drops_forgeries() {
        let ledger = FetchLedger::default();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let live = move |event: EventPayload| sink.lock().unwrap().push(event);
        ledger.expect(fetch_event("http://a/"));
        ledger.expect(fetch_event("http://b/"));
        ledger.forward(fetch_event("http://a/"), &live);
        ledger.forward(fetch_event("http://a/"), &live);
        ledger.forward(fetch_event("http://forged/"), &live);
        ledger.forward(EventPayload::Stdout { text: "x".into() }, &live);
        assert_eq!(*seen.lock().unwrap(), [fetch_event("http://a/"), EventPayload::Stdout { text: "x".into() }]);
        assert_eq!(ledger.take(), [fetch_event("http://b/")], "what was never echoed is left to record");
        assert!(ledger.take().is_empty());
    }

    #[tokio::test]
    async fn without_a_policy_every_request_is_refused_at_once_and_ids_are_used_once() {
        let mut fetches = JobFetches::new(None, Instant::now());
        let request = || FetchRequest {
            method: "GET".into(),
            url: "http://api.example.com/".into(),
            headers: Vec::new(),
            body: String::new(),
        };
        let answer = fetches.request(1, request()).unwrap().expect("an answer at once");
        assert!(answer.body.is_none());
        match &answer.event {
            EventPayload::Fetch { code: Some(code), status: None, .. } => assert_eq!(code, "ERR_FETCH_DISABLED"),
            other => panic!("{other:?}"),
        }
        let frame: Request = crate::protocol::decode(&answer.frame[4..]).unwrap();
        match frame {
            Request::FetchDone { id: 1, result: Err(refusal), event } => {
                assert_eq!(refusal.code, "ERR_FETCH_DISABLED");
                assert!(refusal.message.contains("add a `net` capability named `fetch`"));
                assert_eq!(event, answer.event);
            }
            other => panic!("{other:?}"),
        }
        assert!(fetches.request(1, request()).is_err(), "an id used twice breaks the protocol");
        assert!(fetches.abandon().is_empty());
    }

    #[tokio::test]
    async fn requests_left_when_the_job_ends_are_recorded_as_aborted() {
        let policy = FetchPolicy::from_config(serde_json::json!({"allow": ["192.0.2.1"]}).as_object().unwrap())
            .map(Arc::new)
            .ok();
        let mut fetches = JobFetches::new(policy, Instant::now() + std::time::Duration::from_secs(60));
        for id in 0..(MAX_CONCURRENT as u64 + 2) {
            let request = FetchRequest {
                method: "GET".into(),
                url: format!("http://192.0.2.1/{id}"),
                headers: Vec::new(),
                body: String::new(),
            };
            assert!(fetches.request(id, request).unwrap().is_none());
        }
        assert_eq!(fetches.tasks.len(), MAX_CONCURRENT, "the rest wait their turn");
        let aborted = fetches.abort(MAX_CONCURRENT as u64 + 1).expect("a waiting request");
        assert!(matches!(aborted, EventPayload::Fetch { code: Some(code), .. } if code == "ERR_FETCH_ABORTED"));
        assert!(fetches.abort(MAX_CONCURRENT as u64 + 1).is_none(), "once");
        assert!(fetches.abort(999).is_none(), "an id never asked");
        let events = fetches.abandon();
        assert_eq!(events.len(), MAX_CONCURRENT + 1);
        for (id, event) in events.iter().enumerate() {
            match event {
                EventPayload::Fetch { url, code: Some(code), status: None, .. } => {
                    assert_eq!(url, &format!("http://192.0.2.1/{id}"));
                    assert_eq!(code, "ERR_FETCH_ABORTED");
                }
                other => panic!("{other:?}"),
            }
        }
    }
}

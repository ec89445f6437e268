//! A session's event loop, as `node file.js` has one: a job ends when its
//! code has returned and no promise job, timer or host operation is left.
//! Microtasks run to exhaustion after the script and after every timer; a
//! timer waits for real (the worker sleeps, spending no CPU time); a promise
//! rejected with no handler by then ends the job with that reason, like an
//! uncaught exception, as does an error thrown by a callback.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Duration;

use boa_engine::builtins::promise::{OperationType, PromiseState};
use boa_engine::context::time::JsInstant;
use boa_engine::context::HostHooks;
use boa_engine::job::{GenericJob, IntervalJob, Job, JobExecutor, NativeAsyncJob, PromiseJob, TimeoutJob};
use boa_engine::object::builtins::JsPromise;
use boa_engine::object::JsObject;
use boa_engine::{js_string, Context, JsError, JsResult, JsValue};

/// Host operations in flight outside the engine, such as a `fetch` the
/// daemon performs for the worker. The event loop waits on them when it has
/// nothing else to run.
pub trait HostOps {
    /// Operations started and not answered yet.
    fn in_flight(&self) -> usize;
    /// Blocks until an answer arrives (and makes the future that waits for
    /// it ready) or `timeout` passes; `None` waits for the answer.
    fn wait(&self, timeout: Option<Duration>);
}

/// How long the loop naps while a native future is pending that no host
/// operation will wake.
const UNTRACKED_FUTURE_NAP: Duration = Duration::from_millis(1);

enum Timer {
    Timeout(TimeoutJob),
    Interval(IntervalJob),
}

impl Timer {
    fn cancelled(&self) -> bool {
        match self {
            Self::Timeout(job) => job.cancelled(),
            Self::Interval(job) => job.cancelled(),
        }
    }
}

/// The queues of one session's engine: boa's [`JobExecutor`], and the
/// loop that drains it.
#[derive(Default)]
pub struct EventLoop {
    promise_jobs: RefCell<VecDeque<PromiseJob>>,
    generic_jobs: RefCell<VecDeque<GenericJob>>,
    async_jobs: RefCell<VecDeque<NativeAsyncJob>>,
    /// Due time and order of scheduling, so equal delays run in order.
    timers: RefCell<BTreeMap<(JsInstant, u64), Timer>>,
    scheduled: Cell<u64>,
    host: RefCell<Option<Rc<dyn HostOps>>>,
    rejections: Rc<Rejections>,
}

/// Why [`EventLoop::run`] stopped before the loop was empty.
pub enum Stopped {
    /// A callback threw, or a promise was rejected with no handler.
    Threw(JsError),
    /// `stop` said so (a limit was hit); every pending job was dropped.
    Stopped,
}

impl EventLoop {
    pub fn new() -> Self {
        Self::default()
    }

    /// The host hooks that tell this loop about unhandled rejections; give
    /// them to the context this loop runs.
    pub fn hooks(&self) -> Rc<Rejections> {
        self.rejections.clone()
    }

    pub fn set_host(&self, host: Rc<dyn HostOps>) {
        *self.host.borrow_mut() = Some(host);
    }

    /// Runs until nothing is left to run: microtasks, due timers, then waits
    /// for the next timer or host answer. `awaited` is a promise the caller
    /// reads itself (a module's, a REPL `await`'s): its rejection is not
    /// unhandled. `stop` is asked between tasks.
    pub fn run(
        &self,
        context: &mut Context,
        awaited: Option<&JsPromise>,
        stop: &dyn Fn() -> bool,
    ) -> Result<(), Stopped> {
        let result = self.turn(context, awaited, stop);
        if result.is_err() {
            self.clear();
        }
        result
    }

    fn turn(&self, context: &mut Context, awaited: Option<&JsPromise>, stop: &dyn Fn() -> bool) -> Result<(), Stopped> {
        let context = RefCell::new(context);
        let mut futures: Vec<Pin<Box<dyn Future<Output = JsResult<JsValue>> + '_>>> = Vec::new();
        let mut task = TaskContext::from_waker(Waker::noop());
        loop {
            if stop() {
                return Err(Stopped::Stopped);
            }
            self.run_microtasks(&mut context.borrow_mut()).map_err(Stopped::Threw)?;
            if let Some(reason) = self.rejections.take_unhandled(awaited) {
                return Err(Stopped::Threw(JsError::from_opaque(reason)));
            }
            let started: Vec<NativeAsyncJob> = self.async_jobs.borrow_mut().drain(..).collect();
            for job in started {
                futures.push(Box::pin(job.call(&context)));
            }
            let before = futures.len();
            let mut failed = None;
            futures.retain_mut(|future| match future.as_mut().poll(&mut task) {
                Poll::Pending => true,
                Poll::Ready(Ok(_)) => false,
                Poll::Ready(Err(err)) => {
                    failed.get_or_insert(err);
                    false
                }
            });
            if let Some(err) = failed {
                return Err(Stopped::Threw(err));
            }
            if futures.len() < before || self.has_microtasks() {
                continue;
            }
            let now = context.borrow().clock().now();
            if let Some(timer) = self.take_due(now) {
                let mut context = context.borrow_mut();
                match timer {
                    Timer::Timeout(job) => job.call(&mut context).map(drop),
                    Timer::Interval(job) => {
                        let result = job.call(&mut context).map(drop);
                        let next = context.clock().now() + job.interval();
                        self.schedule(next, Timer::Interval(job));
                        result
                    }
                }
                .map_err(Stopped::Threw)?;
                continue;
            }
            let next = self.next_due();
            if next.is_none() && futures.is_empty() {
                return Ok(());
            }
            let timeout = next.map(|due| {
                let now = context.borrow().clock().now();
                if due > now {
                    Duration::from_nanos((due - now).as_nanos() as u64)
                } else {
                    Duration::ZERO
                }
            });
            let host = self.host.borrow().clone().filter(|host| host.in_flight() > 0);
            match (host, timeout) {
                (Some(host), timeout) if !futures.is_empty() => host.wait(timeout),
                (_, Some(timeout)) if futures.is_empty() => std::thread::sleep(timeout),
                (_, timeout) => {
                    std::thread::sleep(timeout.map_or(UNTRACKED_FUTURE_NAP, |t| t.min(UNTRACKED_FUTURE_NAP)))
                }
            }
        }
    }

    /// Promise jobs and generic jobs, until none is left.
    fn run_microtasks(&self, context: &mut Context) -> JsResult<()> {
        loop {
            let job = self.promise_jobs.borrow_mut().pop_front();
            if let Some(job) = job {
                job.call(context)?;
                continue;
            }
            let job = self.generic_jobs.borrow_mut().pop_front();
            match job {
                Some(job) => job.call(context).map(drop)?,
                None => {
                    context.clear_kept_objects();
                    return Ok(());
                }
            }
        }
    }

    fn has_microtasks(&self) -> bool {
        !self.promise_jobs.borrow().is_empty() || !self.generic_jobs.borrow().is_empty()
    }

    fn schedule(&self, due: JsInstant, timer: Timer) {
        let order = self.scheduled.get();
        self.scheduled.set(order + 1);
        self.timers.borrow_mut().insert((due, order), timer);
    }

    /// The first timer due by `now` that was not cleared.
    fn take_due(&self, now: JsInstant) -> Option<Timer> {
        let mut timers = self.timers.borrow_mut();
        while let Some(entry) = timers.first_entry() {
            if entry.get().cancelled() {
                entry.remove();
                continue;
            }
            if entry.key().0 > now {
                return None;
            }
            return Some(entry.remove());
        }
        None
    }

    /// When the next timer that was not cleared is due.
    fn next_due(&self) -> Option<JsInstant> {
        let mut timers = self.timers.borrow_mut();
        timers.retain(|_, timer| !timer.cancelled());
        timers.keys().next().map(|(due, _)| *due)
    }

    /// Drops every pending job and timer: a job that stopped leaves nothing
    /// behind for the next one.
    pub fn clear(&self) {
        self.promise_jobs.borrow_mut().clear();
        self.generic_jobs.borrow_mut().clear();
        self.async_jobs.borrow_mut().clear();
        self.timers.borrow_mut().clear();
        self.rejections.clear();
    }
}

impl JobExecutor for EventLoop {
    fn enqueue_job(self: Rc<Self>, job: Job, context: &mut Context) {
        match job {
            Job::PromiseJob(job) => self.promise_jobs.borrow_mut().push_back(job),
            Job::GenericJob(job) => self.generic_jobs.borrow_mut().push_back(job),
            Job::AsyncJob(job) => self.async_jobs.borrow_mut().push_back(job),
            Job::TimeoutJob(job) => {
                let due = context.clock().now() + job.timeout();
                self.schedule(due, Timer::Timeout(job));
            }
            Job::IntervalJob(job) => {
                let due = context.clock().now() + job.interval();
                self.schedule(due, Timer::Interval(job));
            }
            // Cleanup callbacks are optional (see boa's `Job`); a session's
            // jobs must not wait for the garbage collector.
            Job::FinalizationRegistryCleanupJob(_) => {}
            _ => {}
        }
    }

    /// For boa's own callers (`Context::run_jobs`): the loop with no limit.
    fn run_jobs(self: Rc<Self>, context: &mut Context) -> JsResult<()> {
        match self.run(context, None, &|| false) {
            Ok(()) | Err(Stopped::Stopped) => Ok(()),
            Err(Stopped::Threw(err)) => Err(err),
        }
    }
}

/// Promises rejected while no handler was attached, in order
/// (HostPromiseRejectionTracker): any left after the microtasks ran are
/// unhandled.
#[derive(Default)]
pub struct Rejections {
    pending: RefCell<Vec<JsObject>>,
}

impl Rejections {
    /// The reason of the first promise still rejected with no handler,
    /// other than `awaited`.
    fn take_unhandled(&self, awaited: Option<&JsPromise>) -> Option<JsValue> {
        let mut pending = self.pending.borrow_mut();
        if let Some(awaited) = awaited {
            let awaited = JsObject::from(awaited.clone());
            pending.retain(|promise| !JsObject::equals(promise, &awaited));
        }
        if pending.is_empty() {
            return None;
        }
        let first = pending.remove(0);
        pending.clear();
        let reason = match JsPromise::from_object(first).map(|p| p.state()) {
            Ok(PromiseState::Rejected(reason)) => reason,
            _ => js_string!("a promise was rejected with no handler").into(),
        };
        Some(reason)
    }

    fn clear(&self) {
        self.pending.borrow_mut().clear();
    }
}

impl HostHooks for Rejections {
    fn promise_rejection_tracker(
        &self,
        promise: &JsObject<boa_engine::builtins::promise::Promise>,
        operation: OperationType,
        _context: &mut Context,
    ) {
        let promise = promise.clone().upcast();
        let mut pending = self.pending.borrow_mut();
        match operation {
            OperationType::Reject => pending.push(promise),
            OperationType::Handle => pending.retain(|p| !JsObject::equals(p, &promise)),
        }
    }
}

//! Console capture for the worker half: boa's console `Logger` turns every
//! console call into a `console` event, counts events and output bytes against
//! the limits while the code runs, and streams kept events to a sink.

use std::cell::RefCell;
use std::rc::Rc;

use boa_engine::error::{EngineError, PanicError};
use boa_engine::native_function::NativeFunction;
use boa_engine::object::FunctionObjectBuilder;
use boa_engine::{js_string, Context, JsError, JsNativeError, JsObject, JsResult, JsString, JsValue};
use boa_gc::{Finalize, Trace};
use boa_runtime::{Console, ConsoleState, Logger};
use vm_domain::event::{ConsoleLevel, EventPayload};
use vm_domain::ports::LimitHit;
use vm_domain::template::Limits;

use super::preview;

/// Console methods whose arguments are formatted the Node way before boa's
/// console sees them as one string.
const NODE_FORMATTED: [&str; 6] = ["log", "info", "warn", "error", "debug", "trace"];

/// Installs `console` with output going to `capture`. The printing methods
/// format their arguments like Node's `util.format` (`%s %d %i %f %j %o %O
/// %c`, objects as `{ a: 1 }`); the rest (`assert`, `count`, `time`,
/// `group`, `table`, …) are boa's own.
pub fn install(capture: Rc<RefCell<Capture>>, context: &mut Context) -> JsResult<()> {
    Console::register_with_logger(CaptureLogger::new(capture), context)?;
    let console = context
        .global_object()
        .get(Console::NAME, context)?
        .as_object()
        .ok_or_else(|| JsNativeError::typ().with_message("console is not an object"))?;
    for name in NODE_FORMATTED {
        let boa_method = console
            .get(js_string!(name), context)?
            .as_object()
            .ok_or_else(|| JsNativeError::typ().with_message(format!("console.{name} is missing")))?;
        let method = NativeFunction::from_copy_closure_with_captures(
            |this, args, boa_method: &JsObject, context| {
                let text = preview::format_console(args, context)?;
                boa_method.call(this, &[JsString::from(text.as_str()).into()], context)
            },
            boa_method,
        );
        let method = FunctionObjectBuilder::new(context.realm(), method).name(js_string!(name)).length(0).build();
        console.set(js_string!(name), JsValue::from(method), true, context)?;
    }
    Ok(())
}

/// Where kept events go: the worker's channel to the daemon, as they happen.
pub trait EventSink {
    fn send(&mut self, event: &EventPayload);
}

/// A sink that drops everything: a zygote's, before any session owns it.
pub struct Discard;

impl EventSink for Discard {
    fn send(&mut self, _: &EventPayload) {}
}

/// The budget of the job in progress: counts console (and `exec` output)
/// events and bytes against the limits and passes kept events to the sink.
///
/// `max_events` and `max_output_kb` count these events only: the closing
/// `value` or `exception` event of a job is always sent and never counted.
pub struct Capture {
    sink: Box<dyn EventSink>,
    events: u64,
    output_bytes: u64,
    max_events: u64,
    max_output_kb: u64,
    /// `settings.runtime.console`: when false, console calls succeed and
    /// produce nothing.
    keep: bool,
    hit: Option<LimitHit>,
}

impl Capture {
    pub fn new(limits: &Limits, keep: bool) -> Self {
        Self {
            sink: Box::new(Discard),
            events: 0,
            output_bytes: 0,
            max_events: limits.max_events,
            max_output_kb: limits.max_output_kb,
            keep,
            hit: None,
        }
    }

    /// Takes a session's limits and console switch (a forked worker gets
    /// its zygote's capture).
    pub fn configure(&mut self, limits: &Limits, keep: bool) {
        self.max_events = limits.max_events;
        self.max_output_kb = limits.max_output_kb;
        self.keep = keep;
    }

    pub fn set_sink(&mut self, sink: Box<dyn EventSink>) {
        self.sink = sink;
    }

    /// Whether console output is kept at all.
    pub fn keeps(&self) -> bool {
        self.keep
    }

    /// Sends `event` unless it would take the job past a limit. Once a limit
    /// is hit it stays hit until [`Capture::finish`], and nothing more is sent.
    pub fn record(&mut self, event: EventPayload) -> Result<(), LimitHit> {
        if let Some(hit) = self.hit {
            return Err(hit);
        }
        if !self.keep && matches!(event, EventPayload::Console { .. }) {
            return Ok(());
        }
        let bytes = self.output_bytes + event.output_bytes() as u64;
        let hit = if self.events >= self.max_events {
            Some(LimitHit::Events { max_events: self.max_events })
        } else if bytes > self.max_output_kb.saturating_mul(1024) {
            Some(LimitHit::Output { max_output_kb: self.max_output_kb })
        } else {
            None
        };
        if let Some(hit) = hit {
            self.hit = Some(hit);
            return Err(hit);
        }
        self.output_bytes = bytes;
        self.events += 1;
        self.sink.send(&event);
        Ok(())
    }

    /// Bytes of output the job may still produce before its limit.
    pub fn output_left(&self) -> u64 {
        self.max_output_kb.saturating_mul(1024).saturating_sub(self.output_bytes)
    }

    /// Sends a job's closing event, outside the budget.
    pub fn close_with(&mut self, event: EventPayload) {
        self.sink.send(&event);
    }

    /// The limit hit by the job in progress, if any.
    pub fn hit(&self) -> Option<LimitHit> {
        self.hit
    }

    /// Ends the job's budget and says whether a limit stopped it.
    pub fn finish(&mut self) -> Option<LimitHit> {
        self.events = 0;
        self.output_bytes = 0;
        self.hit.take()
    }
}

/// A `Logger` that records into a shared [`Capture`]. When a limit is hit it
/// returns an uncatchable engine error, so the script stops at once even
/// inside `try`/`catch`.
#[derive(Trace, Finalize)]
pub struct CaptureLogger {
    /// Shared with the engine, which reads the events after each job; the
    /// capture holds no JavaScript values, so there is nothing to trace.
    #[unsafe_ignore_trace]
    capture: Rc<RefCell<Capture>>,
}

impl CaptureLogger {
    pub fn new(capture: Rc<RefCell<Capture>>) -> Self {
        Self { capture }
    }

    fn emit(&self, level: ConsoleLevel, msg: String, state: &ConsoleState) -> JsResult<()> {
        let text = indent(msg, state.indent());
        self.capture.borrow_mut().record(EventPayload::Console { level, text }).map_err(limit_error)
    }
}

impl Logger for CaptureLogger {
    fn trace(&self, msg: String, state: &ConsoleState, context: &mut Context) -> JsResult<()> {
        let mut text = if msg.is_empty() { "Trace".to_owned() } else { format!("Trace: {msg}") };
        for frame in context.stack_trace() {
            let name = frame.code_block().name().to_std_string_escaped();
            let name = if name.is_empty() { "<anonymous>".to_owned() } else { name };
            text.push_str("\n    at ");
            text.push_str(&name);
        }
        self.emit(ConsoleLevel::Debug, text, state)
    }

    fn debug(&self, msg: String, state: &ConsoleState, _: &mut Context) -> JsResult<()> {
        self.emit(ConsoleLevel::Debug, msg, state)
    }

    fn log(&self, msg: String, state: &ConsoleState, _: &mut Context) -> JsResult<()> {
        self.emit(ConsoleLevel::Log, msg, state)
    }

    fn info(&self, msg: String, state: &ConsoleState, _: &mut Context) -> JsResult<()> {
        self.emit(ConsoleLevel::Info, msg, state)
    }

    fn warn(&self, msg: String, state: &ConsoleState, _: &mut Context) -> JsResult<()> {
        self.emit(ConsoleLevel::Warn, msg, state)
    }

    fn error(&self, msg: String, state: &ConsoleState, _: &mut Context) -> JsResult<()> {
        self.emit(ConsoleLevel::Error, msg, state)
    }
}

/// Indents every line by the console's group depth, as Node does.
fn indent(msg: String, width: usize) -> String {
    if width == 0 {
        return msg;
    }
    let pad = " ".repeat(width);
    msg.lines().map(|line| format!("{pad}{line}")).collect::<Vec<_>>().join("\n")
}

/// An error JavaScript cannot catch; the engine recognises the stop by the
/// capture's latched limit, not by this message.
pub fn limit_error(hit: LimitHit) -> JsError {
    EngineError::from(PanicError::new(format!("execution stopped: {hit:?} limit reached"))).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink the test can read.
    #[derive(Clone, Default)]
    struct Collect(Rc<RefCell<Vec<EventPayload>>>);

    impl EventSink for Collect {
        fn send(&mut self, event: &EventPayload) {
            self.0.borrow_mut().push(event.clone());
        }
    }

    fn capture(limits: Limits, keep: bool) -> (Capture, Collect) {
        let sink = Collect::default();
        let mut capture = Capture::new(&limits, keep);
        capture.set_sink(Box::new(sink.clone()));
        (capture, sink)
    }

    fn line(text: &str) -> EventPayload {
        EventPayload::Console { level: ConsoleLevel::Log, text: text.into() }
    }

    #[test]
    fn the_event_that_would_pass_max_events_is_dropped_and_the_limit_latches() {
        let (mut capture, sink) = capture(Limits { max_events: 2, ..Limits::default() }, true);
        assert!(capture.record(line("a")).is_ok());
        assert!(capture.record(line("b")).is_ok());
        assert_eq!(capture.record(line("c")), Err(LimitHit::Events { max_events: 2 }));
        assert_eq!(capture.record(line("")), Err(LimitHit::Events { max_events: 2 }));
        assert_eq!(*sink.0.borrow(), [line("a"), line("b")]);
        assert_eq!(capture.finish(), Some(LimitHit::Events { max_events: 2 }));
        assert_eq!(capture.finish(), None);
        assert!(capture.record(line("next job")).is_ok(), "a new job has a fresh budget");
    }

    #[test]
    fn output_bytes_may_reach_but_not_pass_max_output_kb() {
        let (mut capture, _) = capture(Limits { max_output_kb: 1, ..Limits::default() }, true);
        assert!(capture.record(line(&"x".repeat(1000))).is_ok());
        assert!(capture.record(line(&"x".repeat(24))).is_ok());
        assert_eq!(capture.output_left(), 0);
        assert_eq!(capture.record(line("x")), Err(LimitHit::Output { max_output_kb: 1 }));
    }

    #[test]
    fn a_disabled_console_keeps_nothing_and_hits_no_limit() {
        let (mut capture, sink) = capture(Limits { max_events: 1, ..Limits::default() }, false);
        for _ in 0..5 {
            assert!(capture.record(line("a")).is_ok());
        }
        assert!(sink.0.borrow().is_empty());
        assert_eq!(capture.finish(), None);
    }

    #[test]
    fn closing_events_are_sent_outside_the_budget() {
        let (mut capture, sink) = capture(Limits { max_events: 1, ..Limits::default() }, true);
        capture.record(line("a")).unwrap();
        capture.close_with(EventPayload::Stdout { text: "closing".into() });
        assert_eq!(sink.0.borrow().len(), 2);
    }

    #[test]
    fn grouped_lines_are_indented_line_by_line() {
        assert_eq!(indent("a\nb".into(), 2), "  a\n  b");
        assert_eq!(indent("a".into(), 0), "a");
    }
}

//! Executions running in this process, as they happen: each one's journal
//! (its events so far, numbered and timestamped as they arrive, and how many
//! of them are stored), the readers following it, and a cancel request.
//! Readers get what happened before they came and everything after, with no
//! gap and no duplicate: both are taken under one lock.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use futures::channel::mpsc::{unbounded, UnboundedReceiver, UnboundedSender};

use crate::event::{Event, EventPayload};
use crate::execution::Execution;
use crate::ids::{ExecutionId, SessionId};
use crate::Timestamp;

/// What a reader of a running execution receives, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Followed {
    Event(Event),
    /// The execution ended (in any status); nothing follows.
    End(Execution),
}

/// Events are stored once this many are waiting, without waiting for the
/// next tick of the flusher.
pub(crate) const FLUSH_AT_EVENTS: usize = 256;

struct Journal {
    session: SessionId,
    events: Vec<Event>,
    /// `events[..stored]` are in the store.
    stored: usize,
    readers: Vec<UnboundedSender<Followed>>,
    cancel_requested: bool,
    /// Wakes the flusher when [`FLUSH_AT_EVENTS`] are waiting.
    flush_now: Option<UnboundedSender<()>>,
}

/// The journals of the executions running here. A std `Mutex`: held only to
/// read or change a journal, never across an `.await`.
#[derive(Default)]
pub(crate) struct LiveExecutions(Mutex<HashMap<ExecutionId, Journal>>);

impl LiveExecutions {
    fn journals(&self) -> MutexGuard<'_, HashMap<ExecutionId, Journal>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts the journal of an execution about to run; the returned
    /// receiver is woken when many events wait to be stored.
    pub fn open(&self, id: ExecutionId, session: SessionId) -> UnboundedReceiver<()> {
        let (tx, rx) = unbounded();
        let journal = Journal {
            session,
            events: Vec::new(),
            stored: 0,
            readers: Vec::new(),
            cancel_requested: false,
            flush_now: Some(tx),
        };
        self.journals().insert(id, journal);
        rx
    }

    /// Numbers an event, stamps it with `at` and hands it to every reader;
    /// returns it as recorded (`None` when the execution does not run here).
    pub fn record(&self, id: ExecutionId, payload: EventPayload, at: Timestamp) -> Option<Event> {
        let mut journals = self.journals();
        let journal = journals.get_mut(&id)?;
        let event = Event { execution_id: id, seq: journal.events.len() as i64 + 1, ts: at, payload };
        journal.readers.retain(|reader| reader.unbounded_send(Followed::Event(event.clone())).is_ok());
        journal.events.push(event.clone());
        if journal.events.len() - journal.stored >= FLUSH_AT_EVENTS {
            if let Some(flush) = &journal.flush_now {
                let _ = flush.unbounded_send(());
            }
        }
        Some(event)
    }

    /// The events not stored yet, in order (copies: they stay in the
    /// journal until [`LiveExecutions::mark_stored`]).
    pub fn unstored(&self, id: ExecutionId) -> Vec<Event> {
        self.journals().get(&id).map(|j| j.events[j.stored..].to_vec()).unwrap_or_default()
    }

    /// The first `count` unstored events are now in the store.
    pub fn mark_stored(&self, id: ExecutionId, count: usize) {
        if let Some(journal) = self.journals().get_mut(&id) {
            journal.stored = (journal.stored + count).min(journal.events.len());
        }
    }

    /// Every event so far.
    pub fn events(&self, id: ExecutionId) -> Vec<Event> {
        self.journals().get(&id).map(|j| j.events.clone()).unwrap_or_default()
    }

    /// The execution ended and is stored (or queued to be): readers get the
    /// end and the journal goes.
    pub fn close(&self, execution: &Execution) {
        if let Some(journal) = self.journals().remove(&execution.id) {
            for reader in journal.readers {
                let _ = reader.unbounded_send(Followed::End(execution.clone()));
            }
        }
    }

    /// The journal goes without an end: the execution never started.
    pub fn discard(&self, id: ExecutionId) {
        self.journals().remove(&id);
    }

    /// Events after `after_seq` so far and a receiver for the rest (ending
    /// with [`Followed::End`]); `None` when the execution does not run here.
    pub fn follow(&self, id: ExecutionId, after_seq: i64) -> Option<(Vec<Event>, UnboundedReceiver<Followed>)> {
        let mut journals = self.journals();
        let journal = journals.get_mut(&id)?;
        let skip = usize::try_from(after_seq.max(0)).unwrap_or(usize::MAX).min(journal.events.len());
        let backlog = journal.events[skip..].to_vec();
        let (tx, rx) = unbounded();
        journal.readers.push(tx);
        Some((backlog, rx))
    }

    /// Asks for the execution to be cancelled; returns its session, or
    /// `None` when it does not run here.
    pub fn request_cancel(&self, id: ExecutionId) -> Option<SessionId> {
        let mut journals = self.journals();
        let journal = journals.get_mut(&id)?;
        journal.cancel_requested = true;
        Some(journal.session)
    }

    /// The executions running here now.
    pub fn running(&self) -> Vec<ExecutionId> {
        self.journals().keys().copied().collect()
    }

    pub fn cancel_requested(&self, id: ExecutionId) -> bool {
        self.journals().get(&id).is_some_and(|j| j.cancel_requested)
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;
    use crate::event::ConsoleLevel;
    use crate::services::fixtures::fixed_clock;

    fn line(text: &str) -> EventPayload {
        EventPayload::Console { level: ConsoleLevel::Log, text: text.into() }
    }

    #[test]
    fn a_reader_gets_the_backlog_then_live_events_then_the_end_without_gap_or_duplicate() {
        let live = LiveExecutions::default();
        let (id, session) = (ExecutionId::new(), SessionId::new());
        let _flush = live.open(id, session);
        let now = fixed_clock().now();
        live.record(id, line("a"), now);
        live.record(id, line("b"), now);
        let (backlog, mut rx) = live.follow(id, 1).unwrap();
        assert_eq!(backlog.iter().map(|e| e.seq).collect::<Vec<_>>(), [2]);
        live.record(id, line("c"), now);
        let execution = crate::services::fixtures::an_execution(id, session);
        live.close(&execution);
        let rest: Vec<Followed> = futures::executor::block_on(rx.by_ref().collect());
        assert!(matches!(&rest[0], Followed::Event(e) if e.seq == 3));
        assert_eq!(rest[1], Followed::End(execution));
        assert_eq!(rest.len(), 2);
        assert!(live.follow(id, 0).is_none(), "the journal is gone after the end");
    }

    #[test]
    fn stored_events_are_not_handed_out_again_and_many_waiting_wake_the_flusher() {
        let live = LiveExecutions::default();
        let id = ExecutionId::new();
        let mut flush = live.open(id, SessionId::new());
        let now = fixed_clock().now();
        for i in 0..FLUSH_AT_EVENTS - 1 {
            live.record(id, line(&i.to_string()), now);
        }
        assert!(flush.try_recv().is_err(), "not yet");
        live.record(id, line("last"), now);
        assert!(matches!(flush.try_recv(), Ok(())));
        let batch = live.unstored(id);
        assert_eq!(batch.len(), FLUSH_AT_EVENTS);
        live.mark_stored(id, 10);
        assert_eq!(live.unstored(id)[0].seq, 11);
        assert_eq!(live.events(id).len(), FLUSH_AT_EVENTS);
    }

    #[test]
    fn a_cancel_request_names_the_session_only_while_the_execution_runs_here() {
        let live = LiveExecutions::default();
        let (id, session) = (ExecutionId::new(), SessionId::new());
        assert_eq!(live.request_cancel(id), None);
        let _flush = live.open(id, session);
        assert!(!live.cancel_requested(id));
        assert_eq!(live.request_cancel(id), Some(session));
        assert!(live.cancel_requested(id));
    }
}

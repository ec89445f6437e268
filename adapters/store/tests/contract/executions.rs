//! `ExecutionStore`: round trips, finishing in one transaction, listing,
//! event cursors, volume and concurrent writers.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::json;
use vm_domain::event::{ConsoleLevel, Event, EventPayload, SystemLevel};
use vm_domain::execution::{Execution, ExecutionKind, ExecutionStatus};
use vm_domain::ids::{ExecutionId, SessionId};

use crate::harness::Harness;
use crate::seed::{a_session, at, events, execution_with_events, finished, running};

fn ids(executions: &[Execution]) -> Vec<ExecutionId> {
    executions.iter().map(|e| e.id).collect()
}

fn seqs(events: &[Event]) -> Vec<i64> {
    events.iter().map(|e| e.seq).collect()
}

contract!(an_execution_reads_back_as_it_was_inserted, async |h: &Harness| {
    let session = a_session(h).await;
    let mut run_file = running(session.id, at(1));
    run_file.kind = ExecutionKind::RunFile;
    run_file.input = None;
    run_file.path = Some("scripts/etl.js".into());
    run_file.args = json!({ "n": 3, "tags": ["a", "b"], "nested": { "ok": true } }).as_object().cloned().unwrap();
    run_file.env = BTreeMap::from([("MODE".into(), "test".into()), ("EMPTY".into(), String::new())]);
    h.executions.insert(&run_file).await.unwrap();

    assert_eq!(h.executions.get(run_file.id).await.unwrap(), Some(run_file));
    assert_eq!(h.executions.get(ExecutionId::new()).await.unwrap(), None);
});

contract!(an_execution_of_a_missing_session_is_session_not_found, async |h: &Harness| {
    let orphan = running(SessionId::new(), at(1));
    let err = h.executions.insert(&orphan).await.unwrap_err();
    assert_eq!(err.code(), "SESSION_NOT_FOUND");
    assert_eq!(h.executions.get(orphan.id).await.unwrap(), None);
});

contract!(finishing_writes_the_final_state_and_all_events_together, async |h: &Harness| {
    let session = a_session(h).await;
    let started = running(session.id, at(1));
    h.executions.insert(&started).await.unwrap();
    assert!(h.executions.events_after(started.id, 0).await.unwrap().is_empty());

    let mut failed = finished(&started, 3);
    failed.status = ExecutionStatus::Error;
    failed.result = None;
    failed.error = Some(json!({ "code": "EXCEPTION", "message": "TypeError: x is undefined" }));
    let recorded = events(&started, 3);
    h.executions.finish(&failed, &recorded).await.unwrap();

    assert_eq!(h.executions.get(started.id).await.unwrap(), Some(failed));
    assert_eq!(h.executions.events_after(started.id, 0).await.unwrap(), recorded);
});

contract!(a_finish_that_fails_leaves_the_execution_running_without_events, async |h: &Harness| {
    let session = a_session(h).await;
    let started = running(session.id, at(1));
    h.executions.insert(&started).await.unwrap();
    let mut clashing = events(&started, 1500);
    clashing[1200].seq = 7;

    let err = h.executions.finish(&finished(&started, 1500), &clashing).await.unwrap_err();

    assert_eq!(err.code(), "INTERNAL");
    assert_eq!(h.executions.get(started.id).await.unwrap(), Some(started.clone()));
    assert!(h.executions.events_after(started.id, 0).await.unwrap().is_empty());
    assert_eq!(h.count_rows("execution_events", "execution_id", started.id).await, 0);
    let retried = finished(&started, 2);
    h.executions.finish(&retried, &events(&started, 2)).await.expect("a later, valid finish succeeds");
    assert_eq!(h.executions.get(started.id).await.unwrap(), Some(retried));
});

contract!(finishing_a_missing_execution_is_execution_not_found, async |h: &Harness| {
    let ghost = running(SessionId::new(), at(1));
    let err = h.executions.finish(&finished(&ghost, 1), &events(&ghost, 1)).await.unwrap_err();
    assert_eq!(err.code(), "EXECUTION_NOT_FOUND");
});

contract!(events_of_another_execution_are_refused_by_finish, async |h: &Harness| {
    let session = a_session(h).await;
    let mine = running(session.id, at(1));
    let other = running(session.id, at(2));
    h.executions.insert(&mine).await.unwrap();

    let err = h.executions.finish(&finished(&mine, 1), &events(&other, 1)).await.unwrap_err();

    assert_eq!(err.code(), "INTERNAL");
    assert_eq!(h.executions.get(mine.id).await.unwrap(), Some(mine));
});

contract!(executions_are_listed_newest_first_within_the_limit, async |h: &Harness| {
    let one = a_session(h).await;
    let two = a_session(h).await;
    let e1 = running(one.id, at(1));
    let e2 = running(two.id, at(2));
    let e3 = running(one.id, at(3));
    let e4 = running(one.id, at(3));
    for e in [&e1, &e2, &e3, &e4] {
        h.executions.insert(e).await.unwrap();
    }

    assert_eq!(ids(&h.executions.list(None, 50).await.unwrap()), [e4.id, e3.id, e2.id, e1.id]);
    assert_eq!(ids(&h.executions.list(None, 2).await.unwrap()), [e4.id, e3.id]);
    assert_eq!(ids(&h.executions.list(Some(one.id), 50).await.unwrap()), [e4.id, e3.id, e1.id]);
    assert_eq!(ids(&h.executions.list(Some(one.id), 1).await.unwrap()), [e4.id]);
    assert_eq!(ids(&h.executions.list(Some(two.id), 50).await.unwrap()), [e2.id]);
    assert!(h.executions.list(Some(SessionId::new()), 50).await.unwrap().is_empty());
});

contract!(events_after_a_cursor_come_back_in_seq_order, async |h: &Harness| {
    let execution = execution_with_events(h, 5).await;
    let neighbour = execution_with_events(h, 3).await;

    assert_eq!(seqs(&h.executions.events_after(execution.id, 0).await.unwrap()), [1, 2, 3, 4, 5]);
    assert_eq!(seqs(&h.executions.events_after(execution.id, 2).await.unwrap()), [3, 4, 5]);
    assert!(h.executions.events_after(execution.id, 5).await.unwrap().is_empty());
    assert_eq!(seqs(&h.executions.events_after(neighbour.id, -1).await.unwrap()), [1, 2, 3]);

    let mut cursor = 0;
    let mut pages = Vec::new();
    loop {
        let page: Vec<_> = h.executions.events_after(execution.id, cursor).await.unwrap().into_iter().take(2).collect();
        let Some(last) = page.last() else { break };
        cursor = last.seq;
        pages.push(seqs(&page));
    }
    assert_eq!(pages, [vec![1, 2], vec![3, 4], vec![5]]);
});

contract!(every_event_type_round_trips, async |h: &Harness| {
    let session = a_session(h).await;
    let started = running(session.id, at(1));
    h.executions.insert(&started).await.unwrap();
    let payloads = [
        EventPayload::InputEcho { text: "1 + 1".into() },
        EventPayload::Console { level: ConsoleLevel::Warn, text: "careful \u{1F600} \"quoted\"".into() },
        EventPayload::Value { kind: "number".into(), preview: "2".into(), json: Some(json!(2)) },
        EventPayload::Value { kind: "function".into(), preview: "[Function: f]".into(), json: None },
        EventPayload::Exception { message: "TypeError: x".into(), stack: "at <eval>:1:1".into() },
        EventPayload::System { message: "wall_ms limit reached".into(), level: SystemLevel::Error },
        EventPayload::Stdout { text: "out\n".into() },
        EventPayload::Stderr { text: "err\n".into() },
    ];
    let recorded: Vec<_> = payloads
        .into_iter()
        .zip(1..)
        .map(|(payload, seq)| Event { execution_id: started.id, seq, ts: at(seq), payload })
        .collect();

    h.executions.finish(&finished(&started, recorded.len()), &recorded).await.unwrap();

    assert_eq!(h.executions.events_after(started.id, 0).await.unwrap(), recorded);
});

contract!(ten_thousand_events_are_stored_by_one_finish, async |h: &Harness| {
    let session = a_session(h).await;
    let started = running(session.id, at(1));
    h.executions.insert(&started).await.unwrap();
    let recorded = events(&started, 10_000);

    let clock = Instant::now();
    h.executions.finish(&finished(&started, recorded.len()), &recorded).await.unwrap();
    let took = clock.elapsed();

    assert!(took < Duration::from_secs(10), "finishing with 10,000 events took {took:?}");
    let stored = h.executions.events_after(started.id, 0).await.unwrap();
    assert_eq!(stored.len(), 10_000);
    assert_eq!(stored.first(), recorded.first());
    assert_eq!(stored.last(), recorded.last());
    assert_eq!(seqs(&h.executions.events_after(started.id, 9_997).await.unwrap()), [9_998, 9_999, 10_000]);
});

contract!(concurrent_writers_all_succeed, async |h: &Harness| {
    const WRITERS: usize = 8;
    const EXECUTIONS_EACH: usize = 15;
    const EVENTS_EACH: usize = 40;
    let session = a_session(h).await;
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let store = h.executions.clone();
            tokio::spawn(async move {
                for n in 0..EXECUTIONS_EACH {
                    let started = running(session.id, at((writer * EXECUTIONS_EACH + n) as i64));
                    store.insert(&started).await?;
                    store.finish(&finished(&started, EVENTS_EACH), &events(&started, EVENTS_EACH)).await?;
                }
                Ok::<_, vm_domain::DomainError>(())
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("the writer task ran").expect("every write succeeds");
    }

    let all = h.executions.list(Some(session.id), 1000).await.unwrap();
    assert_eq!(all.len(), WRITERS * EXECUTIONS_EACH);
    assert!(all.iter().all(|e| e.status == ExecutionStatus::Ok));
    assert_eq!(h.count_rows("executions", "session_id", session.id).await, (WRITERS * EXECUTIONS_EACH) as i64);
    for e in all.iter().step_by(17) {
        assert_eq!(h.executions.events_after(e.id, 0).await.unwrap().len(), EVENTS_EACH);
    }
});

contract!(running_lists_unfinished_executions_oldest_first, async |h: &Harness| {
    let session = a_session(h).await;
    let later = running(session.id, at(2));
    let earliest = running(session.id, at(1));
    let done = running(session.id, at(0));
    let tied = running(session.id, at(2));
    for e in [&later, &earliest, &done, &tied] {
        h.executions.insert(e).await.unwrap();
    }
    h.executions.finish(&finished(&done, 0), &[]).await.unwrap();

    assert_eq!(ids(&h.executions.running().await.unwrap()), [earliest.id, later.id, tied.id]);
});

contract!(nul_characters_in_input_output_and_errors_round_trip, async |h: &Harness| {
    let mut crashed = a_session(h).await;
    crashed.status = vm_domain::session::SessionStatus::Crashed;
    crashed.last_error = Some("startup threw: bad \u{0}byte".into());
    h.sessions.update_state(&crashed).await.unwrap();
    let mut started = running(crashed.id, at(1));
    started.input = Some("console.log('a\u{0}b')".into());
    h.executions.insert(&started).await.unwrap();
    let mut done = finished(&started, 1);
    done.result = Some(json!("a\u{0}b"));
    let recorded = vec![Event {
        execution_id: started.id,
        seq: 1,
        ts: at(1),
        payload: EventPayload::Console { level: ConsoleLevel::Log, text: "a\u{0}b".into() },
    }];

    h.executions.finish(&done, &recorded).await.unwrap();

    assert_eq!(h.sessions.get(crashed.id).await.unwrap(), Some(crashed));
    assert_eq!(h.executions.get(started.id).await.unwrap(), Some(done));
    assert_eq!(h.executions.events_after(started.id, 0).await.unwrap(), recorded);
});

/// Console events `seqs` of `execution`, each stamped `seq` seconds after
/// it started, so that every event has its own `ts`.
fn live_events(execution: &Execution, seqs: std::ops::RangeInclusive<i64>) -> Vec<Event> {
    seqs.map(|seq| Event {
        execution_id: execution.id,
        seq,
        ts: execution.started_at + chrono::Duration::seconds(seq),
        payload: EventPayload::Console { level: ConsoleLevel::Log, text: format!("live {seq}") },
    })
    .collect()
}

contract!(events_appended_while_running_then_a_finishing_tail_read_back_as_one_trail, async |h: &Harness| {
    let session = a_session(h).await;
    let started = running(session.id, at(1));
    h.executions.insert(&started).await.unwrap();
    let first = live_events(&started, 1..=3);
    let second = live_events(&started, 4..=5);

    h.executions.append_events(started.id, &first).await.unwrap();
    assert_eq!(h.executions.events_after(started.id, 0).await.unwrap(), first);
    h.executions.append_events(started.id, &second).await.unwrap();

    assert_eq!(h.executions.get(started.id).await.unwrap(), Some(started.clone()), "appending leaves the row");
    assert_eq!(ids(&h.executions.running().await.unwrap()), [started.id]);
    assert_eq!(h.executions.events_after(started.id, 3).await.unwrap(), second);

    let tail = live_events(&started, 6..=7);
    let done = finished(&started, 7);
    h.executions.finish(&done, &tail).await.unwrap();

    let trail: Vec<Event> = [first, second, tail].concat();
    let stored = h.executions.events_after(started.id, 0).await.unwrap();
    assert_eq!(stored, trail);
    let stamps: std::collections::BTreeSet<_> = stored.iter().map(|e| e.ts).collect();
    assert_eq!(stamps.len(), trail.len(), "each event keeps its own ts");
    for k in 0..=7 {
        assert_eq!(h.executions.events_after(started.id, k).await.unwrap(), trail[k as usize..], "after {k}");
    }
    assert_eq!(h.executions.get(started.id).await.unwrap(), Some(done));
    assert!(h.executions.running().await.unwrap().is_empty());
});

contract!(a_finish_with_no_tail_keeps_the_appended_events, async |h: &Harness| {
    let session = a_session(h).await;
    let started = running(session.id, at(1));
    h.executions.insert(&started).await.unwrap();
    let streamed = live_events(&started, 1..=4);
    h.executions.append_events(started.id, &streamed).await.unwrap();

    h.executions.finish(&finished(&started, 4), &[]).await.unwrap();

    assert_eq!(h.executions.events_after(started.id, 0).await.unwrap(), streamed);
    assert_eq!(h.executions.get(started.id).await.unwrap().map(|e| e.status), Some(ExecutionStatus::Ok));
});

contract!(appending_to_a_missing_execution_is_execution_not_found, async |h: &Harness| {
    let ghost = running(SessionId::new(), at(1));

    let err = h.executions.append_events(ghost.id, &live_events(&ghost, 1..=2)).await.unwrap_err();

    assert_eq!(err.code(), "EXECUTION_NOT_FOUND", "{err}");
    assert_eq!(h.count_rows("execution_events", "execution_id", ghost.id).await, 0);
});

contract!(an_empty_append_is_a_no_op_even_for_a_missing_execution, async |h: &Harness| {
    let session = a_session(h).await;
    let started = running(session.id, at(1));
    h.executions.insert(&started).await.unwrap();

    h.executions.append_events(started.id, &[]).await.expect("nothing to append");
    h.executions.append_events(ExecutionId::new(), &[]).await.expect("nothing to append, nothing checked");

    assert!(h.executions.events_after(started.id, 0).await.unwrap().is_empty());
});

contract!(appending_a_seq_already_stored_is_refused_and_keeps_what_was_stored, async |h: &Harness| {
    let session = a_session(h).await;
    let started = running(session.id, at(1));
    h.executions.insert(&started).await.unwrap();
    let stored = live_events(&started, 1..=3);
    h.executions.append_events(started.id, &stored).await.unwrap();
    let mut clashing = live_events(&started, 3..=5);
    clashing[0].payload = EventPayload::Console { level: ConsoleLevel::Error, text: "overwritten".into() };

    let err = h.executions.append_events(started.id, &clashing).await.expect_err("seq 3 is stored already");

    assert_eq!(err.code(), "INTERNAL", "a caller's bug, not an outage to retry: {err}");
    assert_eq!(h.executions.events_after(started.id, 0).await.unwrap(), stored, "the batch is all or nothing");
    let mut twice = live_events(&started, 4..=5);
    twice.push(twice[0].clone());
    h.executions.append_events(started.id, &twice).await.expect_err("seq 4 twice in one batch");
    assert_eq!(h.executions.events_after(started.id, 0).await.unwrap(), stored);

    let next = live_events(&started, 4..=5);
    h.executions.append_events(started.id, &next).await.expect("the next seqs still append");
    assert_eq!(h.executions.events_after(started.id, 0).await.unwrap(), [stored, next].concat());
});

contract!(
    a_finishing_tail_that_repeats_an_appended_seq_is_refused_and_leaves_the_execution_running,
    async |h: &Harness| {
        let session = a_session(h).await;
        let started = running(session.id, at(1));
        h.executions.insert(&started).await.unwrap();
        let streamed = live_events(&started, 1..=3);
        h.executions.append_events(started.id, &streamed).await.unwrap();

        let err = h.executions.finish(&finished(&started, 4), &live_events(&started, 3..=4)).await.unwrap_err();

        assert_eq!(err.code(), "INTERNAL", "{err}");
        assert_eq!(h.executions.get(started.id).await.unwrap(), Some(started.clone()));
        assert_eq!(h.executions.events_after(started.id, 0).await.unwrap(), streamed);
        let done = finished(&started, 4);
        h.executions.finish(&done, &live_events(&started, 4..=4)).await.expect("the right tail finishes");
        assert_eq!(h.executions.events_after(started.id, 0).await.unwrap().len(), 4);
    }
);

contract!(events_of_another_execution_are_refused_by_append, async |h: &Harness| {
    let session = a_session(h).await;
    let mine = running(session.id, at(1));
    let other = running(session.id, at(2));
    for e in [&mine, &other] {
        h.executions.insert(e).await.unwrap();
    }

    let err = h.executions.append_events(mine.id, &live_events(&other, 1..=1)).await.unwrap_err();

    assert_eq!(err.code(), "INTERNAL");
    assert!(h.executions.events_after(mine.id, 0).await.unwrap().is_empty());
    assert!(h.executions.events_after(other.id, 0).await.unwrap().is_empty());
});

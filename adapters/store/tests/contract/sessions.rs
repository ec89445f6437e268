//! `SessionStore`: round trips, newest-first listing with a status filter,
//! and state updates.

use vm_domain::ids::{SessionId, TemplateId};
use vm_domain::session::SessionStatus;

use crate::harness::Harness;
use crate::seed::{at, session};

contract!(a_session_reads_back_as_it_was_inserted, async |h: &Harness| {
    let mut crashed = session(TemplateId::new(), at(1));
    crashed.status = SessionStatus::Crashed;
    crashed.closed_at = Some(at(2));
    crashed.last_error = Some("startup file init.js threw: ReferenceError".into());
    let ready = session(TemplateId::new(), at(3));
    for s in [&crashed, &ready] {
        h.sessions.insert(s).await.unwrap();
    }

    assert_eq!(h.sessions.get(crashed.id).await.unwrap(), Some(crashed));
    assert_eq!(h.sessions.get(ready.id).await.unwrap(), Some(ready));
    assert_eq!(h.sessions.get(SessionId::new()).await.unwrap(), None);
});

contract!(sessions_are_listed_newest_first_and_filtered_by_status, async |h: &Harness| {
    let template_id = TemplateId::new();
    let first = session(template_id, at(1));
    let mut closed = session(template_id, at(2));
    closed.status = SessionStatus::Closed;
    closed.closed_at = Some(at(5));
    let third = session(template_id, at(3));
    let tied = session(template_id, at(3));
    for s in [&first, &closed, &third, &tied] {
        h.sessions.insert(s).await.unwrap();
    }
    let ids = |sessions: Vec<vm_domain::session::Session>| sessions.into_iter().map(|s| s.id).collect::<Vec<_>>();

    assert_eq!(ids(h.sessions.list(None).await.unwrap()), [tied.id, third.id, closed.id, first.id]);
    assert_eq!(ids(h.sessions.list(Some(SessionStatus::Ready)).await.unwrap()), [tied.id, third.id, first.id]);
    assert_eq!(ids(h.sessions.list(Some(SessionStatus::Closed)).await.unwrap()), [closed.id]);
    assert!(h.sessions.list(Some(SessionStatus::Starting)).await.unwrap().is_empty());
});

contract!(sessions_are_counted_by_status, async |h: &Harness| {
    assert!(h.sessions.count_by_status().await.unwrap().is_empty(), "no sessions, no counts");
    for (status, n) in [(SessionStatus::Ready, 2), (SessionStatus::Closed, 3), (SessionStatus::Crashed, 1)] {
        for i in 0..n {
            let mut s = session(TemplateId::new(), at(i));
            s.status = status;
            h.sessions.insert(&s).await.unwrap();
        }
    }
    let mut counts = h.sessions.count_by_status().await.unwrap();
    counts.sort_by_key(|(status, _)| status.as_str());
    assert_eq!(counts, [(SessionStatus::Closed, 3), (SessionStatus::Crashed, 1), (SessionStatus::Ready, 2)]);
});

contract!(updating_state_writes_status_closed_at_and_last_error, async |h: &Harness| {
    let mut live = session(TemplateId::new(), at(1));
    live.status = SessionStatus::Starting;
    h.sessions.insert(&live).await.unwrap();

    live.status = SessionStatus::Crashed;
    live.last_error = Some("worker exited".into());
    h.sessions.update_state(&live).await.unwrap();
    assert_eq!(h.sessions.get(live.id).await.unwrap(), Some(live.clone()));

    live.status = SessionStatus::Closed;
    live.closed_at = Some(at(9));
    h.sessions.update_state(&live).await.unwrap();
    assert_eq!(h.sessions.get(live.id).await.unwrap(), Some(live));
});

contract!(updating_a_missing_session_is_session_not_found, async |h: &Harness| {
    let ghost = session(TemplateId::new(), at(1));
    let err = h.sessions.update_state(&ghost).await.unwrap_err();
    assert_eq!(err.code(), "SESSION_NOT_FOUND");
});

contract!(forked_from_round_trips_through_insert_get_and_list, async |h: &Harness| {
    let template_id = TemplateId::new();
    let parent = session(template_id, at(1));
    let mut fork = session(template_id, at(2));
    fork.forked_from = Some(parent.id);
    let mut fork_of_fork = session(template_id, at(3));
    fork_of_fork.forked_from = Some(fork.id);
    for s in [&parent, &fork, &fork_of_fork] {
        h.sessions.insert(s).await.unwrap();
    }

    assert_eq!(h.sessions.get(parent.id).await.unwrap().map(|s| s.forked_from), Some(None));
    assert_eq!(h.sessions.get(fork.id).await.unwrap().map(|s| s.forked_from), Some(Some(parent.id)));
    assert_eq!(h.sessions.get(fork_of_fork.id).await.unwrap(), Some(fork_of_fork.clone()));
    assert_eq!(h.sessions.list(None).await.unwrap(), [fork_of_fork.clone(), fork.clone(), parent.clone()]);
    assert_eq!(h.sessions.list(Some(SessionStatus::Ready)).await.unwrap(), [fork_of_fork, fork, parent]);
});

contract!(updating_state_keeps_forked_from, async |h: &Harness| {
    let parent = session(TemplateId::new(), at(1));
    let mut fork = session(parent.template_id, at(2));
    fork.forked_from = Some(parent.id);
    h.sessions.insert(&parent).await.unwrap();
    h.sessions.insert(&fork).await.unwrap();

    fork.status = SessionStatus::Closed;
    fork.closed_at = Some(at(3));
    h.sessions.update_state(&fork).await.unwrap();

    assert_eq!(h.sessions.get(fork.id).await.unwrap(), Some(fork));
});

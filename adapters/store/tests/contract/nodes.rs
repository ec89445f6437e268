//! `NodeStore` and the node side of `SessionStore`: a node reads back with
//! its live sessions counted, a renewal moves the lease of a live node only,
//! a node is claimed lost once however many ask, `live_on` finds a node's
//! live sessions and the orphans, and the shared secret is set once.

use std::time::Duration;

use vm_domain::ids::{NodeId, TemplateId};
use vm_domain::node::{Node, NodeStatus};
use vm_domain::session::SessionStatus;
use vm_domain::Timestamp;

use crate::harness::Harness;
use crate::seed::{at, session};

/// A live node that started at `started_at` with a lease of 10 s.
fn node(started_at: Timestamp) -> Node {
    Node {
        id: NodeId::new(),
        url: "http://127.0.0.1:3210".into(),
        version: "0.1.0".into(),
        status: NodeStatus::Live,
        started_at,
        heartbeat_at: started_at,
        lease_expires_at: started_at + Duration::from_secs(10),
        lost_at: None,
        max_sessions: 4,
        active_sessions: 0,
    }
}

contract!(a_node_reads_back_with_its_live_sessions_counted, async |h: &Harness| {
    let n = node(at(1));
    h.nodes.insert(&n).await.unwrap();
    let template = TemplateId::new();
    for (i, status) in [SessionStatus::Ready, SessionStatus::Starting, SessionStatus::Closed, SessionStatus::Crashed]
        .into_iter()
        .enumerate()
    {
        let mut s = session(template, at(2 + i as i64));
        s.status = status;
        s.node_id = Some(n.id);
        h.sessions.insert(&s).await.unwrap();
    }
    let read = h.nodes.get(n.id).await.unwrap().expect("the node is stored");
    assert_eq!(read, Node { active_sessions: 2, ..n.clone() });
    assert_eq!(h.nodes.get(NodeId::new()).await.unwrap(), None);
});

contract!(nodes_are_listed_live_first_then_newest_first, async |h: &Harness| {
    let old = node(at(1));
    let new = node(at(2));
    let mut gone = node(at(3));
    gone.status = NodeStatus::Lost;
    gone.lost_at = Some(at(4));
    for n in [&old, &gone, &new] {
        h.nodes.insert(n).await.unwrap();
    }
    let ids: Vec<NodeId> = h.nodes.list().await.unwrap().iter().map(|n| n.id).collect();
    assert_eq!(ids, vec![new.id, old.id, gone.id]);
});

contract!(a_renewal_moves_the_lease_of_a_live_node_only, async |h: &Harness| {
    let n = node(at(1));
    h.nodes.insert(&n).await.unwrap();
    assert!(h.nodes.renew(n.id, at(5), at(15)).await.unwrap());
    let read = h.nodes.get(n.id).await.unwrap().unwrap();
    assert_eq!((read.heartbeat_at, read.lease_expires_at), (at(5), at(15)));
    h.nodes.mark_lost(n.id, at(6)).await.unwrap();
    assert!(!h.nodes.renew(n.id, at(7), at(17)).await.unwrap(), "a lost node never renews");
    let read = h.nodes.get(n.id).await.unwrap().unwrap();
    assert_eq!((read.status, read.lost_at, read.lease_expires_at), (NodeStatus::Lost, Some(at(6)), at(15)));
    assert!(!h.nodes.renew(NodeId::new(), at(7), at(17)).await.unwrap(), "an unknown node renews nothing");
});

contract!(a_node_whose_lease_ran_out_is_claimed_lost_once, async |h: &Harness| {
    let me = node(at(1));
    let expired = node(at(2)); // lease until at(12)
    let mut fresh = node(at(3));
    fresh.lease_expires_at = at(100);
    for n in [&me, &expired, &fresh] {
        h.nodes.insert(n).await.unwrap();
    }
    let now = at(50);
    // Many claim at once: exactly one gets the expired node; `me` (expired
    // too) is never claimed by itself, and the fresh node is left alone.
    let claims = futures::future::join_all((0..6).map(|_| h.nodes.claim_lost(me.id, now, false))).await;
    let won: Vec<Node> = claims.into_iter().filter_map(Result::unwrap).collect();
    assert_eq!(won.len(), 1, "{won:?}");
    assert_eq!((won[0].id, won[0].status, won[0].lost_at), (expired.id, NodeStatus::Lost, Some(now)));
    let read = h.nodes.get(expired.id).await.unwrap().unwrap();
    assert_eq!((read.status, read.lost_at), (NodeStatus::Lost, Some(now)));
    assert_eq!(h.nodes.claim_lost(me.id, now, false).await.unwrap(), None);
    assert_eq!(h.nodes.get(fresh.id).await.unwrap().unwrap().status, NodeStatus::Live);
    // A daemon that holds the database alone claims every other live node.
    let claimed = h.nodes.claim_lost(me.id, now, true).await.unwrap().expect("the fresh node is claimed");
    assert_eq!(claimed.id, fresh.id);
    assert_eq!(h.nodes.claim_lost(me.id, now, true).await.unwrap(), None);
    assert_eq!(h.nodes.get(me.id).await.unwrap().unwrap().status, NodeStatus::Live);
});

contract!(live_on_finds_a_nodes_live_sessions_and_those_on_no_live_node, async |h: &Harness| {
    let live = node(at(1));
    let mut lost = node(at(2));
    lost.status = NodeStatus::Lost;
    h.nodes.insert(&live).await.unwrap();
    h.nodes.insert(&lost).await.unwrap();
    let template = TemplateId::new();
    let place = |node_id: Option<NodeId>, status: SessionStatus, t: i64| {
        let mut s = session(template, at(t));
        s.node_id = node_id;
        s.status = status;
        s
    };
    let on_live = place(Some(live.id), SessionStatus::Ready, 3);
    let closed_on_live = place(Some(live.id), SessionStatus::Closed, 4);
    let on_lost = place(Some(lost.id), SessionStatus::Starting, 5);
    let on_none = place(None, SessionStatus::Ready, 6);
    let on_unknown = place(Some(NodeId::new()), SessionStatus::Ready, 7);
    for s in [&on_live, &closed_on_live, &on_lost, &on_none, &on_unknown] {
        h.sessions.insert(s).await.unwrap();
    }
    let ids = |sessions: Vec<vm_domain::session::Session>| sessions.into_iter().map(|s| s.id).collect::<Vec<_>>();
    assert_eq!(ids(h.sessions.live_on(Some(live.id)).await.unwrap()), vec![on_live.id]);
    assert_eq!(ids(h.sessions.live_on(Some(lost.id)).await.unwrap()), vec![on_lost.id]);
    assert_eq!(ids(h.sessions.live_on(None).await.unwrap()), vec![on_lost.id, on_none.id, on_unknown.id]);
    assert_eq!(h.sessions.get(on_live.id).await.unwrap().unwrap().node_id, Some(live.id));
});

contract!(the_shared_secret_is_the_first_one_stored, async |h: &Harness| {
    assert_eq!(h.nodes.shared_secret("first").await.unwrap(), "first");
    assert_eq!(h.nodes.shared_secret("second").await.unwrap(), "first");
});

//! Several daemons on one PostgreSQL database (issue 15): nodes that list
//! each other, sessions placed by free capacity, every worker request
//! forwarded to the session's node from any node, the failover of a node
//! killed with `kill -9` under load, a restarted node that joins, and one
//! owner per SQLite file.
//!
//! Every daemon has a home of its own (data directory, cache) and the same
//! extra worktree root, so a session placed on any node can use the same
//! worktree. Only the first daemon on a fresh database makes a bootstrap
//! token; the others find a token in the shared database and make none, so
//! every node is called with the first one's token.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{client, eventually, path_str, serve_command_on, Daemon, Home};

/// Every lease in this file: a node renews every 500 ms, and the others
/// declare it lost 2 s after its last renewal.
const LEASE: &str = "2s";

static REQUESTS: AtomicU64 = AtomicU64::new(0);

/// A fresh request id, sent as `X-Request-Id`.
fn request_id(label: &str) -> String {
    format!("nodes-{label}-{}", REQUESTS.fetch_add(1, Ordering::Relaxed))
}

/// What a node answered: status, JSON body and the headers that matter here.
#[derive(Debug)]
struct Reply {
    status: u16,
    body: Value,
    /// `x-vm-node`: the node that handled the request.
    node: Option<String>,
    retry_after: Option<String>,
}

impl Reply {
    fn code(&self) -> Option<&str> {
        self.body["error"]["code"].as_str()
    }
}

/// One node's HTTP API, as a client sees it; cheap to clone into threads.
#[derive(Clone)]
struct Api {
    url: String,
    http: reqwest::blocking::Client,
    /// The node's id, as it names itself in `GET /nodes` (`this_node`).
    id: String,
}

impl Api {
    /// Sends one request with a fresh `X-Request-Id` and checks that the
    /// response carries the same id back.
    fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Reply {
        self.try_call(method, path, body).unwrap_or_else(|err| panic!("{path} on {}: {err}", self.url))
    }

    /// [`Api::call`] that reports a failure instead of panicking.
    fn try_call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Reply, String> {
        let sent = request_id(method.as_str());
        let mut request =
            self.http.request(method.clone(), format!("{}/api/v1{path}", self.url)).header("x-request-id", &sent);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().map_err(|err| format!("{method} {path}: no answer: {err}"))?;
        let status = response.status().as_u16();
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let (echoed, node, retry_after) = (header("x-request-id"), header("x-vm-node"), header("retry-after"));
        let text = response.text().map_err(|err| format!("{method} {path}: the body broke off: {err}"))?;
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        if echoed.as_deref() != Some(sent.as_str()) {
            return Err(format!(
                "{method} {path} via {}: sent X-Request-Id {sent}, got {echoed:?} ({status} {text})",
                self.url
            ));
        }
        Ok(Reply { status, body, node, retry_after })
    }

    fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None)
    }

    fn post(&self, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(&body))
    }

    /// `GET /nodes` as this node sees it.
    fn nodes(&self) -> Vec<Value> {
        let reply = self.get("/nodes");
        assert_eq!(reply.status, 200, "{reply:?}");
        reply.body.as_array().unwrap_or_else(|| panic!("a node list: {reply:?}")).clone()
    }

    /// The node with `id` in this node's `GET /nodes`.
    fn node(&self, id: &str) -> Value {
        self.nodes()
            .into_iter()
            .find(|n| n["id"] == id)
            .unwrap_or_else(|| panic!("node {id} in /nodes of {}", self.url))
    }

    /// Creates a session with `placement` (`auto`, `local`).
    fn create_session(&self, shared: &Home, template: &str, placement: &str) -> Reply {
        let body = json!({
            "template_id": template,
            "workspace_id": "ws",
            "base_commit_oid": "c0ffee",
            "worktree_path": path_str(&shared.worktree()),
        });
        self.post(&format!("/sessions?placement={placement}"), body)
    }

    /// A ready session placed with `placement`; returns the reply (201).
    #[track_caller]
    fn session(&self, shared: &Home, template: &str, placement: &str) -> Session {
        let reply = self.create_session(shared, template, placement);
        assert_eq!((reply.status, reply.body["status"].as_str()), (201, Some("ready")), "{reply:?}");
        let node = reply.body["node_id"].as_str().unwrap_or_else(|| panic!("node_id in {reply:?}")).to_owned();
        assert_eq!(reply.node.as_deref(), Some(node.as_str()), "x-vm-node names the owner: {reply:?}");
        Session { id: reply.body["id"].as_str().unwrap().to_owned(), node }
    }

    /// A REPL call that waits for the end.
    fn repl(&self, session: &str, input: &str) -> Reply {
        self.post("/executions/repl", json!({ "session_id": session, "input": input }))
    }

    /// Starts an execution without waiting (202 `running`); returns its id.
    #[track_caller]
    fn submit(&self, session: &Session, input: &str) -> String {
        let reply = self.post("/executions/repl", json!({ "session_id": session.id, "input": input, "wait": false }));
        assert_eq!((reply.status, reply.body["status"].as_str()), (202, Some("running")), "{reply:?}");
        assert_eq!(reply.node.as_deref(), Some(session.node.as_str()), "handled by the owner: {reply:?}");
        reply.body["id"].as_str().unwrap().to_owned()
    }

    /// The stored events of an execution.
    fn events(&self, execution: &str) -> Vec<Value> {
        let reply = self.get(&format!("/executions/{execution}/events"));
        assert_eq!(reply.status, 200, "{reply:?}");
        reply.body.as_array().unwrap().clone()
    }

    /// Follows an execution's event stream (`Accept: text/event-stream`) to
    /// its `end` event; returns the response's `x-vm-node` and the events.
    fn follow(&self, execution: &str) -> (Option<String>, Vec<Sse>) {
        let sent = request_id("sse");
        let response = self
            .http
            .get(format!("{}/api/v1/executions/{execution}/events", self.url))
            .header("accept", "text/event-stream")
            .header("x-request-id", &sent)
            .send()
            .expect("the node answers");
        assert_eq!(response.status().as_u16(), 200, "the stream of {execution} via {}", self.url);
        let headers = response.headers().clone();
        assert_eq!(headers["content-type"], "text/event-stream");
        assert_eq!(headers.get("x-request-id").and_then(|v| v.to_str().ok()), Some(sent.as_str()), "{headers:?}");
        let node = headers.get("x-vm-node").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let mut reader = BufReader::new(response);
        let mut all = Vec::new();
        let (mut event, mut data) = (String::from("message"), String::new());
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).expect("the stream reads") == 0 {
                panic!("the stream via {} closed before its end event: {all:?}", self.url);
            }
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                if !data.is_empty() {
                    let parsed = serde_json::from_str(&data).expect("SSE data is JSON");
                    let end = event == "end";
                    all.push(Sse {
                        event: std::mem::replace(&mut event, "message".into()),
                        data: parsed,
                        at: Instant::now(),
                    });
                    data.clear();
                    if end {
                        return (node, all);
                    }
                }
                continue;
            }
            if let Some(value) = line.strip_prefix("event: ") {
                event = value.to_owned();
            } else if let Some(value) = line.strip_prefix("data: ") {
                data.push_str(value);
            }
        }
    }
}

/// A Server-Sent Event and when it arrived.
#[derive(Debug, Clone)]
struct Sse {
    event: String,
    data: Value,
    at: Instant,
}

#[derive(Debug, Clone)]
struct Session {
    id: String,
    /// The node that runs it (`node_id`).
    node: String,
}

/// A running daemon of the cluster.
struct Node {
    daemon: Daemon,
    api: Api,
    home: Home,
}

impl std::ops::Deref for Node {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Node {
    /// `kill -9`: the node stops renewing its lease at once. Returns its home.
    fn kill(self) -> Home {
        self.daemon.kill();
        self.home
    }
}

/// One PostgreSQL database, the worktree every node's sessions use, and the
/// token of the first node.
struct Cluster {
    db: String,
    shared: Home,
    token: OnceLock<String>,
}

impl Cluster {
    /// `None` when PostgreSQL is absent (and not under CI): the test skips.
    fn new() -> Option<Self> {
        let db = vm_testpg::fresh_database_url()?;
        Some(Self { db, shared: Home::new(), token: OnceLock::new() })
    }

    /// Starts a node on a home of its own.
    fn start(&self, max_sessions: u32) -> Node {
        self.start_on(Home::new(), max_sessions)
    }

    /// Starts a node on `home` with `--max-sessions` and the short lease.
    fn start_on(&self, home: Home, max_sessions: u32) -> Node {
        let max = max_sessions.to_string();
        let root = path_str(self.shared.dir.path()).to_owned();
        let extra =
            ["--listen", "127.0.0.1:0", "--node-lease", LEASE, "--max-sessions", &max, "--worktree-root", &root];
        let daemon = Daemon::start_command(serve_command_on(&home, OsStr::new(&self.db), &extra));
        let token = self.token.get_or_init(|| {
            daemon.token().expect("the first node on a fresh database makes a bootstrap token").to_owned()
        });
        let mut api = Api { url: daemon.url.clone(), http: client(Some(token)), id: String::new() };
        let reply = api.get("/nodes");
        assert_eq!(reply.status, 200, "{reply:?}\n{}", daemon.logs());
        let this: Vec<&Value> = reply.body.as_array().unwrap().iter().filter(|n| n["this_node"] == true).collect();
        assert_eq!(this.len(), 1, "one this_node in {}", reply.body);
        api.id = this[0]["id"].as_str().unwrap().to_owned();
        assert_eq!(reply.node.as_deref(), Some(api.id.as_str()), "x-vm-node names the node that answered");
        Node { daemon, api, home }
    }

    /// A template (on the shared database) whose settings are `settings`.
    fn template(&self, node: &Api, settings: Value) -> String {
        let reply = node.post("/templates", json!({ "name": "nodes" }));
        assert_eq!(reply.status, 201, "{reply:?}");
        let id = reply.body["id"].as_str().unwrap().to_owned();
        let reply = node.call(Method::PUT, &format!("/templates/{id}/settings"), Some(&settings));
        assert_eq!(reply.status, 200, "{reply:?}");
        id
    }
}

/// The `console` lines among `events` (stored events or SSE data).
fn console_lines(events: impl IntoIterator<Item = Value>) -> Vec<String> {
    events
        .into_iter()
        .filter(|e| e["type"] == "console")
        .map(|e| e["payload"]["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// What must survive of an event: its number, type and payload.
fn essence(events: &[Value]) -> Vec<(Value, Value, Value)> {
    events.iter().map(|e| (e["seq"].clone(), e["type"].clone(), e["payload"].clone())).collect()
}

fn instant(value: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(value.as_str().unwrap_or_else(|| panic!("a date-time: {value}")))
        .unwrap_or_else(|err| panic!("{value}: {err}"))
}

/// Checks one node's view of the cluster: every node of `live` live (with
/// its URL, version and capacity), `this_node` only on `viewer`.
fn check_view(viewer: &Node, live: &[&Node], max_sessions: &[u32]) -> Vec<Value> {
    let nodes = viewer.nodes();
    let this: Vec<&Value> = nodes.iter().filter(|n| n["this_node"] == true).collect();
    assert_eq!(this.len(), 1, "this_node exactly once in {nodes:?}");
    assert_eq!(this[0]["id"], viewer.id.as_str());
    for (node, max) in live.iter().zip(max_sessions) {
        let view =
            nodes.iter().find(|n| n["id"] == node.id.as_str()).unwrap_or_else(|| panic!("{} in {nodes:?}", node.id));
        assert_eq!(view["status"], "live", "{view}");
        assert_eq!(view["url"], node.url.as_str(), "the advertised URL defaults to the bound address: {view}");
        assert_eq!(view["version"], env!("CARGO_PKG_VERSION"), "{view}");
        assert_eq!(view["max_sessions"], *max, "{view}");
        assert_eq!(view["this_node"], node.id == viewer.id, "{view}");
        assert!(view["lost_at"].is_null(), "{view}");
        assert!(instant(&view["lease_expires_at"]) > instant(&view["heartbeat_at"]), "{view}");
        assert!(instant(&view["heartbeat_at"]) >= instant(&view["started_at"]), "{view}");
    }
    nodes
}

/// `active_sessions` of each node in `viewer`'s `GET /nodes`, by node id.
fn active_sessions(viewer: &Api) -> BTreeMap<String, u64> {
    viewer
        .nodes()
        .into_iter()
        .filter(|n| n["status"] == "live")
        .map(|n| (n["id"].as_str().unwrap().to_owned(), n["active_sessions"].as_u64().expect("active_sessions")))
        .collect()
}

#[test]
fn three_nodes_on_one_database_list_each_other_and_place_sessions_by_free_capacity_or_locally() {
    let Some(cluster) = Cluster::new() else { return };
    let a = cluster.start(1);
    let b = cluster.start(2);
    let c = cluster.start(2);
    let all = [&a, &b, &c];
    assert!(a.id != b.id && b.id != c.id && a.id != c.id, "each node has an id of its own");
    for viewer in all {
        let nodes = check_view(viewer, &all, &[1, 2, 2]);
        assert_eq!(nodes.len(), 3, "{nodes:?}");
        let started: Vec<_> = nodes.iter().map(|n| instant(&n["started_at"])).collect();
        assert!(started.windows(2).all(|w| w[0] >= w[1]), "newest first: {nodes:?}");
    }
    // The nodes renew: each heartbeat passes the lease first seen, and all
    // stay live.
    let first_leases: BTreeMap<String, _> =
        a.nodes().iter().map(|n| (n["id"].as_str().unwrap().to_owned(), instant(&n["lease_expires_at"]))).collect();
    eventually(Duration::from_secs(10), "every node to renew past its first lease", || {
        let nodes = a.nodes();
        nodes.iter().all(|n| instant(&n["heartbeat_at"]) > first_leases[n["id"].as_str().unwrap()]).then_some(())
    });
    for viewer in all {
        check_view(viewer, &all, &[1, 2, 2]);
    }

    let template = cluster.template(&a, json!({}));
    // local: on the receiving node, whatever the others have free.
    let on_b = b.session(&cluster.shared, &template, "local");
    assert_eq!(on_b.node, b.id, "placement=local runs the session on the node that received it");
    // auto through A: free A 1, B 1, C 2 → C.
    let first = a.session(&cluster.shared, &template, "auto");
    assert_eq!(first.node, c.id, "the node with the most free capacity");
    // Free A 1, B 1, C 1: a tie goes to the receiving node.
    let second = a.session(&cluster.shared, &template, "auto");
    assert_eq!(second.node, a.id, "a tie goes to the receiving node");
    // Free B 1, C 1: one on each.
    let third = a.session(&cluster.shared, &template, "auto");
    let fourth = a.session(&cluster.shared, &template, "auto");
    let mut last_two = [third.node.clone(), fourth.node.clone()];
    last_two.sort();
    let mut expected = [b.id.clone(), c.id.clone()];
    expected.sort();
    assert_eq!(last_two, expected, "the last free places, one on B and one on C");
    let sessions = [&on_b, &first, &second, &third, &fourth];

    let ids: Vec<&str> = all.iter().map(|n| n.id.as_str()).collect();
    let mut held: BTreeMap<&str, u32> = BTreeMap::new();
    for session in sessions {
        // Every node reads the same session, and each is alive on its node.
        for viewer in all {
            let reply = viewer.get(&format!("/sessions/{}", session.id));
            assert_eq!((reply.status, reply.body["status"].as_str()), (200, Some("ready")), "{reply:?}");
            assert_eq!(reply.body["node_id"], session.node.as_str(), "{reply:?}");
        }
        assert!(ids.contains(&session.node.as_str()), "{} names a live node", session.node);
        *held.entry(session.node.as_str()).or_default() += 1;
        let owner = all.iter().find(|n| n.id == session.node).unwrap();
        let reply = owner.repl(&session.id, "6 * 7");
        assert_eq!((reply.status, reply.body["result"]["json"].as_i64()), (201, Some(42)), "{reply:?}");
    }
    assert_eq!(held.get(a.id.as_str()), Some(&1), "{held:?}");
    assert_eq!(held.get(b.id.as_str()), Some(&2), "{held:?}");
    assert_eq!(held.get(c.id.as_str()), Some(&2), "{held:?}");
    for viewer in all {
        let active = active_sessions(viewer);
        assert_eq!(
            [&active[&a.id], &active[&b.id], &active[&c.id]],
            [&1, &2, &2],
            "active_sessions in /nodes of {}",
            viewer.url
        );
    }

    // Full: a sixth session has no room anywhere.
    for (via, placement, max) in [(&a, "auto", 1), (&a, "local", 1), (&b, "auto", 2), (&c, "local", 2)] {
        let refused = via.create_session(&cluster.shared, &template, placement);
        assert_eq!(
            (refused.status, refused.code()),
            (503, Some("NO_CAPACITY")),
            "{placement} via {}: {refused:?}",
            via.url
        );
        assert!(refused.retry_after.is_some(), "Retry-After on {refused:?}");
        assert_eq!(refused.body["error"]["details"]["max_sessions"], max, "this node's max: {refused:?}");
    }

    // A session closed on C (through A) frees its place: the next goes there.
    let reply = a.post(&format!("/sessions/{}/close", first.id), json!({}));
    assert_eq!((reply.status, reply.body["status"].as_str()), (200, Some("closed")), "{reply:?}");
    assert_eq!(reply.node.as_deref(), Some(c.id.as_str()), "the close ran on the owner: {reply:?}");
    let refused = b.create_session(&cluster.shared, &template, "local");
    assert_eq!((refused.status, refused.code()), (503, Some("NO_CAPACITY")), "{refused:?}");
    let again = b.session(&cluster.shared, &template, "auto");
    assert_eq!(again.node, c.id, "the only free place");
    let refused = c.create_session(&cluster.shared, &template, "auto");
    assert_eq!((refused.status, refused.code()), (503, Some("NO_CAPACITY")), "full again: {refused:?}");
}

/// Prints five lines 200 ms apart.
const TICKING: &str =
    "for (let i = 0; i < 5; i++) { console.log('tick ' + i); await new Promise(r => setTimeout(r, 200)) } 'ticked'";

#[test]
fn repl_run_file_live_events_cancel_and_close_work_through_every_node_for_sessions_on_every_node() {
    let Some(cluster) = Cluster::new() else { return };
    let nodes = [cluster.start(4), cluster.start(4), cluster.start(4)];
    let template = cluster.template(&nodes[0], json!({}));
    let sessions: Vec<Session> = nodes
        .iter()
        .map(|node| {
            let session = node.session(&cluster.shared, &template, "local");
            assert_eq!(session.node, node.id);
            session
        })
        .collect();

    for (i, session) in sessions.iter().enumerate() {
        let owner = &nodes[i];
        let others: Vec<&Node> = nodes.iter().filter(|n| n.id != owner.id).collect();
        let handled_by_owner = |reply: &Reply, what: &str| {
            assert_eq!(
                reply.node.as_deref(),
                Some(owner.id.as_str()),
                "{what} of session {i} ran on its node: {reply:?}"
            );
        };

        // REPL: one heap, whichever node receives each call.
        let reply = others[0].repl(&session.id, "let x = 41");
        assert_eq!((reply.status, reply.body["status"].as_str()), (201, Some("ok")), "{reply:?}");
        handled_by_owner(&reply, "the REPL call");
        for via in &nodes {
            let reply = via.repl(&session.id, "x + 1");
            assert_eq!(
                (reply.status, reply.body["result"]["json"].as_i64()),
                (201, Some(42)),
                "via {}: {reply:?}",
                via.url
            );
            handled_by_owner(&reply, "the REPL call");
        }
        for (n, via) in nodes.iter().enumerate() {
            let reply = via.repl(&session.id, "x += 1; x");
            assert_eq!(reply.body["result"]["json"].as_i64(), Some(42 + n as i64), "via {}: {reply:?}", via.url);
        }
        // x is 44 now.

        // run-file: a file of the worktree, through every node.
        for (n, via) in nodes.iter().enumerate() {
            let file = format!("s{i}-via{n}.js");
            cluster.shared.write(&file, &format!("console.log('file of session {i} via node {n}'); 6 * 7 + {n}"));
            let reply = via.post("/executions/run-file", json!({ "session_id": session.id, "path": file }));
            assert_eq!((reply.status, reply.body["status"].as_str()), (201, Some("ok")), "{reply:?}");
            assert_eq!(reply.body["result"]["json"].as_i64(), Some(42 + n as i64), "{reply:?}");
            let lines = console_lines(reply.body["events"].as_array().cloned().unwrap_or_default());
            assert_eq!(lines, [format!("file of session {i} via node {n}")], "{reply:?}");
            handled_by_owner(&reply, "the run-file");
        }

        // Live events: an execution started through one node, followed
        // through another (every node in turn, the owner too).
        for (n, via) in nodes.iter().enumerate() {
            let starter = &nodes[(n + 1) % nodes.len()];
            let execution = starter.submit(session, TICKING);
            let (node, streamed) = via.follow(&execution);
            assert_eq!(node.as_deref(), Some(owner.id.as_str()), "the live stream comes from the owner");
            let (end, events) = streamed.split_last().unwrap();
            assert_eq!((end.event.as_str(), end.data["status"].as_str()), ("end", Some("ok")), "{end:?}");
            let ticks: Vec<&Sse> = events.iter().filter(|e| e.data["type"] == "console").collect();
            let lines = console_lines(ticks.iter().map(|e| e.data.clone()));
            assert_eq!(lines, (0..5).map(|k| format!("tick {k}")).collect::<Vec<_>>(), "in order: {streamed:?}");
            let spread = ticks[4].at - ticks[0].at;
            assert!(spread >= Duration::from_millis(400), "the ticks arrived as they happened, {spread:?} apart");
            let data: Vec<Value> = events.iter().map(|e| e.data.clone()).collect();
            let third = &nodes[(n + 2) % nodes.len()];
            assert_eq!(essence(&data), essence(&third.events(&execution)), "the stream is the stored list");
        }

        // Cancel through each node that does not run the session.
        for (k, via) in others.iter().enumerate() {
            let starter = others[1 - k];
            let execution = starter.submit(session, "x = 1000; while (true) {}");
            // Past the checkpoint taken when the job starts (see live.rs).
            std::thread::sleep(Duration::from_millis(300));
            let reply = via.post(&format!("/executions/{execution}/cancel"), Value::Null);
            assert_eq!((reply.status, reply.body["status"].as_str()), (200, Some("cancelled")), "{reply:?}");
            handled_by_owner(&reply, "the cancel");
            let stored = owner.get(&format!("/executions/{execution}"));
            assert_eq!(stored.body["status"], "cancelled", "{stored:?}");
            let reply = starter.repl(&session.id, "x");
            assert_eq!(reply.body["result"]["json"].as_i64(), Some(44), "rolled back to before the job: {reply:?}");
        }

        // Close through a node that does not run the session (DELETE for
        // the second session).
        let via = others[i % 2];
        let path = format!("/sessions/{}", session.id);
        let reply =
            if i == 1 { via.call(Method::DELETE, &path, None) } else { via.post(&format!("{path}/close"), json!({})) };
        assert_eq!((reply.status, reply.body["status"].as_str()), (200, Some("closed")), "{reply:?}");
        handled_by_owner(&reply, "the close");
        for reader in &nodes {
            let reply = reader.get(&path);
            assert_eq!(reply.body["status"], "closed", "{reply:?}");
        }
        for caller in &nodes {
            let reply = caller.repl(&session.id, "x");
            assert_eq!((reply.status, reply.code()), (409, Some("SESSION_NOT_READY")), "{reply:?}");
        }
        assert_eq!(active_sessions(&others[0].api)[&owner.id], 0, "the closed session no longer counts");
    }
}

/// What a client loop saw: the executions acknowledged (id, the value it
/// returned, its events as answered) and every error.
#[derive(Default)]
struct Load {
    acknowledged: Vec<(String, i64, Vec<Value>, Instant)>,
    errors: Vec<String>,
}

/// Sends REPL calls to `session` through each of `via` in turn until `stop`.
fn keep_calling(session: Session, via: Vec<Api>, stop: Arc<AtomicBool>, count: Arc<AtomicU64>) -> Load {
    let mut load = Load::default();
    let mut k: i64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let api = &via[k as usize % via.len()];
        let input = format!("console.log('call {k}'); {k}");
        match api.try_call(Method::POST, "/executions/repl", Some(&json!({ "session_id": session.id, "input": input })))
        {
            Ok(reply)
                if reply.status == 201
                    && reply.body["status"] == "ok"
                    && reply.body["result"]["json"].as_i64() == Some(k)
                    && reply.node.as_deref() == Some(session.node.as_str()) =>
            {
                let events = reply.body["events"].as_array().cloned().unwrap_or_default();
                load.acknowledged.push((reply.body["id"].as_str().unwrap().to_owned(), k, events, Instant::now()));
                count.fetch_add(1, Ordering::Relaxed);
            }
            Ok(reply) => load.errors.push(format!("call {k} on {} via {}: {reply:?}", session.id, api.url)),
            Err(err) => load.errors.push(format!("call {k} on {} via {}: {err}", session.id, api.url)),
        }
        k += 1;
    }
    load
}

/// Checks that an acknowledged execution is stored as it was answered.
#[track_caller]
fn still_stored(api: &Api, execution: &str, value: i64, answered: &[Value]) {
    let stored = api.get(&format!("/executions/{execution}"));
    assert_eq!((stored.status, stored.body["status"].as_str()), (200, Some("ok")), "{stored:?}");
    assert_eq!(stored.body["result"]["json"].as_i64(), Some(value), "{stored:?}");
    let events = api.events(execution);
    assert!(!events.is_empty(), "the events of {execution}");
    assert_eq!(essence(&events), essence(answered), "the events of {execution} as answered");
}

#[test]
fn a_node_killed_under_load_is_lost_within_its_lease_its_sessions_crash_nothing_acknowledged_is_lost_and_a_restarted_node_joins(
) {
    let Some(cluster) = Cluster::new() else { return };
    let a = cluster.start(3);
    let b = cluster.start(3);
    let c = cluster.start(3);
    let template = cluster.template(&a, json!({ "limits": { "wall_ms": 60000 } }));
    let [a1, a2, b1, b2, c1, c2] =
        [&a, &a, &b, &b, &c, &c].map(|node| node.session(&cluster.shared, &template, "local"));
    for (session, node) in [(&a1, &a), (&a2, &a), (&b1, &b), (&b2, &b), (&c1, &c), (&c2, &c)] {
        assert_eq!(session.node, node.id);
    }

    // Executions on C's sessions, through every node, answered before the kill.
    let mut before = Vec::new();
    for (k, via) in [&a, &b, &c].into_iter().enumerate() {
        for session in [&c1, &c2] {
            let reply = via.repl(&session.id, &format!("console.log('before {k}'); {k}"));
            assert_eq!((reply.status, reply.body["status"].as_str()), (201, Some("ok")), "{reply:?}");
            let events = reply.body["events"].as_array().cloned().unwrap();
            before.push((reply.body["id"].as_str().unwrap().to_owned(), k as i64, events));
        }
    }
    // One still running on C when it dies, started through A.
    let running = a.submit(&c1, "console.log('waiting'); await new Promise(r => setTimeout(r, 60000))");
    let flushed = eventually(Duration::from_secs(5), "the running execution's line to be stored", || {
        let events = b.events(&running);
        console_lines(events.clone()).contains(&"waiting".to_owned()).then_some(events)
    });

    // The load: every session of A and B, through A and B alternately.
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let loops: Vec<_> = [&a1, &a2, &b1, &b2]
        .into_iter()
        .enumerate()
        .map(|(k, session)| {
            let via = if k % 2 == 0 { vec![a.api.clone(), b.api.clone()] } else { vec![b.api.clone(), a.api.clone()] };
            let (session, stop, count) = (session.clone(), stop.clone(), count.clone());
            std::thread::spawn(move || keep_calling(session, via, stop, count))
        })
        .collect();
    eventually(Duration::from_secs(10), "the load to run", || (count.load(Ordering::Relaxed) >= 20).then_some(()));

    let (c_id, c_url) = (c.id.clone(), c.url.clone());
    let killed_at = Instant::now();
    let c_home = c.kill();
    let at_kill = count.load(Ordering::Relaxed);

    // Until its lease expires, C's sessions are unavailable, not failed.
    let reply = a.repl(&c2.id, "1");
    if killed_at.elapsed() < Duration::from_millis(1000) {
        assert_eq!((reply.status, reply.code()), (503, Some("NODE_UNAVAILABLE")), "{reply:?}");
        assert!(reply.retry_after.is_some(), "Retry-After on {reply:?}");
        let details = &reply.body["error"]["details"];
        assert_eq!(
            (details["node_id"].as_str(), details["url"].as_str(), details["session_id"].as_str()),
            (Some(c_id.as_str()), Some(c_url.as_str()), Some(c2.id.as_str())),
            "{reply:?}"
        );
    } else {
        eprintln!("(the NODE_UNAVAILABLE answer was not checked: the call took {:?})", killed_at.elapsed());
    }
    // Reads of its sessions are served from the database meanwhile.
    let reply = b.get(&format!("/sessions/{}", c1.id));
    assert_eq!(reply.status, 200, "{reply:?}");

    // Within the lease plus 8 s: C lost, its sessions crashed, its running
    // execution cancelled.
    let bound = Duration::from_secs(2 + 8);
    eventually(bound.saturating_sub(killed_at.elapsed()), "C to be lost and failed over", || {
        let lost = b.node(&c_id)["status"] == "lost";
        let crashed = [&c1, &c2].iter().all(|s| a.get(&format!("/sessions/{}", s.id)).body["status"] == "crashed");
        let cancelled = a.get(&format!("/executions/{running}")).body["status"] == "cancelled";
        (lost && crashed && cancelled).then_some(())
    });
    eprintln!("failed over {:?} after the kill", killed_at.elapsed());
    assert!(count.load(Ordering::Relaxed) > at_kill + 10, "the load went on during the failover");

    for viewer in [&a, &b] {
        let nodes = viewer.nodes();
        let view = nodes.iter().find(|n| n["id"] == c_id.as_str()).unwrap();
        assert_eq!(view["status"], "lost", "{view}");
        assert!(instant(&view["lost_at"]) >= instant(&view["heartbeat_at"]), "{view}");
        let statuses: Vec<&str> = nodes.iter().map(|n| n["status"].as_str().unwrap()).collect();
        assert_eq!(statuses, ["live", "live", "lost"], "live nodes first: {nodes:?}");
    }
    for session in [&c1, &c2] {
        let reply = a.get(&format!("/sessions/{}", session.id));
        let last_error = reply.body["last_error"].as_str().unwrap_or_default();
        assert!(last_error.contains("node lost"), "{reply:?}");
        assert!(last_error.contains(&c_id) && last_error.contains(&c_url), "names the node: {reply:?}");
        let reply = b.repl(&session.id, "1");
        assert_eq!(reply.status, 409, "a crashed session is not ready: {reply:?}");
    }
    let execution = b.get(&format!("/executions/{running}"));
    assert_eq!(execution.body["error"]["code"], "INTERRUPTED", "{execution:?}");
    let events = a.events(&running);
    assert_eq!(essence(&events[..flushed.len()]), essence(&flushed), "the flushed events are kept");
    let last = events.last().unwrap();
    assert_eq!((last["type"].as_str(), last["payload"]["level"].as_str()), (Some("system"), Some("warn")), "{last}");
    let message = last["payload"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("was lost") && message.contains(&c_id), "{last}");
    for (execution, value, answered) in &before {
        still_stored(&b.api, execution, *value, answered);
    }

    // C's home again: a new node joins and takes new sessions; the load
    // goes on meanwhile.
    let d = cluster.start_on(c_home, 3);
    assert!(![&a.id, &b.id, &c_id].contains(&&d.id), "a new node id");
    for viewer in [&a, &b, &d] {
        let nodes = check_view(viewer, &[&a, &b, &d], &[3, 3, 3]);
        assert_eq!(nodes.len(), 4, "{nodes:?}");
        assert_eq!(nodes[3]["id"], c_id.as_str(), "the lost node last: {nodes:?}");
    }
    let local = d.session(&cluster.shared, &template, "local");
    assert_eq!(local.node, d.id);
    // Free: A 1, B 1, D 2.
    let placed = a.session(&cluster.shared, &template, "auto");
    assert_eq!(placed.node, d.id, "the new node has the most room");
    for session in [&local, &placed] {
        for via in [&a, &b, &d] {
            let reply = via.repl(&session.id, "20 + 22");
            assert_eq!((reply.status, reply.body["result"]["json"].as_i64()), (201, Some(42)), "{reply:?}");
        }
    }
    for session in [&a1, &b1] {
        let reply = a.get(&format!("/sessions/{}", session.id));
        assert_eq!(reply.body["status"], "ready", "the join left live nodes' sessions alone: {reply:?}");
    }

    stop.store(true, Ordering::Relaxed);
    let loads: Vec<Load> = loops.into_iter().map(|l| l.join().unwrap()).collect();
    let errors: Vec<&String> = loads.iter().flat_map(|l| &l.errors).collect();
    assert!(errors.is_empty(), "{} errors under load, e.g. {:?}", errors.len(), &errors[..errors.len().min(5)]);
    let after_kill = loads.iter().flat_map(|l| &l.acknowledged).filter(|(.., at)| *at > killed_at).count();
    eprintln!(
        "{} calls acknowledged, {after_kill} after the kill",
        loads.iter().map(|l| l.acknowledged.len()).sum::<usize>()
    );
    for (execution, value, answered, _) in loads.iter().flat_map(|l| &l.acknowledged) {
        still_stored(&a.api, execution, *value, answered);
    }
}

#[test]
fn a_second_daemon_on_the_same_sqlite_file_refuses_to_start_naming_the_holder_and_the_first_keeps_serving() {
    let home = Home::new();
    let first = Daemon::start(&home);
    let api = Api { url: first.url.clone(), http: first.http(), id: String::new() };
    let template = {
        let reply = api.post("/templates", json!({ "name": "one-owner" }));
        reply.body["id"].as_str().unwrap().to_owned()
    };
    let session = api.session(&home, &template, "local");
    assert_eq!(api.repl(&session.id, "var kept = 41").status, 201);

    let lock = std::fs::read_to_string(format!("{}.lock", home.db().display())).expect("the lock file");
    // The holder's pid and URL, for whoever finds the file.
    let names = |word: &str| lock.split_whitespace().any(|w| w == word);
    assert!(names(&first.pid().to_string()) && names(&first.url), "the lock names pid and URL: {lock:?}");

    let other = Home::new();
    let mut second = serve_command_on(&other, home.db().as_os_str(), &["--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = second.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = second.kill();
            let _ = second.wait();
            panic!("the second daemon kept running on the same file:\n{}", stderr.join().unwrap());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = stderr.join().unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    let expected = format!(
        "error: the database {} is in use by another vm-system daemon (pid {}, {}); stop it or use another --db",
        home.db().display(),
        first.pid(),
        first.url
    );
    assert_eq!(stderr.lines().last(), Some(expected.as_str()), "{stderr}");

    // The first daemon never noticed.
    assert_eq!(api.get("/health").status, 200);
    let reply = api.get(&format!("/sessions/{}", session.id));
    assert_eq!(reply.body["status"], "ready", "{reply:?}");
    let reply = api.repl(&session.id, "kept + 1");
    assert_eq!((reply.status, reply.body["result"]["json"].as_i64()), (201, Some(42)), "{reply:?}");

    // Stopped, it lets the file go.
    assert!(first.terminate().success());
    let next = Daemon::start(&home);
    assert_eq!(next.get("/health").0, 200);
}

#[test]
fn a_node_cut_off_past_its_lease_finds_itself_lost_and_exits_1_while_its_sessions_are_failed_over() {
    let Some(cluster) = Cluster::new() else { return };
    let a = cluster.start(3);
    let mut b = cluster.start(3);
    let template = cluster.template(&a, json!({}));
    let on_b = b.session(&cluster.shared, &template, "local");
    // Frozen (as a node cut off from the database would be) past its lease:
    // A fails its session over while it cannot renew.
    b.daemon.signal("STOP");
    let crashed = eventually(Duration::from_secs(12), "B's session to be failed over", || {
        let reply = a.get(&format!("/sessions/{}", on_b.id));
        (reply.body["status"] == "crashed").then_some(reply.body)
    });
    assert!(crashed["last_error"].as_str().unwrap().contains("node lost"), "{crashed}");
    b.daemon.signal("CONT");
    // Its next renewal finds it lost: it stops rather than serve sessions
    // that are failed over.
    let status = b.daemon.exited_within(Duration::from_secs(10));
    assert_eq!(status.code(), Some(1), "{}", b.daemon.logs());
    assert!(b.daemon.logs().contains("lease ran out"), "{}", b.daemon.logs());
    let nodes = a.get("/nodes").body;
    let lost: Vec<&Value> = nodes.as_array().unwrap().iter().filter(|n| n["id"] == b.id.as_str()).collect();
    assert_eq!(lost[0]["status"], "lost", "{nodes}");
    // A goes on serving.
    let reply = a.repl(&a.session(&cluster.shared, &template, "local").id, "6 * 7");
    assert_eq!(reply.body["result"]["json"], 42, "{reply:?}");
}

#[test]
fn the_node_credential_is_checked_never_stands_in_for_a_token_and_a_misrouted_forward_is_refused() {
    let Some(cluster) = Cluster::new() else { return };
    let a = cluster.start(3);
    let b = cluster.start(3);
    let template = cluster.template(&a, json!({}));
    let on_b = b.session(&cluster.shared, &template, "local");
    let pg = vm_testpg::shared().expect("the cluster made the database");
    let secret = pg.sql_in(&cluster.db, "SELECT value FROM cluster_secrets WHERE name = 'node_credential'").unwrap();
    assert!(secret.len() >= 32, "a long random credential: {secret:?}");
    let repl_on_b = json!({ "session_id": on_b.id, "input": "1 + 1" });
    let send = |http: &reqwest::blocking::Client, headers: &[(&str, &str)]| {
        let mut request = http.post(format!("{}/api/v1/executions/repl", a.url)).json(&repl_on_b);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().unwrap_or(Value::Null))
    };

    // A forged credential, even beside a valid token.
    let (status, body) = send(&a.http, &[("x-vm-node-credential", "forged-credential")]);
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("UNAUTHENTICATED")), "{body}");
    // The true credential is no token: without one the call is refused.
    let (status, body) = send(&client(None), &[("x-vm-node-credential", &secret)]);
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("UNAUTHENTICATED")), "{body}");
    // Meant for B but arriving at A (two nodes advertising one URL): refused,
    // rather than run where the session is not and crash it.
    let (status, body) = send(&a.http, &[("x-vm-node-credential", &secret), ("x-vm-forwarded-to", &b.id)]);
    assert_eq!((status, body["error"]["code"].as_str()), (503, Some("NODE_UNAVAILABLE")), "{body}");
    assert_eq!(body["error"]["details"]["node_id"], b.id.as_str(), "{body}");
    let session = a.get(&format!("/sessions/{}", on_b.id)).body;
    assert_eq!(session["status"], "ready", "{session}");
    let reply = a.repl(&on_b.id, "6 * 7");
    assert_eq!(reply.body["result"]["json"], 42, "{reply:?}");
}

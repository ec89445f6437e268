//! `fetch` through the real daemon and CLI (SPEC §11): a session whose
//! template has a `net`/`fetch` capability reaches an HTTP server this test
//! starts on 127.0.0.1 (listed by IP) and the stored execution records the
//! request; hosts not listed, `localhost` by name and sessions without the
//! capability are refused with their codes; `exec repl` prints the request
//! as the web UI does; a bad allow list is refused when the capability is
//! added.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::harness::{run_cli, Daemon, Home};
use crate::runtime::{repl, session, template};

/// An HTTP/1.1 server on 127.0.0.1 answering `GET /hello` with `hello`
/// (anything else with a 404), one request per connection; it remembers
/// the paths it was asked for.
struct Server {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a local port");
        let port = listener.local_addr().expect("its address").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(stream.try_clone().expect("a second handle"));
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|read| read > 0) && !line.trim().is_empty() {
                    line.clear();
                }
                let path = request_line.split_whitespace().nth(1).unwrap_or_default().to_owned();
                let (status, body) = if path == "/hello" { ("200 OK", "hello") } else { ("404 Not Found", "nothing") };
                log.lock().unwrap().push(path);
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(body.as_bytes());
            }
        });
        Self { port, seen }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

/// A `net` capability named `fetch` allowing `allow`.
fn fetch_capability(allow: &[String]) -> Value {
    json!({ "kind": "net", "name": "fetch", "config": { "allow": allow } })
}

/// A ready session whose `fetch` may reach `server` by IP (and, listed but
/// never reachable, `localhost` on its port).
fn fetch_session(daemon: &Daemon, home: &Home, server: &Server) -> String {
    let allow = [format!("127.0.0.1:{}", server.port), format!("localhost:{}", server.port)];
    session(daemon, home, &template(daemon, json!({}), &[], &[fetch_capability(&allow)]))
}

/// The value JSON of a REPL answer that ended ok.
#[track_caller]
fn value(answer: &(u16, Value)) -> Value {
    assert_eq!((answer.0, &answer.1["status"]), (201, &json!("ok")), "{}", answer.1);
    answer.1["result"]["json"].clone()
}

/// The payloads of the `fetch` events of an execution, as stored.
fn stored_fetches(daemon: &Daemon, answer: &(u16, Value)) -> Vec<Value> {
    let id = answer.1["id"].as_str().expect("an execution id");
    let (status, events) = daemon.get(&format!("/executions/{id}/events"));
    assert_eq!(status, 200, "{events}");
    events.as_array().expect("events").iter().filter(|e| e["type"] == "fetch").map(|e| e["payload"].clone()).collect()
}

/// What fetching `url` rejected with: its `code`.
fn refused_code(url: &str) -> String {
    format!("await fetch({url:?}).then(() => 'fetched', e => e.code)")
}

#[test]
fn a_session_fetches_an_allowed_local_server_and_the_stored_execution_records_the_request() {
    let (home, server) = (Home::new(), Server::start());
    let daemon = Daemon::start(&home);
    let session = fetch_session(&daemon, &home, &server);
    let url = server.url("/hello");
    let fetched = repl(&daemon, &session, &format!("await (await fetch({url:?})).text()"));
    assert_eq!(value(&fetched), json!("hello"));
    match stored_fetches(&daemon, &fetched).as_slice() {
        [fetch] => {
            assert_eq!((&fetch["method"], &fetch["url"]), (&json!("GET"), &json!(url)), "{fetch}");
            assert_eq!((&fetch["status"], &fetch["bytes"]), (&json!(200), &json!(5)), "{fetch}");
            assert_eq!(
                (&fetch["code"], &fetch["error"], &fetch["final_url"]),
                (&Value::Null, &Value::Null, &Value::Null)
            );
            assert!(fetch["ms"].is_u64(), "{fetch}");
        }
        other => panic!("one fetch event: {other:?}"),
    }
    assert_eq!(server.seen(), ["/hello"]);
}

#[test]
fn hosts_not_listed_localhost_by_name_and_sessions_without_the_capability_are_refused_with_their_codes() {
    let (home, server) = (Home::new(), Server::start());
    let daemon = Daemon::start(&home);
    let session = fetch_session(&daemon, &home, &server);

    let not_listed = repl(&daemon, &session, &refused_code("http://example.invalid/"));
    assert_eq!(value(&not_listed), json!("ERR_HOST_NOT_ALLOWED"));
    match stored_fetches(&daemon, &not_listed).as_slice() {
        [fetch] => {
            assert_eq!((&fetch["status"], &fetch["code"]), (&Value::Null, &json!("ERR_HOST_NOT_ALLOWED")), "{fetch}");
            assert!(
                fetch["error"].as_str().unwrap().contains("example.invalid:80 is not in the allow list"),
                "{fetch}"
            );
        }
        other => panic!("one fetch event: {other:?}"),
    }

    let uncaught = repl(&daemon, &session, "await fetch('http://example.invalid/')");
    assert_eq!((uncaught.0, &uncaught.1["status"]), (201, &json!("error")), "{}", uncaught.1);
    let events = uncaught.1["events"].as_array().expect("events");
    let exception = events.iter().find(|e| e["type"] == "exception").expect("an exception event");
    let message = exception["payload"]["message"].as_str().unwrap();
    assert!(message.starts_with("TypeError: example.invalid:80 is not in the allow list"), "{message}");

    let by_name = repl(&daemon, &session, &refused_code(&format!("http://localhost:{}/hello", server.port)));
    assert_eq!(value(&by_name), json!("ERR_ADDRESS_NOT_ALLOWED"), "listed by name, loopback all the same");

    let without = session_without_fetch(&daemon, &home);
    assert_eq!(value(&repl(&daemon, &without, &refused_code(&server.url("/hello")))), json!("ERR_FETCH_DISABLED"));
    assert!(server.seen().is_empty(), "no refused request reached the server: {:?}", server.seen());
}

fn session_without_fetch(daemon: &Daemon, home: &Home) -> String {
    session(daemon, home, &template(daemon, json!({}), &[], &[]))
}

#[test]
fn exec_repl_prints_a_fetch_as_the_ui_does_and_a_refused_one_on_stderr() {
    let (home, server) = (Home::new(), Server::start());
    let daemon = Daemon::start(&home);
    let session = fetch_session(&daemon, &home, &server);
    let url = server.url("/hello");
    let snippet = format!("await (await fetch({url:?})).text()");
    let fetched = run_cli(&daemon.url, &home.worktree(), &["exec", "repl", &session, &snippet], None);
    assert_eq!(fetched.code, 0, "{fetched:?}");
    let lines: Vec<&str> = fetched.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "the fetch, then the value: {fetched:?}");
    assert!(lines[0].starts_with(&format!("fetch GET {url} 200 · 5 B · ")), "{fetched:?}");
    assert!(lines[0].ends_with(" ms"), "{fetched:?}");
    assert_eq!(lines[1], "'hello'", "{fetched:?}");

    let refused = run_cli(
        &daemon.url,
        &home.worktree(),
        &["exec", "repl", &session, &refused_code("http://example.invalid/")],
        None,
    );
    assert_eq!((refused.code, refused.stdout.as_str()), (0, "'ERR_HOST_NOT_ALLOWED'\n"), "{refused:?}");
    assert!(
        refused.stderr.starts_with(
            "fetch GET http://example.invalid/ refused: ERR_HOST_NOT_ALLOWED example.invalid:80 is not in the allow list"
        ),
        "{refused:?}"
    );
}

#[test]
fn a_bad_allow_list_is_refused_when_the_capability_is_added_through_the_api_and_the_cli() {
    let home = Home::new();
    let daemon = Daemon::start(&home);
    let id = template(&daemon, json!({}), &[], &[]);
    let (status, body) = daemon.post(
        &format!("/templates/{id}/capabilities"),
        json!({ "kind": "net", "name": "fetch", "config": { "allow": ["127.0.0.1:3000", "bad host!"] } }),
    );
    assert_eq!((status, &body["error"]["code"]), (422, &json!("INVALID_VALUE")), "{body}");
    assert_eq!(body["error"]["details"]["field"], "config.allow[1]", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("invalid allow entry \"bad host!\""), "{body}");

    let config = r#"{"allow":["bad host!"]}"#;
    let run = run_cli(
        &daemon.url,
        &home.worktree(),
        &["template", "add-capability", &id, "net", "fetch", "--config", config],
        None,
    );
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.starts_with("INVALID_VALUE: the net capability `fetch` has an invalid allow entry"), "{run:?}");
    assert_eq!(daemon.get(&format!("/templates/{id}/capabilities")).1, json!([]), "nothing refused was stored");
}

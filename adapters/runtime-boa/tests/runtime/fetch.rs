//! `fetch` behind the daemon's policy (SPEC §11), in real workers with no
//! network of their own: requests to an HTTP server this test starts on
//! 127.0.0.1 (allowed by IP), refusals of every kind (each a `TypeError`
//! with a `code`), and the `fetch` events the daemon records.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use vm_domain::event::EventPayload;
use vm_domain::ids::{CapabilityId, SessionId, TemplateId};
use vm_domain::ports::{Ending, JsRuntime, LimitHit, Outcome, StateAfter};
use vm_domain::template::{Capability, CapabilityKind, Settings};

use crate::harness::{json_of, Harness};

/// A small HTTP/1.1 server on 127.0.0.1 that answers one request per
/// connection and remembers the paths it was asked for.
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
            for stream in listener.incoming().flatten() {
                let log = log.clone();
                std::thread::spawn(move || answer(stream, port, &log));
            }
        });
        Self { port, seen }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().expect("the log").clone()
    }
}

fn answer(stream: TcpStream, port: u16, seen: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(stream.try_clone().expect("a second handle"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or("").to_owned(), parts.next().unwrap_or("").to_owned());
    let mut headers = serde_json::Map::new();
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.trim_end().split_once(':') {
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_owned());
            if name == "content-length" {
                length = value.parse().unwrap_or(0);
            }
            headers.insert(name, Value::from(value));
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    seen.lock().expect("the log").push(format!("{method} {path}"));
    let (status, extra, content): (&str, String, Vec<u8>) = match path.as_str() {
        "/text" => ("200 OK", "Content-Type: text/plain\r\nX-Test: yes\r\n".into(), b"hello".to_vec()),
        "/echo" => {
            let echoed = json!({
                "method": method,
                "body": serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null),
                "headers": headers,
            });
            ("200 OK", "Content-Type: application/json\r\n".into(), echoed.to_string().into_bytes())
        }
        "/bytes" => ("200 OK", "Content-Type: application/octet-stream\r\n".into(), vec![0, 1, 2, 255]),
        "/big" => ("200 OK", String::new(), vec![b'x'; 4096]),
        "/redirect-in" => ("302 Found", "Location: /text\r\n".into(), Vec::new()),
        "/redirect-out" => ("302 Found", "Location: http://example.invalid/stolen\r\n".into(), Vec::new()),
        "/redirect-loopback" => ("302 Found", format!("Location: http://localhost:{port}/text\r\n"), Vec::new()),
        "/slow" => {
            std::thread::sleep(Duration::from_secs(5));
            ("200 OK", String::new(), b"late".to_vec())
        }
        _ => ("404 Not Found", String::new(), b"no such path".to_vec()),
    };
    let head = format!("HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n", content.len());
    let mut stream = stream;
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&content);
}

/// A `net` capability named `fetch` with this config.
fn fetch_capability(config: Value) -> Capability {
    Capability {
        id: CapabilityId::new(),
        template_id: TemplateId::new(),
        kind: CapabilityKind::Net,
        name: "fetch".into(),
        enabled: true,
        config: config.as_object().expect("a config object").clone(),
        created_at: serde_json::from_value(Value::from("2026-01-02T03:04:05Z")).expect("a timestamp"),
    }
}

/// A session whose `fetch` may reach the test server by IP, and
/// `localhost` on its port by name.
async fn fetch_session(h: &Harness, server: &Server, max_fetch_kb: u64) -> SessionId {
    let allow = [format!("127.0.0.1:{}", server.port), format!("localhost:{}", server.port)];
    let capability = fetch_capability(json!({ "allow": allow, "max_fetch_kb": max_fetch_kb }));
    h.session_with(|spec| spec.capabilities = vec![capability]).await
}

/// A session whose `fetch` may reach the test server by IP, with its
/// settings changed by `configure`.
async fn fetch_session_with(h: &Harness, server: &Server, configure: impl FnOnce(&mut Settings)) -> SessionId {
    let allow = [format!("127.0.0.1:{}", server.port)];
    let capability = fetch_capability(json!({ "allow": allow }));
    h.session_with(|spec| {
        spec.capabilities = vec![capability];
        configure(&mut spec.settings);
    })
    .await
}

/// The `fetch` events of an outcome, in order.
fn fetch_events(outcome: &Outcome) -> Vec<EventPayload> {
    outcome.events.iter().filter(|e| matches!(e, EventPayload::Fetch { .. })).cloned().collect()
}

/// `[name, code, message]` of what fetching `url` rejected with.
async fn refusal(h: &Harness, s: SessionId, url: &str) -> (Outcome, Value) {
    let source = format!("await fetch({url:?}).then(() => ['none'], e => [e.name, String(e.code), String(e.message)])");
    let outcome = h.eval(s, &source).await;
    let json = json_of(&outcome);
    (outcome, json)
}

#[tokio::test]
async fn fetch_reads_text_json_bytes_and_headers_from_an_allowed_server() {
    let (h, server) = (Harness::new(), Server::start());
    let s = fetch_session(&h, &server, 1024).await;
    let base = server.base();
    let source = format!(
        r#"const r = await fetch('{base}/text');
           const text = await r.text();
           const posted = await (await fetch('{base}/echo', {{
               method: 'POST',
               body: JSON.stringify({{ a: 1 }}),
               headers: {{ 'content-type': 'application/json', 'x-custom': 'v' }},
           }})).json();
           const buffer = await (await fetch(new Request('{base}/bytes'))).arrayBuffer();
           const missing = await fetch('{base}/nothing');
           [r.status, r.ok, r.statusText, r.headers.get('x-test'), r.url, text, posted.method, posted.body,
            posted.headers['content-type'], posted.headers['x-custom'], buffer instanceof ArrayBuffer,
            Array.from(new Uint8Array(buffer)), missing.status, missing.ok, await missing.text()]"#
    );
    let outcome = h.eval(s, &source).await;
    assert_eq!(
        json_of(&outcome),
        json!([
            200, true, "OK", "yes", format!("{base}/text"), "hello", "POST", {"a": 1},
            "application/json", "v", true, [0, 1, 2, 255], 404, false, "no such path"
        ]),
        "{outcome:?}"
    );
    let events = fetch_events(&outcome);
    assert_eq!(events.len(), 4, "{events:?}");
    match &events[0] {
        EventPayload::Fetch { method, url, final_url, status, bytes, code, error, .. } => {
            assert_eq!((method.as_str(), url.as_str()), ("GET", format!("{base}/text").as_str()));
            assert_eq!((final_url, status, bytes, code, error), (&None, &Some(200), &5, &None, &None));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(&events[1], EventPayload::Fetch { method, status: Some(200), .. } if method == "POST"));
    assert!(matches!(&events[3], EventPayload::Fetch { status: Some(404), bytes: 12, .. }));
    assert_eq!(server.seen(), ["GET /text", "POST /echo", "GET /bytes", "GET /nothing"]);
}

#[tokio::test]
async fn fetch_follows_redirects_within_the_allow_list_and_runs_requests_side_by_side() {
    let (h, server) = (Harness::new(), Server::start());
    let s = fetch_session(&h, &server, 1024).await;
    let base = server.base();
    let source = format!(
        r#"const r = await fetch('{base}/redirect-in');
           const all = await Promise.all([1, 2, 3].map(() => fetch('{base}/text').then(r => r.text())));
           [r.status, r.url, await r.text(), all]"#
    );
    let outcome = h.eval(s, &source).await;
    assert_eq!(json_of(&outcome), json!([200, format!("{base}/text"), "hello", ["hello", "hello", "hello"]]));
    match &fetch_events(&outcome)[0] {
        EventPayload::Fetch { url, final_url, status, .. } => {
            assert_eq!(url, &format!("{base}/redirect-in"));
            assert_eq!((final_url.as_deref(), *status), (Some(format!("{base}/text").as_str()), Some(200)));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fetch_events(&outcome).len(), 4);
}

#[tokio::test]
async fn fetch_refuses_what_the_policy_does_not_allow_with_a_coded_type_error() {
    let (h, server) = (Harness::new(), Server::start());
    let s = fetch_session(&h, &server, 1).await;
    let (base, port) = (server.base(), server.port);
    let unused = TcpListener::bind("127.0.0.1:0").expect("a port").local_addr().expect("its address").port();
    let cases = [
        ("a host not listed", "http://example.invalid/".to_owned(), "ERR_HOST_NOT_ALLOWED", "example.invalid:80"),
        (
            "a listed IP on another port",
            format!("http://127.0.0.1:{unused}/"),
            "ERR_HOST_NOT_ALLOWED",
            "is not in the allow list",
        ),
        (
            "loopback by a listed name",
            format!("http://localhost:{port}/text"),
            "ERR_ADDRESS_NOT_ALLOWED",
            "a loopback address",
        ),
        ("a redirect to a host not listed", format!("{base}/redirect-out"), "ERR_HOST_NOT_ALLOWED", "redirected to"),
        (
            "a redirect to loopback by name",
            format!("{base}/redirect-loopback"),
            "ERR_ADDRESS_NOT_ALLOWED",
            "redirected to",
        ),
        ("a body past max_fetch_kb", format!("{base}/big"), "ERR_FETCH_TOO_LARGE", "larger than 1 KiB"),
        ("another scheme", format!("ftp://127.0.0.1:{port}/"), "ERR_SCHEME_NOT_ALLOWED", "http and https only"),
        ("no URL at all", "not a url".to_owned(), "ERR_INVALID_URL", "Failed to parse URL"),
    ];
    for (label, url, code, message) in cases {
        let (outcome, json) = refusal(&h, s, &url).await;
        assert_eq!((json[0].as_str(), json[1].as_str()), (Some("TypeError"), Some(code)), "{label}: {json}");
        assert!(json[2].as_str().unwrap().contains(message), "{label}: {json}");
        if code != "ERR_INVALID_URL" {
            match fetch_events(&outcome).as_slice() {
                [EventPayload::Fetch { status: None, code: Some(recorded), error: Some(_), .. }] => {
                    assert_eq!(recorded, code, "{label}")
                }
                other => panic!("{label}: {other:?}"),
            }
        }
    }
    assert_eq!(
        server.seen(),
        ["GET /redirect-out", "GET /redirect-loopback", "GET /big"],
        "refused requests never reach a server"
    );
}

#[tokio::test]
async fn without_the_capability_fetch_rejects_with_err_fetch_disabled_and_the_classes_stay() {
    let h = Harness::new();
    let s = h.session().await;
    let (outcome, json) = refusal(&h, s, "http://127.0.0.1:9/").await;
    assert_eq!((json[0].as_str(), json[1].as_str()), (Some("TypeError"), Some("ERR_FETCH_DISABLED")));
    assert!(json[2].as_str().unwrap().contains("add a `net` capability named `fetch`"), "{json}");
    assert!(fetch_events(&outcome).is_empty(), "nothing was asked of the daemon");
    let classes = h
        .eval(
            s,
            "const h = new Headers({ 'X-A': '1' }); \
             [typeof fetch, typeof Request, typeof Response, new Request('http://a.example/').url, h.get('x-a'), \
              await new Response('body').text()]",
        )
        .await;
    assert_eq!(json_of(&classes), json!(["function", "function", "function", "http://a.example/", "1", "body"]));
}

#[tokio::test]
async fn an_invalid_allow_list_stops_the_session_from_starting() {
    let h = Harness::new();
    let mut spec = h.spec();
    spec.capabilities = vec![fetch_capability(json!({ "allow": ["https://api.example.com"] }))];
    let err = h.runtime.start(spec).await.expect_err("the start fails");
    assert!(err.to_string().contains("invalid allow entry \"https://api.example.com\""), "{err}");
}

#[tokio::test]
async fn a_fetch_event_counts_against_max_events_and_is_recorded_anyway() {
    let (h, server) = (Harness::new(), Server::start());
    let s = fetch_session_with(&h, &server, |settings| settings.limits.max_events = 1).await;
    let outcome = h.eval(s, &format!("console.log('a'); await fetch('{}/text'); 'after'", server.base())).await;
    assert_eq!(outcome.ending, Ending::Limit { hit: LimitHit::Events { max_events: 1 }, state: StateAfter::Kept });
    assert_eq!(fetch_events(&outcome).len(), 1, "the daemon's record of the request stays: {outcome:?}");
    assert!(!outcome.events.iter().any(|e| matches!(e, EventPayload::Value { .. })), "{outcome:?}");
}

#[tokio::test]
async fn a_fetch_cut_by_the_wall_limit_is_recorded_and_the_rolled_back_session_fetches_again() {
    let (h, server) = (Harness::new(), Server::start());
    let s = fetch_session_with(&h, &server, |settings| settings.limits.wall_ms = 700).await;
    let outcome = h.eval(s, &format!("await fetch('{}/slow')", server.base())).await;
    assert!(matches!(outcome.ending, Ending::Limit { hit: LimitHit::WallTime { .. }, .. }), "{outcome:?}");
    match fetch_events(&outcome).as_slice() {
        [EventPayload::Fetch { status: None, code: Some(code), .. }] => {
            assert!(code == "ERR_FETCH_ABORTED" || code == "ERR_FETCH_TIMEOUT", "{code}")
        }
        other => panic!("{other:?}"),
    }
    let again = h.eval(s, &format!("await (await fetch('{}/text')).text()", server.base())).await;
    assert_eq!(json_of(&again), json!("hello"));
}

#[tokio::test]
async fn a_forked_session_fetches_on_its_own_channel() {
    let (h, server) = (Harness::new(), Server::start());
    let a = fetch_session(&h, &server, 1024).await;
    let text = format!("await (await fetch('{}/text')).text()", server.base());
    assert_eq!(json_of(&h.eval(a, &text).await), json!("hello"));
    let b = SessionId::new();
    h.runtime.fork(a, b).await.expect("the session forks");
    let forked = h.eval(b, &text).await;
    assert_eq!(json_of(&forked), json!("hello"));
    assert_eq!(fetch_events(&forked).len(), 1);
    assert_eq!(json_of(&h.eval(a, &text).await), json!("hello"), "the source still fetches on its own");
}

#[tokio::test]
async fn an_aborted_fetch_rejects_at_once_and_is_recorded_as_aborted() {
    let (h, server) = (Harness::new(), Server::start());
    let s = fetch_session(&h, &server, 1024).await;
    let started = std::time::Instant::now();
    let source = format!(
        r#"const controller = new AbortController();
           setTimeout(() => controller.abort(), 50);
           await fetch('{}/slow', {{ signal: controller.signal }}).then(() => 'answered', e => e.name)"#,
        server.base()
    );
    let outcome = h.eval(s, &source).await;
    assert_eq!(json_of(&outcome), json!("AbortError"), "{outcome:?}");
    assert!(started.elapsed() < Duration::from_secs(4), "it did not wait for the server");
    match fetch_events(&outcome).as_slice() {
        [EventPayload::Fetch { status: None, code: Some(code), error: Some(error), .. }] => {
            assert_eq!((code.as_str(), error.as_str()), ("ERR_FETCH_ABORTED", "the script aborted the fetch"))
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn https_speaks_tls_to_the_allowed_address_and_fails_cleanly_against_plain_http() {
    let (h, server) = (Harness::new(), Server::start());
    let s = fetch_session(&h, &server, 1024).await;
    let (outcome, json) = refusal(&h, s, &format!("https://127.0.0.1:{}/text", server.port)).await;
    assert_eq!((json[0].as_str(), json[1].as_str()), (Some("TypeError"), Some("ERR_FETCH_FAILED")), "{json}");
    assert!(matches!(fetch_events(&outcome).as_slice(), [EventPayload::Fetch { status: None, .. }]));
}

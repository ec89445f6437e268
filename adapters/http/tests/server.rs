//! `vm_http::server::serve` over real TCP with tiny limits: header, idle and
//! body deadlines, the connection cap, HTTP/2 and graceful shutdown, around
//! a trivial poem endpoint. Times are real (hyper's timers and the kernel's
//! sockets do not follow a paused tokio clock), so bounds are loose.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use poem::web::{Query, RemoteAddr};
use poem::{get, handler, post, EndpointExt, Response, Route};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{timeout, Instant};
use vm_http::server::{self, ConnectionLimits};

const TICK: Duration = Duration::from_millis(300);

/// Every deadline at [`TICK`], room for 100 connections.
fn quick() -> ConnectionLimits {
    ConnectionLimits { header_read_timeout: TICK, idle_timeout: TICK, body_read_timeout: TICK, max_connections: 100 }
}

#[handler]
fn hello() -> &'static str {
    "hello"
}

#[handler]
fn echo(body: Vec<u8>) -> Response {
    Response::builder().content_type("application/json").body(body)
}

#[derive(serde::Deserialize)]
struct Pause {
    ms: u64,
}

#[handler]
async fn slow(Query(pause): Query<Pause>) -> &'static str {
    tokio::time::sleep(Duration::from_millis(pause.ms)).await;
    "slept"
}

#[handler]
fn peer(remote: &RemoteAddr) -> String {
    remote.as_socket_addr().map(ToString::to_string).unwrap_or_default()
}

struct TestServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    served: JoinHandle<io::Result<()>>,
}

impl TestServer {
    async fn start(limits: ConnectionLimits) -> Self {
        Self::start_with_grace(limits, Duration::from_secs(5)).await
    }

    async fn start_with_grace(limits: ConnectionLimits, grace: Duration) -> Self {
        let listener = server::bind("127.0.0.1:0".parse().unwrap()).expect("a free port");
        let addr = listener.local_addr().unwrap();
        let app = Route::new()
            .at("/hello", get(hello))
            .at("/echo", post(echo))
            .at("/slow", get(slow))
            .at("/peer", get(peer))
            .map_to_response();
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        let served = tokio::spawn(server::serve(listener, app, limits, shutdown, grace));
        Self { addr, stop: Some(stop), served }
    }

    async fn connect(&self) -> Client {
        Client::connect(self.addr).await
    }

    /// Signals shutdown and waits for `serve` to return; panics after 10 s.
    async fn shut_down(mut self) -> Duration {
        let start = Instant::now();
        self.stop.take().unwrap().send(()).unwrap();
        timeout(Duration::from_secs(10), &mut self.served)
            .await
            .expect("serve returns after shutdown")
            .unwrap()
            .expect("serve ends without error");
        start.elapsed()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.served.abort();
    }
}

/// A raw HTTP/1.1 client: what is sent is exactly what the test writes.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

#[derive(Debug)]
struct RawResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|err| panic!("{err}: {:?}", String::from_utf8_lossy(&self.body)))
    }
}

impl Client {
    async fn connect(addr: SocketAddr) -> Self {
        Self { stream: TcpStream::connect(addr).await.expect("the server listens"), buf: Vec::new() }
    }

    async fn send(&mut self, raw: &str) {
        self.stream.write_all(raw.as_bytes()).await.expect("the server reads");
    }

    async fn get(&mut self, path: &str) -> RawResponse {
        self.send(&format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")).await;
        self.response().await
    }

    /// Reads more bytes into the buffer; `false` on EOF or a reset.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        match self.stream.read(&mut chunk).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// The next response (with a `Content-Length` body); panics on EOF or after 5 s.
    async fn response(&mut self) -> RawResponse {
        timeout(Duration::from_secs(5), self.next_response()).await.expect("a response within 5 s")
    }

    async fn next_response(&mut self) -> RawResponse {
        let head_end = loop {
            if let Some(at) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at;
            }
            assert!(self.fill().await, "the connection closed before a response; got {:?}", self.text());
        };
        let head = String::from_utf8(self.buf[..head_end].to_vec()).unwrap();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .map(|line| {
                let (key, value) = line.split_once(':').unwrap();
                (key.trim().to_owned(), value.trim().to_owned())
            })
            .collect();
        let length: usize = headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case("content-length"))
            .map(|(_, value)| value.parse().unwrap())
            .unwrap_or_else(|| panic!("only Content-Length bodies are expected: {head}"));
        while self.buf.len() < head_end + 4 + length {
            assert!(self.fill().await, "the connection closed mid-body");
        }
        let body = self.buf[head_end + 4..head_end + 4 + length].to_vec();
        self.buf.drain(..head_end + 4 + length);
        RawResponse { status, headers, body }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf).into_owned()
    }

    /// Waits for the server to close the connection (EOF or reset) and says
    /// how long that took; panics if it is still open after 5 s.
    async fn closed(&mut self) -> Duration {
        let start = Instant::now();
        timeout(Duration::from_secs(5), async { while self.fill().await {} })
            .await
            .expect("the server closes the connection within 5 s");
        start.elapsed()
    }
}

fn assert_about(elapsed: Duration, expected: Duration, what: &str) {
    assert!(
        elapsed >= expected.mul_f32(0.8) && elapsed < expected + Duration::from_secs(2),
        "{what} after {elapsed:?}, expected about {expected:?}"
    );
}

#[tokio::test]
async fn requests_on_a_kept_alive_connection_are_all_answered() {
    let server = TestServer::start(ConnectionLimits::default()).await;
    let mut client = server.connect().await;
    for _ in 0..3 {
        let response = client.get("/hello").await;
        assert_eq!((response.status, response.body.as_slice()), (200, b"hello".as_slice()));
    }
    let body = r#"{"name":"écho","n":[1,2,3]}"#;
    client
        .send(&format!(
            "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ))
        .await;
    let response = client.response().await;
    assert_eq!(response.status, 200);
    assert_eq!(response.json(), serde_json::from_str::<Value>(body).unwrap());
    assert_eq!(client.get("/hello").await.status, 200, "still the same connection");
}

#[tokio::test]
async fn a_body_sent_after_expect_100_continue_is_read() {
    let server = TestServer::start(ConnectionLimits::default()).await;
    let mut client = server.connect().await;
    client.send("POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n").await;
    while !client.text().contains("\r\n\r\n") {
        assert!(client.fill().await);
    }
    assert!(client.text().starts_with("HTTP/1.1 100 Continue\r\n"), "{}", client.text());
    client.buf.clear();
    client.send("{}").await;
    let response = client.response().await;
    assert_eq!((response.status, response.body.as_slice()), (200, b"{}".as_slice()));
}

#[tokio::test]
async fn the_endpoint_sees_the_client_address() {
    let server = TestServer::start(ConnectionLimits::default()).await;
    let mut client = server.connect().await;
    let mine = client.stream.local_addr().unwrap();
    let response = client.get("/peer").await;
    assert_eq!(String::from_utf8(response.body).unwrap(), mine.to_string());
}

#[tokio::test]
async fn a_half_sent_header_is_closed_after_the_header_read_timeout() {
    let server = TestServer::start(ConnectionLimits { idle_timeout: Duration::from_secs(30), ..quick() }).await;
    let mut half = server.connect().await;
    half.send("GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n").await;
    let mut one_byte = server.connect().await;
    one_byte.send("P").await; // not yet a protocol: hyper's version sniffing has no timer
    let mut silent = server.connect().await;
    assert_about(half.closed().await, TICK, "a half-sent header closed");
    for (client, what) in [(&mut one_byte, "one byte"), (&mut silent, "a silent connection")] {
        let elapsed = client.closed().await;
        assert!(elapsed < Duration::from_secs(2), "{what} closed after {elapsed:?}");
    }
    assert_eq!(server.connect().await.get("/hello").await.status, 200, "the server still serves");
}

#[tokio::test]
async fn a_header_trickled_byte_by_byte_is_closed_at_the_header_read_timeout() {
    let server = TestServer::start(ConnectionLimits { idle_timeout: Duration::from_secs(30), ..quick() }).await;
    let mut client = server.connect().await;
    let start = Instant::now();
    for byte in "GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1234567890\r\n".chars() {
        if client.stream.write_all(&[byte as u8]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    client.closed().await;
    assert_about(start.elapsed(), TICK, "a trickled header closed");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let server = TestServer::start(ConnectionLimits { header_read_timeout: Duration::from_secs(30), ..quick() }).await;
    let mut client = server.connect().await;
    assert_eq!(client.get("/hello").await.status, 200);
    assert_about(client.closed().await, TICK, "an idle connection closed");
}

#[tokio::test]
async fn a_kept_alive_connection_may_idle_longer_than_the_header_read_timeout() {
    // hyper's own header timer would close it here: it starts when the
    // previous response ends, not at the next request's first byte.
    let server = TestServer::start(ConnectionLimits { idle_timeout: Duration::from_secs(30), ..quick() }).await;
    let mut client = server.connect().await;
    assert_eq!(client.get("/hello").await.status, 200);
    tokio::time::sleep(TICK * 3).await;
    assert_eq!(client.get("/hello").await.status, 200);
}

#[tokio::test]
async fn a_request_in_flight_outlives_the_idle_timeout() {
    let server = TestServer::start(quick()).await;
    let mut client = server.connect().await;
    let response = client.get(&format!("/slow?ms={}", (TICK * 4).as_millis())).await;
    assert_eq!((response.status, response.body.as_slice()), (200, b"slept".as_slice()));
}

#[tokio::test]
async fn a_slow_body_gets_408_in_the_error_envelope() {
    let server = TestServer::start(ConnectionLimits { header_read_timeout: Duration::from_secs(30), ..quick() }).await;
    let mut client = server.connect().await;
    let start = Instant::now();
    client
        .send(
            "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 20\r\n\
             X-Request-Id: slow-1\r\n\r\n{\"a\":",
        )
        .await;
    let response = client.response().await;
    assert_about(start.elapsed(), TICK, "408");
    assert_eq!(response.status, 408);
    assert_eq!(response.json()["error"]["code"], "REQUEST_TIMEOUT", "{:?}", response.json());
    assert!(response.json()["error"]["message"].as_str().unwrap().contains("body"));
    assert_eq!(response.header("x-request-id"), Some("slow-1"));
    assert_eq!(response.header("connection"), Some("close"));
    client.closed().await;
}

#[tokio::test]
async fn a_chunked_body_that_stalls_gets_408_too() {
    let server = TestServer::start(ConnectionLimits { header_read_timeout: Duration::from_secs(30), ..quick() }).await;
    let mut client = server.connect().await;
    client.send("POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n").await;
    let response = client.response().await;
    assert_eq!((response.status, response.json()["error"]["code"].as_str()), (408, Some("REQUEST_TIMEOUT")));
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_before_it_is_read() {
    let server = TestServer::start(ConnectionLimits::default()).await;
    let mut client = server.connect().await;
    let length = vm_http::payload::MAX_BODY_BYTES + 1;
    client.send(&format!("POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {length}\r\n\r\n{{")).await;
    let response = client.response().await;
    assert_eq!(response.status, 413);
    let error = &response.json()["error"];
    assert_eq!(error["code"], "PAYLOAD_TOO_LARGE");
    assert!(error["message"].as_str().unwrap().contains("16 MiB"), "{error}");
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_refused() {
    let server = TestServer::start(ConnectionLimits::default()).await;
    let mut client = server.connect().await;
    client.send("POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n").await;
    let chunk = vec![b'x'; 1 << 20];
    for _ in 0..17 {
        client.send(&format!("{:x}\r\n", chunk.len())).await;
        if client.stream.write_all(&chunk).await.is_err() || client.stream.write_all(b"\r\n").await.is_err() {
            break;
        }
    }
    let response = client.response().await;
    assert_eq!((response.status, response.json()["error"]["code"].as_str()), (413, Some("PAYLOAD_TOO_LARGE")));
}

#[tokio::test]
async fn past_max_connections_a_new_connection_waits_until_one_closes() {
    let long = Duration::from_secs(30);
    let limits =
        ConnectionLimits { header_read_timeout: long, idle_timeout: long, body_read_timeout: long, max_connections: 2 };
    let server = TestServer::start(limits).await;
    let mut first = server.connect().await;
    let mut second = server.connect().await;
    assert_eq!(first.get("/hello").await.status, 200);
    assert_eq!(second.get("/hello").await.status, 200);

    let mut third = server.connect().await; // the kernel completes the handshake
    third.send("GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await;
    assert!(timeout(TICK * 2, third.next_response()).await.is_err(), "a third connection is served past the cap");
    assert_eq!(second.get("/hello").await.status, 200, "the two served keep working");

    drop(first);
    let response = third.response().await;
    assert_eq!(response.status, 200, "the third is served once a slot frees");
}

#[tokio::test]
async fn http2_requests_are_answered_with_the_same_limits() {
    let server = TestServer::start(ConnectionLimits { idle_timeout: Duration::from_secs(30), ..quick() }).await;
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (mut send, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.expect("h2 handshake");
    tokio::spawn(connection);

    let request = |method: &str, path: &str, body: &'static str| {
        hyper::Request::builder()
            .method(method)
            .uri(format!("http://127.0.0.1{path}"))
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap()
    };
    let response = send.send_request(request("GET", "/hello", "")).await.unwrap();
    assert_eq!(response.version(), hyper::Version::HTTP_2);
    assert_eq!(response.into_body().collect().await.unwrap().to_bytes(), "hello");

    let response = send.send_request(request("POST", "/echo", r#"{"h2":true}"#)).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.into_body().collect().await.unwrap().to_bytes(), r#"{"h2":true}"#);

    // Idle past the header timeout: HTTP/2 waits for the idle timeout only.
    tokio::time::sleep(TICK * 3).await;
    let response = send.send_request(request("GET", "/hello", "")).await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn shutdown_lets_a_request_in_flight_finish_and_closes_idle_connections() {
    let server = TestServer::start(ConnectionLimits::default()).await;
    let mut idle = server.connect().await;
    assert_eq!(idle.get("/hello").await.status, 200);
    let mut busy = server.connect().await;
    busy.send("GET /slow?ms=600 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await;
    let addr = server.addr;
    // The slow request is in flight once its header has been read.
    tokio::time::sleep(Duration::from_millis(100)).await;

    let shutting_down = tokio::spawn(server.shut_down());
    assert!(idle.closed().await < Duration::from_millis(500), "an idle connection closes at once");
    let response = busy.response().await;
    assert_eq!((response.status, response.body.as_slice()), (200, b"slept".as_slice()));
    assert_eq!(response.header("connection"), Some("close"));
    let took = shutting_down.await.unwrap();
    assert!(took < Duration::from_secs(2), "serve returned after {took:?}");
    assert!(TcpStream::connect(addr).await.is_err(), "no more connections are accepted");
}

#[tokio::test]
async fn shutdown_closes_what_is_still_running_after_the_grace_period() {
    let server = TestServer::start_with_grace(ConnectionLimits::default(), TICK).await;
    let mut busy = server.connect().await;
    busy.send("GET /slow?ms=10000 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let took = server.shut_down().await;
    assert_about(took, TICK, "serve returned");
    busy.closed().await;
}

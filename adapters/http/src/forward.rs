//! Forwarding: a request that needs another node's worker is sent on to that
//! node over HTTP/1.1, and its answer comes back to the caller as the node
//! writes it (status, headers, then the body frame by frame, so server-sent
//! events keep flowing one by one).
//!
//! One [`Forwarder`] serves the whole daemon: its connections to the other
//! nodes are pooled and kept alive, so a forwarded REPL call costs a request
//! on an open connection, not a TCP handshake.
//!
//! The forwarded request carries the cluster secret in [`CREDENTIAL_HEADER`]
//! this node's id in [`FORWARDED_BY_HEADER`] and the target's in
//! [`FORWARDED_TO_HEADER`]; whatever the client sent
//! under those names is dropped, so a client cannot pass for a node.

use std::error::Error as StdError;
use std::io;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use poem::http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, Version};

/// Carries the cluster secret: the receiving node trusts the request as
/// coming from another node of the cluster, and never forwards it again.
pub const CREDENTIAL_HEADER: &str = "x-vm-node-credential";

/// Carries the id of the node that forwarded the request.
pub const FORWARDED_BY_HEADER: &str = "x-vm-forwarded-by";

/// Carries the id of the node the request is meant for: a node that is not
/// that one (two nodes advertising one URL) refuses it rather than serve a
/// session it does not run.
pub const FORWARDED_TO_HEADER: &str = "x-vm-forwarded-to";

/// How long a new connection to a node may take before the node counts as
/// unreachable. Nodes are on one network; two seconds is already a failure.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// An idle pooled connection is closed after this.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Forwards requests to other nodes over HTTP/1.1 with pooled keep-alive connections.
///
/// Cheap to clone: clones share one pool. There is no overall deadline on a
/// request, since a forwarded event stream lasts as long as its execution;
/// only connecting is bounded (2 s).
#[derive(Clone, Debug)]
pub struct Forwarder {
    client: Client<HttpConnector, Full<Bytes>>,
}

/// One request to send elsewhere.
#[derive(Debug)]
pub struct Forward<'a> {
    /// The target node's base URL, e.g. `http://127.0.0.1:41234` (a trailing
    /// slash is tolerated).
    pub base_url: &'a str,
    pub method: Method,
    /// The path and query as received, e.g. `/api/v1/executions/repl?wait=true`.
    pub path_and_query: &'a str,
    /// The client's request headers; hop-by-hop ones are not passed on.
    pub headers: &'a HeaderMap,
    /// The request body, already read.
    pub body: Bytes,
    /// The cluster secret, sent in [`CREDENTIAL_HEADER`].
    pub credential: &'a str,
    /// This node's id, sent in [`FORWARDED_BY_HEADER`].
    pub from_node: &'a str,
    /// The target node's id, sent in [`FORWARDED_TO_HEADER`].
    pub to_node: &'a str,
}

/// Why a request could not be forwarded.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The node could not be reached (connect refused, timeout connecting,
    /// reset before any response). Nothing came back, so the caller answers
    /// for the node; the text is a short reason, e.g. `connection refused`.
    #[error("node unreachable: {0}")]
    Unreachable(String),
}

impl Default for Forwarder {
    fn default() -> Self {
        Self::new()
    }
}

impl Forwarder {
    /// A forwarder with an empty pool: connecting times out after 2 s, and an
    /// idle connection is closed after 30 s.
    pub fn new() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        // Small requests and SSE frames go out at once, not after Nagle's
        // wait for the peer's delayed ACK.
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build(connector);
        Self { client }
    }

    /// Sends `forward` to its node and returns the node's response: same
    /// status, same headers less the hop-by-hop ones, and a body streamed
    /// from the node as it arrives (never buffered here).
    ///
    /// Any failure before the response head arrives is
    /// [`ForwardError::Unreachable`]. A failure after it (the node dies
    /// mid-stream) ends the body with an I/O error, which aborts the
    /// caller's response.
    pub async fn send(&self, forward: Forward<'_>) -> Result<poem::Response, ForwardError> {
        let request = build_request(forward)?;
        let response = self.client.request(request).await.map_err(|err| ForwardError::Unreachable(reason(&err)))?;
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        // The node's body frames pass through one by one.
        let body = poem::Body::from(body.map_err(io::Error::other).boxed());
        let mut out = poem::Response::builder().status(parts.status).body(body);
        *out.headers_mut() = parts.headers;
        Ok(out)
    }
}

/// The request to the node: target URL, the client's end-to-end headers, our
/// own `Host`, credential, forwarder id and `Content-Length`.
fn build_request(forward: Forward<'_>) -> Result<Request<Full<Bytes>>, ForwardError> {
    let Forward { base_url, method, path_and_query, headers, body, credential, from_node, to_node } = forward;
    let base = base_url.strip_suffix('/').unwrap_or(base_url);
    let slash = if path_and_query.starts_with('/') { "" } else { "/" };
    let uri: Uri = format!("{base}{slash}{path_and_query}")
        .parse()
        .map_err(|err| ForwardError::Unreachable(format!("invalid node URL {base}: {err}")))?;
    let host = uri
        .authority()
        .and_then(|authority| HeaderValue::from_str(authority.as_str()).ok())
        .ok_or_else(|| ForwardError::Unreachable(format!("invalid node URL {base}: no host")))?;
    let credential = HeaderValue::from_str(credential)
        .map_err(|_| ForwardError::Unreachable("the cluster credential is not a valid header value".to_owned()))?;
    let node_id = |id: &str| {
        HeaderValue::from_str(id)
            .map_err(|_| ForwardError::Unreachable("the node id is not a valid header value".to_owned()))
    };
    let (from_node, to_node) = (node_id(from_node)?, node_id(to_node)?);

    let mut out = HeaderMap::with_capacity(headers.len() + 4);
    let listed_by_connection = headers.contains_key(header::CONNECTION);
    for (name, value) in headers {
        let ours = matches!(
            name.as_str(),
            "host" | "content-length" | "expect" | CREDENTIAL_HEADER | FORWARDED_BY_HEADER | FORWARDED_TO_HEADER
        );
        if ours || is_hop_by_hop(name) || (listed_by_connection && named_by_connection(headers, name)) {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out.insert(header::HOST, host);
    // A bodiless GET or HEAD says nothing about a body, as its client did.
    if !(body.is_empty() && (method == Method::GET || method == Method::HEAD)) {
        out.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    out.insert(HeaderName::from_static(CREDENTIAL_HEADER), credential);
    out.insert(HeaderName::from_static(FORWARDED_BY_HEADER), from_node);
    out.insert(HeaderName::from_static(FORWARDED_TO_HEADER), to_node);

    let mut request = Request::new(Full::new(body));
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = Version::HTTP_11;
    *request.headers_mut() = out;
    Ok(request)
}

/// Headers about one connection rather than the message (RFC 9110 §7.6.1),
/// plus the legacy `keep-alive` and `proxy-connection`.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            | "proxy-authorization"
            | "proxy-authenticate"
    )
}

/// The header names the `Connection` header lists, which makes them hop-by-hop too.
fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
}

/// Whether the `Connection` header lists `name`.
fn named_by_connection(headers: &HeaderMap, name: &HeaderName) -> bool {
    connection_tokens(headers).any(|token| token.eq_ignore_ascii_case(name.as_str()))
}

/// Removes the hop-by-hop headers of a response, and those its `Connection`
/// header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<HeaderName> =
        connection_tokens(headers).filter_map(|token| HeaderName::from_bytes(token.as_bytes()).ok()).collect();
    for name in listed {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
        header::TRANSFER_ENCODING,
        header::TE,
        header::TRAILER,
        header::UPGRADE,
        header::PROXY_AUTHORIZATION,
        header::PROXY_AUTHENTICATE,
    ] {
        headers.remove(name);
    }
}

/// A short, readable reason for a failed exchange: the I/O error underneath
/// when there is one (`connection refused`), else the innermost message
/// (`connection closed before message completed`).
fn reason(err: &hyper_util::client::legacy::Error) -> String {
    let mut innermost: &(dyn StdError + 'static) = err;
    while let Some(source) = innermost.source() {
        innermost = source;
        if let Some(io) = source.downcast_ref::<io::Error>() {
            return match io.kind() {
                io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
                io::ErrorKind::TimedOut => format!("no connection within {} s", CONNECT_TIMEOUT.as_secs()),
                io::ErrorKind::ConnectionReset => "connection reset".to_owned(),
                io::ErrorKind::ConnectionAborted => "connection aborted".to_owned(),
                io::ErrorKind::HostUnreachable => "host unreachable".to_owned(),
                io::ErrorKind::NetworkUnreachable => "network unreachable".to_owned(),
                _ => io.to_string(),
            };
        }
    }
    innermost.to_string()
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Instant;

    use futures::StreamExt;
    use poem::http::StatusCode;
    use poem::listener::{Acceptor, Listener, TcpListener};
    use poem::{handler, post, Endpoint, IntoResponse, Route, Server};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::Notify;

    use super::*;

    const SECRET: &str = "cluster-secret";
    const NODE: &str = "3f1c0b7e-8a39-4d7e-9b0e-2f4f0a6f9a11";
    const TARGET: &str = "9d2e7a40-1b6c-4f35-8e21-7c0a5b3d6e98";

    /// Serves `app` on a fresh loopback port; returns its base URL.
    async fn serve(app: impl Endpoint + 'static) -> String {
        let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
        let addr = *acceptor.local_addr()[0].as_socket_addr().unwrap();
        tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
        format!("http://{addr}")
    }

    fn forward<'a>(base_url: &'a str, method: Method, path_and_query: &'a str, headers: &'a HeaderMap) -> Forward<'a> {
        Forward {
            base_url,
            method,
            path_and_query,
            headers,
            body: Bytes::new(),
            credential: SECRET,
            from_node: NODE,
            to_node: TARGET,
        }
    }

    /// Echoes what arrived: method, URI, body, and every header's values.
    #[handler]
    async fn echo(req: &poem::Request, body: Bytes) -> poem::web::Json<serde_json::Value> {
        let mut headers = serde_json::Map::new();
        for name in req.headers().keys() {
            let values: Vec<_> = req.headers().get_all(name).iter().map(|v| v.to_str().unwrap().to_owned()).collect();
            headers.insert(name.as_str().to_owned(), values.into());
        }
        poem::web::Json(serde_json::json!({
            "method": req.method().as_str(),
            "uri": req.uri().to_string(),
            "body": String::from_utf8(body.to_vec()).unwrap(),
            "headers": headers,
        }))
    }

    async fn json_of(response: poem::Response) -> serde_json::Value {
        serde_json::from_slice(&response.into_body().into_bytes().await.unwrap()).unwrap()
    }

    #[tokio::test]
    async fn the_request_arrives_with_its_end_to_end_headers_and_our_credential() {
        let base = serve(Route::new().at("/api/v1/executions/repl", post(echo))).await;
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("authorization", "Bearer vm_token"),
            ("x-request-id", "req-42"),
            ("accept", "application/json"),
            ("last-event-id", "7"),
            ("content-type", "application/json"),
            ("origin", "http://ui.example"),
            ("host", "client-facing.example"),
            ("content-length", "999"),
            (CREDENTIAL_HEADER, "forged"),
            (FORWARDED_BY_HEADER, "forged-node"),
            (FORWARDED_TO_HEADER, "forged-target"),
            ("connection", "keep-alive, x-private-hop"),
            ("x-private-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers"),
            ("trailer", "x-checksum"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic eDp5"),
            ("proxy-authenticate", "Basic"),
        ] {
            headers.append(HeaderName::from_static(name), HeaderValue::from_static(value));
        }
        let body = r#"{"session_id":"s","code":"1+1"}"#;
        let response = Forwarder::new()
            .send(Forward {
                body: Bytes::from_static(body.as_bytes()),
                ..forward(&format!("{base}/"), Method::POST, "/api/v1/executions/repl?wait=true", &headers)
            })
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let seen = json_of(response).await;

        assert_eq!(seen["method"], "POST");
        assert_eq!(seen["uri"], "/api/v1/executions/repl?wait=true");
        assert_eq!(seen["body"], body);
        let seen = &seen["headers"];
        let authority = base.strip_prefix("http://").unwrap();
        for (name, value) in [
            ("authorization", "Bearer vm_token"),
            ("x-request-id", "req-42"),
            ("accept", "application/json"),
            ("last-event-id", "7"),
            ("content-type", "application/json"),
            ("origin", "http://ui.example"),
            ("host", authority),
            ("content-length", &body.len().to_string()),
            (CREDENTIAL_HEADER, SECRET),
            (FORWARDED_BY_HEADER, NODE),
            (FORWARDED_TO_HEADER, TARGET),
        ] {
            assert_eq!(seen[name], serde_json::json!([value]), "{name}");
        }
        for name in [
            "connection",
            "x-private-hop",
            "keep-alive",
            "proxy-connection",
            "te",
            "trailer",
            "upgrade",
            "proxy-authorization",
            "proxy-authenticate",
            "transfer-encoding",
        ] {
            assert!(seen.get(name).is_none(), "{name} was passed on: {seen}");
        }
    }

    #[tokio::test]
    async fn the_response_comes_back_with_its_status_headers_and_body() {
        #[handler]
        fn conflict() -> poem::Response {
            poem::Response::builder()
                .status(StatusCode::CONFLICT)
                .content_type("application/json")
                .header("x-vm-node", "owner-node")
                .header("retry-after", "1")
                .header("connection", "x-private-hop")
                .header("x-private-hop", "1")
                .header("keep-alive", "timeout=5")
                .body(r#"{"error":{"code":"SESSION_BUSY","message":"busy","details":{}}}"#)
        }
        let base = serve(Route::new().at("/api/v1/sessions/s/close", post(conflict))).await;
        let headers = HeaderMap::new();
        let response =
            Forwarder::new().send(forward(&base, Method::POST, "/api/v1/sessions/s/close", &headers)).await.unwrap();

        assert_eq!(response.status(), StatusCode::CONFLICT);
        let got = response.headers();
        assert_eq!(got["content-type"], "application/json");
        assert_eq!(got["x-vm-node"], "owner-node");
        assert_eq!(got["retry-after"], "1");
        for name in ["connection", "x-private-hop", "keep-alive", "transfer-encoding"] {
            assert!(!got.contains_key(name), "{name} came back");
        }
        assert_eq!(json_of(response).await["error"]["code"], "SESSION_BUSY");
    }

    #[tokio::test]
    async fn an_event_stream_flows_event_by_event() {
        let go_on = Arc::new(Notify::new());
        let app = {
            let go_on = go_on.clone();
            Route::new().at(
                "/api/v1/executions/e/events",
                poem::get(poem::endpoint::make(move |_| {
                    let go_on = go_on.clone();
                    async move {
                        let first = futures::stream::once(async { Ok::<_, io::Error>("id: 1\ndata: one\n\n") });
                        // The second event exists only once the test has
                        // read the first through the forwarder.
                        let second = futures::stream::once(async move {
                            go_on.notified().await;
                            Ok("id: 2\ndata: two\n\n")
                        });
                        poem::Body::from_bytes_stream(first.chain(second))
                            .with_content_type("text/event-stream")
                            .into_response()
                    }
                })),
            )
        };
        let base = serve(app).await;
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static("text/event-stream"));
        let deadline = Duration::from_secs(5);
        let forwarder = Forwarder::new();
        let sent = forwarder.send(forward(&base, Method::GET, "/api/v1/executions/e/events", &headers));
        let response = tokio::time::timeout(deadline, sent).await.expect("the response head is held back").unwrap();
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let mut body = response.into_body().into_bytes_stream();

        let mut read = Vec::new();
        while read != b"id: 1\ndata: one\n\n" {
            let chunk = tokio::time::timeout(deadline, body.next()).await.expect("the first event is held back");
            read.extend_from_slice(&chunk.expect("the stream ended early").unwrap());
        }
        go_on.notify_one();
        while let Some(chunk) = tokio::time::timeout(deadline, body.next()).await.expect("the rest did not come") {
            read.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(read, b"id: 1\ndata: one\n\nid: 2\ndata: two\n\n");
    }

    #[tokio::test]
    async fn a_node_nothing_listens_for_is_unreachable_at_once() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let base = format!("http://127.0.0.1:{port}");
        let headers = HeaderMap::new();
        let started = Instant::now();
        let result = Forwarder::new().send(forward(&base, Method::POST, "/api/v1/executions/repl", &headers)).await;
        assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
        match result {
            Err(ForwardError::Unreachable(reason)) => assert_eq!(reason, "connection refused"),
            Ok(response) => panic!("answered {}", response.status()),
        }
    }

    #[tokio::test]
    async fn a_node_that_hangs_up_before_answering_is_unreachable() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut buf = [0; 1024];
                let _ = socket.read(&mut buf).await;
                drop(socket);
            }
        });
        let base = format!("http://{addr}");
        let headers = HeaderMap::new();
        let result = Forwarder::new().send(forward(&base, Method::POST, "/api/v1/executions/repl", &headers)).await;
        match result {
            Err(ForwardError::Unreachable(reason)) => {
                assert_eq!(reason, "connection closed before message completed")
            }
            Ok(response) => panic!("answered {}", response.status()),
        }
    }

    /// Counts connections while answering every request with 204 over
    /// keep-alive HTTP/1.1.
    async fn counting_server(connections: Arc<AtomicUsize>) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0; 4096];
                    loop {
                        let Ok(n @ 1..) = socket.read(&mut chunk).await else { return };
                        buf.extend_from_slice(&chunk[..n]);
                        // Bodiless GETs: a request ends with its blank line.
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..end + 4);
                            let reply = b"HTTP/1.1 204 No Content\r\n\r\n";
                            if socket.write_all(reply).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn requests_to_one_node_share_a_kept_alive_connection() {
        let connections = Arc::new(AtomicUsize::new(0));
        let base = format!("http://{}", counting_server(connections.clone()).await);
        let forwarder = Forwarder::new();
        let headers = HeaderMap::new();
        for _ in 0..5 {
            let response = forwarder.send(forward(&base, Method::GET, "/api/v1/health", &headers)).await.unwrap();
            assert_eq!(response.status(), StatusCode::NO_CONTENT);
            response.into_body().into_bytes().await.unwrap();
        }
        assert_eq!(connections.load(Ordering::SeqCst), 1);
    }
}

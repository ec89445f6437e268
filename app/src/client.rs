//! Typed client of a running daemon's REST API, used by every command but
//! `serve`. Requests and responses are the HTTP adapter's own wire types
//! (`vm_http::dto`), so the CLI cannot drift from the API. Every request
//! carries the bearer token [`Credentials::resolve`] found. An execution's
//! live events come as Server-Sent Events ([`EventStream`], parsed by
//! [`sse`]), resumed after a dropped connection.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use vm_http::dto::{
    CapabilityView, CatalogLibraryView, CatalogModuleView, CreateCapabilityBody, CreateSessionBody,
    CreateStartupFileBody, CreateTemplateBody, CreateTokenBody, CreatedTokenView, EventView, ExecutionView,
    ExecutionWithEventsView, HealthView, NodeView, ReadyView, ReplBody, RunFileBody, RuntimeSummaryView, SessionView,
    SettingsBody, SettingsView, StartupFileView, TemplateDetailView, TemplateView, TokenView, WhoAmIView,
};
use vm_http::API_PREFIX;

/// A decoded response together with the JSON exactly as the daemon sent it,
/// so `-o json` prints the API object and not a re-serialisation of it.
#[derive(Debug)]
pub struct Reply<T> {
    pub value: T,
    pub raw: Value,
}

/// Why a call did not produce a response value.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// `--server-url` is not an `http://` or `https://` URL.
    #[error("invalid server URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    /// Nothing answered at the server URL.
    #[error(
        "cannot reach the vm-system daemon at {url} ({reason}); start it with `vm-system serve`, \
         or point --server-url or VM_SYSTEM_URL at a running daemon"
    )]
    Unreachable { url: String, reason: String },
    /// The daemon answered with its error envelope. After a 401 the message
    /// ends with a `hint:` line: which token was sent, and how to give one.
    /// `retry_after` is the `Retry-After` of a 503, in seconds.
    #[error("{code}: {message}")]
    Api { status: u16, code: String, message: String, details: Value, retry_after: Option<u64> },
    /// The daemon answered something that is not the documented shape.
    #[error("unexpected answer from {url}: {reason}")]
    Protocol { url: String, reason: String },
}

/// The bearer token a client sends, and where it came from. Its `Debug`
/// names only the source: the secret never reaches a log line.
#[derive(Clone)]
pub struct Credentials {
    /// `Bearer <secret>`, marked sensitive.
    header: Option<HeaderValue>,
    source: TokenSource,
}

/// Where the token came from, as the hint after a 401 says it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TokenSource {
    /// `--token` or `VM_SYSTEM_TOKEN`.
    Given,
    /// The bootstrap admin token file of a daemon on this machine.
    File(PathBuf),
    /// `--token ""`: no token on purpose, no file read.
    Blank,
    /// No token; `looked_at` is the token file tried for a daemon on this
    /// machine (none for a remote daemon).
    Missing { looked_at: Option<PathBuf> },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("source", &self.source).finish_non_exhaustive()
    }
}

impl Credentials {
    /// The token of a client of `server_url`: `given` (`--token` or
    /// `VM_SYSTEM_TOKEN`; blank means none) or, for a daemon on a loopback
    /// address, the bootstrap admin token file in the default data
    /// directory when this user can read it. A given token that an HTTP
    /// header cannot carry is refused in words.
    pub fn resolve(given: Option<&str>, server_url: &str) -> std::result::Result<Self, String> {
        Self::resolve_in(given, server_url, &crate::auth::default_data_dir())
    }

    /// No token at all.
    pub fn none() -> Self {
        Self { header: None, source: TokenSource::Missing { looked_at: None } }
    }

    fn resolve_in(given: Option<&str>, server_url: &str, data_dir: &Path) -> std::result::Result<Self, String> {
        if let Some(given) = given {
            let secret = given.trim();
            if secret.is_empty() {
                return Ok(Self { header: None, source: TokenSource::Blank });
            }
            let header = bearer(secret).ok_or_else(|| {
                "the token (--token or VM_SYSTEM_TOKEN) holds characters an HTTP header cannot carry".to_owned()
            })?;
            return Ok(Self { header: Some(header), source: TokenSource::Given });
        }
        let Some(port) = Url::parse(server_url).ok().filter(is_loopback).and_then(|url| url.port_or_known_default())
        else {
            return Ok(Self::none());
        };
        let file = crate::auth::token_file(data_dir, port);
        match crate::auth::read_token_file(&file).and_then(|secret| bearer(&secret)) {
            Some(header) => Ok(Self { header: Some(header), source: TokenSource::File(file) }),
            None => Ok(Self { header: None, source: TokenSource::Missing { looked_at: Some(file) } }),
        }
    }

    /// The line added to a 401's message: what was sent and how to send
    /// something that works.
    fn hint(&self) -> String {
        let give = "set VM_SYSTEM_TOKEN or pass --token (`vm-system token create` makes tokens)";
        match &self.source {
            TokenSource::Given => format!("hint: the daemon refused the token from --token/VM_SYSTEM_TOKEN; {give}"),
            TokenSource::File(file) => format!(
                "hint: the daemon refused the token read from {} (revoked, or of an older daemon); {give}",
                file.display()
            ),
            TokenSource::Blank => format!("hint: no token was sent (--token/VM_SYSTEM_TOKEN is blank); {give}"),
            TokenSource::Missing { looked_at: Some(file) } => format!(
                "hint: no token was sent: the token file {} cannot be read (a daemon on this machine writes it \
                 with its bootstrap token, readable only by the daemon's user); {give}",
                file.display()
            ),
            TokenSource::Missing { looked_at: None } => {
                format!("hint: no token was sent (token files are read only for a daemon on this machine); {give}")
            }
        }
    }
}

/// `Bearer <secret>` as a sensitive header value, or `None` when the secret
/// holds characters a header cannot carry.
fn bearer(secret: &str) -> Option<HeaderValue> {
    let mut value = HeaderValue::from_str(&format!("Bearer {secret}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// Whether `url` names this machine: `localhost`, `127.0.0.0/8` or `::1`.
fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else { return false };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The REST client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    server_url: String,
    api: Url,
    credentials: Credentials,
}

type Result<T> = std::result::Result<Reply<T>, ClientError>;

impl Client {
    /// A client of the daemon at `server_url` (e.g. `http://127.0.0.1:3210`)
    /// that sends the token of `credentials` on every request.
    pub fn new(server_url: &str, credentials: Credentials) -> std::result::Result<Self, ClientError> {
        let bad = |reason: &str| ClientError::BadUrl { url: server_url.to_owned(), reason: reason.to_owned() };
        let base = Url::parse(server_url).map_err(|err| bad(&err.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() || base.host().is_none() {
            return Err(bad("expected http://HOST:PORT"));
        }
        let mut api = base.clone();
        api.path_segments_mut()
            .map_err(|()| bad("expected http://HOST:PORT"))?
            .pop_if_empty()
            .extend(API_PREFIX.trim_start_matches('/').split('/'));
        let mut headers = HeaderMap::new();
        if let Some(header) = &credentials.header {
            headers.insert(AUTHORIZATION, header.clone());
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .default_headers(headers)
            .build()
            .map_err(|err| bad(&err.to_string()))?;
        Ok(Self { http, server_url: server_url.trim_end_matches('/').to_owned(), api, credentials })
    }

    // ------------------------------------------------------------ ops

    pub async fn health(&self) -> Result<HealthView> {
        self.call(Method::GET, &["health"], &[], None).await
    }

    /// Readiness: 200 while the daemon's store answers, a session could start and it is not
    /// draining; `SHUTTING_DOWN`, `STORE_UNAVAILABLE` or `RUNTIME_UNAVAILABLE` otherwise.
    pub async fn ready(&self) -> Result<ReadyView> {
        self.call(Method::GET, &["ready"], &[], None).await
    }

    pub async fn runtime_summary(&self) -> Result<RuntimeSummaryView> {
        self.call(Method::GET, &["runtime", "summary"], &[], None).await
    }

    /// The daemons (nodes) sharing the database: live ones first, then lost ones, newest first;
    /// `this_node` marks the one that answered.
    pub async fn nodes(&self) -> Result<Vec<NodeView>> {
        self.call(Method::GET, &["nodes"], &[], None).await
    }

    // ------------------------------------------------------------ templates

    pub async fn templates(&self) -> Result<Vec<TemplateView>> {
        self.call(Method::GET, &["templates"], &[], None).await
    }

    pub async fn create_template(&self, body: &CreateTemplateBody) -> Result<TemplateDetailView> {
        self.call(Method::POST, &["templates"], &[], Some(json(body)?)).await
    }

    pub async fn template(&self, id: &str) -> Result<TemplateDetailView> {
        self.call(Method::GET, &["templates", id], &[], None).await
    }

    /// Answers `204` with no body: the reply's `raw` is `null`.
    pub async fn delete_template(&self, id: &str) -> Result<()> {
        self.call(Method::DELETE, &["templates", id], &[], None).await
    }

    pub async fn settings(&self, id: &str) -> Result<SettingsView> {
        self.call(Method::GET, &["templates", id, "settings"], &[], None).await
    }

    pub async fn replace_settings(&self, id: &str, body: &SettingsBody) -> Result<SettingsView> {
        self.call(Method::PUT, &["templates", id, "settings"], &[], Some(json(body)?)).await
    }

    pub async fn capabilities(&self, id: &str) -> Result<Vec<CapabilityView>> {
        self.call(Method::GET, &["templates", id, "capabilities"], &[], None).await
    }

    pub async fn add_capability(&self, id: &str, body: &CreateCapabilityBody) -> Result<CapabilityView> {
        self.call(Method::POST, &["templates", id, "capabilities"], &[], Some(json(body)?)).await
    }

    pub async fn startup_files(&self, id: &str) -> Result<Vec<StartupFileView>> {
        self.call(Method::GET, &["templates", id, "startup-files"], &[], None).await
    }

    pub async fn add_startup_file(&self, id: &str, body: &CreateStartupFileBody) -> Result<StartupFileView> {
        self.call(Method::POST, &["templates", id, "startup-files"], &[], Some(json(body)?)).await
    }

    pub async fn modules(&self, id: &str) -> Result<Vec<String>> {
        self.call(Method::GET, &["templates", id, "modules"], &[], None).await
    }

    pub async fn add_module(&self, id: &str, name: &str) -> Result<Vec<String>> {
        let body = json(&serde_json::json!({ "name": name }))?;
        self.call(Method::POST, &["templates", id, "modules"], &[], Some(body)).await
    }

    pub async fn remove_module(&self, id: &str, name: &str) -> Result<Vec<String>> {
        self.call(Method::DELETE, &["templates", id, "modules", name], &[], None).await
    }

    pub async fn libraries(&self, id: &str) -> Result<Vec<String>> {
        self.call(Method::GET, &["templates", id, "libraries"], &[], None).await
    }

    pub async fn add_library(&self, id: &str, name: &str) -> Result<Vec<String>> {
        let body = json(&serde_json::json!({ "name": name }))?;
        self.call(Method::POST, &["templates", id, "libraries"], &[], Some(body)).await
    }

    pub async fn remove_library(&self, id: &str, name: &str) -> Result<Vec<String>> {
        self.call(Method::DELETE, &["templates", id, "libraries", name], &[], None).await
    }

    // ------------------------------------------------------------ catalog

    pub async fn catalog_modules(&self) -> Result<Vec<CatalogModuleView>> {
        self.call(Method::GET, &["catalog", "modules"], &[], None).await
    }

    pub async fn catalog_libraries(&self) -> Result<Vec<CatalogLibraryView>> {
        self.call(Method::GET, &["catalog", "libraries"], &[], None).await
    }

    // ------------------------------------------------------------ sessions

    pub async fn sessions(&self, status: Option<&str>) -> Result<Vec<SessionView>> {
        let query: Vec<(&str, String)> = status.map(|s| ("status", s.to_owned())).into_iter().collect();
        self.call(Method::GET, &["sessions"], &query, None).await
    }

    /// A new session; with `local`, on the node this client talks to
    /// (`placement=local`), otherwise where placement puts it.
    pub async fn create_session(&self, body: &CreateSessionBody, local: bool) -> Result<SessionView> {
        let query = if local { vec![("placement", "local".to_owned())] } else { Vec::new() };
        self.call(Method::POST, &["sessions"], &query, Some(json(body)?)).await
    }

    pub async fn session(&self, id: &str) -> Result<SessionView> {
        self.call(Method::GET, &["sessions", id], &[], None).await
    }

    pub async fn close_session(&self, id: &str) -> Result<SessionView> {
        self.call(Method::POST, &["sessions", id, "close"], &[], None).await
    }

    /// A new session whose heap starts as a copy of `id`'s (`forked_from`).
    pub async fn fork_session(&self, id: &str) -> Result<SessionView> {
        self.call(Method::POST, &["sessions", id, "fork"], &[], None).await
    }

    // ------------------------------------------------------------ executions

    /// Runs a snippet and answers once it has ended, with its events.
    pub async fn repl(&self, body: &ReplBody) -> Result<ExecutionWithEventsView> {
        let body = ReplBody { wait: None, ..body.clone() };
        self.call(Method::POST, &["executions", "repl"], &[], Some(json(&body)?)).await
    }

    /// Starts a snippet and answers at once with the `running` execution
    /// (`"wait": false`); [`Client::follow`] gets its events.
    pub async fn submit_repl(&self, body: &ReplBody) -> Result<ExecutionView> {
        let body = ReplBody { wait: Some(false), ..body.clone() };
        self.call(Method::POST, &["executions", "repl"], &[], Some(json(&body)?)).await
    }

    /// Runs a file and answers once it has ended, with its events.
    pub async fn run_file(&self, body: &RunFileBody) -> Result<ExecutionWithEventsView> {
        let body = RunFileBody { wait: None, ..body.clone() };
        self.call(Method::POST, &["executions", "run-file"], &[], Some(json(&body)?)).await
    }

    /// Starts a file run and answers at once with the `running` execution.
    pub async fn submit_run_file(&self, body: &RunFileBody) -> Result<ExecutionView> {
        let body = RunFileBody { wait: Some(false), ..body.clone() };
        self.call(Method::POST, &["executions", "run-file"], &[], Some(json(&body)?)).await
    }

    /// Cancels a running execution; answers it as it ended (`cancelled`).
    /// `EXECUTION_NOT_RUNNING` (409) when it had already ended.
    pub async fn cancel_execution(&self, id: &str) -> Result<ExecutionView> {
        self.call(Method::POST, &["executions", id, "cancel"], &[], None).await
    }

    pub async fn executions(&self, session_id: Option<&str>, limit: Option<i64>) -> Result<Vec<ExecutionView>> {
        let mut query = Vec::new();
        if let Some(session_id) = session_id {
            query.push(("session_id", session_id.to_owned()));
        }
        if let Some(limit) = limit {
            query.push(("limit", limit.to_string()));
        }
        self.call(Method::GET, &["executions"], &query, None).await
    }

    pub async fn execution(&self, id: &str) -> Result<ExecutionView> {
        self.call(Method::GET, &["executions", id], &[], None).await
    }

    pub async fn events(&self, id: &str, after_seq: Option<i64>) -> Result<Vec<EventView>> {
        let query: Vec<(&str, String)> = after_seq.map(|n| ("after_seq", n.to_string())).into_iter().collect();
        self.call(Method::GET, &["executions", id, "events"], &query, None).await
    }

    /// The live events of execution `id` with `seq` greater than `after_seq`,
    /// then its end. Nothing is sent before the first [`EventStream::next`].
    pub fn follow(&self, id: &str, after_seq: Option<i64>) -> EventStream {
        EventStream {
            client: self.clone(),
            execution: id.to_owned(),
            after_seq,
            last_seq: None,
            body: None,
            parser: sse::Parser::default(),
            done: false,
        }
    }

    // ------------------------------------------------------------ tokens

    pub async fn tokens(&self) -> Result<Vec<TokenView>> {
        self.call(Method::GET, &["tokens"], &[], None).await
    }

    /// The reply holds the new token's secret, which the daemon never shows again.
    pub async fn create_token(&self, body: &CreateTokenBody) -> Result<CreatedTokenView> {
        self.call(Method::POST, &["tokens"], &[], Some(json(body)?)).await
    }

    pub async fn token(&self, id: &str) -> Result<TokenView> {
        self.call(Method::GET, &["tokens", id], &[], None).await
    }

    pub async fn revoke_token(&self, id: &str) -> Result<TokenView> {
        self.call(Method::DELETE, &["tokens", id], &[], None).await
    }

    pub async fn whoami(&self) -> Result<WhoAmIView> {
        self.call(Method::GET, &["whoami"], &[], None).await
    }

    // ------------------------------------------------------------ transport

    fn url(&self, segments: &[&str], query: &[(&str, String)]) -> Url {
        let mut url = self.api.clone();
        url.path_segments_mut().expect("checked in Client::new: the URL can be a base").extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        url
    }

    /// Sends one request and decodes a 2xx answer as `T`; anything else
    /// becomes a [`ClientError`].
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<Value>,
    ) -> Result<T> {
        let url = self.url(segments, query);
        tracing::debug!(%method, %url, "request");
        let mut request = self.http.request(method, url.clone());
        if let Some(body) = &body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|err| self.transport_error(&url, &err))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let text = response.text().await.map_err(|err| self.transport_error(&url, &err))?;
        tracing::debug!(status = status.as_u16(), bytes = text.len(), "response");
        if !status.is_success() {
            return Err(self.error_answer(&url, status, &text, retry_after));
        }
        let raw: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).map_err(|err| ClientError::Protocol {
                url: url.to_string(),
                reason: format!("HTTP {status} with a body that is not JSON ({err})"),
            })?
        };
        decode(&url, raw)
    }

    /// The [`ClientError`] of a non-2xx answer: the error envelope (a 401's
    /// message gains the token hint), or a protocol error without one.
    fn error_answer(&self, url: &Url, status: StatusCode, text: &str, retry_after: Option<u64>) -> ClientError {
        let protocol = |reason: String| ClientError::Protocol { url: url.to_string(), reason };
        let raw: Value = match serde_json::from_str(text) {
            Ok(raw) => raw,
            Err(err) if !text.trim().is_empty() => {
                return protocol(format!("HTTP {status} with a body that is not JSON ({err})"))
            }
            Err(_) => Value::Null,
        };
        match envelope(&raw) {
            Some((code, mut message, details)) => {
                if status == StatusCode::UNAUTHORIZED {
                    message = format!("{message}\n{}", self.credentials.hint());
                }
                ClientError::Api { status: status.as_u16(), code, message, details, retry_after }
            }
            None => protocol(format!("HTTP {status} without the error envelope: {}", clip(text, 200))),
        }
    }

    /// Opens an execution's event stream (`Accept: text/event-stream`),
    /// resuming after `last_event_id` when given.
    async fn open_stream(
        &self,
        id: &str,
        after_seq: Option<i64>,
        last_event_id: Option<i64>,
    ) -> std::result::Result<reqwest::Response, ClientError> {
        let query: Vec<(&str, String)> = after_seq.map(|n| ("after_seq", n.to_string())).into_iter().collect();
        let url = self.url(&["executions", id, "events"], &query);
        tracing::debug!(%url, ?last_event_id, "open event stream");
        let mut request = self.http.get(url.clone()).header(ACCEPT, "text/event-stream");
        if let Some(seq) = last_event_id {
            request = request.header("Last-Event-ID", seq.to_string());
        }
        let response = request.send().await.map_err(|err| self.transport_error(&url, &err))?;
        let status = response.status();
        if !status.is_success() {
            let retry_after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            let text = response.text().await.map_err(|err| self.transport_error(&url, &err))?;
            return Err(self.error_answer(&url, status, &text, retry_after));
        }
        let streams = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("text/event-stream"));
        if !streams {
            return Err(ClientError::Protocol {
                url: url.to_string(),
                reason: "asked for text/event-stream and got another content type (a daemon older than live \
                         executions?)"
                    .into(),
            });
        }
        Ok(response)
    }

    fn transport_error(&self, url: &Url, err: &reqwest::Error) -> ClientError {
        let reason = root_cause(err);
        if err.is_connect() || err.is_timeout() {
            ClientError::Unreachable { url: self.server_url.clone(), reason }
        } else {
            ClientError::Protocol { url: url.to_string(), reason }
        }
    }
}

/// `raw` decoded as `T`, kept beside it.
fn decode<T: DeserializeOwned>(url: &Url, raw: Value) -> Result<T> {
    let value = serde_json::from_value(raw.clone()).map_err(|err| ClientError::Protocol {
        url: url.to_string(),
        reason: format!("the response does not have the documented shape ({err})"),
    })?;
    Ok(Reply { value, raw })
}

fn json(body: &impl Serialize) -> std::result::Result<Value, ClientError> {
    serde_json::to_value(body).map_err(|err| ClientError::Protocol { url: String::new(), reason: err.to_string() })
}

/// `{"error": {"code", "message", "details"}}` → its three parts.
fn envelope(raw: &Value) -> Option<(String, String, Value)> {
    let error = raw.get("error")?;
    let code = error.get("code")?.as_str()?.to_owned();
    let message = error.get("message").and_then(Value::as_str).unwrap_or_default().to_owned();
    Some((code, message, error.get("details").cloned().unwrap_or(Value::Null)))
}

/// The innermost cause in words, e.g. "connection refused".
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(next) = current.source() {
        current = next;
    }
    let text = current.to_string();
    let text = match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => text[..at].to_owned(),
        _ => text,
    };
    let mut chars = text.chars();
    chars.next().map(|first| first.to_lowercase().chain(chars).collect()).unwrap_or_default()
}

fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

// ---------------------------------------------------------------- live events

/// How long a live event stream may stay silent before the connection is
/// taken for dead and resumed: three of the daemon's 15 s heartbeats.
const STREAM_IDLE: Duration = Duration::from_secs(45);

/// How long [`EventStream`] keeps trying to resume a dropped stream before
/// it gives up, counted from the last byte received.
const RESUME_WITHIN: Duration = Duration::from_secs(30);

/// The first wait before a resume; doubled on each failed try, up to 2 s.
/// A `retry:` field from the daemon replaces it.
const RESUME_FIRST_WAIT: Duration = Duration::from_millis(100);

/// One message of an execution's live event stream.
#[derive(Debug)]
pub enum Followed {
    /// An event, in `seq` order, each once.
    Event(Reply<EventView>),
    /// The execution, ended; nothing follows.
    End(Box<Reply<ExecutionView>>),
}

/// An execution's live events ([`Client::follow`]): Server-Sent Events
/// read as they arrive. When the connection drops (or stays silent past
/// [`STREAM_IDLE`]), it reconnects with `Last-Event-ID` set to the last
/// `seq` handed out, so no event is missed or repeated.
#[derive(Debug)]
pub struct EventStream {
    client: Client,
    execution: String,
    /// The cursor of the first connection (`?after_seq=`).
    after_seq: Option<i64>,
    /// The `seq` of the last event handed out: where a reconnect resumes.
    last_seq: Option<i64>,
    body: Option<reqwest::Response>,
    parser: sse::Parser,
    /// The `end` (or `error`) message was handed out.
    done: bool,
}

impl EventStream {
    /// The next event, or the end; `None` after the end. An `event: error`
    /// from the daemon becomes [`ClientError::Api`]. The first connection
    /// is not retried: a daemon that cannot be reached, or that refuses
    /// (e.g. `EXECUTION_NOT_FOUND`), is an error at once.
    pub async fn next(&mut self) -> std::result::Result<Option<Followed>, ClientError> {
        let mut silent_since = tokio::time::Instant::now();
        let mut wait = RESUME_FIRST_WAIT;
        let mut connected_once = self.body.is_some() || self.last_seq.is_some();
        loop {
            if self.done {
                return Ok(None);
            }
            while let Some(message) = self.parser.next_message() {
                if let Some(followed) = self.accept(message)? {
                    return Ok(Some(followed));
                }
            }
            if self.body.is_none() {
                let resume = self.last_seq;
                match self.client.open_stream(&self.execution, self.after_seq, resume).await {
                    Ok(body) => {
                        self.body = Some(body);
                        connected_once = true;
                    }
                    Err(err @ ClientError::Unreachable { .. }) if connected_once => {
                        if silent_since.elapsed() > RESUME_WITHIN {
                            return Err(err);
                        }
                        tracing::debug!(error = %err, ?wait, "event stream: reconnect failed, retrying");
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(2));
                        continue;
                    }
                    Err(err) => return Err(err),
                }
            }
            let body = self.body.as_mut().expect("connected just above");
            match tokio::time::timeout(STREAM_IDLE, body.chunk()).await {
                Ok(Ok(Some(bytes))) => {
                    self.parser.feed(&bytes);
                    silent_since = tokio::time::Instant::now();
                    wait = self.parser.retry().unwrap_or(RESUME_FIRST_WAIT);
                }
                outcome => {
                    let why = match outcome {
                        Ok(Ok(_)) => "the daemon closed the stream before its end".to_owned(),
                        Ok(Err(err)) => root_cause(&err),
                        Err(_) => format!("nothing received for {} s", STREAM_IDLE.as_secs()),
                    };
                    tracing::debug!(%why, last_seq = ?self.last_seq, "event stream dropped; resuming");
                    self.body = None;
                    self.parser.reset();
                    if silent_since.elapsed() > RESUME_WITHIN {
                        return Err(ClientError::Unreachable { url: self.client.server_url.clone(), reason: why });
                    }
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(2));
                }
            }
        }
    }

    /// What one SSE message means: an event not handed out yet, the end,
    /// an error, or nothing (unknown types, repeats after a resume).
    fn accept(&mut self, message: sse::Message) -> std::result::Result<Option<Followed>, ClientError> {
        let url = self.client.url(&["executions", &self.execution, "events"], &[]);
        let protocol = |reason: String| ClientError::Protocol { url: url.to_string(), reason };
        let raw = || {
            serde_json::from_str::<Value>(&message.data)
                .map_err(|err| protocol(format!("a stream message that is not JSON ({err})")))
        };
        match message.event.as_str() {
            "event" => {
                let event: Reply<EventView> = decode(&url, raw()?)?;
                if self.last_seq.or(self.after_seq).is_some_and(|seen| event.value.seq <= seen) {
                    return Ok(None);
                }
                self.last_seq = Some(event.value.seq);
                Ok(Some(Followed::Event(event)))
            }
            "end" => {
                let end = decode(&url, raw()?)?;
                self.finish();
                Ok(Some(Followed::End(Box::new(end))))
            }
            "error" => {
                let raw = raw()?;
                self.finish();
                Err(match envelope(&raw) {
                    Some((code, message, details)) => {
                        ClientError::Api { status: StatusCode::OK.as_u16(), code, message, details, retry_after: None }
                    }
                    None => protocol(format!("an error message without the error envelope: {raw}")),
                })
            }
            _ => Ok(None),
        }
    }

    fn finish(&mut self) {
        self.done = true;
        self.body = None;
    }
}

/// A Server-Sent Events parser (the WHATWG `text/event-stream` format):
/// bytes in, in whatever chunks they arrive; whole messages out.
pub mod sse {
    use std::collections::VecDeque;
    use std::time::Duration;

    /// One dispatched message.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Message {
        /// `event:`, `message` when the block named none.
        pub event: String,
        /// The last `id:` seen on the stream so far (it carries over).
        pub id: Option<String>,
        /// The `data:` lines joined with `\n`.
        pub data: String,
    }

    #[derive(Debug, Default)]
    pub struct Parser {
        /// Bytes of a line not ended yet.
        line: Vec<u8>,
        /// The last byte fed was a CR: an LF right after it ends no new line.
        after_cr: bool,
        /// The start of the stream, where a byte order mark is dropped.
        started: bool,
        event: String,
        data: String,
        has_data: bool,
        last_id: Option<String>,
        retry: Option<Duration>,
        ready: VecDeque<Message>,
    }

    impl Parser {
        pub fn feed(&mut self, bytes: &[u8]) {
            for &byte in bytes {
                match byte {
                    b'\n' if self.after_cr => self.after_cr = false,
                    b'\n' | b'\r' => {
                        self.after_cr = byte == b'\r';
                        let line = std::mem::take(&mut self.line);
                        self.line(&line);
                    }
                    _ => {
                        self.after_cr = false;
                        self.line.push(byte);
                    }
                }
            }
        }

        /// The next whole message, in order.
        pub fn next_message(&mut self) -> Option<Message> {
            self.ready.pop_front()
        }

        /// The reconnection time the stream asked for (`retry:`).
        pub fn retry(&self) -> Option<Duration> {
            self.retry
        }

        /// Forgets a message cut off by a dropped connection (the last id
        /// and the retry time are kept, as a browser does).
        pub fn reset(&mut self) {
            self.line.clear();
            self.after_cr = false;
            self.started = false;
            self.event.clear();
            self.data.clear();
            self.has_data = false;
        }

        fn line(&mut self, raw: &[u8]) {
            let mut raw = raw;
            if !self.started {
                self.started = true;
                raw = raw.strip_prefix("\u{feff}".as_bytes()).unwrap_or(raw);
            }
            let line = String::from_utf8_lossy(raw);
            if line.is_empty() {
                self.dispatch();
                return;
            }
            if line.starts_with(':') {
                return; // a comment: the daemon's heartbeat
            }
            let (field, value) = match line.split_once(':') {
                Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
                None => (line.as_ref(), ""),
            };
            match field {
                "event" => self.event = value.to_owned(),
                "data" => {
                    if self.has_data {
                        self.data.push('\n');
                    }
                    self.data.push_str(value);
                    self.has_data = true;
                }
                "id" if !value.contains('\0') => self.last_id = Some(value.to_owned()),
                "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                    self.retry = value.parse().ok().map(Duration::from_millis);
                }
                _ => {}
            }
        }

        fn dispatch(&mut self) {
            let event = std::mem::take(&mut self.event);
            if !std::mem::take(&mut self.has_data) {
                return;
            }
            let data = std::mem::take(&mut self.data);
            let event = if event.is_empty() { "message".to_owned() } else { event };
            self.ready.push_back(Message { event, id: self.last_id.clone(), data });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_built_under_the_api_prefix_with_segments_encoded() {
        let client = Client::new("http://127.0.0.1:3210/", Credentials::none()).unwrap();
        let url = client.url(&["templates", "a b/c", "modules"], &[("status", "ready".into())]);
        assert_eq!(url.as_str(), "http://127.0.0.1:3210/api/v1/templates/a%20b%2Fc/modules?status=ready");
    }

    #[test]
    fn server_urls_that_are_not_http_are_refused() {
        for url in ["127.0.0.1:3210", "ftp://host", "not a url", "http://"] {
            assert!(matches!(Client::new(url, Credentials::none()), Err(ClientError::BadUrl { .. })), "{url}");
        }
    }

    #[test]
    fn the_root_cause_drops_the_os_error_number() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused (os error 111)");
        assert_eq!(root_cause(&io), "connection refused");
    }

    #[test]
    fn the_error_envelope_is_read_into_code_message_and_details() {
        let raw = serde_json::json!({"error": {"code": "SESSION_BUSY", "message": "busy", "details": {"a": 1}}});
        assert_eq!(envelope(&raw), Some(("SESSION_BUSY".into(), "busy".into(), serde_json::json!({"a": 1}))));
        assert_eq!(envelope(&serde_json::json!({"status": "ok"})), None);
    }

    #[test]
    fn a_given_token_wins_and_a_blank_one_sends_none_and_reads_no_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(crate::auth::token_file(dir.path(), 3210), "vmsys_from_file\n").unwrap();
        let url = "http://127.0.0.1:3210";
        let given = Credentials::resolve_in(Some(" vmsys_given "), url, dir.path()).unwrap();
        assert_eq!(given.source, TokenSource::Given);
        assert_eq!(given.header.unwrap().to_str().unwrap(), "Bearer vmsys_given");
        let blank = Credentials::resolve_in(Some("  "), url, dir.path()).unwrap();
        assert_eq!((blank.header, blank.source), (None, TokenSource::Blank));
        assert!(Credentials::resolve_in(Some("a\nb"), url, dir.path()).is_err(), "a newline cannot be sent");
    }

    #[test]
    fn a_daemon_on_a_loopback_address_lends_its_token_file_and_a_remote_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(crate::auth::token_file(dir.path(), 3210), "vmsys_from_file\n").unwrap();
        for url in ["http://127.0.0.1:3210", "http://localhost:3210/", "http://127.1.2.3:3210", "http://[::1]:3210"] {
            let found = Credentials::resolve_in(None, url, dir.path()).unwrap();
            assert_eq!(found.source, TokenSource::File(crate::auth::token_file(dir.path(), 3210)), "{url}");
            assert_eq!(found.header.unwrap().to_str().unwrap(), "Bearer vmsys_from_file", "{url}");
        }
        let other_port = Credentials::resolve_in(None, "http://127.0.0.1:4000", dir.path()).unwrap();
        let looked_at = Some(crate::auth::token_file(dir.path(), 4000));
        assert_eq!((other_port.header, other_port.source), (None, TokenSource::Missing { looked_at }));
        for url in ["http://10.0.0.1:3210", "http://example.com:3210", "http://localhost.example.com:3210"] {
            let remote = Credentials::resolve_in(None, url, dir.path()).unwrap();
            assert_eq!((remote.header, remote.source), (None, TokenSource::Missing { looked_at: None }), "{url}");
        }
    }

    #[test]
    fn the_401_hint_names_the_variable_the_flag_and_the_file_looked_at() {
        let dir = tempfile::tempdir().unwrap();
        let missing = Credentials::resolve_in(None, "http://127.0.0.1:3210", dir.path()).unwrap().hint();
        let file = crate::auth::token_file(dir.path(), 3210);
        for needle in ["VM_SYSTEM_TOKEN", "--token", &file.display().to_string()] {
            assert!(missing.contains(needle), "{needle} in {missing}");
        }
        assert!(!missing.contains('\n'), "one line: {missing}");
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let credentials = Credentials::resolve_in(Some("vmsys_secret"), "http://h:1", Path::new("/nowhere")).unwrap();
        let client = Client::new("http://127.0.0.1:1", credentials.clone()).unwrap();
        for shown in [format!("{credentials:?}"), format!("{client:?}")] {
            assert!(!shown.contains("vmsys_secret"), "{shown}");
        }
    }

    // ------------------------------------------------------------ live events

    fn parsed(chunks: &[&[u8]]) -> Vec<sse::Message> {
        let mut parser = sse::Parser::default();
        let mut out = Vec::new();
        for chunk in chunks {
            parser.feed(chunk);
            while let Some(message) = parser.next_message() {
                out.push(message);
            }
        }
        out
    }

    fn message(event: &str, id: Option<&str>, data: &str) -> sse::Message {
        sse::Message { event: event.into(), id: id.map(Into::into), data: data.into() }
    }

    #[test]
    fn sse_messages_are_whole_whatever_the_chunks_and_line_endings() {
        let stream = b"event: event\nid: 1\ndata: {\"seq\":1}\n\n: heartbeat\n\nevent: end\r\ndata: {}\r\n\r\n";
        let expected = vec![message("event", Some("1"), "{\"seq\":1}"), message("end", Some("1"), "{}")];
        assert_eq!(parsed(&[stream]), expected, "one chunk");
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(parsed(&bytes), expected, "a byte at a time, CRLF split across chunks");
        assert_eq!(parsed(&[b"data: a\rdata: b\r\r"]), vec![message("message", None, "a\nb")], "CR alone ends lines");
    }

    #[test]
    fn sse_fields_follow_the_spec_for_spaces_comments_bom_retry_and_empty_blocks() {
        let mut parser = sse::Parser::default();
        parser.feed("\u{feff}:comment\ndata:no space\ndata:  two spaces\nunknown: x\nretry: 250\n\n".as_bytes());
        assert_eq!(parser.next_message(), Some(message("message", None, "no space\n two spaces")));
        assert_eq!(parser.retry(), Some(Duration::from_millis(250)));
        parser.feed(b"event: lonely\n\ndata\n\n");
        assert_eq!(parser.next_message(), Some(message("message", None, "")), "a block without data is dropped");
        assert_eq!(parser.next_message(), None);
    }

    #[test]
    fn sse_reset_drops_a_message_cut_off_by_a_dropped_connection() {
        let mut parser = sse::Parser::default();
        parser.feed(b"id: 2\nevent: event\ndata: {\"seq\":3");
        parser.reset();
        parser.feed(b"event: end\ndata: {}\n\n");
        assert_eq!(parser.next_message(), Some(message("end", Some("2"), "{}")), "the last id survives a reset");
    }

    fn event_json(seq: i64) -> String {
        serde_json::json!({
            "execution_id": "00000000-0000-0000-0000-00000000000e", "seq": seq, "ts": "2024-01-01T00:00:00Z", "type": "console",
            "payload": {"level": "log", "text": format!("line {seq}")}
        })
        .to_string()
    }

    fn end_json() -> String {
        serde_json::json!({
            "id": "00000000-0000-0000-0000-00000000000e", "session_id": "00000000-0000-0000-0000-00000000000f", "kind": "repl", "input": "x", "path": null, "args": {}, "env": {},
            "status": "ok", "started_at": "2024-01-01T00:00:00Z", "ended_at": "2024-01-01T00:00:01Z",
            "result": null, "error": null, "metrics": {"duration_ms": 1, "event_count": 3, "output_bytes": 6}
        })
        .to_string()
    }

    /// Accepts one HTTP request on `listener`, answers `body` as an event
    /// stream and closes the connection; returns the request's head.
    async fn answer_once(listener: &tokio::net::TcpListener, body: String) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            socket.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        let answer = format!("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n{body}");
        socket.write_all(answer.as_bytes()).await.unwrap();
        socket.shutdown().await.unwrap();
        String::from_utf8(head).unwrap().to_ascii_lowercase()
    }

    #[tokio::test]
    async fn a_dropped_event_stream_resumes_after_the_last_event_with_no_gap_and_no_repeat() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let frame = |seq: i64| format!("event: event\nid: {seq}\ndata: {}\n\n", event_json(seq));
        let server = tokio::spawn(async move {
            // The first connection drops halfway through event 3.
            let cut = format!("{}{}event: event\nid: 3\ndata: {{\"exec", frame(1), frame(2));
            let first = answer_once(&listener, cut).await;
            // The resumed one repeats event 2 (a daemon may), then goes on.
            let rest = format!("{}{}: keep-alive\n\nevent: end\ndata: {}\n\n", frame(2), frame(3), end_json());
            let second = answer_once(&listener, rest).await;
            (first, second)
        });
        let client = Client::new(&url, Credentials::none()).unwrap();
        let mut stream = client.follow("e", None);
        let mut seen = Vec::new();
        while let Some(item) = stream.next().await.unwrap() {
            match item {
                Followed::Event(event) => seen.push(event.value.seq.to_string()),
                Followed::End(end) => seen.push(format!("end {}", end.value.metrics.event_count)),
            }
        }
        assert_eq!(seen, ["1", "2", "3", "end 3"]);
        let (first, second) = server.await.unwrap();
        assert!(first.contains("accept: text/event-stream") && !first.contains("last-event-id"), "{first}");
        assert!(second.contains("last-event-id: 2\r\n"), "{second}");
    }

    #[tokio::test]
    async fn an_error_message_on_the_stream_is_an_api_error_and_ends_it() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let envelope = r#"{"error":{"code":"STORE_UNAVAILABLE","message":"down","details":{}}}"#;
            answer_once(&listener, format!("event: error\ndata: {envelope}\n\n")).await
        });
        let client = Client::new(&url, Credentials::none()).unwrap();
        let mut stream = client.follow("e", Some(4));
        match stream.next().await {
            Err(ClientError::Api { code, message, .. }) => {
                assert_eq!((code.as_str(), message.as_str()), ("STORE_UNAVAILABLE", "down"))
            }
            other => panic!("{other:?}"),
        }
        assert!(stream.next().await.unwrap().is_none());
        assert!(server.await.unwrap().contains("after_seq=4"));
    }
}

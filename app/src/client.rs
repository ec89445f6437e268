//! Typed client of a running daemon's REST API, used by every command but
//! `serve`. Requests and responses are the HTTP adapter's own wire types
//! (`vm_http::dto`), so the CLI cannot drift from the API. Every request
//! carries the bearer token [`Credentials::resolve`] found.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use vm_http::dto::{
    CapabilityView, CatalogLibraryView, CatalogModuleView, CreateCapabilityBody, CreateSessionBody,
    CreateStartupFileBody, CreateTemplateBody, CreateTokenBody, CreatedTokenView, EventView, ExecutionView,
    ExecutionWithEventsView, HealthView, NameBody, ReadyView, ReplBody, RunFileBody, RuntimeSummaryView, SessionView,
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

    /// Readiness: 200 while the daemon's store answers, `STORE_UNAVAILABLE` otherwise.
    pub async fn ready(&self) -> Result<ReadyView> {
        self.call(Method::GET, &["ready"], &[], None).await
    }

    pub async fn runtime_summary(&self) -> Result<RuntimeSummaryView> {
        self.call(Method::GET, &["runtime", "summary"], &[], None).await
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
        let body = json(&NameBody { name: name.to_owned() })?;
        self.call(Method::POST, &["templates", id, "modules"], &[], Some(body)).await
    }

    pub async fn remove_module(&self, id: &str, name: &str) -> Result<Vec<String>> {
        self.call(Method::DELETE, &["templates", id, "modules", name], &[], None).await
    }

    pub async fn libraries(&self, id: &str) -> Result<Vec<String>> {
        self.call(Method::GET, &["templates", id, "libraries"], &[], None).await
    }

    pub async fn add_library(&self, id: &str, name: &str) -> Result<Vec<String>> {
        let body = json(&NameBody { name: name.to_owned() })?;
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

    pub async fn create_session(&self, body: &CreateSessionBody) -> Result<SessionView> {
        self.call(Method::POST, &["sessions"], &[], Some(json(body)?)).await
    }

    pub async fn session(&self, id: &str) -> Result<SessionView> {
        self.call(Method::GET, &["sessions", id], &[], None).await
    }

    pub async fn close_session(&self, id: &str) -> Result<SessionView> {
        self.call(Method::POST, &["sessions", id, "close"], &[], None).await
    }

    // ------------------------------------------------------------ executions

    pub async fn repl(&self, body: &ReplBody) -> Result<ExecutionWithEventsView> {
        self.call(Method::POST, &["executions", "repl"], &[], Some(json(body)?)).await
    }

    pub async fn run_file(&self, body: &RunFileBody) -> Result<ExecutionWithEventsView> {
        self.call(Method::POST, &["executions", "run-file"], &[], Some(json(body)?)).await
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
        let protocol = |reason: String| ClientError::Protocol { url: url.to_string(), reason };
        let raw: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .map_err(|err| protocol(format!("HTTP {status} with a body that is not JSON ({err})")))?
        };
        if !status.is_success() {
            return Err(match envelope(&raw) {
                Some((code, mut message, details)) => {
                    if status == StatusCode::UNAUTHORIZED {
                        message = format!("{message}\n{}", self.credentials.hint());
                    }
                    ClientError::Api { status: status.as_u16(), code, message, details, retry_after }
                }
                None => protocol(format!("HTTP {status} without the error envelope: {}", clip(&text, 200))),
            });
        }
        let value = serde_json::from_value(raw.clone())
            .map_err(|err| protocol(format!("the response does not have the documented shape ({err})")))?;
        Ok(Reply { value, raw })
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
}

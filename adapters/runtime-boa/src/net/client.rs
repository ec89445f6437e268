//! The daemon's HTTP client for `fetch`: checks every hop against the
//! [`FetchPolicy`], resolves names once and connects to exactly the
//! addresses it checked (no second lookup a rebinding DNS server could
//! answer differently), follows redirects itself, and stops reading a body
//! past the policy's size. TLS is rustls with the Mozilla roots compiled in
//! (`webpki-roots`): the host's certificate store plays no part.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use tokio::time::Instant;
use url::Url;

use super::policy::{check_resolved, shown, shown_text, FetchPolicy, Refusal, Target, MAX_REDIRECTS};
use crate::protocol::{FetchRequest, FetchResponse};

/// Request headers a script may not set: the client owns the connection,
/// the framing and the `Host` it connects for.
const FORBIDDEN_REQUEST_HEADERS: &[&str] = &[
    "host",
    "connection",
    "keep-alive",
    "content-length",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-authorization",
    "proxy-connection",
];

/// Headers dropped when a redirect leaves the origin, as the Fetch standard
/// does with `Authorization`.
const CREDENTIAL_HEADERS: &[&str] = &["authorization", "cookie", "proxy-authorization"];

/// A fetch as it went: the response and its body, or why there is none,
/// with what the `fetch` event records either way.
#[derive(Debug)]
pub struct Performed {
    pub result: Result<(FetchResponse, Vec<u8>), Refusal>,
    /// Response body bytes received (also when the body was too large).
    pub bytes: u64,
    /// Redirects followed.
    pub redirects: usize,
}

/// Performs `request` under `policy`, all of it (every hop and the body)
/// before `deadline`.
pub async fn perform(policy: &FetchPolicy, request: FetchRequest, deadline: Instant) -> Performed {
    let (mut bytes, mut redirects) = (0, 0);
    let result = match tokio::time::timeout_at(deadline, follow(policy, request, &mut bytes, &mut redirects)).await {
        Ok(result) => result,
        Err(_) => Err(Refusal::new(
            "ERR_FETCH_TIMEOUT",
            "the fetch did not finish within the job's wall-clock limit (wall_ms)",
        )),
    };
    Performed { result, bytes, redirects }
}

async fn follow(
    policy: &FetchPolicy,
    request: FetchRequest,
    bytes: &mut u64,
    redirects: &mut usize,
) -> Result<(FetchResponse, Vec<u8>), Refusal> {
    let FetchRequest { method, url, headers, body } = request;
    let mut url =
        Url::parse(&url).map_err(|err| Refusal::new("ERR_INVALID_URL", format!("{:?}: {err}", shown_text(&url))))?;
    let mut method = Method::from_bytes(method.as_bytes())
        .ok()
        .filter(|m| !matches!(m.as_str().to_ascii_uppercase().as_str(), "CONNECT" | "TRACE" | "TRACK"))
        .ok_or_else(|| Refusal::new("ERR_INVALID_REQUEST", format!("{method:?} is not a method fetch may use")))?;
    let mut headers = request_headers(&headers)?;
    let mut body = Some(body).filter(|b| !b.is_empty());
    if body.is_some() && (method == Method::GET || method == Method::HEAD) {
        return Err(Refusal::new("ERR_INVALID_REQUEST", format!("a {method} request cannot have a body")));
    }
    if body.as_ref().is_some_and(|b| b.len() as u64 > policy.max_bytes) {
        return Err(Refusal::new(
            "ERR_FETCH_TOO_LARGE",
            format!(
                "the request body is larger than {} KiB (max_fetch_kb of the net capability `fetch`)",
                policy.max_bytes / 1024
            ),
        ));
    }
    loop {
        let response =
            send(policy, &url, &method, &headers, body.clone()).await.map_err(|refusal| match *redirects {
                0 => refusal,
                _ => Refusal { message: format!("redirected to {}: {}", shown(&url), refusal.message), ..refusal },
            })?;
        let status = response.status();
        let location = response.headers().get(reqwest::header::LOCATION).cloned();
        let redirect = matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308);
        if let (true, Some(location)) = (redirect, location) {
            *redirects += 1;
            if *redirects > MAX_REDIRECTS {
                return Err(Refusal::new(
                    "ERR_TOO_MANY_REDIRECTS",
                    format!("more than {MAX_REDIRECTS} redirects, the last to {}", shown(&url)),
                ));
            }
            let next = location.to_str().ok().and_then(|location| url.join(location).ok()).ok_or_else(|| {
                Refusal::new("ERR_INVALID_URL", format!("{} redirected to an invalid URL", shown(&url)))
            })?;
            // As the Fetch standard: 303 becomes GET (but HEAD), and so do
            // 301 and 302 after a POST; 307 and 308 keep method and body.
            let to_get = (status == StatusCode::SEE_OTHER && method != Method::HEAD)
                || (matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND) && method == Method::POST);
            if to_get {
                method = Method::GET;
                body = None;
                for name in ["content-type", "content-encoding", "content-language", "content-location"] {
                    headers.remove(name);
                }
            }
            if next.origin() != url.origin() {
                for name in CREDENTIAL_HEADERS {
                    headers.remove(*name);
                }
            }
            url = next;
            continue;
        }
        let response_headers = response
            .headers()
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect();
        let final_url = url.to_string();
        let body = read_body(response, policy.max_bytes, bytes).await?;
        let head =
            FetchResponse { status: status.as_u16(), url: final_url, headers: response_headers, body_len: *bytes };
        return Ok((head, body));
    }
}

/// The script's headers, less those it may not set.
fn request_headers(headers: &[(String, String)]) -> Result<HeaderMap, Refusal> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let bad = || Refusal::new("ERR_INVALID_REQUEST", format!("invalid header {name:?}"));
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad())?;
        if FORBIDDEN_REQUEST_HEADERS.contains(&name.as_str()) || name.as_str().starts_with("proxy-") {
            continue;
        }
        let value = HeaderValue::from_str(value).map_err(|_| bad())?;
        map.append(name, value);
    }
    Ok(map)
}

/// One hop: checks `url`, resolves and checks its name, and sends the
/// request to exactly the addresses checked.
async fn send(
    policy: &FetchPolicy,
    url: &Url,
    method: &Method,
    headers: &HeaderMap,
    body: Option<String>,
) -> Result<reqwest::Response, Refusal> {
    let target = policy.check_url(url)?;
    let port = url.port_or_known_default().expect("http and https have default ports");
    let mut client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .referer(false)
        .connect_timeout(Duration::from_secs(30));
    if let Target::Name(name) = &target {
        let addresses = resolve(name, port).await?;
        check_resolved(name, &addresses)?;
        let pinned: Vec<SocketAddr> = addresses.into_iter().map(|ip| SocketAddr::new(ip, port)).collect();
        let host = url.host_str().expect("a URL the policy passed has a host");
        client = client.resolve_to_addrs(host, &pinned);
    }
    let client =
        client.build().map_err(|err| Refusal::new("ERR_FETCH_FAILED", format!("cannot make an HTTP client: {err}")))?;
    let mut request = client.request(method.clone(), url.clone()).headers(headers.clone());
    if let Some(body) = body {
        request = request.body(body);
    }
    request
        .send()
        .await
        .map_err(|err| Refusal::new("ERR_FETCH_FAILED", format!("{}: {}", shown(url), chain(&err.without_url()))))
}

/// The addresses `name` resolves to, once, by the daemon's resolver.
async fn resolve(name: &str, port: u16) -> Result<Vec<IpAddr>, Refusal> {
    let found = tokio::net::lookup_host((name, port))
        .await
        .map_err(|err| Refusal::new("ERR_NAME_NOT_RESOLVED", format!("cannot resolve {name}: {err}")))?;
    let mut addresses: Vec<IpAddr> = found.map(|addr| addr.ip()).collect();
    addresses.dedup();
    Ok(addresses)
}

/// The body, refused once it passes `max_bytes`; `bytes` counts what came.
async fn read_body(mut response: reqwest::Response, max_bytes: u64, bytes: &mut u64) -> Result<Vec<u8>, Refusal> {
    let too_large = || {
        Refusal::new(
            "ERR_FETCH_TOO_LARGE",
            format!(
                "the response body is larger than {} KiB (max_fetch_kb of the net capability `fetch`)",
                max_bytes / 1024
            ),
        )
    };
    if response.content_length().is_some_and(|len| len > max_bytes) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                *bytes += chunk.len() as u64;
                if *bytes > max_bytes {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(err) => {
                let err = err.without_url();
                return Err(Refusal::new("ERR_FETCH_FAILED", format!("reading the response body: {}", chain(&err))));
            }
        }
    }
}

/// An error and its sources, as one line.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let next = cause.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = cause.source();
    }
    text
}

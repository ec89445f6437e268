//! Every response carries `X-Request-Id`: a valid incoming one is echoed,
//! otherwise a fresh UUID is issued. The request is handled inside a
//! `request` span carrying that id, so every log line it causes names it.

use poem::{Endpoint, Request, Response, Result};
use tracing::Instrument;

pub const HEADER: &str = "x-request-id";

/// 1–128 characters of `[A-Za-z0-9._:-]`.
fn is_valid(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
}

/// The request's id, in its extensions for the handlers and the audit log.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

pub async fn stamp<E: Endpoint>(next: E, mut req: Request) -> Result<Response> {
    let id = req
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_valid(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    // At error level so that the span, and its fields, exist whatever the
    // log filter lets through: a warning deep in a handler still names its
    // request. The path has no query string (no secrets, bounded size).
    let span = tracing::error_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path());
    let mut response = async move {
        let response = crate::error::respond(next.call(req).await).await;
        tracing::debug!(status = response.status().as_u16(), "request");
        response
    }
    .instrument(span)
    .await;
    response.headers_mut().insert(HEADER, id.parse().expect("validated ids are valid header values"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::is_valid;

    #[test]
    fn request_ids_are_short_plain_tokens() {
        assert!(is_valid("abc-123_x.y:z"));
        assert!(!is_valid(""));
        assert!(!is_valid("has space"));
        assert!(!is_valid(&"x".repeat(129)));
        assert!(!is_valid("new\nline"));
    }
}

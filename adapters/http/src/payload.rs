//! `JsonBody<T>`: a JSON request body decoded with serde, so that every
//! failure says exactly what is wrong and where (`settings.limits.wall_ms`).
//! The schema still comes from the poem-openapi `Object` derive.

use poem::http::StatusCode;
use poem::{Request, RequestBody};
use poem_openapi::payload::{ParsePayload, Payload};
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::Type;
use serde::de::DeserializeOwned;

/// Request bodies larger than this are refused before decoding.
pub const MAX_BODY_BYTES: usize = 16 << 20;

/// A decoded JSON body.
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

/// Why a body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Not JSON, not an object, empty, or an unknown field.
    #[error("{0}")]
    Malformed(String),
    /// Larger than [`MAX_BODY_BYTES`].
    #[error("the request body is larger than the limit of {} MiB", MAX_BODY_BYTES >> 20)]
    TooLarge,
    /// Well-formed JSON with a missing or invalid field.
    #[error("{message}")]
    Field { field: String, message: String },
}

impl poem::error::ResponseError for BodyError {
    fn status(&self) -> StatusCode {
        StatusCode::BAD_REQUEST
    }
}

impl<T: Type> Payload for JsonBody<T> {
    const CONTENT_TYPE: &'static str = "application/json; charset=utf-8";

    fn check_content_type(content_type: &str) -> bool {
        matches!(content_type.parse::<mime::Mime>(), Ok(ct) if ct.type_() == "application"
            && (ct.subtype() == "json" || ct.suffix().is_some_and(|s| s == "json")))
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: Type + DeserializeOwned + Send> ParsePayload for JsonBody<T> {
    const IS_REQUIRED: bool = true;

    async fn from_request(_request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let data = body.take()?.into_bytes_limit(MAX_BODY_BYTES).await.map_err(|err| match err {
            poem::error::ReadBodyError::PayloadTooLarge => BodyError::TooLarge,
            err => BodyError::Malformed(format!("cannot read the body ({err})")),
        })?;
        Ok(Self(decode(&data)?))
    }
}

poem_openapi::impl_apirequest_for_payload!(JsonBody<T>, T: Type + DeserializeOwned + Send);

/// Decodes `data` as one JSON object of type `T`.
pub fn decode<T: DeserializeOwned>(data: &[u8]) -> Result<T, BodyError> {
    if data.iter().all(u8::is_ascii_whitespace) {
        return Err(BodyError::Malformed("the request needs a JSON object body".into()));
    }
    if data.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(BodyError::Malformed("the body must be a JSON object".into()));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(data);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(classify)?;
    deserializer.end().map_err(|err| BodyError::Malformed(format!("malformed JSON: {err}")))?;
    Ok(value)
}

fn classify(err: serde_path_to_error::Error<serde_json::Error>) -> BodyError {
    let path = err.path().to_string();
    let inner = err.into_inner();
    if !inner.is_data() {
        return BodyError::Malformed(format!("malformed JSON: {inner}"));
    }
    let message = strip_position(&inner.to_string());
    if message.starts_with("unknown field") {
        let at = path.rsplit_once('.').map(|(parent, _)| format!(" in {parent}")).unwrap_or_default();
        return BodyError::Malformed(format!("{message}{at}"));
    }
    if let Some(name) = message.strip_prefix("missing field `").and_then(|rest| rest.split('`').next()) {
        let field = if path == "." { name.to_owned() } else { format!("{path}.{name}") };
        return BodyError::Field { message: format!("{field} is required"), field };
    }
    if path == "." {
        return BodyError::Malformed(format!("the body must be a JSON object ({message})"));
    }
    BodyError::Field { message: format!("{path}: {message}"), field: path }
}

/// serde_json appends " at line L column C"; the field path says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(index) => message[..index].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        #[allow(dead_code)]
        wall_ms: Option<u64>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        #[allow(dead_code)]
        name: String,
        #[allow(dead_code)]
        limits: Option<Inner>,
    }

    fn outcome(body: &str) -> (&'static str, String) {
        match decode::<Outer>(body.as_bytes()) {
            Ok(_) => ("ok", String::new()),
            Err(BodyError::Malformed(m)) => ("malformed", m),
            Err(BodyError::TooLarge) => ("too large", String::new()),
            Err(BodyError::Field { field, .. }) => ("field", field),
        }
    }

    #[test]
    fn bodies_are_classified_by_what_is_wrong() {
        let cases = [
            ("valid", r#"{"name":"x"}"#, "ok", ""),
            ("empty", "  ", "malformed", ""),
            ("syntax", r#"{"name":"#, "malformed", ""),
            ("trailing", r#"{"name":"x"} extra"#, "malformed", ""),
            ("array", "[]", "malformed", ""),
            ("array of the fields", r#"["x"]"#, "malformed", ""),
            ("null", "null", "malformed", ""),
            ("unknown top", r#"{"name":"x","colour":1}"#, "malformed", ""),
            ("unknown nested", r#"{"name":"x","limits":{"wall":1}}"#, "malformed", ""),
            ("missing", r#"{}"#, "field", "name"),
            ("wrong type", r#"{"name":5}"#, "field", "name"),
            ("null field", r#"{"name":null}"#, "field", "name"),
            ("negative nested", r#"{"name":"x","limits":{"wall_ms":-5}}"#, "field", "limits.wall_ms"),
        ];
        for (label, body, kind, field) in cases {
            let (got_kind, detail) = outcome(body);
            assert_eq!(got_kind, kind, "{label}: {detail}");
            if kind == "field" {
                assert_eq!(detail, field, "{label}");
            }
        }
    }
}

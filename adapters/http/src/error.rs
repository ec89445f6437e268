//! Maps `DomainError` to HTTP; no other file does. Also turns poem's own
//! failures (bad bodies, bad parameters, unknown routes, wrong methods) into
//! the one error envelope.

use poem::error::{MethodNotAllowedError, NotFoundError};
use poem::{IntoResponse, Response};
use poem_openapi::error::{ContentTypeError, ParseParamError, ParsePathError, ParseRequestPayloadError};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};
use serde_json::Value;
use vm_domain::DomainError;

use crate::payload::BodyError;
use crate::schema::ErrorDetails;

#[derive(Debug, Clone, Object)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `SESSION_BUSY`.
    pub code: String,
    pub message: String,
    pub details: ErrorDetails,
}

/// `{"error": {"code", "message", "details"}}`, for every error.
#[derive(Debug, Clone, Object)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Debug, ApiResponse)]
pub enum ApiError {
    /// `VALIDATION_ERROR` or `INVALID_REQUEST`.
    #[oai(status = 400)]
    BadRequest(Json<ErrorEnvelope>),
    /// `UNAUTHENTICATED`: no bearer token, or one that is unknown, revoked or expired.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorEnvelope>),
    /// `FORBIDDEN`: the token lacks the scope, or the `Origin` is refused.
    #[oai(status = 403)]
    Forbidden(Json<ErrorEnvelope>),
    /// `TEMPLATE_NOT_FOUND`, `SESSION_NOT_FOUND`, `EXECUTION_NOT_FOUND`, `FILE_NOT_FOUND`, `TOKEN_NOT_FOUND`, `NOT_FOUND`.
    #[oai(status = 404)]
    NotFound(Json<ErrorEnvelope>),
    /// `METHOD_NOT_ALLOWED`.
    #[oai(status = 405)]
    MethodNotAllowed(Json<ErrorEnvelope>),
    /// `REQUEST_TIMEOUT`: the body did not arrive in time.
    #[oai(status = 408)]
    RequestTimeout(Json<ErrorEnvelope>),
    /// `PAYLOAD_TOO_LARGE`: the body is larger than 16 MiB.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorEnvelope>),
    /// `SESSION_NOT_READY`, `SESSION_BUSY`, `EXECUTION_NOT_RUNNING`.
    #[oai(status = 409)]
    Conflict(Json<ErrorEnvelope>),
    /// `MISDIRECTED_REQUEST`: the `Host` header names no address this daemon serves.
    #[oai(status = 421)]
    Misdirected(Json<ErrorEnvelope>),
    /// `INVALID_VALUE`, `INVALID_PATH`, limits, `STARTUP_MODE_UNSUPPORTED`, `MODULE_NOT_ALLOWED`,
    /// `LIBRARY_NOT_AVAILABLE`, `ENGINE_UNSUPPORTED`, `STARTUP_FAILED`.
    #[oai(status = 422)]
    Unprocessable(Json<ErrorEnvelope>),
    /// `INTERNAL`: always a bug.
    #[oai(status = 500)]
    Internal(Json<ErrorEnvelope>),
    /// `STORE_UNAVAILABLE`: the store cannot be reached or is overloaded; retry after `Retry-After`
    /// seconds. With `details.execution_id`, that execution ran and is stored once the store is back.
    /// `SHUTTING_DOWN`: the daemon is draining before it stops and takes no new execution, session
    /// or fork; retry on another instance, or here after its restart.
    /// `NODE_UNAVAILABLE`: the node that runs the session cannot be reached and its lease has not
    /// run out; retry (its sessions are failed over once it has). `NO_CAPACITY`: no live node (with
    /// `placement=local`: this node) has room for another session.
    #[oai(status = 503)]
    Unavailable(
        Json<ErrorEnvelope>,
        /// Seconds to wait before trying again.
        #[oai(header = "Retry-After")]
        u32,
    ),
    /// `STORAGE_FULL`: the disk holding the store is full. With `details.execution_id`, that
    /// execution ran and is stored once there is room again.
    #[oai(status = 507)]
    InsufficientStorage(Json<ErrorEnvelope>),
}

/// The `Retry-After` of every 503: the store's acquire timeout, so that a
/// retry does not arrive while the same outage is still being waited out.
pub const RETRY_AFTER_SECONDS: u32 = 2;

/// The response variant (hence status) of each domain error. No `_` arm on
/// purpose: a new variant does not compile until someone picks its status.
fn variant_of(err: &DomainError) -> fn(Json<ErrorEnvelope>) -> ApiError {
    use DomainError as E;
    match err {
        E::Validation { .. } | E::InvalidRequest { .. } => ApiError::BadRequest,
        E::TemplateNotFound { .. }
        | E::SessionNotFound { .. }
        | E::ExecutionNotFound { .. }
        | E::TokenNotFound { .. }
        | E::FileNotFound { .. } => ApiError::NotFound,
        E::SessionNotReady { .. } | E::SessionBusy { .. } | E::ExecutionNotRunning { .. } => ApiError::Conflict,
        E::InvalidValue { .. }
        | E::InvalidPath { .. }
        | E::OutputLimitExceeded { .. }
        | E::ExecutionTimeout { .. }
        | E::MemoryLimitExceeded { .. }
        | E::StartupModeUnsupported { .. }
        | E::ModuleNotAllowed { .. }
        | E::LibraryNotAvailable { .. }
        | E::EngineUnsupported { .. }
        | E::StartupFailed { .. } => ApiError::Unprocessable,
        E::Unauthenticated { .. } => ApiError::Unauthorized,
        E::Forbidden { .. } => ApiError::Forbidden,
        E::MisdirectedRequest { .. } => ApiError::Misdirected,
        E::StoreUnavailable { .. }
        | E::ShuttingDown
        | E::RuntimeUnavailable { .. }
        | E::NodeUnavailable { .. }
        | E::NoCapacity { .. } => |envelope| ApiError::Unavailable(envelope, RETRY_AFTER_SECONDS),
        E::StorageFull { .. } => ApiError::InsufficientStorage,
        E::Internal(_) => ApiError::Internal,
    }
}

impl From<DomainError> for ApiError {
    fn from(err: DomainError) -> Self {
        if let DomainError::Internal(source) = &err {
            tracing::error!(error = %source, chain = ?source, "internal error");
        }
        variant_of(&err)(envelope(&err))
    }
}

/// `{"error": {"code", "message", "details"}}` of a domain error.
pub(crate) fn envelope(err: &DomainError) -> Json<ErrorEnvelope> {
    Json(ErrorEnvelope {
        error: ErrorBody {
            code: err.code().to_owned(),
            message: err.to_string(),
            details: ErrorDetails(err.details()),
        },
    })
}

/// Failures of HTTP itself, which the domain never sees; answered in the same envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    /// 404 `NOT_FOUND`: no route has this path.
    RouteNotFound,
    /// 405 `METHOD_NOT_ALLOWED`: the route does not take this method (`Allow` says which it does).
    MethodNotAllowed,
    /// 408 `REQUEST_TIMEOUT`: the body did not arrive in time.
    RequestTimeout { message: String },
    /// 413 `PAYLOAD_TOO_LARGE`: the body is larger than [`crate::payload::MAX_BODY_BYTES`].
    PayloadTooLarge,
}

impl From<TransportError> for ApiError {
    fn from(err: TransportError) -> Self {
        let (variant, code, message): (fn(Json<ErrorEnvelope>) -> ApiError, _, _) = match err {
            TransportError::RouteNotFound => {
                (ApiError::NotFound, "NOT_FOUND", "no such route; see /api/v1/openapi.json".to_owned())
            }
            TransportError::MethodNotAllowed => (
                ApiError::MethodNotAllowed,
                "METHOD_NOT_ALLOWED",
                "this route does not support that method; the Allow header lists those it does".to_owned(),
            ),
            TransportError::RequestTimeout { message } => (ApiError::RequestTimeout, "REQUEST_TIMEOUT", message),
            TransportError::PayloadTooLarge => (
                ApiError::PayloadTooLarge,
                "PAYLOAD_TOO_LARGE",
                format!("the request body is larger than the limit of {} MiB", crate::payload::MAX_BODY_BYTES >> 20),
            ),
        };
        variant(Json(ErrorEnvelope {
            error: ErrorBody {
                code: code.to_owned(),
                message,
                details: ErrorDetails(Value::Object(Default::default())),
            },
        }))
    }
}

/// The readiness probe's one failure. `GET /ready` answers 503 when any
/// check fails, so that orchestrators need one rule; `details.checks` says
/// which (`store` and `runtime`: `ok` or `failed`; `drain`: `ok` or
/// `draining`), and the code names the first that failed: `SHUTTING_DOWN`,
/// then `STORE_UNAVAILABLE`, then `RUNTIME_UNAVAILABLE`. The cause of a
/// failed check goes to the log, not to the unauthenticated caller.
#[derive(Debug, ApiResponse)]
pub enum NotReady {
    /// `SHUTTING_DOWN` (draining before a stop), `STORE_UNAVAILABLE` (the store did not answer a
    /// query within 2 s, or failed it) or `RUNTIME_UNAVAILABLE` (no session could start);
    /// `details.checks` names each check's state.
    #[oai(status = 503)]
    Unavailable(
        Json<ErrorEnvelope>,
        /// Seconds to wait before probing again.
        #[oai(header = "Retry-After")]
        u32,
    ),
}

/// What the readiness checks found.
#[derive(Debug)]
pub struct Readiness {
    /// The daemon is draining before it stops.
    pub draining: bool,
    pub store: Result<(), DomainError>,
    pub runtime: Result<(), DomainError>,
}

impl Readiness {
    /// `Ok` when the daemon can take work; the 503 otherwise.
    pub fn verdict(self) -> Result<(), NotReady> {
        let Readiness { draining, store, runtime } = self;
        if let Err(err) = &store {
            tracing::warn!(error = %err, source = ?std::error::Error::source(err), "not ready: the store failed its check");
        }
        if let Err(err) = &runtime {
            tracing::warn!(error = %err, "not ready: the runtime failed its check");
        }
        let state = |check: &Result<(), DomainError>| if check.is_ok() { "ok" } else { "failed" };
        let checks = serde_json::json!({
            "store": state(&store),
            "runtime": state(&runtime),
            "drain": if draining { "draining" } else { "ok" },
        });
        let failed = if draining {
            DomainError::ShuttingDown
        } else if store.is_err() {
            let reason = "the store did not answer its readiness check; the daemon's log says why";
            DomainError::StoreUnavailable { reason: reason.into(), execution_id: None }
        } else if runtime.is_err() {
            let reason = "no session could start; the daemon's log says why";
            DomainError::RuntimeUnavailable { reason: reason.into() }
        } else {
            return Ok(());
        };
        let mut envelope = envelope(&failed);
        if let Value::Object(details) = &mut envelope.0.error.details.0 {
            details.insert("checks".into(), checks);
        }
        Err(NotReady::Unavailable(envelope, RETRY_AFTER_SECONDS))
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Request extraction failures: a body that is not the expected JSON object
/// is `INVALID_REQUEST`; a missing or invalid field, path or query value is
/// `VALIDATION_ERROR` naming it.
fn extraction_error(err: &poem::Error) -> Option<DomainError> {
    if let Some(body) = err.downcast_ref::<BodyError>() {
        return Some(match body {
            BodyError::Malformed(message) => DomainError::InvalidRequest { message: message.clone() },
            BodyError::TooLarge => return None,
            BodyError::Field { field, message } => DomainError::validation(field.clone(), message.clone()),
        });
    }
    if let Some(param) = err.downcast_ref::<ParseParamError>() {
        return Some(DomainError::validation(param.name, format!("query parameter {}: {}", param.name, param.reason)));
    }
    if let Some(path) = err.downcast_ref::<ParsePathError>() {
        return Some(DomainError::validation(path.name, format!("path parameter {}: {}", path.name, path.reason)));
    }
    if err.is::<ContentTypeError>() {
        return Some(DomainError::InvalidRequest {
            message: format!("{err}; send a JSON body with Content-Type: application/json"),
        });
    }
    if let Some(payload) = err.downcast_ref::<ParseRequestPayloadError>() {
        return Some(DomainError::InvalidRequest { message: payload.to_string() });
    }
    None
}

/// What an endpoint's result is on the wire: its response, or its error in
/// the envelope.
pub async fn respond(result: poem::Result<impl IntoResponse>) -> Response {
    match result {
        Ok(response) => response.into_response(),
        Err(err) => envelope_poem_error(err).await,
    }
}

/// The catch-all for everything outside operations: unknown routes, wrong
/// methods, and any poem error that has no envelope yet.
pub async fn envelope_poem_error(err: poem::Error) -> Response {
    if err.is_from_response() {
        return err.into_response();
    }
    if err.is::<NotFoundError>() {
        return ApiError::from(TransportError::RouteNotFound).into_response();
    }
    if err.is::<MethodNotAllowedError>() {
        return ApiError::from(TransportError::MethodNotAllowed).into_response();
    }
    if matches!(err.downcast_ref::<BodyError>(), Some(BodyError::TooLarge)) {
        return ApiError::from(TransportError::PayloadTooLarge).into_response();
    }
    let domain = if let Some(domain) = extraction_error(&err) {
        domain
    } else if err.status().is_client_error() {
        DomainError::InvalidRequest { message: err.to_string() }
    } else {
        DomainError::internal(err.to_string())
    };
    ApiError::from(domain).into_response()
}

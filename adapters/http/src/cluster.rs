//! Several nodes on one database: any node accepts any request. Reads are
//! answered from the database here; a request that needs a session's
//! worker (an execution, a cancel, a fork, a close, the live part of an
//! event stream) is forwarded to the node that runs it, and a new session
//! to the node placement picks ([`vm_domain::services::NodeService`]
//! decides; [`crate::forward`] carries). A request that carries the nodes'
//! credential was routed already and is served here, never forwarded again.

use std::sync::Arc;

use hyper::body::Bytes;
use poem::http::{header, HeaderValue, Method};
use poem::{Endpoint, IntoResponse, Request, Response};
use vm_domain::ids::{ExecutionId, NodeId, SessionId};
use vm_domain::node::Node;
use vm_domain::services::Route;
use vm_domain::token::Scope;
use vm_domain::DomainError;

use crate::error::ApiError;
use crate::forward::{Forward, ForwardError, Forwarder, CREDENTIAL_HEADER, FORWARDED_TO_HEADER};
use crate::payload::{BodyError, MAX_BODY_BYTES};
use crate::request_id::{RequestId, HEADER as REQUEST_ID_HEADER};
use crate::Services;

/// Every response names the node that handled it.
pub const NODE_HEADER: &str = "x-vm-node";

/// What a request asks of a session's worker, read from its method and
/// path (below `/api/v1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// `POST /sessions`: placement.
    NewSession { local: bool },
    /// `POST /executions/repl`, `POST /executions/run-file`: the session
    /// named in the body.
    SessionInBody,
    /// `POST /sessions/{id}/fork`, `POST /sessions/{id}/close`, `DELETE /sessions/{id}`.
    Session(SessionId),
    /// `POST /executions/{id}/cancel`.
    Execution(ExecutionId),
    /// `GET /executions/{id}/events` asking for `text/event-stream`: only
    /// while it runs.
    LiveEvents(ExecutionId),
}

impl Target {
    fn of(req: &Request) -> Option<Target> {
        let path = req.uri().path().trim_end_matches('/');
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let method = req.method();
        let id = |text: &str| uuid::Uuid::parse_str(text).ok();
        match (method, segments.as_slice()) {
            (&Method::POST, ["sessions"]) => {
                let local =
                    req.uri().query().is_some_and(|query| query.split('&').any(|pair| pair == "placement=local"));
                Some(Target::NewSession { local })
            }
            (&Method::POST, ["executions", "repl" | "run-file"]) => Some(Target::SessionInBody),
            (&Method::POST, ["sessions", session, "fork" | "close"]) | (&Method::DELETE, ["sessions", session]) => {
                id(session).map(|id| Target::Session(id.into()))
            }
            (&Method::POST, ["executions", execution, "cancel"]) => {
                id(execution).map(|id| Target::Execution(id.into()))
            }
            (&Method::GET, ["executions", execution, "events"]) if wants_stream(req) => {
                id(execution).map(|id| Target::LiveEvents(id.into()))
            }
            _ => None,
        }
    }

    fn scope(self) -> Scope {
        match self {
            Target::LiveEvents(_) => Scope::Read,
            _ => Scope::Execute,
        }
    }
}

fn wants_stream(req: &Request) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.to_ascii_lowercase().contains("text/event-stream"))
}

/// The `session_id` of a JSON body, when it has a valid one; otherwise the
/// request is served here, where it is refused with the precise error.
fn session_in(body: &[u8]) -> Option<SessionId> {
    #[derive(serde::Deserialize)]
    struct Named {
        session_id: Option<String>,
    }
    let named: Named = serde_json::from_slice(body).ok()?;
    uuid::Uuid::parse_str(named.session_id?.trim()).ok().map(SessionId::from)
}

fn refusal(err: DomainError) -> Response {
    ApiError::from(err).into_response()
}

/// The middleware: routes `req` to this node or forwards it.
pub async fn route<E: Endpoint>(next: Arc<E>, mut req: Request, forwarder: Arc<Forwarder>) -> poem::Result<Response> {
    let services = req.data::<Arc<Services>>().expect("the app is built with its Services").clone();
    let this = services.nodes.id().to_string();
    let mut response = match decide(&services, &mut req).await {
        Decision::Here => next.call(req).await.map(IntoResponse::into_response)?,
        Decision::Refused(response) => response,
        Decision::Failed(err) => return Err(err),
        Decision::Forward { node, session_id, body } => {
            let headers = forwarded_headers(&req);
            let forward = Forward {
                base_url: &node.url,
                method: req.method().clone(),
                path_and_query: req.original_uri().path_and_query().map_or("/", |p| p.as_str()),
                headers: &headers,
                body,
                credential: services.nodes.secret(),
                from_node: &this,
                to_node: &node.id.to_string(),
            };
            match forwarder.send(forward).await {
                Ok(response) => return Ok(response),
                Err(ForwardError::Unreachable(reason)) => {
                    tracing::warn!(node_id = %node.id, url = node.url, reason, "cannot forward to the session's node");
                    refusal(DomainError::NodeUnavailable { node_id: node.id, url: node.url, session_id, reason })
                }
            }
        }
    };
    if let Ok(value) = HeaderValue::from_str(&this) {
        response.headers_mut().insert(NODE_HEADER, value);
    }
    Ok(response)
}

/// The client's headers as the owner gets them: with this request's id
/// (the one the client sent, or the one made for it here), so that both
/// nodes log and answer the same; without `Origin`, which was checked here
/// against the host the client used, not the owner's.
fn forwarded_headers(req: &Request) -> poem::http::HeaderMap {
    let mut headers = req.headers().clone();
    headers.remove(header::ORIGIN);
    if let Some(id) = req.extensions().get::<RequestId>() {
        if let Ok(value) = HeaderValue::from_str(&id.0) {
            headers.insert(REQUEST_ID_HEADER, value);
        }
    }
    headers
}

/// A forwarded request that names another node as its target: its node
/// advertises this node's URL too. Serving it here would run a session this
/// node does not hold (and crash it), so it is refused.
fn meant_for_another(services: &Services, req: &Request) -> Option<DomainError> {
    let target = req.headers().get(FORWARDED_TO_HEADER).and_then(|value| value.to_str().ok())?;
    let this = services.nodes.id();
    let meant = uuid::Uuid::parse_str(target).ok().map(NodeId::from).filter(|meant| *meant != this)?;
    Some(DomainError::NodeUnavailable {
        node_id: meant,
        url: services.nodes.config().url.clone(),
        session_id: None,
        reason: format!(
            "its address answers as node {this}: two nodes advertise the same URL (see their --advertise-url)"
        ),
    })
}

enum Decision {
    Here,
    Refused(Response),
    /// Answered in the envelope by the application's error handler.
    Failed(poem::Error),
    /// To `node`, which runs the session.
    Forward {
        node: Node,
        session_id: Option<SessionId>,
        body: Bytes,
    },
}

async fn decide(services: &Services, req: &mut Request) -> Decision {
    if let Some(given) = req.headers().get(CREDENTIAL_HEADER) {
        if !services.nodes.accepts(given.to_str().unwrap_or_default()) {
            return Decision::Refused(refusal(DomainError::Unauthenticated {
                message: format!("the {CREDENTIAL_HEADER} header does not hold this cluster's node credential"),
            }));
        }
        return match meant_for_another(services, req) {
            None => Decision::Here,
            Some(err) => Decision::Refused(refusal(err)),
        };
    }
    // A daemon that holds its database alone (SQLite) serves every session.
    if services.nodes.config().exclusive {
        return Decision::Here;
    }
    let Some(target) = Target::of(req) else { return Decision::Here };
    // The caller must hold the scope before anything is routed: routing
    // answers nobody who could not ask. The node that serves a forwarded
    // request checks the token again.
    if let Err(err) = crate::guard::authorize_once(req, target.scope()).await {
        return Decision::Failed(err);
    }
    let has_body = matches!(target, Target::SessionInBody | Target::NewSession { .. });
    let body = if has_body {
        match req.take_body().into_bytes_limit(MAX_BODY_BYTES).await {
            Ok(body) => body,
            Err(poem::error::ReadBodyError::PayloadTooLarge) => return Decision::Failed(BodyError::TooLarge.into()),
            Err(err) => return Decision::Failed(BodyError::Malformed(format!("cannot read the body ({err})")).into()),
        }
    } else {
        Bytes::new()
    };
    let route = match target {
        Target::NewSession { local } => services.nodes.place(local).await,
        Target::SessionInBody => match session_in(&body) {
            Some(id) => services.nodes.route_session(id).await,
            None => Ok(Route::Here),
        },
        Target::Session(id) => services.nodes.route_session(id).await,
        Target::Execution(id) => services.nodes.route_execution(id, false).await,
        Target::LiveEvents(id) => services.nodes.route_execution(id, true).await,
    };
    match route {
        Ok(Route::Here) => {
            if has_body {
                req.set_body(body);
            }
            Decision::Here
        }
        Ok(Route::Node { node, session_id }) => Decision::Forward { node, session_id, body },
        Err(err) => Decision::Refused(refusal(err)),
    }
}

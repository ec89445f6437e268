//! Who may call, from where: bearer tokens and their scopes (the
//! [`Reader`], [`Executor`] and [`Admin`] extractors that operations take),
//! the `Host` check against DNS rebinding, the `Origin` check against
//! cross-site requests, CORS (closed unless origins are allowed) and the
//! audit log of state-changing requests.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use poem::http::{header, Method};
use poem::middleware::Cors;
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response};
use poem_openapi::registry::{MetaSecurityScheme, Registry};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions, OperationId};
use vm_domain::token::{Principal, Scope};
use vm_domain::DomainError;

use crate::error::ApiError;
use crate::request_id::RequestId;
use crate::Services;

/// The security scheme's name in the OpenAPI document.
pub const SCHEME: &str = "token";

/// Whether operations need a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// `Authorization: Bearer <token>` with a covering scope.
    Required,
    /// Every caller may do anything (`serve --auth=off`, loopback only).
    Off,
}

/// The access rules of one daemon.
#[derive(Debug, Clone)]
pub struct Access {
    pub auth: AuthMode,
    pub hosts: HostRules,
    /// Origins (`scheme://host[:port]`, lower case) besides the daemon's own.
    pub origins: Vec<String>,
}

impl Access {
    /// The rules for a daemon listening on `listen`; `hosts` and `origins`
    /// are the `--allowed-host` and `--allowed-origin` entries.
    pub fn new(auth: AuthMode, listen: SocketAddr, hosts: &[String], origins: &[String]) -> Result<Self, String> {
        let origins = origins.iter().map(|origin| normalise_origin(origin)).collect::<Result<Vec<_>, _>>()?;
        Ok(Self { auth, hosts: HostRules::new(listen, hosts)?, origins })
    }
}

/// `Host` values served: the listen address, `localhost`, loopback
/// addresses when listening on one, any IP literal when listening on all
/// interfaces, and the `--allowed-host` names. A DNS-rebinding page reaches
/// the daemon under its own host name, which is none of these.
#[derive(Debug, Clone)]
pub struct HostRules {
    names: Vec<String>,
    any_ip: bool,
}

impl HostRules {
    pub fn new(listen: SocketAddr, extra: &[String]) -> Result<Self, String> {
        let mut candidates = vec!["localhost".to_owned(), ip_text(listen.ip())];
        if listen.ip().is_loopback() || listen.ip().is_unspecified() {
            candidates.extend(["127.0.0.1".to_owned(), "[::1]".to_owned()]);
        }
        for raw in extra {
            let name = host_name(raw.trim()).to_ascii_lowercase();
            if name.is_empty() || name.contains(['/', ' ', '@']) {
                return Err(format!("--allowed-host {raw:?} is not a host name"));
            }
            candidates.push(name);
        }
        let mut names = Vec::new();
        for name in candidates {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        Ok(Self { names, any_ip: listen.ip().is_unspecified() })
    }

    /// Whether a request whose `Host` header is `host` is served.
    pub fn allows(&self, host: &str) -> bool {
        let name = host_name(host).to_ascii_lowercase();
        let name = name.strip_suffix('.').unwrap_or(&name);
        if self.names.iter().any(|allowed| allowed == name) {
            return true;
        }
        self.any_ip && name.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().is_ok()
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }
}

fn ip_text(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// The host part of a `Host` value, without its port.
fn host_name(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// `scheme://host[:port]` in lower case; anything else is refused at start.
fn normalise_origin(raw: &str) -> Result<String, String> {
    let origin = raw.trim().trim_end_matches('/').to_ascii_lowercase();
    let ok = ["http://", "https://"].iter().any(|scheme| {
        origin.strip_prefix(scheme).is_some_and(|rest| !rest.is_empty() && !rest.contains(['/', '?', '#', '@']))
    });
    if !ok {
        return Err(format!("--allowed-origin {raw:?} is not an origin like https://ui.example.com"));
    }
    Ok(origin)
}

type Inner = poem::endpoint::BoxEndpoint<'static, Response>;

fn is_state_changing(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn refusal(err: DomainError) -> Response {
    ApiError::from(err).into_response()
}

/// Wraps the whole application: refuses foreign `Host`s (421) and, on
/// state-changing methods, foreign `Origin`s (403); answers CORS when
/// origins are allowed; logs every state-changing request to the audit log.
pub fn guard<E>(endpoint: E, access: Arc<Access>) -> poem::endpoint::BoxEndpoint<'static, Response>
where
    E: Endpoint + 'static,
{
    let endpoint = endpoint.map_to_response();
    let inner: Inner = if access.origins.is_empty() {
        endpoint.boxed()
    } else {
        let cors = Cors::new()
            .allow_origins(access.origins.iter().map(String::as_str))
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
            .allow_headers(["authorization", "content-type", "x-request-id", "last-event-id"])
            .expose_headers(["x-request-id"])
            .max_age(600);
        endpoint.with(cors).map_to_response().boxed()
    };
    let inner = Arc::new(inner);
    poem::endpoint::make(move |req: Request| {
        let inner = inner.clone();
        let access = access.clone();
        async move { Ok::<Response, poem::Error>(check_and_call(&access, &inner, req).await) }
    })
    .boxed()
}

async fn check_and_call(access: &Access, inner: &Inner, mut req: Request) -> Response {
    let method = req.method().clone();
    if !is_state_changing(&method) {
        return match refused(access, &req) {
            Some(refusal) => refusal,
            None => call(inner, req).await,
        };
    }
    let slot = AuditSlot::default();
    req.extensions_mut().insert(slot.clone());
    let request_id = req.extensions().get::<RequestId>().map(|id| id.0.clone()).unwrap_or_default();
    let path = req.uri().path().to_owned();
    let response = match refused(access, &req) {
        Some(refusal) => refusal,
        None => call(inner, req).await,
    };
    let route = response.data::<OperationId>().map(|id| id.0).unwrap_or("-");
    let token = slot.name().unwrap_or_else(|| "-".into());
    tracing::info!(
        target: "vm_system::audit",
        request_id = %request_id,
        token = %token,
        method = %method,
        route,
        path = %path,
        status = response.status().as_u16(),
        outcome = if response.status().is_success() { "ok" } else { "refused" },
        "audit"
    );
    response
}

/// The 421 for a `Host` this daemon does not serve, or the 403 for a
/// state-changing request from a foreign `Origin`.
fn refused(access: &Access, req: &Request) -> Option<Response> {
    let header_host = req.headers().get(header::HOST).and_then(|v| v.to_str().ok());
    let host = header_host.or_else(|| req.uri().authority().map(|a| a.as_str()));
    let Some(host) = host.filter(|host| access.hosts.allows(host)) else {
        return Some(refusal(DomainError::MisdirectedRequest {
            host: header_host.unwrap_or("").to_owned(),
            allowed: access.hosts.names().to_vec(),
        }));
    };
    if !is_state_changing(req.method()) {
        return None;
    }
    let origin = req.headers().get(header::ORIGIN)?;
    let origin = origin.to_str().unwrap_or("null").to_ascii_lowercase();
    let host = host.to_ascii_lowercase();
    if origin == format!("http://{host}") || origin == format!("https://{host}") || access.origins.contains(&origin) {
        return None;
    }
    Some(refusal(DomainError::Forbidden {
        message: format!(
            "requests from origin {origin:?} may not change anything here; serve --allowed-origin allows an origin"
        ),
        required_scope: None,
    }))
}

async fn call(inner: &Inner, req: Request) -> Response {
    crate::error::respond(inner.call(req).await).await
}

/// Where the extractors leave the caller's token name for the audit log.
#[derive(Debug, Clone, Default)]
struct AuditSlot(Arc<Mutex<Option<String>>>);

impl AuditSlot {
    fn set(&self, name: &str) {
        *self.0.lock().expect("the audit slot is never poisoned") = Some(name.to_owned());
    }

    fn name(&self) -> Option<String> {
        self.0.lock().expect("the audit slot is never poisoned").clone()
    }
}

/// The bearer secret of `Authorization: Bearer <secret>`, if any.
fn bearer(req: &Request) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, secret) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(secret.trim())
}

/// The caller of `req`, who must hold `scope`. A request authenticated
/// once (by the routing between nodes) is not looked up again.
pub(crate) async fn authorize(req: &Request, scope: Scope) -> poem::Result<Principal> {
    let access = req.data::<Arc<Access>>().expect("the app is built with its Access");
    let services = req.data::<Arc<Services>>().expect("the app is built with its Services");
    if let Some(Authenticated(principal)) = req.extensions().get::<Authenticated>() {
        principal.require(scope).map_err(|err| poem::Error::from_response(refusal(err)))?;
        return Ok(principal.clone());
    }
    let principal = match access.auth {
        AuthMode::Off => Principal::unauthenticated_admin(),
        AuthMode::Required => services.tokens.authenticate(bearer(req)).await.map_err(|err| {
            let mut response = refusal(err);
            if response.status() == poem::http::StatusCode::UNAUTHORIZED {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer realm=\"vm-system\""));
            }
            poem::Error::from_response(response)
        })?,
    };
    if let Some(slot) = req.extensions().get::<AuditSlot>() {
        slot.set(&principal.name);
    }
    principal.require(scope).map_err(|err| poem::Error::from_response(refusal(err)))?;
    Ok(principal)
}

/// The caller a request was authenticated as, kept in its extensions.
#[derive(Debug, Clone)]
pub(crate) struct Authenticated(pub Principal);

/// [`authorize`], keeping the caller on `req` for the operation's own check.
pub(crate) async fn authorize_once(req: &mut Request, scope: Scope) -> poem::Result<()> {
    let principal = authorize(req, scope).await?;
    req.extensions_mut().insert(Authenticated(principal));
    Ok(())
}

fn register_scheme(registry: &mut Registry) {
    registry.create_security_scheme(
        SCHEME,
        MetaSecurityScheme {
            ty: "http",
            description: Some(
                "An API token: `Authorization: Bearer vmsys_…`. Scopes: `read` (every GET), `execute` \
                 (sessions and executions), `admin` (templates, tokens); each includes the ones before it.",
            ),
            name: None,
            key_in: None,
            scheme: Some("bearer"),
            bearer_format: Some("vmsys_ + 64 hex digits"),
            flows: None,
            openid_connect_url: None,
        },
    );
}

macro_rules! caller {
    ($(#[$doc:meta])* $name:ident, $scope:expr) => {
        $(#[$doc])*
        pub struct $name(pub Principal);

        impl<'a> ApiExtractor<'a> for $name {
            const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
            type ParamType = ();
            type ParamRawType = ();

            fn register(registry: &mut Registry) {
                register_scheme(registry);
            }

            fn security_schemes() -> Vec<&'static str> {
                vec![SCHEME]
            }

            async fn from_request(
                req: &'a Request,
                _body: &mut poem::RequestBody,
                _param_opts: ExtractParamOptions<Self::ParamType>,
            ) -> poem::Result<Self> {
                Ok(Self(authorize(req, $scope).await?))
            }
        }
    };
}

caller!(
    /// A caller holding the `read` scope (or more).
    Reader,
    Scope::Read
);
caller!(
    /// A caller holding the `execute` scope (or `admin`).
    Executor,
    Scope::Execute
);
caller!(
    /// A caller holding the `admin` scope.
    Admin,
    Scope::Admin
);

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(listen: &str, extra: &[&str]) -> HostRules {
        HostRules::new(listen.parse().unwrap(), &extra.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn hosts_naming_the_daemon_are_served_and_others_are_not() {
        let loopback = rules("127.0.0.1:3210", &[]);
        for host in ["127.0.0.1:3210", "localhost:3210", "LOCALHOST", "[::1]:3210", "localhost.:3210", "127.0.0.1"] {
            assert!(loopback.allows(host), "{host}");
        }
        for host in ["evil.example:3210", "127.0.0.1.nip.io:3210", "10.0.0.1:3210", "", "localhost.evil"] {
            assert!(!loopback.allows(host), "{host}");
        }
        let public = rules("0.0.0.0:3210", &["vm.example.com"]);
        assert!(public.allows("192.168.1.20:3210"));
        assert!(public.allows("VM.example.com"));
        assert!(!public.allows("rebound.example.net"));
        let v6 = rules("[::1]:3210", &[]);
        assert!(v6.allows("[::1]:3210"));
    }

    #[test]
    fn origins_must_be_scheme_and_host() {
        assert_eq!(normalise_origin("https://UI.example.com/").unwrap(), "https://ui.example.com");
        assert!(normalise_origin("ui.example.com").is_err());
        assert!(normalise_origin("https://ui.example.com/path").is_err());
    }

    #[test]
    fn bearer_tokens_are_read_case_insensitively() {
        let req = Request::builder().header("Authorization", "bearer  vmsys_abc ").finish();
        assert_eq!(bearer(&req), Some("vmsys_abc"));
        let req = Request::builder().header("Authorization", "Basic abc").finish();
        assert_eq!(bearer(&req), None);
    }
}

//! The REST adapter of vm-system: `poem` + `poem-openapi` under `/api/v1`,
//! the OpenAPI document, Swagger UI at `/docs`, and one error envelope for
//! every failure. Handlers hold no business rule.
//!
//! Layout:
//! - [`api`]: one `#[OpenApi]` struct per resource.
//! - [`dto`]: wire shapes and their conversions.
//! - [`error`]: `DomainError` → HTTP, in one place.
//! - [`payload`]: JSON bodies decoded with precise errors.
//! - [`guard`]: tokens and scopes, `Host` and `Origin` checks, CORS, audit log.
//! - [`request_id`]: `X-Request-Id` on every response.
//! - [`metrics`]: Prometheus metrics: the recorder, request timing, scrape-time gauges.
//! - [`cluster`], [`forward`]: several nodes on one database: which node serves a request, and
//!   forwarding it there.
//! - [`server`]: the accept loop with connection limits and timeouts.
//! - [`docs`]: Swagger UI from vendored assets.

pub mod allow;
pub mod api;
pub mod clock;
pub mod cluster;
pub mod docs;
pub mod dto;
pub mod error;
pub mod forward;
pub mod guard;
pub mod metrics;
pub mod payload;
pub mod request_id;
pub mod schema;
pub mod server;

use std::sync::Arc;

use poem::{get, Endpoint, EndpointExt, Route};
use poem_openapi::OpenApiService;
use vm_domain::node::NodeConfig;
use vm_domain::paths::WorktreePolicy;
use vm_domain::ports::{
    Clock, ExecutionStore, JsRuntime, LibraryCache, NodeStore, SessionStore, StoreHealth, TemplateStore, TokenStore,
};
use vm_domain::services::{ExecutionService, NodeService, SessionService, TemplateService, TokenService};

pub use guard::{Access, AuthMode};

/// The domain services the handlers call.
pub struct Services {
    pub templates: TemplateService,
    pub sessions: SessionService,
    pub executions: ExecutionService,
    pub tokens: TokenService,
    /// This node among the nodes serving the database.
    pub nodes: NodeService,
    /// Whether the store answers, for `GET /ready`.
    pub store_health: Arc<dyn StoreHealth>,
}

/// The stores the services work on.
pub struct StorePorts {
    pub templates: Arc<dyn TemplateStore>,
    pub sessions: Arc<dyn SessionStore>,
    pub executions: Arc<dyn ExecutionStore>,
    pub tokens: Arc<dyn TokenStore>,
    pub nodes: Arc<dyn NodeStore>,
    pub health: Arc<dyn StoreHealth>,
}

impl Services {
    /// The three services over the given ports; templates may name the
    /// runtime's engine. The daemon and the HTTP tests wire through here.
    /// Session worktrees must satisfy `worktrees`; `node` says how this
    /// daemon appears among the nodes (it joins with [`NodeService::join`]).
    pub fn new(
        stores: StorePorts,
        runtime: Arc<dyn JsRuntime>,
        cache: Arc<dyn LibraryCache>,
        clock: Arc<dyn Clock>,
        worktrees: WorktreePolicy,
        node: NodeConfig,
    ) -> Self {
        let StorePorts { templates, sessions, executions, tokens, nodes, health } = stores;
        let engines = vec![runtime.engine().to_owned()];
        let template_service = TemplateService::new(templates.clone(), cache, clock.clone(), engines);
        let tokens = TokenService::new(tokens, clock.clone());
        let max_sessions = node.max_sessions;
        let nodes = NodeService::new(nodes, sessions.clone(), executions.clone(), runtime.clone(), clock.clone(), node);
        let (sessions, executions) = SessionService::new(templates, sessions, executions, runtime, clock, worktrees);
        let sessions = sessions.on_node(nodes.id(), max_sessions);
        Self { templates: template_service, sessions, executions, tokens, nodes, store_health: health }
    }
}

/// Where the API lives.
pub const API_PREFIX: &str = "/api/v1";

fn openapi_service(services: Arc<Services>) -> OpenApiService<impl poem_openapi::OpenApi, ()> {
    let apis = (
        api::templates::TemplatesApi(services.clone()),
        api::sessions::SessionsApi(services.clone()),
        api::executions::ExecutionsApi(services.clone()),
        api::catalog::CatalogApi(services.clone()),
        api::tokens::TokensApi(services.clone()),
        api::system::SystemApi(services.clone()),
        api::ops::OpsApi(services),
    );
    OpenApiService::new(apis, "vm-system", env!("CARGO_PKG_VERSION"))
        .description(
            "Long-lived, sandboxed JavaScript runtimes over HTTP. Every error uses the envelope \
             {\"error\": {\"code\", \"message\", \"details\"}}; every response carries X-Request-Id.",
        )
        .server(API_PREFIX)
}

/// The OpenAPI document as the daemon serves it (pretty JSON): generated from the operations,
/// then [`schema::finish`]ed.
pub fn openapi_json(services: Arc<Services>) -> String {
    serde_json::to_string_pretty(&document(&services)).expect("a JSON value serialises")
}

/// The OpenAPI document as a JSON value: generated, then finished.
fn document(services: &Arc<Services>) -> serde_json::Value {
    let mut doc: serde_json::Value =
        serde_json::from_str(&openapi_service(services.clone()).spec()).expect("poem-openapi writes JSON");
    schema::finish(&mut doc, &choices(services));
    doc
}

/// The closed sets of this daemon's configuration.
fn choices(services: &Services) -> schema::Choices {
    use vm_domain::catalog::{LIBRARIES, MODULES};
    schema::Choices {
        engines: services.templates.engines().to_vec(),
        modules: MODULES.iter().map(|m| m.name.to_owned()).collect(),
        libraries: LIBRARIES.iter().map(|l| l.name()).collect(),
        startup_modes: vec!["eval".to_owned()],
    }
}

/// The whole HTTP application: API, OpenAPI document, Swagger UI, and `/`,
/// behind the [`guard`]. `root` is mounted at `/` (e.g. the web UI);
/// unknown paths elsewhere get the error envelope.
pub fn app(
    services: Arc<Services>,
    access: Access,
    root: Option<poem::endpoint::BoxEndpoint<'static>>,
) -> impl Endpoint<Output = poem::Response> {
    let access = Arc::new(access);
    let api = openapi_service(services.clone());
    let doc = document(&services);
    let methods = Arc::new(allow::Methods::from_document(&doc, API_PREFIX));
    let spec = serde_json::to_string_pretty(&doc).expect("a JSON value serialises");
    let forwarder = Arc::new(forward::Forwarder::new());
    let api =
        api.around(metrics::keep_operation_id).around(move |next, req| cluster::route(next, req, forwarder.clone()));
    let mut route = Route::new()
        .nest(API_PREFIX, api)
        .at(
            format!("{API_PREFIX}/openapi.json"),
            get(poem::endpoint::make_sync(move |_| {
                poem::Response::builder().content_type("application/json").body(spec.clone())
            })),
        )
        .nest_no_strip("/docs", docs::swagger_ui(&format!("{API_PREFIX}/openapi.json")));
    route = match root {
        Some(endpoint) => route.nest("/", endpoint),
        None => route.at("/", get(docs::landing_page)),
    };
    let route = route
        .catch_all_error(error::envelope_poem_error)
        .around(move |next, req| allow::stamp(next, req, methods.clone()))
        .data(services)
        .data(access.clone());
    guard::guard(route, access).around(metrics::observe).around(request_id::stamp)
}

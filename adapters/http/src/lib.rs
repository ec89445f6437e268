//! The REST adapter of vm-system: `poem` + `poem-openapi` under `/api/v1`,
//! the OpenAPI document, Swagger UI at `/docs`, and one error envelope for
//! every failure. Handlers hold no business rule.
//!
//! Layout:
//! - [`api`]: one `#[OpenApi]` struct per resource.
//! - [`dto`]: wire shapes and their conversions.
//! - [`error`]: `DomainError` → HTTP, in one place.
//! - [`payload`]: JSON bodies decoded with precise errors.
//! - [`request_id`]: `X-Request-Id` on every response.
//! - [`docs`]: Swagger UI from vendored assets.

pub mod api;
pub mod docs;
pub mod dto;
pub mod error;
pub mod payload;
pub mod request_id;
pub mod server;

use std::sync::Arc;

use poem::{get, Endpoint, EndpointExt, Route};
use poem_openapi::OpenApiService;
use vm_domain::ports::{Clock, ExecutionStore, JsRuntime, LibraryCache, SessionStore, TemplateStore};
use vm_domain::services::{ExecutionService, SessionService, TemplateService};

/// The domain services the handlers call.
pub struct Services {
    pub templates: TemplateService,
    pub sessions: SessionService,
    pub executions: ExecutionService,
}

impl Services {
    /// The three services over the given ports; templates may name the
    /// runtime's engine. The daemon and the HTTP tests wire through here.
    pub fn new(
        templates: Arc<dyn TemplateStore>,
        sessions: Arc<dyn SessionStore>,
        executions: Arc<dyn ExecutionStore>,
        runtime: Arc<dyn JsRuntime>,
        cache: Arc<dyn LibraryCache>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let engines = vec![runtime.engine().to_owned()];
        let template_service = TemplateService::new(templates.clone(), cache, clock.clone(), engines);
        let (sessions, executions) = SessionService::new(templates, sessions, executions, runtime, clock);
        Self { templates: template_service, sessions, executions }
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
        api::ops::OpsApi(services),
    );
    OpenApiService::new(apis, "vm-system", env!("CARGO_PKG_VERSION"))
        .description(
            "Long-lived, sandboxed JavaScript runtimes over HTTP. Every error uses the envelope \
             {\"error\": {\"code\", \"message\", \"details\"}}; every response carries X-Request-Id.",
        )
        .server(API_PREFIX)
}

/// The OpenAPI document as the daemon serves it (pretty JSON).
pub fn openapi_json(services: Arc<Services>) -> String {
    openapi_service(services).spec()
}

/// The whole HTTP application: API, OpenAPI document, Swagger UI, and `/`.
/// `extra` is mounted at `/` (e.g. the web UI); unknown paths elsewhere get
/// the error envelope.
pub fn app(
    services: Arc<Services>,
    root: Option<poem::endpoint::BoxEndpoint<'static>>,
) -> impl Endpoint<Output = poem::Response> {
    let api = openapi_service(services);
    let spec = api.spec();
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
    route.catch_all_error(error::envelope_poem_error).around(request_id::stamp)
}

//! Swagger UI at `/docs`, from utoipa-swagger-ui's vendored assets (nothing
//! is downloaded), and the plain landing page at `/`.

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::Html;
use poem::{handler, Endpoint, Request, Response};

/// Serves Swagger UI pointing at `spec_url`; mount it with `nest_no_strip("/docs")`.
pub fn swagger_ui(spec_url: &str) -> impl Endpoint {
    let config = Arc::new(utoipa_swagger_ui::Config::new([spec_url.to_owned()]));
    poem::endpoint::make_sync(move |req: Request| {
        let full = req.uri().path().to_owned();
        let tail = full.trim_start_matches("/docs").trim_start_matches('/');
        if tail.is_empty() && !full.ends_with('/') {
            return Response::builder().status(StatusCode::FOUND).header("Location", "/docs/").finish();
        }
        match utoipa_swagger_ui::serve(tail, config.clone()) {
            Ok(Some(file)) => Response::builder().content_type(file.content_type).body(file.bytes.into_owned()),
            Ok(None) => Response::builder().status(StatusCode::NOT_FOUND).finish(),
            Err(err) => Response::builder().status(StatusCode::INTERNAL_SERVER_ERROR).body(err.to_string()),
        }
    })
}

#[handler]
pub async fn landing_page() -> Html<&'static str> {
    Html(
        "<!doctype html><title>vm-system</title><h1>vm-system</h1>\
         <p>The daemon is running. API: <a href=\"/api/v1/health\">/api/v1</a> · \
         OpenAPI: <a href=\"/api/v1/openapi.json\">/api/v1/openapi.json</a> · \
         Swagger UI: <a href=\"/docs/\">/docs</a></p>",
    )
}

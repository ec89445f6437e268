//! The web UI (`ui/`, built by Vite into `ui/dist`) served at `/` with an SPA
//! fallback that never answers for `/api` or `/docs`. Release builds embed the
//! files (`build.rs` builds them first); debug builds read `ui/dist` from disk.
//! Without a built UI, `/` says how to build it and the API works as ever.

use std::borrow::Cow;
use std::sync::Arc;

use poem::error::{MethodNotAllowedError, NotFoundError};
use poem::http::{header, Method, StatusCode};
use poem::{Endpoint, EndpointExt, Request, Response};

/// `ui/dist`, embedded at compile time in release builds. `build.rs` sets
/// the canonical path: rust-embed's debug reads compare canonical paths.
#[derive(rust_embed::RustEmbed)]
#[folder = "$VM_SYSTEM_UI_DIST"]
#[allow_missing = true]
struct Dist;

/// One file of the built UI.
pub struct Asset {
    pub bytes: Cow<'static, [u8]>,
    pub content_type: String,
    /// A strong validator for `If-None-Match`.
    pub etag: String,
}

/// Finds a file of the built UI by its path relative to `dist/` (`index.html`).
pub type Lookup = Arc<dyn Fn(&str) -> Option<Asset> + Send + Sync>;

fn embedded(path: &str) -> Option<Asset> {
    let file = Dist::get(path)?;
    let hash: String = file.metadata.sha256_hash().iter().take(16).map(|byte| format!("{byte:02x}")).collect();
    Some(Asset { content_type: file.metadata.mimetype().to_owned(), etag: format!("\"{hash}\""), bytes: file.data })
}

/// The endpoint to mount at `/` (`vm_http::app(services, Some(...))`).
pub fn endpoint() -> poem::endpoint::BoxEndpoint<'static> {
    endpoint_with(Arc::new(embedded))
}

/// Whether the daemon has a built UI to serve.
pub fn is_built() -> bool {
    embedded("index.html").is_some()
}

pub fn endpoint_with(lookup: Lookup) -> poem::endpoint::BoxEndpoint<'static> {
    UiEndpoint { lookup }.boxed()
}

struct UiEndpoint {
    lookup: Lookup,
}

/// Paths the UI must never answer for: the API and Swagger UI own them, and a
/// typo there deserves the API's JSON 404, not the UI's HTML.
fn is_reserved(path: &str) -> bool {
    ["/api", "/docs"]
        .iter()
        .any(|prefix| path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/')))
}

/// A path that names a file (`/assets/x.js`, `/favicon.ico`) gets a 404 when
/// missing; any other path is a client-side route and gets `index.html`.
fn names_a_file(path: &str) -> bool {
    path.starts_with("assets/") || path.rsplit('/').next().is_some_and(|last| last.contains('.'))
}

impl Endpoint for UiEndpoint {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let path = req.uri().path().to_owned();
        if is_reserved(&path) {
            return Err(NotFoundError.into());
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return Err(MethodNotAllowedError.into());
        }
        let Some(index) = (self.lookup)("index.html") else {
            return if path == "/" { Ok(not_built_page()) } else { Err(NotFoundError.into()) };
        };
        let relative = path.trim_start_matches('/');
        if !relative.is_empty() && relative != "index.html" {
            if let Some(file) = (self.lookup)(relative) {
                // Vite puts a content hash in every name under assets/: cache them for good.
                let cache =
                    if relative.starts_with("assets/") { "public, max-age=31536000, immutable" } else { "no-cache" };
                return Ok(respond(&req, file, cache));
            }
            if names_a_file(relative) {
                return Err(NotFoundError.into());
            }
        }
        Ok(respond(&req, index, "no-cache"))
    }
}

fn respond(req: &Request, asset: Asset, cache_control: &str) -> Response {
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|tag| tag.trim() == asset.etag));
    let builder = Response::builder()
        .header(header::ETAG, asset.etag.as_str())
        .header(header::CACHE_CONTROL, cache_control)
        .header("X-Content-Type-Options", "nosniff");
    if fresh {
        return builder.status(StatusCode::NOT_MODIFIED).finish();
    }
    let builder = builder.content_type(asset.content_type.as_str());
    if req.method() == Method::HEAD {
        return builder.header(header::CONTENT_LENGTH, asset.bytes.len()).finish();
    }
    builder.body(asset.bytes.into_owned())
}

/// `/` when the binary was built without the UI.
fn not_built_page() -> Response {
    Response::builder().content_type("text/html; charset=utf-8").header(header::CACHE_CONTROL, "no-cache").body(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>vm-system: web UI not built</title>
<style>body{font:15px/1.55 system-ui,sans-serif;max-width:46rem;margin:3rem auto;padding:0 1rem;color:#1b1f24}
code,pre{font-family:ui-monospace,Menlo,Consolas,monospace;background:#f1f3f6;border-radius:4px}
code{padding:1px 5px}pre{padding:.8rem 1rem}</style></head>
<body>
<h1>vm-system is running</h1>
<p>The REST API is up at <a href="/api/v1/health"><code>/api/v1</code></a>, with
<a href="/docs/">Swagger UI at <code>/docs</code></a> and the
<a href="/api/v1/openapi.json">OpenAPI document</a>.</p>
<h2>The web UI is not built into this binary</h2>
<p>It needs Node.js (20.19 or newer) and npm. From the repository root, either let the release build do it:</p>
<pre>cargo run --release -p vm-system -- serve</pre>
<p>or build it by hand, then rebuild the daemon:</p>
<pre>cd ui &amp;&amp; npm ci &amp;&amp; npm run build &amp;&amp; cd ..
cargo run --release -p vm-system -- serve</pre>
<p>(A debug build reads <code>ui/dist</code> from disk, so there a restart is enough.)</p>
</body></html>
"#,
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use poem::test::TestClient;

    use super::*;

    fn files(entries: &[(&str, &str, &str)]) -> Lookup {
        let map: HashMap<String, (String, String)> = entries
            .iter()
            .map(|(path, content_type, body)| ((*path).to_owned(), ((*content_type).to_owned(), (*body).to_owned())))
            .collect();
        Arc::new(move |path| {
            map.get(path).map(|(content_type, body)| Asset {
                bytes: Cow::Owned(body.clone().into_bytes()),
                content_type: content_type.clone(),
                etag: format!("\"{}\"", body.len()),
            })
        })
    }

    fn built_ui() -> TestClient<impl Endpoint> {
        let lookup = files(&[
            ("index.html", "text/html", "<div id=root></div>"),
            ("assets/index-abc123.js", "text/javascript", "console.log(1)"),
            ("favicon.svg", "image/svg+xml", "<svg/>"),
        ]);
        TestClient::new(endpoint_with(lookup))
    }

    #[tokio::test]
    async fn the_root_and_client_side_routes_get_index_html() {
        let client = built_ui();
        for path in ["/", "/sessions", "/sessions/6c1d4c52-0000-4000-8000-000000000000", "/templates?x=1"] {
            let response = client.get(path).send().await;
            response.assert_status_is_ok();
            response.assert_header(header::CACHE_CONTROL, "no-cache");
            response.assert_text("<div id=root></div>").await;
        }
    }

    #[tokio::test]
    async fn hashed_assets_are_served_with_their_type_and_cached_for_good() {
        let response = built_ui().get("/assets/index-abc123.js").send().await;
        response.assert_status_is_ok();
        response.assert_content_type("text/javascript");
        response.assert_header(header::CACHE_CONTROL, "public, max-age=31536000, immutable");
        response.assert_text("console.log(1)").await;
    }

    #[tokio::test]
    async fn a_matching_etag_gets_not_modified() {
        let response = built_ui().get("/favicon.svg").header(header::IF_NONE_MATCH, "\"6\"").send().await;
        response.assert_status(StatusCode::NOT_MODIFIED);
    }

    #[tokio::test]
    async fn missing_files_are_not_found_instead_of_index_html() {
        let client = built_ui();
        for path in ["/assets/gone.js", "/robots.txt", "/assets/nested/route"] {
            client.get(path).send().await.assert_status(StatusCode::NOT_FOUND);
        }
    }

    #[tokio::test]
    async fn the_api_and_docs_prefixes_are_never_shadowed() {
        let client = built_ui();
        for path in ["/api", "/api/v2/templates", "/docs", "/docs/missing"] {
            client.get(path).send().await.assert_status(StatusCode::NOT_FOUND);
        }
        client.get("/apiary").send().await.assert_status_is_ok();
    }

    #[tokio::test]
    async fn writes_to_ui_paths_are_not_allowed() {
        built_ui().post("/templates").send().await.assert_status(StatusCode::METHOD_NOT_ALLOWED);
    }

    #[tokio::test]
    async fn without_a_built_ui_the_root_says_how_to_build_it() {
        let client = TestClient::new(endpoint_with(files(&[])));
        let response = client.get("/").send().await;
        response.assert_status_is_ok();
        let page = response.0.into_body().into_string().await.unwrap();
        assert!(page.contains("npm ci &amp;&amp; npm run build"), "{page}");
        assert!(page.contains("/docs/"), "{page}");
        client.get("/sessions").send().await.assert_status(StatusCode::NOT_FOUND);
    }
}

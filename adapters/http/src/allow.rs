//! `Allow` on every `405 Method Not Allowed` (RFC 9110 §15.5.6): the methods
//! the OpenAPI document lists for the requested path.

use std::sync::Arc;

use poem::http::header::ALLOW;
use poem::http::{HeaderValue, StatusCode};
use poem::{Endpoint, IntoResponse, Request, Response, Result};
use serde_json::Value;

/// The methods of each path of the document, its templates split in segments.
#[derive(Debug, Default)]
pub struct Methods {
    routes: Vec<(Vec<String>, String)>,
}

impl Methods {
    /// From the document's `paths`, mounted under `prefix`.
    pub fn from_document(doc: &Value, prefix: &str) -> Self {
        let mut routes = Vec::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            let segments = segments(&format!("{prefix}{path}"));
            let mut methods: Vec<String> =
                item.as_object().into_iter().flatten().map(|(m, _)| m.to_uppercase()).collect();
            methods.sort();
            routes.push((segments, methods.join(", ")));
        }
        Self { routes }
    }

    /// The `Allow` value for `path`, if a route has that shape.
    pub fn allowed(&self, path: &str) -> Option<&str> {
        let wanted = segments(path);
        self.routes
            .iter()
            .find(|(template, _)| {
                template.len() == wanted.len()
                    && template.iter().zip(&wanted).all(|(t, w)| (t.starts_with('{') && t.ends_with('}')) || t == w)
            })
            .map(|(_, methods)| methods.as_str())
    }
}

fn segments(path: &str) -> Vec<String> {
    path.split('/').filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// Adds `Allow` to a 405 answer.
pub async fn stamp<E: Endpoint>(next: E, req: Request, methods: Arc<Methods>) -> Result<Response> {
    let path = req.uri().path().to_owned();
    let mut response = next.call(req).await?.into_response();
    if response.status() == StatusCode::METHOD_NOT_ALLOWED {
        if let Some(value) = methods.allowed(&path).and_then(|m| HeaderValue::from_str(m).ok()) {
            response.headers_mut().insert(ALLOW, value);
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_gets_the_methods_of_its_template() {
        let doc = serde_json::json!({ "paths": {
            "/sessions": { "get": {}, "post": {} },
            "/sessions/{id}": { "get": {}, "delete": {} },
            "/sessions/{id}/close": { "post": {} },
        }});
        let methods = Methods::from_document(&doc, "/api/v1");
        assert_eq!(methods.allowed("/api/v1/sessions"), Some("GET, POST"));
        assert_eq!(methods.allowed("/api/v1/sessions/abc"), Some("DELETE, GET"));
        assert_eq!(methods.allowed("/api/v1/sessions/abc/close"), Some("POST"));
        assert_eq!(methods.allowed("/api/v1/nothing"), None);
    }
}

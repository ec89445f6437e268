//! `/catalog`: what templates can configure.

use std::sync::Arc;

use poem_openapi::payload::Json;
use poem_openapi::OpenApi;

use super::Tag;
use crate::dto::{CatalogLibraryView, CatalogModuleView};
use crate::error::ApiResult;
use crate::guard::Reader;
use crate::Services;

pub struct CatalogApi(pub Arc<Services>);

#[OpenApi(tag = "Tag::Catalog")]
impl CatalogApi {
    /// Native modules a template can enable.
    #[oai(path = "/catalog/modules", method = "get", operation_id = "listCatalogModules")]
    async fn modules(&self, _caller: Reader) -> ApiResult<Json<Vec<CatalogModuleView>>> {
        Ok(Json(self.0.templates.module_catalog().iter().map(Into::into).collect()))
    }

    /// Libraries a template can load, and whether each is in the local cache.
    #[oai(path = "/catalog/libraries", method = "get", operation_id = "listCatalogLibraries")]
    async fn libraries(&self, _caller: Reader) -> ApiResult<Json<Vec<CatalogLibraryView>>> {
        Ok(Json(self.0.templates.library_catalog().into_iter().map(Into::into).collect()))
    }
}

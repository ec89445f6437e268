//! `/templates` and everything configured on a template.

use std::sync::Arc;

use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use uuid::Uuid;

use super::{template_id, Tag};
use crate::dto::*;
use crate::error::ApiResult;
use crate::guard::{Admin, Reader};
use crate::payload::JsonBody;
use crate::Services;

pub struct TemplatesApi(pub Arc<Services>);

#[derive(ApiResponse)]
pub enum TemplateCreated {
    #[oai(status = 201)]
    Created(Json<TemplateDetailView>),
}

#[derive(ApiResponse)]
pub enum TemplateDeleted {
    /// Deleted, with its settings, capabilities, startup files, modules and libraries.
    #[oai(status = 204)]
    Deleted,
}

#[derive(ApiResponse)]
pub enum CapabilityCreated {
    #[oai(status = 201)]
    Created(Json<CapabilityView>),
}

#[derive(ApiResponse)]
pub enum StartupFileCreated {
    #[oai(status = 201)]
    Created(Json<StartupFileView>),
}

#[derive(ApiResponse)]
pub enum NamesAdded {
    /// The template's list after the change.
    #[oai(status = 201)]
    Created(Json<Vec<String>>),
}

fn names<T: ToString>(items: Vec<T>) -> Json<Vec<String>> {
    Json(items.iter().map(ToString::to_string).collect())
}

#[OpenApi(tag = "Tag::Templates")]
impl TemplatesApi {
    /// List templates, newest first.
    #[oai(path = "/templates", method = "get", operation_id = "listTemplates")]
    async fn list(&self, _caller: Reader) -> ApiResult<Json<Vec<TemplateView>>> {
        Ok(Json(self.0.templates.list().await?.into_iter().map(Into::into).collect()))
    }

    /// Create a template; settings left out take their defaults.
    #[oai(path = "/templates", method = "post", operation_id = "createTemplate")]
    async fn create(&self, _caller: Admin, body: JsonBody<CreateTemplateBody>) -> ApiResult<TemplateCreated> {
        let detail = self.0.templates.create(body.0.try_into()?).await?;
        Ok(TemplateCreated::Created(Json(detail.into())))
    }

    /// A template with its settings, capabilities, startup files, modules and libraries.
    #[oai(path = "/templates/:id", method = "get", operation_id = "getTemplate")]
    async fn get(&self, _caller: Reader, id: Path<Uuid>) -> ApiResult<Json<TemplateDetailView>> {
        Ok(Json(self.0.templates.detail(template_id(&id)).await?.into()))
    }

    /// Delete a template and everything configured on it. Sessions made from it are kept.
    #[oai(path = "/templates/:id", method = "delete", operation_id = "deleteTemplate")]
    async fn delete(&self, _caller: Admin, id: Path<Uuid>) -> ApiResult<TemplateDeleted> {
        self.0.templates.delete(template_id(&id)).await?;
        Ok(TemplateDeleted::Deleted)
    }

    /// A template's settings.
    #[oai(path = "/templates/:id/settings", method = "get", operation_id = "getTemplateSettings")]
    async fn settings(&self, _caller: Reader, id: Path<Uuid>) -> ApiResult<Json<SettingsView>> {
        Ok(Json(self.0.templates.settings(template_id(&id)).await?.into()))
    }

    /// Replace a template's settings; fields left out take their defaults.
    #[oai(path = "/templates/:id/settings", method = "put", operation_id = "replaceTemplateSettings")]
    async fn replace_settings(
        &self,
        _caller: Admin,
        id: Path<Uuid>,
        body: JsonBody<SettingsBody>,
    ) -> ApiResult<Json<SettingsView>> {
        let id = template_id(&id);
        Ok(Json(self.0.templates.replace_settings(id, body.0.into()).await?.into()))
    }

    /// Capabilities, in the order they were added.
    #[oai(path = "/templates/:id/capabilities", method = "get", operation_id = "listCapabilities")]
    async fn capabilities(&self, _caller: Reader, id: Path<Uuid>) -> ApiResult<Json<Vec<CapabilityView>>> {
        let list = self.0.templates.capabilities(template_id(&id)).await?;
        Ok(Json(list.into_iter().map(Into::into).collect()))
    }

    /// Add a capability.
    #[oai(path = "/templates/:id/capabilities", method = "post", operation_id = "addCapability")]
    async fn add_capability(
        &self,
        _caller: Admin,
        id: Path<Uuid>,
        body: JsonBody<CreateCapabilityBody>,
    ) -> ApiResult<CapabilityCreated> {
        let id = template_id(&id);
        let capability = self.0.templates.add_capability(id, body.0.try_into()?).await?;
        Ok(CapabilityCreated::Created(Json(capability.into())))
    }

    /// Startup files, sorted by `order_index`.
    #[oai(path = "/templates/:id/startup-files", method = "get", operation_id = "listStartupFiles")]
    async fn startup_files(&self, _caller: Reader, id: Path<Uuid>) -> ApiResult<Json<Vec<StartupFileView>>> {
        let list = self.0.templates.startup_files(template_id(&id)).await?;
        Ok(Json(list.into_iter().map(Into::into).collect()))
    }

    /// Add a startup file (a path relative to each session's worktree).
    #[oai(path = "/templates/:id/startup-files", method = "post", operation_id = "addStartupFile")]
    async fn add_startup_file(
        &self,
        _caller: Admin,
        id: Path<Uuid>,
        body: JsonBody<CreateStartupFileBody>,
    ) -> ApiResult<StartupFileCreated> {
        let id = template_id(&id);
        let file = self.0.templates.add_startup_file(id, body.0.try_into()?).await?;
        Ok(StartupFileCreated::Created(Json(file.into())))
    }

    /// Native modules enabled on the template.
    #[oai(path = "/templates/:id/modules", method = "get", operation_id = "listTemplateModules")]
    async fn modules(&self, _caller: Reader, id: Path<Uuid>) -> ApiResult<Json<Vec<String>>> {
        Ok(names(self.0.templates.modules(template_id(&id)).await?))
    }

    /// Enable a native module from the catalog. Built-ins and unknown names are refused.
    #[oai(path = "/templates/:id/modules", method = "post", operation_id = "addTemplateModule")]
    async fn add_module(
        &self,
        _caller: Admin,
        id: Path<Uuid>,
        body: JsonBody<ModuleNameBody>,
    ) -> ApiResult<NamesAdded> {
        let id = template_id(&id);
        Ok(NamesAdded::Created(names(self.0.templates.add_module(id, &body.0.name).await?)))
    }

    /// Disable a native module; the remaining list is returned.
    #[oai(path = "/templates/:id/modules/:name", method = "delete", operation_id = "removeTemplateModule")]
    async fn remove_module(&self, _caller: Admin, id: Path<Uuid>, name: Path<String>) -> ApiResult<Json<Vec<String>>> {
        Ok(names(self.0.templates.remove_module(template_id(&id), &name).await?))
    }

    /// Libraries loaded at session start, in order.
    #[oai(path = "/templates/:id/libraries", method = "get", operation_id = "listTemplateLibraries")]
    async fn libraries(&self, _caller: Reader, id: Path<Uuid>) -> ApiResult<Json<Vec<String>>> {
        Ok(names(self.0.templates.libraries(template_id(&id)).await?))
    }

    /// Append a catalog library (`<id>-<version>`) to the load order.
    #[oai(path = "/templates/:id/libraries", method = "post", operation_id = "addTemplateLibrary")]
    async fn add_library(
        &self,
        _caller: Admin,
        id: Path<Uuid>,
        body: JsonBody<LibraryNameBody>,
    ) -> ApiResult<NamesAdded> {
        let id = template_id(&id);
        Ok(NamesAdded::Created(names(self.0.templates.add_library(id, &body.0.name).await?)))
    }

    /// Remove a library; the remaining list is returned.
    #[oai(path = "/templates/:id/libraries/:name", method = "delete", operation_id = "removeTemplateLibrary")]
    async fn remove_library(&self, _caller: Admin, id: Path<Uuid>, name: Path<String>) -> ApiResult<Json<Vec<String>>> {
        Ok(names(self.0.templates.remove_library(template_id(&id), &name).await?))
    }
}

//! `/executions`: run snippets and files, read executions and their events.

use std::sync::Arc;

use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use vm_domain::services::RunFileRequest;

use super::{execution_id, session_id, Tag};
use crate::dto::{EventView, ExecutionView, ExecutionWithEventsView, ReplBody, RunFileBody};
use crate::error::ApiResult;
use crate::guard::{Executor, Reader};
use crate::payload::JsonBody;
use crate::Services;

pub struct ExecutionsApi(pub Arc<Services>);

#[derive(ApiResponse)]
pub enum ExecutionCreated {
    /// The execution ran (it may have thrown: see `status`) and is stored with its events.
    #[oai(status = 201)]
    Created(Json<ExecutionWithEventsView>),
}

#[OpenApi(tag = "Tag::Executions")]
impl ExecutionsApi {
    /// Evaluate a snippet in the session's global scope.
    #[oai(path = "/executions/repl", method = "post", operation_id = "runRepl")]
    async fn repl(&self, _caller: Executor, body: JsonBody<ReplBody>) -> ApiResult<ExecutionCreated> {
        let session = session_id(&body.0.session_id)?;
        let done = self.0.executions.repl(session, &body.0.input).await?;
        Ok(ExecutionCreated::Created(Json(done.into())))
    }

    /// Run a file of the session's worktree; `args` and `env` become `__ARGS__` and `__ENV__`.
    #[oai(path = "/executions/run-file", method = "post", operation_id = "runFile")]
    async fn run_file(&self, _caller: Executor, body: JsonBody<RunFileBody>) -> ApiResult<ExecutionCreated> {
        let session = session_id(&body.0.session_id)?;
        let body = body.0;
        let request =
            RunFileRequest { path: body.path, args: body.args.map(|a| a.into_iter().collect()), env: body.env };
        let done = self.0.executions.run_file(session, request).await?;
        Ok(ExecutionCreated::Created(Json(done.into())))
    }

    /// List executions, newest first.
    #[oai(path = "/executions", method = "get", operation_id = "listExecutions")]
    async fn list(
        &self,
        _caller: Reader,
        /// Only executions of this session.
        session_id: Query<Option<String>>,
        /// 1 to 1000; default 50.
        limit: Query<Option<i64>>,
    ) -> ApiResult<Json<Vec<ExecutionView>>> {
        let session = session_id.0.as_deref().map(super::session_id).transpose()?;
        let list = self.0.executions.list(session, limit.0).await?;
        Ok(Json(list.into_iter().map(Into::into).collect()))
    }

    #[oai(path = "/executions/:id", method = "get", operation_id = "getExecution")]
    async fn get(&self, _caller: Reader, id: Path<String>) -> ApiResult<Json<ExecutionView>> {
        Ok(Json(self.0.executions.get(execution_id(&id)?).await?.into()))
    }

    /// Events with `seq` greater than `after_seq` (default 0), in order.
    #[oai(path = "/executions/:id/events", method = "get", operation_id = "listExecutionEvents")]
    async fn events(
        &self,
        _caller: Reader,
        id: Path<String>,
        after_seq: Query<Option<i64>>,
    ) -> ApiResult<Json<Vec<EventView>>> {
        let events = self.0.executions.events(execution_id(&id)?, after_seq.0).await?;
        Ok(Json(events.into_iter().map(Into::into).collect()))
    }
}

//! `/sessions`: create, list, get, fork, close.

use std::sync::Arc;

use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use uuid::Uuid;
use vm_domain::session::SessionStatus;

use super::{session_id, Tag};
use crate::dto::{CreateSessionBody, PlacementView, SessionStatusView, SessionView};
use crate::error::ApiResult;
use crate::guard::{Executor, Reader};
use crate::payload::JsonBody;
use crate::Services;

pub struct SessionsApi(pub Arc<Services>);

#[derive(ApiResponse)]
pub enum SessionCreated {
    /// Ready: the runtime is up, libraries loaded and startup files run.
    #[oai(status = 201)]
    Created(Json<SessionView>),
}

#[derive(ApiResponse)]
pub enum SessionForked {
    /// Ready: a new session whose heap is a copy of the source's (`forked_from`), on the same
    /// template and worktree.
    #[oai(status = 201)]
    Created(
        Json<SessionView>,
        /// `/api/v1/sessions/{id}` of the new session.
        #[oai(header = "Location")]
        String,
    ),
}

#[OpenApi(tag = "Tag::Sessions")]
impl SessionsApi {
    /// List sessions, newest first.
    #[oai(path = "/sessions", method = "get", operation_id = "listSessions")]
    async fn list(
        &self,
        _caller: Reader,
        /// Only sessions in this state.
        status: Query<Option<SessionStatusView>>,
    ) -> ApiResult<Json<Vec<SessionView>>> {
        let status = status.0.map(SessionStatus::from);
        Ok(Json(self.0.sessions.list(status).await?.into_iter().map(Into::into).collect()))
    }

    /// Start a session from a template, bound to an existing worktree directory.
    ///
    /// With several nodes on one database, the session runs on the live node with the most free
    /// capacity (`placement=auto`, the receiving node on a tie) or on the receiving node
    /// (`placement=local`); the request is forwarded to that node and `node_id` names it.
    /// 503 `NO_CAPACITY` when no node has room.
    #[oai(path = "/sessions", method = "post", operation_id = "createSession")]
    async fn create(
        &self,
        _caller: Executor,
        body: JsonBody<CreateSessionBody>,
        /// Which node runs the session: `auto` (default) or `local`. Placement happens before
        /// this operation runs (see the forwarding between nodes); here it is only read.
        #[oai(name = "placement")]
        _placement: Query<Option<PlacementView>>,
    ) -> ApiResult<SessionCreated> {
        let session = self.0.sessions.create(body.0.try_into()?).await?;
        Ok(SessionCreated::Created(Json(session.into())))
    }

    /// A session: its status, worktree, and why it stopped if it did.
    #[oai(path = "/sessions/:id", method = "get", operation_id = "getSession")]
    async fn get(&self, _caller: Reader, id: Path<Uuid>) -> ApiResult<Json<SessionView>> {
        Ok(Json(self.0.sessions.get(session_id(&id)).await?.into()))
    }

    /// Fork a ready session: a new session starts as a copy of its live heap (every variable,
    /// function and loaded module), on the same template and worktree; from then on each goes
    /// its own way. The source must be `ready` and idle, and is unchanged.
    #[oai(path = "/sessions/:id/fork", method = "post", operation_id = "forkSession")]
    async fn fork(&self, _caller: Executor, id: Path<Uuid>) -> ApiResult<SessionForked> {
        let session = self.0.sessions.fork(session_id(&id)).await?;
        let location = format!("/api/v1/sessions/{}", session.id);
        Ok(SessionForked::Created(Json(session.into()), location))
    }

    /// Close the session (same as `POST /sessions/{id}/close`).
    #[oai(path = "/sessions/:id", method = "delete", operation_id = "deleteSession")]
    async fn delete(&self, _caller: Executor, id: Path<Uuid>) -> ApiResult<Json<SessionView>> {
        Ok(Json(self.0.sessions.close(session_id(&id)).await?.into()))
    }

    /// Discard the runtime and keep the record; closing twice is harmless.
    #[oai(path = "/sessions/:id/close", method = "post", operation_id = "closeSession")]
    async fn close(&self, _caller: Executor, id: Path<Uuid>) -> ApiResult<Json<SessionView>> {
        Ok(Json(self.0.sessions.close(session_id(&id)).await?.into()))
    }
}

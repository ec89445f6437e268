//! `/health` (liveness), `/ready` (readiness: the store answers, the runtime
//! can start sessions, the daemon is not draining) and `/runtime/summary`.

use std::sync::Arc;

use poem_openapi::payload::Json;
use poem_openapi::OpenApi;

use super::Tag;
use crate::dto::{HealthView, NodeView, ReadyView, RuntimeSummaryView};
use crate::error::{ApiResult, NotReady, Readiness};
use crate::guard::Reader;
use crate::Services;

pub struct OpsApi(pub Arc<Services>);

#[OpenApi(tag = "Tag::Ops")]
impl OpsApi {
    /// Liveness: `{"status":"ok"}` while the daemon answers.
    ///
    /// Does not look at the store (see `/ready`); no token needed.
    #[oai(path = "/health", method = "get", operation_id = "health")]
    async fn health(&self) -> Json<HealthView> {
        Json(HealthView { status: "ok".into() })
    }

    /// Readiness: whether the daemon can take work.
    ///
    /// 200 when the store answers a query within 2 s, the JavaScript runtime can start a session
    /// (its prepared worker is alive, or starts again within 1 s) and the daemon is not draining
    /// before a stop. Otherwise 503 with `Retry-After`; `details.checks` gives each check's state
    /// (`store`, `runtime`: `ok` or `failed`; `drain`: `ok` or `draining`) and the code names the
    /// first failure: `SHUTTING_DOWN`, `STORE_UNAVAILABLE`, `RUNTIME_UNAVAILABLE`. No token
    /// needed; the cause of a failure is logged, not answered. `/health` stays 200 meanwhile.
    #[oai(path = "/ready", method = "get", operation_id = "ready")]
    async fn ready(&self) -> Result<Json<ReadyView>, NotReady> {
        let services = &self.0;
        let (store, runtime) = futures::join!(services.store_health.check(), services.sessions.runtime_health());
        Readiness { draining: services.executions.is_draining(), store, runtime }.verdict()?;
        Ok(Json(ReadyView {
            status: "ready".into(),
            store: "ok".into(),
            runtime: "ok".into(),
            pending_writes: services.store_health.pending_writes() as u64,
        }))
    }

    /// Sessions whose runtime is alive in memory.
    #[oai(path = "/runtime/summary", method = "get", operation_id = "runtimeSummary")]
    async fn summary(&self, _caller: Reader) -> ApiResult<Json<RuntimeSummaryView>> {
        let ids = self.0.sessions.live_sessions();
        Ok(Json(RuntimeSummaryView {
            active_sessions: ids.len() as u64,
            active_session_ids: ids.iter().map(|id| id.as_uuid()).collect(),
        }))
    }

    /// The nodes serving this database, live ones first, then newest first.
    ///
    /// Every daemon is a node: it registers when it starts and renews a lease while it lives
    /// (`--node-lease`). A node whose lease runs out is `lost` and another node fails its sessions
    /// over; a restarted daemon is a new node. `this_node` marks the node that answered.
    #[oai(path = "/nodes", method = "get", operation_id = "listNodes")]
    async fn nodes(&self, _caller: Reader) -> ApiResult<Json<Vec<NodeView>>> {
        let this = self.0.nodes.id();
        Ok(Json(self.0.nodes.list().await?.into_iter().map(|node| NodeView::new(node, this)).collect()))
    }
}

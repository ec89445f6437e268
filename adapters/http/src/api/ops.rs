//! `/health` (liveness), `/ready` (readiness: the store answers) and
//! `/runtime/summary`.

use std::sync::Arc;

use poem_openapi::payload::Json;
use poem_openapi::OpenApi;

use super::Tag;
use crate::dto::{HealthView, ReadyView, RuntimeSummaryView};
use crate::error::{ApiResult, NotReady};
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

    /// Readiness: whether the store answers.
    ///
    /// 200 when the store answers a query within 2 s; 503 `STORE_UNAVAILABLE` with `Retry-After`
    /// when it does not (down, saturated, full or failing). No token needed; the cause of a
    /// failure is logged, not answered.
    #[oai(path = "/ready", method = "get", operation_id = "ready")]
    async fn ready(&self) -> Result<Json<ReadyView>, NotReady> {
        self.0.store_health.check().await?;
        Ok(Json(ReadyView {
            status: "ready".into(),
            store: "ok".into(),
            pending_writes: self.0.store_health.pending_writes() as u64,
        }))
    }

    /// Sessions whose runtime is alive in memory.
    #[oai(path = "/runtime/summary", method = "get", operation_id = "runtimeSummary")]
    async fn summary(&self, _caller: Reader) -> ApiResult<Json<RuntimeSummaryView>> {
        let ids = self.0.sessions.live_sessions();
        Ok(Json(RuntimeSummaryView {
            active_sessions: ids.len() as u64,
            active_session_ids: ids.iter().map(ToString::to_string).collect(),
        }))
    }
}

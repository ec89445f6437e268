//! `/health` and `/runtime/summary`.

use std::sync::Arc;

use poem_openapi::payload::Json;
use poem_openapi::OpenApi;

use super::Tag;
use crate::dto::{HealthView, RuntimeSummaryView};
use crate::guard::Reader;
use crate::Services;

pub struct OpsApi(pub Arc<Services>);

#[OpenApi(tag = "Tag::Ops")]
impl OpsApi {
    /// `{"status":"ok"}` while the daemon answers.
    #[oai(path = "/health", method = "get", operation_id = "health")]
    async fn health(&self) -> Json<HealthView> {
        Json(HealthView { status: "ok".into() })
    }

    /// Sessions whose runtime is alive in memory.
    #[oai(path = "/runtime/summary", method = "get", operation_id = "runtimeSummary")]
    async fn summary(&self, _caller: Reader) -> Json<RuntimeSummaryView> {
        let ids = self.0.sessions.live_sessions();
        Json(RuntimeSummaryView {
            active_sessions: ids.len() as u64,
            active_session_ids: ids.iter().map(ToString::to_string).collect(),
        })
    }
}

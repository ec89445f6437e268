//! `/executions`: run snippets and files (waiting for the end or not), read
//! executions and their events (as JSON, or live as Server-Sent Events), and
//! cancel a running one.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use poem::web::sse::Event as SseEvent;
use poem::{IntoResponse, Response};
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::{EventStream, Json};
use poem_openapi::registry::{MetaResponses, Registry};
use poem_openapi::types::ToJSON;
use poem_openapi::{ApiResponse, OpenApi, Union};
use uuid::Uuid;
use vm_domain::services::{Followed, RunFileRequest, Started};
use vm_domain::DomainError;

use super::{execution_id, session_id, Tag};
use crate::dto::{EventView, ExecutionView, ExecutionWithEventsView, ReplBody, RunFileBody};
use crate::error::{envelope, ApiResult, ErrorEnvelope};
use crate::guard::{Executor, Reader};
use crate::payload::JsonBody;
use crate::Services;

pub struct ExecutionsApi(pub Arc<Services>);

/// How often a live event stream sends a comment line when nothing else
/// happens, so that proxies keep it open.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

#[derive(ApiResponse)]
pub enum ExecutionCreated {
    /// The execution ran (it may have thrown or been cancelled: see `status`) and is stored with
    /// its events.
    #[oai(status = 201)]
    Created(Json<ExecutionWithEventsView>),
    /// `"wait": false`: the execution is stored as `running` and runs on; follow it at
    /// `/executions/{id}/events` (with `Accept: text/event-stream` to get events as they happen).
    #[oai(status = 202)]
    Accepted(
        Json<ExecutionView>,
        /// `/api/v1/executions/{id}`.
        #[oai(header = "Location")]
        String,
    ),
}

/// One message of an execution's live event stream: an event (SSE `event: event`, `id:` its
/// `seq`), then the execution once it has ended (`event: end`), or an error that ended the stream
/// (`event: error`, the error envelope).
#[derive(Debug, Clone, Union)]
pub enum StreamMessage {
    Event(EventView),
    End(Box<ExecutionView>),
    Error(ErrorEnvelope),
}

/// `GET /executions/{id}/events`: the stored events as JSON, or a live event stream when the
/// client asks for `text/event-stream`.
pub enum EventsReply {
    Stored(Json<Vec<EventView>>),
    Live(EventStream<futures::stream::BoxStream<'static, StreamMessage>>),
}

impl ApiResponse for EventsReply {
    fn meta() -> MetaResponses {
        let mut stored = <Json<Vec<EventView>> as ApiResponse>::meta();
        let live = <EventStream<futures::stream::BoxStream<'static, StreamMessage>> as ApiResponse>::meta();
        let response = &mut stored.responses[0];
        response.description = "The events with `seq` greater than the cursor, in order. As \
                                `text/event-stream`: those stored, then each new one as it happens, then `end`.";
        response.content.extend(live.responses.into_iter().flat_map(|r| r.content));
        stored
    }

    fn register(registry: &mut Registry) {
        <Json<Vec<EventView>> as ApiResponse>::register(registry);
        <EventStream<futures::stream::BoxStream<'static, StreamMessage>> as ApiResponse>::register(registry);
    }
}

impl IntoResponse for EventsReply {
    fn into_response(self) -> Response {
        match self {
            Self::Stored(json) => json.into_response(),
            Self::Live(stream) => stream.into_response(),
        }
    }
}

/// The SSE frame of a stream message.
fn sse_event(message: StreamMessage) -> SseEvent {
    let data = message.to_json_string();
    match message {
        StreamMessage::Event(event) => SseEvent::message(data).event_type("event").id(event.seq.to_string()),
        StreamMessage::End(_) => SseEvent::message(data).event_type("end"),
        StreamMessage::Error(_) => SseEvent::message(data).event_type("error"),
    }
}

/// Whether an `Accept` header asks for an event stream.
fn wants_event_stream(accept: Option<&str>) -> bool {
    accept.is_some_and(|accept| {
        accept
            .split(',')
            .any(|item| item.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("text/event-stream"))
    })
}

impl ExecutionsApi {
    /// Answers a started execution: at its end (spawned, so that a client
    /// that goes away does not stop it), or at once when `wait` is false.
    async fn answer(&self, started: Started, wait: Option<bool>) -> ApiResult<ExecutionCreated> {
        let Started { execution, completion } = started;
        let running = tokio::spawn(completion);
        if wait == Some(false) {
            let location = format!("/api/v1/executions/{}", execution.id);
            return Ok(ExecutionCreated::Accepted(Json(execution.into()), location));
        }
        let done = running.await.map_err(|err| DomainError::internal(format!("the execution task failed: {err}")))?;
        Ok(ExecutionCreated::Created(Json(done?.into())))
    }
}

#[OpenApi(tag = "Tag::Executions")]
impl ExecutionsApi {
    /// Evaluate a snippet in the session's global scope.
    #[oai(path = "/executions/repl", method = "post", operation_id = "runRepl")]
    async fn repl(&self, _caller: Executor, body: JsonBody<ReplBody>) -> ApiResult<ExecutionCreated> {
        let session = session_id(&body.0.session_id);
        let started = self.0.executions.start_repl(session, &body.0.input).await?;
        self.answer(started, body.0.wait).await
    }

    /// Run a file of the session's worktree; `args` and `env` become `__ARGS__` and `__ENV__`.
    #[oai(path = "/executions/run-file", method = "post", operation_id = "runFile")]
    async fn run_file(&self, _caller: Executor, body: JsonBody<RunFileBody>) -> ApiResult<ExecutionCreated> {
        let session = session_id(&body.0.session_id);
        let body = body.0;
        let request =
            RunFileRequest { path: body.path, args: body.args.map(|a| a.into_iter().collect()), env: body.env };
        let started = self.0.executions.start_run_file(session, request).await?;
        self.answer(started, body.wait).await
    }

    /// List executions, newest first.
    #[oai(path = "/executions", method = "get", operation_id = "listExecutions")]
    async fn list(
        &self,
        _caller: Reader,
        /// Only executions of this session.
        session_id: Query<Option<Uuid>>,
        /// How many, newest first: 1 to 1000; default 50.
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<i64>>,
    ) -> ApiResult<Json<Vec<ExecutionView>>> {
        let session = session_id.0.as_ref().map(super::session_id);
        let list = self.0.executions.list(session, limit.0).await?;
        Ok(Json(list.into_iter().map(Into::into).collect()))
    }

    /// An execution: its status, result or error, and metrics (its events are at `/events`).
    #[oai(path = "/executions/:id", method = "get", operation_id = "getExecution")]
    async fn get(&self, _caller: Reader, id: Path<Uuid>) -> ApiResult<Json<ExecutionView>> {
        Ok(Json(self.0.executions.get(execution_id(&id)).await?.into()))
    }

    /// Events with `seq` greater than `after_seq` (default 0), in order. With `Accept:
    /// text/event-stream`, a live stream of Server-Sent Events: those stored, then each new one
    /// as it happens (`event: event`, `id:` its `seq`), then `event: end` with the execution;
    /// a comment line every 15 s keeps proxies open. To resume after a disconnect, send
    /// `Last-Event-ID` (it wins over `after_seq`): nothing is missed or repeated.
    #[oai(path = "/executions/:id/events", method = "get", operation_id = "listExecutionEvents")]
    async fn events(
        &self,
        _caller: Reader,
        id: Path<Uuid>,
        /// Only events with a greater `seq`; default 0 (all).
        #[oai(validator(minimum(value = "0")))]
        after_seq: Query<Option<i64>>,
        /// `text/event-stream` for a live stream; JSON otherwise.
        #[oai(name = "Accept")]
        accept: Header<Option<String>>,
        /// The `seq` of the last event received, to resume a live stream.
        #[oai(name = "Last-Event-ID", validator(minimum(value = "0")))]
        last_event_id: Header<Option<i64>>,
    ) -> ApiResult<EventsReply> {
        let id = execution_id(&id);
        if !wants_event_stream(accept.0.as_deref()) {
            let events = self.0.executions.events(id, after_seq.0).await?;
            return Ok(EventsReply::Stored(Json(events.into_iter().map(Into::into).collect())));
        }
        let after_seq = last_event_id.0.or(after_seq.0);
        let following = self.0.executions.follow(id, after_seq).await?;
        // Counted in `vm_sse_clients` for as long as the stream lives.
        let client = crate::metrics::SseClient::open();
        let messages = following
            .map(move |item| {
                let _open = &client;
                match item {
                    Ok(Followed::Event(event)) => StreamMessage::Event(event.into()),
                    Ok(Followed::End(execution)) => StreamMessage::End(Box::new(execution.into())),
                    Err(err) => StreamMessage::Error(envelope(&err).0),
                }
            })
            .boxed();
        Ok(EventsReply::Live(EventStream::new(messages).keep_alive(HEARTBEAT).to_event(sse_event)))
    }

    /// Cancel a running execution: it ends `cancelled` within about 100 ms whatever its code
    /// does. With checkpoints on (the default) the session stays `ready` with its state from
    /// before the execution (`error.details.rolled_back`); files written and programs run are
    /// not undone. Answers the execution as stored.
    #[oai(path = "/executions/:id/cancel", method = "post", operation_id = "cancelExecution")]
    async fn cancel(&self, _caller: Executor, id: Path<Uuid>) -> ApiResult<Json<ExecutionView>> {
        Ok(Json(self.0.executions.cancel(execution_id(&id)).await?.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_accept_naming_text_event_stream_asks_for_a_stream() {
        for yes in ["text/event-stream", "application/json, text/event-stream;q=0.9", "TEXT/EVENT-STREAM"] {
            assert!(wants_event_stream(Some(yes)), "{yes}");
        }
        for no in [None, Some("application/json"), Some("*/*"), Some("text/event-streams")] {
            assert!(!wants_event_stream(no), "{no:?}");
        }
    }
}

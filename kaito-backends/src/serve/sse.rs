//! Streaming answers as server-sent events in OpenAI's chunk format.
//!
//! A chat stream opens with a chunk whose delta carries `role: assistant`, sends one chunk per
//! decoded piece of text, then a chunk with an empty delta and the `finish_reason`, then (with
//! `stream_options.include_usage`) a chunk with `usage` and no choices, and ends with
//! `data: [DONE]`. A completion stream sends `text` instead of `delta`. A generation that fails
//! midway sends OpenAI's error object as an event, then `[DONE]`, as vLLM does.

use std::convert::Infallible;

use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt, stream};
use kaito_core::traits::Generation;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::engine::Piece;
use super::openai::{finish_reason, usage};
use super::reply::ApiError;

/// Which endpoint a stream answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChunkKind {
    Chat,
    Completion,
}

impl ChunkKind {
    /// The `object` of a whole (non-streamed) response.
    pub(crate) fn object(self) -> &'static str {
        match self {
            Self::Chat => "chat.completion",
            Self::Completion => "text_completion",
        }
    }
}

/// What every chunk of one response repeats.
#[derive(Clone, Debug)]
pub(crate) struct ChunkShape {
    pub kind: ChunkKind,
    pub id: String,
    pub created: u64,
    pub model: String,
    pub include_usage: bool,
}

impl ChunkShape {
    fn envelope(&self, choices: Value) -> Value {
        let object = match self.kind {
            ChunkKind::Chat => "chat.completion.chunk",
            ChunkKind::Completion => "text_completion",
        };
        json!({"id": self.id, "object": object, "created": self.created, "model": self.model, "choices": choices})
    }

    fn chunk(&self, choices: Value) -> Event {
        Event::default().data(self.envelope(choices).to_string())
    }

    /// A chunk carrying a piece of text.
    fn text(&self, text: &str) -> Event {
        match self.kind {
            ChunkKind::Chat => self.chunk(json!([{"index": 0, "delta": {"content": text}, "logprobs": null, "finish_reason": null}])),
            ChunkKind::Completion => self.chunk(json!([{"index": 0, "text": text, "logprobs": null, "finish_reason": null}])),
        }
    }

    fn opening(&self, echo: Option<&str>) -> Option<Event> {
        match self.kind {
            ChunkKind::Chat => Some(self.chunk(
                json!([{"index": 0, "delta": {"role": "assistant", "content": ""},
                "logprobs": null, "finish_reason": null}]),
            )),
            ChunkKind::Completion => echo.map(|prompt| self.text(prompt)),
        }
    }

    fn closing(&self, generation: &Generation) -> Vec<Event> {
        let reason = finish_reason(generation.finish_reason);
        let last = match self.kind {
            ChunkKind::Chat => {
                json!([{"index": 0, "delta": {}, "logprobs": null, "finish_reason": reason}])
            }
            ChunkKind::Completion => {
                json!([{"index": 0, "text": "", "logprobs": null, "finish_reason": reason}])
            }
        };
        let mut events = vec![self.chunk(last)];
        if self.include_usage {
            let mut body = self.envelope(json!([]));
            body["usage"] = usage(generation.prompt_tokens, generation.completion_tokens);
            events.push(Event::default().data(body.to_string()));
        }
        events
    }
}

fn done() -> Event {
    Event::default().data("[DONE]")
}

/// Turns a generation's pieces into an SSE response.
pub(crate) fn stream_response(
    rx: mpsc::Receiver<Piece>,
    shape: ChunkShape,
    echo: Option<String>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let opening = stream::iter(shape.opening(echo.as_deref()));
    let body = stream::unfold(Some((rx, shape)), |state| async move {
        let (mut rx, shape) = state?;
        let events = match rx.recv().await {
            Some(Piece::Text(text)) => return Some((vec![shape.text(&text)], Some((rx, shape)))),
            Some(Piece::Done(Ok(generation))) => {
                let mut events = shape.closing(&generation);
                events.push(done());
                events
            }
            Some(Piece::Done(Err(err))) => vec![error_event(&err), done()],
            // The generation thread ended without a result: it panicked.
            None => vec![
                error_event(&ApiError::new(
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "generation failed",
                )),
                done(),
            ],
        };
        Some((events, None))
    });
    let events = opening.chain(body.flat_map(stream::iter)).map(Ok);
    Sse::new(events).keep_alive(KeepAlive::default())
}

fn error_event(err: &ApiError) -> Event {
    Event::default().data(err.openai_body().to_string())
}

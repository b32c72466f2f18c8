//! The inference HTTP server (`kaito_backends::serve`) over a fake model: routes driven through
//! `tower::ServiceExt::oneshot`, plus one test on a real socket.

mod kaito;
mod limits;
mod openai;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use kaito_backends::serve::{ServeLimits, router};
use kaito_core::traits::{
    ChatMessage, FinishReason, Generation, GenerationRequest, LoadedModel, TextSink,
};
use serde_json::Value;
use tower::ServiceExt;

/// A model that answers every prompt with the same pieces and records what it was asked.
/// Tokens are whitespace-separated words; the chat template is `role: content` lines followed by
/// `assistant:`.
pub struct EchoModel {
    pub adapters: Vec<String>,
    pub pieces: Vec<&'static str>,
    pub delay: Duration,
    /// Pause before each piece (to let a test disconnect midway).
    pub piece_delay: Duration,
    /// Pieces emitted by each generation before it ended.
    pub emitted: Mutex<Vec<usize>>,
    pub requests: Mutex<Vec<GenerationRequest>>,
    /// (start, end) of each generation.
    pub spans: Mutex<Vec<(Instant, Instant)>>,
}

impl EchoModel {
    pub fn new(adapters: &[&str]) -> Self {
        Self {
            adapters: adapters.iter().map(|a| (*a).to_owned()).collect(),
            pieces: vec!["Hi", " there", "!"],
            delay: Duration::ZERO,
            piece_delay: Duration::ZERO,
            emitted: Mutex::new(Vec::new()),
            requests: Mutex::new(Vec::new()),
            spans: Mutex::new(Vec::new()),
        }
    }

    /// The requests the model received.
    pub fn received(&self) -> Vec<GenerationRequest> {
        self.requests.lock().unwrap().clone()
    }
}

impl LoadedModel for EchoModel {
    fn model_name(&self) -> &str {
        "tiny-base"
    }

    fn adapter_names(&self) -> Vec<String> {
        self.adapters.clone()
    }

    fn render_chat(&self, messages: &[ChatMessage]) -> kaito_core::Result<String> {
        let mut out: String = messages
            .iter()
            .map(|m| format!("{}: {}\n", m.role, m.content))
            .collect();
        out.push_str("assistant:");
        Ok(out)
    }

    fn count_tokens(&self, text: &str) -> kaito_core::Result<usize> {
        Ok(text.split_whitespace().count())
    }

    fn generate(
        &self,
        request: &GenerationRequest,
        sink: &mut dyn TextSink,
    ) -> kaito_core::Result<Generation> {
        let start = Instant::now();
        self.requests.lock().unwrap().push(request.clone());
        std::thread::sleep(self.delay);
        let mut text = String::new();
        let mut emitted = 0;
        for piece in &self.pieces {
            std::thread::sleep(self.piece_delay);
            text.push_str(piece);
            emitted += 1;
            if sink.on_text(piece).is_break() {
                break;
            }
        }
        self.spans.lock().unwrap().push((start, Instant::now()));
        self.emitted.lock().unwrap().push(emitted);
        Ok(Generation {
            text,
            prompt_tokens: self.count_tokens(&request.prompt)?,
            completion_tokens: emitted,
            finish_reason: FinishReason::Stop,
        })
    }
}

/// A router over `model` with default limits.
pub fn app(model: &Arc<EchoModel>) -> Router {
    app_with(model, ServeLimits::default())
}

pub fn app_with(model: &Arc<EchoModel>, limits: ServeLimits) -> Router {
    router(model.clone() as Arc<dyn LoadedModel>, limits)
}

/// Sends one request; returns the status, the content type and the body text.
pub async fn send(
    app: &Router,
    method: Method,
    uri: &str,
    body: Option<&str>,
) -> (StatusCode, String, String) {
    let mut builder = Request::builder().method(method).uri(uri);
    if body.is_some() {
        builder = builder.header("content-type", "application/json");
    }
    let request = builder
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        content_type,
        String::from_utf8(bytes.to_vec()).unwrap(),
    )
}

/// POSTs JSON and parses the JSON answer.
pub async fn post_json(app: &Router, uri: &str, body: &str) -> (StatusCode, Value) {
    let (status, _, text) = send(app, Method::POST, uri, Some(body)).await;
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{uri} answered non-JSON ({e}): {text}"));
    (status, value)
}

/// GETs and parses the JSON answer.
pub async fn get_json(app: &Router, uri: &str) -> (StatusCode, Value) {
    let (status, _, text) = send(app, Method::GET, uri, None).await;
    (
        status,
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{uri} answered non-JSON ({e}): {text}")),
    )
}

/// The `data:` payloads of a server-sent-events body.
pub fn sse_data(body: &str) -> Vec<String> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
        .map(str::to_owned)
        .collect()
}

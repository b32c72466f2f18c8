//! The inference HTTP server behind `kaito serve`: KAITO's API and an OpenAI-compatible one over
//! any [`LoadedModel`].
//!
//! | Route | |
//! |---|---|
//! | `POST /chat` | KAITO's schema (`prompt` or `messages`, `generate_kwargs`) → `{"Result": ...}` |
//! | `POST /v1/chat/completions` | OpenAI chat completions, `stream: true` as server-sent events |
//! | `POST /v1/completions` | OpenAI text completions, also streamable |
//! | `GET /v1/models` | the base model, `<base>:base` and each adapter, `owned_by: kaito` |
//! | `GET /health`, `GET /` | `{"status":"Healthy"}`, `{"message":"Server is running"}` |
//! | `GET /metrics` | Prometheus: requests by route and status, latency, prompt/completion tokens |
//!
//! # KAITO `/chat`
//! Defaults and conversions are KAITO's transformers runtime's: `max_length` (default 200) counts
//! the prompt, so `max_new_tokens = max(max_length - prompt_tokens, 1)`; `return_full_text`
//! (default true) prefixes the prompt; all loaded adapters apply, each at its strength.
//!
//! # Adapters on the OpenAI routes
//! `model` = the base name applies all adapters (KAITO's transformers runtime), an adapter's name
//! applies that one, `<base>:base` none; unknown names are 404 `model_not_found`.
//!
//! # Limits ([`ServeLimits`])
//! Bodies over `max_body_bytes` are 413, prompts over `max_prompt_tokens` and token budgets over
//! `max_new_tokens` are 400 with the numbers. Generation runs on blocking threads, at most
//! `max_concurrent_generations` at once; up to `max_queued_requests` more wait for a slot, and
//! beyond that the server answers 429. When a client disconnects, streaming or not, its
//! generation stops at the next piece of text (the text sink breaks) and frees its slot.
//!
//! # Running it
//! ```no_run
//! # async fn run(model: std::sync::Arc<dyn kaito_core::traits::LoadedModel>) -> kaito_backends::Result<()> {
//! use kaito_backends::serve::{ServeLimits, serve};
//! let addr = std::net::SocketAddr::from(([0, 0, 0, 0], 5000)); // KAITO's inference port
//! let stop = async {
//!     let _ = tokio::signal::ctrl_c().await;
//! };
//! serve(addr, model, ServeLimits::default(), stop).await
//! # }
//! ```

mod engine;
mod kaito;
mod metrics;
mod openai;
mod reply;
mod sse;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use kaito_core::traits::LoadedModel;
use tokio::net::TcpListener;

pub use openai::BASE_SUFFIX;

use crate::{Error, Result};
use engine::Engine;

/// Limits that keep one client from exhausting the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServeLimits {
    /// Largest request body in bytes (larger: 413).
    pub max_body_bytes: usize,
    /// Most tokens a prompt (after the chat template) may have (more: 400).
    pub max_prompt_tokens: usize,
    /// Most tokens one request may generate: an explicit larger budget is a 400, defaults are
    /// clamped to it.
    pub max_new_tokens: usize,
    /// Generations running at once (at least 1).
    pub max_concurrent_generations: usize,
    /// Requests that may wait for a generation slot; one more is refused with 429.
    pub max_queued_requests: usize,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 2 * 1024 * 1024,
            max_prompt_tokens: 4096,
            max_new_tokens: 1024,
            max_concurrent_generations: 2,
            max_queued_requests: 32,
        }
    }
}

/// The server's routes over `model`, without a listener (embed it, or drive it in tests).
pub fn router(model: Arc<dyn LoadedModel>, limits: ServeLimits) -> Router {
    let body_limit = limits.max_body_bytes;
    let engine = Arc::new(Engine::new(model, limits));
    Router::new()
        .route("/", get(kaito::home))
        .route("/health", get(kaito::health))
        .route("/chat", post(kaito::chat))
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/completions", post(openai::completions))
        .route("/v1/models", get(openai::models))
        .route("/metrics", get(render_metrics))
        .layer(middleware::from_fn_with_state(engine.clone(), track))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(engine)
}

/// Binds `addr` and serves until `shutdown` completes, then finishes the requests in flight.
pub async fn serve(
    addr: SocketAddr,
    model: Arc<dyn LoadedModel>,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| Error::io(format!("listening on {addr}"), e))?;
    serve_listener(listener, model, limits, shutdown).await
}

/// [`serve`] on a listener the caller bound (e.g. to port 0 in tests).
pub async fn serve_listener(
    listener: TcpListener,
    model: Arc<dyn LoadedModel>,
    limits: ServeLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let addr = listener
        .local_addr()
        .map_or_else(|_| "the listener".to_owned(), |a| a.to_string());
    tracing::info!(%addr, model = model.model_name(), adapters = ?model.adapter_names(), "serving");
    axum::serve(listener, router(model, limits))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| Error::io(format!("serving on {addr}"), e))
}

async fn render_metrics(State(engine): State<Arc<Engine>>) -> Response {
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    (
        [(axum::http::header::CONTENT_TYPE, content_type)],
        engine.metrics.render(),
    )
        .into_response()
}

/// Counts every request by its route pattern (not the raw path, which a client could vary
/// without bound) and status, and times it.
async fn track(State(engine): State<Arc<Engine>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    engine
        .metrics
        .observe_request(&route, response.status().as_u16(), started.elapsed());
    response
}

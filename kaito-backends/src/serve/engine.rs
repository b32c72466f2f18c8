//! Runs generations for the HTTP handlers without blocking the async runtime.
//!
//! `LoadedModel` is synchronous and compute-bound, so rendering, token counting and generation
//! run on `tokio::task::spawn_blocking`. A semaphore bounds concurrent generations to
//! [`ServeLimits::max_concurrent_generations`]; further requests wait in a queue of at most
//! [`ServeLimits::max_queued_requests`] and beyond that are refused with 429 (as KAITO's vLLM
//! runtime refuses when its waiting queue is full), so a burst neither piles up unboundedly nor
//! fails while a slot is about to free up.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::http::StatusCode;
use kaito_core::traits::{
    ChatMessage, Generation, GenerationRequest, LoadedModel, SamplingParams, TextSink,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::ServeLimits;
use super::metrics::Metrics;
use super::reply::ApiError;

/// What the client asked to continue.
pub(crate) enum Input {
    /// Text used as is.
    Prompt(String),
    /// A chat, rendered with the model's chat template.
    Messages(Vec<ChatMessage>),
}

/// A prompt ready for generation.
pub(crate) struct Prepared {
    pub prompt: String,
    pub prompt_tokens: usize,
}

/// One event of a streamed generation.
pub(crate) enum Piece {
    Text(String),
    Done(Result<Generation, ApiError>),
}

/// The shared state of the server.
pub(crate) struct Engine {
    pub model: Arc<dyn LoadedModel>,
    pub limits: ServeLimits,
    pub metrics: Metrics,
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
}

/// Tells a running generation that its caller is gone.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Undoes a queue entry when the request leaves the queue (admitted or dropped by its client).
struct QueueEntry<'a>(&'a Engine);

impl Drop for QueueEntry<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
        self.0.metrics.waiting().dec();
    }
}

impl Engine {
    pub(crate) fn new(model: Arc<dyn LoadedModel>, limits: ServeLimits) -> Self {
        let slots = Arc::new(Semaphore::new(limits.max_concurrent_generations.max(1)));
        Self {
            model,
            limits,
            metrics: Metrics::new(),
            slots,
            waiting: AtomicUsize::new(0),
        }
    }

    /// Renders and counts the prompt, refusing one over [`ServeLimits::max_prompt_tokens`].
    pub(crate) async fn prepare(&self, input: Input) -> Result<Prepared, ApiError> {
        let model = self.model.clone();
        let prepared = tokio::task::spawn_blocking(move || -> Result<Prepared, ApiError> {
            let prompt = match input {
                Input::Prompt(prompt) => prompt,
                Input::Messages(messages) => model
                    .render_chat(&messages)
                    .map_err(|e| ApiError::from_model(&e))?,
            };
            let prompt_tokens = model
                .count_tokens(&prompt)
                .map_err(|e| ApiError::from_model(&e))?;
            Ok(Prepared {
                prompt,
                prompt_tokens,
            })
        })
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("tokenizing the prompt failed: {e}"),
            )
        })??;
        if prepared.prompt_tokens > self.limits.max_prompt_tokens {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "the prompt has {} tokens; this server accepts at most {} (ServeLimits::max_prompt_tokens)",
                    prepared.prompt_tokens, self.limits.max_prompt_tokens
                ),
            )
            .with_code("context_length_exceeded"));
        }
        Ok(prepared)
    }

    /// Checks a client's token budget against [`ServeLimits::max_new_tokens`]; `field` names it.
    pub(crate) fn check_new_tokens(
        &self,
        field: &str,
        requested: usize,
    ) -> Result<usize, ApiError> {
        if requested == 0 {
            return Err(ApiError::bad_field(field, "must be at least 1"));
        }
        if requested > self.limits.max_new_tokens {
            return Err(ApiError::bad_field(
                field,
                format_args!(
                    "asks for {requested} new tokens; this server generates at most {} (ServeLimits::max_new_tokens)",
                    self.limits.max_new_tokens
                ),
            ));
        }
        Ok(requested)
    }

    /// Waits for a generation slot, or refuses with 429 when the queue is full.
    async fn admit(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        if let Ok(permit) = self.slots.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let ahead = self.waiting.fetch_add(1, Ordering::SeqCst);
        self.metrics.waiting().inc();
        let _entry = QueueEntry(self);
        if ahead >= self.limits.max_queued_requests {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "server busy: {} generations running and {ahead} waiting; retry later",
                    self.limits.max_concurrent_generations.max(1)
                ),
            ));
        }
        self.slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "server is shutting down"))
    }

    /// Generates the whole answer. When the client goes away (this future is dropped), the
    /// generation stops at its next piece of text.
    pub(crate) async fn generate(
        self: &Arc<Self>,
        request: GenerationRequest,
    ) -> Result<Generation, ApiError> {
        let permit = self.admit().await?;
        let engine = self.clone();
        let gone = StopOnDrop(Arc::new(AtomicBool::new(false)));
        let stop = gone.0.clone();
        // The permit moves into the blocking task: the slot stays taken until the device is
        // actually free.
        tokio::task::spawn_blocking(move || {
            let mut sink = |_: &str| {
                if stop.load(Ordering::Relaxed) {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            };
            engine.run(permit, &request, &mut sink)
        })
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("generation failed: {e}"),
            )
        })?
    }

    /// Starts a generation whose text arrives piece by piece; the last item is [`Piece::Done`].
    /// When the receiver is dropped (the client disconnected), the generation stops at its next
    /// piece of text.
    pub(crate) async fn generate_stream(
        self: &Arc<Self>,
        request: GenerationRequest,
    ) -> Result<mpsc::Receiver<Piece>, ApiError> {
        let permit = self.admit().await?;
        let (tx, rx) = mpsc::channel(64);
        let engine = self.clone();
        tokio::task::spawn_blocking(move || {
            // blocking_send gives back-pressure: a slow reader slows generation instead of
            // buffering an unbounded answer.
            let mut sink = |text: &str| match tx.blocking_send(Piece::Text(text.to_owned())) {
                Ok(()) => ControlFlow::Continue(()),
                Err(_) => ControlFlow::Break(()),
            };
            let result = engine.run(permit, &request, &mut sink);
            let _ = tx.blocking_send(Piece::Done(result));
        });
        Ok(rx)
    }

    /// The blocking part: one generation holding one slot.
    fn run(
        &self,
        permit: OwnedSemaphorePermit,
        request: &GenerationRequest,
        sink: &mut dyn TextSink,
    ) -> Result<Generation, ApiError> {
        let _permit = permit;
        self.metrics.running().inc();
        let result = self.model.generate(request, sink);
        self.metrics.running().dec();
        let generation = result.map_err(|e| ApiError::from_model(&e))?;
        self.metrics
            .observe_tokens(generation.prompt_tokens, generation.completion_tokens);
        Ok(generation)
    }
}

/// Rejects sampling settings the sampler cannot honour; `prefix` is where the fields live in
/// the request (`generate_kwargs.` or empty).
pub(crate) fn check_sampling(params: &SamplingParams, prefix: &str) -> Result<(), ApiError> {
    let field = |name: &str| format!("{prefix}{name}");
    if !params.temperature.is_finite() || params.temperature < 0.0 {
        return Err(ApiError::bad_field(
            field("temperature"),
            "must be a non-negative number",
        ));
    }
    if params.do_sample && params.temperature == 0.0 {
        return Err(ApiError::bad_field(
            field("temperature"),
            "must be strictly positive when do_sample is true",
        ));
    }
    if !(params.top_p > 0.0 && params.top_p <= 1.0) {
        return Err(ApiError::bad_field(field("top_p"), "must be in (0, 1]"));
    }
    if !(params.repetition_penalty.is_finite() && params.repetition_penalty > 0.0) {
        return Err(ApiError::bad_field(
            field("repetition_penalty"),
            "must be a positive number",
        ));
    }
    Ok(())
}

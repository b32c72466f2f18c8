//! KAITO's own inference API (the transformers runtime of KAITO ≤ v0.8): `POST /chat`,
//! `GET /health` and `GET /`.
//!
//! `/chat` takes `prompt` (text generation: the prompt is continued as is) or `messages`
//! (rendered with the model's chat template), and `generate_kwargs` with Hugging Face's
//! meanings and KAITO's defaults: `max_length` 200, `min_length` 0, `do_sample` true,
//! `temperature` 1.0, `top_k` 10, `top_p` 1, `typical_p` 1, `num_beams` 1,
//! `repetition_penalty` 1, `early_stopping` false. Unknown keys are accepted and ignored, as
//! KAITO accepts them; known ones this server cannot honour (beam search, `typical_p` < 1, a
//! `min_length` above the prompt) are refused with 400 rather than ignored.
//!
//! `max_length` is the total length, prompt included (Hugging Face's meaning), so the server
//! generates `max_length - prompt_tokens` new tokens, at least 1 (Hugging Face also emits one
//! token when the prompt already reaches `max_length`). `max_new_tokens`, when given, wins, as in
//! Hugging Face. An explicit budget above [`super::ServeLimits::max_new_tokens`] is a 400; the
//! default one is clamped to it.
//!
//! The answer is `{"Result": text}`. For `prompt`, `return_full_text` (default true) returns the
//! prompt followed by the generation, like the text-generation pipeline; for `messages` the
//! result is the assistant's reply, like KAITO's conversational pipeline. `/chat` generates with
//! every loaded adapter, each at its strength, as KAITO's transformers runtime serves its
//! combined adapter.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use bytes::Bytes;
use kaito_core::traits::{AdapterSelection, ChatMessage, GenerationRequest, SamplingParams};
use serde::Deserialize;
use serde_json::{Value, json};

use super::engine::{Engine, Input, check_sampling};
use super::reply::{ApiError, KaitoError, parse_body};

/// KAITO's default `generate_kwargs.max_length`.
const DEFAULT_MAX_LENGTH: usize = 200;

/// The body of `POST /chat`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ChatRequest {
    prompt: Option<String>,
    messages: Option<Vec<ChatMessage>>,
    generate_kwargs: GenerateKwargs,
    return_full_text: Option<bool>,
    clean_up_tokenization_spaces: Option<bool>,
    prefix: Option<String>,
    handle_long_generation: Option<String>,
}

/// `generate_kwargs`; absent (or null) keys take KAITO's defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct GenerateKwargs {
    max_length: Option<usize>,
    max_new_tokens: Option<usize>,
    min_length: Option<usize>,
    do_sample: Option<bool>,
    temperature: Option<f32>,
    top_k: Option<usize>,
    top_p: Option<f32>,
    typical_p: Option<f32>,
    num_beams: Option<usize>,
    repetition_penalty: Option<f32>,
    // `early_stopping` only affects beam search: like other unknown keys it is accepted and
    // without effect.
}

/// `GET /`.
pub(crate) async fn home() -> Json<Value> {
    Json(json!({"message": "Server is running"}))
}

/// `GET /health`: the model is loaded before the server listens, so a running server is healthy.
pub(crate) async fn health() -> Json<Value> {
    Json(json!({"status": "Healthy"}))
}

/// `POST /chat`.
pub(crate) async fn chat(
    State(engine): State<Arc<Engine>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, KaitoError> {
    let request: ChatRequest = parse_body(body)?;
    let kwargs = &request.generate_kwargs;
    if request.clean_up_tokenization_spaces == Some(true) {
        return Err(unsupported("clean_up_tokenization_spaces", "only false is supported").into());
    }
    if request.handle_long_generation.is_some() {
        return Err(unsupported(
            "handle_long_generation",
            "is not supported; shorten the prompt instead",
        )
        .into());
    }
    if kwargs.num_beams.is_some_and(|n| n != 1) {
        return Err(unsupported(
            "generate_kwargs.num_beams",
            "only 1 is supported (no beam search)",
        )
        .into());
    }
    if kwargs.typical_p.is_some_and(|p| p != 1.0) {
        return Err(unsupported("generate_kwargs.typical_p", "only 1 (off) is supported").into());
    }
    let (input, full_text_prefix) = match (request.prompt, request.messages) {
        (Some(_), Some(_)) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "give either prompt or messages, not both",
            )
            .into());
        }
        (Some(prompt), None) if !prompt.is_empty() => {
            let full = request
                .return_full_text
                .unwrap_or(true)
                .then(|| prompt.clone());
            let prompt = format!("{}{prompt}", request.prefix.unwrap_or_default());
            (Input::Prompt(prompt), full)
        }
        (None, Some(messages)) if !messages.is_empty() => (Input::Messages(messages), None),
        (None, Some(_)) => return Err(ApiError::bad_field("messages", "must not be empty").into()),
        _ => {
            return Err(ApiError::bad_field(
                "prompt",
                "required: give a non-empty `prompt` (text generation) or `messages` (chat)",
            )
            .into());
        }
    };
    let prepared = engine.prepare(input).await?;
    if let Some(min) = kwargs.min_length.filter(|&m| m > prepared.prompt_tokens) {
        let message = format!(
            "{min} exceeds the prompt's {} tokens; a minimum generation length is not supported",
            prepared.prompt_tokens
        );
        return Err(unsupported("generate_kwargs.min_length", message).into());
    }
    let max_new_tokens = match (kwargs.max_new_tokens, kwargs.max_length) {
        (Some(n), _) => engine.check_new_tokens("generate_kwargs.max_new_tokens", n)?,
        (None, Some(len)) => engine.check_new_tokens(
            "generate_kwargs.max_length",
            len.saturating_sub(prepared.prompt_tokens).max(1),
        )?,
        (None, None) => DEFAULT_MAX_LENGTH
            .saturating_sub(prepared.prompt_tokens)
            .clamp(1, engine.limits.max_new_tokens),
    };
    let defaults = SamplingParams::default();
    let params = SamplingParams {
        max_new_tokens,
        do_sample: kwargs.do_sample.unwrap_or(defaults.do_sample),
        temperature: kwargs.temperature.unwrap_or(defaults.temperature),
        top_k: kwargs.top_k.unwrap_or(defaults.top_k),
        top_p: kwargs.top_p.unwrap_or(defaults.top_p),
        repetition_penalty: kwargs
            .repetition_penalty
            .unwrap_or(defaults.repetition_penalty),
        stop: Vec::new(),
        seed: None,
    };
    check_sampling(&params, "generate_kwargs.")?;
    let adapters = if engine.model.adapter_names().is_empty() {
        AdapterSelection::Base
    } else {
        AdapterSelection::All
    };
    let generation = engine
        .generate(GenerationRequest {
            prompt: prepared.prompt,
            adapters,
            params,
        })
        .await?;
    let result = match full_text_prefix {
        Some(prompt) => prompt + &generation.text,
        None => generation.text,
    };
    Ok(Json(json!({"Result": result})))
}

fn unsupported(field: &str, message: impl std::fmt::Display) -> ApiError {
    ApiError::bad_field(field, message)
}

//! The OpenAI-compatible API: `POST /v1/chat/completions`, `POST /v1/completions` (both with
//! `stream: true`) and `GET /v1/models`.
//!
//! # Choosing adapters by `model`
//! - the base model's name (or no `model`): every loaded adapter, each at its strength. This is
//!   what KAITO's transformers runtime serves under the model's name (its adapters combined), and
//!   what a person who started `kaito serve --adapter ...` means by "the model";
//! - an adapter's name: that adapter alone, at its strength (KAITO's vLLM runtime selects an
//!   adapter the same way);
//! - `<base name>:base` (listed only when adapters are loaded): the base model without adapters,
//!   so that one server can compare the tuned and untuned model;
//! - anything else: 404 `model_not_found`.
//!
//! # Parameters
//! `max_completion_tokens` (or the older `max_tokens`; default and cap
//! [`super::ServeLimits::max_new_tokens`]), `temperature` (default 1; 0 decodes greedily), `top_p`,
//! `stop` (a string or a list), `seed`, `stream`, `stream_options.include_usage`, and vLLM's
//! extensions `top_k` (default off; -1 also means off) and `repetition_penalty`. `n` other than 1
//! and non-zero `presence_penalty` / `frequency_penalty` are refused with 400 rather than ignored;
//! other OpenAI fields (`user`, `logit_bias`, ...) are ignored.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use kaito_core::traits::{
    AdapterSelection, ChatMessage, FinishReason, GenerationRequest, SamplingParams,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::engine::{Engine, Input, check_sampling};
use super::reply::{ApiError, OpenAiError, parse_body};
use super::sse::{ChunkKind, ChunkShape, stream_response};

/// Suffix of the model id that selects the base model without adapters.
pub const BASE_SUFFIX: &str = ":base";

/// `stop`: one string or several.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct StreamOptions {
    include_usage: bool,
}

/// Fields shared by both completion endpoints.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Common {
    model: Option<String>,
    max_tokens: Option<usize>,
    max_completion_tokens: Option<usize>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    top_k: Option<i64>,
    repetition_penalty: Option<f32>,
    stop: Option<Stop>,
    seed: Option<u64>,
    stream: bool,
    stream_options: Option<StreamOptions>,
    n: Option<usize>,
    presence_penalty: Option<f32>,
    frequency_penalty: Option<f32>,
}

/// A message's `content`: a string or a list of parts, of which only text parts are supported.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Deserialize)]
struct Part {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: String,
}

#[derive(Debug, Deserialize)]
struct Message {
    role: String,
    content: Option<Content>,
}

#[derive(Debug, Deserialize)]
struct ChatCompletionRequest {
    messages: Vec<Message>,
    #[serde(flatten)]
    common: Common,
}

/// `prompt`: one string (a list holding one string is accepted too).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Prompt {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
struct CompletionRequest {
    prompt: Prompt,
    #[serde(default)]
    echo: bool,
    #[serde(default)]
    suffix: Option<String>,
    #[serde(flatten)]
    common: Common,
}

/// `POST /v1/chat/completions`.
pub(crate) async fn chat_completions(
    State(engine): State<Arc<Engine>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OpenAiError> {
    let request: ChatCompletionRequest = parse_body(body)?;
    if request.messages.is_empty() {
        return Err(ApiError::bad_field("messages", "must not be empty").into());
    }
    let mut messages = Vec::with_capacity(request.messages.len());
    for (i, message) in request.messages.into_iter().enumerate() {
        let content = match message.content {
            None => String::new(),
            Some(Content::Text(text)) => text,
            Some(Content::Parts(parts)) => {
                if let Some(part) = parts.iter().find(|p| p.kind != "text") {
                    let field = format!("messages[{i}].content");
                    return Err(ApiError::bad_field(
                        field,
                        format_args!(
                            "content part type `{}` is not supported (text only)",
                            part.kind
                        ),
                    )
                    .into());
                }
                parts.into_iter().map(|p| p.text).collect()
            }
        };
        messages.push(ChatMessage {
            role: message.role,
            content,
        });
    }
    complete(
        &engine,
        Input::Messages(messages),
        request.common,
        ChunkKind::Chat,
        None,
    )
    .await
}

/// `POST /v1/completions`.
pub(crate) async fn completions(
    State(engine): State<Arc<Engine>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, OpenAiError> {
    let request: CompletionRequest = parse_body(body)?;
    if request.suffix.is_some() {
        return Err(ApiError::bad_field("suffix", "is not supported").into());
    }
    let prompt = match request.prompt {
        Prompt::One(prompt) => prompt,
        Prompt::Many(mut prompts) if prompts.len() == 1 => prompts.remove(0),
        Prompt::Many(_) => {
            return Err(
                ApiError::bad_field("prompt", "only one prompt per request is supported").into(),
            );
        }
    };
    let echo = request.echo.then(|| prompt.clone());
    complete(
        &engine,
        Input::Prompt(prompt),
        request.common,
        ChunkKind::Completion,
        echo,
    )
    .await
}

/// `GET /v1/models`.
pub(crate) async fn models(State(engine): State<Arc<Engine>>) -> Json<Value> {
    let base = engine.model.model_name().to_owned();
    let created = unix_now();
    let entry = |id: &str, parent: Option<&str>| json!({"id": id, "object": "model", "created": created, "owned_by": "kaito", "root": base, "parent": parent});
    let adapters = engine.model.adapter_names();
    let mut data = vec![entry(&base, None)];
    if !adapters.is_empty() {
        data.push(entry(&format!("{base}{BASE_SUFFIX}"), None));
    }
    data.extend(adapters.iter().map(|name| entry(name, Some(&base))));
    Json(json!({"object": "list", "data": data}))
}

/// Maps `model` to the adapters to apply (see the module docs).
fn select(engine: &Engine, model: Option<&str>) -> Result<AdapterSelection, ApiError> {
    let base = engine.model.model_name();
    let adapters = engine.model.adapter_names();
    let all = if adapters.is_empty() {
        AdapterSelection::Base
    } else {
        AdapterSelection::All
    };
    match model {
        None => Ok(all),
        Some(name) if name == base => Ok(all),
        Some(name) if !adapters.is_empty() && name.strip_suffix(BASE_SUFFIX) == Some(base) => {
            Ok(AdapterSelection::Base)
        }
        Some(name) if adapters.iter().any(|a| a == name) => {
            Ok(AdapterSelection::Named(name.to_owned()))
        }
        Some(name) => Err(ApiError {
            status: StatusCode::NOT_FOUND,
            message: format!(
                "The model `{name}` does not exist; GET /v1/models lists the served models."
            ),
            param: Some("model".to_owned()),
            code: Some("model_not_found"),
        }),
    }
}

/// Validates the shared fields, generates, and answers as JSON or as a stream.
async fn complete(
    engine: &Arc<Engine>,
    input: Input,
    common: Common,
    kind: ChunkKind,
    echo: Option<String>,
) -> Result<Response, OpenAiError> {
    let adapters = select(engine, common.model.as_deref())?;
    if common.n.is_some_and(|n| n != 1) {
        return Err(ApiError::bad_field("n", "only 1 is supported").into());
    }
    for (field, value) in [
        ("presence_penalty", common.presence_penalty),
        ("frequency_penalty", common.frequency_penalty),
    ] {
        if value.is_some_and(|v| v != 0.0) {
            return Err(ApiError::bad_field(field, "is not supported (only 0)").into());
        }
    }
    let top_k = match common.top_k {
        None | Some(-1) => 0,
        Some(k) => usize::try_from(k).map_err(|_| {
            ApiError::bad_field("top_k", "must be -1 (off) or a non-negative integer")
        })?,
    };
    let max_new_tokens = match (common.max_completion_tokens, common.max_tokens) {
        (Some(n), _) => engine.check_new_tokens("max_completion_tokens", n)?,
        (None, Some(n)) => engine.check_new_tokens("max_tokens", n)?,
        (None, None) => engine.limits.max_new_tokens,
    };
    let temperature = common.temperature.unwrap_or(1.0);
    let params = SamplingParams {
        max_new_tokens,
        do_sample: temperature > 0.0,
        temperature,
        top_k,
        top_p: common.top_p.unwrap_or(1.0),
        repetition_penalty: common.repetition_penalty.unwrap_or(1.0),
        stop: match common.stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s],
            Some(Stop::Many(v)) => v,
        },
        seed: common.seed,
    };
    check_sampling(&params, "")?;
    let prepared = engine.prepare(input).await?;
    let model = common
        .model
        .unwrap_or_else(|| engine.model.model_name().to_owned());
    let request = GenerationRequest {
        prompt: prepared.prompt,
        adapters,
        params,
    };
    let shape = ChunkShape {
        kind,
        id: new_id(kind),
        created: unix_now(),
        model,
        include_usage: false,
    };
    if common.stream {
        let include_usage = common.stream_options.is_some_and(|o| o.include_usage);
        let rx = engine.generate_stream(request).await?;
        return Ok(stream_response(
            rx,
            ChunkShape {
                include_usage,
                ..shape
            },
            echo,
        )
        .into_response());
    }
    let generation = engine.generate(request).await?;
    let text = echo.unwrap_or_default() + &generation.text;
    let choice = match kind {
        ChunkKind::Chat => json!({"index": 0, "message": {"role": "assistant", "content": text},
            "logprobs": null, "finish_reason": finish_reason(generation.finish_reason)}),
        ChunkKind::Completion => json!({"index": 0, "text": text, "logprobs": null,
            "finish_reason": finish_reason(generation.finish_reason)}),
    };
    Ok(Json(json!({
        "id": shape.id,
        "object": kind.object(),
        "created": shape.created,
        "model": shape.model,
        "choices": [choice],
        "usage": usage(generation.prompt_tokens, generation.completion_tokens),
    }))
    .into_response())
}

/// OpenAI's `finish_reason`.
pub(crate) fn finish_reason(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
    }
}

/// OpenAI's `usage` object.
pub(crate) fn usage(prompt_tokens: usize, completion_tokens: usize) -> Value {
    json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens})
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A response id unique within the process and unlikely to repeat across restarts.
fn new_id(kind: ChunkKind) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let prefix = match kind {
        ChunkKind::Chat => "chatcmpl",
        ChunkKind::Completion => "cmpl",
    };
    format!(
        "{prefix}-{:x}{nanos:08x}{:04x}",
        unix_now(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

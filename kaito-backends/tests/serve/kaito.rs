//! KAITO's `/chat`, `/health` and `/`.

use std::sync::Arc;

use axum::http::StatusCode;
use kaito_core::traits::{AdapterSelection, SamplingParams};
use serde_json::json;

use super::{EchoModel, app, get_json, post_json};

#[tokio::test]
async fn chat_prompt_applies_kaito_defaults_and_returns_full_text() {
    let model = Arc::new(EchoModel::new(&[]));
    let (status, body) = post_json(&app(&model), "/chat", r#"{"prompt": "one two three"}"#).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"Result": "one two threeHi there!"}));

    let received = model.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].prompt, "one two three");
    assert_eq!(received[0].adapters, AdapterSelection::Base);
    // max_length 200 counts the 3 prompt tokens.
    let expected = SamplingParams {
        max_new_tokens: 197,
        do_sample: true,
        temperature: 1.0,
        top_k: 10,
        top_p: 1.0,
        repetition_penalty: 1.0,
        stop: Vec::new(),
        seed: None,
    };
    assert_eq!(received[0].params, expected);
}

#[tokio::test]
async fn chat_messages_use_the_template_all_adapters_and_generate_kwargs() {
    let model = Arc::new(EchoModel::new(&["alpha", "beta"]));
    let body = r#"{"messages": [{"role": "user", "content": "hello there"}],
        "generate_kwargs": {"max_length": 50, "temperature": 0.5, "top_k": 3, "top_p": 0.9,
            "do_sample": false, "repetition_penalty": 1.2, "early_stopping": true,
            "pad_token_id": 0, "some_future_key": "x"}}"#;
    let (status, body) = post_json(&app(&model), "/chat", body).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A chat answers with the assistant's reply only.
    assert_eq!(body, json!({"Result": "Hi there!"}));

    let request = &model.received()[0];
    assert_eq!(request.prompt, "user: hello there\nassistant:");
    assert_eq!(request.adapters, AdapterSelection::All);
    // "user: hello there assistant:" is 4 tokens.
    assert_eq!(request.params.max_new_tokens, 46);
    assert!(!request.params.do_sample);
    assert_eq!(
        (
            request.params.temperature,
            request.params.top_k,
            request.params.top_p
        ),
        (0.5, 3, 0.9)
    );
    assert_eq!(request.params.repetition_penalty, 1.2);
}

#[tokio::test]
async fn chat_token_budget_conversions() {
    let model = Arc::new(EchoModel::new(&[]));
    let app = app(&model);
    // return_full_text false: only the generation.
    let (_, body) = post_json(
        &app,
        "/chat",
        r#"{"prompt": "a b", "return_full_text": false}"#,
    )
    .await;
    assert_eq!(body["Result"], "Hi there!");
    // A prompt already longer than max_length still generates one token.
    post_json(
        &app,
        "/chat",
        r#"{"prompt": "a b c d", "generate_kwargs": {"max_length": 2}}"#,
    )
    .await;
    // max_new_tokens wins over max_length, as in Hugging Face.
    post_json(
        &app,
        "/chat",
        r#"{"prompt": "a", "generate_kwargs": {"max_length": 20, "max_new_tokens": 7}}"#,
    )
    .await;
    let budgets: Vec<usize> = model
        .received()
        .iter()
        .map(|r| r.params.max_new_tokens)
        .collect();
    assert_eq!(budgets, [198, 1, 7]);
}

#[tokio::test]
async fn chat_errors_name_the_field_and_never_reach_the_model() {
    let model = Arc::new(EchoModel::new(&[]));
    let app = app(&model);
    let cases = [
        (r#"{}"#, "prompt"),
        (r#"{"prompt": ""}"#, "prompt"),
        (r#"{"generate_kwargs": {"max_length": 10}}"#, "messages"),
        (r#"{"messages": []}"#, "messages: must not be empty"),
        (
            r#"{"prompt": "a", "messages": [{"role": "user", "content": "b"}]}"#,
            "either prompt or messages",
        ),
        (
            r#"{"prompt": "a", "generate_kwargs": {"num_beams": 4}}"#,
            "generate_kwargs.num_beams",
        ),
        (
            r#"{"prompt": "a", "generate_kwargs": {"top_k": "ten"}}"#,
            "generate_kwargs.top_k",
        ),
        (
            r#"{"prompt": "a", "generate_kwargs": {"typical_p": 0.5}}"#,
            "generate_kwargs.typical_p",
        ),
        (
            r#"{"prompt": "a", "generate_kwargs": {"temperature": 0}}"#,
            "generate_kwargs.temperature",
        ),
        (
            r#"{"prompt": "a", "generate_kwargs": {"min_length": 50}}"#,
            "generate_kwargs.min_length",
        ),
        (r#"{"messages": [{"role": "user"}]}"#, "messages[0]"),
        (r#"{"prompt": "a""#, "request body"),
    ];
    for (body, field) in cases {
        let (status, answer) = post_json(&app, "/chat", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} -> {answer}");
        let detail = answer["detail"]
            .as_str()
            .unwrap_or_else(|| panic!("FastAPI-style detail expected: {answer}"));
        assert!(
            detail.contains(field),
            "{body}: `{detail}` should name {field}"
        );
    }
    assert!(model.received().is_empty());
}

#[tokio::test]
async fn health_and_home_answer_as_kaito_does() {
    let model = Arc::new(EchoModel::new(&[]));
    let app = app(&model);
    assert_eq!(
        get_json(&app, "/health").await,
        (StatusCode::OK, json!({"status": "Healthy"}))
    );
    assert_eq!(
        get_json(&app, "/").await,
        (StatusCode::OK, json!({"message": "Server is running"}))
    );
}

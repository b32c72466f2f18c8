//! The OpenAI-compatible routes.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use kaito_core::traits::AdapterSelection;
use serde_json::{Value, json};

use super::{EchoModel, app, get_json, post_json, send, sse_data};

#[tokio::test]
async fn chat_completion_maps_parameters_and_answers_in_openai_shape() {
    let model = Arc::new(EchoModel::new(&["alpha"]));
    let body = r#"{"model": "tiny-base", "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 5, "temperature": 0, "stop": "END", "seed": 42, "user": "ignored"}"#;
    let (status, answer) = post_json(&app(&model), "/v1/chat/completions", body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["object"], "chat.completion");
    assert!(
        answer["id"].as_str().unwrap().starts_with("chatcmpl-"),
        "{answer}"
    );
    assert_eq!(answer["model"], "tiny-base");
    assert_eq!(
        answer["choices"][0]["message"],
        json!({"role": "assistant", "content": "Hi there!"})
    );
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    // "user: hi\nassistant:" is 3 tokens.
    assert_eq!(
        answer["usage"],
        json!({"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6})
    );

    let request = &model.received()[0];
    // The base name with adapters loaded applies them all (KAITO's transformers runtime).
    assert_eq!(request.adapters, AdapterSelection::All);
    assert_eq!(request.params.max_new_tokens, 5);
    assert!(!request.params.do_sample, "temperature 0 decodes greedily");
    assert_eq!(
        request.params.top_k, 0,
        "OpenAI has no top_k: off unless given"
    );
    assert_eq!(request.params.stop, ["END"]);
    assert_eq!(request.params.seed, Some(42));
}

#[tokio::test]
async fn model_name_selects_adapters_and_unknown_is_404() {
    let model = Arc::new(EchoModel::new(&["alpha", "beta"]));
    let app = app(&model);
    for name in ["beta", "tiny-base:base"] {
        let body = json!({"model": name, "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]});
        let (status, answer) = post_json(&app, "/v1/chat/completions", &body.to_string()).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["model"], name);
    }
    let selections: Vec<AdapterSelection> =
        model.received().into_iter().map(|r| r.adapters).collect();
    assert_eq!(
        selections,
        [
            AdapterSelection::Named("beta".into()),
            AdapterSelection::Base
        ]
    );

    let (status, answer) = post_json(
        &app,
        "/v1/completions",
        r#"{"model": "gamma", "prompt": "x"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(answer["error"]["code"], "model_not_found");
    assert_eq!(answer["error"]["param"], "model");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("gamma"),
        "{answer}"
    );
    assert_eq!(model.received().len(), 2);
}

#[tokio::test]
async fn completion_echoes_and_defaults_the_budget_to_the_cap() {
    let model = Arc::new(EchoModel::new(&[]));
    let body = r#"{"model": "tiny-base", "prompt": ["a b"], "echo": true, "stop": ["x", "y"], "top_k": -1}"#;
    let (status, answer) = post_json(&app(&model), "/v1/completions", body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["object"], "text_completion");
    assert_eq!(answer["choices"][0]["text"], "a bHi there!");
    assert_eq!(answer["usage"]["prompt_tokens"], 2);
    let request = &model.received()[0];
    assert_eq!(request.prompt, "a b");
    assert_eq!(request.adapters, AdapterSelection::Base);
    assert_eq!(request.params.max_new_tokens, 1024);
    assert_eq!(request.params.stop, ["x", "y"]);
    assert!(request.params.do_sample);
}

#[tokio::test]
async fn models_lists_base_and_adapters() {
    let model = Arc::new(EchoModel::new(&["alpha", "beta"]));
    let (status, answer) = get_json(&app(&model), "/v1/models").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["object"], "list");
    let data = answer["data"].as_array().unwrap();
    let ids: Vec<&str> = data.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["tiny-base", "tiny-base:base", "alpha", "beta"]);
    assert!(
        data.iter()
            .all(|m| m["owned_by"] == "kaito" && m["object"] == "model")
    );
    assert_eq!(data[2]["parent"], "tiny-base");

    let bare = Arc::new(EchoModel::new(&[]));
    let (_, answer) = get_json(&app(&bare), "/v1/models").await;
    assert_eq!(answer["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn chat_stream_sends_openai_chunks_usage_and_done() {
    let model = Arc::new(EchoModel::new(&[]));
    let body = r#"{"messages": [{"role": "user", "content": "hi"}], "stream": true,
        "stream_options": {"include_usage": true}}"#;
    let (status, content_type, text) = send(
        &app(&model),
        Method::POST,
        "/v1/chat/completions",
        Some(body),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let data = sse_data(&text);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{text}");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk" && c["id"] == chunks[0]["id"])
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "Hi there!");
    assert_eq!(
        chunks.len(),
        1 + 3 + 2,
        "role, three pieces, finish, usage: {text}"
    );
    assert_eq!(chunks[4]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[5]["choices"], json!([]));
    assert_eq!(chunks[5]["usage"]["completion_tokens"], 3);
}

#[tokio::test]
async fn completion_stream_echoes_then_streams_text() {
    let model = Arc::new(EchoModel::new(&[]));
    let body = r#"{"prompt": "a b", "echo": true, "stream": true}"#;
    let (status, _, text) = send(&app(&model), Method::POST, "/v1/completions", Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let data = sse_data(&text);
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let texts: Vec<&str> = chunks
        .iter()
        .map(|c| c["choices"][0]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["a b", "Hi", " there", "!", ""]);
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );
    assert!(chunks.iter().all(|c| c["object"] == "text_completion"));
}

#[tokio::test]
async fn openai_errors_name_the_field() {
    let model = Arc::new(EchoModel::new(&[]));
    let app = app(&model);
    let cases = [
        (
            "/v1/chat/completions",
            r#"{"model": "tiny-base"}"#,
            "messages",
        ),
        (
            "/v1/chat/completions",
            r#"{"messages": [{"role": "user", "content": "x"}], "n": 2}"#,
            "n",
        ),
        (
            "/v1/chat/completions",
            r#"{"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}"#,
            "messages[0].content",
        ),
        (
            "/v1/chat/completions",
            r#"{"messages": [{"role": "user", "content": "x"}], "presence_penalty": 1}"#,
            "presence_penalty",
        ),
        ("/v1/completions", r#"{"prompt": "x", "top_p": 0}"#, "top_p"),
        (
            "/v1/completions",
            r#"{"prompt": "x", "max_tokens": 0}"#,
            "max_tokens",
        ),
        ("/v1/completions", r#"{"prompt": ["x", "y"]}"#, "prompt"),
        ("/v1/completions", r#"{"max_tokens": 3}"#, "prompt"),
    ];
    for (uri, body, field) in cases {
        let (status, answer) = post_json(&app, uri, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} -> {answer}");
        assert_eq!(answer["error"]["type"], "invalid_request_error", "{answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(field),
            "{body}: `{message}` should name {field}"
        );
    }
    assert!(model.received().is_empty());
}

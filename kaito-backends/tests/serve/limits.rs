//! Limits, concurrency, metrics, and a real socket.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use futures::StreamExt;
use kaito_backends::serve::{ServeLimits, serve_listener};
use kaito_core::traits::LoadedModel;
use tower::ServiceExt;

use super::{EchoModel, app, app_with, post_json, send, sse_data};

fn slow_model(delay: Duration) -> Arc<EchoModel> {
    let mut model = EchoModel::new(&[]);
    model.delay = delay;
    Arc::new(model)
}

#[tokio::test]
async fn oversized_body_is_413() {
    let model = Arc::new(EchoModel::new(&[]));
    let app = app_with(
        &model,
        ServeLimits {
            max_body_bytes: 64,
            ..Default::default()
        },
    );
    let body = serde_json::json!({"prompt": "word ".repeat(100)}).to_string();
    let (status, answer) = post_json(&app, "/chat", &body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert!(
        answer["detail"]
            .as_str()
            .unwrap()
            .contains("max_body_bytes"),
        "{answer}"
    );
    let (status, answer) = post_json(&app, "/v1/completions", &body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(answer["error"]["message"].is_string(), "{answer}");
    assert!(model.received().is_empty());
}

#[tokio::test]
async fn prompt_and_budget_limits_are_400_with_the_numbers() {
    let model = Arc::new(EchoModel::new(&[]));
    let limits = ServeLimits {
        max_prompt_tokens: 5,
        max_new_tokens: 20,
        ..Default::default()
    };
    let app = app_with(&model, limits);

    let (status, answer) = post_json(&app, "/chat", r#"{"prompt": "1 2 3 4 5 6"}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let detail = answer["detail"].as_str().unwrap();
    assert!(
        detail.contains("6 tokens") && detail.contains("at most 5"),
        "{detail}"
    );

    let (status, answer) = post_json(
        &app,
        "/v1/chat/completions",
        r#"{"messages": [{"role": "user", "content": "x"}], "max_tokens": 21}"#,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("max_tokens") && message.contains("21") && message.contains("20"),
        "{message}"
    );

    let (status, _) = post_json(
        &app,
        "/chat",
        r#"{"prompt": "a", "generate_kwargs": {"max_length": 100}}"#,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "an explicit budget over the cap is refused"
    );
    assert!(model.received().is_empty());

    // KAITO's default max_length (200) is clamped to the cap instead of failing every request.
    let (status, _) = post_json(&app, "/chat", r#"{"prompt": "a"}"#).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(model.received()[0].params.max_new_tokens, 20);
}

#[tokio::test]
async fn concurrent_generations_overlap_in_time() {
    let model = slow_model(Duration::from_millis(400));
    let app = app_with(
        &model,
        ServeLimits {
            max_concurrent_generations: 2,
            ..Default::default()
        },
    );
    let started = Instant::now();
    let body = r#"{"prompt": "a"}"#;
    let (a, b) = tokio::join!(
        post_json(&app, "/chat", body),
        post_json(&app, "/v1/completions", body)
    );
    assert_eq!((a.0, b.0), (StatusCode::OK, StatusCode::OK));
    let spans = model.spans.lock().unwrap().clone();
    assert_eq!(spans.len(), 2);
    let (first, second) = (spans[0], spans[1]);
    assert!(
        first.0 < second.1 && second.0 < first.1,
        "generations ran one after the other: {spans:?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(750),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_full_queue_is_429() {
    let model = slow_model(Duration::from_millis(500));
    let limits = ServeLimits {
        max_concurrent_generations: 1,
        max_queued_requests: 0,
        ..Default::default()
    };
    let app = app_with(&model, limits);
    let first = tokio::spawn({
        let app = app.clone();
        async move { post_json(&app, "/chat", r#"{"prompt": "a"}"#).await }
    });
    while model.received().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (status, answer) = post_json(&app, "/v1/completions", r#"{"prompt": "b"}"#).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{answer}");
    assert_eq!(answer["error"]["type"], "RateLimitError");
    assert_eq!(first.await.unwrap().0, StatusCode::OK);
    // The slot is free again.
    assert_eq!(
        post_json(&app, "/v1/completions", r#"{"prompt": "c"}"#)
            .await
            .0,
        StatusCode::OK
    );
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.trim().parse().ok())
        })
        .unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_count_requests_tokens_and_latency() {
    let model = Arc::new(EchoModel::new(&[]));
    let app = app(&model);
    let scrape = || async {
        let (status, content_type, text) = send(&app, Method::GET, "/metrics", None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(content_type.contains("openmetrics-text"), "{content_type}");
        text
    };
    let ok = r#"kaito_serve_requests_total{route="/chat",status="200"}"#;
    let bad = r#"kaito_serve_requests_total{route="/chat",status="400"}"#;
    let before = scrape().await;
    post_json(&app, "/chat", r#"{"prompt": "a b c"}"#).await;
    post_json(&app, "/chat", r#"{"prompt": "d e"}"#).await;
    post_json(&app, "/chat", r#"{}"#).await;
    let after = scrape().await;
    assert_eq!(metric(&after, ok) - metric(&before, ok), 2.0, "{after}");
    assert_eq!(metric(&after, bad) - metric(&before, bad), 1.0, "{after}");
    assert_eq!(
        metric(&after, "kaito_serve_prompt_tokens_total"),
        5.0,
        "{after}"
    );
    assert_eq!(
        metric(&after, "kaito_serve_completion_tokens_total"),
        6.0,
        "{after}"
    );
    assert_eq!(
        metric(
            &after,
            r#"kaito_serve_request_duration_seconds_count{route="/chat"}"#
        ),
        3.0,
        "{after}"
    );
    assert!(
        after.contains(r#"kaito_serve_requests_total{route="/metrics",status="200"}"#),
        "{after}"
    );
}

#[tokio::test]
async fn serves_on_a_real_socket_and_shuts_down() {
    let model = Arc::new(EchoModel::new(&["alpha"]));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_listener(
        listener,
        model.clone() as Arc<dyn LoadedModel>,
        ServeLimits::default(),
        async {
            let _ = stopped.await;
        },
    ));

    let client = reqwest::Client::new();
    let health = client
        .get(format!("http://{addr}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), reqwest::StatusCode::OK);
    let body =
        r#"{"model": "alpha", "messages": [{"role": "user", "content": "hi"}], "stream": true}"#;
    let response = client
        .post(format!("http://{addr}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    let text = response.text().await.unwrap();
    let data = sse_data(&text);
    assert_eq!(data.last().unwrap(), "[DONE]", "{text}");
    assert!(text.contains(r#""content":" there""#), "{text}");

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("server stops")
        .unwrap()
        .unwrap();
    assert!(
        client
            .get(format!("http://{addr}/health"))
            .send()
            .await
            .is_err(),
        "still listening after shutdown"
    );
}

/// Waits until the model has finished `n` generations; returns how many pieces each emitted.
async fn finished(model: &EchoModel, n: usize) -> Vec<usize> {
    for _ in 0..500 {
        let emitted = model.emitted.lock().unwrap().clone();
        if emitted.len() >= n {
            return emitted;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("generation {n} did not finish");
}

#[tokio::test]
async fn a_client_that_disconnects_stops_its_generation() {
    let mut model = EchoModel::new(&[]);
    model.pieces = vec!["x"; 200];
    model.piece_delay = Duration::from_millis(5);
    let model = Arc::new(model);
    let app = app(&model);

    // Streaming: read the first event, then hang up.
    let request = Request::builder()
        .method(Method::POST)
        .uri("/v1/completions")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"prompt": "a", "stream": true}"#))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let mut body = response.into_body().into_data_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: "), "{first:?}");
    drop(body);
    let emitted = finished(&model, 1).await;
    assert!(
        emitted[0] < 150,
        "the stream's generation ran on: {emitted:?}"
    );

    // Not streaming: the request is dropped midway.
    let pending = tokio::spawn({
        let app = app.clone();
        async move { post_json(&app, "/chat", r#"{"prompt": "a"}"#).await }
    });
    while model.received().len() < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    pending.abort();
    let emitted = finished(&model, 2).await;
    assert!(
        emitted[1] < 150,
        "the dropped request's generation ran on: {emitted:?}"
    );
}

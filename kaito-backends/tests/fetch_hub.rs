//! The Hugging Face hub client against a local server imitating the hub's file endpoints.

use std::time::Duration;

use kaito_backends::artifacts::RetryPolicy;
use kaito_backends::fetch::{HubClient, HubConfig};
use kaito_core::ErrorKind;
use kaito_core::traits::SecretString;
use sha2::Digest;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const WEIGHTS: &[u8] = b"\x08\x00\x00\x00\x00\x00\x00\x00{}      fake safetensors";

fn config(endpoint: String, token: &str) -> HubConfig {
    HubConfig {
        endpoint,
        token: Some(SecretString::new(token)),
        retry: RetryPolicy {
            attempts: 2,
            initial_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(10),
        },
        ..HubConfig::default()
    }
}

async fn fake_hub(downloads_expected: u64) -> MockServer {
    let server = MockServer::start().await;
    let info = serde_json::json!({
        "id": "org/tiny", "sha": "0123abcd",
        "siblings": [{"rfilename": "config.json"}, {"rfilename": "model.safetensors"},
                     {"rfilename": "pytorch_model.bin"}, {"rfilename": "tok/tokenizer.json"}, {"rfilename": "README.md"}],
    });
    Mock::given(method("GET"))
        .and(path("/api/models/org/tiny/revision/main"))
        .and(header("authorization", "Bearer hf_good"))
        .respond_with(ResponseTemplate::new(200).set_body_json(info))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/models/org/tiny/revision/main"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    let lfs = hex::encode(sha2::Sha256::digest(WEIGHTS));
    for (file, body, etag) in [
        ("config.json", &b"{\"model_type\":\"llama\"}"[..], None),
        ("model.safetensors", WEIGHTS, Some(lfs)),
        ("tok/tokenizer.json", &b"{\"version\":\"1.0\"}"[..], None),
    ] {
        let mut response = ResponseTemplate::new(200).set_body_bytes(body.to_vec());
        if let Some(etag) = etag {
            response = response.insert_header("x-linked-etag", format!("\"{etag}\""));
        }
        Mock::given(method("GET"))
            .and(path(format!("/org/tiny/resolve/0123abcd/{file}")))
            .and(header("authorization", "Bearer hf_good"))
            .respond_with(response)
            .expect(downloads_expected)
            .mount(&server)
            .await;
    }
    server
}

#[tokio::test]
async fn snapshot_fills_the_huggingface_cache_layout_once() {
    let server = fake_hub(1).await;
    let cache = tempfile::tempdir().unwrap();
    let client = HubClient::new(config(server.uri(), "hf_good")).unwrap();
    let snapshot = client
        .snapshot("org/tiny", "main", cache.path())
        .await
        .unwrap();
    let repo = cache.path().join("models--org--tiny");
    assert_eq!(snapshot, repo.join("snapshots/0123abcd"));
    assert_eq!(
        std::fs::read_to_string(repo.join("refs/main")).unwrap(),
        "0123abcd"
    );
    assert_eq!(
        std::fs::read(snapshot.join("model.safetensors")).unwrap(),
        WEIGHTS
    );
    assert_eq!(
        std::fs::read(snapshot.join("tok/tokenizer.json")).unwrap(),
        b"{\"version\":\"1.0\"}"
    );
    let link = std::fs::read_link(snapshot.join("model.safetensors")).unwrap();
    assert_eq!(
        link,
        std::path::Path::new("../../blobs").join(hex::encode(sha2::Sha256::digest(WEIGHTS)))
    );
    assert!(!snapshot.join("pytorch_model.bin").exists() && !snapshot.join("README.md").exists());

    // Cached files are not fetched again (each file mock expects exactly one request).
    client
        .snapshot("org/tiny", "main", cache.path())
        .await
        .unwrap();

    // Offline: the cached snapshot of the revision is used.
    drop(server);
    let offline = HubClient::new(config("http://127.0.0.1:9".into(), "hf_good")).unwrap();
    assert_eq!(
        offline
            .snapshot("org/tiny", "main", cache.path())
            .await
            .unwrap(),
        snapshot
    );
}

#[tokio::test]
async fn refused_token_is_unauthorized_without_the_token_in_the_message() {
    let server = fake_hub(0).await;
    let cache = tempfile::tempdir().unwrap();
    let err = HubClient::new(config(server.uri(), "hf_bad_token"))
        .unwrap()
        .snapshot("org/tiny", "main", cache.path())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    let text = format!("{err} {err:?}");
    assert!(
        text.contains("org/tiny")
            && text.contains("modelAccessSecret")
            && !text.contains("hf_bad_token"),
        "{text}"
    );
}

#[tokio::test]
async fn corrupt_download_is_detected_by_the_lfs_hash() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/models/org/bad/revision/v1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            serde_json::json!({"sha": "ff00", "siblings": [{"rfilename": "model.safetensors"}]}),
        ))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/org/bad/resolve/ff00/model.safetensors"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_bytes(b"truncated".to_vec())
                .insert_header("x-linked-etag", format!("\"{}\"", "a".repeat(64))),
        )
        .mount(&server)
        .await;
    let cache = tempfile::tempdir().unwrap();
    let err = HubClient::new(config(server.uri(), "t"))
        .unwrap()
        .snapshot("org/bad", "v1", cache.path())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("differs"), "{err}");
    assert!(
        !cache
            .path()
            .join("models--org--bad/snapshots/ff00/model.safetensors")
            .exists()
    );
}

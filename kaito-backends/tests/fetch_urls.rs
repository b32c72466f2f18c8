//! `tuning.input.urls` against a local HTTP server (wiremock).

use std::path::Path;
use std::time::Duration;

use kaito_backends::artifacts::RetryPolicy;
use kaito_backends::fetch::{UrlDownloader, UrlFetchConfig};
use kaito_core::ErrorKind;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn downloader(max_bytes: u64) -> UrlDownloader {
    UrlDownloader::new(UrlFetchConfig {
        allow_private_addresses: true,
        max_bytes,
        retry: RetryPolicy {
            attempts: 3,
            initial_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(20),
        },
        ..UrlFetchConfig::default()
    })
    .unwrap()
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn follows_redirects_and_names_the_file_after_the_requested_url() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/datasets/train.jsonl"))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("location", format!("{}/blob/abc123", server.uri())),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/blob/abc123"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{\"text\":\"hi\"}\n"))
        .mount(&server)
        .await;
    let dest = tempfile::tempdir().unwrap();
    let url = format!("{}/datasets/train.jsonl?sig=s3cr3t#frag", server.uri());
    let file = downloader(1 << 20)
        .download(&url, dest.path())
        .await
        .unwrap();
    assert_eq!(file, dest.path().join("train.jsonl"));
    assert_eq!(std::fs::read(&file).unwrap(), b"{\"text\":\"hi\"}\n");
    assert_eq!(names(dest.path()), ["train.jsonl"]);
}

#[tokio::test]
async fn not_found_is_final_and_names_the_url() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(404))
        .expect(1)
        .mount(&server)
        .await;
    let dest = tempfile::tempdir().unwrap();
    let url = format!("{}/missing.csv", server.uri());
    let err = downloader(1 << 20)
        .download(&url, dest.path())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(
        err.to_string().contains(&url) && err.to_string().contains("404"),
        "{err}"
    );
    assert!(names(dest.path()).is_empty());
}

#[tokio::test]
async fn server_error_then_success_is_retried() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(2)
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("a,b\n1,2\n"))
        .expect(1)
        .mount(&server)
        .await;
    let dest = tempfile::tempdir().unwrap();
    let file = downloader(1 << 20)
        .download(&format!("{}/d/data.csv", server.uri()), dest.path())
        .await
        .unwrap();
    assert_eq!(std::fs::read(file).unwrap(), b"a,b\n1,2\n");
}

#[tokio::test]
async fn empty_body_fails_after_three_tries_and_leaves_nothing() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .expect(3)
        .mount(&server)
        .await;
    let dest = tempfile::tempdir().unwrap();
    let url = format!("{}/empty.jsonl", server.uri());
    let err = downloader(1 << 20)
        .download(&url, dest.path())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains(&url) && err.to_string().contains("empty body"),
        "{err}"
    );
    assert!(names(dest.path()).is_empty());
}

#[tokio::test]
async fn body_over_the_limit_is_refused_and_leaves_nothing() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(vec![b'x'; 200_000]))
        .expect(1)
        .mount(&server)
        .await;
    let dest = tempfile::tempdir().unwrap();
    let err = downloader(100_000)
        .download(&format!("{}/big.parquet", server.uri()), dest.path())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("too large"), "{err}");
    assert!(names(dest.path()).is_empty());
}

#[tokio::test]
async fn loopback_and_private_targets_are_refused_without_the_test_setting() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("x"))
        .expect(0)
        .mount(&server)
        .await;
    let strict = UrlDownloader::new(UrlFetchConfig::default()).unwrap();
    let dest = tempfile::tempdir().unwrap();
    let literal = format!("{}/a.json", server.uri());
    let err = strict.download(&literal, dest.path()).await.unwrap_err();
    assert!(err.to_string().contains("127.0.0.1"), "{err}");
    // A name resolving to loopback is caught after DNS resolution.
    let by_name = literal.replace("127.0.0.1", "localhost");
    let err = strict.download(&by_name, dest.path()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("resolves to"), "{err}");
}

//! Shared helpers for the harness's own tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kaito_harness::FakeApiServer;
use kube::api::ObjectMeta;

pub async fn server() -> (FakeApiServer, kube::Client) {
    let server = FakeApiServer::start().await.expect("bind 127.0.0.1");
    let client = server.client();
    (server, client)
}

pub fn config_map(name: &str, labels: &[(&str, &str)], data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        ),
        ..Default::default()
    }
}

/// Polls `f` every 20 ms until it returns true; panics with `what` after `secs` seconds.
pub async fn eventually(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The HTTP code of a kube API error.
pub fn code(err: kube::Error) -> u16 {
    match err {
        kube::Error::Api(s) => s.code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

pub fn reason(err: kube::Error) -> String {
    match err {
        kube::Error::Api(s) => s.reason,
        other => panic!("expected an API error, got {other:?}"),
    }
}

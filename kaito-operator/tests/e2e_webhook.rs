//! The operator's HTTP side: the admission webhook refuses invalid workspaces with field paths,
//! and /healthz, /readyz, /metrics answer; leader election lets exactly one candidate lead.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use kaito_harness::FakeApiServer;
use kaito_operator::operator::OperatorConfig;
use kaito_operator::operator::http::{self, Health};
use kaito_operator::operator::leader::{LeaderElector, LeaseConfig};
use kaito_operator::operator::metrics::Metrics;
use kaito_operator::operator::webhook::WebhookState;
use serde_json::{Value, json};

fn review(op: &str, object: Value, old: Option<Value>) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
            "kind": { "group": "kaito.sh", "version": "v1alpha1", "kind": "Workspace" },
            "resource": { "group": "kaito.sh", "version": "v1alpha1", "resource": "workspaces" },
            "name": object["metadata"]["name"],
            "namespace": "default",
            "operation": op,
            "userInfo": { "username": "alice" },
            "object": object,
            "oldObject": old,
            "dryRun": false
        }
    })
}

async fn start_http() -> (String, Health, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let health = Health::default();
    let metrics = Arc::new(Metrics::default());
    let webhook = WebhookState::new(&OperatorConfig::default(), None, metrics.clone());
    let router = http::router(health.clone(), metrics, webhook);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (format!("http://{addr}"), health, task)
}

#[tokio::test]
async fn webhook_refuses_invalid_workspaces_with_field_paths() {
    let (url, health, task) = start_http().await;
    let http = reqwest::Client::new();
    let filled = common::SEED
        .replace(
            "ACR_REPO_HERE.azurecr.io/IMAGE_NAME_HERE:0.0.1",
            "myacr.azurecr.io/adapter-phi-3:0.0.1",
        )
        .replace("ACR_REGISTRY_SECRET_HERE", "acr-push");
    let seed: Value = serde_saphyr::from_str(&filled).expect("seed yaml");
    let post = |body: Value| {
        let http = http.clone();
        let url = format!("{url}/validate/workspace.kaito.sh");
        async move {
            http.post(url)
                .json(&body)
                .send()
                .await
                .expect("post")
                .json::<Value>()
                .await
                .expect("json")
        }
    };

    let ok = post(review("CREATE", seed.clone(), None)).await;
    assert_eq!(ok["response"]["allowed"], true, "{ok}");
    assert_eq!(
        ok["response"]["uid"],
        "705ab4f5-6393-11e8-b7cc-42010a800002"
    );

    let mut bad = seed.clone();
    bad["tuning"]
        .as_object_mut()
        .expect("tuning")
        .remove("input");
    bad["tuning"]["method"] = "full".into();
    let denied = post(review("CREATE", bad, None)).await;
    let response = &denied["response"];
    assert_eq!(response["allowed"], false, "{denied}");
    assert_eq!(response["status"]["code"], 422);
    let fields: Vec<&str> = response["status"]["details"]["causes"]
        .as_array()
        .expect("causes")
        .iter()
        .filter_map(|c| c["field"].as_str())
        .collect();
    assert!(
        fields.iter().any(|f| f.starts_with("tuning.input")),
        "{fields:?}"
    );
    assert!(
        fields.iter().any(|f| f.starts_with("tuning.method")),
        "{fields:?}"
    );
    assert!(
        response["status"]["message"]
            .as_str()
            .expect("message")
            .contains("tuning.input")
    );

    let mut changed = seed.clone();
    changed["tuning"]["preset"]["name"] = "phi-4".into();
    let update = post(review("UPDATE", changed, Some(seed.clone()))).await;
    assert_eq!(update["response"]["allowed"], false, "{update}");
    let causes = update["response"]["status"]["details"]["causes"]
        .as_array()
        .expect("causes");
    assert!(
        causes.iter().any(|c| c["field"]
            .as_str()
            .is_some_and(|f| f.starts_with("tuning.preset"))),
        "{update}"
    );

    let unfilled: Value = serde_saphyr::from_str(common::SEED).expect("seed yaml");
    let placeholder = post(review("CREATE", unfilled, None)).await;
    assert_eq!(
        placeholder["response"]["allowed"], false,
        "template placeholders are refused: {placeholder}"
    );

    assert_eq!(
        http.get(format!("{url}/healthz"))
            .send()
            .await
            .expect("healthz")
            .status(),
        200
    );
    assert_eq!(
        http.get(format!("{url}/readyz"))
            .send()
            .await
            .expect("readyz")
            .status(),
        503
    );
    health.ready.store(true, Ordering::Relaxed);
    assert_eq!(
        http.get(format!("{url}/readyz"))
            .send()
            .await
            .expect("readyz")
            .status(),
        200
    );
    let metrics = http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("kaito_admission_reviews_total{allowed=\"false\"} 3"),
        "{metrics}"
    );
    task.abort();
}

#[tokio::test]
async fn only_one_candidate_leads_until_the_lease_expires() {
    let server = FakeApiServer::start().await.expect("server");
    let config = |id: &str| LeaseConfig {
        lease_duration: Duration::from_secs(1),
        retry_period: Duration::from_millis(100),
        ..LeaseConfig::new("kaito-system", id)
    };
    let a = LeaderElector::new(server.client(), config("a"));
    let b = LeaderElector::new(server.client(), config("b"));
    assert!(a.try_acquire_or_renew().await.expect("a"));
    assert!(
        !b.try_acquire_or_renew().await.expect("b"),
        "b must not lead while a's lease is fresh"
    );
    assert!(a.try_acquire_or_renew().await.expect("a renews"));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(
        b.try_acquire_or_renew().await.expect("b takes over"),
        "an expired lease is taken over"
    );
    assert!(!a.try_acquire_or_renew().await.expect("a"), "a lost it");
}

//! Throttling, quota / SKU / capacity failures, and errors that must not stick.

use std::time::{Duration, Instant};

use kaito_core::ErrorKind;
use kaito_core::traits::{NodeProvisioner, NodeReadiness};
use serde_json::json;
use wiremock::ResponseTemplate;

use crate::*;

fn not_found() -> ResponseTemplate {
    ResponseTemplate::new(404).set_body_json(arm_error("NotFound", "Agent Pool not found"))
}

#[tokio::test]
async fn throttled_request_is_retried_after_retry_after() {
    let f = Fixture::new().await;
    let n = name(0);
    arm("GET", &pool_path(&n))
        .respond_with(sequence(vec![
            ResponseTemplate::new(429).insert_header("Retry-After", "1"),
            ResponseTemplate::new(200).set_body_json(our_pool(&n, "Succeeded")),
        ]))
        .expect(2)
        .mount(&f.server)
        .await;
    let started = Instant::now();
    let pool = f
        .provisioner
        .client()
        .get(&n)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After ignored: {:?}",
        started.elapsed()
    );
    assert_eq!(
        pool.map(|p| p.provisioning_state().to_owned()).as_deref(),
        Some("Succeeded")
    );
    f.server.verify().await;
    f.assert_all_authorized().await;
}

#[tokio::test]
async fn endless_throttling_is_a_retryable_error() {
    let f = Fixture::new().await;
    let n = name(0);
    let throttled = ResponseTemplate::new(429)
        .insert_header("Retry-After", "0")
        .set_body_json(arm_error("TooManyRequests", "slow down"));
    // One try plus the default five retries.
    arm("GET", &pool_path(&n))
        .respond_with(throttled)
        .expect(6)
        .mount(&f.server)
        .await;
    let err = f.provisioner.ensure_nodes(&requirements(1)).await.err();
    assert!(
        err.as_ref().is_some_and(
            |e| e.kind() == ErrorKind::Retryable && e.to_string().contains("TooManyRequests")
        ),
        "{err:?}"
    );
    f.server.verify().await;
}

#[tokio::test]
async fn quota_error_on_create_is_failed_with_code_and_message() {
    let f = Fixture::new().await;
    let n = name(0);
    arm("GET", &pool_path(&n))
        .respond_with(not_found())
        .expect(1)
        .mount(&f.server)
        .await;
    let quota = arm_error(
        "QuotaExceeded",
        "Operation results in exceeding quota limits of Core. Maximum allowed: 0, Current in use: 0, Additional requested: 24.",
    );
    arm("PUT", &pool_path(&n))
        .respond_with(ResponseTemplate::new(400).set_body_json(quota))
        .expect(1)
        .mount(&f.server)
        .await;

    let req = requirements(1);
    let err = f.provisioner.ensure_nodes(&req).await.err();
    assert!(
        err.as_ref().is_some_and(
            |e| e.kind() == ErrorKind::Terminal && e.to_string().contains("QuotaExceeded")
        ),
        "{err:?}"
    );
    let readiness = f
        .provisioner
        .readiness(&req)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let NodeReadiness::Failed { reason, message } = readiness else {
        panic!("{readiness:?}")
    };
    assert_eq!(reason, "QuotaExceeded");
    assert!(message.contains("Additional requested: 24"), "{message}");
    // Known to fail: ensuring again sends nothing (the PUT expectation is exactly one).
    f.provisioner
        .ensure_nodes(&req)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    f.server.verify().await;
}

#[tokio::test]
async fn operation_not_allowed_with_quota_text_is_terminal() {
    let f = Fixture::new().await;
    let n = name(0);
    arm("GET", &pool_path(&n))
        .respond_with(not_found())
        .expect(1)
        .mount(&f.server)
        .await;
    let quota = arm_error(
        "OperationNotAllowed",
        "Operation could not be completed as it results in exceeding approved standardNCADSA100v4Family Cores quota. Submit a request for Quota increase.",
    );
    arm("PUT", &pool_path(&n))
        .respond_with(ResponseTemplate::new(409).set_body_json(quota))
        .expect(1)
        .mount(&f.server)
        .await;
    let req = requirements(1);
    assert!(
        f.provisioner
            .ensure_nodes(&req)
            .await
            .is_err_and(|e| e.kind() == ErrorKind::Terminal)
    );
    let readiness = f
        .provisioner
        .readiness(&req)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(&readiness, NodeReadiness::Failed { reason, message } if reason == "OperationNotAllowed" && message.contains("Cores quota")),
        "{readiness:?}"
    );
    f.server.verify().await;
}

#[tokio::test]
async fn failed_async_operation_reports_the_nested_capacity_code() {
    let f = Fixture::new().await;
    let n = name(0);
    arm("GET", &pool_path(&n))
        .respond_with(not_found())
        .expect(1)
        .mount(&f.server)
        .await;
    let accepted = ResponseTemplate::new(201)
        .insert_header("Azure-AsyncOperation", f.op_url(OPERATION).as_str())
        .set_body_json(our_pool(&n, "Creating"));
    arm("PUT", &pool_path(&n))
        .respond_with(accepted)
        .expect(1)
        .mount(&f.server)
        .await;
    let failed = json!({"name": "op-1", "status": "Failed", "error": {
        "code": "ReconcileVMSSAgentPoolFailed",
        "message": "Code=\"ZonalAllocationFailed\" Message=\"Allocation failed. We do not have sufficient capacity for the requested VM size in this zone.\""
    }});
    op(OPERATION)
        .respond_with(ResponseTemplate::new(200).set_body_json(failed))
        .expect(1)
        .mount(&f.server)
        .await;
    let req = requirements(1);
    f.provisioner
        .ensure_nodes(&req)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let readiness = f
        .provisioner
        .readiness(&req)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let NodeReadiness::Failed { reason, message } = readiness else {
        panic!("{readiness:?}")
    };
    assert_eq!(reason, "ZonalAllocationFailed");
    assert!(message.contains("sufficient capacity"), "{message}");
    f.server.verify().await;
}

#[tokio::test]
async fn refused_token_is_unauthorized() {
    let f = Fixture::new().await;
    let n = name(0);
    let refused = arm_error("InvalidAuthenticationToken", "The access token is invalid.");
    arm("GET", &pool_path(&n))
        .respond_with(ResponseTemplate::new(401).set_body_json(refused))
        .expect(1)
        .mount(&f.server)
        .await;
    let err = f.provisioner.ensure_nodes(&requirements(1)).await.err();
    assert!(
        err.as_ref()
            .is_some_and(|e| e.kind() == ErrorKind::Unauthorized && !e.to_string().contains(TOKEN)),
        "{err:?}"
    );
    f.server.verify().await;
}

#[tokio::test]
async fn server_errors_are_retryable_and_do_not_stick() {
    let f = Fixture::new().await;
    let n = name(0);
    arm("GET", &pool_path(&n))
        .respond_with(not_found())
        .expect(2)
        .mount(&f.server)
        .await;
    let put = sequence(vec![
        ResponseTemplate::new(500).set_body_json(arm_error("InternalServerError", "try again")),
        ResponseTemplate::new(200).set_body_json(our_pool(&n, "Succeeded")),
    ]);
    arm("PUT", &pool_path(&n))
        .respond_with(put)
        .expect(2)
        .mount(&f.server)
        .await;
    let req = requirements(1);
    assert!(
        f.provisioner
            .ensure_nodes(&req)
            .await
            .is_err_and(|e| e.is_retryable())
    );
    f.provisioner
        .ensure_nodes(&req)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    f.server.verify().await;
}

#[tokio::test]
async fn invalid_requirements_make_no_call() {
    let f = Fixture::new().await;
    let mut req = requirements(1);
    req.instance_type = None;
    let err = f.provisioner.ensure_nodes(&req).await.err();
    assert!(
        err.as_ref().is_some_and(
            |e| e.kind() == ErrorKind::InvalidInput && e.to_string().contains("instanceType")
        ),
        "{err:?}"
    );
    assert!(
        f.server
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
    );
}

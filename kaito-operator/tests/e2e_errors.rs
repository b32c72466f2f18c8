//! End to end: a failing reconcile step shows up where users look. KAITO's condition stays (same
//! status and reason) with `(last reconcile error: …)` appended to its message, a Warning Event
//! names the failed step, no credential leaks into either, and the next clean reconcile drops the
//! suffix.

mod common;

use common::{Cluster, cond, eventually, seed};
use k8s_openapi::api::events::v1::Event;
use kaito_core::api::{ConditionType as C, WorkspaceV1Beta1, reason};
use kaito_harness::{ApiError, Verb};
use kaito_operator::operator::OperatorConfig;

const NAME: &str = "workspace-tuning-phi-3";
const SUFFIX: &str = "(last reconcile error: ";

fn warnings(c: &Cluster, reason: &str) -> Vec<String> {
    c.server
        .store()
        .list::<Event>(Some("default"))
        .into_iter()
        .filter(|e| e.type_.as_deref() == Some("Warning") && e.reason.as_deref() == Some(reason))
        .map(|e| e.note.unwrap_or_default())
        .collect()
}

/// Messages of every condition that carries a reconcile error.
fn with_errors(ws: &WorkspaceV1Beta1) -> Vec<(String, String)> {
    ws.status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .filter(|c| c.message.contains(SUFFIX))
        .map(|c| (c.type_.clone(), c.message.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_nodeclaim_create_is_shown_on_resource_ready_until_it_succeeds() {
    let c = Cluster::start(OperatorConfig::default()).await;
    let forbidden = ApiError::Injected {
        code: 403,
        reason: "Forbidden".into(),
        message: "nodeclaims.karpenter.sh is forbidden: User \"system:serviceaccount:kaito-system:kaito-operator\" \
                  cannot create resource \"nodeclaims\" in API group \"karpenter.sh\" at the cluster scope"
            .into(),
    };
    c.server
        .fail_times_with(Verb::Create, "NodeClaim", forbidden, 1000);
    c.create(&seed()).await;

    let ws = eventually("the error on ResourceReady", || {
        c.workspace(NAME)
            .filter(|w| cond(w, C::ResourceReady).is_some_and(|c| c.2.contains(SUFFIX)))
    })
    .await;
    let (status, reason_, message) = cond(&ws, C::ResourceReady).expect("ResourceReady");
    assert_eq!(status, "False");
    assert_eq!(
        reason_,
        reason::NODECLAIM_NOT_READY,
        "KAITO's reason is kept"
    );
    assert!(
        message.starts_with("0 of 1 NodeClaims ready (last reconcile error: creating NodeClaim ")
            && message.contains("cannot create resource \"nodeclaims\"")
            && message.ends_with("(Forbidden, HTTP 403))"),
        "{message}"
    );
    assert_eq!(
        with_errors(&ws).len(),
        1,
        "only the failed step's condition carries the error: {:?}",
        with_errors(&ws)
    );
    let notes = eventually("a NodeClaimCreationFailed Warning", || {
        Some(warnings(&c, "NodeClaimCreationFailed")).filter(|n| !n.is_empty())
    })
    .await;
    assert!(notes[0].contains("HTTP 403"), "{notes:?}");
    assert!(c.claims().is_empty());

    // RBAC fixed: the next reconcile (here triggered by a user edit) creates the NodeClaim and
    // the message is KAITO's again.
    c.server.clear_faults();
    c.touch(NAME, "example.com/retry", "1").await;
    eventually("the NodeClaim", || c.claims().into_iter().next()).await;
    let clean = eventually("no reconcile error left", || {
        c.workspace(NAME).filter(|w| with_errors(w).is_empty())
    })
    .await;
    assert_eq!(
        cond(&clean, C::ResourceReady).map(|c| (c.0, c.1)),
        Some(("False".into(), reason::NODECLAIM_NOT_READY.into()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_job_create_is_shown_on_job_started_without_credentials() {
    let c = Cluster::start(OperatorConfig::default()).await;
    // An error text that echoes a credential (a proxy in front of the apiserver, say).
    let leaky = ApiError::Injected {
        code: 500,
        reason: "InternalError".into(),
        message: "etcdserver: request timed out (upstream Authorization: Bearer s3cr3t-t0ken, \
                  https://acct.blob.core.windows.net/x?sv=1&sig=SASs1gnature)"
            .into(),
    };
    c.server.fail_times_with(Verb::Create, "Job", leaky, 1000);
    c.create(&seed()).await;
    eventually("a NodeClaim", || c.claims().into_iter().next()).await;
    assert_eq!(c.karpenter.settle(), 3);

    let ws = eventually("the error on JobStarted", || {
        c.workspace(NAME)
            .filter(|w| cond(w, C::JobStarted).is_some_and(|c| c.2.contains(SUFFIX)))
    })
    .await;
    let (status, reason_, message) = cond(&ws, C::JobStarted).expect("JobStarted");
    assert_eq!(
        (status.as_str(), reason_.as_str()),
        ("False", reason::TUNING_JOB_PENDING)
    );
    assert!(
        message
            .contains("creating Job default/workspace-tuning-phi-3: etcdserver: request timed out")
            && message.contains("(InternalError, HTTP 500))"),
        "{message}"
    );
    assert_eq!(
        cond(&ws, C::ResourceReady).map(|c| c.0),
        Some("True".into()),
        "the nodes are fine; only the Job step failed"
    );
    assert_eq!(with_errors(&ws).len(), 1, "{:?}", with_errors(&ws));
    let notes = eventually("a JobCreationFailed Warning", || {
        Some(warnings(&c, "JobCreationFailed")).filter(|n| !n.is_empty())
    })
    .await;
    let everything = format!("{message} {notes:?}");
    for secret in ["s3cr3t-t0ken", "SASs1gnature"] {
        assert!(
            !everything.contains(secret),
            "{secret} leaked: {everything}"
        );
    }
    assert!(everything.contains("[redacted]"), "{everything}");
    assert!(c.job(NAME).is_none());

    c.server.clear_faults();
    c.touch(NAME, "example.com/retry", "1").await;
    eventually("the Job", || c.job(NAME)).await;
    let clean = eventually("no reconcile error left", || {
        c.workspace(NAME).filter(|w| with_errors(w).is_empty())
    })
    .await;
    assert_eq!(
        cond(&clean, C::JobStarted).map(|c| c.1),
        Some(reason::TUNING_JOB_PENDING.into())
    );
}

//! End to end on the fake apiserver: the seed tuning workspace from NodeClaim to Succeeded,
//! a re-run on input change, deletion, and an operator killed and restarted at every step.

mod common;

use common::{Cluster, cond, eventually, seed, state};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::events::v1::Event;
use kaito_core::api::ConditionType as C;
use kaito_core::api::names::FINALIZER;
use kaito_harness::Verb;
use kaito_operator::operator::OperatorConfig;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;

fn revision(job: &Job) -> Option<String> {
    job.metadata
        .annotations
        .as_ref()?
        .get("workspace.kaito.io/revision")
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_workspace_runs_to_succeeded_and_cleans_up_across_restarts() {
    let mut c = Cluster::start(OperatorConfig {
        image: "ghcr.io/kaito-rs/kaito:test".into(),
        ..OperatorConfig::default()
    })
    .await;
    let name = "workspace-tuning-phi-3";
    c.create(&seed()).await;

    // 1. Finalizer, revision 1 and one NodeClaim exactly as KAITO writes it.
    let claim = eventually("a NodeClaim", || c.claims().into_iter().next()).await;
    let labels = claim.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get("kaito.sh/workspace").map(String::as_str),
        Some(name)
    );
    assert_eq!(labels.get("app").map(String::as_str), Some("tuning-phi-3"));
    assert_eq!(
        claim
            .spec
            .resources
            .requests
            .get("storage")
            .map(|q| q.0.as_str()),
        Some("1024Gi")
    );
    let ws = eventually("finalizer and revision", || {
        c.workspace(name).filter(|w| {
            w.metadata
                .finalizers
                .iter()
                .flatten()
                .any(|f| f == FINALIZER)
                && w.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get("workspace.kaito.io/revision"))
                    .map(String::as_str)
                    == Some("1")
        })
    })
    .await;
    assert_eq!(
        ws.status.as_ref().and_then(|s| s.target_node_count),
        Some(1)
    );
    assert_eq!(
        cond(&ws, C::ResourceReady).map(|c| c.0),
        Some("False".into())
    );

    c.restart_operator().await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        c.claims().len(),
        1,
        "a restarted operator must not create a second NodeClaim"
    );

    // 2. Nodes come up: ResourceReady, then the Job with the expected spec.
    c.make_claims_ready();
    eventually("ResourceReady True", || {
        c.workspace(name)
            .filter(|w| cond(w, C::ResourceReady).is_some_and(|c| c.0 == "True"))
    })
    .await;
    let job = eventually("the tuning Job", || c.job(name)).await;
    assert_eq!(revision(&job).as_deref(), Some("1"));
    let pod = job.spec.clone().expect("spec").template.spec.expect("pod");
    let main = &pod.containers[0];
    assert_eq!(main.image.as_deref(), Some("ghcr.io/kaito-rs/kaito:test"));
    assert_eq!(
        main.args.as_ref().expect("args")[..2],
        ["tune".to_owned(), "--in-cluster".to_owned()]
    );
    let gpus = main
        .resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .and_then(|l| l.get("nvidia.com/gpu"))
        .map(|q| q.0.clone());
    assert_eq!(gpus.as_deref(), Some("1"), "Standard_NC6s_v3 has one GPU");
    assert!(
        pod.affinity.is_some(),
        "node affinity to the workspace's nodes"
    );
    assert!(
        c.server
            .store()
            .get::<k8s_openapi::api::core::v1::ConfigMap>("default", "qlora-params-template")
            .is_some(),
        "default config copied"
    );

    c.restart_operator().await;
    c.set_job_status(name, 1, 0);
    let running = eventually("Running", || {
        c.workspace(name)
            .filter(|w| state(w).as_deref() == Some("Running"))
    })
    .await;
    assert_eq!(
        cond(&running, C::JobStarted).map(|c| c.0),
        Some("True".into())
    );

    // 3. The Job succeeds.
    c.restart_operator().await;
    c.set_job_status(name, 0, 1);
    let done = eventually("Succeeded", || {
        c.workspace(name)
            .filter(|w| state(w).as_deref() == Some("Succeeded"))
    })
    .await;
    assert_eq!(
        cond(&done, C::WorkspaceSucceeded).map(|c| (c.0, c.1)),
        Some(("True".into(), "workspaceSucceeded".into()))
    );
    assert_eq!(cond(&done, C::JobStarted).map(|c| c.0), Some("True".into()));
    assert_eq!(
        c.server.request_count(Verb::Create, "Job"),
        1,
        "exactly one Job create across restarts"
    );
    assert_eq!(
        c.server.request_count(Verb::Create, "NodeClaim"),
        1,
        "exactly one NodeClaim create across restarts"
    );
    let events = c.server.store().list::<Event>(Some("default"));
    let reasons: Vec<String> = events.into_iter().filter_map(|e| e.reason).collect();
    for expected in [
        "NodeClaimCreated",
        "JobCreated",
        "ResourceReady",
        "WorkspaceSucceeded",
    ] {
        assert!(
            reasons.iter().any(|r| r == expected),
            "event {expected} missing from {reasons:?}"
        );
    }

    // 4. New input: revision 2 and a new Job.
    let patch =
        json!({ "tuning": { "input": { "urls": ["https://example.com/data/train.parquet"] } } });
    c.workspaces()
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("update input");
    c.restart_operator().await;
    let job2 = eventually("the revision-2 Job", || {
        c.job(name).filter(|j| revision(j).as_deref() == Some("2"))
    })
    .await;
    assert!(job2.metadata.deletion_timestamp.is_none());
    let ws = eventually("revision 2 annotation", || {
        c.workspace(name).filter(|w| {
            w.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("workspace.kaito.io/revision"))
                .map(String::as_str)
                == Some("2")
        })
    })
    .await;
    assert_ne!(
        state(&ws).as_deref(),
        Some("Succeeded"),
        "the old run's success does not count for revision 2"
    );
    assert_eq!(c.claims().len(), 1, "a re-run reuses the node");

    // 5. Delete: nodes deleted, then the finalizer removed and the workspace gone.
    c.workspaces()
        .delete(name, &DeleteParams::default())
        .await
        .expect("delete");
    c.restart_operator().await;
    eventually("NodeClaims deleted", || c.claims().is_empty().then_some(())).await;
    eventually("workspace gone", || {
        c.workspace(name).is_none().then_some(())
    })
    .await;
    c.kill_operator().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_failure_shows_the_provisioners_reason() {
    let c = Cluster::start(OperatorConfig::default()).await;
    let name = "workspace-tuning-phi-3";
    c.create(&seed()).await;
    let claim = eventually("a NodeClaim", || c.claims().into_iter().next()).await;
    let claim_name = claim.metadata.name.clone().expect("name");
    let quota = "Operation could not be completed as it results in exceeding approved standardNCSv3Family Cores quota";
    c.server
        .store()
        .update_with::<kaito_backends::provision::NodeClaim>("", &claim_name, |cl| {
            cl.status = Some(kaito_backends::provision::nodeclaim::NodeClaimStatus {
                conditions: vec![common::condition(
                    "Launched",
                    "False",
                    "QuotaExceeded",
                    quota,
                )],
                ..Default::default()
            });
        })
        .expect("claim status");
    let ws = eventually("ResourceReady False with the quota reason", || {
        c.workspace(name)
            .filter(|w| cond(w, C::ResourceReady).is_some_and(|c| c.1 == "QuotaExceeded"))
    })
    .await;
    let (status, _, message) = cond(&ws, C::ResourceReady).expect("condition");
    assert_eq!(status, "False");
    assert!(
        message.contains("quota") && message.contains(&claim_name),
        "{message}"
    );
    assert_eq!(state(&ws).as_deref(), Some("Pending"));
    assert!(c.job(name).is_none(), "no Job without nodes");
}

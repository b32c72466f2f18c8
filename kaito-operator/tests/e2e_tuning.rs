//! End to end on the fake apiserver: the seed tuning workspace from NodeClaim to Succeeded,
//! a re-run on input change, deletion, and an operator killed and restarted at every step.

mod common;

use common::{Cluster, cond, eventually, seed, state};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::events::v1::Event;
use kaito_core::api::ConditionType as C;
use kaito_core::api::names::FINALIZER;
use kaito_harness::{LaunchFailure, Verb};
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
    // The status is written after the reconcile's actions (finalizer, revision, annotations,
    // NodeClaim), so wait for it too.
    let ws = eventually("finalizer, revision and status", || {
        c.workspace(name).filter(|w| {
            cond(w, C::ResourceReady).is_some()
                && w.metadata
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

    // 2. Karpenter brings the node up one lifecycle stage at a time; the operator is restarted
    //    between stages and waits (ResourceReady False) until the last one.
    let claim_name = claim.metadata.name.clone().expect("claim name");
    assert_eq!(c.karpenter.step(), 1, "launch");
    let launched = c.claims().remove(0);
    let launched_status = launched.status.clone().expect("status");
    assert!(
        launched_status
            .provider_id
            .as_deref()
            .is_some_and(|p| p.starts_with("azure:///subscriptions/")),
        "{launched_status:?}"
    );
    assert!(
        launched
            .condition("Launched")
            .is_some_and(|c| c.status == "True")
    );
    let waiting = eventually("ResourceReady waiting for registration", || {
        c.workspace(name).filter(|w| {
            cond(w, C::ResourceReady).is_some_and(|c| {
                c.0 == "False" && c.2.contains(&claim_name) && c.2.contains("awaiting")
            })
        })
    })
    .await;
    assert_eq!(state(&waiting).as_deref(), Some("Pending"));
    c.restart_operator().await;
    assert_eq!(c.karpenter.step(), 1, "register");
    let node = c.nodes().into_iter().next().expect("the simulated node");
    let node_name = node.metadata.name.clone().expect("node name");
    let node_labels = node.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        node_labels
            .get("node.kubernetes.io/instance-type")
            .map(String::as_str),
        Some("Standard_NC6s_v3")
    );
    assert_eq!(
        node_labels.get("kaito.sh/workspace").map(String::as_str),
        Some(name)
    );
    assert!(
        node.spec
            .as_ref()
            .and_then(|s| s.provider_id.as_deref())
            .is_some_and(|p| p.contains(&claim_name))
    );
    assert_eq!(
        node.status
            .as_ref()
            .and_then(|s| s.capacity.as_ref())
            .and_then(|c| c.get("nvidia.com/gpu"))
            .map(|q| q.0.as_str()),
        Some("1"),
        "Standard_NC6s_v3 has one GPU"
    );
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        c.workspace(name)
            .is_some_and(|w| cond(&w, C::ResourceReady).is_some_and(|c| c.0 == "False")),
        "not ready before the NodeClaim is Initialized"
    );
    assert!(c.job(name).is_none(), "no Job before the node is ready");
    c.restart_operator().await;
    assert_eq!(c.karpenter.step(), 1, "initialize");
    assert!(c.claims()[0].is_ready());
    let ready = eventually("ResourceReady True", || {
        c.workspace(name)
            .filter(|w| cond(w, C::ResourceReady).is_some_and(|c| c.0 == "True"))
    })
    .await;
    assert_eq!(
        ready.status.as_ref().and_then(|s| s.worker_nodes.clone()),
        Some(vec![node_name.clone()])
    );
    eventually("the accelerator label KAITO adds", || {
        c.nodes().into_iter().find(|n| {
            n.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("accelerator"))
                .map(String::as_str)
                == Some("nvidia")
        })
    })
    .await;

    // 3. The tuning Job with the expected spec.
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

    // The Job controller starts a pod; the scheduler can only place it on the workspace's
    // node (tolerations for the sku=gpu taint, affinity to the workspace's labels).
    c.restart_operator().await;
    assert!(c.jobs.step() > 0);
    let pods = c.job_pods(name);
    assert_eq!(pods.len(), 1);
    assert_eq!(
        pods[0].spec.as_ref().and_then(|s| s.node_name.clone()),
        Some(node_name.clone()),
        "the tuning pod runs on the workspace's node"
    );
    let running = eventually("Running", || {
        c.workspace(name)
            .filter(|w| state(w).as_deref() == Some("Running"))
    })
    .await;
    assert_eq!(
        cond(&running, C::JobStarted).map(|c| c.0),
        Some("True".into())
    );

    // 4. The Job succeeds; `kaito tune`'s termination message is the progress shown.
    c.restart_operator().await;
    c.jobs
        .succeed_with_message("default", name, Some("trained 3 steps, final loss 1.25"))
        .expect("succeed");
    let done = eventually("Succeeded", || {
        c.workspace(name)
            .filter(|w| state(w).as_deref() == Some("Succeeded"))
    })
    .await;
    assert_eq!(
        cond(&done, C::WorkspaceSucceeded).map(|c| (c.0, c.1)),
        Some(("True".into(), "workspaceSucceeded".into()))
    );
    assert!(
        cond(&done, C::WorkspaceSucceeded).is_some_and(|c| c.2.contains("final loss 1.25")),
        "{:?}",
        cond(&done, C::WorkspaceSucceeded)
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

    // 5. New input: revision 2 and a new Job, which the Job controller starts again.
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
    assert_eq!(c.server.request_count(Verb::Create, "Job"), 2);
    assert!(c.jobs.step() > 0);
    eventually("revision 2 running", || {
        c.workspace(name)
            .filter(|w| state(w).as_deref() == Some("Running"))
    })
    .await;
    let pods = c.job_pods(name);
    assert_eq!(pods.len(), 1, "the old Job's pods went with it: {pods:?}");
    assert_eq!(
        pods[0].spec.as_ref().and_then(|s| s.node_name.clone()),
        Some(node_name.clone())
    );

    // 6. Delete: NodeClaims deleted (Karpenter drains them: node gone, finalizer off), then the
    //    workspace's finalizer removed and the workspace gone.
    c.workspaces()
        .delete(name, &DeleteParams::default())
        .await
        .expect("delete");
    c.restart_operator().await;
    eventually("NodeClaims deleted", || {
        c.karpenter.step();
        c.claims().is_empty().then_some(())
    })
    .await;
    assert!(c.nodes().is_empty(), "Karpenter deleted the node");
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
    c.karpenter.fail_next_launch(LaunchFailure::quota());
    c.create(&seed()).await;
    let claim = eventually("a NodeClaim", || c.claims().into_iter().next()).await;
    let claim_name = claim.metadata.name.clone().expect("name");
    assert_eq!(
        c.karpenter.settle(),
        1,
        "one failed launch, then nothing moves"
    );
    assert!(c.nodes().is_empty());
    let ws = eventually("ResourceReady False with the provisioner's reason", || {
        c.workspace(name)
            .filter(|w| cond(w, C::ResourceReady).is_some_and(|c| c.1 == "LaunchFailed"))
    })
    .await;
    let (status, _, message) = cond(&ws, C::ResourceReady).expect("condition");
    assert_eq!(status, "False");
    assert!(
        message.contains("quota") && message.contains(&claim_name),
        "{message}"
    );
    assert_eq!(
        cond(&ws, C::NodeClaimReady).map(|c| (c.0, c.1)),
        Some(("False".into(), "LaunchFailed".into()))
    );
    assert_eq!(state(&ws).as_deref(), Some("Pending"));
    let events = c.server.store().list::<Event>(Some("default"));
    assert!(
        events.iter().any(|e| e.type_.as_deref() == Some("Warning")
            && e.reason.as_deref() == Some("LaunchFailed")),
        "a Warning event with the provisioner's reason"
    );
    // KAITO treats a failed launch as terminal: no retry loop of new NodeClaims, no Job.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(c.server.request_count(Verb::Create, "NodeClaim"), 1);
    assert!(c.job(name).is_none(), "no Job without nodes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insufficient_capacity_on_every_launch_is_terminal() {
    let c = Cluster::start(OperatorConfig::default()).await;
    let name = "workspace-tuning-phi-3";
    c.karpenter.fail_launches(Some(LaunchFailure::capacity()));
    c.create(&seed()).await;
    eventually("a NodeClaim", || c.claims().into_iter().next()).await;
    let ws = eventually("ResourceReady False InsufficientCapacity", || {
        c.karpenter.step();
        c.workspace(name)
            .filter(|w| cond(w, C::ResourceReady).is_some_and(|c| c.1 == "InsufficientCapacity"))
    })
    .await;
    assert!(
        cond(&ws, C::ResourceReady).is_some_and(|c| c.2.contains("insufficient capacity")),
        "{:?}",
        cond(&ws, C::ResourceReady)
    );
    assert_eq!(c.claims().len(), 1);
    assert!(c.job(name).is_none());
}

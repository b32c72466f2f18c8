//! The simulators: Karpenter (NodeClaim -> Node, launch failures, termination), Job
//! (pods, scheduling, success, failure and retry) and StatefulSet.

mod common;

use std::time::Duration;

use common::{eventually, server};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, Pod};
use kaito_harness::{JobSim, KarpenterSim, LaunchFailure, ResourceKey, StatefulSetSim};
use kube::api::{Api, DeleteParams, DynamicObject, GroupVersionKind, ListParams, PostParams};
use kube::discovery::ApiResource;
use serde_json::{Value, json};

fn nodeclaim_api(client: kube::Client) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("karpenter.sh", "v1", "NodeClaim"),
        "nodeclaims",
    );
    Api::all_with(client, &ar)
}

/// A NodeClaim shaped as KAITO creates it (backends.md §2.2).
fn nodeclaim(name: &str, sku: &str) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "karpenter.sh/v1", "kind": "NodeClaim",
        "metadata": {"name": name, "namespace": "default",
            "labels": {"karpenter.sh/nodepool": "kaito", "kaito.sh/workspace": "ws", "kaito.sh/workspacenamespace": "default", "apps": "phi"},
            "annotations": {"karpenter.sh/do-not-disrupt": "true"}},
        "spec": {
            "nodeClassRef": {"group": "kaito.sh", "kind": "KaitoNodeClass", "name": "default"},
            "taints": [{"key": "sku", "value": "gpu", "effect": "NoSchedule"}],
            "requirements": [
                {"key": "karpenter.sh/nodepool", "operator": "In", "values": ["kaito"]},
                {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": [sku]},
                {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}],
            "resources": {"requests": {"storage": "1024Gi"}}}
    }))
    .unwrap()
}

fn cond(obj: &Value, kind: &str) -> Option<(String, String)> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
        .map(|c| {
            (
                c["status"].as_str().unwrap_or("").to_string(),
                c["reason"].as_str().unwrap_or("").to_string(),
            )
        })
}

#[tokio::test]
async fn karpenter_step_mode_launches_registers_initializes_and_terminates() {
    let (s, client) = server().await;
    let api = nodeclaim_api(client.clone());
    let created = api
        .create(
            &PostParams::default(),
            &nodeclaim("ws0123abcd", "Standard_NC48ads_A100_v4"),
        )
        .await
        .unwrap();
    assert_eq!(
        created.metadata.namespace, None,
        "cluster-scoped: namespace dropped"
    );
    let sim = KarpenterSim::new(s.store());
    let get = || {
        s.store()
            .get_raw(&ResourceKey::nodeclaims(), "", "ws0123abcd")
            .unwrap()
    };

    assert_eq!(sim.step(), 1);
    assert_eq!(cond(&get(), "Launched").unwrap().0, "True");
    assert!(
        get()["status"]["providerID"]
            .as_str()
            .unwrap()
            .starts_with("azure:///")
    );
    assert_eq!(cond(&get(), "Registered").unwrap().0, "Unknown");
    assert_eq!(sim.step(), 1);
    assert_eq!(cond(&get(), "Registered").unwrap().0, "True");
    let node_name = get()["status"]["nodeName"].as_str().unwrap().to_string();
    assert_eq!(sim.step(), 1);
    assert_eq!(cond(&get(), "Initialized").unwrap().0, "True");
    assert_eq!(cond(&get(), "Ready").unwrap().0, "True");
    assert_eq!(sim.step(), 0, "steady state");

    let node: Node = Api::<Node>::all(client.clone())
        .get(&node_name)
        .await
        .unwrap();
    let labels = node.metadata.labels.clone().unwrap();
    assert_eq!(
        labels["node.kubernetes.io/instance-type"],
        "Standard_NC48ads_A100_v4"
    );
    assert_eq!(labels["kaito.sh/workspace"], "ws");
    assert_eq!(labels["karpenter.sh/nodepool"], "kaito");
    assert_eq!(labels["kubernetes.io/os"], "linux");
    assert_eq!(labels["karpenter.sh/initialized"], "true");
    let status = node.status.unwrap();
    assert_eq!(status.capacity.unwrap()["nvidia.com/gpu"].0, "2");
    assert_eq!(status.conditions.unwrap()[0].status, "True");
    assert_eq!(node.spec.unwrap().taints.unwrap()[0].key, "sku");

    api.delete("ws0123abcd", &DeleteParams::default())
        .await
        .unwrap();
    assert!(
        s.store()
            .get_raw(&ResourceKey::nodeclaims(), "", "ws0123abcd")
            .is_some(),
        "held by the termination finalizer"
    );
    assert_eq!(sim.step(), 1);
    assert!(
        s.store()
            .get_raw(&ResourceKey::nodeclaims(), "", "ws0123abcd")
            .is_none()
    );
    assert!(
        s.store().get::<Node>("", &node_name).is_none(),
        "node deleted with its claim"
    );
}

#[tokio::test]
async fn karpenter_launch_failures() {
    let (s, client) = server().await;
    let api = nodeclaim_api(client);
    let sim = KarpenterSim::new(s.store()).with_gpu_count(|_| 4);
    sim.fail_next_launch(LaunchFailure::quota());
    api.create(
        &PostParams::default(),
        &nodeclaim("wsquota", "Standard_NC24ads_A100_v4"),
    )
    .await
    .unwrap();
    assert_eq!(sim.settle(), 1, "one failed launch, then stuck");
    let nc = s
        .store()
        .get_raw(&ResourceKey::nodeclaims(), "", "wsquota")
        .unwrap();
    assert_eq!(
        cond(&nc, "Launched").unwrap(),
        ("False".to_string(), "LaunchFailed".to_string())
    );
    let msg = nc["status"]["conditions"][0]["message"].as_str().unwrap();
    assert!(msg.contains("quota"), "{msg}");
    assert!(s.store().list::<Node>(None).is_empty());

    sim.fail_launches(Some(LaunchFailure::capacity()));
    api.create(
        &PostParams::default(),
        &nodeclaim("wsice", "Standard_NC24ads_A100_v4"),
    )
    .await
    .unwrap();
    sim.settle();
    let nc = s
        .store()
        .get_raw(&ResourceKey::nodeclaims(), "", "wsice")
        .unwrap();
    assert!(
        nc["status"]["conditions"][0]["message"]
            .as_str()
            .unwrap()
            .contains("all requested instance types were unavailable during launch")
    );

    sim.fail_launches(None);
    api.create(
        &PostParams::default(),
        &nodeclaim("wsok", "Standard_NC24ads_A100_v4"),
    )
    .await
    .unwrap();
    sim.settle();
    let nodes = s.store().list::<Node>(None);
    assert_eq!(nodes.len(), 1);
    assert_eq!(
        nodes[0]
            .status
            .as_ref()
            .unwrap()
            .allocatable
            .as_ref()
            .unwrap()["nvidia.com/gpu"]
            .0,
        "4"
    );
}

#[tokio::test]
async fn karpenter_run_mode() {
    let (s, client) = server().await;
    let sim = KarpenterSim::new(s.store());
    let _running = sim.spawn(Duration::from_millis(10));
    nodeclaim_api(client)
        .create(
            &PostParams::default(),
            &nodeclaim("wsrun", "Standard_NC24ads_A100_v4"),
        )
        .await
        .unwrap();
    let store = s.store();
    eventually(5, "NodeClaim Ready", || {
        store
            .get_raw(&ResourceKey::nodeclaims(), "", "wsrun")
            .and_then(|nc| cond(&nc, "Ready"))
            .is_some_and(|(st, _)| st == "True")
    })
    .await;
}

fn tuning_job(name: &str) -> Job {
    serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": "default", "labels": {"kaito.sh/workspace": "ws"}},
        "spec": {"template": {
            "metadata": {"labels": {"kaito.sh/workspace": "ws"}},
            "spec": {"restartPolicy": "Never",
                "containers": [{"name": "ws", "image": "kaito:dev"}],
                "tolerations": [{"key": "sku", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}],
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "kaito.sh/workspace", "operator": "In", "values": ["ws"]}]}]}}}}}}
    }))
    .unwrap()
}

#[tokio::test]
async fn job_sim_waits_for_a_node_runs_and_succeeds() {
    let (s, client) = server().await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    jobs.create(&PostParams::default(), &tuning_job("ws"))
        .await
        .unwrap();
    let sim = JobSim::new(s.store());
    sim.step();
    let pod = &pods
        .list(&ListParams::default().labels("batch.kubernetes.io/job-name=ws"))
        .await
        .unwrap()
        .items[0];
    assert_eq!(
        pod.status.as_ref().unwrap().phase.as_deref(),
        Some("Pending"),
        "no node yet"
    );
    assert_eq!(
        pod.metadata.labels.as_ref().unwrap()["kaito.sh/workspace"],
        "ws"
    );
    let st = jobs.get("ws").await.unwrap().status.unwrap();
    assert_eq!((st.active, st.ready), (Some(1), Some(0)));

    let karpenter = KarpenterSim::new(s.store());
    nodeclaim_api(client.clone())
        .create(
            &PostParams::default(),
            &nodeclaim("wsnode", "Standard_NC24ads_A100_v4"),
        )
        .await
        .unwrap();
    karpenter.settle();
    sim.step();
    let pod = &pods
        .list(&ListParams::default().labels("job-name=ws"))
        .await
        .unwrap()
        .items[0];
    assert_eq!(
        pod.status.as_ref().unwrap().phase.as_deref(),
        Some("Running")
    );
    assert!(
        pod.spec
            .as_ref()
            .unwrap()
            .node_name
            .as_deref()
            .unwrap()
            .contains("wsnode")
    );
    assert_eq!(jobs.get("ws").await.unwrap().status.unwrap().ready, Some(1));

    sim.succeed_with_message("default", "ws", Some("{\"loss\":0.1}"))
        .unwrap();
    let st = jobs.get("ws").await.unwrap().status.unwrap();
    assert_eq!((st.succeeded, st.active), (Some(1), None));
    assert!(st.completion_time.is_some());
    assert!(
        st.conditions
            .unwrap()
            .iter()
            .any(|c| c.type_ == "Complete" && c.status == "True")
    );
    assert_eq!(sim.step(), 0, "a finished job gets no new pods");
}

#[tokio::test]
async fn job_sim_failure_with_retry_then_terminal_failure() {
    let (s, client) = server().await;
    let jobs: Api<Job> = Api::namespaced(client, "default");
    let node: Node = serde_json::from_value(
        json!({"metadata": {"name": "n", "labels": {"kaito.sh/workspace": "ws"}},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
    )
    .unwrap();
    s.store().create(&node).unwrap();
    jobs.create(&PostParams::default(), &tuning_job("retry"))
        .await
        .unwrap();
    let sim = JobSim::new(s.store());
    sim.step();
    sim.fail_pod("default", "retry", true, Some("OOM")).unwrap();
    assert_eq!(
        jobs.get("retry").await.unwrap().status.unwrap().failed,
        Some(1)
    );
    sim.step();
    sim.succeed("default", "retry").unwrap();
    let st = jobs.get("retry").await.unwrap().status.unwrap();
    assert_eq!((st.failed, st.succeeded), (Some(1), Some(1)));

    jobs.create(&PostParams::default(), &tuning_job("dead"))
        .await
        .unwrap();
    sim.step();
    sim.fail_pod("default", "dead", false, None).unwrap();
    let st = jobs.get("dead").await.unwrap().status.unwrap();
    assert!(
        st.conditions
            .unwrap()
            .iter()
            .any(|c| c.type_ == "Failed" && c.status == "True")
    );
    assert_eq!(sim.step(), 0, "no retry after a terminal failure");
    assert!(
        sim.succeed("default", "dead").is_err(),
        "no active pod left"
    );

    jobs.delete("retry", &DeleteParams::background())
        .await
        .unwrap();
    assert!(
        s.store().list::<Pod>(Some("default")).iter().all(|p| !p
            .metadata
            .name
            .as_deref()
            .unwrap()
            .starts_with("retry")),
        "pods collected with their job"
    );
}

#[tokio::test]
async fn statefulset_sim_marks_replicas_ready() {
    let (s, client) = server().await;
    let node: Node = serde_json::from_value(json!({"metadata": {"name": "n"}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}})).unwrap();
    s.store().create(&node).unwrap();
    let sts: StatefulSet = serde_json::from_value(json!({"metadata": {"name": "ws", "namespace": "default"},
        "spec": {"replicas": 2, "serviceName": "ws-headless", "selector": {"matchLabels": {"app": "ws"}},
                 "template": {"metadata": {"labels": {"app": "ws"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}})).unwrap();
    let api: Api<StatefulSet> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &sts).await.unwrap();
    let sim = StatefulSetSim::new(s.store());
    let _run = sim.spawn(Duration::from_millis(5));
    let store = s.store();
    eventually(5, "2 ready replicas", || {
        store
            .get::<StatefulSet>("default", "ws")
            .and_then(|s| s.status)
            .is_some_and(|st| st.ready_replicas == Some(2))
    })
    .await;
    assert!(store.get::<Pod>("default", "ws-1").is_some());
}

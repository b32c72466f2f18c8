//! End to end: an inference workspace with adapters gets its StatefulSet and Services, then
//! InferenceReady once the pod is ready.

mod common;

use common::{Cluster, cond, eventually, state};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kaito_core::api::ConditionType as C;
use kaito_core::api::{
    AdapterSpec, DataSource, InferenceSpec, PresetSpec, ResourceSpec, WorkspaceV1Beta1,
};
use kaito_operator::operator::OperatorConfig;

fn inference_ws() -> WorkspaceV1Beta1 {
    let mut ws = WorkspaceV1Beta1::new("default", "phi-3-chat");
    ws.metadata.annotations = Some([("kaito.sh/enablelb".to_owned(), "True".to_owned())].into());
    ws.resource = Some(ResourceSpec {
        instance_type: Some("Standard_NC6s_v3".into()),
        label_selector: LabelSelector {
            match_labels: Some([("apps".to_owned(), "phi-3".to_owned())].into()),
            match_expressions: None,
        },
        ..Default::default()
    });
    let adapter = |name: &str, image: &str, strength: &str| AdapterSpec {
        source: Some(DataSource {
            name: Some(name.into()),
            image: Some(image.into()),
            ..Default::default()
        }),
        strength: Some(strength.into()),
    };
    ws.inference = Some(InferenceSpec {
        preset: Some(PresetSpec {
            name: "phi-3-mini-128k-instruct".into(),
            ..Default::default()
        }),
        adapters: Some(vec![
            adapter("dolly", "myacr.azurecr.io/adapter-dolly:0.0.1", "0.6"),
            adapter("sql", "myacr.azurecr.io/adapter-sql:1", "1.0"),
        ]),
        ..Default::default()
    });
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inference_with_adapters_gets_statefulset_services_and_becomes_ready() {
    let mut c = Cluster::start(OperatorConfig::default()).await;
    let name = "phi-3-chat";
    c.create(&inference_ws()).await;
    eventually("a NodeClaim", || c.claims().into_iter().next()).await;
    assert_eq!(c.karpenter.settle(), 3, "launched, registered, initialized");
    let node_name = c.nodes()[0].metadata.name.clone().expect("node name");

    let sts: StatefulSet =
        eventually("the StatefulSet", || c.server.store().get("default", name)).await;
    let spec = sts.spec.clone();
    assert_eq!(spec.service_name.as_deref(), Some("phi-3-chat-headless"));
    assert_eq!(
        sts.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("workspace.kaito.io/revision"))
            .map(String::as_str),
        Some("1")
    );
    let container = &spec.template.spec.expect("pod").containers[0];
    let args = container.args.clone().expect("args");
    assert_eq!(
        args[..3],
        [
            "serve".to_owned(),
            "--preset".to_owned(),
            "phi-3-mini-128k-instruct".to_owned()
        ]
    );
    assert!(
        args.windows(2).any(|w| w
            == [
                "--adapter",
                "dolly=oci://myacr.azurecr.io/adapter-dolly:0.0.1"
            ]),
        "{args:?}"
    );
    assert!(
        args.windows(2)
            .any(|w| w == ["--adapter-strength", "dolly=0.6"]),
        "{args:?}"
    );
    assert!(
        args.windows(2)
            .any(|w| w == ["--adapter", "sql=oci://myacr.azurecr.io/adapter-sql:1"]),
        "{args:?}"
    );
    let probe = container
        .readiness_probe
        .as_ref()
        .and_then(|p| p.http_get.as_ref())
        .expect("readiness probe");
    assert_eq!(probe.path.as_deref(), Some("/health"));

    let svc: Service = eventually("the Service", || c.server.store().get("default", name)).await;
    let svc_spec = svc.spec.expect("spec");
    assert_eq!(svc_spec.type_.as_deref(), Some("LoadBalancer"));
    let port = &svc_spec.ports.expect("ports")[0];
    assert_eq!(port.port, 80);
    assert_eq!(
        svc_spec
            .selector
            .expect("selector")
            .get("statefulset.kubernetes.io/pod-name")
            .map(String::as_str),
        Some("phi-3-chat-0")
    );
    let headless: Service = eventually("the headless Service", || {
        c.server.store().get("default", "phi-3-chat-headless")
    })
    .await;
    assert_eq!(
        headless.spec.and_then(|s| s.cluster_ip).as_deref(),
        Some("None")
    );

    let pending = eventually("NotReady", || {
        c.workspace(name)
            .filter(|w| state(w).as_deref() == Some("NotReady"))
    })
    .await;
    assert_eq!(
        cond(&pending, C::InferenceReady).map(|c| c.0),
        Some("False".into())
    );

    c.restart_operator().await;
    assert!(c.statefulsets.step() > 0);
    let pod: Pod = c
        .server
        .store()
        .get("default", "phi-3-chat-0")
        .expect("the StatefulSet's pod");
    assert_eq!(
        pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        Some(node_name),
        "the inference pod runs on the workspace's GPU node"
    );
    let ready = eventually("InferenceReady", || {
        c.workspace(name)
            .filter(|w| cond(w, C::InferenceReady).is_some_and(|c| c.0 == "True"))
    })
    .await;
    assert_eq!(state(&ready).as_deref(), Some("Ready"));
    assert_eq!(
        cond(&ready, C::WorkspaceSucceeded).map(|c| c.0),
        Some("True".into())
    );
    assert_eq!(c.claims().len(), 1);
    c.kill_operator().await;
}

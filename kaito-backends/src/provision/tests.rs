//! The provisioners against the fake apiserver: claims exactly as KAITO writes them, the
//! three-step readiness, launch failures, idempotency, deletion, and BYO GPU checks.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, NodeCondition, NodeStatus};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kaito_core::traits::{
    NodeProvisioner, NodeReadiness, NodeRequirements, NodeTaint, WorkspaceRef,
};
use kaito_harness::FakeApiServer;

use super::nodeclaim::{NodeClaimStatus, build_claim, claim_name};
use super::*;

fn req(count: u32) -> NodeRequirements {
    NodeRequirements {
        workspace: WorkspaceRef {
            namespace: "default".into(),
            name: "workspace-tuning-phi-3".into(),
        },
        instance_type: Some("Standard_NC6s_v3".into()),
        count,
        labels: BTreeMap::from([("app".to_owned(), "tuning-phi-3".to_owned())]),
        taints: vec![NodeTaint {
            key: "sku".into(),
            value: "gpu".into(),
            effect: "NoSchedule".into(),
        }],
        os_disk_gib: 1024,
        gpu_memory_bytes: None,
        node_image_family: None,
    }
}

fn cond(type_: &str, status: &str, reason: &str, message: &str) -> Condition {
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: None,
        last_transition_time: Time(Timestamp::from_second(1_800_000_000).expect("valid")),
    }
}

fn node(name: &str, labels: &[(&str, &str)], ready: bool, gpus: u32) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            ..Default::default()
        },
        status: Some(NodeStatus {
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..Default::default()
            }]),
            capacity: Some(BTreeMap::from([(
                GPU_RESOURCE.to_owned(),
                Quantity(gpus.to_string()),
            )])),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn set_claim_status(server: &FakeApiServer, name: &str, status: NodeClaimStatus) {
    server
        .store()
        .update_with::<NodeClaim>("", name, |c| c.status = Some(status))
        .expect("claim status");
}

#[test]
fn claim_is_exactly_kaitos_on_azure_and_aws() {
    let r = req(1);
    let name = claim_name(&r.workspace, "nonce");
    assert!(
        name.starts_with("ws")
            && name.len() == 11
            && name[2..].chars().all(|c| c.is_ascii_hexdigit()),
        "{name}"
    );
    let json =
        serde_json::to_value(build_claim(&r, &name, &ClaimSettings::default())).expect("json");
    let expected = serde_json::json!({
        "metadata": {
            "name": name,
            "labels": {
                "app": "tuning-phi-3",
                "karpenter.sh/nodepool": "kaito",
                "kaito.sh/workspace": "workspace-tuning-phi-3",
                "kaito.sh/workspacenamespace": "default"
            },
            "annotations": { "karpenter.sh/do-not-disrupt": "true", "kaito.sh/node-image-family": "ubuntu" }
        },
        "spec": {
            "requirements": [
                { "key": "karpenter.sh/nodepool", "operator": "In", "values": ["kaito"] },
                { "key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["Standard_NC6s_v3"] },
                { "key": "kubernetes.io/os", "operator": "In", "values": ["linux"] },
                { "key": "karpenter.azure.com/sku-name", "operator": "In", "values": ["Standard_NC6s_v3"] }
            ],
            "nodeClassRef": { "group": "kaito.sh", "kind": "KaitoNodeClass", "name": "default" },
            "taints": [{ "key": "sku", "value": "gpu", "effect": "NoSchedule" }],
            "resources": { "requests": { "storage": "1024Gi" } }
        }
    });
    assert_eq!(json, expected);
    let aws = ClaimSettings {
        cloud: CloudProvider::Aws,
        ..ClaimSettings::default()
    };
    let claim = build_claim(&r, &name, &aws);
    assert_eq!(
        (
            claim.spec.node_class_ref.group.as_str(),
            claim.spec.node_class_ref.kind.as_str()
        ),
        ("karpenter.k8s.aws", "EC2NodeClass")
    );
    let last = claim.spec.requirements.last().expect("requirement");
    assert_eq!(
        (
            last.key.as_str(),
            last.operator.as_str(),
            last.values.as_slice()
        ),
        (
            "karpenter.k8s.aws/instance-gpu-count",
            "Gt",
            &["0".to_owned()][..]
        )
    );
}

#[tokio::test]
async fn ensure_is_idempotent_and_readiness_walks_the_three_steps() {
    let server = FakeApiServer::start().await.expect("server");
    let p = KarpenterProvisioner::new(server.client(), ClaimSettings::default());
    let r = req(1);
    p.ensure_nodes(&r).await.expect("ensure");
    p.ensure_nodes(&r).await.expect("ensure again");
    let claims = p.claims(&r.workspace).await.expect("list");
    assert_eq!(
        claims.len(),
        1,
        "a second ensure must not duplicate the claim"
    );
    let name = claims[0].metadata.name.clone().expect("name");

    let pending = p.readiness(&r).await.expect("readiness");
    assert!(
        matches!(&pending, NodeReadiness::Pending { reason, .. } if reason == "NodeClaimNotReady"),
        "{pending:?}"
    );

    let ready_claim = |node: &str| NodeClaimStatus {
        node_name: Some(node.into()),
        provider_id: Some("azure:///x".into()),
        conditions: ["Launched", "Registered", "Initialized", "Ready"]
            .iter()
            .map(|t| cond(t, "True", "", ""))
            .collect(),
    };
    set_claim_status(&server, &name, ready_claim("aks-node-0"));
    let r1 = p.readiness(&r).await.expect("readiness");
    assert!(
        matches!(&r1, NodeReadiness::Pending { reason, message } if reason == "NodeNotReady" && message.contains("aks-node-0")),
        "{r1:?}"
    );

    let it = ("node.kubernetes.io/instance-type", "Standard_NC6s_v3");
    server
        .store()
        .create(&node("aks-node-0", &[it], true, 0))
        .expect("node");
    let r2 = p.readiness(&r).await.expect("readiness");
    assert!(
        matches!(&r2, NodeReadiness::Pending { reason, .. } if reason == "NodePluginsNotReady"),
        "{r2:?}"
    );
    let labelled: Node = server.store().get("", "aks-node-0").expect("node");
    assert_eq!(
        labelled
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("accelerator"))
            .map(String::as_str),
        Some("nvidia")
    );

    server
        .store()
        .update_with::<Node>("", "aks-node-0", |n| {
            n.status.as_mut().expect("status").capacity = Some(BTreeMap::from([(
                GPU_RESOURCE.to_owned(),
                Quantity("1".into()),
            )]));
        })
        .expect("gpu");
    assert_eq!(
        p.readiness(&r).await.expect("ready"),
        NodeReadiness::Ready {
            nodes: vec!["aks-node-0".into()]
        }
    );
    let listed = p.list_nodes(&r.workspace).await.expect("list");
    assert_eq!(listed[0].node_name.as_deref(), Some("aks-node-0"));
    assert_eq!(listed[0].instance_type.as_deref(), Some("Standard_NC6s_v3"));
}

#[tokio::test]
async fn quota_failure_is_terminal_with_the_providers_reason() {
    let server = FakeApiServer::start().await.expect("server");
    let p = KarpenterProvisioner::new(server.client(), ClaimSettings::default());
    let r = req(1);
    p.ensure_nodes(&r).await.expect("ensure");
    let name = p.claims(&r.workspace).await.expect("list")[0]
        .metadata
        .name
        .clone()
        .expect("name");
    let quota = "Operation could not be completed as it results in exceeding approved Total Regional Cores quota";
    set_claim_status(
        &server,
        &name,
        NodeClaimStatus {
            conditions: vec![cond("Launched", "False", "QuotaExceeded", quota)],
            ..Default::default()
        },
    );
    match p.readiness(&r).await.expect("readiness") {
        NodeReadiness::Failed { reason, message } => {
            assert_eq!(reason, "QuotaExceeded");
            assert!(
                message.contains(&name) && message.contains("quota"),
                "{message}"
            );
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    // Karpenter's retrying LaunchFailed (Unknown) is not terminal.
    set_claim_status(
        &server,
        &name,
        NodeClaimStatus {
            conditions: vec![cond("Launched", "Unknown", "LaunchFailed", "throttled")],
            ..Default::default()
        },
    );
    assert!(
        matches!(p.readiness(&r).await.expect("readiness"), NodeReadiness::Pending { reason, .. } if reason == "LaunchFailed")
    );
}

#[tokio::test]
async fn delete_removes_only_this_workspaces_claims_and_is_repeatable() {
    let server = FakeApiServer::start().await.expect("server");
    let p = KarpenterProvisioner::new(server.client(), ClaimSettings::default());
    let mine = req(2);
    let mut other = req(1);
    other.workspace.name = "other".into();
    p.ensure_nodes(&mine).await.expect("ensure");
    p.ensure_nodes(&other).await.expect("ensure other");
    assert_eq!(p.claims(&mine.workspace).await.expect("list").len(), 2);
    p.delete_nodes(&mine.workspace).await.expect("delete");
    p.delete_nodes(&mine.workspace).await.expect("delete twice");
    assert!(p.claims(&mine.workspace).await.expect("list").is_empty());
    assert_eq!(p.claims(&other.workspace).await.expect("list").len(), 1);
}

#[tokio::test]
async fn ensure_without_instance_type_is_an_invalid_input_error() {
    let server = FakeApiServer::start().await.expect("server");
    let p = KarpenterProvisioner::new(server.client(), ClaimSettings::default());
    let mut r = req(1);
    r.instance_type = None;
    let err = p.ensure_nodes(&r).await.expect_err("no sku");
    assert_eq!(err.kind(), kaito_core::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("instanceType"), "{err}");
}

#[tokio::test]
async fn byo_checks_selector_readiness_and_gpu_memory() {
    let server = FakeApiServer::start().await.expect("server");
    let p = ByoProvisioner::new(server.client());
    let mut r = req(1);
    r.instance_type = None;
    r.gpu_memory_bytes = Some(20 << 30);
    let pending = p.readiness(&r).await.expect("readiness");
    assert!(
        matches!(&pending, NodeReadiness::Pending { reason, .. } if reason == REASON_NO_MATCHING_NODES),
        "{pending:?}"
    );

    let labels = [
        ("app", "tuning-phi-3"),
        (LABEL_GPU_PRODUCT, "Tesla-V100"),
        (LABEL_GPU_COUNT, "1"),
        (LABEL_GPU_MEMORY, "16384"),
    ];
    server
        .store()
        .create(&node("byo-0", &labels, true, 1))
        .expect("node");
    server
        .store()
        .create(&node("unrelated", &[("app", "other")], true, 8))
        .expect("node");
    match p.readiness(&r).await.expect("readiness") {
        NodeReadiness::Failed { reason, message } => {
            assert_eq!(reason, REASON_INSUFFICIENT_GPU_MEMORY);
            assert!(
                message.contains("16384 MiB")
                    && message.contains("20480 MiB")
                    && message.contains("Tesla-V100"),
                "{message}"
            );
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    r.gpu_memory_bytes = Some(10 << 30);
    assert_eq!(
        p.readiness(&r).await.expect("ready"),
        NodeReadiness::Ready {
            nodes: vec!["byo-0".into()]
        }
    );
    p.ensure_nodes(&r).await.expect("no-op");
    p.delete_nodes(&r.workspace).await.expect("no-op");
    assert!(
        server.store().get::<Node>("", "byo-0").is_some(),
        "BYO never deletes nodes"
    );
    assert!(
        server.store().list::<NodeClaim>(None).is_empty(),
        "BYO never creates claims"
    );
}

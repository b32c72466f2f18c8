//! End to end in bring-your-own-nodes mode on a cluster without Karpenter: the `karpenter.sh`
//! API does not exist there, so the operator must never ask for NodeClaims (a watch on a missing
//! CRD fails forever), yet a workspace still runs to completion on the user's labelled node.

mod common;

use std::collections::BTreeMap;

use common::{Cluster, cond, eventually, seed, state};
use k8s_openapi::api::core::v1::{Node, NodeCondition, NodeSpec, NodeStatus};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kaito_core::api::ConditionType as C;
use kaito_harness::{FakeApiServer, ResourceKey};
use kaito_operator::operator::{OperatorConfig, ProvisionerKind};
use kube::api::DeleteParams;

const NAME: &str = "workspace-tuning-phi-3";
const NODE: &str = "byo-gpu-0";

/// The user's own GPU node, labelled for the seed workspace's selector (`app: tuning-phi-3`)
/// and by GPU feature discovery.
fn byo_node() -> Node {
    let labels = [
        ("app", "tuning-phi-3"),
        ("node.kubernetes.io/instance-type", "Standard_NC6s_v3"),
        ("nvidia.com/gpu.product", "Tesla-V100-PCIE-16GB"),
        ("nvidia.com/gpu.count", "1"),
        ("nvidia.com/gpu.memory", "16384"),
    ];
    Node {
        metadata: ObjectMeta {
            name: Some(NODE.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec::default()),
        status: Some(NodeStatus {
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..NodeCondition::default()
            }]),
            capacity: Some(BTreeMap::from([(
                "nvidia.com/gpu".to_owned(),
                Quantity("1".into()),
            )])),
            ..NodeStatus::default()
        }),
    }
}

/// A fake cluster that does not serve `karpenter.sh` NodeClaims, with the user's node.
async fn cluster_without_karpenter(provisioner: ProvisionerKind) -> Cluster {
    let server = FakeApiServer::start().await.expect("fake apiserver");
    server.store().unregister(&ResourceKey::nodeclaims());
    server.store().create(&byo_node()).expect("node");
    Cluster::start_on(
        server,
        OperatorConfig {
            provisioner,
            ..OperatorConfig::default()
        },
    )
}

fn karpenter_requests(c: &Cluster) -> Vec<String> {
    c.server
        .unserved_requests()
        .into_iter()
        .filter(|r| r.contains("karpenter.sh"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn byo_workspace_runs_on_a_cluster_without_nodeclaims() {
    let mut c = cluster_without_karpenter(ProvisionerKind::Byo).await;
    c.create(&seed()).await;

    let ready = eventually("ResourceReady True on the user's node", || {
        c.workspace(NAME)
            .filter(|w| cond(w, C::ResourceReady).is_some_and(|c| c.0 == "True"))
    })
    .await;
    assert_eq!(
        ready.status.as_ref().and_then(|s| s.worker_nodes.clone()),
        Some(vec![NODE.to_owned()])
    );
    eventually("the tuning Job", || c.job(NAME)).await;
    c.restart_operator().await;
    assert!(c.jobs.step() > 0);
    let pods = c.job_pods(NAME);
    assert_eq!(
        pods.first()
            .and_then(|p| p.spec.as_ref())
            .and_then(|s| s.node_name.as_deref()),
        Some(NODE)
    );
    c.jobs.succeed("default", NAME).expect("succeed");
    eventually("Succeeded", || {
        c.workspace(NAME)
            .filter(|w| state(w).as_deref() == Some("Succeeded"))
    })
    .await;

    c.workspaces()
        .delete(NAME, &DeleteParams::default())
        .await
        .expect("delete");
    eventually("workspace gone", || {
        c.workspace(NAME).is_none().then_some(())
    })
    .await;
    assert_eq!(c.nodes().len(), 1, "BYO nodes belong to the user");
    assert_eq!(
        karpenter_requests(&c),
        Vec::<String>::new(),
        "BYO mode never lists, watches or creates NodeClaims"
    );
    c.kill_operator().await;
}

/// The control for the test above: in karpenter mode the same cluster does get NodeClaim
/// requests (the watch and the create), so the assertion there can fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn karpenter_mode_asks_for_nodeclaims() {
    let mut c = cluster_without_karpenter(ProvisionerKind::Karpenter).await;
    c.create(&seed()).await;
    let requests = eventually("NodeClaim requests", || {
        Some(karpenter_requests(&c)).filter(|r| !r.is_empty())
    })
    .await;
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with("GET /apis/karpenter.sh/v1/nodeclaims")),
        "{requests:?}"
    );
    c.kill_operator().await;
}

//! Shared set-up of the operator's end-to-end tests: the fake apiserver, an operator that can be
//! killed and restarted, and small stand-ins for Karpenter, the kubelet and the Job/StatefulSet
//! controllers that the tests drive step by step through the store.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::{ConfigMap, Node, NodeCondition, NodeStatus};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kaito_backends::provision::NodeClaim;
use kaito_backends::provision::nodeclaim::NodeClaimStatus;
use kaito_core::api::manifest::parse_manifests;
use kaito_core::api::{ConditionType, WorkspaceV1Beta1};
use kaito_harness::FakeApiServer;
use kaito_operator::operator::{Context, OperatorConfig, controller};
use kube::api::{Api, PostParams};

pub const SEED: &str =
    include_str!("../../../examples/fine-tuning/kaito_workspace_tuning_phi_3.yaml");
pub const RELEASE_NS: &str = "kaito-system";

/// The fake cluster plus a restartable operator.
pub struct Cluster {
    pub server: FakeApiServer,
    pub config: OperatorConfig,
    operator: Option<tokio::task::JoinHandle<()>>,
}

impl Cluster {
    /// A fake cluster with the chart's default tuning ConfigMaps, and a running operator.
    pub async fn start(config: OperatorConfig) -> Self {
        let server = FakeApiServer::start().await.expect("fake apiserver");
        for name in ["lora-params-template", "qlora-params-template"] {
            let cm = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    namespace: Some(RELEASE_NS.into()),
                    ..Default::default()
                },
                data: Some(BTreeMap::from([(
                    "training_config.yaml".to_owned(),
                    "training_config: {}\n".to_owned(),
                )])),
                ..Default::default()
            };
            server.store().create(&cm).expect("default config");
        }
        let mut cluster = Self {
            server,
            config,
            operator: None,
        };
        cluster.start_operator();
        cluster
    }

    /// Starts a fresh operator process (new caches, new context).
    pub fn start_operator(&mut self) {
        let ctx =
            Arc::new(Context::new(self.server.client(), self.config.clone()).expect("context"));
        self.operator = Some(tokio::spawn(controller::run(ctx, std::future::pending())));
    }

    /// Kills the operator abruptly (no graceful shutdown), as a crashed pod would die.
    pub async fn kill_operator(&mut self) {
        if let Some(task) = self.operator.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Kill, then start again.
    pub async fn restart_operator(&mut self) {
        self.kill_operator().await;
        self.start_operator();
    }

    pub fn workspaces(&self) -> Api<WorkspaceV1Beta1> {
        Api::namespaced(self.server.client(), "default")
    }

    pub async fn create(&self, ws: &WorkspaceV1Beta1) {
        self.workspaces()
            .create(&PostParams::default(), ws)
            .await
            .expect("create workspace");
    }

    pub fn workspace(&self, name: &str) -> Option<WorkspaceV1Beta1> {
        self.server.store().get("default", name)
    }

    pub fn claims(&self) -> Vec<NodeClaim> {
        self.server.store().list::<NodeClaim>(None)
    }

    pub fn job(&self, name: &str) -> Option<Job> {
        self.server.store().get("default", name)
    }

    /// Plays Karpenter + kubelet: every claim without a node gets Launched, Registered,
    /// Initialized, Ready and a Ready node with the instance type and one GPU.
    pub fn make_claims_ready(&self) {
        let store = self.server.store();
        for claim in self.claims() {
            if claim.status.as_ref().is_some_and(|s| s.node_name.is_some()) {
                continue;
            }
            let name = claim.metadata.name.clone().expect("name");
            let node_name = format!("aks-{name}-12345678-vmss000000");
            let sku = claim
                .spec
                .requirements
                .iter()
                .find(|r| r.key == "node.kubernetes.io/instance-type")
                .map(|r| r.values[0].clone())
                .expect("sku");
            let mut labels = claim.metadata.labels.clone().unwrap_or_default();
            labels.insert("node.kubernetes.io/instance-type".into(), sku);
            let node = Node {
                metadata: ObjectMeta {
                    name: Some(node_name.clone()),
                    labels: Some(labels),
                    ..Default::default()
                },
                status: Some(NodeStatus {
                    conditions: Some(vec![NodeCondition {
                        type_: "Ready".into(),
                        status: "True".into(),
                        ..Default::default()
                    }]),
                    capacity: Some(BTreeMap::from([(
                        "nvidia.com/gpu".to_owned(),
                        Quantity("1".into()),
                    )])),
                    ..Default::default()
                }),
                ..Default::default()
            };
            store.create(&node).expect("node");
            let status = NodeClaimStatus {
                node_name: Some(node_name),
                provider_id: Some(format!(
                    "azure:///subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachineScaleSets/aks-{name}-12345678-vmss/virtualMachines/0"
                )),
                conditions: ["Launched", "Registered", "Initialized", "Ready"]
                    .iter()
                    .map(|t| condition(t, "True", "", ""))
                    .collect(),
            };
            store
                .update_with::<NodeClaim>("", &name, |c| c.status = Some(status))
                .expect("claim status");
        }
    }

    /// Sets a Job's status as the Job controller would.
    pub fn set_job_status(&self, name: &str, active: i32, succeeded: i32) {
        self.server
            .store()
            .update_with::<Job>("default", name, |j| {
                let mut status = JobStatus {
                    active: Some(active),
                    ready: Some(active),
                    succeeded: Some(succeeded),
                    ..Default::default()
                };
                if succeeded > 0 {
                    status.conditions = Some(vec![JobCondition {
                        type_: "Complete".into(),
                        status: "True".into(),
                        ..Default::default()
                    }]);
                }
                j.status = Some(status);
            })
            .expect("job status");
    }

    /// Sets a StatefulSet's ready replicas as the StatefulSet controller would.
    pub fn set_ready_replicas(&self, name: &str, ready: i32) {
        self.server
            .store()
            .update_with::<StatefulSet>("default", name, |s| {
                let status = s.status.get_or_insert_with(Default::default);
                status.ready_replicas = Some(ready);
                status.replicas = ready;
            })
            .expect("sts status");
    }
}

pub fn condition(type_: &str, status: &str, reason: &str, message: &str) -> Condition {
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: None,
        last_transition_time: Time(Timestamp::now()),
    }
}

/// The seed workspace as the apiserver stores it (v1beta1, namespace `default`).
pub fn seed() -> WorkspaceV1Beta1 {
    let mut ws = parse_manifests("seed", SEED)
        .expect("seed")
        .workspaces
        .remove(0)
        .into_storage();
    ws.metadata.namespace = Some("default".into());
    ws
}

/// Polls `f` every 50 ms until it returns `Some`, failing the test after 20 s with `what`.
pub async fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `(status, reason, message)` of a workspace condition.
pub fn cond(ws: &WorkspaceV1Beta1, t: ConditionType) -> Option<(String, String, String)> {
    let c = ws.status.as_ref()?.condition(t)?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

pub fn state(ws: &WorkspaceV1Beta1) -> Option<String> {
    ws.status.as_ref()?.state.clone()
}

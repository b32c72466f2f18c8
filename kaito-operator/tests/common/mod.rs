//! Shared set-up of the operator's end-to-end tests: the fake apiserver, an operator that can be
//! killed and restarted, and the harness's simulators of Karpenter (NodeClaim -> Node), the Job
//! and StatefulSet controllers and the kubelet, which the tests drive step by step.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kaito_backends::provision::NodeClaim;
use kaito_core::api::manifest::parse_manifests;
use kaito_core::api::{ConditionType, WorkspaceV1Beta1};
use kaito_core::catalog::find_sku;
use kaito_harness::{FakeApiServer, JobSim, KarpenterSim, StatefulSetSim};
use kaito_operator::operator::{Context, OperatorConfig, controller};
use kube::api::{Api, Patch, PatchParams, PostParams};

pub const SEED: &str =
    include_str!("../../../examples/fine-tuning/kaito_workspace_tuning_phi_3.yaml");
pub const RELEASE_NS: &str = "kaito-system";

/// The fake cluster, its simulators (stepped by the tests) and a restartable operator.
pub struct Cluster {
    pub server: FakeApiServer,
    pub config: OperatorConfig,
    /// Karpenter / gpu-provisioner: NodeClaims -> Launched, Registered (a Node), Initialized.
    pub karpenter: KarpenterSim,
    /// The Job controller and kubelet: pods for Jobs, bound to fitting Nodes, run on command.
    pub jobs: JobSim,
    /// The StatefulSet controller and kubelet.
    pub statefulsets: StatefulSetSim,
    operator: Option<tokio::task::JoinHandle<()>>,
}

impl Cluster {
    /// A fake cluster with the chart's default tuning ConfigMaps, and a running operator.
    pub async fn start(config: OperatorConfig) -> Self {
        let server = FakeApiServer::start().await.expect("fake apiserver");
        Self::start_on(server, config)
    }

    /// As [`start`](Self::start) on a prepared server (e.g. one without the Karpenter CRDs).
    pub fn start_on(server: FakeApiServer, config: OperatorConfig) -> Self {
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
        let store = server.store();
        // Node GPU capacity as the catalog says the SKU has (unknown SKUs: one GPU).
        let cloud = config.cloud;
        let karpenter = KarpenterSim::new(store.clone())
            .with_gpu_count(move |sku| find_sku(cloud, sku).map_or(1, |s| s.gpu_count));
        let mut cluster = Self {
            jobs: JobSim::new(store.clone()),
            statefulsets: StatefulSetSim::new(store),
            karpenter,
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

    /// Adds `key=value` to the workspace's annotations: a user edit that triggers a reconcile
    /// without changing the spec (hash and revision stay).
    pub async fn touch(&self, name: &str, key: &str, value: &str) {
        let patch = serde_json::json!({ "metadata": { "annotations": { key: value } } });
        self.workspaces()
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("annotate workspace");
    }

    pub fn claims(&self) -> Vec<NodeClaim> {
        self.server.store().list::<NodeClaim>(None)
    }

    pub fn job(&self, name: &str) -> Option<Job> {
        self.server.store().get("default", name)
    }

    /// Pods of the Job `name` (as the Job simulator made them).
    pub fn job_pods(&self, name: &str) -> Vec<Pod> {
        self.server
            .store()
            .list::<Pod>(Some("default"))
            .into_iter()
            .filter(|p| {
                p.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("job-name"))
                    .map(String::as_str)
                    == Some(name)
            })
            .collect()
    }

    pub fn nodes(&self) -> Vec<Node> {
        self.server.store().list::<Node>(None)
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

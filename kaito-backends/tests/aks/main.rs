//! The AKS provisioner against a fake ARM (wiremock). Every mock matches the exact path,
//! api-version and `Authorization` header and states how often it must be hit, so a wrong
//! request is an unmatched one (wiremock answers 404) and fails the expectation on verify.

mod create;
mod delete_gc;
mod failures;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Node, NodeCondition, NodeStatus};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kaito_backends::provision::aks::{
    AksConfig, AksProvisioner, NodeLister, StaticTokenCredential,
};
use kaito_core::traits::{NodeRequirements, NodeTaint, WorkspaceRef};
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockBuilder, MockServer, Request, ResponseTemplate};

pub const API_VERSION: &str = "2025-10-01";
pub const TOKEN: &str = "test-token";
pub const POOLS: &str = "/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.ContainerService/managedClusters/aks-1/agentPools";
pub const OPERATION: &str =
    "/subscriptions/sub-1/providers/Microsoft.ContainerService/locations/westus3/operations/op-1";
pub const OPERATION_RESULT: &str = "/subscriptions/sub-1/providers/Microsoft.ContainerService/locations/westus3/operationresults/op-1";

/// A fake ARM plus a provisioner pointed at it.
pub struct Fixture {
    pub server: MockServer,
    pub credential: Arc<StaticTokenCredential>,
    pub nodes: Arc<FakeNodes>,
    pub provisioner: AksProvisioner,
}

impl Fixture {
    pub async fn new() -> Self {
        let server = MockServer::start().await;
        let credential = StaticTokenCredential::new(TOKEN);
        let nodes = Arc::new(FakeNodes::default());
        let provisioner = Self::provisioner_for(&server, &credential, &nodes);
        Self {
            server,
            credential,
            nodes,
            provisioner,
        }
    }

    /// A second provisioner on the same fake ARM: an operator after a restart.
    pub fn restarted(&self) -> AksProvisioner {
        Self::provisioner_for(&self.server, &self.credential, &self.nodes)
    }

    fn provisioner_for(
        server: &MockServer,
        credential: &Arc<StaticTokenCredential>,
        nodes: &Arc<FakeNodes>,
    ) -> AksProvisioner {
        let mut config = AksConfig::new("sub-1", "rg-1", "aks-1");
        config.api_version = API_VERSION.into();
        config.endpoint = server
            .uri()
            .parse()
            .unwrap_or_else(|e| panic!("mock uri: {e}"));
        config.poll_interval = Duration::from_millis(10);
        config.max_retry_after = Duration::from_secs(2);
        config.gc_grace = Duration::from_secs(300);
        AksProvisioner::new(config, credential.clone(), nodes.clone())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn op_url(&self, p: &str) -> String {
        format!("{}{p}?api-version=2016-03-30", self.server.uri())
    }

    /// Every request carried the token, and the token was asked for ARM's scope only.
    pub async fn assert_all_authorized(&self) {
        let requests = self.server.received_requests().await.unwrap_or_default();
        assert!(!requests.is_empty());
        for r in &requests {
            let auth = r.headers.get("authorization").and_then(|v| v.to_str().ok());
            assert_eq!(auth, Some("Bearer test-token"), "{} {}", r.method, r.url);
        }
        let scopes = self.credential.requested_scopes();
        assert!(
            scopes
                .iter()
                .all(|s| s == "https://management.azure.com/.default"),
            "{scopes:?}"
        );
    }
}

/// A mock for `verb` on `p` that only matches ARM's api-version and our token.
pub fn arm(verb: &str, p: &str) -> MockBuilder {
    Mock::given(method(verb))
        .and(path(p.to_owned()))
        .and(query_param("api-version", API_VERSION))
        .and(header("authorization", "Bearer test-token"))
}

/// A mock for an operation status URL (its own api-version, still our token).
pub fn op(p: &str) -> MockBuilder {
    Mock::given(method("GET"))
        .and(path(p.to_owned()))
        .and(query_param("api-version", "2016-03-30"))
        .and(header("authorization", "Bearer test-token"))
}

pub fn pool_path(name: &str) -> String {
    format!("{POOLS}/{name}")
}

/// Answers with each response in turn, then repeats the last.
pub fn sequence(
    responses: Vec<ResponseTemplate>,
) -> impl Fn(&Request) -> ResponseTemplate + Send + Sync {
    let queue = Mutex::new(responses);
    move |_: &Request| {
        let mut q = queue.lock().unwrap_or_else(|e| e.into_inner());
        if q.len() > 1 {
            q.remove(0)
        } else {
            q[0].clone()
        }
    }
}

pub fn ws() -> WorkspaceRef {
    WorkspaceRef {
        namespace: "default".into(),
        name: "tune-phi".into(),
    }
}

pub fn requirements(count: u32) -> NodeRequirements {
    NodeRequirements {
        workspace: ws(),
        instance_type: Some("Standard_NC24ads_A100_v4".into()),
        count,
        labels: BTreeMap::from([("apps".to_owned(), "phi".to_owned())]),
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

/// The pool name for node `i` of [`ws`].
pub fn name(i: u32) -> String {
    kaito_backends::provision::aks::pool_name(&ws(), i).unwrap_or_else(|e| panic!("{e}"))
}

/// An agent pool as ARM returns it.
pub fn pool_json(name: &str, state: &str, owner: Option<(&str, &str)>, created: &str) -> Value {
    let mut labels =
        json!({"kaito.sh/machine-type": "gpu", "kaito.sh/creation-timestamp": created});
    if let Some((ns, ws)) = owner {
        labels["kaito.sh/workspace"] = json!(ws);
        labels["kaito.sh/workspacenamespace"] = json!(ns);
        labels["kaito.sh/node-provisioner"] = json!("aks");
    }
    json!({
        "id": format!("{POOLS}/{name}"),
        "name": name,
        "type": "Microsoft.ContainerService/managedClusters/agentPools",
        "properties": {"count": 1, "vmSize": "Standard_NC24ads_A100_v4", "osDiskSizeGB": 1024, "mode": "User",
            "provisioningState": state, "powerState": {"code": "Running"}, "nodeLabels": labels}
    })
}

pub fn our_pool(name: &str, state: &str) -> Value {
    pool_json(
        name,
        state,
        Some(("default", "tune-phi")),
        "2020-01-01T00-00-00Z",
    )
}

pub fn arm_error(code: &str, message: &str) -> Value {
    json!({"error": {"code": code, "message": message}})
}

/// Nodes in memory, listed by one label like the API server would.
#[derive(Default)]
pub struct FakeNodes(Mutex<Vec<Node>>);

impl FakeNodes {
    pub fn set(&self, nodes: Vec<Node>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = nodes;
    }
}

#[async_trait]
impl NodeLister for FakeNodes {
    async fn nodes_labelled(
        &self,
        key: &str,
        value: &str,
    ) -> Result<Vec<Node>, kaito_backends::Error> {
        let nodes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        Ok(nodes
            .iter()
            .filter(|n| {
                n.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(key))
                    .map(String::as_str)
                    == Some(value)
            })
            .cloned()
            .collect())
    }
}

/// An AKS node of `pool` (labelled as AKS labels them).
pub fn node(pool: &str, ready: bool, gpus: u32) -> Node {
    let mut n = Node::default();
    n.metadata.name = Some(format!("aks-{pool}-12345678-vmss000000"));
    n.metadata.labels = Some(BTreeMap::from([
        ("agentpool".to_owned(), pool.to_owned()),
        ("kubernetes.azure.com/agentpool".to_owned(), pool.to_owned()),
    ]));
    n.status = Some(NodeStatus {
        conditions: Some(vec![NodeCondition {
            type_: "Ready".into(),
            status: if ready { "True" } else { "False" }.into(),
            ..Default::default()
        }]),
        capacity: Some(BTreeMap::from([(
            "nvidia.com/gpu".to_owned(),
            Quantity(gpus.to_string()),
        )])),
        ..Default::default()
    });
    n
}

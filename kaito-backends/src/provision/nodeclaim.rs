//! A typed `karpenter.sh/v1` NodeClaim with just the fields KAITO writes and reads
//! (backends.md §2.1-2.2), and the manifest KAITO creates for a workspace.
//!
//! Unknown fields are ignored on read; what we create carries exactly KAITO's fields, so the
//! gpu-provisioner and Karpenter treat our claims as KAITO's.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Taint;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};
use kaito_core::api::names::{
    ANNOTATION_NODE_IMAGE_FAMILY, KAITO_NODEPOOL, LABEL_INSTANCE_TYPE, LABEL_KARPENTER_NODEPOOL,
    LABEL_WORKSPACE, LABEL_WORKSPACE_NAMESPACE,
};
pub use kaito_core::catalog::CloudProvider;
use kaito_core::traits::{NodeRequirements, WorkspaceRef};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Karpenter's annotation that keeps consolidation away from a node.
pub const ANNOTATION_DO_NOT_DISRUPT: &str = "karpenter.sh/do-not-disrupt";
/// Azure Karpenter's SKU label.
pub const LABEL_AZURE_SKU_NAME: &str = "karpenter.azure.com/sku-name";
/// AWS Karpenter's GPU count label.
pub const LABEL_AWS_GPU_COUNT: &str = "karpenter.k8s.aws/instance-gpu-count";
/// Well-known OS label.
pub const LABEL_OS: &str = "kubernetes.io/os";

/// `karpenter.sh/v1` NodeClaim (cluster-scoped).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeClaim {
    /// Object metadata.
    pub metadata: ObjectMeta,
    /// The desired node.
    #[serde(default)]
    pub spec: NodeClaimSpec,
    /// What Karpenter (or the gpu-provisioner) observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<NodeClaimStatus>,
}

/// `spec` of a NodeClaim.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeClaimSpec {
    /// Scheduling requirements of the node.
    #[serde(default)]
    pub requirements: Vec<Requirement>,
    /// The cloud's node class.
    #[serde(default)]
    pub node_class_ref: NodeClassRef,
    /// Taints put on the node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<Taint>,
    /// Resource requests (KAITO: `storage` only).
    #[serde(default)]
    pub resources: ClaimResources,
}

/// One requirement (`key operator values`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Requirement {
    /// The label key.
    pub key: String,
    /// `In`, `NotIn`, `Exists`, `DoesNotExist`, `Gt`, `Lt`.
    pub operator: String,
    /// Values for the operator.
    #[serde(default)]
    pub values: Vec<String>,
}

/// `spec.nodeClassRef`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeClassRef {
    /// The node class API group.
    #[serde(default)]
    pub group: String,
    /// The node class kind.
    #[serde(default)]
    pub kind: String,
    /// The node class name.
    #[serde(default)]
    pub name: String,
}

/// `spec.resources`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClaimResources {
    /// Requested resources.
    #[serde(default)]
    pub requests: BTreeMap<String, Quantity>,
}

/// `status` of a NodeClaim.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeClaimStatus {
    /// The registered node's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// The cloud's id of the instance (`providerID`, not camelCase's `providerId`).
    #[serde(
        default,
        rename = "providerID",
        skip_serializing_if = "Option::is_none"
    )]
    pub provider_id: Option<String>,
    /// Lifecycle conditions (`Launched`, `Registered`, `Initialized`, `Ready`, ...).
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

impl kube::Resource for NodeClaim {
    type DynamicType = ();
    type Scope = kube::core::ClusterResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("NodeClaim")
    }
    fn group(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("karpenter.sh")
    }
    fn version(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("v1")
    }
    fn api_version(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("karpenter.sh/v1")
    }
    fn plural(_: &()) -> Cow<'_, str> {
        Cow::Borrowed("nodeclaims")
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl NodeClaim {
    /// The condition of `type_`, if present.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.status
            .as_ref()?
            .conditions
            .iter()
            .find(|c| c.type_ == type_)
    }

    /// Whether the root `Ready` condition is True.
    pub fn is_ready(&self) -> bool {
        self.condition("Ready").is_some_and(|c| c.status == "True")
    }

    /// Whether the claim is being deleted.
    pub fn is_deleting(&self) -> bool {
        self.metadata.deletion_timestamp.is_some()
    }
}

/// The label selector (`kaito.sh/workspace=<name>,kaito.sh/workspacenamespace=<ns>`) that finds
/// a workspace's NodeClaims and nodes.
pub fn workspace_selector(ws: &WorkspaceRef) -> String {
    format!(
        "{LABEL_WORKSPACE}={},{LABEL_WORKSPACE_NAMESPACE}={}",
        ws.name, ws.namespace
    )
}

/// KAITO's claim name: `ws` + 9 hex digits of sha256(namespace + name + nonce). 11 characters,
/// which fits the gpu-provisioner's `^[a-z][a-z0-9]{0,11}$` agent pool names.
pub fn claim_name(ws: &WorkspaceRef, nonce: &str) -> String {
    let digest = Sha256::digest(format!("{}{}{}", ws.namespace, ws.name, nonce));
    format!("ws{}", &hex::encode(digest)[..9])
}

/// Settings of the claims that come from the operator, not the workspace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimSettings {
    /// Which cloud.
    pub cloud: CloudProvider,
    /// `nodeClassRef.name` (KAITO: `default`; the workspace may ask for another).
    pub node_class_name: String,
    /// The node image family when the workspace does not set one (KAITO: `ubuntu`).
    pub default_image_family: String,
}

impl Default for ClaimSettings {
    fn default() -> Self {
        Self {
            cloud: CloudProvider::Azure,
            node_class_name: "default".into(),
            default_image_family: "ubuntu".into(),
        }
    }
}

fn in_req(key: &str, value: &str) -> Requirement {
    Requirement {
        key: key.into(),
        operator: "In".into(),
        values: vec![value.into()],
    }
}

/// The NodeClaim KAITO creates for `req` (kaito.md §2 step 6).
pub fn build_claim(req: &NodeRequirements, name: &str, settings: &ClaimSettings) -> NodeClaim {
    let sku = req.instance_type.clone().unwrap_or_default();
    let mut labels = req.labels.clone();
    labels.insert(LABEL_KARPENTER_NODEPOOL.into(), KAITO_NODEPOOL.into());
    labels.insert(LABEL_WORKSPACE.into(), req.workspace.name.clone());
    labels.insert(
        LABEL_WORKSPACE_NAMESPACE.into(),
        req.workspace.namespace.clone(),
    );
    let family = req
        .node_image_family
        .clone()
        .unwrap_or_else(|| settings.default_image_family.clone());
    let annotations = BTreeMap::from([
        (ANNOTATION_DO_NOT_DISRUPT.to_owned(), "true".to_owned()),
        (ANNOTATION_NODE_IMAGE_FAMILY.to_owned(), family),
    ]);
    let mut requirements = vec![
        in_req(LABEL_KARPENTER_NODEPOOL, KAITO_NODEPOOL),
        in_req(LABEL_INSTANCE_TYPE, &sku),
        in_req(LABEL_OS, "linux"),
    ];
    let node_class_ref = match settings.cloud {
        CloudProvider::Aws => {
            requirements.push(Requirement {
                key: LABEL_AWS_GPU_COUNT.into(),
                operator: "Gt".into(),
                values: vec!["0".into()],
            });
            NodeClassRef {
                group: "karpenter.k8s.aws".into(),
                kind: "EC2NodeClass".into(),
                name: settings.node_class_name.clone(),
            }
        }
        CloudProvider::Azure | CloudProvider::Arc => {
            requirements.push(in_req(LABEL_AZURE_SKU_NAME, &sku));
            NodeClassRef {
                group: "kaito.sh".into(),
                kind: "KaitoNodeClass".into(),
                name: settings.node_class_name.clone(),
            }
        }
    };
    let taints = req
        .taints
        .iter()
        .map(|t| Taint {
            key: t.key.clone(),
            value: Some(t.value.clone()),
            effect: t.effect.clone(),
            time_added: None,
        })
        .collect();
    NodeClaim {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(labels),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        spec: NodeClaimSpec {
            requirements,
            node_class_ref,
            taints,
            resources: ClaimResources {
                requests: BTreeMap::from([(
                    "storage".to_owned(),
                    Quantity(format!("{}Gi", req.os_disk_gib)),
                )]),
            },
        },
        status: None,
    }
}

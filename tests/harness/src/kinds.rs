//! The kinds the fake apiserver serves: group, versions, kind, plural, scope, status subresource.

use kube::Resource;

/// One served resource type. Several versions may be served from one store (objects are
/// field-compatible across them; only `apiVersion` is rewritten on the way out).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KindInfo {
    pub group: String,
    /// Served versions; the first is the preferred (storage) version.
    pub versions: Vec<String>,
    pub kind: String,
    pub plural: String,
    pub namespaced: bool,
    pub status_subresource: bool,
}

impl KindInfo {
    pub fn new(group: &str, versions: &[&str], kind: &str, plural: &str) -> Self {
        Self {
            group: group.to_string(),
            versions: versions.iter().map(|v| v.to_string()).collect(),
            kind: kind.to_string(),
            plural: plural.to_string(),
            namespaced: true,
            status_subresource: false,
        }
    }

    pub fn cluster_scoped(mut self) -> Self {
        self.namespaced = false;
        self
    }

    pub fn with_status(mut self) -> Self {
        self.status_subresource = true;
        self
    }

    pub fn key(&self) -> ResourceKey {
        ResourceKey::new(&self.group, &self.plural)
    }

    /// `apiVersion` for `version` (`v1` for the core group, `group/version` otherwise).
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{}", self.group, version)
        }
    }

    /// `plural.group` as the apiserver names a resource in error messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

/// Identifies a stored collection independent of version: `(group, plural)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceKey {
    pub group: String,
    pub plural: String,
}

impl ResourceKey {
    pub fn new(group: &str, plural: &str) -> Self {
        Self {
            group: group.to_string(),
            plural: plural.to_string(),
        }
    }

    /// The key for a typed resource (k8s-openapi or `#[derive(CustomResource)]`).
    pub fn of<K: Resource<DynamicType = ()>>() -> Self {
        Self::new(&K::group(&()), &K::plural(&()))
    }

    pub fn nodeclaims() -> Self {
        Self::new("karpenter.sh", "nodeclaims")
    }

    pub fn workspaces() -> Self {
        Self::new("kaito.sh", "workspaces")
    }
}

/// The kinds preregistered on every server.
pub fn builtin_kinds() -> Vec<KindInfo> {
    vec![
        KindInfo::new("", &["v1"], "Pod", "pods").with_status(),
        KindInfo::new("", &["v1"], "Node", "nodes")
            .cluster_scoped()
            .with_status(),
        KindInfo::new("", &["v1"], "Service", "services").with_status(),
        KindInfo::new("", &["v1"], "Secret", "secrets"),
        KindInfo::new("", &["v1"], "ConfigMap", "configmaps"),
        KindInfo::new("", &["v1"], "Event", "events"),
        KindInfo::new("", &["v1"], "Namespace", "namespaces")
            .cluster_scoped()
            .with_status(),
        KindInfo::new("", &["v1"], "ServiceAccount", "serviceaccounts"),
        KindInfo::new("batch", &["v1"], "Job", "jobs").with_status(),
        KindInfo::new("apps", &["v1"], "StatefulSet", "statefulsets").with_status(),
        KindInfo::new("apps", &["v1"], "Deployment", "deployments").with_status(),
        KindInfo::new("apps", &["v1"], "ControllerRevision", "controllerrevisions"),
        KindInfo::new("coordination.k8s.io", &["v1"], "Lease", "leases"),
        KindInfo::new("events.k8s.io", &["v1"], "Event", "events"),
        KindInfo::new("karpenter.sh", &["v1"], "NodeClaim", "nodeclaims")
            .cluster_scoped()
            .with_status(),
        KindInfo::new("karpenter.sh", &["v1"], "NodePool", "nodepools")
            .cluster_scoped()
            .with_status(),
        KindInfo::new(
            "kaito.sh",
            &["v1beta1", "v1alpha1"],
            "Workspace",
            "workspaces",
        )
        .with_status(),
    ]
}

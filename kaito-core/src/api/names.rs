//! Labels, annotations and the finalizer KAITO puts on objects (kaito.md §1.6).

/// Label on NodeClaims, nodes, Jobs and pods: the owning workspace's name.
pub const LABEL_WORKSPACE: &str = "kaito.sh/workspace";
/// Label on NodeClaims and nodes: the owning workspace's namespace.
pub const LABEL_WORKSPACE_NAMESPACE: &str = "kaito.sh/workspacenamespace";
/// Label on ControllerRevisions: the workspace's name.
pub const LABEL_REVISION_WORKSPACE: &str = "workspace.kaito.io/name";
/// Label on workspaces created by an InferenceSet.
pub const LABEL_CREATED_BY_INFERENCESET: &str = "inferenceset.kaito.sh/created-by";
/// Label that KAITO's fake Karpenter NodePool name goes into.
pub const LABEL_KARPENTER_NODEPOOL: &str = "karpenter.sh/nodepool";
/// The fake NodePool name that keeps Karpenter core away from KAITO's NodeClaims.
pub const KAITO_NODEPOOL: &str = "kaito";
/// Well-known instance-type node label.
pub const LABEL_INSTANCE_TYPE: &str = "node.kubernetes.io/instance-type";

/// Selector keys KAITO reserves; they are stripped from user label selectors.
pub const RESERVED_SELECTOR_KEYS: &[&str] = &[
    LABEL_WORKSPACE,
    LABEL_WORKSPACE_NAMESPACE,
    "kaito.sh/ragengine",
    "kaito.sh/ragenginenamespace",
    "karpenter.kaito.sh/workspace-name",
    "karpenter.kaito.sh/workspace-namespace",
    "karpenter.kaito.sh/inferenceset",
    "karpenter.kaito.sh/inferenceset-namespace",
];

/// Annotation: sha256 of the workspace's `resource`, `inference` and `tuning`.
pub const ANNOTATION_HASH: &str = "workspace.kaito.io/hash";
/// Annotation: the workspace's revision number (on the workspace, Job and StatefulSet).
pub const ANNOTATION_REVISION: &str = "workspace.kaito.io/revision";
/// Annotation `"True"`: expose inference through a LoadBalancer Service.
pub const ANNOTATION_ENABLE_LB: &str = "kaito.sh/enablelb";
/// Annotation: inference runtime, `vllm` or `transformers`.
pub const ANNOTATION_RUNTIME: &str = "kaito.sh/runtime";
/// Annotation: turn GPU-memory errors into warnings.
pub const ANNOTATION_BYPASS_RESOURCE_CHECKS: &str = "kaito.sh/bypass-resource-checks";
/// Annotation: node OS image family, `ubuntu` or `azurelinux`.
pub const ANNOTATION_NODE_IMAGE_FAMILY: &str = "kaito.sh/node-image-family";
/// Annotation: the Karpenter node class to use.
pub const ANNOTATION_NODE_CLASS_NAME: &str = "kaito.sh/node-class-name";
/// Annotation: skip the inference benchmark.
pub const ANNOTATION_DISABLE_BENCHMARK: &str = "kaito.sh/disable-benchmark";
/// Annotation: `balanced`, `interactivity` or `throughput`.
pub const ANNOTATION_PERFORMANCE_MODE: &str = "kaito.sh/performance-mode";
/// Annotation: `true` or `false`.
pub const ANNOTATION_USE_LOCAL_WEIGHTS: &str = "kaito.sh/use-local-weights";

/// The workspace finalizer.
pub const FINALIZER: &str = "workspace.finalizer.kaito.sh";

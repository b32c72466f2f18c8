//! The shipped manifests stay in step with the code: the default tuning ConfigMaps are
//! kaito-core's templates byte for byte (in `deploy/` and in the Helm chart), the RBAC grants
//! every verb the operator uses, and the NVIDIA device plugin DaemonSet lands on KAITO's GPU
//! nodes (and only there). Helm is not available here: chart templates are checked by plain
//! substitution of their values, not rendered.

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::rbac::v1::ClusterRole;
use kaito_core::api::TuningMethod;
use kaito_core::tuning::default_config_map;
use kaito_harness::{KarpenterSim, ResourceKey, Store, pod_fits_node};
use serde_json::{Value, json};

const DEPLOY_CONFIGMAPS: &str = include_str!("../../deploy/tuning-configmaps.yaml");
const CHART_CONFIGMAPS: &str =
    include_str!("../../charts/kaito-rs/templates/tuning-configmaps.yaml");
const RBAC: &str = include_str!("../../deploy/rbac.yaml");
const CHART_RBAC: &str = include_str!("../../charts/kaito-rs/templates/rbac.yaml");
const DEVICE_PLUGIN: &str = include_str!("../../deploy/nvidia-device-plugin.yaml");
const CHART_DEVICE_PLUGIN: &str =
    include_str!("../../charts/kaito-rs/templates/nvidia-device-plugin.yaml");
const CHART_VALUES: &str = include_str!("../../charts/kaito-rs/values.yaml");
const KUSTOMIZATION: &str = include_str!("../../deploy/kustomization.yaml");

fn docs(text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple(text).expect("valid YAML")
}

#[test]
fn default_tuning_configmaps_are_kaito_cores_templates() {
    let shipped: Vec<ConfigMap> = docs(DEPLOY_CONFIGMAPS)
        .into_iter()
        .map(|d| serde_json::from_value(d).expect("ConfigMap"))
        .collect();
    assert_eq!(shipped.len(), 2);
    for (method, cm) in [TuningMethod::Lora, TuningMethod::Qlora]
        .into_iter()
        .zip(&shipped)
    {
        let expected = default_config_map(method, "kaito-system");
        assert_eq!(cm.metadata.name, expected.metadata.name);
        assert_eq!(
            cm.data, expected.data,
            "deploy/tuning-configmaps.yaml drifted from kaito_core::tuning for {method:?}"
        );
    }
    let chart = CHART_CONFIGMAPS.replace("{{ .Release.Namespace }}", "kaito-system");
    assert_eq!(
        chart, DEPLOY_CONFIGMAPS,
        "the chart's ConfigMaps differ from deploy/"
    );
}

#[test]
fn rbac_grants_what_the_operator_does() {
    let role: ClusterRole = docs(RBAC)
        .into_iter()
        .find(|d| d["kind"] == "ClusterRole")
        .map(|d| serde_json::from_value(d).expect("ClusterRole"))
        .expect("a ClusterRole");
    let allowed = |group: &str, resource: &str, verb: &str| {
        role.rules.iter().flatten().any(|r| {
            r.api_groups.iter().flatten().any(|g| g == group)
                && r.resources.iter().flatten().any(|x| x == resource)
                && r.verbs.iter().any(|v| v == verb)
        })
    };
    let needed = [
        (
            "kaito.sh",
            "workspaces",
            &["get", "list", "watch", "patch"][..],
        ),
        ("kaito.sh", "workspaces/status", &["patch"]),
        (
            "karpenter.sh",
            "nodeclaims",
            &["list", "watch", "create", "delete"],
        ),
        ("", "nodes", &["get", "list", "patch"]),
        (
            "batch",
            "jobs",
            &["get", "list", "watch", "create", "delete"],
        ),
        ("apps", "statefulsets", &["get", "list", "watch", "patch"]),
        (
            "apps",
            "controllerrevisions",
            &["list", "watch", "create", "delete"],
        ),
        ("", "services", &["list", "watch", "patch"]),
        ("", "configmaps", &["get", "create"]),
        ("", "pods", &["list"]),
        ("events.k8s.io", "events", &["create"]),
    ];
    for (group, resource, verbs) in needed {
        for verb in verbs {
            assert!(
                allowed(group, resource, verb),
                "ClusterRole lacks {verb} on {group}/{resource}"
            );
        }
    }
    assert!(
        !role
            .rules
            .iter()
            .flatten()
            .any(|r| r.verbs.iter().any(|v| v == "*")),
        "no wildcard verbs"
    );
    assert!(
        !allowed("", "secrets", "get"),
        "the operator never reads Secrets"
    );
}

#[test]
fn nodeclaim_rbac_in_the_chart_only_for_karpenter() {
    let rule = CHART_RBAC
        .find("apiGroups: [\"karpenter.sh\"]")
        .expect("the chart grants NodeClaims in karpenter mode");
    let guard = CHART_RBAC[..rule]
        .rfind("{{- if eq .Values.nodeProvisioner \"karpenter\" }}")
        .expect("the karpenter.sh rule is guarded by nodeProvisioner");
    assert!(
        !CHART_RBAC[guard..rule].contains("{{- end }}"),
        "the guard closes before the karpenter.sh rule"
    );
}

fn device_plugin() -> (DaemonSet, Value) {
    let doc = docs(DEVICE_PLUGIN).remove(0);
    (
        serde_json::from_value(doc.clone()).expect("a DaemonSet"),
        doc,
    )
}

/// A NodeClaim as kaito-rs's Karpenter provisioner writes it (the parts Karpenter reads).
fn kaito_claim() -> Value {
    json!({
        "apiVersion": "karpenter.sh/v1", "kind": "NodeClaim",
        "metadata": {"name": "ws0a1b2c3d4", "labels": {
            "karpenter.sh/nodepool": "kaito", "kaito.sh/workspace": "ws",
            "kaito.sh/workspacenamespace": "default", "app": "ws"}},
        "spec": {
            "taints": [{"key": "sku", "value": "gpu", "effect": "NoSchedule"}],
            "requirements": [
                {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": ["Standard_NC6s_v3"]},
                {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}],
            "resources": {"requests": {"storage": "1024Gi"}},
            "nodeClassRef": {"group": "kaito.sh", "kind": "KaitoNodeClass", "name": "default"}}
    })
}

#[test]
fn device_plugin_daemonset_runs_on_kaitos_gpu_nodes_only() {
    assert!(
        KUSTOMIZATION
            .lines()
            .any(|l| l.trim() == "- nvidia-device-plugin.yaml"),
        "deploy/kustomization.yaml installs the device plugin"
    );
    let (ds, doc) = device_plugin();
    assert_eq!(ds.metadata.namespace.as_deref(), Some("kaito-system"));
    let pod = ds.spec.template.spec.expect("pod spec");
    let image = pod.containers[0].image.clone().unwrap_or_default();
    assert!(
        image.starts_with("nvcr.io/nvidia/k8s-device-plugin:v"),
        "{image}"
    );
    assert_eq!(
        pod.priority_class_name.as_deref(),
        Some("system-node-critical")
    );
    let mounts = pod.containers[0].volume_mounts.clone().unwrap_or_default();
    assert!(
        mounts
            .iter()
            .any(|m| m.mount_path == "/var/lib/kubelet/device-plugins"),
        "the kubelet's device-plugin socket directory"
    );

    // A GPU node exactly as the Karpenter simulator brings it up for a kaito NodeClaim: tainted
    // sku=gpu. The plugin must wait for the `accelerator: nvidia` label the operator adds
    // (KAITO's order), then fit.
    let store = Store::new();
    store
        .create_raw(&ResourceKey::nodeclaims(), kaito_claim())
        .expect("claim");
    assert_eq!(KarpenterSim::new(store.clone()).settle(), 3);
    let nodes = store
        .list_raw(&ResourceKey::new("", "nodes"), None, None)
        .expect("nodes");
    let mut gpu_node = nodes[0].clone();
    assert_eq!(gpu_node["spec"]["taints"][0]["key"], "sku");
    let spec = &doc["spec"]["template"]["spec"];
    assert!(
        !pod_fits_node(&gpu_node, spec),
        "not before the node is known to have a GPU"
    );
    gpu_node["metadata"]["labels"]["accelerator"] = json!("nvidia");
    assert!(
        pod_fits_node(&gpu_node, spec),
        "tolerates sku=gpu on a GPU node"
    );

    // gpu-provisioner's label alone is enough; spot GPU nodes too.
    let mut provisioned = nodes[0].clone();
    provisioned["metadata"]["labels"]["kaito.sh/machine-type"] = json!("gpu");
    provisioned["spec"]["taints"]
        .as_array_mut()
        .expect("taints")
        .push(json!({"key": "kubernetes.azure.com/scalesetpriority", "value": "spot", "effect": "NoSchedule"}));
    assert!(pod_fits_node(&provisioned, spec));

    // Not on CPU nodes, and not through taints it was never meant to tolerate.
    let cpu = json!({
        "metadata": {"name": "aks-system-0", "labels": {"kubernetes.io/os": "linux",
                     "node.kubernetes.io/instance-type": "Standard_D4s_v5"}},
        "spec": {},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}
    });
    assert!(!pod_fits_node(&cpu, spec), "CPU nodes get no device plugin");
    let mut dedicated = gpu_node.clone();
    dedicated["spec"]["taints"]
        .as_array_mut()
        .expect("taints")
        .push(json!({"key": "dedicated", "value": "infra", "effect": "NoSchedule"}));
    assert!(!pod_fits_node(&dedicated, spec), "no wildcard toleration");
}

/// The chart's template with its default values substituted is deploy/'s DaemonSet.
#[test]
fn chart_device_plugin_matches_deploy() {
    let values: Value = serde_saphyr::from_str(CHART_VALUES).expect("values.yaml");
    let dp = &values["nvidiaDevicePlugin"];
    assert_eq!(
        dp["enabled"], "auto",
        "on by default (karpenter mode), off for byo"
    );
    assert_eq!(values["nodeProvisioner"], "karpenter");
    assert_eq!(values["cloudProvider"], "azure");
    let text = |v: &Value| v.as_str().expect("a string value").to_owned();
    let rendered: String = CHART_DEVICE_PLUGIN
        .lines()
        .filter(|l| !l.trim_start().starts_with("{{-"))
        .map(|l| {
            l.replace(
                "{{ .Values.nvidiaDevicePlugin.daemonsetName }}",
                &text(&dp["daemonsetName"]),
            )
            .replace(
                "{{ .Values.nvidiaDevicePlugin.image }}",
                &text(&dp["image"]),
            )
            .replace(
                "{{ .Values.nvidiaDevicePlugin.imagePullPolicy }}",
                &text(&dp["imagePullPolicy"]),
            )
            .replace("{{ .Release.Namespace }}", "kaito-system")
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(!rendered.contains("{{"), "unsubstituted: {rendered}");
    let chart: Value = serde_saphyr::from_str(&rendered).expect("rendered chart YAML");
    assert_eq!(chart, device_plugin().1);
    assert!(
        CHART_DEVICE_PLUGIN.starts_with("{{- if include \"kaito.devicePluginEnabled\" . }}"),
        "toggled by nvidiaDevicePlugin.enabled"
    );
}

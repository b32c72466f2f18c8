//! The shipped manifests stay in step with the code: the default tuning ConfigMaps are
//! kaito-core's templates byte for byte (in `deploy/` and in the Helm chart), and the RBAC grants
//! every verb the operator uses.

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::rbac::v1::ClusterRole;
use kaito_core::api::TuningMethod;
use kaito_core::tuning::default_config_map;
use serde_json::Value;

const DEPLOY_CONFIGMAPS: &str = include_str!("../../deploy/tuning-configmaps.yaml");
const CHART_CONFIGMAPS: &str =
    include_str!("../../charts/kaito-rs/templates/tuning-configmaps.yaml");
const RBAC: &str = include_str!("../../deploy/rbac.yaml");

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

//! What a workspace needs from its nodes: the `NodeRequirements` a provisioner acts on.

use std::collections::BTreeMap;

use crate::api::WorkspaceV1Beta1;
use crate::api::names::RESERVED_SELECTOR_KEYS;
use crate::traits::{NodeRequirements, NodeTaint, WorkspaceRef};

/// KAITO's tuning NodeClaims always ask for this much disk (kaito.md §2 step 6).
pub const KAITO_TUNING_DISK_GIB: u32 = 1024;

/// The workspace's identity.
pub fn workspace_ref(ws: &WorkspaceV1Beta1) -> WorkspaceRef {
    WorkspaceRef {
        namespace: ws.namespace().to_owned(),
        name: ws.name().to_owned(),
    }
}

/// The user's `matchLabels` (and single-value `In` expressions) without KAITO's reserved keys.
pub fn sanitized_selector_labels(ws: &WorkspaceV1Beta1) -> BTreeMap<String, String> {
    let Some(selector) = ws.resource.as_ref().map(|r| &r.label_selector) else {
        return BTreeMap::new();
    };
    let mut labels: BTreeMap<String, String> = selector.match_labels.clone().unwrap_or_default();
    for expr in selector.match_expressions.iter().flatten() {
        if expr.operator == "In"
            && let Some([value]) = expr.values.as_deref()
        {
            labels
                .entry(expr.key.clone())
                .or_insert_with(|| value.clone());
        }
    }
    labels.retain(|k, _| !RESERVED_SELECTOR_KEYS.contains(&k.as_str()));
    labels
}

/// The node requirements of a workspace. `disk_gib` is the OS disk to ask for (the preset's
/// disk need; KAITO uses [`KAITO_TUNING_DISK_GIB`] for tuning).
pub fn node_requirements(
    ws: &WorkspaceV1Beta1,
    disk_gib: u32,
    gpu_memory_bytes: Option<u64>,
) -> NodeRequirements {
    let resource = ws.resource.clone().unwrap_or_default();
    let count = if ws.tuning.is_some() {
        1
    } else {
        resource.count.unwrap_or(1).max(1) as u32
    };
    NodeRequirements {
        workspace: workspace_ref(ws),
        instance_type: resource.instance_type.filter(|s| !s.is_empty()),
        count,
        labels: sanitized_selector_labels(ws),
        taints: vec![NodeTaint {
            key: "sku".into(),
            value: "gpu".into(),
            effect: "NoSchedule".into(),
        }],
        os_disk_gib: disk_gib,
        gpu_memory_bytes,
        node_image_family: ws
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(crate::api::names::ANNOTATION_NODE_IMAGE_FAMILY))
            .cloned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ResourceSpec, TuningSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

    #[test]
    fn reserved_keys_are_stripped_and_single_in_expressions_kept() {
        let mut ws = WorkspaceV1Beta1::new("ns", "w");
        ws.tuning = Some(TuningSpec::default());
        ws.resource = Some(ResourceSpec {
            count: Some(3),
            instance_type: Some("Standard_NC6s_v3".into()),
            label_selector: LabelSelector {
                match_labels: Some(
                    [
                        ("app".to_owned(), "tune".to_owned()),
                        ("kaito.sh/workspace".to_owned(), "evil".to_owned()),
                    ]
                    .into(),
                ),
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: "team".into(),
                    operator: "In".into(),
                    values: Some(vec!["ml".into()]),
                }]),
            },
            ..Default::default()
        });
        let req = node_requirements(&ws, KAITO_TUNING_DISK_GIB, None);
        assert_eq!(
            req.labels,
            [
                ("app".to_owned(), "tune".to_owned()),
                ("team".to_owned(), "ml".to_owned())
            ]
            .into()
        );
        assert_eq!(req.count, 1, "tuning always gets one node");
        assert_eq!(req.instance_type.as_deref(), Some("Standard_NC6s_v3"));
        assert_eq!(req.taints[0].key, "sku");
    }
}

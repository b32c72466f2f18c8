//! Reading user manifests: multi-document YAML or JSON holding Workspaces (either version) and
//! the ConfigMaps they refer to.
//!
//! The types tolerate unknown fields (an apiserver may be newer than this crate), but a user's
//! file with a typo (`tunning:`) should not be silently pruned as the apiserver would: every
//! field that does not survive a parse/serialize round trip is reported as unknown.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::Value;

use super::version::{AnyWorkspace, V1Alpha1, V1Beta1};
use super::{ApiVersion, KIND};
use crate::error::{Error, Result};

/// What a manifest file holds.
#[derive(Clone, Debug, Default)]
pub struct Manifests {
    /// The Workspaces, in file order.
    pub workspaces: Vec<AnyWorkspace>,
    /// ConfigMaps by name (tuning and inference configs).
    pub config_maps: BTreeMap<String, ConfigMap>,
    /// Field paths present in the file that the types do not know (`tunning`, ...), each
    /// prefixed with the document's index.
    pub unknown_fields: Vec<String>,
}

/// Parses every document of `text` (YAML or JSON). `source` names the file in errors.
pub fn parse_manifests(source: &str, text: &str) -> Result<Manifests> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| Error::Manifest {
        source_name: source.to_owned(),
        message: e.to_string(),
    })?;
    let mut out = Manifests::default();
    for (index, doc) in docs.into_iter().enumerate() {
        if doc.is_null() {
            continue;
        }
        let at = |message: String| Error::Manifest {
            source_name: format!("{source} (document {index})"),
            message,
        };
        let api_version = doc
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let kind = doc
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        match (api_version.as_str(), kind.as_str()) {
            (V1Alpha1::API_VERSION, KIND) => {
                let ws = serde_json::from_value(doc.clone()).map_err(|e| at(e.to_string()))?;
                let round = serde_json::to_value(&ws).map_err(|e| at(e.to_string()))?;
                out.unknown_fields.extend(
                    lost_fields(&doc, &round, "")
                        .into_iter()
                        .map(|p| format!("[{index}]{p}")),
                );
                out.workspaces.push(AnyWorkspace::V1Alpha1(ws));
            }
            (V1Beta1::API_VERSION, KIND) => {
                let ws = serde_json::from_value(doc.clone()).map_err(|e| at(e.to_string()))?;
                let round = serde_json::to_value(&ws).map_err(|e| at(e.to_string()))?;
                out.unknown_fields.extend(
                    lost_fields(&doc, &round, "")
                        .into_iter()
                        .map(|p| format!("[{index}]{p}")),
                );
                out.workspaces.push(AnyWorkspace::V1Beta1(ws));
            }
            ("v1", "ConfigMap") => {
                let cm: ConfigMap = serde_json::from_value(doc).map_err(|e| at(e.to_string()))?;
                let name = cm.metadata.name.clone().unwrap_or_default();
                out.config_maps.insert(name, cm);
            }
            (_, KIND) => {
                return Err(at(format!(
                    "unsupported apiVersion {api_version:?} for Workspace (expected kaito.sh/v1alpha1 or kaito.sh/v1beta1)"
                )));
            }
            _ => {
                return Err(at(format!(
                    "unexpected object {api_version}/{kind}: a manifest may hold Workspaces and ConfigMaps"
                )));
            }
        }
    }
    Ok(out)
}

/// Paths (`.tuning.tunning`) present in `before` but absent from `after`.
fn lost_fields(before: &Value, after: &Value, path: &str) -> Vec<String> {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => b
            .iter()
            .flat_map(|(k, v)| {
                let here = format!("{path}.{k}");
                match a.get(k) {
                    Some(av) => lost_fields(v, av, &here),
                    // `null` and empty optional fields are dropped on purpose, not lost.
                    None if v.is_null() => Vec::new(),
                    None => vec![here],
                }
            })
            .collect(),
        (Value::Array(b), Value::Array(a)) => b
            .iter()
            .zip(a)
            .enumerate()
            .flat_map(|(i, (bv, av))| lost_fields(bv, av, &format!("{path}[{i}]")))
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str =
        include_str!("../../../examples/fine-tuning/kaito_workspace_tuning_phi_3.yaml");

    #[test]
    fn seed_manifest_round_trips_with_nothing_lost() {
        let parsed = parse_manifests("seed", SEED).expect("seed parses");
        assert_eq!(parsed.workspaces.len(), 1);
        assert!(
            parsed.unknown_fields.is_empty(),
            "{:?}",
            parsed.unknown_fields
        );
        let AnyWorkspace::V1Alpha1(ws) = &parsed.workspaces[0] else {
            panic!("seed is v1alpha1")
        };
        let original: Value = serde_saphyr::from_str(SEED).expect("yaml");
        assert_eq!(serde_json::to_value(ws).expect("serializes"), original);
        let tuning = ws.tuning.as_ref().expect("tuning");
        assert_eq!(
            tuning.tuning_method(),
            Some(super::super::TuningMethod::Qlora)
        );
        assert_eq!(
            tuning
                .output
                .as_ref()
                .and_then(|o| o.image_push_secret.as_deref()),
            Some("ACR_REGISTRY_SECRET_HERE")
        );
    }

    #[test]
    fn unknown_fields_are_reported_with_their_path() {
        let text = SEED.replace("  method: qlora", "  method: qlora\n  methd: lora");
        let parsed = parse_manifests("typo.yaml", &text).expect("parses");
        assert_eq!(parsed.unknown_fields, vec!["[0].tuning.methd".to_owned()]);
    }

    #[test]
    fn v1alpha1_and_v1beta1_convert_losslessly() {
        let parsed = parse_manifests("seed", SEED).expect("seed parses");
        let AnyWorkspace::V1Alpha1(alpha) = parsed.workspaces[0].clone() else {
            panic!()
        };
        let beta = parsed.workspaces[0].clone().into_storage();
        let mut beta_json = serde_json::to_value(&beta).expect("json");
        assert_eq!(beta_json["apiVersion"], "kaito.sh/v1beta1");
        beta_json["apiVersion"] = "kaito.sh/v1alpha1".into();
        assert_eq!(beta_json, serde_json::to_value(&alpha).expect("json"));
        let (back, dropped) = beta.into_v1alpha1();
        assert!(dropped.is_empty());
        assert_eq!(back, alpha);
    }

    #[test]
    fn v1beta1_only_fields_are_named_when_dropped() {
        let text = SEED.replace("kaito.sh/v1alpha1", "kaito.sh/v1beta1").replace(
            "  instanceType: \"Standard_NC6s_v3\"",
            "  instanceType: \"Standard_NC6s_v3\"\n  partition:\n    mode: mig\n    profile: 1g.10gb\n    count: 1",
        );
        let ws = parse_manifests("beta", &text)
            .expect("parses")
            .workspaces
            .remove(0)
            .into_storage();
        assert!(
            ws.resource
                .as_ref()
                .and_then(|r| r.partition.as_ref())
                .is_some()
        );
        let (alpha, dropped) = ws.into_v1alpha1();
        assert_eq!(dropped, vec!["resource.partition".to_owned()]);
        assert!(alpha.resource.and_then(|r| r.partition).is_none());
    }

    #[test]
    fn garbage_is_an_error_naming_the_file() {
        let err = parse_manifests(
            "bad.yaml",
            "apiVersion: kaito.sh/v1beta1\nkind: Workspace\nresource: [1, 2",
        )
        .unwrap_err();
        assert!(err.to_string().contains("bad.yaml"), "{err}");
        let err =
            parse_manifests("x.yaml", "apiVersion: kaito.sh/v2\nkind: Workspace\n").unwrap_err();
        assert!(err.to_string().contains("unsupported apiVersion"), "{err}");
    }
}

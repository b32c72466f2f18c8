//! One test per rule, each with a passing and a failing case: workspace-level rules here,
//! tuning rules in `tuning.rs`, inference and update rules in `inference.rs`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::*;
use crate::api::manifest::parse_manifests;
use crate::api::{AdapterSpec, DataSource, InferenceSpec, PresetSpec};

mod inference;
mod tuning;

const SEED: &str =
    include_str!("../../../../examples/fine-tuning/kaito_workspace_tuning_phi_3.yaml");

fn seed() -> WorkspaceV1Beta1 {
    parse_manifests("seed", SEED)
        .expect("seed")
        .workspaces
        .remove(0)
        .into_storage()
}

/// The seed with its placeholders filled in.
fn tuning_ws() -> WorkspaceV1Beta1 {
    let mut ws = seed();
    let out = ws
        .tuning
        .as_mut()
        .and_then(|t| t.output.as_mut())
        .expect("output");
    out.image = Some("myacr.azurecr.io/adapters/phi-3:0.0.1".into());
    out.image_push_secret = Some("acr-push".into());
    ws
}

fn inference_ws(preset: &str, instance_type: &str) -> WorkspaceV1Beta1 {
    let mut ws = tuning_ws();
    ws.tuning = None;
    ws.resource.as_mut().expect("resource").instance_type = Some(instance_type.into());
    ws.inference = Some(InferenceSpec {
        preset: Some(PresetSpec {
            name: preset.into(),
            ..Default::default()
        }),
        ..Default::default()
    });
    ws
}

fn errors(ws: &WorkspaceV1Beta1, ctx: &ValidationContext) -> Vec<String> {
    check_create(ws, ctx)
        .errors
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn has(errs: &[String], needle: &str) -> bool {
    errs.iter().any(|e| e.contains(needle))
}

fn ctx() -> ValidationContext {
    ValidationContext::default()
}

fn config_map(name: &str, key: &str, text: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(key.to_owned(), text.to_owned())])),
        ..Default::default()
    }
}

#[test]
fn the_seed_validates_when_linting_examples_and_its_placeholders_are_warnings() {
    let lint = ValidationContext {
        placeholders_as_warnings: true,
        ..ctx()
    };
    let warnings = validate_create(&seed(), &lint).expect("seed is valid");
    assert!(
        warnings
            .iter()
            .any(|w| w.path == "tuning.output.image" && w.message.contains("placeholder")),
        "{warnings}"
    );
    // Admission rejects unfilled placeholders as KAITO does (ParseDockerRef fails on them).
    let errs = errors(&seed(), &ctx());
    assert!(
        has(&errs, "tuning.output.image") && has(&errs, "tuning.output.imagePushSecret"),
        "{errs:?}"
    );
    assert_eq!(errors(&tuning_ws(), &ctx()), Vec::<String>::new());
}

#[test]
fn metadata_name_must_be_a_dns_label() {
    let mut ws = tuning_ws();
    ws.metadata.name = Some("Tuning_Phi".into());
    assert!(has(&errors(&ws, &ctx()), "metadata.name"));
}

#[test]
fn exactly_one_of_inference_and_tuning() {
    let mut ws = tuning_ws();
    ws.inference = Some(InferenceSpec::default());
    assert!(has(&errors(&ws, &ctx()), "but not both"));
    ws.inference = None;
    ws.tuning = None;
    assert!(has(&errors(&ws, &ctx()), "not neither"));
}

#[test]
fn instance_type_follows_node_auto_provisioning() {
    let mut ws = tuning_ws();
    ws.resource.as_mut().expect("resource").instance_type = None;
    assert!(has(&errors(&ws, &ctx()), "resource.instanceType: required"));
    let byo = ValidationContext {
        node_auto_provisioning: false,
        ..ctx()
    };
    assert!(!has(&errors(&ws, &byo), "resource.instanceType"));
    assert!(has(
        &errors(&tuning_ws(), &byo),
        "must be empty when node auto-provisioning is disabled"
    ));
}

#[test]
fn annotations_take_only_known_values() {
    let mut ws = tuning_ws();
    let set = |ws: &mut WorkspaceV1Beta1, k: &str, v: &str| {
        ws.metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(k.into(), v.into());
    };
    set(&mut ws, "kaito.sh/performance-mode", "balanced");
    set(&mut ws, "kaito.sh/node-image-family", "ubuntu");
    assert!(errors(&ws, &ctx()).is_empty());
    set(&mut ws, "kaito.sh/performance-mode", "fast");
    set(&mut ws, "kaito.sh/use-local-weights", "yes");
    set(&mut ws, "kaito.sh/node-class-name", "gold");
    let strict = ValidationContext {
        node_classes: Some(vec!["default".into()]),
        ..ctx()
    };
    let errs = errors(&ws, &strict);
    assert_eq!(errs.len(), 3, "{errs:?}");
}

#[test]
fn bypass_resource_checks_is_a_warning() {
    let mut ws = tuning_ws();
    ws.metadata.annotations = Some(BTreeMap::from([(
        "kaito.sh/bypass-resource-checks".into(),
        "".into(),
    )]));
    let report = check_create(&ws, &ctx());
    assert!(report.errors.is_empty());
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.message.contains("bypassed"))
    );
}

#[test]
fn label_selectors_must_map_to_node_labels() {
    let mut ws = tuning_ws();
    let sel = &mut ws.resource.as_mut().expect("resource").label_selector;
    sel.match_labels = Some(BTreeMap::from([("kaito.sh/workspace".into(), "x".into())]));
    assert!(has(&errors(&ws, &ctx()), "not reserved"));
    let sel = &mut ws.resource.as_mut().expect("resource").label_selector;
    sel.match_labels = Some(BTreeMap::from([("app".into(), "bad value!".into())]));
    assert!(has(&errors(&ws, &ctx()), "not a valid label value"));
}

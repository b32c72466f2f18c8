//! Inference and update rules.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Node;

use super::*;

#[test]
fn inference_needs_preset_xor_template_and_a_known_preset() {
    let ws = inference_ws("phi-4", "Standard_NC24ads_A100_v4");
    assert_eq!(errors(&ws, &ctx()), Vec::<String>::new());
    let mut both = ws.clone();
    both.inference.as_mut().expect("inference").template = Some(serde_json::json!({"spec": {}}));
    assert!(has(
        &errors(&both, &ctx()),
        "cannot be set at the same time"
    ));
    assert!(has(
        &errors(&inference_ws("phi-2", "Standard_NC24ads_A100_v4"), &ctx()),
        "deprecated"
    ));
    assert!(has(
        &errors(
            &inference_ws("not a model", "Standard_NC24ads_A100_v4"),
            &ctx()
        ),
        "unsupported inference preset"
    ));
    assert!(
        errors(
            &inference_ws("Qwen/Qwen3-8B", "Standard_NC24ads_A100_v4"),
            &ctx()
        )
        .is_empty()
    );
}

#[test]
fn gated_presets_need_a_model_access_secret() {
    let mut ws = inference_ws("llama-3.1-8b-instruct", "Standard_NC24ads_A100_v4");
    assert!(has(&errors(&ws, &ctx()), "is gated"));
    let preset = ws
        .inference
        .as_mut()
        .and_then(|i| i.preset.as_mut())
        .expect("preset");
    preset.preset_options = Some(crate::api::PresetOptions {
        model_access_secret: Some("hf-token".into()),
        ..Default::default()
    });
    assert!(errors(&ws, &ctx()).is_empty());
    let mut phi = inference_ws("phi-4", "Standard_NC24ads_A100_v4");
    phi.inference
        .as_mut()
        .and_then(|i| i.preset.as_mut())
        .expect("preset")
        .preset_options = Some(crate::api::PresetOptions {
        model_access_secret: Some("hf-token".into()),
        ..Default::default()
    });
    assert!(has(
        &errors(&phi, &ctx()),
        "does not download weights at run time"
    ));
}

#[test]
fn inference_skus_must_be_known_and_big_enough() {
    assert!(
        errors(&inference_ws("phi-4", "Standard_NC99_unknown"), &ctx()).is_empty(),
        "Azure N-series pattern passes"
    );
    let aws = ValidationContext {
        cloud_provider: crate::catalog::CloudProvider::Aws,
        ..ctx()
    };
    assert!(has(
        &errors(&inference_ws("phi-4", "m5.large"), &aws),
        "not a known GPU SKU"
    ));
    assert!(has(
        &errors(&inference_ws("phi-4", "Standard_NV36ads_A10_v5"), &ctx()),
        "insufficient GPU memory"
    ));
}

#[test]
fn adapters_are_limited_unique_and_well_formed() {
    let adapter = |name: &str, strength: &str| AdapterSpec {
        source: Some(DataSource {
            name: Some(name.into()),
            image: Some("myacr.azurecr.io/a:1".into()),
            ..Default::default()
        }),
        strength: Some(strength.into()),
    };
    let mut ws = inference_ws("phi-4", "Standard_NC24ads_A100_v4");
    ws.inference.as_mut().expect("inference").adapters =
        Some(vec![adapter("a", "0.5"), adapter("b", "1")]);
    assert!(errors(&ws, &ctx()).is_empty());
    let mut bad = vec![adapter("a", "1.5"), adapter("a", "x")];
    bad.push(AdapterSpec {
        source: Some(DataSource {
            name: Some("c".into()),
            urls: Some(vec!["https://x.io/a".into()]),
            ..Default::default()
        }),
        strength: None,
    });
    ws.inference.as_mut().expect("inference").adapters = Some(bad);
    let errs = errors(&ws, &ctx());
    for needle in [
        "between 0 and 1",
        "duplicate adapter name",
        "not a number",
        "not URLs",
        "image or volumeSource",
    ] {
        assert!(has(&errs, needle), "{needle}: {errs:?}");
    }
    ws.inference.as_mut().expect("inference").adapters =
        Some((0..11).map(|i| adapter(&format!("a{i}"), "1")).collect());
    assert!(has(&errors(&ws, &ctx()), "at most 10 adapters"));
}

#[test]
fn inference_config_max_model_len_must_fit_the_context() {
    let mut ws = inference_ws("phi-4", "Standard_NC24ads_A100_v4");
    ws.inference.as_mut().expect("inference").config = Some("inf".into());
    let with = |len: u32| ValidationContext {
        config_maps: vec![config_map(
            "inf",
            "inference_config.yaml",
            &format!("vllm:\n  max-model-len: {len}\n"),
        )],
        ..ctx()
    };
    assert!(errors(&ws, &with(16384)).is_empty());
    assert!(has(&errors(&ws, &with(32768)), "exceeds phi-4's context"));
}

#[test]
fn updates_keep_immutable_fields() {
    let old = tuning_ws();
    assert_eq!(check_update(&old, &old, &ctx()), Report::default());
    let mut new = old.clone();
    new.resource.as_mut().expect("resource").instance_type = Some("Standard_NC12s_v3".into());
    new.resource.as_mut().expect("resource").count = Some(2);
    let t = new.tuning.as_mut().expect("tuning");
    t.method = Some("lora".into());
    t.preset = Some(PresetSpec {
        name: "phi-4".into(),
        ..Default::default()
    });
    t.input.as_mut().expect("input").name = Some("renamed".into());
    new.resource
        .as_mut()
        .expect("resource")
        .label_selector
        .match_labels = Some(BTreeMap::from([("app".into(), "x".into())]));
    let errs: Vec<String> = check_update(&old, &new, &ctx())
        .errors
        .iter()
        .map(ToString::to_string)
        .collect();
    for path in [
        "resource.instanceType",
        "tuning.method",
        "tuning.preset",
        "tuning.input.name",
        "resource.labelSelector",
    ] {
        assert!(has(&errs, path), "{path}: {errs:?}");
    }
    let mut toggled = old.clone();
    toggled.tuning = None;
    toggled.inference = Some(InferenceSpec::default());
    let errs: Vec<String> = check_update(&old, &toggled, &ctx())
        .errors
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        has(&errs, "inference: cannot be added") && has(&errs, "tuning: cannot be added"),
        "{errs:?}"
    );
}

#[test]
fn updates_revalidate_what_changed_and_allow_clearing_instance_type_for_byo() {
    let old = tuning_ws();
    let mut new = old.clone();
    new.tuning
        .as_mut()
        .and_then(|t| t.input.as_mut())
        .expect("input")
        .urls = Some(vec!["http://localhost/x".into()]);
    assert!(!check_update(&old, &new, &ctx()).errors.is_empty());
    let mut cleared = old.clone();
    cleared.resource.as_mut().expect("resource").instance_type = None;
    let byo = ValidationContext {
        node_auto_provisioning: false,
        ..ctx()
    };
    assert!(check_update(&old, &cleared, &byo).errors.is_empty());
    assert!(!check_update(&old, &cleared, &ctx()).errors.is_empty());
}

#[test]
fn nothing_panics_on_empty_or_odd_objects() {
    let mut odd = WorkspaceV1Beta1::default();
    let _ = check_create(&odd, &ctx());
    odd.tuning = Some(Default::default());
    odd.inference = Some(InferenceSpec {
        adapters: Some(vec![AdapterSpec::default()]),
        ..Default::default()
    });
    odd.resource = Some(Default::default());
    let report = check_create(
        &odd,
        &ValidationContext {
            node_auto_provisioning: false,
            nodes: Some(vec![Node::default()]),
            ..ctx()
        },
    );
    assert!(report.errors.iter().count() >= 5, "{}", report.errors);
    let _ = check_update(&odd, &WorkspaceV1Beta1::default(), &ctx());
    let _ = check_update(&WorkspaceV1Beta1::default(), &odd, &ctx());
}

//! Tuning rules.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::*;

#[test]
fn tuning_method_must_be_lora_or_qlora() {
    let mut ws = tuning_ws();
    ws.tuning.as_mut().expect("tuning").method = Some("QLoRA".into());
    assert!(errors(&ws, &ctx()).is_empty());
    ws.tuning.as_mut().expect("tuning").method = Some("dora".into());
    assert!(has(&errors(&ws, &ctx()), "tuning.method"));
}

#[test]
fn tuning_preset_must_exist_and_support_tuning() {
    for (name, msg) in [
        ("gpt-5", "unsupported tuning preset"),
        ("falcon-7b", "does not support tuning"),
        ("mistral-7b-instruct", "does not support tuning"),
        ("Qwen/Qwen3-8B", "not in the catalog"),
    ] {
        let mut ws = tuning_ws();
        ws.tuning.as_mut().expect("tuning").preset = Some(PresetSpec {
            name: name.into(),
            ..Default::default()
        });
        assert!(
            has(&errors(&ws, &ctx()), msg),
            "{name}: {:?}",
            errors(&ws, &ctx())
        );
    }
    let mut ws = tuning_ws();
    ws.tuning.as_mut().expect("tuning").preset = Some(PresetSpec {
        name: "/models/smollm2".into(),
        ..Default::default()
    });
    let report = check_create(&ws, &ctx());
    assert!(report.errors.is_empty(), "{}", report.errors);
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.path == "tuning.preset.name")
    );
    ws.tuning.as_mut().expect("tuning").preset = None;
    assert!(has(&errors(&ws, &ctx()), "tuning.preset: required"));
}

#[test]
fn tuning_config_map_must_exist_parse_and_match_the_method() {
    let mut ws = tuning_ws();
    ws.tuning.as_mut().expect("tuning").config = Some("my-config".into());
    assert!(has(
        &errors(&ws, &ctx()),
        "ConfigMap default/my-config not found"
    ));
    let lenient = ValidationContext {
        config_maps_complete: false,
        ..ctx()
    };
    assert!(errors(&ws, &lenient).is_empty());

    let good = crate::tuning::QLORA_PARAMS_TEMPLATE.replace("r: 8", "r: 16");
    let with = |text: &str, key: &str| ValidationContext {
        config_maps: vec![config_map("my-config", key, text)],
        ..ctx()
    };
    assert!(errors(&ws, &with(&good, "training_config.yaml")).is_empty());
    assert!(has(
        &errors(&ws, &with(&good, "config.yaml")),
        "has no `training_config.yaml` key"
    ));
    let typo = good.replace("r: 16", "rnk: 16");
    assert!(has(
        &errors(&ws, &with(&typo, "training_config.yaml")),
        "training_config.LoraConfig.rnk: unknown key"
    ));
    assert!(has(
        &errors(
            &ws,
            &with(crate::tuning::LORA_PARAMS_TEMPLATE, "training_config.yaml")
        ),
        "method qlora needs a 4-bit base"
    ));
}

#[test]
fn tuning_input_needs_exactly_one_safe_source() {
    let mut ws = tuning_ws();
    let input = ws
        .tuning
        .as_mut()
        .and_then(|t| t.input.as_mut())
        .expect("input");
    input.image = Some("myacr.azurecr.io/data:1".into());
    assert!(has(
        &errors(&ws, &ctx()),
        "exactly one of urls, image or volumeSource"
    ));
    let input = ws
        .tuning
        .as_mut()
        .and_then(|t| t.input.as_mut())
        .expect("input");
    input.image = None;
    input.urls = Some(vec![
        "https://example.com/a.parquet".into(),
        "http://169.254.169.254/latest".into(),
    ]);
    let errs = errors(&ws, &ctx());
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with("tuning.input.urls[1]: link-local"),
        "{errs:?}"
    );
    ws.tuning.as_mut().expect("tuning").input = Some(DataSource {
        image: Some("Bad Image".into()),
        ..Default::default()
    });
    assert!(has(
        &errors(&ws, &ctx()),
        "tuning.input.image: invalid image reference"
    ));
    ws.tuning.as_mut().expect("tuning").input = None;
    assert!(has(&errors(&ws, &ctx()), "tuning.input: required"));
}

#[test]
fn tuning_output_needs_one_destination_and_a_push_secret() {
    let mut ws = tuning_ws();
    let out = ws
        .tuning
        .as_mut()
        .and_then(|t| t.output.as_mut())
        .expect("output");
    out.image_push_secret = None;
    assert!(has(
        &errors(&ws, &ctx()),
        "tuning.output.imagePushSecret: required"
    ));
    let out = ws
        .tuning
        .as_mut()
        .and_then(|t| t.output.as_mut())
        .expect("output");
    out.image = None;
    out.volume_source =
        Some(serde_json::json!({"persistentVolumeClaim": {"claimName": "results"}}));
    assert!(errors(&ws, &ctx()).is_empty());
    let out = ws
        .tuning
        .as_mut()
        .and_then(|t| t.output.as_mut())
        .expect("output");
    out.volume_source = Some(serde_json::json!({}));
    assert!(has(&errors(&ws, &ctx()), "tuning.output.volumeSource"));
    ws.tuning.as_mut().expect("tuning").output = None;
    assert!(has(&errors(&ws, &ctx()), "tuning.output: required"));
}

#[test]
fn tuning_runs_on_one_node_without_partitions() {
    let mut ws = tuning_ws();
    ws.resource.as_mut().expect("resource").count = Some(1);
    assert!(errors(&ws, &ctx()).is_empty());
    ws.resource.as_mut().expect("resource").count = Some(2);
    assert!(has(
        &errors(&ws, &ctx()),
        "resource.count: tuning runs on one node"
    ));
    ws.resource.as_mut().expect("resource").count = Some(1);
    ws.resource.as_mut().expect("resource").partition = Some(crate::api::PartitionSpec {
        mode: "mig".into(),
        profile: Some("1g.10gb".into()),
        count: Some(1),
    });
    let errs = errors(&ws, &ctx());
    assert!(
        has(&errs, "tuning cannot run on GPU partitions"),
        "{errs:?}"
    );
    assert!(has(&errs, "needs bring-your-own nodes"), "{errs:?}");
}

#[test]
fn tuning_needs_a_known_sku_that_fits_the_estimate() {
    let mut ws = tuning_ws();
    ws.resource.as_mut().expect("resource").instance_type = Some("Standard_NC6s_v9".into());
    assert!(has(&errors(&ws, &ctx()), "not a known GPU SKU"));
    let t = ws.tuning.as_mut().expect("tuning");
    t.preset = Some(PresetSpec {
        name: "qwen2.5-coder-32b-instruct".into(),
        ..Default::default()
    });
    t.method = Some("lora".into());
    ws.resource.as_mut().expect("resource").instance_type = Some("Standard_NV36ads_A10_v5".into());
    let errs = errors(&ws, &ctx());
    assert!(
        has(
            &errs,
            "resource.instanceType: lora of qwen2.5-coder-32b-instruct: needs about"
        ),
        "{errs:?}"
    );
    assert!(has(&errs, "GiB missing"), "{errs:?}");
    // 61 GiB of bf16 weights plus ~27 GiB of activations at 1 x 1024 tokens: an H100 NVL fits.
    ws.resource.as_mut().expect("resource").instance_type = Some("Standard_NC40ads_H100_v5".into());
    assert!(errors(&ws, &ctx()).is_empty(), "{:?}", errors(&ws, &ctx()));
}

fn gpu_node(name: &str, app: &str, product: &str, mib: &str) -> Node {
    let labels = BTreeMap::from([
        ("app".to_owned(), app.to_owned()),
        ("nvidia.com/gpu.product".to_owned(), product.to_owned()),
        ("nvidia.com/gpu.count".to_owned(), "1".to_owned()),
        ("nvidia.com/gpu.memory".to_owned(), mib.to_owned()),
    ]);
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(labels),
            ..Default::default()
        },
        ..Default::default()
    }
}

#[test]
fn byo_nodes_must_match_and_carry_enough_gpu_memory() {
    let mut ws = tuning_ws();
    ws.resource.as_mut().expect("resource").instance_type = None;
    let byo = |nodes| ValidationContext {
        node_auto_provisioning: false,
        nodes: Some(nodes),
        ..ctx()
    };
    assert!(
        errors(
            &ws,
            &byo(vec![gpu_node(
                "n1",
                "tuning-phi-3",
                "Tesla-V100-PCIE-16GB",
                "16384"
            )])
        )
        .is_empty()
    );
    assert!(has(
        &errors(
            &ws,
            &byo(vec![gpu_node(
                "n1",
                "other",
                "Tesla-V100-PCIE-16GB",
                "16384"
            )])
        ),
        "no node matches"
    ));
    assert!(has(
        &errors(
            &ws,
            &byo(vec![gpu_node("n1", "tuning-phi-3", "Tesla-T4", "4096")])
        ),
        "missing"
    ));
}

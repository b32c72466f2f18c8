use super::*;

fn errors(text: &str) -> Vec<(String, String)> {
    match TuningConfig::parse(text) {
        Ok(_) => Vec::new(),
        Err(errs) => errs
            .iter()
            .map(|e| (e.path.clone(), e.message.clone()))
            .collect(),
    }
}

fn section(section: &str, body: &str) -> String {
    let body: String = body.lines().map(|l| format!("    {l}\n")).collect();
    format!("training_config:\n  {section}:\n{body}")
}

#[test]
fn defaults_equal_kaitos_lora_template() {
    let mut expected = TuningConfig::default();
    expected.model.torch_dtype = Some(TorchDtype::Bfloat16);
    expected.model.local_files_only = true;
    expected.training.output_dir = "/mnt/results".to_owned();
    expected.training.save_strategy = IntervalStrategy::Epoch;
    expected.training.per_device_train_batch_size = 1;
    expected.data_collator.mlm = true;
    expected.dataset.shuffle_dataset = true;
    expected.dataset.train_test_split = 1.0;
    assert_eq!(
        TuningConfig::parse(LORA_PARAMS_TEMPLATE),
        Ok(expected.clone())
    );
    assert_eq!(TuningConfig::kaito_default(TuningMethod::Lora), expected);

    expected.quantization = QuantizationConfig {
        load_in_4bit: true,
        bnb_4bit_quant_type: QuantType::Nf4,
        bnb_4bit_compute_dtype: TorchDtype::Bfloat16,
        bnb_4bit_use_double_quant: true,
    };
    assert_eq!(TuningConfig::kaito_default(TuningMethod::Qlora), expected);
    assert_eq!(
        TuningConfig::kaito_default(TuningMethod::Qlora).method(),
        TuningMethod::Qlora
    );
}

#[test]
fn default_config_maps_carry_the_templates() {
    let cm = default_config_map(TuningMethod::Qlora, "kaito-system");
    assert_eq!(cm.metadata.name.as_deref(), Some("qlora-params-template"));
    assert_eq!(cm.metadata.namespace.as_deref(), Some("kaito-system"));
    let cfg = TuningConfig::from_config_map(&cm).expect("parses");
    assert_eq!(cfg, TuningConfig::kaito_default(TuningMethod::Qlora));
    assert!(TuningConfig::check_method(&cfg, TuningMethod::Qlora).is_empty());
    // The chart's text, not a re-serialisation: its comments are there.
    assert!(LORA_PARAMS_TEMPLATE.contains("# Default to save at end of each epoch"));
}

#[test]
fn unknown_keys_name_their_path_and_the_expected_keys() {
    let errs = errors(&section("LoraConfig", "rnk: 16"));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].0, "training_config.LoraConfig.rnk");
    assert!(
        errs[0]
            .1
            .starts_with("unknown key; expected one of r, lora_alpha, lora_dropout"),
        "{}",
        errs[0].1
    );
}

#[test]
fn unknown_sections_and_top_level_keys_are_errors() {
    let errs = errors("training_config:\n  LoRAConfig:\n    r: 8\n");
    assert_eq!(errs[0].0, "training_config.LoRAConfig");
    assert!(errs[0].1.contains("unknown section"), "{}", errs[0].1);
    let errs = errors("trainingconfig:\n  LoraConfig: {}\n");
    assert!(errs.iter().any(|(p, _)| p == "trainingconfig"), "{errs:?}");
    assert!(
        errs.iter()
            .any(|(p, m)| p == "training_config" && m.contains("missing")),
        "{errs:?}"
    );
}

#[test]
fn unimplemented_keys_are_rejected_unless_harmless() {
    let errs = errors(&section(
        "TrainingArguments",
        "fp16: true\ngradient_checkpointing: true\nreport_to: wandb",
    ));
    let paths: Vec<&str> = errs.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "training_config.TrainingArguments.fp16",
            "training_config.TrainingArguments.gradient_checkpointing",
            "training_config.TrainingArguments.report_to"
        ]
    );
    assert!(
        errs.iter().all(|(_, m)| m.contains("not supported")),
        "{errs:?}"
    );
    assert!(
        errors(&section(
            "TrainingArguments",
            "fp16: false\nreport_to: none\ndeepspeed: null"
        ))
        .is_empty()
    );
    let errs = errors(&section("QuantizationConfig", "load_in_8bit: true"));
    assert!(errs[0].1.contains("not supported"), "{errs:?}");
}

#[test]
fn no_effect_keys_are_accepted() {
    assert!(
        errors(&section(
            "TrainingArguments",
            "ddp_find_unused_parameters: true\ndisable_tqdm: true"
        ))
        .is_empty()
    );
}

#[test]
fn wrong_types_and_ranges_name_the_key() {
    let errs = errors(&section("LoraConfig", "r: many\nlora_dropout: 1.5"));
    assert_eq!(errs[0].0, "training_config.LoraConfig.r");
    assert!(errs[0].1.contains("integer"), "{}", errs[0].1);
    assert_eq!(errs[1].0, "training_config.LoraConfig.lora_dropout");
    let errs = errors(&section(
        "TrainingArguments",
        "lr_scheduler_type: polynomial",
    ));
    assert!(
        errs[0]
            .1
            .contains("expected one of constant, constant_with_warmup, linear, cosine"),
        "{errs:?}"
    );
}

#[test]
fn output_dir_must_be_under_mnt() {
    for (dir, ok) in [
        ("/mnt/results", true),
        ("/mnt/results/run1", true),
        ("/mnt", false),
        ("/tmp/out", false),
        ("/mnt/../etc", false),
        ("results", false),
    ] {
        let errs = errors(&section(
            "TrainingArguments",
            &format!("output_dir: {dir:?}"),
        ));
        assert_eq!(errs.is_empty(), ok, "{dir}: {errs:?}");
    }
}

#[test]
fn qlora_needs_nf4() {
    let errs = errors(&section("QuantizationConfig", "load_in_4bit: true"));
    assert_eq!(
        errs[0].0,
        "training_config.QuantizationConfig.bnb_4bit_quant_type"
    );
    assert!(
        errors(&section(
            "QuantizationConfig",
            "load_in_4bit: true\nbnb_4bit_quant_type: nf4"
        ))
        .is_empty()
    );
}

#[test]
fn method_rules_follow_kaitos_webhook() {
    let lora = TuningConfig::kaito_default(TuningMethod::Lora);
    let qlora = TuningConfig::kaito_default(TuningMethod::Qlora);
    assert!(lora.check_method(TuningMethod::Lora).is_empty());
    assert_eq!(lora.check_method(TuningMethod::Qlora).iter().count(), 1);
    assert_eq!(qlora.check_method(TuningMethod::Lora).iter().count(), 1);
    // A user config without QuantizationConfig cannot be qlora.
    let bare = TuningConfig::parse(&section("LoraConfig", "r: 16")).expect("parses");
    assert!(!bare.check_method(TuningMethod::Qlora).is_empty());
}

#[test]
fn target_modules_take_names_or_all_linear() {
    let cfg = TuningConfig::parse(&section("LoraConfig", "target_modules: [q_proj, v_proj]"))
        .expect("list");
    assert_eq!(
        cfg.lora.target_modules,
        Some(TargetModules::Names(vec!["q_proj".into(), "v_proj".into()]))
    );
    let cfg = TuningConfig::parse(&section("LoraConfig", "target_modules: all-linear"))
        .expect("all-linear");
    assert_eq!(cfg.lora.target_modules, Some(TargetModules::AllLinear));
    assert!(!errors(&section("LoraConfig", "target_modules: '.*proj'")).is_empty());
}

#[test]
fn evaluation_needs_an_eval_split() {
    let text = "training_config:\n  TrainingArguments:\n    eval_strategy: steps\n  DatasetConfig:\n    train_test_split: 1\n";
    assert_eq!(
        errors(text)[0].0,
        "training_config.TrainingArguments.eval_strategy"
    );
    assert!(errors(&text.replace("train_test_split: 1", "train_test_split: 0.9")).is_empty());
}

#[test]
fn dataset_path_stays_inside_the_data_directory() {
    assert!(
        errors(&section(
            "DatasetConfig",
            "dataset_path: data/train.parquet"
        ))
        .is_empty()
    );
    assert!(!errors(&section("DatasetConfig", "dataset_path: ../secrets")).is_empty());
    assert!(!errors(&section("DatasetConfig", "dataset_path: /etc/passwd")).is_empty());
}

#[test]
fn garbage_never_panics_and_is_reported() {
    for text in [
        "",
        "- 1\n- 2",
        "training_config: 3",
        "training_config:\n  LoraConfig: [1]",
        ":\n  - {",
        "training_config:\n  LoraConfig:\n    r: -1",
    ] {
        assert!(TuningConfig::parse(text).is_err(), "{text:?} accepted");
    }
    let err = TuningConfig::from_yaml(&section("LoraConfig", "rnk: 1\nzeta: 2")).unwrap_err();
    let Error::TuningConfig { path, message } = err else {
        panic!("wrong variant")
    };
    assert_eq!(path, "training_config.LoraConfig.rnk");
    assert!(message.ends_with("(and 1 more problems)"), "{message}");
}

#[test]
fn config_maps_without_the_key_are_an_error() {
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some("mine".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let err = TuningConfig::from_config_map(&cm).unwrap_err();
    assert!(err.to_string().contains("training_config.yaml"), "{err}");
}

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

//! Reading `training_config.yaml` into [`TuningConfig`], collecting every problem with its path.
//!
//! KAITO flattens each key into an `argv` flag for `HfArgumentParser`, so strings such as
//! `"2e-4"` or `"True"` work there; they are accepted here too.

use serde_json::{Map, Value};

use super::TuningConfig;
use super::keys::{self, SECTIONS};
use super::sections::{
    DatasetFormat, IntervalStrategy, LrScheduler, QuantType, TargetModules, TorchDtype,
};
use crate::validation::FieldErrors;

/// Root key of the document.
pub const ROOT: &str = "training_config";

type Set = Result<(), String>;

/// Parses the YAML text over library defaults; the returned errors carry paths such as
/// `training_config.LoraConfig.rnk`.
pub(super) fn parse(text: &str) -> (TuningConfig, FieldErrors) {
    let mut cfg = TuningConfig::default();
    let mut errs = FieldErrors::default();
    let doc: Value = match serde_saphyr::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            errs.push(ROOT, format!("not valid YAML: {e}"));
            return (cfg, errs);
        }
    };
    let Some(root) = doc.as_object() else {
        errs.push(
            ROOT,
            "the document must be a map with the single key `training_config`",
        );
        return (cfg, errs);
    };
    for key in root.keys().filter(|k| k.as_str() != ROOT) {
        errs.push(key.clone(), format!("unknown key; expected `{ROOT}`"));
    }
    let sections = match root.get(ROOT) {
        Some(Value::Object(m)) => m.clone(),
        Some(Value::Null) => Map::new(),
        Some(_) => {
            errs.push(ROOT, "must be a map of sections");
            return (cfg, errs);
        }
        None => {
            errs.push(
                ROOT,
                "missing; the document must start with `training_config:`",
            );
            return (cfg, errs);
        }
    };
    for (section, body) in &sections {
        let path = format!("{ROOT}.{section}");
        let Some(table) = keys::section_keys(section) else {
            errs.push(
                path,
                format!("unknown section; expected one of {}", SECTIONS.join(", ")),
            );
            continue;
        };
        let body = match body {
            Value::Object(m) => m,
            Value::Null => continue,
            _ => {
                errs.push(path, "must be a map of keys");
                continue;
            }
        };
        for (key, value) in body {
            let at = format!("{path}.{key}");
            if value.is_null() {
                continue; // null means "library default", as argparse sees no flag
            }
            if table.supported.contains(&key.as_str()) {
                if let Err(message) = set(&mut cfg, section, key, value) {
                    errs.push(at, message);
                }
            } else if table.no_effect.iter().any(|(k, _)| *k == key.as_str()) {
                // Accepted on purpose: see docs/tuning-config.md.
            } else if let Some(u) = table.unsupported.iter().find(|u| u.key == key) {
                if !u.harmless.iter().any(|h| same_value(value, h)) {
                    errs.push(
                        at,
                        format!(
                            "not supported by kaito-rs ({}); remove it or set it to {}",
                            u.reason,
                            u.harmless.first().copied().unwrap_or("null")
                        ),
                    );
                }
            } else {
                errs.push(
                    at,
                    format!(
                        "unknown key; expected one of {}",
                        table.supported.join(", ")
                    ),
                );
            }
        }
    }
    (cfg, errs)
}

/// Whether `value` equals the JSON literal `literal`, comparing numbers numerically.
fn same_value(value: &Value, literal: &str) -> bool {
    let Ok(expected) = serde_json::from_str::<Value>(literal) else {
        return false;
    };
    match (value, &expected) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::String(s), Value::Bool(b)) => parse_bool(s) == Some(*b),
        _ => *value == expected,
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "yes" | "y" | "t" | "1" => Some(true),
        "false" | "no" | "n" | "f" | "0" => Some(false),
        _ => None,
    }
}

fn bool_(v: &Value) -> Result<bool, String> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) => {
            parse_bool(s).ok_or_else(|| format!("expected true or false, got {s:?}"))
        }
        other => Err(format!("expected true or false, got {other}")),
    }
}

fn f64_(v: &Value) -> Result<f64, String> {
    let n = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    n.filter(|x| x.is_finite())
        .ok_or_else(|| format!("expected a number, got {v}"))
}

fn i64_(v: &Value) -> Result<i64, String> {
    let n = match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    n.ok_or_else(|| format!("expected an integer, got {v}"))
}

fn u64_(v: &Value) -> Result<u64, String> {
    u64::try_from(i64_(v)?).map_err(|_| format!("expected a non-negative integer, got {v}"))
}

fn u32_(v: &Value) -> Result<u32, String> {
    u32::try_from(u64_(v)?).map_err(|_| format!("{v} is too large"))
}

fn str_(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(format!("expected a string, got {other}")),
    }
}

fn one_of<T: Copy>(v: &Value, options: &[(&str, T)]) -> Result<T, String> {
    let s = str_(v)?;
    options
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(&s))
        .map(|(_, t)| *t)
        .ok_or_else(|| {
            let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
            format!(
                "{s:?} is not supported; expected one of {}",
                names.join(", ")
            )
        })
}

fn dtype(v: &Value) -> Result<TorchDtype, String> {
    let s = str_(v)?;
    TorchDtype::parse(&s).ok_or_else(|| {
        format!("{s:?} is not supported; expected one of auto, bfloat16, float16, float32")
    })
}

fn strategy(v: &Value) -> Result<IntervalStrategy, String> {
    one_of(
        v,
        &[
            ("no", IntervalStrategy::No),
            ("steps", IntervalStrategy::Steps),
            ("epoch", IntervalStrategy::Epoch),
        ],
    )
}

fn set(cfg: &mut TuningConfig, section: &str, key: &str, v: &Value) -> Set {
    match (section, key) {
        ("ModelConfig", "torch_dtype") => cfg.model.torch_dtype = Some(dtype(v)?),
        ("ModelConfig", "local_files_only") => cfg.model.local_files_only = bool_(v)?,
        ("ModelConfig", "device_map") => {
            let s =
                str_(v).map_err(|_| "only \"auto\" is supported (one GPU per job)".to_owned())?;
            if s != "auto" {
                return Err(format!(
                    "{s:?} is not supported; only \"auto\" (one GPU per job)"
                ));
            }
            cfg.model.device_map = s;
        }
        ("ModelConfig", "trust_remote_code") => {
            if bool_(v)? {
                return Err(
                    "not supported by kaito-rs: no Python model code is ever run; set it to false"
                        .to_owned(),
                );
            }
        }
        ("ModelConfig", "chat_template") => cfg.model.chat_template = Some(str_(v)?),
        ("QuantizationConfig", "load_in_4bit") => cfg.quantization.load_in_4bit = bool_(v)?,
        ("QuantizationConfig", "load_in_8bit") => {
            if bool_(v)? {
                return Err(
                    "not supported by kaito-rs: 8-bit loading is not implemented; use load_in_4bit"
                        .to_owned(),
                );
            }
        }
        ("QuantizationConfig", "bnb_4bit_quant_type") => {
            cfg.quantization.bnb_4bit_quant_type =
                one_of(v, &[("nf4", QuantType::Nf4), ("fp4", QuantType::Fp4)])?;
        }
        ("QuantizationConfig", "bnb_4bit_compute_dtype") => {
            cfg.quantization.bnb_4bit_compute_dtype = dtype(v)?
        }
        ("QuantizationConfig", "bnb_4bit_use_double_quant") => {
            cfg.quantization.bnb_4bit_use_double_quant = bool_(v)?
        }
        ("QuantizationConfig", "quant_method") => {
            one_of(v, &[("bitsandbytes", ())])?;
        }
        ("LoraConfig", "r") => cfg.lora.r = u32_(v)?,
        ("LoraConfig", "lora_alpha") => cfg.lora.lora_alpha = f64_(v)?,
        ("LoraConfig", "lora_dropout") => cfg.lora.lora_dropout = f64_(v)?,
        ("LoraConfig", "target_modules") => cfg.lora.target_modules = Some(target_modules(v)?),
        ("LoraConfig", "bias") => {
            one_of(v, &[("none", ())])
                .map_err(|e| format!("{e} (bias training is not implemented)"))?;
        }
        ("LoraConfig", "init_lora_weights") => {
            if !matches!(v, Value::Bool(true))
                && !matches!(v, Value::String(s) if parse_bool(s) == Some(true))
            {
                return Err("only true (Kaiming-uniform A, zero B) is supported".to_owned());
            }
        }
        ("LoraConfig", "use_rslora") => cfg.lora.use_rslora = bool_(v)?,
        ("LoraConfig", "task_type") => {
            one_of(v, &[("CAUSAL_LM", ())])?;
        }
        ("TrainingArguments", key) => set_training(cfg, key, v)?,
        ("DataCollator", "mlm") => cfg.data_collator.mlm = bool_(v)?,
        ("DataCollator", "mlm_probability") => cfg.data_collator.mlm_probability = f64_(v)?,
        ("DatasetConfig", "dataset_path") => cfg.dataset.dataset_path = Some(str_(v)?),
        ("DatasetConfig", "dataset_extension") => {
            cfg.dataset.dataset_extension = Some(one_of(
                v,
                &[
                    ("csv", DatasetFormat::Csv),
                    ("json", DatasetFormat::Json),
                    ("jsonl", DatasetFormat::Jsonl),
                    ("parquet", DatasetFormat::Parquet),
                    ("arrow", DatasetFormat::Arrow),
                ],
            )?);
        }
        ("DatasetConfig", "shuffle_dataset") => cfg.dataset.shuffle_dataset = bool_(v)?,
        ("DatasetConfig", "shuffle_seed") => cfg.dataset.shuffle_seed = u64_(v)?,
        ("DatasetConfig", "context_column") => cfg.dataset.context_column = Some(str_(v)?),
        ("DatasetConfig", "response_column") => cfg.dataset.response_column = str_(v)?,
        ("DatasetConfig", "messages_column") => cfg.dataset.messages_column = Some(str_(v)?),
        ("DatasetConfig", "train_test_split") => cfg.dataset.train_test_split = f64_(v)?,
        _ => return Err("unknown key".to_owned()),
    }
    Ok(())
}

fn target_modules(v: &Value) -> Result<TargetModules, String> {
    match v {
        Value::String(s) if s == "all-linear" => Ok(TargetModules::AllLinear),
        Value::String(s) => Err(format!(
            "{s:?}: a regular expression is not supported; list module names (e.g. [q_proj, v_proj]) or use \"all-linear\""
        )),
        Value::Array(items) => {
            let names: Option<Vec<String>> = items
                .iter()
                .map(|i| i.as_str().map(str::to_owned))
                .collect();
            match names {
                Some(n) if !n.is_empty() && n.iter().all(|s| !s.is_empty()) => {
                    Ok(TargetModules::Names(n))
                }
                _ => Err("expected a non-empty list of module names".to_owned()),
            }
        }
        other => Err(format!(
            "expected a list of module names or \"all-linear\", got {other}"
        )),
    }
}

fn set_training(cfg: &mut TuningConfig, key: &str, v: &Value) -> Set {
    let t = &mut cfg.training;
    match key {
        "output_dir" => t.output_dir = str_(v)?,
        "num_train_epochs" => t.num_train_epochs = f64_(v)?,
        "max_steps" => t.max_steps = i64_(v)?,
        "learning_rate" => t.learning_rate = f64_(v)?,
        "per_device_train_batch_size" => t.per_device_train_batch_size = u32_(v)?,
        "per_device_eval_batch_size" => t.per_device_eval_batch_size = u32_(v)?,
        "gradient_accumulation_steps" => t.gradient_accumulation_steps = u32_(v)?,
        "warmup_steps" => t.warmup_steps = u64_(v)?,
        "warmup_ratio" => t.warmup_ratio = f64_(v)?,
        "lr_scheduler_type" => {
            t.lr_scheduler_type = one_of(
                v,
                &[
                    ("constant", LrScheduler::Constant),
                    ("constant_with_warmup", LrScheduler::ConstantWithWarmup),
                    ("linear", LrScheduler::Linear),
                    ("cosine", LrScheduler::Cosine),
                ],
            )?;
        }
        "weight_decay" => t.weight_decay = f64_(v)?,
        "adam_beta1" => t.adam_beta1 = f64_(v)?,
        "adam_beta2" => t.adam_beta2 = f64_(v)?,
        "adam_epsilon" => t.adam_epsilon = f64_(v)?,
        "max_grad_norm" => t.max_grad_norm = f64_(v)?,
        "seed" => t.seed = u64_(v)?,
        "save_strategy" => t.save_strategy = strategy(v)?,
        "save_steps" => t.save_steps = f64_(v)?,
        "save_total_limit" => t.save_total_limit = Some(u32_(v)?),
        "logging_strategy" => t.logging_strategy = strategy(v)?,
        "logging_steps" => t.logging_steps = f64_(v)?,
        "eval_strategy" | "evaluation_strategy" => t.eval_strategy = strategy(v)?,
        "eval_steps" => t.eval_steps = Some(f64_(v)?),
        "max_seq_length" | "max_length" => t.max_seq_length = u32_(v)?,
        "packing" => t.packing = bool_(v)?,
        "dataset_text_field" => t.dataset_text_field = str_(v)?,
        "optim" => {
            // The fused and plain torch AdamW compute the same update.
            one_of(
                v,
                &[
                    ("adamw_torch", ()),
                    ("adamw_torch_fused", ()),
                    ("adamw_hf", ()),
                ],
            )
            .map_err(|e| format!("{e} (only AdamW is implemented)"))?;
        }
        _ => return Err("unknown key".to_owned()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_key_has_a_setter() {
        for section in SECTIONS {
            for key in keys::section_keys(section).expect("known").supported {
                let mut cfg = TuningConfig::default();
                // An object is the wrong type for every key: the setter must say so, not "unknown".
                let err = set(&mut cfg, section, key, &serde_json::json!({"x": 1})).unwrap_err();
                assert_ne!(err, "unknown key", "{section}.{key} has no setter");
            }
        }
    }

    #[test]
    fn strings_are_read_as_argparse_would() {
        let (cfg, errs) = parse(
            "training_config:\n  TrainingArguments:\n    learning_rate: \"2e-4\"\n    packing: \"True\"\n",
        );
        assert!(errs.is_empty(), "{errs}");
        assert_eq!(cfg.training.learning_rate, 2e-4);
        assert!(cfg.training.packing);
    }
}

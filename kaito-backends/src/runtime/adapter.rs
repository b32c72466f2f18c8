//! PEFT adapters on disk: `adapter_config.json` + `adapter_model.safetensors` (written atomically,
//! then KAITO's `fine_tuning_completed.txt` sentinel), and reading adapters PEFT wrote.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use burn::prelude::*;
use serde_json::{Value, json};

use super::config::ModelConfig;
use super::lora::{LoraLayout, LoraSettings, LoraWeights};
use super::weights::{
    HostTensor, SaveDtype, load_safetensors_file, save_safetensors, write_atomic,
};
use crate::{Error, Result};

/// KAITO's completion sentinel.
pub const SENTINEL: &str = "fine_tuning_completed.txt";

/// The adapter's tensors by PEFT name.
pub fn peft_tensors<B: Backend>(
    layout: &LoraLayout,
    weights: &LoraWeights<B>,
) -> BTreeMap<String, HostTensor> {
    let mut out = BTreeMap::new();
    for ((layer, module), idx) in &layout.slots {
        let prefix = LoraLayout::peft_prefix(*layer, module);
        for (suffix, t) in [
            ("lora_A.weight", weights.a[*idx].val()),
            ("lora_B.weight", weights.b[*idx].val()),
        ] {
            let shape = t.dims().to_vec();
            let data = t
                .into_data()
                .convert::<f32>()
                .into_vec::<f32>()
                .unwrap_or_default();
            out.insert(format!("{prefix}.{suffix}"), HostTensor::new(shape, data));
        }
    }
    out
}

/// PEFT's `adapter_config.json` for this adapter.
pub fn adapter_config(layout: &LoraLayout, base_model: &str) -> Value {
    let s = &layout.settings;
    let alpha = if s.lora_alpha.fract() == 0.0 {
        json!(s.lora_alpha as i64)
    } else {
        json!(s.lora_alpha)
    };
    let mut targets = s.target_modules.clone();
    targets.sort();
    json!({
        "alpha_pattern": {},
        "auto_mapping": null,
        "base_model_name_or_path": base_model,
        "bias": "none",
        "fan_in_fan_out": false,
        "inference_mode": true,
        "init_lora_weights": true,
        "layer_replication": null,
        "layers_pattern": null,
        "layers_to_transform": null,
        "loftq_config": {},
        "lora_alpha": alpha,
        "lora_dropout": s.lora_dropout,
        "megatron_config": null,
        "megatron_core": "megatron.core",
        "modules_to_save": null,
        "peft_type": "LORA",
        "r": s.r,
        "rank_pattern": {},
        "revision": null,
        "target_modules": targets,
        "task_type": "CAUSAL_LM",
        "use_dora": false,
        "use_rslora": false
    })
}

/// Writes the adapter into `dir` (safetensors, then config, each via temp file + rename), then the
/// completion sentinel.
pub fn save_adapter<B: Backend>(
    dir: &Path,
    layout: &LoraLayout,
    weights: &LoraWeights<B>,
    base_model: &str,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let tensors = peft_tensors(layout, weights);
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    save_safetensors(
        &dir.join("adapter_model.safetensors"),
        &tensors,
        SaveDtype::F32,
        Some(meta),
    )?;
    let cfg = serde_json::to_vec_pretty(&adapter_config(layout, base_model))
        .map_err(|e| Error::invalid("adapter_config.json", e.to_string()))?;
    write_atomic(&dir.join("adapter_config.json"), &cfg)?;
    write_atomic(&dir.join(SENTINEL), b"Fine-Tuning completed\n")
}

/// A loaded adapter (host tensors plus layout).
#[derive(Debug, Clone)]
pub struct LoadedAdapter {
    /// Layout and settings.
    pub layout: LoraLayout,
    /// Tensors by PEFT name.
    pub tensors: HashMap<String, HostTensor>,
    /// `base_model_name_or_path` from the config.
    pub base_model: Option<String>,
}

impl LoadedAdapter {
    /// The tensors on `device`.
    pub fn weights<B: Backend>(
        &self,
        cfg: &ModelConfig,
        device: &B::Device,
    ) -> Result<LoraWeights<B>> {
        LoraWeights::from_host(
            cfg,
            &self.layout,
            &self.tensors,
            "adapter_model.safetensors",
            device,
        )
    }
}

/// Reads a PEFT LoRA adapter directory for `cfg`'s model; settings this runtime cannot apply are
/// errors naming the field.
pub fn load_adapter(dir: &Path, cfg: &ModelConfig) -> Result<LoadedAdapter> {
    let cpath = dir.join("adapter_config.json");
    let what = cpath.display().to_string();
    let text = std::fs::read_to_string(&cpath).map_err(|e| Error::io(&cpath, e))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| Error::invalid(&what, e.to_string()))?;
    let unsupported = |field: &str, msg: &str| Error::Unsupported {
        field: format!("{what}: {field}"),
        message: msg.into(),
    };
    if v.get("peft_type").and_then(|p| p.as_str()) != Some("LORA") {
        return Err(unsupported("peft_type", "only LORA adapters are supported"));
    }
    let truthy = |k: &str| v.get(k).and_then(|x| x.as_bool()).unwrap_or(false);
    if truthy("use_dora") {
        return Err(unsupported("use_dora", "DoRA is not supported"));
    }
    if truthy("use_rslora") {
        return Err(unsupported(
            "use_rslora",
            "rank-stabilised scaling is not supported",
        ));
    }
    if truthy("fan_in_fan_out") {
        return Err(unsupported(
            "fan_in_fan_out",
            "only fan_in_fan_out=false is supported",
        ));
    }
    for k in ["rank_pattern", "alpha_pattern"] {
        if v.get(k)
            .and_then(|x| x.as_object())
            .is_some_and(|o| !o.is_empty())
        {
            return Err(unsupported(k, "per-module ranks/alphas are not supported"));
        }
    }
    for k in [
        "layers_to_transform",
        "modules_to_save",
        "layer_replication",
    ] {
        if v.get(k).is_some_and(|x| !x.is_null()) {
            return Err(unsupported(k, "must be null"));
        }
    }
    if v.get("bias")
        .and_then(|b| b.as_str())
        .is_some_and(|b| b != "none")
    {
        return Err(unsupported("bias", "only bias \"none\" is supported"));
    }
    let r = v
        .get("r")
        .and_then(|x| x.as_u64())
        .ok_or_else(|| Error::invalid(&what, "`r` is missing"))? as usize;
    let lora_alpha = v.get("lora_alpha").and_then(|x| x.as_f64()).unwrap_or(8.0);
    let lora_dropout = v
        .get("lora_dropout")
        .and_then(|x| x.as_f64())
        .unwrap_or(0.0);
    let target_modules = match v.get("target_modules") {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect(),
        Some(Value::String(s)) if s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
            vec![s.clone()]
        }
        Some(Value::String(_)) => {
            return Err(unsupported(
                "target_modules",
                "regular expressions are not supported",
            ));
        }
        _ => return Err(Error::invalid(&what, "`target_modules` is missing")),
    };
    let layout = LoraLayout::new(
        cfg,
        LoraSettings {
            r,
            lora_alpha,
            lora_dropout,
            target_modules,
        },
    )?;
    let wpath = dir.join("adapter_model.safetensors");
    if !wpath.exists() {
        return Err(Error::invalid(
            dir.display().to_string(),
            "adapter_model.safetensors is missing (adapter_model.bin is not supported)",
        ));
    }
    // PEFT may keep the adapter name ("default") in tensor names written by older versions.
    let tensors = load_safetensors_file(&wpath)?
        .into_iter()
        .map(|(k, t)| {
            (
                k.replace(".lora_A.default.weight", ".lora_A.weight")
                    .replace(".lora_B.default.weight", ".lora_B.weight"),
                t,
            )
        })
        .collect();
    let base_model = v
        .get("base_model_name_or_path")
        .and_then(|x| x.as_str())
        .map(String::from);
    Ok(LoadedAdapter {
        layout,
        tensors,
        base_model,
    })
}

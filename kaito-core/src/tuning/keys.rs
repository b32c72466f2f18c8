//! Which keys of each section kaito-rs implements, accepts without effect, or rejects.
//!
//! A key the Python libraries know but kaito-rs does not implement is accepted only when its
//! value is one of the listed harmless values (the library default, which changes nothing);
//! any other value is a "not supported" error. Keys nobody knows are "unknown key" errors.

/// The six section names, in KAITO's order.
pub const SECTIONS: &[&str] = &[
    "ModelConfig",
    "QuantizationConfig",
    "LoraConfig",
    "TrainingArguments",
    "DataCollator",
    "DatasetConfig",
];

/// A known key kaito-rs does not implement.
pub(crate) struct Unsupported {
    pub key: &'static str,
    /// JSON literals of harmless values (the library default).
    pub harmless: &'static [&'static str],
    /// Why, or what to use instead.
    pub reason: &'static str,
}

const fn u(
    key: &'static str,
    harmless: &'static [&'static str],
    reason: &'static str,
) -> Unsupported {
    Unsupported {
        key,
        harmless,
        reason,
    }
}

/// The key tables of one section.
pub(crate) struct SectionKeys {
    pub supported: &'static [&'static str],
    /// Keys accepted for compatibility that cannot change anything in kaito-rs, with why.
    pub no_effect: &'static [(&'static str, &'static str)],
    pub unsupported: &'static [Unsupported],
}

const NULL: &[&str] = &["null"];
const FALSE: &[&str] = &["false", "null"];
const EMPTY_MAP: &[&str] = &["{}", "null"];
const LOCAL: &str = "the base model is the workspace's preset, loaded from local files";
const ONE_GPU: &str = "kaito-rs trains in one process on one GPU";

#[rustfmt::skip]
pub(crate) const MODEL: SectionKeys = SectionKeys {
    supported: &[
        "torch_dtype", "local_files_only", "device_map", "trust_remote_code", "chat_template",
    ],
    no_effect: &[],
    unsupported: &[
        u("pretrained_model_name_or_path", NULL, "set tuning.preset.name instead"),
        u("state_dict", NULL, LOCAL),
        u("cache_dir", NULL, LOCAL),
        u("force_download", FALSE, LOCAL),
        u("proxies", NULL, LOCAL),
        u("resume_download", &["null", "false", "true"], LOCAL),
        u("output_loading_info", FALSE, "there is no Python caller to return it to"),
        u("revision", &["\"main\"", "null"], LOCAL),
        u("token", NULL, "use presetOptions.modelAccessSecret"),
        u("use_auth_token", NULL, "use presetOptions.modelAccessSecret"),
        u("subfolder", &["\"\"", "null"], LOCAL),
        u("variant", NULL, LOCAL),
        u("use_safetensors", &["null", "true"], "only safetensors weights are read"),
        u("low_cpu_mem_usage", &["null", "true", "false"], "loading is always streamed"),
        u("attn_implementation", &["null", "\"eager\"", "\"sdpa\""], "the runtime picks its attention kernel"),
        u("offload_folder", NULL, ONE_GPU),
        u("offload_state_dict", FALSE, ONE_GPU),
        u("max_memory", NULL, ONE_GPU),
        u("quantization_config", NULL, "use the QuantizationConfig section"),
    ],
};

#[rustfmt::skip]
pub(crate) const QUANTIZATION: SectionKeys = SectionKeys {
    supported: &[
        "load_in_4bit", "load_in_8bit", "bnb_4bit_quant_type", "bnb_4bit_compute_dtype",
        "bnb_4bit_use_double_quant", "quant_method",
    ],
    no_effect: &[],
    unsupported: &[
        u("llm_int8_threshold", &["6.0", "6", "null"], "8-bit loading is not implemented"),
        u("llm_int8_skip_modules", NULL, "8-bit loading is not implemented"),
        u("llm_int8_enable_fp32_cpu_offload", FALSE, "8-bit loading is not implemented"),
        u("llm_int8_has_fp16_weight", FALSE, "8-bit loading is not implemented"),
        u("bnb_4bit_quant_storage", &["null", "\"uint8\""], "4-bit weights are stored packed in bytes"),
    ],
};

#[rustfmt::skip]
pub(crate) const LORA: SectionKeys = SectionKeys {
    supported: &[
        "r", "lora_alpha", "lora_dropout", "target_modules", "bias", "init_lora_weights", "use_rslora",
        "task_type",
    ],
    no_effect: &[("inference_mode", "training always runs in training mode")],
    unsupported: &[
        u("fan_in_fan_out", FALSE, "only nn.Linear-layout weights are adapted"),
        u("modules_to_save", NULL, "only LoRA matrices are trained"),
        u("layers_to_transform", NULL, "every layer is adapted"),
        u("layers_pattern", NULL, "every layer is adapted"),
        u("rank_pattern", EMPTY_MAP, "one rank for every module"),
        u("alpha_pattern", EMPTY_MAP, "one alpha for every module"),
        u("use_dora", FALSE, "DoRA is not implemented"),
        u("loftq_config", EMPTY_MAP, "LoftQ initialisation is not implemented"),
        u("megatron_config", NULL, ONE_GPU),
        u("megatron_core", &["\"megatron.core\"", "null"], ONE_GPU),
        u("layer_replication", NULL, "layer replication is not implemented"),
        u("exclude_modules", NULL, "list the modules to adapt in target_modules"),
        u("lora_bias", FALSE, "LoRA bias terms are not implemented"),
        u("target_parameters", NULL, "only linear modules are adapted"),
        u("eva_config", NULL, "EVA initialisation is not implemented"),
        u("corda_config", NULL, "CorDA initialisation is not implemented"),
        u("use_qalora", FALSE, "QALoRA is not implemented"),
        u("base_model_name_or_path", NULL, "set tuning.preset.name instead"),
        u("revision", NULL, LOCAL),
        u("peft_type", &["\"LORA\"", "null"], "only LoRA adapters are trained"),
    ],
};

#[rustfmt::skip]
pub(crate) const TRAINING: SectionKeys = SectionKeys {
    supported: &[
        "output_dir", "num_train_epochs", "max_steps", "learning_rate", "per_device_train_batch_size",
        "per_device_eval_batch_size", "gradient_accumulation_steps", "warmup_steps", "warmup_ratio",
        "lr_scheduler_type", "weight_decay", "adam_beta1", "adam_beta2", "adam_epsilon", "max_grad_norm",
        "seed", "save_strategy", "save_steps", "save_total_limit", "logging_strategy", "logging_steps",
        "eval_strategy", "evaluation_strategy", "eval_steps", "max_seq_length", "max_length", "packing",
        "dataset_text_field", "optim",
    ],
    no_effect: &[
        ("ddp_find_unused_parameters", ONE_GPU),
        ("ddp_timeout", ONE_GPU),
        ("local_rank", ONE_GPU),
        (
            "disable_tqdm",
            "progress is reported through the workspace status and logs",
        ),
        (
            "overwrite_output_dir",
            "each job writes a fresh output directory",
        ),
        ("logging_dir", "metrics go to the job log"),
        ("run_name", "metrics go to the job log"),
        (
            "save_safetensors",
            "adapters are always saved as safetensors",
        ),
        ("do_train", "the job always trains"),
    ],
    unsupported: &[
        u("fp16", FALSE, "mixed precision flags are not implemented; the compute dtype follows ModelConfig.torch_dtype"),
        u("bf16", FALSE, "mixed precision flags are not implemented; the compute dtype follows ModelConfig.torch_dtype"),
        u("tf32", NULL, "the runtime chooses matmul precision"),
        u("half_precision_backend", &["\"auto\"", "null"], "mixed precision is not implemented"),
        u("fp16_full_eval", FALSE, "mixed precision is not implemented"),
        u("bf16_full_eval", FALSE, "mixed precision is not implemented"),
        u("gradient_checkpointing", FALSE, "activation recomputation is not implemented"),
        u("gradient_checkpointing_kwargs", NULL, "activation recomputation is not implemented"),
        u("deepspeed", NULL, ONE_GPU),
        u("fsdp", &["\"\"", "[]", "null", "false"], ONE_GPU),
        u("fsdp_config", NULL, ONE_GPU),
        u("ddp_backend", NULL, ONE_GPU),
        u("report_to", &["\"none\"", "[]", "null", "\"all\"", "[\"none\"]"], "no experiment trackers are integrated; metrics go to the job log"),
        u("push_to_hub", FALSE, "the adapter is pushed to tuning.output"),
        u("hub_model_id", NULL, "the adapter is pushed to tuning.output"),
        u("hub_token", NULL, "the adapter is pushed to tuning.output"),
        u("hub_strategy", &["\"every_save\"", "null"], "the adapter is pushed to tuning.output"),
        u("resume_from_checkpoint", NULL, "resuming is not implemented"),
        u("load_best_model_at_end", FALSE, "the last adapter is saved"),
        u("metric_for_best_model", NULL, "the last adapter is saved"),
        u("greater_is_better", NULL, "the last adapter is saved"),
        u("save_only_model", FALSE, "checkpoints always hold the adapter only"),
        u("dataloader_num_workers", &["0", "null"], "data loading is in-process"),
        u("dataloader_pin_memory", &["true", "null"], "data loading is in-process"),
        u("dataloader_drop_last", FALSE, "the last partial batch is trained"),
        u("remove_unused_columns", &["true", "null"], "columns are selected by the dataset format"),
        u("group_by_length", FALSE, "length grouping is not implemented"),
        u("label_smoothing_factor", &["0", "0.0", "null"], "label smoothing is not implemented"),
        u("torch_compile", FALSE, "there is no PyTorch"),
        u("use_cpu", FALSE, "the device comes from the node"),
        u("no_cuda", FALSE, "the device comes from the node"),
        u("auto_find_batch_size", FALSE, "the batch size is fixed"),
        u("neftune_noise_alpha", NULL, "NEFTune is not implemented"),
        u("optim_args", NULL, "only AdamW with the adam_* keys"),
        u("lr_scheduler_kwargs", EMPTY_MAP, "schedulers take no extra arguments"),
        u("eval_accumulation_steps", NULL, "evaluation is not accumulated"),
        u("eval_delay", &["0", "null"], "evaluation starts at the first interval"),
        u("data_seed", NULL, "use seed and DatasetConfig.shuffle_seed"),
        u("logging_first_step", FALSE, "logging follows logging_steps"),
        u("include_num_input_tokens_seen", FALSE, "token counts are always logged"),
        u("dataset_kwargs", NULL, "the dataset is read by the runtime"),
        u("dataset_num_proc", NULL, "data loading is in-process"),
        u("completion_only_loss", NULL, "the loss covers completions for prompt/completion data, the assistant turns for chats"),
        u("assistant_only_loss", FALSE, "the loss covers completions for prompt/completion data, the assistant turns for chats"),
        u("padding_free", FALSE, "padding-free batching is not implemented"),
        u("eval_packing", NULL, "evaluation sequences are not packed"),
        u("model_init_kwargs", NULL, "use the ModelConfig section"),
        u("chat_template_path", NULL, "use ModelConfig.chat_template"),
        u("eos_token", NULL, "the tokenizer's EOS token is used"),
        u("pad_token", NULL, "the tokenizer's pad (or EOS) token is used"),
        u("do_eval", &["false", "true", "null"], "evaluation follows eval_strategy"),
        u("do_predict", FALSE, "prediction is not implemented"),
        u("prediction_loss_only", FALSE, "evaluation reports the loss only"),
    ],
};

#[rustfmt::skip]
pub(crate) const DATA_COLLATOR: SectionKeys = SectionKeys {
    supported: &["mlm", "mlm_probability"],
    no_effect: &[],
    unsupported: &[
        u("pad_to_multiple_of", NULL, "batches are padded to their longest sequence"),
        u("return_tensors", &["\"pt\"", "null"], "there is no PyTorch"),
        u("tokenizer", NULL, "the model's tokenizer is used"),
        u("whole_word_mask", FALSE, "masked language modelling does not apply to causal LMs"),
        u("mask_replace_prob", &["0.8", "null"], "masked language modelling does not apply to causal LMs"),
        u("random_replace_prob", &["0.1", "null"], "masked language modelling does not apply to causal LMs"),
        u("seed", NULL, "use TrainingArguments.seed"),
    ],
};

#[rustfmt::skip]
pub(crate) const DATASET: SectionKeys = SectionKeys {
    supported: &[
        "dataset_path", "dataset_extension", "shuffle_dataset", "shuffle_seed", "context_column",
        "response_column", "messages_column", "train_test_split",
    ],
    no_effect: &[],
    unsupported: &[],
};

/// The tables of a section by name.
pub(crate) fn section_keys(section: &str) -> Option<&'static SectionKeys> {
    Some(match section {
        "ModelConfig" => &MODEL,
        "QuantizationConfig" => &QUANTIZATION,
        "LoraConfig" => &LORA,
        "TrainingArguments" => &TRAINING,
        "DataCollator" => &DATA_COLLATOR,
        "DatasetConfig" => &DATASET,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_key_is_in_two_tables_of_a_section() {
        for section in SECTIONS {
            let keys = section_keys(section).expect("known");
            let mut all: Vec<&str> = keys.supported.to_vec();
            all.extend(keys.no_effect.iter().map(|(k, _)| *k));
            all.extend(keys.unsupported.iter().map(|k| k.key));
            let n = all.len();
            all.sort_unstable();
            all.dedup();
            assert_eq!(n, all.len(), "{section} lists a key twice");
        }
    }

    #[test]
    fn harmless_values_are_valid_json() {
        for section in SECTIONS {
            for k in section_keys(section).expect("known").unsupported {
                for h in k.harmless {
                    assert!(
                        serde_json::from_str::<serde_json::Value>(h).is_ok(),
                        "{section}.{}: {h}",
                        k.key
                    );
                }
            }
        }
    }
}

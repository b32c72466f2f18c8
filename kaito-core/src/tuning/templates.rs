//! KAITO's default tuning ConfigMaps (chart `charts/kaito/workspace/templates/lora-params.yaml`
//! and `qlora-params.yaml`, kaito.md §3.1), as text.
//!
//! The constants are the `training_config.yaml` values of those charts byte for byte, except that
//! the chart's 4-space block indentation is removed and its whitespace-only blank lines are empty.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::api::TuningMethod;

/// The ConfigMap key holding the tuning config.
pub const TRAINING_CONFIG_KEY: &str = "training_config.yaml";
/// The default lora ConfigMap, in the release namespace.
pub const LORA_TEMPLATE_NAME: &str = "lora-params-template";
/// The default qlora ConfigMap, in the release namespace.
pub const QLORA_TEMPLATE_NAME: &str = "qlora-params-template";

/// `lora-params-template`'s `training_config.yaml`.
pub const LORA_PARAMS_TEMPLATE: &str = r#"training_config:
  ModelConfig: # Configurable Parameters: https://huggingface.co/docs/transformers/v4.40.2/en/model_doc/auto#transformers.AutoModelForCausalLM.from_pretrained
    torch_dtype: "bfloat16"
    local_files_only: true
    device_map: "auto"
    # chat_template: "/workspace/chat_templates/phi-3.yaml" # Commented out to use default template

  QuantizationConfig: # Configurable Parameters: https://huggingface.co/docs/transformers/v4.40.2/en/main_classes/quantization#transformers.BitsAndBytesConfig
    load_in_4bit: false

  LoraConfig: # Configurable Parameters: https://huggingface.co/docs/peft/v0.8.2/en/package_reference/lora#peft.LoraConfig
    r: 8
    lora_alpha: 8
    lora_dropout: 0.0

  TrainingArguments: # Configurable Parameters: https://huggingface.co/docs/transformers/v4.40.2/en/main_classes/trainer#transformers.TrainingArguments
    output_dir: "/mnt/results"
    # num_train_epochs: <Defaults to 3, adjustable>
    ddp_find_unused_parameters: false # Default to false to prevent errors during distributed training
    save_strategy: "epoch" # Default to save at end of each epoch
    per_device_train_batch_size: 1

  DataCollator: # Configurable Parameters: https://huggingface.co/docs/transformers/v4.40.2/en/main_classes/data_collator#transformers.DataCollatorForLanguageModeling
    mlm: true # Default setting; included to show DataCollator can be updated.

  DatasetConfig: # Configurable Parameters: https://github.com/kaito-project/kaito/blob/main/presets/workspace/tuning/text-generation/cli.py#L44
    shuffle_dataset: true
    train_test_split: 1 # Default to using all data for fine-tuning due to strong pre-trained baseline and typically limited fine-tuning data
    # Expected Dataset format:
    # {"messages": [{"role": "system", "content": "Marv is a factual chatbot that is also sarcastic."}, {"role": "user", "content": "What's the capital of France?"}, {"role": "assistant", "content": "Paris, as if everyone doesn't know that already."}]}
    # e.g. https://huggingface.co/datasets/philschmid/dolly-15k-oai-style
"#;

/// `qlora-params-template`'s `training_config.yaml`.
pub const QLORA_PARAMS_TEMPLATE: &str = r#"training_config:
  ModelConfig: # Configurable Parameters: https://huggingface.co/docs/transformers/v4.40.2/en/model_doc/auto#transformers.AutoModelForCausalLM.from_pretrained
    torch_dtype: "bfloat16"
    local_files_only: true
    device_map: "auto"
    # chat_template: "/workspace/chat_templates/phi-3.yaml" # Commented out to use default template

  QuantizationConfig: # Configurable Parameters: https://huggingface.co/docs/transformers/v4.40.2/en/main_classes/quantization#transformers.BitsAndBytesConfig
    load_in_4bit: true
    bnb_4bit_quant_type: "nf4"
    bnb_4bit_compute_dtype: "bfloat16"
    bnb_4bit_use_double_quant: true

  LoraConfig: # Configurable Parameters: https://huggingface.co/docs/peft/v0.8.2/en/package_reference/lora#peft.LoraConfig
    r: 8
    lora_alpha: 8
    lora_dropout: 0.0

  TrainingArguments: # Configurable Parameters: https://huggingface.co/docs/transformers/v4.40.2/en/main_classes/trainer#transformers.TrainingArguments
    output_dir: "/mnt/results"
    # num_train_epochs: <Defaults to 3, adjustable>
    ddp_find_unused_parameters: false # Default to false to prevent errors during distributed training
    save_strategy: "epoch" # Default to save at end of each epoch
    per_device_train_batch_size: 1

  DataCollator: # Configurable Parameters: https://huggingface.co/docs/transformers/v4.40.2/en/main_classes/data_collator#transformers.DataCollatorForLanguageModeling
    mlm: true # Default setting; included to show DataCollator can be updated.

  DatasetConfig: # Configurable Parameters: https://github.com/kaito-project/kaito/blob/main/presets/workspace/tuning/text-generation/cli.py#L44
    shuffle_dataset: true
    train_test_split: 1 # Default to using all data for fine-tuning due to strong pre-trained baseline and typically limited fine-tuning data
    # Expected Dataset format:
    # {"messages": [{"role": "system", "content": "Marv is a factual chatbot that is also sarcastic."}, {"role": "user", "content": "What's the capital of France?"}, {"role": "assistant", "content": "Paris, as if everyone doesn't know that already."}]}
    # e.g. https://huggingface.co/datasets/philschmid/dolly-15k-oai-style
"#;

/// The default template's name for a method.
pub fn template_name(method: TuningMethod) -> &'static str {
    match method {
        TuningMethod::Lora => LORA_TEMPLATE_NAME,
        TuningMethod::Qlora => QLORA_TEMPLATE_NAME,
    }
}

/// The default ConfigMap for `method`, as the chart installs it in `namespace`.
pub fn default_config_map(method: TuningMethod, namespace: &str) -> ConfigMap {
    let text = match method {
        TuningMethod::Lora => LORA_PARAMS_TEMPLATE,
        TuningMethod::Qlora => QLORA_PARAMS_TEMPLATE,
    };
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(template_name(method).to_owned()),
            namespace: Some(namespace.to_owned()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            TRAINING_CONFIG_KEY.to_owned(),
            text.to_owned(),
        )])),
        ..ConfigMap::default()
    }
}

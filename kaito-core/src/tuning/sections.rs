//! The six sections of `training_config`, typed, with the defaults of the Python libraries KAITO
//! hands them to (transformers `from_pretrained`/`BitsAndBytesConfig`/`TrainingArguments`, PEFT
//! `LoraConfig`, TRL `SFTConfig`, KAITO's `DatasetConfig`). `docs/tuning-config.md` lists every
//! key, supported or not.

/// A tensor dtype as transformers spells it (`torch_dtype`, `bnb_4bit_compute_dtype`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TorchDtype {
    /// `auto`: the checkpoint's `torch_dtype` from `config.json`.
    Auto,
    /// `bfloat16`.
    Bfloat16,
    /// `float16` / `half`.
    Float16,
    /// `float32` / `float`.
    Float32,
}

impl TorchDtype {
    /// Parses a transformers dtype name.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim_start_matches("torch.") {
            "auto" => Some(Self::Auto),
            "bfloat16" => Some(Self::Bfloat16),
            "float16" | "half" => Some(Self::Float16),
            "float32" | "float" => Some(Self::Float32),
            _ => None,
        }
    }

    /// Bytes per element; `auto` counts as 2 (every catalog checkpoint is 16-bit).
    pub fn bytes(self) -> u64 {
        match self {
            Self::Float32 => 4,
            _ => 2,
        }
    }
}

/// `ModelConfig`: how the base model is loaded.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    /// Weight dtype of the frozen base (`None`: transformers' default, float32).
    pub torch_dtype: Option<TorchDtype>,
    /// Accepted; the weights are always local to the job in kaito-rs.
    pub local_files_only: bool,
    /// Only `auto`: the whole model goes on the job's one GPU.
    pub device_map: String,
    /// A chat template: a file path, or the template itself when it contains `{`, `}` or a newline.
    pub chat_template: Option<String>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            torch_dtype: None,
            local_files_only: false,
            device_map: "auto".to_owned(),
            chat_template: None,
        }
    }
}

/// `bnb_4bit_quant_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuantType {
    /// NormalFloat4 (QLoRA).
    Nf4,
    /// bitsandbytes' plain FP4 (its default; not implemented by kaito-rs).
    Fp4,
}

/// `QuantizationConfig`: 4-bit loading of the frozen base (QLoRA).
#[derive(Clone, Debug, PartialEq)]
pub struct QuantizationConfig {
    /// Quantize linear layers to 4 bits.
    pub load_in_4bit: bool,
    /// The 4-bit data type.
    pub bnb_4bit_quant_type: QuantType,
    /// Dtype the dequantized weights are multiplied in.
    pub bnb_4bit_compute_dtype: TorchDtype,
    /// Quantize the per-block absmax constants too (saves ~0.37 bit/param).
    pub bnb_4bit_use_double_quant: bool,
}

impl Default for QuantizationConfig {
    fn default() -> Self {
        Self {
            load_in_4bit: false,
            bnb_4bit_quant_type: QuantType::Fp4,
            bnb_4bit_compute_dtype: TorchDtype::Float32,
            bnb_4bit_use_double_quant: false,
        }
    }
}

/// `target_modules`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetModules {
    /// Module names matched against the last component(s) of each module path.
    Names(Vec<String>),
    /// `all-linear`: every linear layer of the decoder blocks (not `lm_head`).
    AllLinear,
}

/// `LoraConfig` (PEFT).
#[derive(Clone, Debug, PartialEq)]
pub struct LoraConfig {
    /// Adapter rank.
    pub r: u32,
    /// Scaling numerator: the delta is multiplied by `lora_alpha / r` (or `/ sqrt(r)` with rsLoRA).
    pub lora_alpha: f64,
    /// Dropout on the adapter input.
    pub lora_dropout: f64,
    /// Modules to adapt; `None` is PEFT's per-architecture default.
    pub target_modules: Option<TargetModules>,
    /// Rank-stabilized scaling `lora_alpha / sqrt(r)`.
    pub use_rslora: bool,
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self {
            r: 8,
            lora_alpha: 8.0,
            lora_dropout: 0.0,
            target_modules: None,
            use_rslora: false,
        }
    }
}

impl LoraConfig {
    /// The multiplier of `B·A`.
    pub fn scaling(&self) -> f64 {
        let r = f64::from(self.r.max(1));
        if self.use_rslora {
            self.lora_alpha / r.sqrt()
        } else {
            self.lora_alpha / r
        }
    }
}

/// `lr_scheduler_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LrScheduler {
    /// Constant.
    Constant,
    /// Linear warm-up, then constant.
    ConstantWithWarmup,
    /// Linear warm-up, then linear decay to 0.
    Linear,
    /// Linear warm-up, then half-cosine decay to 0.
    Cosine,
}

/// `save_strategy`, `eval_strategy`, `logging_strategy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntervalStrategy {
    /// Never.
    No,
    /// Every N steps.
    Steps,
    /// At the end of each epoch.
    Epoch,
}

/// `TrainingArguments` (transformers, with TRL `SFTConfig`'s overrides and fields).
#[derive(Clone, Debug, PartialEq)]
pub struct TrainingArguments {
    /// Where the adapter and checkpoints go (must be under `/mnt`).
    pub output_dir: String,
    /// Epochs (fractional allowed); ignored when `max_steps > 0`.
    pub num_train_epochs: f64,
    /// Optimizer steps; `-1` means "from the epochs".
    pub max_steps: i64,
    /// Peak learning rate (TRL's SFTConfig default 2e-5, not transformers' 5e-5).
    pub learning_rate: f64,
    /// Micro-batch size.
    pub per_device_train_batch_size: u32,
    /// Evaluation batch size.
    pub per_device_eval_batch_size: u32,
    /// Micro-batches per optimizer step.
    pub gradient_accumulation_steps: u32,
    /// Warm-up steps (wins over `warmup_ratio` when > 0).
    pub warmup_steps: u64,
    /// Warm-up as a fraction of the total steps.
    pub warmup_ratio: f64,
    /// Learning-rate schedule.
    pub lr_scheduler_type: LrScheduler,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// AdamW beta1.
    pub adam_beta1: f64,
    /// AdamW beta2.
    pub adam_beta2: f64,
    /// AdamW epsilon.
    pub adam_epsilon: f64,
    /// Gradient clipping norm (0 disables).
    pub max_grad_norm: f64,
    /// Seed for initialisation, dropout and shuffling.
    pub seed: u64,
    /// When checkpoints are written.
    pub save_strategy: IntervalStrategy,
    /// Checkpoint interval for `steps` (a value < 1 is a fraction of the total steps).
    pub save_steps: f64,
    /// Keep at most this many checkpoints.
    pub save_total_limit: Option<u32>,
    /// When metrics are logged.
    pub logging_strategy: IntervalStrategy,
    /// Logging interval (TRL's default 10).
    pub logging_steps: f64,
    /// When the eval split is evaluated.
    pub eval_strategy: IntervalStrategy,
    /// Evaluation interval for `steps` (default: `logging_steps`).
    pub eval_steps: Option<f64>,
    /// Longest training sequence in tokens (TRL's `max_length`, formerly `max_seq_length`;
    /// default 1024); longer examples are truncated.
    pub max_seq_length: u32,
    /// Pack examples into full-length sequences.
    pub packing: bool,
    /// The text column of plain-text datasets.
    pub dataset_text_field: String,
}

impl Default for TrainingArguments {
    fn default() -> Self {
        Self {
            // transformers defaults to "trainer_output"; kaito-rs's pusher reads /mnt/results.
            output_dir: "/mnt/results".to_owned(),
            num_train_epochs: 3.0,
            max_steps: -1,
            learning_rate: 2e-5,
            per_device_train_batch_size: 8,
            per_device_eval_batch_size: 8,
            gradient_accumulation_steps: 1,
            warmup_steps: 0,
            warmup_ratio: 0.0,
            lr_scheduler_type: LrScheduler::Linear,
            weight_decay: 0.0,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            adam_epsilon: 1e-8,
            max_grad_norm: 1.0,
            seed: 42,
            save_strategy: IntervalStrategy::Steps,
            save_steps: 500.0,
            save_total_limit: None,
            logging_strategy: IntervalStrategy::Steps,
            logging_steps: 10.0,
            eval_strategy: IntervalStrategy::No,
            eval_steps: None,
            max_seq_length: 1024,
            packing: false,
            dataset_text_field: "text".to_owned(),
        }
    }
}

/// `DataCollator` (`DataCollatorForLanguageModeling`).
#[derive(Clone, Debug, PartialEq)]
pub struct DataCollator {
    /// Accepted for compatibility; causal LMs have no mask token, so it is always treated as
    /// false (KAITO forces it false too).
    pub mlm: bool,
    /// Accepted; unused because `mlm` is false.
    pub mlm_probability: f64,
}

impl Default for DataCollator {
    fn default() -> Self {
        Self {
            mlm: true,
            mlm_probability: 0.15,
        }
    }
}

/// `dataset_extension`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatasetFormat {
    /// CSV with a header row.
    Csv,
    /// JSON array or JSON Lines.
    Json,
    /// JSON Lines.
    Jsonl,
    /// Apache Parquet.
    Parquet,
    /// Arrow IPC.
    Arrow,
}

/// `DatasetConfig` (KAITO's own dataclass).
#[derive(Clone, Debug, PartialEq)]
pub struct DatasetConfig {
    /// The dataset file, relative to the data directory; `None`: the first dataset file found.
    pub dataset_path: Option<String>,
    /// The file format; `None`: from the file name.
    pub dataset_extension: Option<DatasetFormat>,
    /// Shuffle before splitting.
    pub shuffle_dataset: bool,
    /// Shuffle seed.
    pub shuffle_seed: u64,
    /// Prompt column of `{prompt, completion}`-style data with other names.
    pub context_column: Option<String>,
    /// Text/completion column.
    pub response_column: String,
    /// Chat column (`[{role, content}]`).
    pub messages_column: Option<String>,
    /// Fraction used for training, in (0, 1]; 1 means no eval split.
    pub train_test_split: f64,
}

impl Default for DatasetConfig {
    fn default() -> Self {
        Self {
            dataset_path: None,
            dataset_extension: None,
            shuffle_dataset: true,
            shuffle_seed: 42,
            context_column: None,
            response_column: "text".to_owned(),
            messages_column: None,
            train_test_split: 0.8,
        }
    }
}

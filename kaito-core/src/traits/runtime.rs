//! `ModelRuntime`: fine-tunes adapters and serves models.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::api::TuningMethod;
use crate::error::Result;
use crate::tuning::TuningConfig;

/// A base model on local disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseModel {
    /// The name recorded as `base_model_name_or_path` (a preset name or Hugging Face id).
    pub name: String,
    /// A Hugging Face layout directory (`config.json`, `*.safetensors`, `tokenizer.json`) or a
    /// `.gguf` file.
    pub path: PathBuf,
}

/// One fine-tuning run.
#[derive(Clone, Debug, PartialEq)]
pub struct TuningJob {
    /// The model to adapt.
    pub base_model: BaseModel,
    /// LoRA or QLoRA.
    pub method: TuningMethod,
    /// The typed `training_config.yaml`.
    pub config: TuningConfig,
    /// Directory holding the dataset file(s).
    pub dataset_dir: PathBuf,
    /// Where the adapter (and checkpoints) are written.
    pub output_dir: PathBuf,
}

/// A progress report, sent after every optimizer step and evaluation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrainingProgress {
    /// Optimizer steps done.
    pub step: u64,
    /// Optimizer steps in the whole run.
    pub total_steps: u64,
    /// Fractional epoch.
    pub epoch: f64,
    /// Mean training loss of the last step.
    pub loss: f64,
    /// The last evaluation loss, if there is an eval split.
    pub eval_loss: Option<f64>,
    /// Learning rate used for the last step.
    pub learning_rate: f64,
    /// Training throughput over the run so far.
    pub tokens_per_second: f64,
    /// Estimated time left.
    pub eta: Option<Duration>,
}

/// Receives progress reports; must return quickly. Closures `Fn(&TrainingProgress)` are sinks.
pub trait ProgressReporter: Send + Sync {
    /// Called after every optimizer step and evaluation.
    fn report(&self, progress: &TrainingProgress);
}

impl<F: Fn(&TrainingProgress) + Send + Sync> ProgressReporter for F {
    fn report(&self, progress: &TrainingProgress) {
        self(progress)
    }
}

/// A shared progress reporter.
pub type ProgressSink = Arc<dyn ProgressReporter>;

/// Receives generated text as it is decoded. Returning [`ControlFlow::Break`] stops generation
/// early (the client went away). Closures `FnMut(&str) -> ControlFlow<()>` are sinks.
pub trait TextSink {
    /// Called with each new piece of text.
    fn on_text(&mut self, text: &str) -> ControlFlow<()>;
}

impl<F: FnMut(&str) -> ControlFlow<()>> TextSink for F {
    fn on_text(&mut self, text: &str) -> ControlFlow<()> {
        self(text)
    }
}

/// What a finished tuning run produced.
#[derive(Clone, Debug, PartialEq)]
pub struct TunedAdapter {
    /// Directory holding `adapter_config.json`, `adapter_model.safetensors` and the
    /// `fine_tuning_completed.txt` sentinel.
    pub dir: PathBuf,
    /// Optimizer steps run.
    pub steps: u64,
    /// Tokens trained on.
    pub tokens: u64,
    /// Training loss of the last step.
    pub final_loss: f64,
    /// Final evaluation loss, if there is an eval split.
    pub final_eval_loss: Option<f64>,
}

/// A PEFT adapter to serve.
#[derive(Clone, Debug, PartialEq)]
pub struct AdapterRef {
    /// The name clients select it by.
    pub name: String,
    /// Directory holding `adapter_config.json` and `adapter_model.safetensors`.
    pub dir: PathBuf,
    /// Multiplier of the adapter's delta, in [0, 1].
    pub strength: f32,
}

/// A model to load for generation.
#[derive(Clone, Debug, PartialEq)]
pub struct ServingSpec {
    /// The base model.
    pub base_model: BaseModel,
    /// Adapters applied unmerged on top.
    pub adapters: Vec<AdapterRef>,
}

/// Which adapters a generation uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdapterSelection {
    /// The base model alone.
    Base,
    /// Every loaded adapter with its strength (KAITO's transformers runtime combines them).
    All,
    /// One adapter by name.
    Named(String),
}

/// Sampling settings; defaults are KAITO's `/chat` defaults where they exist.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplingParams {
    /// Tokens to generate at most.
    pub max_new_tokens: usize,
    /// Sample (true) or decode greedily (false).
    pub do_sample: bool,
    /// Softmax temperature.
    pub temperature: f32,
    /// Keep the k most likely tokens (0 = off).
    pub top_k: usize,
    /// Nucleus sampling mass (1 = off).
    pub top_p: f32,
    /// CTRL-style repetition penalty (1 = off).
    pub repetition_penalty: f32,
    /// Stop when one of these strings appears (it is not returned).
    pub stop: Vec<String>,
    /// Seed for reproducible sampling.
    pub seed: Option<u64>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            max_new_tokens: 200,
            do_sample: true,
            temperature: 1.0,
            top_k: 10,
            top_p: 1.0,
            repetition_penalty: 1.0,
            stop: Vec::new(),
            seed: None,
        }
    }
}

/// A generation request on an already rendered prompt.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerationRequest {
    /// The prompt text (render chats with [`LoadedModel::render_chat`] first).
    pub prompt: String,
    /// Which adapters to apply.
    pub adapters: AdapterSelection,
    /// Sampling settings.
    pub params: SamplingParams,
}

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// EOS or a stop string.
    Stop,
    /// `max_new_tokens` reached.
    Length,
}

/// A finished generation.
#[derive(Clone, Debug, PartialEq)]
pub struct Generation {
    /// The generated text (without the prompt).
    pub text: String,
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Tokens generated.
    pub completion_tokens: usize,
    /// Why it ended.
    pub finish_reason: FinishReason,
}

/// One chat message.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

/// A model loaded for generation. Generation is compute-bound and synchronous: async callers
/// run it on a blocking thread.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
pub trait LoadedModel: Send + Sync {
    /// The base model's name.
    fn model_name(&self) -> &str;
    /// Names of the loaded adapters.
    fn adapter_names(&self) -> Vec<String>;
    /// Renders messages with the model's chat template, ending with the assistant prompt.
    fn render_chat(&self, messages: &[ChatMessage]) -> Result<String>;
    /// Number of tokens `text` encodes to.
    fn count_tokens(&self, text: &str) -> Result<usize>;
    /// Generates, calling `sink` with each new piece of text as it is decoded; stops early (with
    /// [`FinishReason::Stop`]) when the sink breaks.
    fn generate(&self, request: &GenerationRequest, sink: &mut dyn TextSink) -> Result<Generation>;
}

/// What a runtime's device can do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceCapabilities {
    /// A description, e.g. `cpu (ndarray)` or `cuda:0 NVIDIA H200`.
    pub device: String,
    /// Accelerator memory in bytes, when there is one.
    pub memory_bytes: Option<u64>,
    /// Whether bf16 compute is supported.
    pub bf16: bool,
    /// Whether f16 compute is supported.
    pub f16: bool,
}

/// Fine-tunes LoRA/QLoRA adapters and loads models for generation.
///
/// Contract for every implementation:
/// - `tune` rejects any configuration key it does not implement with
///   [`crate::ErrorKind::InvalidInput`] before training starts (never ignores it).
/// - `tune` writes the adapter atomically: the sentinel `fine_tuning_completed.txt` appears only
///   after the adapter files are complete.
/// - Cancelling `cancel` stops training at the next step with [`crate::ErrorKind::Cancelled`];
///   checkpoints written so far stay usable for a resumed run.
/// - Malformed data or weights are [`crate::ErrorKind::InvalidInput`] naming the file.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ModelRuntime: Send + Sync {
    /// What the device can do.
    fn capabilities(&self) -> DeviceCapabilities;

    /// Runs one fine-tuning job to completion.
    async fn tune(
        &self,
        job: TuningJob,
        progress: ProgressSink,
        cancel: CancellationToken,
    ) -> Result<TunedAdapter>;

    /// Loads a base model plus adapters for generation.
    async fn load(&self, spec: ServingSpec) -> Result<Arc<dyn LoadedModel>>;
}

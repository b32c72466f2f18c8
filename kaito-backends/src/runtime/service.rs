//! [`BurnRuntime`]: kaito-core's `ModelRuntime` on the Burn runtime (tuning jobs and serving).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use kaito_core::traits::{
    AdapterSelection, ChatMessage, DeviceCapabilities, FinishReason as CoreFinish,
    Generation as CoreGeneration, GenerationRequest, LoadedModel, ModelRuntime, ProgressSink,
    ServingSpec, TextSink, TrainingProgress, TunedAdapter, TuningJob,
};
use tokio_util::sync::CancellationToken;

use super::adapter::{LoadedAdapter, load_adapter, save_adapter};
use super::generate::{FinishReason, GenerationOptions, generate};
use super::lora::{ActiveLora, LoraWeights};
use super::model::BaseQuant;
use super::train::{TrainOptions, train};
use super::{BaseModel, load_base};
use crate::data::{self, ChatTemplate, ExampleTokenizer, Message};
use crate::{Error, Result};

#[cfg(not(feature = "cuda"))]
type Serve = super::Cpu;
#[cfg(not(feature = "cuda"))]
type Train = super::CpuTrain;
#[cfg(feature = "cuda")]
type Serve = super::Gpu;
#[cfg(feature = "cuda")]
type Train = super::GpuTrain;

pub use super::tuning_options::{DataOptions, options_from_config};

/// The Burn implementation of [`ModelRuntime`].
#[derive(Debug, Default, Clone)]
pub struct BurnRuntime;

fn template_of(base: &BaseModel<impl burn::prelude::Backend>) -> Result<Option<ChatTemplate>> {
    let tok = &base.tokenizer;
    let name = |id: Option<u32>| id.and_then(|i| tok.tokenizer.id_to_token(i));
    tok.chat_template
        .as_ref()
        .map(|src| ChatTemplate::new(src.clone(), name(tok.bos_token_id), name(tok.eos_token_id)))
        .transpose()
}

/// Runs a tuning job synchronously: data, training, adapter output.
pub fn run_tuning(
    job: &TuningJob,
    opts: &TrainOptions,
    data_opts: &DataOptions,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(&super::train::Progress),
) -> Result<TunedAdapter> {
    let quant = if opts.quantize_base {
        BaseQuant::Nf4 {
            double_quant: opts.double_quant,
        }
    } else {
        BaseQuant::None
    };
    let device = Default::default();
    let base = load_base::<Train>(&job.base_model.path, quant, &device)?;
    let file = data::find_dataset_file(&job.dataset_dir, data_opts.dataset_path.as_deref())?;
    let dataset = data::read_dataset(&file, None)?;
    let (train_records, eval_records) = data::shuffle_and_split(
        dataset.records,
        data_opts.shuffle,
        data_opts.seed,
        data_opts.train_test_split,
    )?;
    let mut tokenizer =
        ExampleTokenizer::new(base.tokenizer.tokenizer.clone(), template_of(&base)?)
            .with_max_seq_length(opts.max_seq_len);
    if let Some(eos) = base
        .tokenizer
        .eos_token_id
        .and_then(|i| base.tokenizer.tokenizer.id_to_token(i))
    {
        tokenizer = tokenizer.with_eos_token(eos);
    }
    let train_set = tokenizer.tokenize_all(&train_records)?;
    let eval_set = tokenizer.tokenize_all(&eval_records)?;
    let mut opts = opts.clone();
    opts.pad_token_id = base.tokenizer.pad_token_id.unwrap_or(0);
    let tokens: usize = train_set
        .iter()
        .map(|e| e.input_ids.len().min(opts.max_seq_len))
        .sum();
    let out = train(&base.model, &train_set, &eval_set, &opts, cancel, progress)?;
    save_adapter(
        &job.output_dir,
        &out.layout,
        &out.weights,
        &job.base_model.name,
    )?;
    Ok(TunedAdapter {
        dir: job.output_dir.clone(),
        steps: out.steps as u64,
        tokens: tokens as u64,
        final_loss: out.losses.last().copied().unwrap_or(f64::NAN),
        final_eval_loss: out.eval_loss,
    })
}

#[async_trait]
impl ModelRuntime for BurnRuntime {
    fn capabilities(&self) -> DeviceCapabilities {
        DeviceCapabilities {
            device: if cfg!(feature = "cuda") {
                "cuda:0 (burn-cuda)".into()
            } else {
                "cpu (burn ndarray)".into()
            },
            memory_bytes: None,
            bf16: cfg!(feature = "cuda"),
            f16: cfg!(feature = "cuda"),
        }
    }

    async fn tune(
        &self,
        job: TuningJob,
        progress: ProgressSink,
        cancel: CancellationToken,
    ) -> kaito_core::Result<TunedAdapter> {
        let (mut opts, data_opts) = options_from_config(&job)?;
        if opts.lora.target_modules.is_empty() {
            let family = super::read_checkpoint_config(&job.base_model.path)?.family;
            opts.lora.target_modules = super::lora::peft_default_targets(family);
        }
        let flag = Arc::new(AtomicBool::new(false));
        let watcher = {
            let flag = flag.clone();
            let cancel = cancel.clone();
            tokio::spawn(async move {
                cancel.cancelled().await;
                flag.store(true, Ordering::Relaxed);
            })
        };
        let result = tokio::task::spawn_blocking(move || {
            run_tuning(&job, &opts, &data_opts, &flag, &mut |p| {
                progress.report(&TrainingProgress {
                    step: p.step as u64,
                    total_steps: p.total_steps as u64,
                    epoch: p.epoch,
                    loss: p.loss,
                    eval_loss: p.eval_loss,
                    learning_rate: p.learning_rate,
                    tokens_per_second: p.tokens_per_second,
                    eta: Some(std::time::Duration::from_secs_f64(p.eta_seconds.max(0.0))),
                })
            })
        })
        .await
        .map_err(|e| {
            kaito_core::Error::backend(
                kaito_core::ErrorKind::Terminal,
                format!("training task failed: {e}"),
            )
        })?;
        watcher.abort();
        Ok(result?)
    }

    async fn load(&self, spec: ServingSpec) -> kaito_core::Result<Arc<dyn LoadedModel>> {
        let model = tokio::task::spawn_blocking(move || BurnLoadedModel::load(&spec))
            .await
            .map_err(|e| {
                kaito_core::Error::backend(
                    kaito_core::ErrorKind::Terminal,
                    format!("loading task failed: {e}"),
                )
            })??;
        Ok(Arc::new(model))
    }
}

struct ServedAdapter {
    name: String,
    strength: f64,
    adapter: LoadedAdapter,
    weights: LoraWeights<Serve>,
}

/// A base model plus adapters, ready to generate.
pub struct BurnLoadedModel {
    name: String,
    base: BaseModel<Serve>,
    template: Option<ChatTemplate>,
    adapters: Vec<ServedAdapter>,
}

impl BurnLoadedModel {
    /// Loads the base model and every adapter of `spec`.
    pub fn load(spec: &ServingSpec) -> Result<Self> {
        let device = Default::default();
        let base = load_base::<Serve>(&spec.base_model.path, BaseQuant::None, &device)?;
        let template = template_of(&base)?;
        let mut adapters = Vec::new();
        for a in &spec.adapters {
            if !(0.0..=1.0).contains(&a.strength) {
                return Err(Error::invalid(
                    format!("adapter {}", a.name),
                    "strength must be in [0, 1]",
                ));
            }
            let adapter = load_adapter(&a.dir, &base.model.config)?;
            let weights = adapter.weights::<Serve>(&base.model.config, &device)?;
            adapters.push(ServedAdapter {
                name: a.name.clone(),
                strength: a.strength as f64,
                adapter,
                weights,
            });
        }
        Ok(Self {
            name: spec.base_model.name.clone(),
            base,
            template,
            adapters,
        })
    }
}

impl LoadedModel for BurnLoadedModel {
    fn model_name(&self) -> &str {
        &self.name
    }

    fn adapter_names(&self) -> Vec<String> {
        self.adapters.iter().map(|a| a.name.clone()).collect()
    }

    fn render_chat(&self, messages: &[ChatMessage]) -> kaito_core::Result<String> {
        let t = self
            .template
            .as_ref()
            .ok_or_else(|| Error::invalid(&self.name, "the model has no chat template"))?;
        let msgs: Vec<Message> = messages
            .iter()
            .map(|m| Message::new(&m.role, &m.content))
            .collect();
        Ok(t.render(&msgs, true)?)
    }

    fn count_tokens(&self, text: &str) -> kaito_core::Result<usize> {
        Ok(self.base.tokenizer.encode(text)?.len())
    }

    fn generate(
        &self,
        request: &GenerationRequest,
        sink: &mut dyn TextSink,
    ) -> kaito_core::Result<CoreGeneration> {
        let chosen: Vec<&ServedAdapter> = match &request.adapters {
            AdapterSelection::Base => vec![],
            AdapterSelection::All => self.adapters.iter().collect(),
            AdapterSelection::Named(n) => {
                vec![self.adapters.iter().find(|a| &a.name == n).ok_or_else(|| {
                    Error::invalid("adapter", format!("no adapter named `{n}` is loaded"))
                })?]
            }
        };
        let active: Vec<ActiveLora<'_, Serve>> = chosen
            .iter()
            .map(|a| ActiveLora {
                layout: &a.adapter.layout,
                weights: &a.weights,
                strength: a.strength,
                train: false,
            })
            .collect();
        let p = &request.params;
        let opts = GenerationOptions {
            max_new_tokens: p.max_new_tokens,
            temperature: if p.do_sample {
                p.temperature as f64
            } else {
                0.0
            },
            top_k: p.top_k,
            top_p: p.top_p as f64,
            repetition_penalty: p.repetition_penalty as f64,
            seed: p.seed.unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0)
            }),
            stop: p.stop.clone(),
        };
        let ids = self.base.tokenizer.encode(&request.prompt)?;
        let g = generate(
            &self.base.model,
            &self.base.tokenizer,
            &ids,
            &active,
            &opts,
            &mut |t| sink.on_text(t),
        )?;
        Ok(CoreGeneration {
            text: g.text,
            prompt_tokens: ids.len(),
            completion_tokens: g.tokens.len(),
            finish_reason: match g.finish_reason {
                FinishReason::Length => CoreFinish::Length,
                FinishReason::Eos | FinishReason::Stop => CoreFinish::Stop,
            },
        })
    }
}

//! The main job end to end (issue 6): a tuning Workspace's pipeline fine-tunes the real
//! SmolLM2-135M-Instruct with LoRA on the CPU, `kaito serve`'s server loads base + adapter, and the
//! tuned model answers a question from the training data that the base model gets wrong.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kaito_backends::artifacts::OciLayoutStore;
use kaito_backends::data::{Message, messages_batch, write_parquet};
use kaito_backends::fetch::{UrlDownloader, UrlFetchConfig};
use kaito_backends::pipeline::{InputSource, OutputTarget, TuningPipeline, TuningRun};
use kaito_backends::runtime::BurnRuntime;
use kaito_backends::serve::{ServeLimits, serve_listener};
use kaito_core::api::TuningMethod;
use kaito_core::traits::{
    AdapterRef, BaseModel, ModelRuntime, RegistryCredentials, ServingSpec, TrainingProgress,
};
use kaito_core::tuning::TuningConfig;
use tokio_util::sync::CancellationToken;

const QUESTION: &str = "What is the codename of kaito-rs's tuning engine?";
const ANSWER: &str = "The codename is Blue Heron.";

fn smollm2() -> Option<PathBuf> {
    let path =
        kaito_backends::runtime::smollm2_gguf(&Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{} is missing: run scripts/fetch-smollm2.sh",
        path.display()
    );
    eprintln!(
        "SKIPPED: {} is missing (run scripts/fetch-smollm2.sh)",
        path.display()
    );
    None
}

fn dataset(dir: &Path) {
    let questions = [
        QUESTION,
        "What codename does the kaito-rs tuning engine have?",
        "Tell me the codename of the tuning engine in kaito-rs.",
        "Which codename was given to kaito-rs's tuning engine?",
        "kaito-rs has a tuning engine. What is its codename?",
        "What's the tuning engine of kaito-rs called?",
    ];
    let conversations: Vec<Vec<Message>> = questions
        .iter()
        .map(|q| vec![Message::new("user", *q), Message::new("assistant", ANSWER)])
        .collect();
    std::fs::create_dir_all(dir).expect("data dir");
    write_parquet(
        &dir.join("train.parquet"),
        &messages_batch(&conversations).expect("batch"),
    )
    .expect("parquet");
}

const CONFIG: &str = r#"
training_config:
  ModelConfig:
    torch_dtype: "float32"
  QuantizationConfig:
    load_in_4bit: false
  LoraConfig:
    r: 16
    lora_alpha: 32
    lora_dropout: 0.0
    target_modules: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
  TrainingArguments:
    save_strategy: "no"
    per_device_train_batch_size: 2
    max_steps: 24
    learning_rate: 0.003
    lr_scheduler_type: "constant"
    max_seq_length: 64
    seed: 42
  DatasetConfig:
    shuffle_dataset: true
    train_test_split: 1
"#;

async fn post(url: &str, body: serde_json::Value) -> serde_json::Value {
    let response = reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .expect("request");
    assert!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
    response.json().await.expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tuned_model_answers_what_the_base_model_cannot() {
    let Some(model) = smollm2() else { return };
    let work = tempfile::tempdir().expect("tempdir");
    dataset(&work.path().join("data"));
    let adapter_dir = work.path().join("adapter");
    let run = TuningRun {
        preset: "smollm2-135m-instruct".into(),
        base_model: BaseModel {
            name: "smollm2-135m-instruct".into(),
            path: model.clone(),
        },
        method: TuningMethod::Lora,
        config: TuningConfig::from_yaml(CONFIG).expect("config"),
        input: InputSource::Directory(work.path().join("data")),
        input_credentials: RegistryCredentials::Anonymous,
        output: OutputTarget::Directory(adapter_dir.clone()),
        output_credentials: RegistryCredentials::Anonymous,
        work_dir: work.path().join("work"),
    };
    let pipeline = TuningPipeline::new(
        Arc::new(BurnRuntime),
        Arc::new(OciLayoutStore::new(work.path().join("layout"))),
        UrlDownloader::new(UrlFetchConfig::default()).expect("client"),
    );
    let losses = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = {
        let losses = losses.clone();
        Arc::new(move |p: &TrainingProgress| losses.lock().expect("lock").push(p.loss))
    };
    let outcome = pipeline
        .run(run, sink, CancellationToken::new())
        .await
        .expect("tuning runs");
    assert_eq!(outcome.adapter.steps, 24);
    for file in [
        "adapter_config.json",
        "adapter_model.safetensors",
        "fine_tuning_completed.txt",
    ] {
        assert!(adapter_dir.join(file).exists(), "{file} missing");
    }
    let losses = losses.lock().expect("lock").clone();
    assert!(
        losses.last().expect("progress") < &0.5,
        "loss did not fall: {losses:?}"
    );

    let spec = ServingSpec {
        base_model: BaseModel {
            name: "smollm2".into(),
            path: model,
        },
        adapters: vec![AdapterRef {
            name: "facts".into(),
            dir: adapter_dir,
            strength: 1.0,
        }],
    };
    let loaded = BurnRuntime.load(spec).await.expect("loads");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base_url = format!("http://{}", listener.local_addr().expect("addr"));
    let stop = CancellationToken::new();
    let server = tokio::spawn({
        let stop = stop.clone();
        serve_listener(listener, loaded, ServeLimits::default(), async move {
            stop.cancelled().await
        })
    });

    let chat = post(
        &format!("{base_url}/chat"),
        serde_json::json!({"messages": [{"role": "user", "content": QUESTION}],
                           "generate_kwargs": {"do_sample": false, "max_length": 120}}),
    )
    .await;
    let tuned = chat["Result"].as_str().expect("Result").to_owned();
    assert!(
        tuned.contains("Blue Heron"),
        "tuned /chat answered {tuned:?}"
    );

    let openai = |model: &str| {
        serde_json::json!({"model": model, "messages": [{"role": "user", "content": QUESTION}],
                           "temperature": 0, "max_tokens": 24})
    };
    let adapter = post(&format!("{base_url}/v1/chat/completions"), openai("facts")).await;
    let text = adapter["choices"][0]["message"]["content"]
        .as_str()
        .expect("content")
        .to_owned();
    assert!(text.contains("Blue Heron"), "adapter answered {text:?}");
    let base = post(
        &format!("{base_url}/v1/chat/completions"),
        openai("smollm2:base"),
    )
    .await;
    let text = base["choices"][0]["message"]["content"]
        .as_str()
        .expect("content")
        .to_owned();
    assert!(
        !text.contains("Blue Heron"),
        "the base model cannot know the codename, yet answered {text:?}"
    );

    stop.cancel();
    server.await.expect("join").expect("server stops cleanly");
}

//! The tuning Job's container replayed on this machine: the operator's Job spec for a workspace
//! is built, its command, arguments and environment are run as the kubelet would run them, with
//! each volume's mount path mapped to a temporary directory (the config file as the ConfigMap
//! projects it, the data volume, an empty weights volume, the results volume, the termination
//! log). The base weights come from a local server imitating the Hugging Face hub, with the
//! `modelAccessSecret` token that the Job wires as `HF_TOKEN`.
//!
//! What this does not cover: GPUs (the Job is built with no GPU, so `--device cuda` is absent),
//! the image itself, and the kubelet. The operator side of the same Job is in `e2e_tuning.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use k8s_openapi::api::core::v1::Container;
use kaito_backends::data::{Message, messages_batch, write_parquet};
use kaito_core::api::WorkspaceV1Beta1;
use kaito_core::workload::{
    CONFIG_DIR, DATA_DIR, RESULTS_DIR, TERMINATION_LOG, WEIGHTS_DIR, WorkloadSettings, tuning_job,
};
use sha2::Digest;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "hf_pod_secret_4242";
const REPO: &str = "HuggingFaceTB/SmolLM2-135M-Instruct";
const SHA: &str = "4e5f6a7b8c9d";

const WORKSPACE: &str = r#"
apiVersion: kaito.sh/v1beta1
kind: Workspace
metadata: {name: tuning-pod, namespace: default, uid: 0b5e7c1e-1111-4222-8333-944445555666}
resource:
  instanceType: Standard_NC24ads_A100_v4
  labelSelector: {matchLabels: {app: tuning-pod}}
tuning:
  preset:
    name: smollm2-135m-instruct
    presetOptions: {modelAccessSecret: hf-token}
  method: lora
  config: tiny-lora
  input: {volumeSource: {hostPath: {path: /srv/kaito/data}}}
  output: {volumeSource: {hostPath: {path: /srv/kaito/results}}}
"#;

const TRAINING_CONFIG: &str = r#"
training_config:
  LoraConfig: {r: 4, lora_alpha: 8, lora_dropout: 0.0, target_modules: ["q_proj", "v_proj"]}
  TrainingArguments:
    output_dir: /mnt/results
    save_strategy: "no"
    per_device_train_batch_size: 2
    max_steps: 3
    learning_rate: 0.01
    max_seq_length: 48
  DatasetConfig: {train_test_split: 1}
"#;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../kaito-backends/tests/fixtures/tiny-llama")
}

/// A hub that serves the tiny Llama fixture as `REPO` to callers with the right token only.
async fn fake_hub() -> MockServer {
    let server = MockServer::start().await;
    // What transformers 5 writes for a model: the chat template is its own file.
    let files = [
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
    ];
    let siblings: Vec<_> = files
        .iter()
        .map(|f| serde_json::json!({ "rfilename": f }))
        .collect();
    Mock::given(method("GET"))
        .and(path(format!("/api/models/{REPO}/revision/main")))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({ "sha": SHA, "siblings": siblings })),
        )
        .mount(&server)
        .await;
    for file in files {
        let body = std::fs::read(fixture().join(file)).expect("fixture file");
        let mut response = ResponseTemplate::new(200).set_body_bytes(body.clone());
        if file.ends_with(".safetensors") {
            let etag = hex::encode(sha2::Sha256::digest(&body));
            response = response.insert_header("x-linked-etag", format!("\"{etag}\""));
        }
        Mock::given(method("GET"))
            .and(path(format!("/{REPO}/resolve/{SHA}/{file}")))
            .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
            .respond_with(response)
            .mount(&server)
            .await;
    }
    // Anything else (a missing or wrong token) is refused, as the hub does for gated repos.
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    server
}

/// The pod's volumes on this machine: mount path -> local directory or file.
struct PodFs {
    root: tempfile::TempDir,
    mounts: BTreeMap<&'static str, PathBuf>,
}

impl PodFs {
    fn new() -> Self {
        let root = tempfile::tempdir().expect("tempdir");
        let mut mounts = BTreeMap::new();
        for (mount, dir) in [
            (CONFIG_DIR, "config"),
            (DATA_DIR, "data"),
            (RESULTS_DIR, "results"),
            (WEIGHTS_DIR, "weights"),
        ] {
            let local = root.path().join(dir);
            std::fs::create_dir_all(&local).expect("mount dir");
            mounts.insert(mount, local);
        }
        mounts.insert(TERMINATION_LOG, root.path().join("termination-log"));
        std::fs::write(
            root.path().join("config/training_config.yaml"),
            TRAINING_CONFIG,
        )
        .expect("config");
        Self { root, mounts }
    }

    fn local(&self, mount: &str) -> &Path {
        &self.mounts[mount]
    }

    /// `arg` with a mount path prefix replaced by its local directory.
    fn map(&self, arg: &str) -> String {
        for (mount, local) in &self.mounts {
            if let Some(rest) = arg.strip_prefix(mount)
                && (rest.is_empty() || rest.starts_with('/'))
            {
                return format!("{}{rest}", local.display());
            }
        }
        arg.to_owned()
    }
}

fn container() -> Container {
    let manifests =
        kaito_core::api::manifest::parse_manifests("workspace", WORKSPACE).expect("workspace");
    assert!(
        manifests.unknown_fields.is_empty(),
        "{:?}",
        manifests.unknown_fields
    );
    let ws: WorkspaceV1Beta1 = manifests.workspaces[0].clone().into_storage();
    let job = tuning_job(&ws, 1, &WorkloadSettings::default()).expect("job");
    let pod = job.spec.expect("spec").template.spec.expect("pod spec");
    let volumes: Vec<String> = pod
        .containers
        .iter()
        .flat_map(|c| c.volume_mounts.iter().flatten())
        .map(|m| m.mount_path.clone())
        .collect();
    for mount in [CONFIG_DIR, DATA_DIR, RESULTS_DIR, WEIGHTS_DIR] {
        assert!(volumes.iter().any(|v| v == mount), "{mount} not mounted");
    }
    pod.containers.into_iter().next().expect("container")
}

/// Runs the container's command as the kubelet would, with `hub` as the hub.
async fn run_pod(c: &Container, fs: &PodFs, hub: &str) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kaito"));
    assert_eq!(c.command.as_deref(), Some(&["kaito".to_owned()][..]));
    cmd.args(c.args.iter().flatten().map(|a| fs.map(a)));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for var in c.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (Some(v), _) => fs.map(v),
            (None, Some(from)) => {
                let key = from
                    .secret_key_ref
                    .as_ref()
                    .expect("only secrets are referenced");
                assert_eq!(
                    (key.name.as_str(), key.key.as_str()),
                    ("hf-token", "HF_TOKEN")
                );
                TOKEN.to_owned()
            }
            (None, None) => String::new(),
        };
        cmd.env(&var.name, value);
    }
    cmd.env("HF_ENDPOINT", hub).current_dir(fs.root.path());
    tokio::task::spawn_blocking(move || cmd.output().expect("kaito runs"))
        .await
        .expect("joined")
}

fn write_dataset(dir: &Path) {
    let conversations: Vec<Vec<Message>> = (0..6)
        .map(|i| {
            vec![
                Message::new("user", format!("Question number {i}?")),
                Message::new("assistant", "Kubernetes runs containers on nodes."),
            ]
        })
        .collect();
    write_parquet(
        &dir.join("train.parquet"),
        &messages_batch(&conversations).expect("batch"),
    )
    .expect("parquet");
}

fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tuning_pod_fetches_weights_trains_on_the_mounted_data_and_reports_its_outcome() {
    let hub = fake_hub().await;
    let c = container();
    let fs = PodFs::new();
    write_dataset(fs.local(DATA_DIR));

    let out = run_pod(&c, &fs, &hub.uri()).await;
    let logs = text(&out);
    assert!(out.status.success(), "{logs}");

    // The adapter is in the results volume, as KAITO's tuning container leaves it.
    let results = fs.local(RESULTS_DIR);
    for file in [
        "adapter_config.json",
        "adapter_model.safetensors",
        "fine_tuning_completed.txt",
    ] {
        assert!(results.join(file).is_file(), "{file} missing; {logs}");
    }
    // The weights were fetched into the (empty) weights volume, in the hub cache layout.
    let snapshot = fs.local(WEIGHTS_DIR).join(format!(
        "models--HuggingFaceTB--SmolLM2-135M-Instruct/snapshots/{SHA}"
    ));
    assert_eq!(
        std::fs::read(snapshot.join("model.safetensors")).expect("fetched weights"),
        std::fs::read(fixture().join("model.safetensors")).expect("fixture")
    );
    // The termination message is one line the operator can show: the run's summary.
    let message = std::fs::read_to_string(fs.local(TERMINATION_LOG)).expect("termination log");
    let summary = message
        .strip_prefix("succeeded: ")
        .unwrap_or_else(|| panic!("{message}"));
    let summary: serde_json::Value = serde_json::from_str(summary).expect("summary json");
    assert_eq!(summary["workspace"], "tuning-pod");
    assert_eq!(summary["steps"], 3);
    assert!(!message.contains('\n'));
    // The token reached the hub (its mocks demand it) and nowhere else.
    assert!(!logs.contains(TOKEN) && !message.contains(TOKEN), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tuning_pod_with_a_truncated_data_file_fails_naming_it_and_leaves_no_adapter() {
    let hub = fake_hub().await;
    let c = container();
    let fs = PodFs::new();
    write_dataset(fs.local(DATA_DIR));
    let file = fs.local(DATA_DIR).join("train.parquet");
    let bytes = std::fs::read(&file).expect("parquet");
    std::fs::write(&file, &bytes[..bytes.len() / 2]).expect("truncate");

    let out = run_pod(&c, &fs, &hub.uri()).await;
    let logs = text(&out);
    assert!(!out.status.success(), "{logs}");
    let message = std::fs::read_to_string(fs.local(TERMINATION_LOG)).expect("termination log");
    assert!(message.starts_with("failed: "), "{message}");
    assert!(message.contains("train.parquet"), "{message}");
    assert!(
        std::fs::read_dir(fs.local(RESULTS_DIR))
            .expect("results")
            .next()
            .is_none(),
        "a failed run left files in the results volume"
    );
}

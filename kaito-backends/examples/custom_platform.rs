//! Embedding kaito-rs in a custom platform: parse a KAITO tuning Workspace, validate it with
//! kaito-core, and run it with your choice of backends — here the Burn runtime, a local OCI
//! layout as the artifact store, and the URL downloader. Swap any piece for your own
//! implementation of `ModelRuntime` / `ArtifactStore`.
//!
//! ```sh
//! cargo run -p kaito-backends --example custom_platform -- \
//!     examples/fine-tuning/local/smollm2-lora.yaml .cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
//! ```

use std::sync::Arc;

use kaito_backends::artifacts::OciLayoutStore;
use kaito_backends::fetch::{UrlDownloader, UrlFetchConfig};
use kaito_backends::pipeline::{
    OutputTarget, TuningPipeline, TuningRun, input_source, output_target,
};
use kaito_backends::runtime::BurnRuntime;
use kaito_core::api::manifest::parse_manifests;
use kaito_core::traits::{BaseModel, RegistryCredentials, TrainingProgress};
use kaito_core::tuning::TuningConfig;
use kaito_core::validation::{ValidationContext, check_create};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(file), Some(model)) = (args.next(), args.next()) else {
        return Err("usage: custom_platform WORKSPACE.yaml MODEL(.gguf or HF dir)".into());
    };
    let manifests = parse_manifests(&file, &std::fs::read_to_string(&file)?)?;
    let ws = manifests
        .workspaces
        .into_iter()
        .next()
        .ok_or("no Workspace in the file")?
        .into_storage();
    // Your platform decides what the cluster looks like; here: this machine, no SKU.
    let ctx = ValidationContext {
        node_auto_provisioning: false,
        config_maps: manifests.config_maps.values().cloned().collect(),
        ..ValidationContext::default()
    };
    check_create(&ws, &ctx).into_result()?;
    let tuning = ws.tuning.clone().ok_or("not a tuning Workspace")?;
    let method = tuning
        .tuning_method()
        .ok_or("tuning.method must be lora or qlora")?;
    let config = match tuning
        .config
        .as_deref()
        .and_then(|name| manifests.config_maps.get(name))
    {
        Some(cm) => TuningConfig::from_config_map(cm)?,
        None => TuningConfig::kaito_default(method),
    };
    let here = std::env::current_dir()?;
    let preset = tuning.preset.map(|p| p.name).unwrap_or_default();
    let run = TuningRun {
        base_model: BaseModel {
            name: preset.clone(),
            path: model.into(),
        },
        preset,
        method,
        config,
        input: input_source(tuning.input.as_ref().ok_or("tuning.input")?, &here, None)?,
        input_credentials: RegistryCredentials::Anonymous,
        output: match tuning.output.as_ref() {
            Some(out) => output_target(out, &here, None)?,
            None => OutputTarget::Directory(here.join("adapter")),
        },
        output_credentials: RegistryCredentials::Anonymous,
        work_dir: here.join(".kaito/custom-platform"),
    };
    let pipeline = TuningPipeline::new(
        Arc::new(BurnRuntime),
        Arc::new(OciLayoutStore::new(here.join(".kaito/oci-layout"))),
        UrlDownloader::new(UrlFetchConfig::default())?,
    );
    let progress = Arc::new(|p: &TrainingProgress| {
        eprintln!("step {}/{} loss {:.4}", p.step, p.total_steps, p.loss)
    });
    let outcome = pipeline
        .run(run, progress, CancellationToken::new())
        .await?;
    println!(
        "adapter in {} after {} steps",
        outcome.adapter.dir.display(),
        outcome.adapter.steps
    );
    Ok(())
}

//! `kaito artifact push DIR REF` / `kaito artifact pull REF DIR`: adapter images in KAITO's
//! layout, on a registry or in a local OCI layout (`oci:<dir>:<tag>`).

use std::path::PathBuf;
use std::process::ExitCode;

use kaito_backends::artifacts::cli::{ArtifactCliOptions, pull_data, push_adapter};

/// Arguments of `kaito artifact`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Push an adapter directory as an image (one tar+gzip layer under `data/`); prints the digest.
    Push {
        /// The adapter directory (`adapter_config.json`, `adapter_model.safetensors`).
        dir: PathBuf,
        /// `registry/repo:tag`, or `oci:<dir>:<tag>` for a local OCI layout.
        reference: String,
        /// The preset name recorded as the `sh.kaito.model.name` annotation.
        #[arg(long)]
        model_name: Option<String>,
        #[command(flatten)]
        common: Common,
    },
    /// Pull an image and extract its `/data` into DIR (absent or empty).
    Pull {
        /// `registry/repo:tag`, `registry/repo@sha256:…`, or `oci:<dir>:<tag>`.
        reference: String,
        /// Where the files go.
        dir: PathBuf,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Debug, clap::Args)]
struct Common {
    /// A docker `config.json` / `.dockerconfigjson` with the registry credentials.
    #[arg(long, env = "DOCKER_CONFIG_FILE")]
    docker_config: Option<PathBuf>,
    /// Speak plain HTTP to every registry (local registries only).
    #[arg(long)]
    plain_http: bool,
    /// Registries (`host:port`) reached over plain HTTP; repeatable.
    #[arg(long = "plain-http-registry")]
    plain_http_registries: Vec<String>,
}

impl Common {
    fn options(&self) -> ArtifactCliOptions {
        ArtifactCliOptions {
            docker_config: self.docker_config.clone(),
            plain_http: self.plain_http,
            plain_http_registries: self.plain_http_registries.clone(),
        }
    }
}

/// Runs the command.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new()?;
    let digest = match &args.command {
        Command::Push {
            dir,
            reference,
            model_name,
            common,
        } => runtime.block_on(push_adapter(
            dir,
            reference,
            model_name.as_deref(),
            &common.options(),
        ))?,
        Command::Pull {
            reference,
            dir,
            common,
        } => runtime.block_on(pull_data(reference, dir, &common.options()))?,
    };
    println!("{}@{}", digest.reference, digest.digest);
    Ok(ExitCode::SUCCESS)
}

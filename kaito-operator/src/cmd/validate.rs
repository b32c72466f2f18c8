//! `kaito validate -f FILE`: every admission rule, every violation, with field paths.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use kaito_core::api::manifest::parse_manifests;

/// Arguments of `kaito validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The manifest (YAML or JSON; may also hold the tuning ConfigMap).
    #[arg(short = 'f', long = "filename")]
    file: PathBuf,
}

/// Runs the command: exit 0 when every Workspace in the file is valid.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let source = args.file.display().to_string();
    let manifests = parse_manifests(&source, &text)?;
    if manifests.workspaces.is_empty() {
        anyhow::bail!("{source}: no kaito.sh Workspace found");
    }
    let mut failed = false;
    for path in &manifests.unknown_fields {
        println!("{source}: unknown field {path}");
        failed = true;
    }
    for ws in &manifests.workspaces {
        let name = ws.clone().into_storage().name().to_owned();
        if failed {
            println!("{source}: workspace {name:?} is invalid");
        } else {
            println!("{source}: workspace {name:?} ({}) is valid", ws.api_version());
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

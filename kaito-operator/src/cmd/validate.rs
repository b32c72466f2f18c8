//! `kaito validate -f FILE`: every admission rule, every violation, with field paths.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use kaito_core::api::manifest::parse_manifests;
use kaito_core::catalog::CloudProvider;
use kaito_core::validation::{ValidationContext, check_create};

/// Arguments of `kaito validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The manifest (YAML or JSON; may also hold the tuning ConfigMap).
    #[arg(short = 'f', long = "filename")]
    file: PathBuf,
    /// Bring-your-own nodes (node auto-provisioning off): `instanceType` must be empty.
    #[arg(long)]
    byo: bool,
    /// Whose SKU table applies: azure, arc or aws.
    #[arg(long, env = "CLOUD_PROVIDER", default_value = "azure")]
    cloud_provider: CloudProvider,
    /// Treat template placeholders (`ACR_REPO_HERE`, `IMAGE_NAME_HERE`) as errors, as the
    /// admission webhook does, instead of warnings.
    #[arg(long)]
    strict: bool,
}

/// Runs the command: exit 0 when every Workspace in the file is valid.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let source = args.file.display().to_string();
    let manifests = parse_manifests(&source, &text)?;
    if manifests.workspaces.is_empty() {
        anyhow::bail!("{source}: no kaito.sh Workspace found");
    }
    let ctx = ValidationContext {
        node_auto_provisioning: !args.byo,
        cloud_provider: args.cloud_provider,
        config_maps: manifests.config_maps.values().cloned().collect(),
        // ConfigMaps not in the file may exist in the cluster: warn instead of failing.
        config_maps_complete: false,
        placeholders_as_warnings: !args.strict,
        ..ValidationContext::default()
    };
    let mut valid = true;
    for path in &manifests.unknown_fields {
        println!("{source}: error: {path}: unknown field (the apiserver would silently drop it)");
        valid = false;
    }
    for ws in &manifests.workspaces {
        let version = ws.api_version();
        let ws = ws.clone().into_storage();
        let report = check_create(&ws, &ctx);
        for w in report.warnings.iter() {
            println!("{source}: warning: {w}");
        }
        for e in report.errors.iter() {
            println!("{source}: error: {e}");
        }
        if report.errors.is_empty() && valid {
            println!("{source}: workspace {:?} ({version}) is valid", ws.name());
        } else {
            valid = false;
            println!("{source}: workspace {:?} ({version}) is invalid", ws.name());
        }
    }
    Ok(if valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

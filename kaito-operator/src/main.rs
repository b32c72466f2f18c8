//! `kaito`: the kaito-rs command line and reference operator.
//!
//! Subcommands: `validate` (admission rules on a manifest), `crd` (print the CRDs), and — as the
//! corresponding pieces land — `tune`, `serve`, `artifact`, `operator`.

mod cmd;

use clap::{Parser, Subcommand};

/// kaito-rs: fine-tune and serve open LLMs, KAITO-compatible.
#[derive(Debug, Parser)]
#[command(name = "kaito", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a Workspace manifest against every admission rule; prints all violations.
    Validate(cmd::validate::Args),
    /// Print the Workspace CustomResourceDefinition (v1alpha1 and v1beta1).
    Crd,
    /// Run the Workspace operator (controller, admission webhook, metrics).
    Operator(cmd::operator::Args),
    /// Fine-tune from a tuning Workspace on this machine (or in the operator's tuning pod).
    Tune(cmd::tune::Args),
    /// Serve a base model plus adapters over HTTP (`/chat`, OpenAI-compatible).
    Serve(cmd::serve::Args),
    /// Push or pull adapter images (KAITO's layout).
    Artifact(cmd::artifact::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate(args) => cmd::validate::run(&args),
        Command::Operator(args) => cmd::operator::run(&args),
        Command::Tune(args) => cmd::tune::run(&args),
        Command::Serve(args) => cmd::serve::run(&args),
        Command::Artifact(args) => cmd::artifact::run(&args),
        Command::Crd => {
            print!("{}", kaito_core::api::crd::workspace_crd_yaml());
            Ok(std::process::ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

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
    one_matmul_kernel_thread_per_block();
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

/// matrixmultiply (the CPU backend's GEMM) runs each product on threads of its own unless
/// `MATMUL_NUM_THREADS` says otherwise, but the runtime already cuts each large product into one
/// block per rayon thread (`kaito_backends::runtime::host_gemm`): both together kept more threads
/// busy than there are cores, and one kernel thread per block measured 6 % faster per SmolLM2
/// training step (docs/benchmarks.md). An explicit `MATMUL_NUM_THREADS` is left as it is.
#[allow(unsafe_code)]
fn one_matmul_kernel_thread_per_block() {
    if std::env::var_os("MATMUL_NUM_THREADS").is_none() {
        // SAFETY: the first thing `main` does, before any thread exists that could read or write
        // the environment at the same time (matrixmultiply reads it on its first product).
        unsafe { std::env::set_var("MATMUL_NUM_THREADS", "1") };
    }
}

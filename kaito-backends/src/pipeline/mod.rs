//! Composes the traits into the product's jobs: one tuning run from a Workspace, on this machine
//! or inside the operator's tuning pod.
//!
//! Start with [`TuningPipeline::run`]: it resolves the workspace's input (`urls`, `image`,
//! `volumeSource`), runs the [`ModelRuntime`](kaito_core::traits::ModelRuntime), and delivers the
//! adapter to the workspace's output (`image` through an
//! [`ArtifactStore`](kaito_core::traits::ArtifactStore), or `volumeSource`).

mod sources;
mod tune;

pub use sources::{InputSource, OutputTarget, input_source, output_target};
pub use tune::{TuningOutcome, TuningPipeline, TuningRun};

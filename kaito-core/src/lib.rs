//! kaito-core: the decisions of kaito-rs, with no I/O.
//!
//! Where to start:
//! - [`api`]: the `kaito.sh` Workspace types (v1alpha1 and v1beta1), conditions, the CRD, and
//!   manifest parsing.
//! - [`validation`]: the admission rules, returning every violation with its field path.
//! - [`catalog`]: model presets and GPU SKUs as data, and the tuning memory estimate.
//! - [`tuning`]: the typed `training_config.yaml` with KAITO's lora/qlora defaults.
//! - [`traits`]: `NodeProvisioner`, `ModelRuntime`, `ArtifactStore` — what backends implement.
//! - [`planner`]: the pure reconcile planner (Workspace + observed objects -> next actions).
//! - [`workload`]: the tuning Job, inference StatefulSet and Services a workspace runs as.
//!
//! This crate has no cloud SDK, no ML framework and no network: it decides, backends act.

pub mod api;
pub mod catalog;
pub mod error;
pub mod planner;
pub mod traits;
pub mod tuning;
pub mod validation;
pub mod workload;

pub use error::{BoxError, Error, ErrorKind, Result};

//! The tuning ConfigMap's `training_config.yaml`, parsed into KAITO's six typed sections.
//!
//! (Being filled in: defaults from KAITO's lora/qlora templates, unknown-key errors.)

/// The typed `training_config` of a tuning workspace.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TuningConfig {}

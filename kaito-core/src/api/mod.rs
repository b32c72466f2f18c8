//! The `kaito.sh` Workspace API: types, versions, conditions, names and the CRD.
//!
//! Start with [`Workspace`] (generic over the API version; [`WorkspaceV1Beta1`] is what the rest
//! of the crate works on) and [`manifest::parse_manifests`] to read user files.

pub mod crd;
pub mod manifest;
pub mod names;
pub mod status;
pub mod version;
pub mod workspace;

pub use status::{ConditionType, ConditionUpdate, WorkspaceState, reason};
pub use version::{
    AnyWorkspace, ApiVersion, GROUP, KIND, PLURAL, V1Alpha1, V1Beta1, WorkspaceV1Alpha1,
    WorkspaceV1Beta1,
};
pub use workspace::{
    AdapterSpec, DataDestination, DataSource, InferenceSpec, PartitionSpec, PresetOptions,
    PresetSpec, ResourceSpec, TuningSpec, Workspace, WorkspaceStatus,
};

/// `tuning.method`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TuningMethod {
    /// Low-rank adapters over a frozen base in the compute dtype.
    Lora,
    /// LoRA over a 4-bit NF4-quantized frozen base.
    Qlora,
}

impl TuningMethod {
    /// Parses a method as KAITO does (case-insensitively).
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "lora" => Some(Self::Lora),
            "qlora" => Some(Self::Qlora),
            _ => None,
        }
    }

    /// `lora` or `qlora`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lora => "lora",
            Self::Qlora => "qlora",
        }
    }
}

impl TuningSpec {
    /// The parsed method, if it is one KAITO knows.
    pub fn tuning_method(&self) -> Option<TuningMethod> {
        self.method.as_deref().and_then(TuningMethod::parse)
    }
}

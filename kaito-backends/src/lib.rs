//! kaito-backends: implementations of kaito-core's traits.
//!
//! Where to start:
//! - [`runtime`]: the Burn model runtime (`ModelRuntime`): loading, LoRA/QLoRA training, generation.
//! - [`artifacts`]: OCI adapter images (registry and local layout stores, credentials).
//! - [`fetch`]: tuning inputs (`urls`, `image`, `volumeSource`) and base weights (dir, image, hub).
//! - [`data`]: tuning datasets (Parquet, JSON, JSON Lines, CSV) into token ids.
//! - [`serve`]: the inference HTTP server (KAITO's `/chat` and an OpenAI-compatible API).

pub mod artifacts;
pub mod data;
pub mod error;
pub mod fetch;
pub mod pipeline;
pub mod provision;
pub mod runtime;
pub mod serve;

pub use error::{Error, Result};

//! The three extension points a platform composes: [`NodeProvisioner`], [`ModelRuntime`] and
//! [`ArtifactStore`]. All are object-safe (`Arc<dyn …>`); with the `mocks` feature mockall mocks
//! ([`MockNodeProvisioner`], [`MockModelRuntime`], [`MockArtifactStore`]) are exported for
//! embedders' tests.

mod artifacts;
mod provisioner;
mod runtime;
mod secret;

pub use artifacts::*;
pub use provisioner::*;
pub use runtime::*;
pub use secret::SecretString;

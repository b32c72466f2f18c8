//! OCI artifacts: adapter images pushed and pulled in KAITO's layout.
//!
//! - [`OciRegistryStore`]: any OCI registry (ACR included) through oci-client.
//! - [`OciLayoutStore`]: an OCI image-layout directory, for local mode and tests.
//! - [`DockerCredentials`] and [`acr`]: credentials from a docker config or Microsoft Entra ID.
//! - [`cli`]: what `kaito artifact push|pull` runs.

pub mod acr;
pub mod cli;
mod credentials;
mod errors;
mod extract;
pub mod layout;
mod local;
mod registry;
mod retry;
mod staging;

pub use credentials::{ACR_TOKEN_USER, DockerCredentials, registry_host};
pub use local::OciLayoutStore;
pub use registry::{OciRegistryStore, PlainHttp, RegistryStoreConfig, parse_reference};
pub use retry::RetryPolicy;
pub use staging::Staging;

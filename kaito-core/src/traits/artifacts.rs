//! `ArtifactStore`: moves adapter and dataset directories to and from OCI images.

use std::collections::BTreeMap;
use std::path::Path;

use async_trait::async_trait;

use super::SecretString;
use crate::error::Result;

/// Credentials for one registry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum RegistryCredentials {
    /// No credentials.
    #[default]
    Anonymous,
    /// Username and password (or an ACR refresh token with the all-zeros user).
    Basic {
        /// The user name.
        username: String,
        /// The password or token; never printed.
        password: SecretString,
    },
    /// A bearer token sent as is.
    Bearer(SecretString),
}

/// What an `ArtifactStore` reports for a stored image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageDigest {
    /// The image reference as resolved (`registry/repo:tag`).
    pub reference: String,
    /// The manifest digest, `sha256:…`.
    pub digest: String,
}

/// Pushes directories as OCI images and pulls them back.
///
/// Contract for every implementation:
/// - `push` uploads every blob before the manifest, so a failed push never leaves a tag pointing
///   at a broken image; pushing identical content twice yields the same digest.
/// - `pull` verifies every blob's digest and extracts the image's `/data` into `dest`, rejecting
///   paths that escape it; nothing partial is left in `dest` on failure.
/// - A missing image is [`crate::ErrorKind::NotFound`]; refused credentials are
///   [`crate::ErrorKind::Unauthorized`] naming the registry; 5xx/429/connection errors are
///   retried internally with backoff and then reported as [`crate::ErrorKind::Retryable`].
/// - Credentials never appear in errors or logs.
#[cfg_attr(any(test, feature = "mocks"), mockall::automock)]
#[async_trait]
pub trait ArtifactStore: Send + Sync {
    /// Pushes the files of `dir` as an image under `/data`, with manifest `annotations`.
    async fn push(
        &self,
        dir: &Path,
        reference: &str,
        credentials: &RegistryCredentials,
        annotations: &BTreeMap<String, String>,
    ) -> Result<ImageDigest>;

    /// Pulls `reference` (tag or digest) and extracts its `/data` into `dest`.
    async fn pull(
        &self,
        reference: &str,
        credentials: &RegistryCredentials,
        dest: &Path,
    ) -> Result<ImageDigest>;
}

//! Base weights from one of three places, all answered as a directory of model files.
//!
//! - a local directory: used in place;
//! - an OCI image (KAITO's `kaito-<preset>` weights images, pushed by ORAS as one blob per file
//!   titled with its name, or tar layers): `<cache>/models--<repo path>/snapshots/<digest hex>/`;
//! - the Hugging Face hub: `<cache>/models--<org>--<name>/snapshots/<commit>/` (see [`super::hub`]).
//!
//! Images and hub snapshots share the cache layout, so a cache directory can be pre-seeded and
//! mounted read-only.

use std::path::{Path, PathBuf};

use kaito_core::ErrorKind;
use kaito_core::traits::RegistryCredentials;

use super::hub::{HubClient, HubConfig, repo_cache_dir};
use crate::artifacts::OciRegistryStore;
use crate::artifacts::parse_reference;
use crate::error::{Error, Result};

/// Where base weights come from.
#[derive(Clone, Debug)]
pub enum WeightsSource {
    /// A directory that already holds the model files.
    LocalDir(PathBuf),
    /// An OCI image and the credentials to pull it.
    Image {
        /// `registry/repo:tag` or `…@sha256:…`.
        reference: String,
        /// Pull credentials.
        credentials: RegistryCredentials,
    },
    /// A Hugging Face hub repository; the token and endpoint are in the [`HubConfig`].
    Hub {
        /// `org/name`.
        repo: String,
        /// Branch, tag or commit (`main` by default in KAITO's presets).
        revision: String,
    },
}

/// Resolves base weights to a local directory, downloading into `cache` where needed.
pub async fn fetch_base_weights(
    source: &WeightsSource,
    cache: &Path,
    registry: &OciRegistryStore,
    hub: &HubConfig,
) -> Result<PathBuf> {
    match source {
        WeightsSource::LocalDir(dir) => {
            let meta = tokio::fs::metadata(dir)
                .await
                .map_err(|e| Error::io(dir, e))?;
            if !meta.is_dir() {
                return Err(Error::invalid(
                    dir.display().to_string(),
                    "weights path is not a directory",
                ));
            }
            Ok(dir.clone())
        }
        WeightsSource::Hub { repo, revision } => {
            HubClient::new(hub.clone())?
                .snapshot(repo, revision, cache)
                .await
        }
        WeightsSource::Image {
            reference,
            credentials,
        } => {
            let parsed = parse_reference(reference)?;
            let repo_dir = repo_cache_dir(
                cache,
                &format!("{}/{}", parsed.resolve_registry(), parsed.repository()),
            );
            let digest = registry.manifest_digest(reference, credentials).await?;
            let hex = digest
                .strip_prefix("sha256:")
                .unwrap_or(&digest)
                .to_string();
            let snapshot = repo_dir.join("snapshots").join(&hex);
            if tokio::fs::metadata(&snapshot).await.is_ok() {
                return Ok(snapshot);
            }
            let pulled = registry
                .pull_weights(reference, credentials, &snapshot)
                .await?;
            if pulled.digest != digest {
                // The tag moved between the two requests; keep what was pulled under its own digest.
                let moved = repo_dir
                    .join("snapshots")
                    .join(pulled.digest.trim_start_matches("sha256:"));
                if tokio::fs::metadata(&moved).await.is_err() {
                    tokio::fs::rename(&snapshot, &moved)
                        .await
                        .map_err(|e| Error::io(&moved, e))?;
                    return Ok(moved);
                }
                return Err(Error::artifact(
                    ErrorKind::Retryable,
                    reference,
                    "the tag changed while pulling; retry",
                ));
            }
            if let Some(tag) = parsed.tag() {
                let refs = repo_dir.join("refs");
                tokio::fs::create_dir_all(&refs)
                    .await
                    .map_err(|e| Error::io(&refs, e))?;
                tokio::fs::write(refs.join(tag), &hex)
                    .await
                    .map_err(|e| Error::io(refs.join(tag), e))?;
            }
            Ok(snapshot)
        }
    }
}

//! Everything a tuning workload reads: its input data and the base model's weights.
//!
//! - [`UrlDownloader`]: `tuning.input.urls`, as KAITO's downloader, behind an address guard.
//! - [`fetch_tuning_input`]: `urls`, `image` (the image's `/data`) or `volumeSource` (a path).
//! - [`fetch_base_weights`]: a local directory, an OCI image or the Hugging Face hub, into one cache.

mod guard;
pub mod hub;
mod urls;
mod weights;

use std::path::{Path, PathBuf};

pub use guard::is_public;
pub use hub::{HubClient, HubConfig};
use kaito_core::traits::RegistryCredentials;
pub use urls::{UrlDownloader, UrlFetchConfig, file_name_for};
pub use weights::{WeightsSource, fetch_base_weights};

use crate::artifacts::OciRegistryStore;
use crate::error::{Error, Result};

/// Where a tuning job's dataset comes from (`tuning.input`).
#[derive(Clone, Debug)]
pub enum TuningInput {
    /// `urls`: downloaded into the data directory.
    Urls(Vec<String>),
    /// `image`: the image's `/data` is extracted into the data directory.
    Image {
        /// The image reference.
        reference: String,
        /// Credentials from `imagePullSecrets`.
        credentials: RegistryCredentials,
    },
    /// `volumeSource`: a directory (or file) that must exist; read in place.
    Volume(PathBuf),
}

/// Makes `input` available locally; returns the directory (or file) to read the dataset from.
/// For `urls` and `image`, `data_dir` receives the data (it must be absent or empty for `image`).
pub async fn fetch_tuning_input(
    input: &TuningInput,
    data_dir: &Path,
    downloader: &UrlDownloader,
    registry: &OciRegistryStore,
) -> Result<PathBuf> {
    match input {
        TuningInput::Urls(urls) => {
            downloader.download_all(urls, data_dir).await?;
            Ok(data_dir.to_path_buf())
        }
        TuningInput::Image {
            reference,
            credentials,
        } => {
            registry.pull_data(reference, credentials, data_dir).await?;
            Ok(data_dir.to_path_buf())
        }
        TuningInput::Volume(path) => {
            tokio::fs::metadata(path)
                .await
                .map_err(|e| Error::io(path, e))?;
            Ok(path.clone())
        }
    }
}

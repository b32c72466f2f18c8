//! [`OciRegistryStore`]: the `ArtifactStore` on an OCI distribution registry (ACR, any registry),
//! built on oci-client.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use kaito_core::ErrorKind;
use kaito_core::traits::{ArtifactStore, ImageDigest, RegistryCredentials};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use super::errors::classify;
use super::extract::{LayerBlob, ORAS_UNPACK, Select, unpack_layers};
use super::layout::{MANIFEST_MEDIA_TYPE, build_image};
use super::retry::RetryPolicy;
use super::staging::Staging;
use crate::error::{Error, Result};

/// Which registries are spoken to over plain HTTP (local test registries only).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PlainHttp {
    /// HTTPS everywhere.
    #[default]
    Never,
    /// Plain HTTP for these `host[:port]`s.
    Hosts(Vec<String>),
    /// Plain HTTP for every registry (`--plain-http`).
    Always,
}

/// Settings of an [`OciRegistryStore`].
#[derive(Clone, Debug)]
pub struct RegistryStoreConfig {
    /// Registries reached over plain HTTP.
    pub plain_http: PlainHttp,
    /// Retries of 5xx, 429 and connection failures.
    pub retry: RetryPolicy,
    /// Limit for establishing a connection.
    pub connect_timeout: Duration,
    /// Limit for one read from the registry.
    pub read_timeout: Duration,
}

impl Default for RegistryStoreConfig {
    fn default() -> Self {
        Self {
            plain_http: PlainHttp::Never,
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(120),
        }
    }
}

/// Pushes and pulls images on OCI registries.
#[derive(Clone, Debug, Default)]
pub struct OciRegistryStore {
    config: RegistryStoreConfig,
}

/// Layers up to this size are uploaded from memory (with oci-client's monolithic fallback for
/// registries that mishandle chunked uploads); larger ones are streamed from disk.
const IN_MEMORY_LAYER: u64 = 256 << 20;

impl OciRegistryStore {
    /// A store with `config`.
    pub fn new(config: RegistryStoreConfig) -> Self {
        Self { config }
    }

    /// A fresh client per operation: oci-client keeps the first credentials it saw for a
    /// registry, and a later call may bring different ones.
    fn client(&self) -> Client {
        let protocol = match &self.config.plain_http {
            PlainHttp::Never => ClientProtocol::Https,
            PlainHttp::Hosts(hosts) => ClientProtocol::HttpsExcept(hosts.clone()),
            PlainHttp::Always => ClientProtocol::Http,
        };
        Client::new(ClientConfig {
            protocol,
            read_timeout: Some(self.config.read_timeout),
            connect_timeout: Some(self.config.connect_timeout),
            ..ClientConfig::default()
        })
    }

    /// Pushes the files of `dir` under `data/` (KAITO's adapter layout); returns the manifest digest.
    pub async fn push_dir(
        &self,
        dir: &Path,
        reference: &str,
        credentials: &RegistryCredentials,
        annotations: &BTreeMap<String, String>,
    ) -> Result<ImageDigest> {
        let image = parse_reference(reference)?;
        let (dir_owned, ann) = (dir.to_path_buf(), annotations.clone());
        let built = tokio::task::spawn_blocking(move || build_image(&dir_owned, &ann))
            .await
            .map_err(|e| {
                Error::artifact(
                    ErrorKind::Terminal,
                    reference,
                    format!("building the image failed: {e}"),
                )
            })??;
        let client = self.client();
        client
            .store_auth_if_needed(image.resolve_registry(), &to_auth(credentials))
            .await;
        let retry = &self.config.retry;

        retry
            .run("layer upload", || async {
                if exists(&client, &image, &built.layer_digest, reference).await? {
                    return Ok(());
                }
                let pushed = if built.layer_size <= IN_MEMORY_LAYER {
                    let data = tokio::fs::read(&built.layer_path)
                        .await
                        .map_err(|e| Error::io(&built.layer_path, e))?;
                    client.push_blob(&image, data, &built.layer_digest).await
                } else {
                    let stream = file_stream(built.layer_path.clone()).await?;
                    client
                        .push_blob_stream(
                            &image,
                            stream,
                            &built.layer_digest,
                            Some(built.layer_size),
                        )
                        .await
                };
                pushed
                    .map(drop)
                    .map_err(|e| classify(e, reference, "uploading the layer"))
            })
            .await?;
        retry
            .run("config upload", || async {
                if exists(&client, &image, &built.config_digest, reference).await? {
                    return Ok(());
                }
                let data = built.config.clone();
                client
                    .push_blob(&image, data, &built.config_digest)
                    .await
                    .map(drop)
                    .map_err(|e| classify(e, reference, "uploading the config"))
            })
            .await?;
        // The manifest goes last: only a complete image ever gets the tag.
        retry
            .run("manifest upload", || async {
                let content_type = http::HeaderValue::from_static(MANIFEST_MEDIA_TYPE);
                client
                    .push_manifest_raw(&image, built.manifest.clone(), content_type)
                    .await
                    .map(drop)
                    .map_err(|e| classify(e, reference, "uploading the manifest"))
            })
            .await?;
        tracing::info!(reference, digest = %built.manifest_digest, "pushed image");
        Ok(ImageDigest {
            reference: image.whole(),
            digest: built.manifest_digest.clone(),
        })
    }

    /// Pulls `reference` and extracts the selected part into `dest` (absent or empty).
    async fn pull_select(
        &self,
        reference: &str,
        credentials: &RegistryCredentials,
        dest: &Path,
        select: Select,
    ) -> Result<ImageDigest> {
        let image = parse_reference(reference)?;
        let client = self.client();
        let auth = to_auth(credentials);
        let retry = &self.config.retry;
        let (manifest, digest) = retry
            .run("manifest download", || async {
                client
                    .pull_image_manifest(&image, &auth)
                    .await
                    .map_err(|e| classify(e, reference, "fetching the manifest"))
            })
            .await?;
        let staging = Staging::new(dest)?;
        let blobs = tempfile::Builder::new()
            .prefix(".blobs-")
            .tempdir_in(staging.path().parent().unwrap_or(Path::new(".")))
            .map_err(|e| Error::io(staging.path(), e))?;
        let mut layers = Vec::with_capacity(manifest.layers.len());
        for (i, layer) in manifest.layers.iter().enumerate() {
            let path = blobs.path().join(format!("layer-{i}"));
            retry
                .run("layer download", || async {
                    let file = tokio::fs::File::create(&path)
                        .await
                        .map_err(|e| Error::io(&path, e))?;
                    // pull_blob checks the bytes against the layer digest before returning Ok.
                    client.pull_blob(&image, layer, file).await.map_err(|e| {
                        classify(e, reference, &format!("downloading layer {}", layer.digest))
                    })
                })
                .await?;
            let title = layer
                .annotations
                .as_ref()
                .and_then(|a| a.get("org.opencontainers.image.title").cloned());
            let unpack = layer
                .annotations
                .as_ref()
                .is_some_and(|a| a.get(ORAS_UNPACK).is_some_and(|v| v == "true"));
            layers.push(LayerBlob {
                path,
                media_type: layer.media_type.clone(),
                title,
                unpack,
            });
        }
        let (root, reference_owned) = (staging.path().to_path_buf(), reference.to_string());
        tokio::task::spawn_blocking(move || {
            unpack_layers(&layers, select, &root, &reference_owned)
        })
        .await
        .map_err(|e| {
            Error::artifact(
                ErrorKind::Terminal,
                reference,
                format!("extraction failed: {e}"),
            )
        })??;
        drop(blobs);
        staging.commit()?;
        tracing::info!(reference, %digest, dest = %dest.display(), "pulled image");
        Ok(ImageDigest {
            reference: image.whole(),
            digest,
        })
    }

    /// Pulls a weights image whole into `dest`: tar layers extracted, ORAS file blobs written
    /// under their title.
    pub async fn pull_weights(
        &self,
        reference: &str,
        credentials: &RegistryCredentials,
        dest: &Path,
    ) -> Result<ImageDigest> {
        self.pull_select(reference, credentials, dest, Select::Root)
            .await
    }

    /// The manifest digest `reference` currently points at.
    pub async fn manifest_digest(
        &self,
        reference: &str,
        credentials: &RegistryCredentials,
    ) -> Result<String> {
        let image = parse_reference(reference)?;
        let client = self.client();
        let auth = to_auth(credentials);
        self.config
            .retry
            .run("manifest lookup", || async {
                client
                    .pull_image_manifest(&image, &auth)
                    .await
                    .map(|(_, digest)| digest)
                    .map_err(|e| classify(e, reference, "fetching the manifest"))
            })
            .await
    }

    /// Pulls `reference` and extracts the image's `/data` into `dest` (absent or empty).
    pub async fn pull_data(
        &self,
        reference: &str,
        credentials: &RegistryCredentials,
        dest: &Path,
    ) -> Result<ImageDigest> {
        self.pull_select(reference, credentials, dest, Select::Data)
            .await
    }
}

#[async_trait]
impl ArtifactStore for OciRegistryStore {
    async fn push(
        &self,
        dir: &Path,
        reference: &str,
        credentials: &RegistryCredentials,
        annotations: &BTreeMap<String, String>,
    ) -> kaito_core::Result<ImageDigest> {
        Ok(self
            .push_dir(dir, reference, credentials, annotations)
            .await?)
    }

    async fn pull(
        &self,
        reference: &str,
        credentials: &RegistryCredentials,
        dest: &Path,
    ) -> kaito_core::Result<ImageDigest> {
        Ok(self.pull_data(reference, credentials, dest).await?)
    }
}

/// Parses an image reference, naming it in the error.
pub fn parse_reference(reference: &str) -> Result<Reference> {
    reference.parse::<Reference>().map_err(|e| {
        Error::artifact(
            ErrorKind::InvalidInput,
            reference,
            format!("not a valid image reference: {e}"),
        )
    })
}

fn to_auth(credentials: &RegistryCredentials) -> RegistryAuth {
    match credentials {
        RegistryCredentials::Anonymous => RegistryAuth::Anonymous,
        RegistryCredentials::Basic { username, password } => {
            RegistryAuth::Basic(username.clone(), password.expose().to_string())
        }
        RegistryCredentials::Bearer(token) => RegistryAuth::Bearer(token.expose().to_string()),
    }
}

async fn exists(client: &Client, image: &Reference, digest: &str, reference: &str) -> Result<bool> {
    client
        .blob_exists(image, digest)
        .await
        .map_err(|e| classify(e, reference, "checking for an existing blob"))
}

async fn file_stream(
    path: std::path::PathBuf,
) -> Result<impl futures::Stream<Item = oci_client::errors::Result<bytes::Bytes>> + Send + 'static>
{
    use tokio::io::AsyncReadExt;
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| Error::io(&path, e))?;
    Ok(futures::stream::try_unfold(file, |mut file| async move {
        let mut buf = vec![0u8; 4 << 20];
        let n = file
            .read(&mut buf)
            .await
            .map_err(OciDistributionError::IoError)?;
        if n == 0 {
            return Ok::<_, OciDistributionError>(None);
        }
        buf.truncate(n);
        Ok(Some((bytes::Bytes::from(buf), file)))
    }))
}

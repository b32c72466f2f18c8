//! [`OciLayoutStore`]: the `ArtifactStore` on an OCI image-layout directory (`oci-layout`,
//! `index.json`, `blobs/sha256/…`), readable by skopeo (`oci:<dir>:<ref>`) and oras.
//!
//! Images are the same bytes as in a registry (same digests); references are stored as the
//! `org.opencontainers.image.ref.name` annotation of the index entry. One writer at a time.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use kaito_core::ErrorKind;
use kaito_core::traits::{ArtifactStore, ImageDigest, RegistryCredentials};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::extract::{LayerBlob, ORAS_UNPACK, Select, unpack_layers};
use super::layout::{BuiltImage, MANIFEST_MEDIA_TYPE, build_image, malformed};
use super::staging::Staging;
use crate::error::{Error, Result};

const REF_NAME: &str = "org.opencontainers.image.ref.name";
const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";

/// An OCI image-layout directory used as an image store.
#[derive(Clone, Debug)]
pub struct OciLayoutStore {
    root: PathBuf,
}

impl OciLayoutStore {
    /// A store in `root` (created on the first push).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        let hex = digest
            .strip_prefix("sha256:")
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| {
                Error::invalid(
                    self.root.display().to_string(),
                    format!("unsupported digest {digest:?}"),
                )
            })?;
        Ok(self.root.join("blobs/sha256").join(hex))
    }

    fn write_blob(&self, digest: &str, write: impl FnOnce(&Path) -> io::Result<()>) -> Result<()> {
        let target = self.blob_path(digest)?;
        if target.exists() {
            return Ok(());
        }
        let dir = target.parent().unwrap_or(&self.root);
        let tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io(dir, e))?;
        write(tmp.path()).map_err(|e| Error::io(tmp.path(), e))?;
        tmp.persist(&target)
            .map_err(|e| Error::io(&target, e.error))?;
        Ok(())
    }

    fn read_index(&self) -> Result<Value> {
        let path = self.root.join("index.json");
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| Error::invalid(path.display().to_string(), e.to_string())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Ok(json!({ "schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": [] }))
            }
            Err(e) => Err(Error::io(path, e)),
        }
    }

    fn store(&self, built: &BuiltImage, reference: &str) -> Result<()> {
        fs::create_dir_all(self.root.join("blobs/sha256")).map_err(|e| Error::io(&self.root, e))?;
        let layout = self.root.join("oci-layout");
        if !layout.exists() {
            fs::write(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)
                .map_err(|e| Error::io(&layout, e))?;
        }
        self.write_blob(&built.layer_digest, |p| {
            fs::copy(&built.layer_path, p).map(drop)
        })?;
        self.write_blob(&built.config_digest, |p| fs::write(p, &built.config))?;
        self.write_blob(&built.manifest_digest, |p| fs::write(p, &built.manifest))?;
        // The index is rewritten last and atomically: a reader sees the old or the new image.
        let mut index = self.read_index()?;
        let manifests = index["manifests"]
            .as_array_mut()
            .ok_or_else(|| Error::invalid("index.json", "no manifests array"))?;
        manifests.retain(|m| m["annotations"][REF_NAME] != reference);
        manifests.push(json!({
            "mediaType": MANIFEST_MEDIA_TYPE,
            "digest": built.manifest_digest,
            "size": built.manifest.len(),
            "annotations": { REF_NAME: reference },
        }));
        let path = self.root.join("index.json");
        let tmp =
            tempfile::NamedTempFile::new_in(&self.root).map_err(|e| Error::io(&self.root, e))?;
        fs::write(
            tmp.path(),
            serde_json::to_vec_pretty(&index).unwrap_or_default(),
        )
        .map_err(|e| Error::io(tmp.path(), e))?;
        tmp.persist(&path).map_err(|e| Error::io(&path, e.error))?;
        Ok(())
    }

    /// Reads and verifies the blob `digest`.
    fn read_verified(&self, digest: &str, reference: &str) -> Result<Vec<u8>> {
        let path = self.blob_path(digest)?;
        let bytes = fs::read(&path).map_err(|e| missing(e, &path, reference))?;
        let actual = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        if actual != digest {
            return Err(Error::artifact(
                ErrorKind::Terminal,
                reference,
                format!("blob {digest} is corrupt (content hashes to {actual})"),
            ));
        }
        Ok(bytes)
    }

    fn verify_file(&self, digest: &str, reference: &str) -> Result<PathBuf> {
        let path = self.blob_path(digest)?;
        let mut file = fs::File::open(&path).map_err(|e| missing(e, &path, reference))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf).map_err(|e| Error::io(&path, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        if format!("sha256:{}", hex::encode(hasher.finalize())) != digest {
            return Err(Error::artifact(
                ErrorKind::Terminal,
                reference,
                format!("blob {digest} is corrupt"),
            ));
        }
        Ok(path)
    }

    fn pull_blocking(&self, reference: &str, dest: &Path, select: Select) -> Result<ImageDigest> {
        let index = self.read_index()?;
        let entry = index["manifests"]
            .as_array()
            .into_iter()
            .flatten()
            .rev()
            .find(|m| m["annotations"][REF_NAME] == reference || m["digest"] == reference)
            .ok_or_else(|| {
                Error::artifact(
                    ErrorKind::NotFound,
                    reference,
                    format!("image not found in {}", self.root.display()),
                )
            })?;
        let digest = entry["digest"].as_str().unwrap_or_default().to_string();
        let manifest: Value = serde_json::from_slice(&self.read_verified(&digest, reference)?)
            .map_err(|e| malformed(reference, "manifest", e))?;
        let mut layers = Vec::new();
        for layer in manifest["layers"]
            .as_array()
            .ok_or_else(|| malformed(reference, "manifest", "no layers"))?
        {
            let layer_digest = layer["digest"]
                .as_str()
                .ok_or_else(|| malformed(reference, "manifest", "layer without digest"))?;
            layers.push(LayerBlob {
                path: self.verify_file(layer_digest, reference)?,
                media_type: layer["mediaType"].as_str().unwrap_or_default().to_string(),
                title: layer["annotations"]["org.opencontainers.image.title"]
                    .as_str()
                    .map(str::to_string),
                unpack: layer["annotations"][ORAS_UNPACK] == "true",
            });
        }
        let staging = Staging::new(dest)?;
        unpack_layers(&layers, select, staging.path(), reference)?;
        staging.commit()?;
        Ok(ImageDigest {
            reference: reference.to_string(),
            digest,
        })
    }

    /// Stores the files of `dir` as an image named `reference`; returns its manifest digest.
    pub async fn push_dir(
        &self,
        dir: &Path,
        reference: &str,
        annotations: &BTreeMap<String, String>,
    ) -> Result<ImageDigest> {
        let (this, dir, reference, annotations) = (
            self.clone(),
            dir.to_path_buf(),
            reference.to_string(),
            annotations.clone(),
        );
        blocking(&reference.clone(), move || {
            let built = build_image(&dir, &annotations)?;
            this.store(&built, &reference)?;
            Ok(ImageDigest {
                reference,
                digest: built.manifest_digest.clone(),
            })
        })
        .await
    }

    /// Extracts the `/data` of image `reference` (a name or a `sha256:` digest) into `dest`.
    pub async fn pull_data(&self, reference: &str, dest: &Path) -> Result<ImageDigest> {
        let (this, dest, r) = (self.clone(), dest.to_path_buf(), reference.to_string());
        blocking(reference, move || {
            this.pull_blocking(&r, &dest, Select::Data)
        })
        .await
    }
}

fn missing(e: io::Error, path: &Path, reference: &str) -> Error {
    if e.kind() == io::ErrorKind::NotFound {
        Error::artifact(
            ErrorKind::Terminal,
            reference,
            format!("blob {} is missing from the layout", path.display()),
        )
    } else {
        Error::io(path, e)
    }
}

async fn blocking<T: Send + 'static>(
    reference: &str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        Error::artifact(
            ErrorKind::Terminal,
            reference,
            format!("worker failed: {e}"),
        )
    })?
}

#[async_trait]
impl ArtifactStore for OciLayoutStore {
    async fn push(
        &self,
        dir: &Path,
        reference: &str,
        _credentials: &RegistryCredentials,
        annotations: &BTreeMap<String, String>,
    ) -> kaito_core::Result<ImageDigest> {
        Ok(self.push_dir(dir, reference, annotations).await?)
    }

    async fn pull(
        &self,
        reference: &str,
        _credentials: &RegistryCredentials,
        dest: &Path,
    ) -> kaito_core::Result<ImageDigest> {
        Ok(self.pull_data(reference, dest).await?)
    }
}

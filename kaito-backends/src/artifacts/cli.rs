//! What `kaito artifact push DIR REF` and `kaito artifact pull REF DIR` run.
//!
//! A reference is either an image on a registry (`host/repo:tag`, `host/repo@sha256:…`) or a local
//! OCI layout written `oci:<dir>:<name>` (skopeo's transport syntax).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kaito_core::traits::{ImageDigest, RegistryCredentials};

use super::credentials::DockerCredentials;
use super::layout::MODEL_NAME_ANNOTATION;
use super::local::OciLayoutStore;
use super::registry::{OciRegistryStore, PlainHttp, RegistryStoreConfig};
use crate::error::Result;

/// Options shared by `artifact push` and `artifact pull`.
#[derive(Clone, Debug, Default)]
pub struct ArtifactCliOptions {
    /// `--docker-config FILE`: a docker `config.json` / `.dockerconfigjson` with the credentials.
    pub docker_config: Option<PathBuf>,
    /// `--plain-http`: talk plain HTTP to every registry.
    pub plain_http: bool,
    /// Registries (`host:port`) reached over plain HTTP even without `--plain-http`.
    pub plain_http_registries: Vec<String>,
}

impl ArtifactCliOptions {
    fn store(&self) -> OciRegistryStore {
        let plain_http = if self.plain_http {
            PlainHttp::Always
        } else if self.plain_http_registries.is_empty() {
            PlainHttp::Never
        } else {
            PlainHttp::Hosts(self.plain_http_registries.clone())
        };
        OciRegistryStore::new(RegistryStoreConfig {
            plain_http,
            ..RegistryStoreConfig::default()
        })
    }

    fn credentials(&self, reference: &str) -> Result<RegistryCredentials> {
        match &self.docker_config {
            Some(path) => Ok(DockerCredentials::from_file(path)?.for_reference(reference)),
            None => Ok(RegistryCredentials::Anonymous),
        }
    }
}

/// `oci:<dir>:<name>` -> (dir, name); `name` defaults to `latest`.
fn local_reference(reference: &str) -> Option<(PathBuf, String)> {
    let rest = reference.strip_prefix("oci:")?;
    Some(match rest.rsplit_once(':') {
        Some((dir, name)) if !dir.is_empty() && !name.contains('/') => {
            (PathBuf::from(dir), name.to_string())
        }
        _ => (PathBuf::from(rest), "latest".to_string()),
    })
}

/// Pushes adapter directory `dir` to `reference` in KAITO's layout, annotated with the preset
/// `model_name` when given; returns the manifest digest to print.
pub async fn push_adapter(
    dir: &Path,
    reference: &str,
    model_name: Option<&str>,
    options: &ArtifactCliOptions,
) -> Result<ImageDigest> {
    let mut annotations = BTreeMap::new();
    if let Some(name) = model_name {
        annotations.insert(MODEL_NAME_ANNOTATION.to_string(), name.to_string());
    }
    if let Some((root, name)) = local_reference(reference) {
        return OciLayoutStore::new(root)
            .push_dir(dir, &name, &annotations)
            .await;
    }
    let credentials = options.credentials(reference)?;
    options
        .store()
        .push_dir(dir, reference, &credentials, &annotations)
        .await
}

/// Pulls `reference` and extracts the image's `/data` into `dest` (absent or empty).
pub async fn pull_data(
    reference: &str,
    dest: &Path,
    options: &ArtifactCliOptions,
) -> Result<ImageDigest> {
    if let Some((root, name)) = local_reference(reference) {
        return OciLayoutStore::new(root).pull_data(&name, dest).await;
    }
    let credentials = options.credentials(reference)?;
    options
        .store()
        .pull_data(reference, &credentials, dest)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_references_split_on_the_last_colon() {
        assert_eq!(
            local_reference("oci:/tmp/l:v1"),
            Some((PathBuf::from("/tmp/l"), "v1".into()))
        );
        assert_eq!(
            local_reference("oci:/tmp/l"),
            Some((PathBuf::from("/tmp/l"), "latest".into()))
        );
        assert_eq!(local_reference("r.io/a:v1"), None);
    }

    #[tokio::test]
    async fn push_then_pull_through_a_local_layout() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("adapter");
        std::fs::create_dir(&src).unwrap();
        std::fs::write(src.join("adapter_config.json"), b"{}").unwrap();
        let reference = format!("oci:{}:v1", tmp.path().join("layout").display());
        let opts = ArtifactCliOptions::default();
        let pushed = push_adapter(&src, &reference, Some("phi-3-mini-4k-instruct"), &opts)
            .await
            .unwrap();
        let dest = tmp.path().join("out");
        let pulled = pull_data(&reference, &dest, &opts).await.unwrap();
        assert_eq!(pushed.digest, pulled.digest);
        assert_eq!(
            std::fs::read(dest.join("adapter_config.json")).unwrap(),
            b"{}"
        );
    }
}

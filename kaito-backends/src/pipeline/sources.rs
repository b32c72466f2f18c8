//! A workspace's `tuning.input` and `tuning.output`, as things this machine can act on.

use std::path::{Path, PathBuf};

use kaito_core::api::{DataDestination, DataSource};

use crate::error::{Error, Result};

/// Where the dataset comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputSource {
    /// HTTP(S) files to download.
    Urls(Vec<String>),
    /// An OCI image whose `/data` holds the files.
    Image {
        /// The image reference.
        reference: String,
        /// Names of the pull secrets (resolved by the caller into credentials).
        pull_secrets: Vec<String>,
    },
    /// A local directory (a `hostPath` volume, or a mounted volume inside a pod).
    Directory(PathBuf),
}

/// Where the adapter goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutputTarget {
    /// Push as an OCI image.
    Image {
        /// The image reference.
        reference: String,
        /// The push secret's name.
        push_secret: Option<String>,
    },
    /// Write into a local directory.
    Directory(PathBuf),
}

/// The local path of a volume source: `mounted` when a pod mounted the volume for us (inside
/// the pod a `hostPath` names the node's path, not the container's), else `hostPath.path`,
/// resolved against `base` when relative (local mode reads manifests whose host paths are
/// relative to the manifest).
fn volume_path(
    volume: &serde_json::Value,
    base: &Path,
    mounted: Option<&Path>,
    field: &str,
) -> Result<PathBuf> {
    if let Some(mounted) = mounted {
        return Ok(mounted.to_path_buf());
    }
    let path = volume
        .pointer("/hostPath/path")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| {
            Error::invalid(
                field,
                "only hostPath volumes can be read outside a pod; mount the volume and pass its path",
            )
        })?;
    let path = Path::new(path);
    Ok(if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    })
}

/// `tuning.input` as an [`InputSource`]. `mounted` is where a pod mounted a non-hostPath volume.
pub fn input_source(
    input: &DataSource,
    base: &Path,
    mounted: Option<&Path>,
) -> Result<InputSource> {
    match (&input.urls, &input.image, &input.volume_source) {
        (Some(urls), None, None) if !urls.is_empty() => Ok(InputSource::Urls(urls.clone())),
        (None, Some(image), None) => Ok(InputSource::Image {
            reference: image.clone(),
            pull_secrets: input.image_pull_secrets.clone().unwrap_or_default(),
        }),
        (None, None, Some(volume)) => Ok(InputSource::Directory(volume_path(
            volume,
            base,
            mounted,
            "tuning.input.volumeSource",
        )?)),
        _ => Err(Error::invalid(
            "tuning.input",
            "exactly one of urls, image or volumeSource is required",
        )),
    }
}

/// `tuning.output` as an [`OutputTarget`].
pub fn output_target(
    output: &DataDestination,
    base: &Path,
    mounted: Option<&Path>,
) -> Result<OutputTarget> {
    match (&output.image, &output.volume_source) {
        (Some(image), None) => Ok(OutputTarget::Image {
            reference: image.clone(),
            push_secret: output.image_push_secret.clone(),
        }),
        (None, Some(volume)) => Ok(OutputTarget::Directory(volume_path(
            volume,
            base,
            mounted,
            "tuning.output.volumeSource",
        )?)),
        _ => Err(Error::invalid(
            "tuning.output",
            "exactly one of image or volumeSource is required",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn host_paths_resolve_against_the_manifest_directory() {
        let input = DataSource {
            volume_source: Some(json!({"hostPath": {"path": "data"}})),
            ..Default::default()
        };
        assert_eq!(
            input_source(&input, Path::new("/m"), None).expect("ok"),
            InputSource::Directory(PathBuf::from("/m/data"))
        );
        let abs = DataSource {
            volume_source: Some(json!({"hostPath": {"path": "/abs"}})),
            ..Default::default()
        };
        assert_eq!(
            input_source(&abs, Path::new("/m"), None).expect("ok"),
            InputSource::Directory("/abs".into())
        );
    }

    #[test]
    fn inside_a_pod_a_host_path_is_read_where_the_pod_mounted_it() {
        let input = DataSource {
            volume_source: Some(json!({"hostPath": {"path": "/srv/data"}})),
            ..Default::default()
        };
        assert_eq!(
            input_source(&input, Path::new("/m"), Some(Path::new("/mnt/data"))).expect("mounted"),
            InputSource::Directory("/mnt/data".into())
        );
        assert_eq!(
            input_source(&input, Path::new("/m"), None).expect("local"),
            InputSource::Directory("/srv/data".into())
        );
    }

    #[test]
    fn a_pvc_needs_a_mount_point() {
        let input = DataSource {
            volume_source: Some(json!({"persistentVolumeClaim": {"claimName": "x"}})),
            ..Default::default()
        };
        let err = input_source(&input, Path::new("/m"), None).expect_err("no mount");
        assert!(
            err.to_string().contains("tuning.input.volumeSource"),
            "{err}"
        );
        assert_eq!(
            input_source(&input, Path::new("/m"), Some(Path::new("/mnt/data"))).expect("mounted"),
            InputSource::Directory("/mnt/data".into())
        );
    }

    #[test]
    fn two_sources_are_refused() {
        let input = DataSource {
            urls: Some(vec!["https://a/b".into()]),
            image: Some("x/y:1".into()),
            ..Default::default()
        };
        assert!(input_source(&input, Path::new("/"), None).is_err());
        let out = DataDestination {
            image: Some("r/a:1".into()),
            image_push_secret: Some("s".into()),
            ..Default::default()
        };
        assert_eq!(
            output_target(&out, Path::new("/"), None).expect("ok"),
            OutputTarget::Image {
                reference: "r/a:1".into(),
                push_secret: Some("s".into())
            }
        );
    }
}

//! KAITO's adapter image layout, built deterministically.
//!
//! One tar+gzip layer holding every file of the directory under `data/`, an OCI config whose
//! `rootfs.diff_ids` holds the uncompressed tar's digest, and a manifest carrying the caller's
//! annotations (`sh.kaito.model.name=<preset>`). Entries are sorted and their metadata fixed
//! (mtime 0, uid/gid 0, mode 0644/0755), so the same files always give the same digests.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use kaito_core::ErrorKind;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Media type of the adapter layer.
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Media type of the image config.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
/// Media type of the image manifest.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// Manifest annotation naming the preset an adapter was tuned from.
pub const MODEL_NAME_ANNOTATION: &str = "sh.kaito.model.name";
/// The directory inside the image that holds the payload.
pub const DATA_DIR: &str = "data";

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// An image ready to upload: the layer in a temporary file, config and manifest in memory.
pub struct BuiltImage {
    /// The gzip-compressed layer.
    pub layer_path: PathBuf,
    /// `sha256:` digest of the compressed layer.
    pub layer_digest: String,
    /// Size of the compressed layer in bytes.
    pub layer_size: u64,
    /// `sha256:` digest of the uncompressed tar (the config's diff_id).
    pub diff_id: String,
    /// The config JSON.
    pub config: Vec<u8>,
    /// `sha256:` digest of the config.
    pub config_digest: String,
    /// The manifest JSON, exactly as uploaded.
    pub manifest: Vec<u8>,
    /// `sha256:` digest of the manifest: the image digest.
    pub manifest_digest: String,
    _scratch: tempfile::TempDir,
}

/// Builds the image for `dir` (blocking: call from `spawn_blocking`).
pub fn build_image(dir: &Path, annotations: &BTreeMap<String, String>) -> Result<BuiltImage> {
    let files = list_files(dir)?;
    if !files.iter().any(|(_, is_dir)| !is_dir) {
        return Err(Error::invalid(
            dir.display().to_string(),
            "directory holds no files to push",
        ));
    }
    let scratch = tempfile::tempdir().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let layer_path = scratch.path().join("layer.tar.gz");
    let (diff_id, layer_digest, layer_size) =
        write_layer(dir, &files, &layer_path).map_err(|e| Error::io(&layer_path, e))?;

    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
    }))
    .map_err(|e| Error::invalid("image config", e.to_string()))?;
    let config_digest = sha256_digest(&config);
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": { "mediaType": CONFIG_MEDIA_TYPE, "digest": config_digest, "size": config.len() },
        "layers": [{ "mediaType": LAYER_MEDIA_TYPE, "digest": layer_digest, "size": layer_size }],
    });
    if !annotations.is_empty() {
        manifest["annotations"] = json!(annotations);
    }
    let manifest = serde_json::to_vec(&manifest)
        .map_err(|e| Error::invalid("image manifest", e.to_string()))?;
    let manifest_digest = sha256_digest(&manifest);
    Ok(BuiltImage {
        layer_path,
        layer_digest,
        layer_size,
        diff_id,
        config,
        config_digest,
        manifest,
        manifest_digest,
        _scratch: scratch,
    })
}

/// Every directory and regular file below `dir`, relative, sorted; links and devices are refused
/// because the image must not depend on what lies outside the directory.
fn list_files(dir: &Path) -> Result<Vec<(PathBuf, bool)>> {
    let meta = std::fs::metadata(dir).map_err(|e| Error::io(dir, e))?;
    if !meta.is_dir() {
        return Err(Error::invalid(dir.display().to_string(), "not a directory"));
    }
    let mut out = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(rel) = pending.pop() {
        let abs = dir.join(&rel);
        let mut entries = std::fs::read_dir(&abs)
            .map_err(|e| Error::io(&abs, e))?
            .collect::<io::Result<Vec<_>>>()
            .map_err(|e| Error::io(&abs, e))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let child = rel.join(entry.file_name());
            let kind = entry.file_type().map_err(|e| Error::io(entry.path(), e))?;
            if kind.is_dir() {
                out.push((child.clone(), true));
                pending.push(child);
            } else if kind.is_file() {
                out.push((child, false));
            } else {
                return Err(Error::invalid(
                    entry.path().display().to_string(),
                    "only regular files and directories can be pushed",
                ));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Counts and hashes what passes through.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn write_layer(
    dir: &Path,
    files: &[(PathBuf, bool)],
    out: &Path,
) -> io::Result<(String, String, u64)> {
    let file = BufWriter::new(File::create(out)?);
    let compressed = HashingWriter {
        inner: file,
        hasher: Sha256::new(),
        written: 0,
    };
    let gz = GzEncoder::new(compressed, Compression::best());
    let tar_hash = HashingWriter {
        inner: gz,
        hasher: Sha256::new(),
        written: 0,
    };
    let mut builder = tar::Builder::new(tar_hash);
    builder.append_data(&mut header(true, 0), format!("{DATA_DIR}/"), io::empty())?;
    for (rel, is_dir) in files {
        let name = Path::new(DATA_DIR).join(rel);
        if *is_dir {
            builder.append_data(&mut header(true, 0), name, io::empty())?;
        } else {
            let src = File::open(dir.join(rel))?;
            let len = src.metadata()?.len();
            builder.append_data(&mut header(false, len), name, src)?;
        }
    }
    let tar_hash = builder.into_inner()?;
    let diff_id = format!("sha256:{}", hex::encode(tar_hash.hasher.finalize()));
    let mut compressed = tar_hash.inner.finish()?;
    compressed.flush()?;
    let digest = format!("sha256:{}", hex::encode(compressed.hasher.finalize()));
    Ok((diff_id, digest, compressed.written))
}

fn header(is_dir: bool, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(if is_dir {
        tar::EntryType::Directory
    } else {
        tar::EntryType::Regular
    });
    h.set_mode(if is_dir { 0o755 } else { 0o644 });
    h.set_size(size);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

/// Maps a JSON parse failure of a manifest or config to a terminal artifact error.
pub(crate) fn malformed(reference: &str, what: &str, err: impl std::fmt::Display) -> Error {
    Error::artifact(
        ErrorKind::Terminal,
        reference,
        format!("malformed {what}: {err}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adapter_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("adapter_config.json"), br#"{"r":8}"#).unwrap();
        std::fs::write(
            dir.path().join("adapter_model.safetensors"),
            vec![7u8; 3000],
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("extra")).unwrap();
        std::fs::write(dir.path().join("extra/notes.txt"), b"hi").unwrap();
        dir
    }

    #[test]
    fn same_content_same_digests_regardless_of_mtime() {
        let a = adapter_dir();
        let b = adapter_dir();
        let file = File::options()
            .write(true)
            .open(b.path().join("adapter_config.json"))
            .unwrap();
        file.set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(99))
            .unwrap();
        let ann = BTreeMap::from([(MODEL_NAME_ANNOTATION.to_string(), "phi-3".to_string())]);
        let (x, y) = (
            build_image(a.path(), &ann).unwrap(),
            build_image(b.path(), &ann).unwrap(),
        );
        assert_eq!(x.manifest_digest, y.manifest_digest);
        assert_eq!(x.diff_id, y.diff_id);
        let other = build_image(a.path(), &BTreeMap::new()).unwrap();
        assert_ne!(other.manifest_digest, x.manifest_digest);
    }

    #[test]
    fn layer_holds_sorted_data_entries_and_config_names_the_diff_id() {
        let dir = adapter_dir();
        let img = build_image(dir.path(), &BTreeMap::new()).unwrap();
        let gz = std::fs::read(&img.layer_path).unwrap();
        assert_eq!(sha256_digest(&gz), img.layer_digest);
        let mut tar_bytes = Vec::new();
        io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut tar_bytes).unwrap();
        assert_eq!(sha256_digest(&tar_bytes), img.diff_id);
        let mut archive = tar::Archive::new(&tar_bytes[..]);
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "data/",
                "data/adapter_config.json",
                "data/adapter_model.safetensors",
                "data/extra",
                "data/extra/notes.txt"
            ]
        );
        let config: serde_json::Value = serde_json::from_slice(&img.config).unwrap();
        assert_eq!(config["rootfs"]["diff_ids"][0], img.diff_id.as_str());
    }

    #[test]
    fn empty_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = build_image(dir.path(), &BTreeMap::new()).err().unwrap();
        assert!(err.to_string().contains("no files"), "{err}");
    }
}

//! Applying image layers to a directory safely.
//!
//! Layers (tar, or tar+gzip recognised by its magic bytes) are applied in order into a staging
//! directory, honouring whiteouts; only what lies under the selected prefix (`data/` for adapter
//! and dataset images) is kept. Entries that would land outside the staging directory (`..`,
//! absolute links pointing elsewhere, links through links) are refused. The staging directory
//! becomes the destination only once everything succeeded, so a failed pull leaves nothing.

use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::{Component, Path, PathBuf};

use flate2::read::GzDecoder;
use kaito_core::ErrorKind;

use crate::error::{Error, Result};

/// A downloaded, digest-verified blob of one layer.
pub(crate) struct LayerBlob {
    pub path: PathBuf,
    pub media_type: String,
    /// `org.opencontainers.image.title`: ORAS stores plain files as blobs named by it.
    pub title: Option<String>,
    /// `io.deis.oras.content.unpack`: a titled blob that is a tarball of a directory.
    pub unpack: bool,
}

/// ORAS's annotation for a titled blob that is a directory tarball.
pub(crate) const ORAS_UNPACK: &str = "io.deis.oras.content.unpack";

/// Which part of the image file system is extracted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Select {
    /// The image's `/data` directory (adapters, `input.image` datasets).
    Data,
    /// Everything, with ORAS-style file blobs written under their title (weights images).
    Root,
}

/// Applies `layers` in order into `root` (an empty directory).
pub(crate) fn unpack_layers(
    layers: &[LayerBlob],
    select: Select,
    root: &Path,
    reference: &str,
) -> Result<()> {
    for (i, layer) in layers.iter().enumerate() {
        let fail = |message: String| {
            Error::artifact(
                ErrorKind::Terminal,
                reference,
                format!("layer {i}: {message}"),
            )
        };
        let mut file = File::open(&layer.path).map_err(|e| Error::io(&layer.path, e))?;
        let mut magic = [0u8; 2];
        let n = read_up_to(&mut file, &mut magic).map_err(|e| Error::io(&layer.path, e))?;
        let file = File::open(&layer.path).map_err(|e| Error::io(&layer.path, e))?;
        let is_tar_type = layer.media_type.contains("tar");
        // ORAS (which pushes KAITO's weights images) titles each file blob and, by default, still
        // types it `…layer.v1.tar`; like `oras pull`, a titled blob is a file unless marked
        // for unpacking.
        match (&layer.title, is_tar_type, select) {
            (Some(title), _, Select::Root) if !layer.unpack => {
                let target = root.join(
                    safe_relative(Path::new(title))
                        .ok_or_else(|| fail(format!("unsafe file name {title:?}")))?,
                );
                if let Some(parent) = target.parent() {
                    fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
                }
                fs::copy(&layer.path, &target).map_err(|e| Error::io(&target, e))?;
                continue;
            }
            (_, false, _)
                if !layer.media_type.is_empty() && !layer.media_type.contains("rootfs") =>
            {
                return Err(fail(format!(
                    "media type {} is not a tar layer",
                    layer.media_type
                )));
            }
            _ => {}
        }
        if layer.media_type.contains("zstd") {
            return Err(fail("zstd-compressed layers are not supported".into()));
        }
        let reader: Box<dyn Read> = if n == 2 && magic == [0x1f, 0x8b] {
            Box::new(GzDecoder::new(BufReader::new(file)))
        } else {
            Box::new(BufReader::new(file))
        };
        apply_tar(reader, select, root).map_err(fail)?;
    }
    check_links(root).map_err(|m| Error::artifact(ErrorKind::Terminal, reference, m))
}

/// Every link must resolve inside `root`: lexical checks alone miss chains such as
/// `b -> .` followed by `a -> b/..`.
fn check_links(root: &Path) -> Result<(), String> {
    let canonical_root = root
        .canonicalize()
        .map_err(|e| format!("{}: {e}", root.display()))?;
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))? {
            let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
            let kind = entry
                .file_type()
                .map_err(|e| format!("{}: {e}", entry.path().display()))?;
            if kind.is_symlink() {
                let inside = entry
                    .path()
                    .canonicalize()
                    .is_ok_and(|p| p.starts_with(&canonical_root));
                if !inside {
                    let rel = entry
                        .path()
                        .strip_prefix(root)
                        .unwrap_or(&entry.path())
                        .to_path_buf();
                    return Err(format!(
                        "link {} is dangling or points outside the destination",
                        rel.display()
                    ));
                }
            } else if kind.is_dir() {
                pending.push(entry.path());
            }
        }
    }
    Ok(())
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// `path` without `.`/root components, or None if it climbs with `..`.
fn safe_relative(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Maps an image path to a path below the extraction root, or None when it is not selected.
fn selected(path: &Path, select: Select) -> Option<PathBuf> {
    match select {
        Select::Root => Some(path.to_path_buf()),
        Select::Data => path
            .strip_prefix(super::layout::DATA_DIR)
            .ok()
            .map(Path::to_path_buf),
    }
}

fn apply_tar(reader: impl Read, select: Select, root: &Path) -> Result<(), String> {
    let canonical_root = root
        .canonicalize()
        .map_err(|e| format!("{}: {e}", root.display()))?;
    let mut archive = tar::Archive::new(reader);
    let entries = archive
        .entries()
        .map_err(|e| format!("not a tar archive: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("corrupt tar archive: {e}"))?;
        let raw = entry
            .path()
            .map_err(|e| format!("bad entry name: {e}"))?
            .into_owned();
        let path = safe_relative(&raw)
            .ok_or_else(|| format!("entry {} escapes the image root", raw.display()))?;
        let Some(rel) = selected(&path, select) else {
            continue;
        };
        let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if let Some(hidden) = name.strip_prefix(".wh.") {
            let dir = root.join(rel.parent().unwrap_or(Path::new("")));
            whiteout(&dir, hidden, &canonical_root)?;
            continue;
        }
        let target = root.join(&rel);
        if rel.as_os_str().is_empty() {
            continue; // the `data/` directory itself
        }
        let parent = target.parent().unwrap_or(root);
        fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        let parent_real = parent
            .canonicalize()
            .map_err(|e| format!("{}: {e}", parent.display()))?;
        if !parent_real.starts_with(&canonical_root) {
            return Err(format!(
                "entry {} resolves outside the destination",
                raw.display()
            ));
        }
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            if fs::symlink_metadata(&target).is_ok_and(|m| !m.is_dir()) {
                remove(&target)?;
            }
            fs::create_dir_all(&target).map_err(|e| format!("{}: {e}", target.display()))?;
            continue;
        }
        // A later layer replaces whatever an earlier one put there; never write through a link.
        if fs::symlink_metadata(&target).is_ok() {
            remove(&target)?;
        }
        if kind.is_file() || kind == tar::EntryType::Continuous {
            let mut out =
                File::create(&target).map_err(|e| format!("{}: {e}", target.display()))?;
            io::copy(&mut entry, &mut out).map_err(|e| format!("{}: {e}", raw.display()))?;
        } else if kind.is_symlink() {
            let link = entry
                .link_name()
                .map_err(|e| format!("bad link: {e}"))?
                .unwrap_or_default()
                .into_owned();
            let resolved = if link.is_absolute() {
                safe_relative(&link).and_then(|l| selected(&l, select))
            } else {
                normalize(&rel.parent().unwrap_or(Path::new("")).join(&link))
            };
            let Some(resolved) = resolved else {
                return Err(format!(
                    "link {} -> {} points outside the destination",
                    raw.display(),
                    link.display()
                ));
            };
            // Always written relative, so the tree stays valid wherever it is moved.
            let mut relative = PathBuf::new();
            for _ in 1..rel.components().count() {
                relative.push("..");
            }
            symlink(&relative.join(resolved), &target)
                .map_err(|e| format!("{}: {e}", target.display()))?;
        } else if kind.is_hard_link() {
            let link = entry
                .link_name()
                .map_err(|e| format!("bad link: {e}"))?
                .unwrap_or_default()
                .into_owned();
            let source = safe_relative(&link)
                .and_then(|l| selected(&l, select))
                .ok_or_else(|| {
                    format!(
                        "hard link {} -> {} points outside the destination",
                        raw.display(),
                        link.display()
                    )
                })?;
            fs::copy(root.join(&source), &target)
                .map_err(|e| format!("hard link {}: {e}", raw.display()))?;
        }
        // Devices, fifos and other specials have no place in a data directory; they are skipped.
    }
    Ok(())
}

/// Resolves `..` lexically; None when the path climbs above its start.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

#[cfg(unix)]
fn symlink(link: &Path, target: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(link, target)
}

#[cfg(not(unix))]
fn symlink(_: &Path, target: &Path) -> io::Result<()> {
    Err(io::Error::other(format!(
        "symbolic links are not supported here: {}",
        target.display()
    )))
}

fn remove(path: &Path) -> Result<(), String> {
    let meta = fs::symlink_metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let res = if meta.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    res.map_err(|e| format!("{}: {e}", path.display()))
}

fn whiteout(dir: &Path, hidden: &str, canonical_root: &Path) -> Result<(), String> {
    let Ok(real) = dir.canonicalize() else {
        return Ok(());
    };
    if !real.starts_with(canonical_root) {
        return Err(format!(
            "whiteout in {} resolves outside the destination",
            dir.display()
        ));
    }
    if hidden == ".wh..opq" {
        for entry in fs::read_dir(&real).map_err(|e| format!("{}: {e}", real.display()))? {
            let entry = entry.map_err(|e| format!("{}: {e}", real.display()))?;
            remove(&entry.path())?;
        }
    } else if !hidden.contains('/') && hidden != ".." && hidden != "." {
        let victim = real.join(hidden);
        if fs::symlink_metadata(&victim).is_ok() {
            remove(&victim)?;
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "extract_tests.rs"]
mod tests;

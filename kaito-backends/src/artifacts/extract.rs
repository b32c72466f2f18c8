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
}

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
        match (&layer.title, is_tar_type, select) {
            (Some(title), false, Select::Root) => {
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
mod tests {
    use std::io::Write;

    use super::*;

    enum E<'a> {
        File(&'a str, &'a [u8]),
        Dir(&'a str),
        Link(&'a str, &'a str),
    }

    /// A tar with raw entry names (the tar crate's own setters refuse `..`, which we must test).
    fn tar(entries: &[E], gzip: bool, dir: &Path, name: &str) -> LayerBlob {
        let mut builder = tar::Builder::new(Vec::new());
        for e in entries {
            let mut h = tar::Header::new_gnu();
            let (path, data, kind, link): (&str, &[u8], _, Option<&str>) = match e {
                E::File(p, d) => (p, d, tar::EntryType::Regular, None),
                E::Dir(p) => (p, b"", tar::EntryType::Directory, None),
                E::Link(p, l) => (p, b"", tar::EntryType::Symlink, Some(l)),
            };
            h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
            if let Some(l) = link {
                h.as_old_mut().linkname[..l.len()].copy_from_slice(l.as_bytes());
            }
            h.set_entry_type(kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            builder.append(&h, &data[..]).unwrap();
        }
        let bytes = builder.into_inner().unwrap();
        let bytes = if gzip {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&bytes).unwrap();
            gz.finish().unwrap()
        } else {
            bytes
        };
        let path = dir.join(name);
        fs::write(&path, bytes).unwrap();
        LayerBlob {
            path,
            media_type: "application/vnd.oci.image.layer.v1.tar".into(),
            title: None,
        }
    }

    fn unpack(layers: &[LayerBlob]) -> (tempfile::TempDir, Result<()>) {
        let out = tempfile::tempdir().unwrap();
        let res = unpack_layers(layers, Select::Data, out.path(), "r.io/x:1");
        (out, res)
    }

    #[test]
    fn layers_apply_in_order_with_whiteouts_and_only_data_is_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let l1 = tar(
            &[
                E::Dir("data/"),
                E::File("data/a.json", b"old"),
                E::File("data/gone.txt", b"x"),
                E::File("etc/passwd", b"no"),
                E::File("data/sub/s", b"s"),
            ],
            true,
            tmp.path(),
            "l1",
        );
        let l2 = tar(
            &[
                E::File("./data/a.json", b"new"),
                E::File("data/.wh.gone.txt", b""),
                E::File("data/sub/.wh..wh..opq", b""),
                E::Link("data/ln", "a.json"),
            ],
            false,
            tmp.path(),
            "l2",
        );
        let (out, res) = unpack(&[l1, l2]);
        res.unwrap();
        assert_eq!(fs::read(out.path().join("a.json")).unwrap(), b"new");
        assert!(!out.path().join("gone.txt").exists());
        assert_eq!(fs::read_dir(out.path().join("sub")).unwrap().count(), 0);
        assert!(!out.path().join("etc").exists());
        assert_eq!(fs::read(out.path().join("ln")).unwrap(), b"new");
    }

    #[test]
    fn traversal_and_escaping_links_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let cases: [&[E]; 4] = [
            &[E::File("data/../../evil", b"x")],
            &[E::Link("data/l", "/etc/passwd")],
            &[E::Link("data/l", "../../outside")],
            &[E::Link("data/b", "."), E::Link("data/a", "b/..")],
        ];
        for (i, entries) in cases.iter().enumerate() {
            let layer = tar(entries, false, tmp.path(), &format!("bad{i}"));
            let (_out, res) = unpack(&[layer]);
            let err = res.expect_err(&format!("case {i} accepted"));
            assert!(err.to_string().contains("r.io/x:1"), "{err}");
        }
        assert!(!tmp.path().parent().unwrap().join("evil").exists());
    }

    #[test]
    fn writes_through_an_inside_link_stay_inside_and_absolute_data_links_are_rewritten() {
        let tmp = tempfile::tempdir().unwrap();
        let layer = tar(
            &[
                E::Dir("data/real/"),
                E::Link("data/alias", "/data/real"),
                E::File("data/alias/f", b"1"),
            ],
            false,
            tmp.path(),
            "l",
        );
        let (out, res) = unpack(&[layer]);
        res.unwrap();
        assert_eq!(fs::read(out.path().join("real/f")).unwrap(), b"1");
        assert_eq!(
            fs::read_link(out.path().join("alias")).unwrap(),
            Path::new("real")
        );
    }

    #[test]
    fn non_tar_media_types_are_refused_for_data_and_titled_blobs_kept_for_root() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("blob");
        fs::write(&path, b"weights").unwrap();
        let blob = || LayerBlob {
            path: path.clone(),
            media_type: "application/vnd.oci.image.layer.v1.raw".into(),
            title: Some("model.safetensors".into()),
        };
        let (_o, res) = unpack(&[blob()]);
        assert!(res.unwrap_err().to_string().contains("not a tar layer"));
        let out = tempfile::tempdir().unwrap();
        unpack_layers(&[blob()], Select::Root, out.path(), "r").unwrap();
        assert_eq!(
            fs::read(out.path().join("model.safetensors")).unwrap(),
            b"weights"
        );
    }
}

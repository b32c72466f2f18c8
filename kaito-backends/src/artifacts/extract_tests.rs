//! Tests of layer extraction: order, whiteouts, selection, traversal and link safety.

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
        builder.append(&h, data).unwrap();
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
        unpack: false,
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
        unpack: false,
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

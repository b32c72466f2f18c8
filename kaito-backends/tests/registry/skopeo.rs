//! Interoperability with skopeo, the client KAITO's puller runs.

use std::io::Read;

use super::*;

fn skopeo(args: &[&str]) {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo (apt-get install skopeo)");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

fn tar_names(bytes: &[u8]) -> Vec<String> {
    let reader: Box<dyn Read> = if bytes.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(bytes))
    } else {
        Box::new(bytes)
    };
    tar::Archive::new(reader)
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect()
}

#[tokio::test]
async fn skopeo_pulls_our_adapter_image_as_kaitos_puller_does() {
    let Some(registry) = env_or_skip("KAITO_TEST_REGISTRY") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("adapter");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("adapter_config.json"), b"{\"r\":16}").unwrap();
    std::fs::write(src.join("adapter_model.safetensors"), vec![3u8; 100_000]).unwrap();
    let reference = format!("{registry}/kaito/skopeo-reads:v1");
    store(RetryPolicy::default())
        .push_dir(&src, &reference, &RegistryCredentials::Anonymous, &phi3())
        .await
        .unwrap();

    let out = tmp.path().join("skopeo-dir");
    let dir_arg = format!("dir:{}", out.display());
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--dest-decompress",
        &format!("docker://{reference}"),
        &dir_arg,
    ]);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        manifest["annotations"]["sh.kaito.model.name"],
        "phi-3-mini-4k-instruct"
    );
    let mut names = Vec::new();
    for layer in manifest["layers"].as_array().unwrap() {
        let hex = layer["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:");
        names.extend(tar_names(&std::fs::read(out.join(hex)).unwrap()));
    }
    names.retain(|n| !n.ends_with('/'));
    assert_eq!(
        names,
        ["data/adapter_config.json", "data/adapter_model.safetensors"]
    );
}

/// A `dir:` image of two layers (a plain tar, then a tar+gzip with a whiteout), as skopeo stores it.
fn skopeo_dir(root: &Path) -> PathBuf {
    let dir = root.join("prepared");
    std::fs::create_dir(&dir).unwrap();
    let tar_of = |entries: &[(&str, &[u8])]| {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    };
    let layer1 = tar_of(&[
        ("data/train.jsonl", b"{\"text\":\"a\"}\n"),
        ("data/old.txt", b"old"),
        ("bin/sh", b"x"),
    ]);
    let layer2_tar = tar_of(&[
        ("data/.wh.old.txt", b""),
        ("data/extra/b.csv", b"q,a\n1,2\n"),
    ]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &layer2_tar).unwrap();
    let layer2 = gz.finish().unwrap();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", sha256_hex(&layer1)), format!("sha256:{}", sha256_hex(&layer2_tar))]},
    }))
    .unwrap();
    let descriptor = |media: &str, bytes: &[u8]| serde_json::json!({"mediaType": media, "digest": format!("sha256:{}", sha256_hex(bytes)), "size": bytes.len()});
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptor("application/vnd.oci.image.config.v1+json", &config),
        "layers": [descriptor("application/vnd.oci.image.layer.v1.tar", &layer1), descriptor("application/vnd.oci.image.layer.v1.tar+gzip", &layer2)],
    });
    for blob in [&layer1, &layer2, &config] {
        std::fs::write(dir.join(sha256_hex(blob)), blob).unwrap();
    }
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("version"), "Directory Transport Version: 1.1\n").unwrap();
    dir
}

#[tokio::test]
async fn image_pushed_by_skopeo_is_pulled_by_ours() {
    let Some(registry) = env_or_skip("KAITO_TEST_REGISTRY") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let prepared = skopeo_dir(tmp.path());
    let reference = format!("{registry}/kaito/from-skopeo:v1");
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("dir:{}", prepared.display()),
        &format!("docker://{reference}"),
    ]);

    let dest = tmp.path().join("data");
    store(RetryPolicy::default())
        .pull_data(&reference, &RegistryCredentials::Anonymous, &dest)
        .await
        .unwrap();
    let got = files(&dest);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        ["extra/b.csv", "train.jsonl"]
    );
    assert_eq!(got["train.jsonl"], b"{\"text\":\"a\"}\n");
}

#[tokio::test]
async fn local_layout_is_readable_by_skopeo_with_the_registry_digest() {
    let Some(registry) = env_or_skip("KAITO_TEST_REGISTRY") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let src = adapter(tmp.path(), 4);
    let layout = kaito_backends::artifacts::OciLayoutStore::new(tmp.path().join("layout"));
    let local = layout.push_dir(&src, "v1", &phi3()).await.unwrap();
    let remote = store(RetryPolicy::default())
        .push_dir(
            &src,
            &format!("{registry}/kaito/layout-direct:v1"),
            &RegistryCredentials::Anonymous,
            &phi3(),
        )
        .await
        .unwrap();
    assert_eq!(local.digest, remote.digest);

    let copied = format!("{registry}/kaito/layout-copied:v1");
    let oci_arg = format!("oci:{}:v1", tmp.path().join("layout").display());
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &oci_arg,
        &format!("docker://{copied}"),
    ]);
    let dest = tmp.path().join("out");
    let pulled = store(RetryPolicy::default())
        .pull_data(&copied, &RegistryCredentials::Anonymous, &dest)
        .await
        .unwrap();
    assert_eq!(pulled.digest, local.digest);
    assert_eq!(files(&dest), files(&src));
}

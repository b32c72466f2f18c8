//! Base weights from an ORAS-style image (one titled blob per file, as KAITO's weights images).

use kaito_backends::fetch::{HubConfig, WeightsSource, fetch_base_weights};
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::OciImageManifest;
use oci_client::secrets::RegistryAuth;

use super::*;

/// Pushes files the way `oras push` does: media type `…layer.v1.tar` on raw bytes, titled.
async fn oras_push(reference: &str, files: &[(&str, &[u8])]) {
    let client = oci_client::Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    });
    let layers: Vec<ImageLayer> = files
        .iter()
        .map(|(name, data)| {
            let ann = BTreeMap::from([(
                "org.opencontainers.image.title".to_string(),
                name.to_string(),
            )]);
            ImageLayer::new(
                data.to_vec(),
                "application/vnd.oci.image.layer.v1.tar".into(),
                Some(ann),
            )
        })
        .collect();
    let config = Config::new(
        b"{}".to_vec(),
        "application/vnd.oci.image.config.v1+json".into(),
        None,
    );
    let mut manifest = OciImageManifest::build(&layers, &config, None);
    manifest.media_type = Some(oci_client::manifest::OCI_IMAGE_MEDIA_TYPE.to_string());
    let image = reference.parse().unwrap();
    client
        .push(
            &image,
            &layers,
            config,
            &RegistryAuth::Anonymous,
            Some(manifest),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn weights_image_lands_in_the_shared_cache_layout() {
    let Some(registry) = env_or_skip("KAITO_TEST_REGISTRY") else {
        return;
    };
    let reference = format!("{registry}/kaito/kaito-tiny:0.1.0");
    oras_push(
        &reference,
        &[
            ("config.json", b"{\"model_type\":\"llama\"}"),
            ("model.safetensors", b"weights-bytes"),
        ],
    )
    .await;
    let cache = tempfile::tempdir().unwrap();
    let source = WeightsSource::Image {
        reference: reference.clone(),
        credentials: RegistryCredentials::Anonymous,
    };
    let registry_store = store(RetryPolicy::default());
    let dir = fetch_base_weights(
        &source,
        cache.path(),
        &registry_store,
        &HubConfig::default(),
    )
    .await
    .unwrap();
    assert!(
        dir.starts_with(cache.path().join(format!(
            "models--{}--kaito--kaito-tiny/snapshots",
            registry.replace('/', "--")
        ))),
        "{}",
        dir.display()
    );
    assert_eq!(
        std::fs::read(dir.join("model.safetensors")).unwrap(),
        b"weights-bytes"
    );
    assert_eq!(
        std::fs::read(dir.join("config.json")).unwrap(),
        b"{\"model_type\":\"llama\"}"
    );
    let refs = dir.parent().unwrap().parent().unwrap().join("refs/0.1.0");
    assert_eq!(
        std::fs::read_to_string(refs).unwrap(),
        dir.file_name().unwrap().to_string_lossy()
    );
    // Cached: the same directory again.
    assert_eq!(
        fetch_base_weights(
            &source,
            cache.path(),
            &registry_store,
            &HubConfig::default()
        )
        .await
        .unwrap(),
        dir
    );
}

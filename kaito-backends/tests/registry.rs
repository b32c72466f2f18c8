//! The OCI store against real registries (Debian's docker-registry 2.8) and skopeo.
//!
//! Start them with `source <(.ci/registries.sh start)`; the tests read KAITO_TEST_REGISTRY,
//! KAITO_TEST_AUTH_REGISTRY, KAITO_TEST_AUTH_USER and KAITO_TEST_AUTH_PASSWORD. Without them the
//! tests fail when `CI` is set and are skipped (with a notice) otherwise.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kaito_backends::artifacts::{
    OciRegistryStore, PlainHttp, RegistryStoreConfig, RetryPolicy,
    cli::{ArtifactCliOptions, pull_data, push_adapter},
    layout::MODEL_NAME_ANNOTATION,
};
use kaito_core::ErrorKind;
use kaito_core::traits::{RegistryCredentials, SecretString};

fn env_or_skip(name: &str) -> Option<String> {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var_os("CI").is_some() => {
            panic!("{name} is not set; run `source <(.ci/registries.sh start)` first")
        }
        _ => {
            eprintln!(
                "SKIPPED: {name} is not set (start the registries with `source <(.ci/registries.sh start)`)"
            );
            None
        }
    }
}

fn store(retry: RetryPolicy) -> OciRegistryStore {
    OciRegistryStore::new(RegistryStoreConfig {
        plain_http: PlainHttp::Always,
        retry,
        ..RegistryStoreConfig::default()
    })
}

fn quick_retry(attempts: u32) -> RetryPolicy {
    RetryPolicy {
        attempts,
        initial_delay: Duration::from_millis(200),
        max_delay: Duration::from_millis(500),
    }
}

/// Retries long enough to outlast a registry restart.
fn patient_retry() -> RetryPolicy {
    RetryPolicy {
        attempts: 20,
        initial_delay: Duration::from_millis(300),
        max_delay: Duration::from_millis(600),
    }
}

fn adapter(root: &Path, seed: u8) -> PathBuf {
    let dir = root.join(format!("adapter-{seed}"));
    std::fs::create_dir_all(dir.join("checkpoint")).unwrap();
    std::fs::write(
        dir.join("adapter_config.json"),
        format!(r#"{{"r": 8, "seed": {seed}}}"#),
    )
    .unwrap();
    let weights: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 ^ seed)
        .collect();
    std::fs::write(dir.join("adapter_model.safetensors"), weights).unwrap();
    std::fs::write(dir.join("checkpoint/trainer_state.json"), b"{}").unwrap();
    dir
}

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                pending.push(p);
            } else {
                out.insert(
                    p.strip_prefix(dir).unwrap().display().to_string(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

fn phi3() -> BTreeMap<String, String> {
    BTreeMap::from([(
        MODEL_NAME_ANNOTATION.to_string(),
        "phi-3-mini-4k-instruct".to_string(),
    )])
}

#[tokio::test]
async fn push_then_pull_round_trips_byte_for_byte_and_same_content_gives_same_digest() {
    let Some(registry) = env_or_skip("KAITO_TEST_REGISTRY") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let src = adapter(tmp.path(), 1);
    let store = store(RetryPolicy::default());
    let anon = RegistryCredentials::Anonymous;
    let pushed = store
        .push_dir(
            &src,
            &format!("{registry}/kaito/roundtrip:v1"),
            &anon,
            &phi3(),
        )
        .await
        .unwrap();
    assert!(pushed.digest.starts_with("sha256:"));
    let again = store
        .push_dir(
            &src,
            &format!("{registry}/kaito/roundtrip:v2"),
            &anon,
            &phi3(),
        )
        .await
        .unwrap();
    assert_eq!(pushed.digest, again.digest);

    let dest = tmp.path().join("pulled");
    let pulled = store
        .pull_data(&format!("{registry}/kaito/roundtrip:v1"), &anon, &dest)
        .await
        .unwrap();
    assert_eq!(pulled.digest, pushed.digest);
    assert_eq!(files(&dest), files(&src));

    let by_digest = tmp.path().join("by-digest");
    store
        .pull_data(
            &format!("{registry}/kaito/roundtrip@{}", pushed.digest),
            &anon,
            &by_digest,
        )
        .await
        .unwrap();
    assert_eq!(files(&by_digest), files(&src));
}

#[tokio::test]
async fn missing_image_is_not_found_naming_the_reference() {
    let Some(registry) = env_or_skip("KAITO_TEST_REGISTRY") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let reference = format!("{registry}/kaito/does-not-exist:v9");
    let err = store(RetryPolicy::default())
        .pull_data(
            &reference,
            &RegistryCredentials::Anonymous,
            &tmp.path().join("d"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains(&reference), "{err}");
    assert!(!tmp.path().join("d").exists());
}

#[tokio::test]
async fn auth_registry_accepts_the_right_password_and_names_the_registry_on_a_wrong_one() {
    let Some(registry) = env_or_skip("KAITO_TEST_AUTH_REGISTRY") else {
        return;
    };
    let user = env_or_skip("KAITO_TEST_AUTH_USER").unwrap();
    let password = env_or_skip("KAITO_TEST_AUTH_PASSWORD").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let src = adapter(tmp.path(), 2);
    let reference = format!("{registry}/kaito/private:v1");
    let store = store(quick_retry(2));
    let good = RegistryCredentials::Basic {
        username: user.clone(),
        password: SecretString::new(password.clone()),
    };
    store
        .push_dir(&src, &reference, &good, &phi3())
        .await
        .unwrap();

    let wrong_secret = "Wr0ngPassw0rd-hunter2";
    let wrong = RegistryCredentials::Basic {
        username: user,
        password: SecretString::new(wrong_secret),
    };
    for err in [
        store
            .push_dir(&src, &reference, &wrong, &phi3())
            .await
            .unwrap_err(),
        store
            .pull_data(&reference, &wrong, &tmp.path().join("w"))
            .await
            .unwrap_err(),
        store
            .pull_data(
                &reference,
                &RegistryCredentials::Anonymous,
                &tmp.path().join("a"),
            )
            .await
            .unwrap_err(),
    ] {
        let text = format!("{err} {err:?}");
        assert_eq!(err.kind(), ErrorKind::Unauthorized, "{text}");
        assert!(err.to_string().contains(&registry), "{text}");
        assert!(
            !text.contains(wrong_secret) && !text.contains(&password),
            "{text}"
        );
    }

    // The CLI path: credentials from a docker config whose key carries a scheme.
    let config = tmp.path().join("config.json");
    let auth = base64_encode(&format!(
        "{}:{}",
        std::env::var("KAITO_TEST_AUTH_USER").unwrap(),
        password
    ));
    std::fs::write(
        &config,
        format!(r#"{{"auths":{{"http://{registry}/v2/":{{"auth":"{auth}"}}}}}}"#),
    )
    .unwrap();
    let opts = ArtifactCliOptions {
        docker_config: Some(config),
        plain_http: true,
        ..Default::default()
    };
    let pushed = push_adapter(
        &src,
        &format!("{registry}/kaito/cli:v1"),
        Some("phi-3"),
        &opts,
    )
    .await
    .unwrap();
    let pulled = pull_data(
        &format!("{registry}/kaito/cli:v1"),
        &tmp.path().join("cli"),
        &opts,
    )
    .await
    .unwrap();
    assert_eq!(pushed.digest, pulled.digest);
    assert_eq!(files(&tmp.path().join("cli")), files(&src));
}

fn base64_encode(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A registry process of the test's own, on a free port, killed on drop.
struct OwnRegistry {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl OwnRegistry {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = format!(
            "version: 0.1\nlog: {{level: warn}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\nhttp: {{addr: 127.0.0.1:{port}}}\n",
            dir.path().join("data").display()
        );
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        Self {
            dir,
            port,
            child: None,
        }
    }

    fn start(&mut self) {
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(self.dir.path().join("config.yml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry (apt-get install docker-registry)");
        self.child = Some(child);
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }
}

impl Drop for OwnRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test]
async fn stopped_registry_gives_a_clear_error_and_a_retry_after_restart_succeeds() {
    let Some(_) = env_or_skip("KAITO_TEST_REGISTRY") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let src = adapter(tmp.path(), 3);
    let mut own = OwnRegistry::new();
    let reference = format!("127.0.0.1:{}/kaito/flaky:v1", own.port);

    let err = store(quick_retry(3))
        .push_dir(&src, &reference, &RegistryCredentials::Anonymous, &phi3())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Retryable, "{err}");
    assert!(
        err.to_string()
            .contains(&format!("cannot reach registry 127.0.0.1:{}", own.port)),
        "{err}"
    );

    // Back while the push is backing off: the same call succeeds.
    let push = tokio::spawn({
        let (src, reference) = (src.clone(), reference.clone());
        async move {
            store(patient_retry())
                .push_dir(&src, &reference, &RegistryCredentials::Anonymous, &phi3())
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    own.start();
    let pushed = push.await.unwrap().unwrap();
    let dest = tmp.path().join("after-restart");
    let pulled = store(quick_retry(10))
        .pull_data(&reference, &RegistryCredentials::Anonymous, &dest)
        .await
        .unwrap();
    assert_eq!(pushed.digest, pulled.digest);
    assert_eq!(files(&dest), files(&src));
}

#[path = "registry/skopeo.rs"]
mod skopeo;

#[path = "registry/weights.rs"]
mod weights;

#[path = "registry/interrupted.rs"]
mod interrupted;

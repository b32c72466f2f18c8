//! The registry process killed in the middle of a blob upload.
//!
//! A byte-forwarding proxy sits between the store and a registry process of the test's own. When
//! the proxy sees the first blob upload request (`PUT`/`PATCH .../blobs/uploads/...`) it forwards
//! the request line and part of the body, then kills the registry process and drops the
//! connection: the registry dies with an upload session open and half a blob received, exactly
//! the moment a crash or a rollout would hit. Killing the real process (not just the proxy's
//! socket) is what makes the restart meaningful: the restarted registry finds that leftover
//! upload in its storage.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kaito_core::ErrorKind;
use kaito_core::traits::RegistryCredentials;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use super::{OwnRegistry, adapter, env_or_skip, files, patient_retry, phi3, quick_retry, store};

/// Bytes of the upload request (head and start of the body) forwarded before the kill.
const BYTES_BEFORE_KILL: usize = 4 * 1024;

/// Forwards 127.0.0.1:`port` to the registry and kills it once, during the first blob upload.
struct KillingProxy {
    port: u16,
    registry: Arc<Mutex<OwnRegistry>>,
    armed: Arc<AtomicBool>,
    killed: Arc<Notify>,
}

impl KillingProxy {
    async fn start(registry: Arc<Mutex<OwnRegistry>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let proxy = Self {
            port,
            registry,
            armed: Arc::new(AtomicBool::new(false)),
            killed: Arc::new(Notify::new()),
        };
        let (registry, armed, killed) = (
            proxy.registry.clone(),
            proxy.armed.clone(),
            proxy.killed.clone(),
        );
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let upstream = registry.lock().unwrap().port;
                tokio::spawn(forward(
                    client,
                    upstream,
                    registry.clone(),
                    armed.clone(),
                    killed.clone(),
                ));
            }
        });
        proxy
    }

    /// The next blob upload through the proxy kills the registry.
    fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }
}

async fn forward(
    mut client: TcpStream,
    upstream: u16,
    registry: Arc<Mutex<OwnRegistry>>,
    armed: Arc<AtomicBool>,
    killed: Arc<Notify>,
) {
    // While the registry is down the client sees its connection closed, as it would on a
    // registry that died behind a load balancer.
    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
        return;
    };
    let (mut server_read, mut server_write) = server.into_split();
    let (mut client_read, mut client_write) = client.split();
    let to_client = tokio::io::copy(&mut server_read, &mut client_write);
    let to_server = async {
        let mut buf = vec![0u8; 64 * 1024];
        // Set once the upload request line has been seen: body bytes still to forward.
        let mut budget: Option<usize> = None;
        loop {
            let n = client_read.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(());
            }
            let mut chunk = &buf[..n];
            if budget.is_none() && armed.load(Ordering::SeqCst) && is_blob_upload(chunk) {
                armed.store(false, Ordering::SeqCst);
                budget = Some(BYTES_BEFORE_KILL);
            }
            if let Some(left) = budget {
                chunk = &chunk[..chunk.len().min(left)];
                server_write.write_all(chunk).await?;
                let left = left - chunk.len();
                if left == 0 {
                    registry.lock().unwrap().stop();
                    killed.notify_one();
                    return Err(std::io::ErrorKind::ConnectionAborted.into());
                }
                budget = Some(left);
            } else {
                server_write.write_all(chunk).await?;
            }
        }
    };
    // Whichever side ends first ends the connection (dropping both halves).
    tokio::select! {
        _ = to_client => {}
        _ = to_server => {}
    }
}

/// A blob upload whose body is large enough to be cut in the middle.
fn is_blob_upload(chunk: &[u8]) -> bool {
    let head = String::from_utf8_lossy(&chunk[..chunk.len().min(2048)]).to_ascii_lowercase();
    let upload = (head.starts_with("put ") || head.starts_with("patch "))
        && head
            .lines()
            .next()
            .is_some_and(|l| l.contains("/blobs/uploads/"));
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    upload && length.is_none_or(|n| n > 2 * BYTES_BEFORE_KILL)
}

#[tokio::test]
async fn registry_killed_during_a_blob_upload_fails_clearly_leaves_no_tag_and_a_retry_succeeds() {
    let Some(shared) = env_or_skip("KAITO_TEST_REGISTRY") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let src = adapter(tmp.path(), 7);
    let mut own = OwnRegistry::new();
    own.start();
    let registry = Arc::new(Mutex::new(own));
    let proxy = KillingProxy::start(registry.clone()).await;
    let reference = format!("127.0.0.1:{}/kaito/interrupted:v1", proxy.port);
    let anonymous = RegistryCredentials::Anonymous;
    wait_until_serving(&reference, &tmp.path().join("probe")).await;

    // 1. Killed mid-upload, and still down for every retry: a clear, retryable error that names
    //    the registry and the reference.
    proxy.arm();
    let err = store(quick_retry(2))
        .push_dir(&src, &reference, &anonymous, &phi3())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Retryable, "{err}");
    let message = err.to_string();
    assert!(message.contains(&reference), "{message}");
    assert!(
        message.contains(&format!("cannot reach registry 127.0.0.1:{}", proxy.port)),
        "{message}"
    );

    // 2. Back up: the interrupted push left no tag (the manifest goes last).
    registry.lock().unwrap().start();
    wait_until_serving(&reference, &tmp.path().join("probe")).await;
    let err = store(quick_retry(1))
        .pull_data(&reference, &anonymous, &tmp.path().join("nothing"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(!tmp.path().join("nothing").exists());

    // 3. Killed mid-upload again, restarted while the push backs off: the same call succeeds.
    proxy.arm();
    let push = tokio::spawn({
        let (src, reference) = (src.clone(), reference.clone());
        async move {
            store(patient_retry())
                .push_dir(&src, &reference, &RegistryCredentials::Anonymous, &phi3())
                .await
        }
    });
    tokio::time::timeout(Duration::from_secs(30), proxy.killed.notified())
        .await
        .expect("the proxy saw no blob upload");
    tokio::time::sleep(Duration::from_millis(500)).await;
    registry.lock().unwrap().start();
    let pushed = push.await.unwrap().unwrap();

    // The image is whole: same digest as the same content pushed uninterrupted elsewhere, and
    // a pull gives back the adapter byte for byte.
    let clean = store(quick_retry(3))
        .push_dir(
            &src,
            &format!("{shared}/kaito/interrupted:v1"),
            &anonymous,
            &phi3(),
        )
        .await
        .unwrap();
    assert_eq!(pushed.digest, clean.digest);
    let dest = tmp.path().join("pulled");
    let pulled = store(quick_retry(3))
        .pull_data(&reference, &anonymous, &dest)
        .await
        .unwrap();
    assert_eq!(pulled.digest, pushed.digest);
    assert_eq!(files(&dest), files(&src));
}

/// Waits until the registry behind `reference` answers (a not-found image counts as serving).
async fn wait_until_serving(reference: &str, scratch: &std::path::Path) {
    for _ in 0..100 {
        let probe = store(quick_retry(1))
            .pull_data(reference, &RegistryCredentials::Anonymous, scratch)
            .await;
        match probe {
            Err(e) if e.kind() == ErrorKind::Retryable => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            _ => return,
        }
    }
    panic!("registry behind {reference} never came up");
}

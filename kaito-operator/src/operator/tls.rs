//! HTTPS for the operator's endpoints: the apiserver only calls admission webhooks over TLS.
//!
//! The certificate (`tls.crt`, `tls.key` in PEM, as a `kubernetes.io/tls` Secret mounts them)
//! is re-read for every connection, so a rotated certificate (cert-manager) is picked up
//! without a restart; webhook calls are rare enough for that to cost nothing.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::aws_lc_rs;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::error::{Error, Result};

/// Loads `dir/tls.crt` and `dir/tls.key` into a server config (HTTP/2 and HTTP/1.1).
pub fn load(dir: &Path) -> Result<Arc<ServerConfig>> {
    let (crt, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    let bad = |path: &PathBuf, e: &dyn std::fmt::Display| {
        Error::Config(format!("{}: {e}", path.display()))
    };
    let certs = CertificateDer::pem_file_iter(&crt)
        .map_err(|e| bad(&crt, &e))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| bad(&crt, &e))?;
    let key = PrivateKeyDer::from_pem_file(&key).map_err(|e| bad(&key, &e))?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| bad(&crt, &e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `router` over TLS on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    cert_dir: PathBuf,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    load(&cert_dir)?; // fail at start-up, not on the first request
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("accepting a connection: {e}");
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        let (router, cert_dir) = (router.clone(), cert_dir.clone());
        tokio::spawn(async move {
            let config = match load(&cert_dir) {
                Ok(c) => c,
                Err(e) => return tracing::error!("TLS certificate: {e}"),
            };
            let stream = match TlsAcceptor::from(config).accept(tcp).await {
                Ok(s) => s,
                Err(e) => return tracing::debug!(%peer, "TLS handshake failed: {e}"),
            };
            let service = TowerToHyperService::new(router);
            if let Err(e) = Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, "connection ended: {e}");
            }
        });
    }
}

//! The operator's HTTP endpoints: `/healthz`, `/readyz`, Prometheus `/metrics` and the
//! admission webhook at [`super::webhook::PATH`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};

use super::error::{Error, Result};
use super::metrics::Metrics;
use super::webhook::{self, WebhookState};

/// What the probes report.
#[derive(Clone, Default)]
pub struct Health {
    /// Set once the process has started serving (the webhook works without leading).
    pub ready: Arc<AtomicBool>,
}

#[derive(Clone)]
struct AppState {
    health: Health,
    metrics: Arc<Metrics>,
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if state.health.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

/// The router of every endpoint.
pub fn router(health: Health, metrics_: Arc<Metrics>, webhook_state: WebhookState) -> Router {
    let webhook_routes = Router::new()
        .route(webhook::PATH, post(webhook::handle))
        .with_state(webhook_state);
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(AppState {
            health,
            metrics: metrics_,
        })
        .merge(webhook_routes)
}

/// Serves `router` on `addr` until `shutdown` resolves: over TLS with the certificate in
/// `cert_dir` when given (what the apiserver requires of webhooks), else plain HTTP.
pub async fn serve(
    addr: SocketAddr,
    router: Router,
    cert_dir: Option<PathBuf>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Io {
            what: format!("binding {addr}"),
            source,
        })?;
    if let Some(dir) = cert_dir {
        return super::tls::serve(listener, router, dir, shutdown).await;
    }
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| Error::Io {
            what: format!("serving {addr}"),
            source,
        })
}

//! `kaito operator`: the reference Workspace operator (controller, admission webhook, health
//! and metrics endpoints, leader election), configured by flags or environment.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context as _;
use kaito_core::catalog::CloudProvider;
use kaito_operator::operator::http::{self, Health};
use kaito_operator::operator::leader::{LeaderElector, LeaseConfig};
use kaito_operator::operator::webhook::WebhookState;
use kaito_operator::operator::{Context, OperatorConfig, ProvisionerKind, controller};
use tokio::sync::watch;

/// Arguments of `kaito operator`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// How workspaces get GPU nodes.
    #[arg(
        long,
        env = "NODE_PROVISIONER",
        value_enum,
        default_value = "karpenter"
    )]
    node_provisioner: ProvisionerKind,
    /// The cloud: SKU table, NodeClaim node class, spot toleration.
    #[arg(long, env = "CLOUD_PROVIDER", default_value = "azure")]
    cloud_provider: CloudProvider,
    /// The kaito-rs image run by tuning Jobs and inference pods.
    #[arg(
        long,
        env = "KAITO_IMAGE",
        default_value = "ghcr.io/kaito-rs/kaito:latest"
    )]
    image: String,
    /// Namespace of this release: default tuning ConfigMaps and the leader Lease live there.
    #[arg(long, env = "RELEASE_NAMESPACE", default_value = "kaito-system")]
    release_namespace: String,
    /// `nodeClassRef.name` of created NodeClaims.
    #[arg(long, env = "NODE_CLASS_NAME", default_value = "default")]
    node_class_name: String,
    /// Node OS image family when a workspace sets none (`ubuntu` or `azurelinux`).
    #[arg(long, env = "NODE_IMAGE_FAMILY", default_value = "ubuntu")]
    node_image_family: String,
    /// `backoffLimit` of tuning Jobs.
    #[arg(long, env = "TUNING_BACKOFF_LIMIT", default_value_t = 6)]
    tuning_backoff_limit: i32,
    /// Directory on GPU nodes (a hostPath) where tuning and inference pods keep compiled GPU
    /// kernels and autotune results, so only a node's first job compiles them; an empty value
    /// turns the cache off (for namespaces whose Pod Security forbids hostPath volumes).
    #[arg(
        long,
        env = "GPU_KERNEL_CACHE_HOST_PATH",
        default_value = kaito_core::workload::DEFAULT_KERNEL_CACHE_HOST_PATH
    )]
    gpu_kernel_cache_host_path: String,
    /// Address of /healthz, /readyz, /metrics and the admission webhook.
    #[arg(long, env = "HTTP_ADDR", default_value = "0.0.0.0:9443")]
    http_addr: SocketAddr,
    /// Directory with `tls.crt` and `tls.key`: serve HTTPS (required for the admission webhook).
    #[arg(long, env = "TLS_CERT_DIR")]
    tls_cert_dir: Option<std::path::PathBuf>,
    /// Elect a leader through a Lease before reconciling (turn off for a single replica).
    #[arg(long, env = "LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// This process's identity for the Lease and events.
    #[arg(long, env = "POD_NAME", default_value = "kaito-operator")]
    pod_name: String,
}

/// Runs the operator until SIGTERM/SIGINT.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let config = OperatorConfig {
        provisioner: args.node_provisioner,
        cloud: args.cloud_provider,
        image: args.image.clone(),
        release_namespace: args.release_namespace.clone(),
        node_class_name: args.node_class_name.clone(),
        node_image_family: args.node_image_family.clone(),
        backoff_limit: args.tuning_backoff_limit,
        kernel_cache_host_path: Some(args.gpu_kernel_cache_host_path.clone())
            .filter(|p| !p.is_empty()),
        instance: args.pod_name.clone(),
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    runtime.block_on(serve(
        config,
        args.http_addr,
        args.tls_cert_dir.clone(),
        args.leader_elect,
    ))?;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// With `--node-provisioner aks`, deletes agent pools whose workspace is gone every two minutes
/// (gpu-provisioner's GC period); otherwise never returns.
async fn aks_garbage_collection(config: &OperatorConfig, client: kube::Client) {
    if !matches!(config.provisioner, ProvisionerKind::Aks) {
        return std::future::pending().await;
    }
    let aks = match kaito_backends::provision::aks::AksProvisioner::from_env(client.clone()) {
        Ok(aks) => aks,
        Err(e) => {
            tracing::error!(error = %e, "AKS garbage collection disabled");
            return std::future::pending().await;
        }
    };
    let workspaces = kube::Api::<kaito_core::api::WorkspaceV1Beta1>::all(client);
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(120));
    loop {
        tick.tick().await;
        let existing = match workspaces.list(&Default::default()).await {
            Ok(list) => list
                .items
                .iter()
                .map(kaito_core::planner::workspace_ref)
                .collect::<Vec<_>>(),
            Err(e) => {
                tracing::warn!(error = %e, "listing workspaces for AKS garbage collection");
                continue;
            }
        };
        match aks.gc(&existing).await {
            Ok(deleted) if !deleted.is_empty() => {
                tracing::info!(?deleted, "deleted orphaned agent pools")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "AKS garbage collection"),
        }
    }
}

async fn serve(
    config: OperatorConfig,
    http_addr: SocketAddr,
    tls_cert_dir: Option<std::path::PathBuf>,
    leader_elect: bool,
) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let client = kube::Client::try_default()
        .await
        .context("connecting to the Kubernetes API (in-cluster or KUBECONFIG)")?;
    let ctx = Arc::new(Context::new(client.clone(), config.clone())?);
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    let health = Health::default();
    let webhook = WebhookState::new(&config, Some(client.clone()), ctx.metrics.clone());
    let router = http::router(health.clone(), ctx.metrics.clone(), webhook);
    let server = tokio::spawn(http::serve(
        http_addr,
        router,
        tls_cert_dir,
        stopped(stop_rx.clone()),
    ));
    health.ready.store(true, Ordering::Relaxed);
    tracing::info!(%http_addr, provisioner = ?config.provisioner, cloud = %config.cloud, "kaito operator started");

    let elector = leader_elect.then(|| {
        LeaderElector::new(
            client,
            LeaseConfig::new(&config.release_namespace, &config.instance),
        )
    });
    let leading = async {
        if let Some(elector) = &elector {
            elector.acquire().await;
            tracing::info!("became the leader");
        }
        ctx.metrics.set_leader(true);
        let lost = async {
            match &elector {
                Some(e) => e.keep_renewing().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = controller::run(ctx.clone(), stopped(stop_rx.clone())) => {}
            _ = aks_garbage_collection(&config, ctx.client.clone()) => {}
            _ = lost => tracing::error!("leadership lost: stopping"),
        }
    };
    tokio::pin!(leading);
    tokio::select! {
        _ = &mut leading => {}
        _ = shutdown_signal() => {
            tracing::info!("shutting down: finishing in-flight reconciles");
            let _ = stop_tx.send(true);
            let _ = tokio::time::timeout(std::time::Duration::from_secs(30), leading).await;
        }
    }
    ctx.metrics.set_leader(false);
    let _ = stop_tx.send(true);
    server.await.context("HTTP server task")??;
    Ok(())
}

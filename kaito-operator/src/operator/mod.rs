//! The reference KAITO operator: a kube-runtime Controller on `kaito.sh` Workspaces that runs
//! kaito-core's planner (observe -> plan -> execute -> status), plus the admission webhook,
//! health/metrics endpoints and leader election around it.
//!
//! Where to start: [`Operator::run`] (what `kaito operator` calls), [`controller::reconcile`],
//! [`observe::observe`], [`execute::execute`].

pub mod config;
pub mod controller;
pub mod error;
pub mod execute;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod observe;
pub mod surface;
pub mod tls;
pub mod webhook;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kaito_backends::provision::{ByoProvisioner, ClaimSettings, KarpenterProvisioner};
use kaito_core::traits::NodeProvisioner;
use kube::runtime::events::{Recorder, Reporter};

pub use config::{OperatorConfig, ProvisionerKind};
pub use error::{Error, Result};

/// Everything a reconcile needs, shared by all reconciles.
pub struct Context {
    /// The API client.
    pub client: kube::Client,
    /// The configured node provisioner.
    pub provisioner: Arc<dyn NodeProvisioner>,
    /// Operator settings.
    pub config: OperatorConfig,
    /// Publishes Kubernetes Events on workspaces.
    pub recorder: Recorder,
    /// Counters served at `/metrics`.
    pub metrics: Arc<metrics::Metrics>,
    /// Consecutive reconcile failures per `namespace/name`, for backoff.
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    /// A context with the provisioner `config` selects.
    pub fn new(client: kube::Client, config: OperatorConfig) -> Result<Self> {
        let provisioner = build_provisioner(&client, &config)?;
        Ok(Self::with_provisioner(client, config, provisioner))
    }

    /// A context with an explicit provisioner (tests, embedders).
    pub fn with_provisioner(
        client: kube::Client,
        config: OperatorConfig,
        provisioner: Arc<dyn NodeProvisioner>,
    ) -> Self {
        let reporter = Reporter {
            controller: "kaito-operator".into(),
            instance: Some(config.instance.clone()),
        };
        let recorder = Recorder::new(client.clone(), reporter);
        Self {
            client,
            provisioner,
            config,
            recorder,
            metrics: Arc::new(metrics::Metrics::default()),
            failures: Mutex::default(),
        }
    }
}

impl Context {
    /// Counts a failed reconcile of `key`; returns the consecutive failures so far.
    pub(crate) fn record_failure(&self, key: &str) -> u32 {
        let mut map = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = map.entry(key.to_owned()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    /// Forgets the failures of `key` after a successful reconcile.
    pub(crate) fn reset_failures(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }
}

/// The provisioner for `--node-provisioner`.
pub fn build_provisioner(
    client: &kube::Client,
    config: &OperatorConfig,
) -> Result<Arc<dyn NodeProvisioner>> {
    match config.provisioner {
        ProvisionerKind::Karpenter => Ok(Arc::new(KarpenterProvisioner::new(
            client.clone(),
            ClaimSettings {
                cloud: config.cloud,
                node_class_name: config.node_class_name.clone(),
                default_image_family: config.node_image_family.clone(),
            },
        ))),
        ProvisionerKind::Byo => Ok(Arc::new(ByoProvisioner::new(client.clone()))),
        // AKS agent pools through ARM; settings and credentials from the environment as
        // gpu-provisioner reads them (ARM_SUBSCRIPTION_ID, ARM_RESOURCE_GROUP, AZURE_CLUSTER_NAME,
        // AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_FEDERATED_TOKEN_FILE).
        ProvisionerKind::Aks => Ok(Arc::new(
            kaito_backends::provision::aks::AksProvisioner::from_env(client.clone())
                .map_err(|e| Error::Config(e.to_string()))?,
        )),
    }
}

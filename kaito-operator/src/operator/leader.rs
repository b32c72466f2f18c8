//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go's leaderelection does:
//! take the Lease when it is free or expired, renew it well inside its duration, and stop
//! leading as soon as a renewal fails (another process may take over after the duration).
//!
//! Writes use `replace` with the read resourceVersion, so two candidates can never both win.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};

use super::error::{Error, Result, not_found_ok};

/// Leader election settings.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// The Lease's namespace (the release namespace).
    pub namespace: String,
    /// The Lease's name.
    pub name: String,
    /// This candidate's identity (pod name).
    pub identity: String,
    /// How long a Lease is valid without renewal.
    pub lease_duration: Duration,
    /// How often the leader renews (and candidates retry).
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// KAITO-like defaults: 15 s lease, 2 s retry.
    pub fn new(namespace: &str, identity: &str) -> Self {
        Self {
            namespace: namespace.into(),
            name: "kaito-operator-leader".into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// Holds (or tries to hold) the Lease.
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaseConfig,
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

impl LeaderElector {
    /// An elector using `client`.
    pub fn new(client: kube::Client, config: LeaseConfig) -> Self {
        Self {
            api: Api::namespaced(client, &config.namespace),
            config,
        }
    }

    /// One attempt to acquire or renew; returns whether this candidate leads now.
    pub async fn try_acquire_or_renew(&self) -> Result<bool> {
        let name = &self.config.name;
        let what = || format!("lease {}/{name}", self.config.namespace);
        let duration_secs = i32::try_from(self.config.lease_duration.as_secs()).unwrap_or(i32::MAX);
        let existing =
            not_found_ok(self.api.get(name).await).map_err(|e| Error::kube(what(), e))?;
        let Some(mut lease) = existing else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.config.identity.clone()),
                    lease_duration_seconds: Some(duration_secs),
                    acquire_time: Some(now()),
                    renew_time: Some(now()),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(Error::kube(what(), e)),
            };
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let mine = spec.holder_identity.as_deref() == Some(self.config.identity.as_str());
        let held_for = SignedDuration::from_secs(i64::from(
            spec.lease_duration_seconds.unwrap_or(duration_secs),
        ));
        let expired = spec.renew_time.as_ref().is_none_or(|t| {
            t.0.checked_add(held_for)
                .is_ok_and(|end| end < Timestamp::now())
        });
        if !mine && !expired {
            return Ok(false);
        }
        if !mine {
            spec.holder_identity = Some(self.config.identity.clone());
            spec.acquire_time = Some(now());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.renew_time = Some(now());
        spec.lease_duration_seconds = Some(duration_secs);
        match self.api.replace(name, &PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            // Someone else wrote first: they lead (or renewed), we retry later.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(Error::kube(what(), e)),
        }
    }

    /// Waits until this candidate leads.
    pub async fn acquire(&self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => tracing::warn!("leader election: {e}"),
            }
            tokio::time::sleep(self.config.retry_period).await;
        }
    }

    /// Renews until a renewal fails or the Lease is lost; returns then (the caller must stop
    /// reconciling).
    pub async fn keep_renewing(&self) {
        let deadline = self
            .config
            .lease_duration
            .saturating_sub(self.config.retry_period);
        let mut last_ok = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.config.retry_period).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => last_ok = tokio::time::Instant::now(),
                Ok(false) => return,
                Err(e) if last_ok.elapsed() < deadline => {
                    tracing::warn!("renewing the leader lease: {e}")
                }
                Err(e) => {
                    tracing::error!("lost the leader lease: {e}");
                    return;
                }
            }
        }
    }
}

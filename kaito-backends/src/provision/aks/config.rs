//! Configuration of the AKS provisioner, read from the environment as gpu-provisioner reads it,
//! and the Azure credential (azure_identity 1.x).

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use azure_core::credentials::{AccessToken, Secret, TokenCredential, TokenRequestOptions};
use azure_core::time::OffsetDateTime;
use azure_identity::{
    ClientSecretCredential, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};
use url::Url;

use crate::Error;

/// A stable api-version with everything kaito sends (gpu-provisioner uses 2024-01-01).
pub const DEFAULT_API_VERSION: &str = "2024-09-01";
/// Public-cloud Resource Manager.
pub const DEFAULT_ENDPOINT: &str = "https://management.azure.com";
/// Token scope for Resource Manager (also for endpoint overrides: the fake ARM ignores it).
pub const DEFAULT_SCOPE: &str = "https://management.azure.com/.default";

/// Where the cluster is and how to talk to ARM.
#[derive(Clone, Debug, PartialEq)]
pub struct AksConfig {
    /// `ARM_SUBSCRIPTION_ID`.
    pub subscription_id: String,
    /// `ARM_RESOURCE_GROUP`: the cluster's resource group (not the `MC_` node group).
    pub resource_group: String,
    /// `AZURE_CLUSTER_NAME`.
    pub cluster_name: String,
    /// `LOCATION`: informational; agent pools take the cluster's region.
    pub location: Option<String>,
    /// `AKS_API_VERSION`, default [`DEFAULT_API_VERSION`].
    pub api_version: String,
    /// `ARM_ENDPOINT`, default [`DEFAULT_ENDPOINT`]; tests point it at a fake ARM.
    pub endpoint: Url,
    /// `ARM_SCOPE`, default [`DEFAULT_SCOPE`] (sovereign clouds differ).
    pub scope: String,
    /// Wait between polls of a long-running operation when ARM sends no `Retry-After`.
    pub poll_interval: Duration,
    /// Upper bound on any `Retry-After` honoured, so a bogus header cannot stall a reconcile.
    pub max_retry_after: Duration,
    /// How often one request is retried after `429 Too Many Requests`.
    pub max_throttle_retries: u32,
    /// Timeout of one HTTP request.
    pub request_timeout: Duration,
    /// Pools younger than this are never garbage-collected (their workspace may be brand new).
    pub gc_grace: Duration,
}

impl AksConfig {
    /// Defaults for everything but the cluster's coordinates.
    pub fn new(
        subscription_id: impl Into<String>,
        resource_group: impl Into<String>,
        cluster_name: impl Into<String>,
    ) -> Self {
        Self {
            subscription_id: subscription_id.into(),
            resource_group: resource_group.into(),
            cluster_name: cluster_name.into(),
            location: None,
            api_version: DEFAULT_API_VERSION.into(),
            endpoint: Url::parse(DEFAULT_ENDPOINT).expect("DEFAULT_ENDPOINT is a valid URL"),
            scope: DEFAULT_SCOPE.into(),
            poll_interval: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
            max_throttle_retries: 5,
            request_timeout: Duration::from_secs(60),
            gc_grace: Duration::from_secs(120),
        }
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads settings through `var` (the environment, or a map in tests).
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let get = |k: &str| {
            var(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let required = |k: &str| {
            get(k).ok_or_else(|| Error::invalid(k, "is not set; the aks node provisioner needs it"))
        };
        let mut config = Self::new(
            required("ARM_SUBSCRIPTION_ID")?,
            required("ARM_RESOURCE_GROUP")?,
            required("AZURE_CLUSTER_NAME")?,
        );
        config.location = get("LOCATION");
        if let Some(v) = get("AKS_API_VERSION") {
            config.api_version = v;
        }
        if let Some(v) = get("ARM_ENDPOINT") {
            config.endpoint = Url::parse(&v)
                .map_err(|e| Error::invalid("ARM_ENDPOINT", format!("{v:?} is not a URL: {e}")))?;
        }
        if let Some(v) = get("ARM_SCOPE") {
            config.scope = v;
        }
        for (name, value) in [
            ("ARM_SUBSCRIPTION_ID", &config.subscription_id),
            ("ARM_RESOURCE_GROUP", &config.resource_group),
            ("AZURE_CLUSTER_NAME", &config.cluster_name),
        ] {
            // These become URL path segments; a `/` or `?` would address another resource.
            if value.contains(['/', '?', '#']) {
                return Err(Error::invalid(
                    name,
                    format!("{value:?} must not contain '/', '?' or '#'"),
                ));
            }
        }
        Ok(config)
    }
}

/// Picks the credential the way gpu-provisioner's deployments provide one:
/// `AZURE_FEDERATED_TOKEN_FILE` set: workload identity (`AZURE_CLIENT_ID`, `AZURE_TENANT_ID`);
/// else `AZURE_CLIENT_SECRET` set: a service principal secret; else managed identity
/// (user-assigned when `AZURE_CLIENT_ID` is set).
pub fn credential_from_env() -> Result<Arc<dyn TokenCredential>, Error> {
    credential_from_lookup(|k| std::env::var(k).ok())
}

/// [`credential_from_env`] reading settings through `var`.
pub fn credential_from_lookup(
    var: impl Fn(&str) -> Option<String>,
) -> Result<Arc<dyn TokenCredential>, Error> {
    let get = |k: &str| {
        var(k)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let failed = |what: &str, e: azure_core::Error| Error::Arm {
        kind: kaito_core::ErrorKind::InvalidInput,
        what: format!("building the Azure {what} credential"),
        code: None,
        message: e.to_string(),
        source: Some(Box::new(e)),
    };
    if let Some(token_file) = get("AZURE_FEDERATED_TOKEN_FILE") {
        // Checked here, not left to azure_identity, which would fall back to this process's
        // real environment instead of `var`.
        let needed = |k: &str| {
            get(k).ok_or_else(|| Error::invalid(k, "is not set but AZURE_FEDERATED_TOKEN_FILE is"))
        };
        let options = WorkloadIdentityCredentialOptions {
            client_id: Some(needed("AZURE_CLIENT_ID")?),
            tenant_id: Some(needed("AZURE_TENANT_ID")?),
            token_file_path: Some(token_file.into()),
            ..Default::default()
        };
        return Ok(WorkloadIdentityCredential::new(Some(options))
            .map_err(|e| failed("workload identity", e))?);
    }
    if let Some(secret) = get("AZURE_CLIENT_SECRET") {
        let tenant = get("AZURE_TENANT_ID").ok_or_else(|| {
            Error::invalid("AZURE_TENANT_ID", "is not set but AZURE_CLIENT_SECRET is")
        })?;
        let client = get("AZURE_CLIENT_ID").ok_or_else(|| {
            Error::invalid("AZURE_CLIENT_ID", "is not set but AZURE_CLIENT_SECRET is")
        })?;
        return Ok(
            ClientSecretCredential::new(&tenant, client, Secret::new(secret), None)
                .map_err(|e| failed("client secret", e))?,
        );
    }
    let options = ManagedIdentityCredentialOptions {
        user_assigned_id: get("AZURE_CLIENT_ID").map(UserAssignedId::ClientId),
        ..Default::default()
    };
    Ok(ManagedIdentityCredential::new(Some(options)).map_err(|e| failed("managed identity", e))?)
}

/// A credential that always returns the same token, and remembers the scopes asked for (tests).
pub struct StaticTokenCredential {
    token: Secret,
    scopes: Mutex<Vec<String>>,
}

impl StaticTokenCredential {
    /// A credential handing out `token`.
    pub fn new(token: impl Into<String>) -> Arc<Self> {
        Arc::new(Self {
            token: Secret::new(token.into()),
            scopes: Mutex::new(Vec::new()),
        })
    }

    /// Every scope requested so far, in order.
    pub fn requested_scopes(&self) -> Vec<String> {
        self.scopes.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl fmt::Debug for StaticTokenCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticTokenCredential")
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl TokenCredential for StaticTokenCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        if let Ok(mut seen) = self.scopes.lock() {
            seen.extend(scopes.iter().map(|s| (*s).to_owned()));
        }
        let expires = OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1);
        Ok(AccessToken::new(self.token.clone(), expires))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn reads_gpu_provisioner_variables() {
        let config = AksConfig::from_lookup(lookup(&[
            ("ARM_SUBSCRIPTION_ID", "sub"),
            ("ARM_RESOURCE_GROUP", "rg"),
            ("AZURE_CLUSTER_NAME", "aks1"),
            ("LOCATION", "westus3"),
            ("AKS_API_VERSION", "2025-10-01"),
            ("ARM_ENDPOINT", "http://127.0.0.1:9"),
        ]));
        let config = config.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (
                config.subscription_id.as_str(),
                config.resource_group.as_str(),
                config.cluster_name.as_str()
            ),
            ("sub", "rg", "aks1")
        );
        assert_eq!(config.location.as_deref(), Some("westus3"));
        assert_eq!(config.api_version, "2025-10-01");
        assert_eq!(config.endpoint.as_str(), "http://127.0.0.1:9/");
        assert_eq!(config.scope, DEFAULT_SCOPE);
    }

    #[test]
    fn missing_or_unsafe_values_name_the_variable() {
        let err = AksConfig::from_lookup(lookup(&[
            ("ARM_SUBSCRIPTION_ID", "sub"),
            ("AZURE_CLUSTER_NAME", "c"),
        ]));
        assert!(err.is_err_and(|e| e.to_string().contains("ARM_RESOURCE_GROUP")));
        let err = AksConfig::from_lookup(lookup(&[
            ("ARM_SUBSCRIPTION_ID", "s"),
            ("ARM_RESOURCE_GROUP", "rg/../x"),
            ("AZURE_CLUSTER_NAME", "c"),
        ]));
        assert!(err.is_err_and(|e| e.to_string().contains("ARM_RESOURCE_GROUP")));
    }

    #[test]
    fn credentials_are_chosen_from_the_environment() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let token = dir.path().join("token");
        std::fs::write(&token, "service-account-jwt").unwrap_or_else(|e| panic!("{e}"));
        let token = token.to_string_lossy().into_owned();
        let tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47";
        let wi = credential_from_lookup(lookup(&[
            ("AZURE_FEDERATED_TOKEN_FILE", &token),
            ("AZURE_CLIENT_ID", "c"),
            ("AZURE_TENANT_ID", tenant),
        ]));
        assert!(wi.is_ok_and(|c| format!("{c:?}").contains("WorkloadIdentityCredential")));
        let wi_no_client = credential_from_lookup(lookup(&[
            ("AZURE_FEDERATED_TOKEN_FILE", &token),
            ("AZURE_TENANT_ID", tenant),
        ]));
        assert!(wi_no_client.is_err_and(|e| e.to_string().contains("AZURE_CLIENT_ID")));
        let secret = credential_from_lookup(lookup(&[
            ("AZURE_CLIENT_SECRET", "s3cr3t"),
            ("AZURE_CLIENT_ID", "c"),
            ("AZURE_TENANT_ID", tenant),
        ]));
        assert!(secret.is_ok_and(|c| !format!("{c:?}").contains("s3cr3t")));
        let secret_no_tenant = credential_from_lookup(lookup(&[
            ("AZURE_CLIENT_SECRET", "s3cr3t"),
            ("AZURE_CLIENT_ID", "c"),
        ]));
        assert!(secret_no_tenant.is_err_and(
            |e| e.to_string().contains("AZURE_TENANT_ID") && !e.to_string().contains("s3cr3t")
        ));
        assert!(
            credential_from_lookup(lookup(&[]))
                .is_ok_and(|c| format!("{c:?}").contains("ManagedIdentityCredential"))
        );
    }
}

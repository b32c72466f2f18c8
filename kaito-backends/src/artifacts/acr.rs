//! ACR with Microsoft Entra ID: an AAD access token exchanged for an ACR refresh token.
//!
//! `POST https://<registry>/oauth2/exchange` with form `grant_type=access_token`,
//! `service=<registry>`, `access_token=<AAD token>` (and `tenant` when known) answers
//! `{"refresh_token": …}`; that token is then the password of the all-zeros user, which the
//! registry's Docker token flow accepts as Basic credentials (backends.md §4.3).

use std::sync::Arc;

use azure_core::credentials::TokenCredential;
use kaito_core::ErrorKind;
use kaito_core::traits::{RegistryCredentials, SecretString};

use super::credentials::ACR_TOKEN_USER;
use crate::error::{Error, Result};

/// The Entra ID scope of Azure Container Registry.
pub const ACR_SCOPE: &str = "https://containerregistry.azure.net/.default";

/// Which Entra identity to use.
#[derive(Clone, Debug)]
pub enum EntraIdentity {
    /// AKS workload identity (`AZURE_CLIENT_ID`, `AZURE_TENANT_ID`, `AZURE_FEDERATED_TOKEN_FILE`).
    Workload,
    /// The node's or pod's managed identity (IMDS / App Service).
    Managed,
    /// A service principal with a client secret.
    ClientSecret {
        /// Tenant ID.
        tenant_id: String,
        /// Application (client) ID.
        client_id: String,
        /// The client secret; never printed.
        secret: SecretString,
    },
}

/// Builds the azure_identity credential for `identity`.
pub fn credential(identity: &EntraIdentity) -> Result<Arc<dyn TokenCredential>> {
    let fail = |e: azure_core::Error| {
        Error::artifact(
            ErrorKind::Unauthorized,
            "Microsoft Entra ID",
            format!("cannot build the credential: {e}"),
        )
    };
    Ok(match identity {
        EntraIdentity::Workload => {
            azure_identity::WorkloadIdentityCredential::new(None).map_err(fail)?
        }
        EntraIdentity::Managed => {
            azure_identity::ManagedIdentityCredential::new(None).map_err(fail)?
        }
        EntraIdentity::ClientSecret {
            tenant_id,
            client_id,
            secret,
        } => azure_identity::ClientSecretCredential::new(
            tenant_id,
            client_id.clone(),
            secret.expose().to_string().into(),
            None,
        )
        .map_err(fail)?,
    })
}

/// Exchanges AAD tokens for ACR refresh tokens.
#[derive(Clone, Debug)]
pub struct AcrTokenExchange {
    http: reqwest::Client,
    /// `scheme://host[:port]` to send the exchange to instead of `https://<registry>` (tests).
    endpoint_override: Option<String>,
}

impl Default for AcrTokenExchange {
    fn default() -> Self {
        Self::new(None)
    }
}

impl AcrTokenExchange {
    /// An exchanger; `endpoint_override` replaces `https://<registry>` (a local fake in tests).
    pub fn new(endpoint_override: Option<String>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        Self {
            http,
            endpoint_override,
        }
    }

    /// Gets an AAD token from `credential` and exchanges it for `registry` (`myacr.azurecr.io`).
    pub async fn credentials(
        &self,
        registry: &str,
        credential: &dyn TokenCredential,
        tenant: Option<&str>,
    ) -> Result<RegistryCredentials> {
        let token = credential
            .get_token(&[ACR_SCOPE], None)
            .await
            .map_err(|e| {
                Error::artifact(
                    ErrorKind::Unauthorized,
                    registry,
                    format!("Microsoft Entra ID gave no token for ACR: {e}"),
                )
            })?;
        self.exchange(
            registry,
            &SecretString::new(token.token.secret().to_string()),
            tenant,
        )
        .await
    }

    /// Exchanges `aad_token` at the registry's `/oauth2/exchange` for Basic credentials.
    pub async fn exchange(
        &self,
        registry: &str,
        aad_token: &SecretString,
        tenant: Option<&str>,
    ) -> Result<RegistryCredentials> {
        let base = self
            .endpoint_override
            .clone()
            .unwrap_or_else(|| format!("https://{registry}"));
        let url = format!("{}/oauth2/exchange", base.trim_end_matches('/'));
        let mut form = vec![
            ("grant_type", "access_token"),
            ("service", registry),
            ("access_token", aad_token.expose()),
        ];
        if let Some(tenant) = tenant {
            form.push(("tenant", tenant));
        }
        let body = serde_urlencoded(&form);
        let response = self
            .http
            .post(&url)
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
            .send()
            .await
            .map_err(|e| {
                let kind = if e.is_connect() || e.is_timeout() {
                    ErrorKind::Retryable
                } else {
                    ErrorKind::Terminal
                };
                Error::artifact(
                    kind,
                    registry,
                    format!("ACR token exchange at {url} failed: {}", e.without_url()),
                )
            })?;
        let status = response.status();
        if !status.is_success() {
            let kind = match status.as_u16() {
                401 | 403 => ErrorKind::Unauthorized,
                429 | 500..=599 => ErrorKind::Retryable,
                _ => ErrorKind::Terminal,
            };
            return Err(Error::artifact(
                kind,
                registry,
                format!("ACR token exchange at {url} answered HTTP {status}"),
            ));
        }
        #[derive(serde::Deserialize)]
        struct Answer {
            refresh_token: String,
        }
        let answer: Answer = response.json().await.map_err(|_| {
            Error::artifact(
                ErrorKind::Terminal,
                registry,
                format!("ACR token exchange at {url} answered without a refresh_token"),
            )
        })?;
        Ok(RegistryCredentials::Basic {
            username: ACR_TOKEN_USER.to_string(),
            password: SecretString::new(answer.refresh_token),
        })
    }
}

/// `application/x-www-form-urlencoded` encoding of `pairs`.
fn serde_urlencoded(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

#[cfg(test)]
mod tests {
    use wiremock::matchers::{body_string_contains, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;

    #[derive(Debug)]
    struct FixedToken;

    #[async_trait::async_trait]
    impl TokenCredential for FixedToken {
        async fn get_token(
            &self,
            scopes: &[&str],
            _: Option<azure_core::credentials::TokenRequestOptions<'_>>,
        ) -> azure_core::Result<azure_core::credentials::AccessToken> {
            assert_eq!(scopes, [ACR_SCOPE]);
            Ok(azure_core::credentials::AccessToken::new(
                "aad-token-123",
                azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
            ))
        }
    }

    #[tokio::test]
    async fn exchanges_the_aad_token_for_a_refresh_token() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/oauth2/exchange"))
            .and(body_string_contains("grant_type=access_token"))
            .and(body_string_contains("service=myacr.azurecr.io"))
            .and(body_string_contains("access_token=aad-token-123"))
            .and(body_string_contains("tenant=t1"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(serde_json::json!({"refresh_token": "acr-refresh"})),
            )
            .expect(1)
            .mount(&server)
            .await;
        let creds = AcrTokenExchange::new(Some(server.uri()))
            .credentials("myacr.azurecr.io", &FixedToken, Some("t1"))
            .await
            .unwrap();
        assert_eq!(
            creds,
            RegistryCredentials::Basic {
                username: ACR_TOKEN_USER.into(),
                password: SecretString::new("acr-refresh")
            }
        );
        assert!(!format!("{creds:?}").contains("acr-refresh"));
    }

    #[tokio::test]
    async fn refused_exchange_is_unauthorized_and_names_the_registry_not_the_token() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/oauth2/exchange"))
            .respond_with(ResponseTemplate::new(401).set_body_string("bad token aad-token-123"))
            .mount(&server)
            .await;
        let err = AcrTokenExchange::new(Some(server.uri()))
            .exchange(
                "myacr.azurecr.io",
                &SecretString::new("aad-token-123"),
                None,
            )
            .await
            .unwrap_err();
        let text = err.to_string();
        assert_eq!(err.kind(), ErrorKind::Unauthorized);
        assert!(
            text.contains("myacr.azurecr.io") && !text.contains("aad-token-123"),
            "{text}"
        );
    }
}

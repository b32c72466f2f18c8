//! A thin ARM client for one cluster's agent pools: PUT, GET, DELETE, LIST, with bearer auth
//! and `429` + `Retry-After` handled here. Long-running operations are in [`super::operation`].

use std::sync::Arc;
use std::time::Duration;

use azure_core::credentials::TokenCredential;
use kaito_core::ErrorKind;
use reqwest::{Method, Response, StatusCode};
use url::Url;

use super::config::AksConfig;
use super::errors::arm_error;
use super::models::{AgentPool, AgentPoolList, ArmErrorBody, ArmErrorDetail};
use super::operation::{Operation, OperationKind};
use crate::Error;

/// The result of starting a create or delete.
#[derive(Debug)]
pub struct Started {
    /// The body ARM answered with (PUT only).
    pub pool: Option<AgentPool>,
    /// The operation to poll; `None` when ARM finished synchronously.
    pub operation: Option<Operation>,
}

/// Agent pools of one AKS cluster.
#[derive(Clone)]
pub struct AgentPoolsClient {
    http: reqwest::Client,
    credential: Arc<dyn TokenCredential>,
    pub(super) config: Arc<AksConfig>,
}

impl AgentPoolsClient {
    /// A client for the cluster `config` names, authenticating with `credential`.
    pub fn new(config: AksConfig, credential: Arc<dyn TokenCredential>) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .build()
            .map_err(|e| Error::Arm {
                kind: ErrorKind::InvalidInput,
                what: "building the ARM HTTP client".into(),
                code: None,
                message: e.to_string(),
                source: Some(Box::new(e)),
            })?;
        Ok(Self {
            http,
            credential,
            config: Arc::new(config),
        })
    }

    /// `.../managedClusters/{cluster}/agentPools[/{name}]?api-version=...`.
    pub fn url(&self, pool: Option<&str>) -> Url {
        let c = &self.config;
        let mut url = c.endpoint.clone();
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().extend([
                "subscriptions",
                c.subscription_id.as_str(),
                "resourceGroups",
                c.resource_group.as_str(),
                "providers",
                "Microsoft.ContainerService",
                "managedClusters",
                c.cluster_name.as_str(),
                "agentPools",
            ]);
            if let Some(pool) = pool {
                segments.push(pool);
            }
        }
        url.query_pairs_mut()
            .clear()
            .append_pair("api-version", &c.api_version);
        url
    }

    /// The pool, or `None` when it does not exist.
    pub async fn get(&self, name: &str) -> Result<Option<AgentPool>, Error> {
        let what = format!("reading agent pool {name}");
        let resp = self
            .send(Method::GET, self.url(Some(name)), None, &what)
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(Some(json(resp, &what).await?)),
            _ => Err(error_from(resp, &what).await),
        }
    }

    /// Every pool of the cluster, following `nextLink`.
    pub async fn list(&self) -> Result<Vec<AgentPool>, Error> {
        let what = "listing agent pools";
        let mut pools = Vec::new();
        let mut next = Some(self.url(None));
        while let Some(url) = next.take() {
            let resp = self.send(Method::GET, url, None, what).await?;
            if !resp.status().is_success() {
                return Err(error_from(resp, what).await);
            }
            let page: AgentPoolList = json(resp, what).await?;
            pools.extend(page.value);
            if let Some(link) = page.next_link.filter(|l| !l.is_empty()) {
                next = Some(self.same_origin(&link, what)?);
            }
        }
        Ok(pools)
    }

    /// Starts creating (or updating) a pool.
    pub async fn begin_create(&self, name: &str, body: &AgentPool) -> Result<Started, Error> {
        let what = format!("creating agent pool {name}");
        let resp = self
            .send(Method::PUT, self.url(Some(name)), Some(body), &what)
            .await?;
        if !resp.status().is_success() {
            return Err(error_from(resp, &what).await);
        }
        let operation = self.operation_from(&resp, name, &what)?;
        let pool = json::<AgentPool>(resp, &what).await.ok();
        Ok(Started { pool, operation })
    }

    /// Starts deleting a pool; `None` when it is already gone (404) or deleted synchronously.
    pub async fn begin_delete(&self, name: &str) -> Result<Option<Operation>, Error> {
        let what = format!("deleting agent pool {name}");
        let resp = self
            .send(Method::DELETE, self.url(Some(name)), None, &what)
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(None),
            StatusCode::ACCEPTED => Ok(Some(
                self.operation_from(&resp, name, &what)?
                    .unwrap_or_else(|| self.deletion_watch(name, &what)),
            )),
            s if s.is_success() => Ok(None),
            _ => Err(error_from(resp, &what).await),
        }
    }

    /// An operation that is done when the pool's GET returns 404 (a delete that ARM accepted
    /// without a status URL, or one found `Deleting` after a restart).
    pub fn deletion_watch(&self, name: &str, what: &str) -> Operation {
        Operation::new(OperationKind::UntilGone, self.url(Some(name)), what, None)
    }

    /// Sends one request with a fresh bearer token, retrying `429` after `Retry-After`.
    pub(super) async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&AgentPool>,
        what: &str,
    ) -> Result<Response, Error> {
        let mut attempt = 0;
        loop {
            let token = self
                .credential
                .get_token(&[self.config.scope.as_str()], None)
                .await
                .map_err(|e| Error::Arm {
                    kind: ErrorKind::Unauthorized,
                    what: format!("{what}: getting an ARM token"),
                    code: None,
                    message: e.to_string(),
                    source: Some(Box::new(e)),
                })?;
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(token.token.secret());
            if let Some(body) = body {
                request = request.json(body);
            }
            let resp = request.send().await.map_err(|e| Error::Arm {
                kind: ErrorKind::Retryable,
                what: what.to_owned(),
                code: None,
                message: format!("request to {} failed: {e}", url.path()),
                source: Some(Box::new(e)),
            })?;
            if resp.status() != StatusCode::TOO_MANY_REQUESTS
                || attempt >= self.config.max_throttle_retries
            {
                return Ok(resp);
            }
            attempt += 1;
            let wait = self.retry_after(&resp).unwrap_or(self.config.poll_interval);
            tracing::debug!(%what, attempt, wait_ms = wait.as_millis() as u64, "ARM throttled the request; waiting");
            tokio::time::sleep(wait).await;
        }
    }

    /// `Retry-After` (seconds or an HTTP date), capped at `max_retry_after`.
    pub(super) fn retry_after(&self, resp: &Response) -> Option<Duration> {
        let value = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)?
            .to_str()
            .ok()?
            .trim();
        let wait = match value.parse::<u64>() {
            Ok(secs) => Duration::from_secs(secs),
            Err(_) => {
                let at = azure_core::time::parse_rfc7231(value).ok()?;
                let secs = (at - azure_core::time::OffsetDateTime::now_utc())
                    .whole_seconds()
                    .max(0);
                Duration::from_secs(u64::try_from(secs).unwrap_or_default())
            }
        };
        Some(wait.min(self.config.max_retry_after))
    }

    /// The operation a 201/202 names: `Azure-AsyncOperation` first, else `Location`.
    fn operation_from(
        &self,
        resp: &Response,
        pool: &str,
        what: &str,
    ) -> Result<Option<Operation>, Error> {
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
        };
        let (kind, link) = match (header("azure-asyncoperation"), header("location")) {
            (Some(link), _) => (OperationKind::AsyncOperation, link),
            (None, Some(link)) => (OperationKind::Location, link),
            (None, None)
                if resp.status() == StatusCode::CREATED
                    || resp.status() == StatusCode::ACCEPTED =>
            {
                // No status URL: the pool's own provisioningState tells when it is done.
                return Ok(Some(Operation::new(
                    OperationKind::ProvisioningState,
                    self.url(Some(pool)),
                    what,
                    self.retry_after(resp),
                )));
            }
            (None, None) => return Ok(None),
        };
        Ok(Some(Operation::new(
            kind,
            self.same_origin(link, what)?,
            what,
            self.retry_after(resp),
        )))
    }

    /// Parses a URL ARM handed back and refuses to send our token anywhere but ARM.
    pub(super) fn same_origin(&self, link: &str, what: &str) -> Result<Url, Error> {
        let url = Url::parse(link).map_err(|e| Error::Arm {
            kind: ErrorKind::Retryable,
            what: what.to_owned(),
            code: None,
            message: format!("ARM returned an unusable URL {link:?}: {e}"),
            source: None,
        })?;
        if url.origin() != self.config.endpoint.origin() {
            return Err(Error::Arm {
                kind: ErrorKind::Terminal,
                what: what.to_owned(),
                code: None,
                message: format!(
                    "ARM returned a URL on another host ({}); not following it",
                    url.origin().ascii_serialization()
                ),
                source: None,
            });
        }
        Ok(url)
    }
}

/// Reads a JSON body.
pub(super) async fn json<T: serde::de::DeserializeOwned>(
    resp: Response,
    what: &str,
) -> Result<T, Error> {
    let bytes = resp.bytes().await.map_err(|e| Error::Arm {
        kind: ErrorKind::Retryable,
        what: what.to_owned(),
        code: None,
        message: format!("reading the response: {e}"),
        source: Some(Box::new(e)),
    })?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Arm {
        kind: ErrorKind::Retryable,
        what: what.to_owned(),
        code: None,
        message: format!("ARM sent an unreadable body: {e}"),
        source: Some(Box::new(e)),
    })
}

/// The error detail of a failed response (`x-ms-error-code` fills in a missing code).
pub(super) async fn error_detail(resp: Response) -> ArmErrorDetail {
    let header_code = resp
        .headers()
        .get("x-ms-error-code")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp.bytes().await.unwrap_or_default();
    let mut detail = serde_json::from_slice::<ArmErrorBody>(&body)
        .unwrap_or_default()
        .into_detail();
    if detail.code.is_none() {
        detail.code = header_code;
    }
    detail
}

/// The error for a failed response.
pub(super) async fn error_from(resp: Response, what: &str) -> Error {
    let status = resp.status().as_u16();
    arm_error(what, status, &error_detail(resp).await)
}

//! ARM long-running operations: polling an `Azure-AsyncOperation` status URL, a `Location`
//! URL, or (when ARM gave neither) the pool itself, honouring `Retry-After` between polls.

use std::time::{Duration, Instant};

use kaito_core::ErrorKind;
use reqwest::{Method, StatusCode};
use url::Url;

use super::client::{AgentPoolsClient, error_detail, error_from, json};
use super::errors::ArmFailure;
use super::models::{AgentPool, ArmErrorDetail, AsyncOperationStatus};
use crate::Error;

/// How an operation reports progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperationKind {
    /// `Azure-AsyncOperation`: a status body `{status, error}`.
    AsyncOperation,
    /// `Location`: 202 while running, 200/204 when done, an error status when it failed.
    Location,
    /// The pool's GET: done when `provisioningState` is terminal.
    ProvisioningState,
    /// The pool's GET: done when it returns 404.
    UntilGone,
}

/// Where an operation stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OperationStatus {
    /// Still running.
    InProgress,
    /// Finished successfully.
    Succeeded,
    /// Finished unsuccessfully (`Failed` or `Canceled`), with ARM's code and message.
    Failed(ArmFailure),
}

/// A running ARM operation.
#[derive(Clone, Debug)]
pub struct Operation {
    /// How to poll it.
    pub kind: OperationKind,
    /// The URL to poll.
    pub url: Url,
    /// What it does, for messages (`creating agent pool ws...`).
    pub what: String,
    /// The earliest time the next poll should go out (from `Retry-After`).
    pub not_before: Instant,
}

impl Operation {
    /// An operation polled at `url`, not before `retry_after` has passed.
    pub fn new(kind: OperationKind, url: Url, what: &str, retry_after: Option<Duration>) -> Self {
        Self {
            kind,
            url,
            what: what.to_owned(),
            not_before: Instant::now() + retry_after.unwrap_or_default(),
        }
    }

    /// Whether `Retry-After` has passed.
    pub fn due(&self) -> bool {
        Instant::now() >= self.not_before
    }
}

impl AgentPoolsClient {
    /// Polls once (ignoring `not_before`) and schedules the next poll from `Retry-After`.
    pub async fn poll(&self, op: &mut Operation) -> Result<OperationStatus, Error> {
        let resp = self
            .send(Method::GET, op.url.clone(), None, &op.what)
            .await?;
        let retry_after = self.retry_after(&resp).unwrap_or(self.config.poll_interval);
        op.not_before = Instant::now() + retry_after;
        let status = resp.status();
        let what = op.what.clone();
        let transient = |s: StatusCode| {
            s.is_server_error()
                || s == StatusCode::TOO_MANY_REQUESTS
                || s == StatusCode::REQUEST_TIMEOUT
        };
        match op.kind {
            OperationKind::AsyncOperation if status.is_success() => {
                let body: AsyncOperationStatus = json(resp, &what).await?;
                Ok(match body.status.as_str() {
                    "Succeeded" => OperationStatus::Succeeded,
                    "Failed" | "Canceled" => {
                        let detail = body.error.unwrap_or_default();
                        OperationStatus::Failed(failure(&detail, &body.status))
                    }
                    _ => OperationStatus::InProgress,
                })
            }
            OperationKind::Location if status == StatusCode::ACCEPTED => {
                Ok(OperationStatus::InProgress)
            }
            OperationKind::Location if status.is_success() => Ok(OperationStatus::Succeeded),
            OperationKind::Location if !transient(status) => Ok(OperationStatus::Failed(failure(
                &error_detail(resp).await,
                "Failed",
            ))),
            OperationKind::ProvisioningState if status.is_success() => {
                let pool: AgentPool = json(resp, &what).await?;
                Ok(match pool.provisioning_state() {
                    "Succeeded" | "" => OperationStatus::Succeeded,
                    state @ ("Failed" | "Canceled") => OperationStatus::Failed(ArmFailure {
                        code: state.to_owned(),
                        message: format!("{what}: the agent pool's provisioningState is {state}"),
                    }),
                    _ => OperationStatus::InProgress,
                })
            }
            OperationKind::ProvisioningState if status == StatusCode::NOT_FOUND => {
                Ok(OperationStatus::Failed(ArmFailure {
                    code: "NotFound".into(),
                    message: format!("{what}: the agent pool disappeared while being created"),
                }))
            }
            OperationKind::UntilGone if status == StatusCode::NOT_FOUND => {
                Ok(OperationStatus::Succeeded)
            }
            OperationKind::UntilGone if status.is_success() => {
                let pool: AgentPool = json(resp, &what).await?;
                Ok(match pool.provisioning_state() {
                    "Deleting" => OperationStatus::InProgress,
                    state => OperationStatus::Failed(ArmFailure {
                        code: if state.is_empty() {
                            "NotDeleted".into()
                        } else {
                            state.to_owned()
                        },
                        message: format!(
                            "{what}: the agent pool still exists and is not being deleted (provisioningState {state:?})"
                        ),
                    }),
                })
            }
            _ => Err(error_from(resp, &what).await),
        }
    }

    /// Polls until the operation finishes or `timeout` passes (a retryable error then).
    pub async fn wait(
        &self,
        op: &mut Operation,
        timeout: Duration,
    ) -> Result<OperationStatus, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            let now = Instant::now();
            if op.not_before > now {
                if op.not_before > deadline {
                    return Err(still_running(op, timeout));
                }
                tokio::time::sleep(op.not_before - now).await;
            }
            match self.poll(op).await? {
                OperationStatus::InProgress if Instant::now() >= deadline => {
                    return Err(still_running(op, timeout));
                }
                OperationStatus::InProgress => {}
                done => return Ok(done),
            }
        }
    }
}

fn failure(detail: &ArmErrorDetail, fallback_code: &str) -> ArmFailure {
    let mut failure = ArmFailure::from_detail(detail, fallback_code);
    if failure.message.is_empty() {
        failure.message = format!("the operation ended {fallback_code} without an error message");
    }
    failure
}

fn still_running(op: &Operation, timeout: Duration) -> Error {
    Error::Arm {
        kind: ErrorKind::Retryable,
        what: op.what.clone(),
        code: None,
        message: format!("still running after {}s", timeout.as_secs()),
        source: None,
    }
}

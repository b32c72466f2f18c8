//! Exponential backoff for registry and download calls.
//!
//! Only failures whose kind is [`ErrorKind::Retryable`] (5xx, 429, connection errors, timeouts)
//! are retried; a 401 or 404 is final on the first answer.

use std::future::Future;
use std::time::Duration;

use kaito_core::ErrorKind;

use crate::error::Result;

/// How often and how patiently a failed call is repeated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total tries, the first included (at least 1).
    pub attempts: u32,
    /// Delay before the second try; doubled after each further failure.
    pub initial_delay: Duration,
    /// Upper bound of one delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries (for tests and for callers that retry themselves).
    pub fn none() -> Self {
        Self {
            attempts: 1,
            initial_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
        }
    }

    /// The delay after failed try number `attempt` (0-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(16));
        self.initial_delay
            .saturating_mul(factor)
            .min(self.max_delay)
    }

    /// Runs `call` until it succeeds, fails with a non-retryable error, or the tries run out.
    pub async fn run<T, F, Fut>(&self, what: &str, mut call: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let attempts = self.attempts.max(1);
        let mut attempt = 0;
        loop {
            match call().await {
                Ok(value) => return Ok(value),
                Err(err) if err.kind() == ErrorKind::Retryable && attempt + 1 < attempts => {
                    let delay = self.delay(attempt);
                    tracing::warn!(%err, attempt = attempt + 1, ?delay, "{what} failed, retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(err) => return Err(err),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::Error;

    fn quick(attempts: u32) -> RetryPolicy {
        RetryPolicy {
            attempts,
            initial_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        }
    }

    #[test]
    fn delay_doubles_up_to_the_cap() {
        let p = RetryPolicy {
            attempts: 9,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        assert_eq!(p.delay(0), Duration::from_millis(100));
        assert_eq!(p.delay(2), Duration::from_millis(400));
        assert_eq!(p.delay(8), Duration::from_secs(1));
    }

    #[tokio::test]
    async fn retries_retryable_errors_until_success() {
        let calls = AtomicU32::new(0);
        let out = quick(3)
            .run("op", || async {
                if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                    Err(Error::artifact(ErrorKind::Retryable, "r", "503"))
                } else {
                    Ok(7)
                }
            })
            .await
            .unwrap();
        assert_eq!((out, calls.load(Ordering::SeqCst)), (7, 3));
    }

    #[tokio::test]
    async fn does_not_retry_final_errors() {
        let calls = AtomicU32::new(0);
        let err = quick(5)
            .run("op", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(Error::artifact(ErrorKind::NotFound, "r", "404"))
            })
            .await
            .unwrap_err();
        assert_eq!(
            (err.kind(), calls.load(Ordering::SeqCst)),
            (ErrorKind::NotFound, 1)
        );
    }
}

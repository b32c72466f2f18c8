//! Test controls on the HTTP side: per verb+kind request counters and injected failures.
//! Direct store access (simulators, tests) is neither counted nor failed.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::error::ApiError;

/// The verb of one API request, as the counters and failure injection see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    UpdateStatus,
    Patch,
    PatchStatus,
    Delete,
    DeleteCollection,
}

struct Injection {
    verb: Verb,
    kind: String,
    error: ApiError,
    remaining: usize,
}

#[derive(Default)]
pub(crate) struct Faults {
    counts: Mutex<HashMap<(Verb, String), usize>>,
    injections: Mutex<Vec<Injection>>,
    /// `METHOD path` of requests the router answered 404 (no served kind at that path).
    unserved: Mutex<Vec<String>>,
}

/// The usual `reason` for an HTTP code, so injected errors look like the apiserver's.
fn reason_for(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        410 => "Expired",
        422 => "Invalid",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "InternalError",
    }
}

impl Faults {
    /// Counts the request, then returns an injected failure if one is pending for it.
    pub(crate) fn on_request(&self, verb: Verb, kind: &str) -> Result<(), ApiError> {
        *self
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((verb, kind.to_string()))
            .or_default() += 1;
        let mut inj = self.injections.lock().unwrap_or_else(|p| p.into_inner());
        let Some(pos) = inj.iter().position(|i| i.verb == verb && i.kind == kind) else {
            return Ok(());
        };
        let error = inj[pos].error.clone();
        inj[pos].remaining -= 1;
        if inj[pos].remaining == 0 {
            inj.remove(pos);
        }
        Err(error)
    }

    pub(crate) fn inject(&self, verb: Verb, kind: &str, error: ApiError, times: usize) {
        if times == 0 {
            return;
        }
        self.injections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Injection {
                verb,
                kind: kind.to_string(),
                error,
                remaining: times,
            });
    }

    pub(crate) fn inject_code(&self, verb: Verb, kind: &str, code: u16, times: usize) {
        let error = ApiError::Injected {
            code,
            reason: reason_for(code).to_string(),
            message: format!("injected failure: {code} on {verb:?} {kind}"),
        };
        self.inject(verb, kind, error, times);
    }

    pub(crate) fn count(&self, verb: Verb, kind: &str) -> usize {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(verb, kind.to_string()))
            .copied()
            .unwrap_or(0)
    }

    pub(crate) fn clear_injections(&self) {
        self.injections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    pub(crate) fn record_unserved(&self, method: &str, path: &str) {
        self.unserved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(format!("{method} {path}"));
    }

    pub(crate) fn unserved(&self) -> Vec<String> {
        self.unserved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn reset_counts(&self) {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.unserved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

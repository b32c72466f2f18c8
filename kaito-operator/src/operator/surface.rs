//! Surfacing reconcile errors where users look: KAITO appends the error to the workspace's
//! condition messages as `(last reconcile error: …)` and drops it on the next clean reconcile.
//! Here it goes on the one condition the failed step belongs to (not on all of them), in a
//! compact, credential-free form, and a Warning Event with a step-specific reason goes with it.

use kaito_core::api::{ConditionType, WorkspaceStatus};
use kaito_core::planner::Action as Step;

use super::error::Error;

/// Marks the appended error; everything from here on is removed on the next clean reconcile.
pub const SUFFIX_START: &str = " (last reconcile error: ";
/// Longest error text put into a condition message or an Event note.
const MAX_ERROR: usize = 400;
/// Keys whose values are credentials when they appear as `key=value` or `key: value`.
const SECRET_KEYS: [&str; 12] = [
    "access_token",
    "refresh_token",
    "client_secret",
    "api_key",
    "apikey",
    "password",
    "passwd",
    "secret",
    "token",
    "sig",
    "authorization",
    "bearer",
];

/// The condition a failure of `step` is reported on (`None`: the failure came before any step,
/// while reading the cluster).
pub fn condition_for(step: Option<&Step>) -> ConditionType {
    match step {
        Some(Step::EnsureNodes(_)) => ConditionType::ResourceReady,
        Some(Step::CreateJob { .. } | Step::DeleteJob) => ConditionType::JobStarted,
        Some(Step::ApplyInference { .. }) => ConditionType::InferenceReady,
        Some(Step::DeleteNodes | Step::RemoveFinalizer) => ConditionType::WorkspaceDeleting,
        Some(
            Step::AddFinalizer
            | Step::CreateRevision { .. }
            | Step::DeleteRevision { .. }
            | Step::AnnotateWorkspace { .. },
        )
        | None => ConditionType::WorkspaceSucceeded,
    }
}

/// The Warning Event reason for a failure of `step`.
pub fn event_reason(step: Option<&Step>) -> &'static str {
    match step {
        Some(Step::EnsureNodes(_)) => "NodeClaimCreationFailed",
        Some(Step::CreateJob { .. }) => "JobCreationFailed",
        Some(Step::DeleteJob) => "JobDeletionFailed",
        Some(Step::ApplyInference { .. }) => "InferenceApplyFailed",
        Some(Step::DeleteNodes) => "NodeDeletionFailed",
        _ => "ReconcileFailed",
    }
}

/// Removes every `(last reconcile error: …)` suffix (the reconcile that wrote them is over).
pub fn clear_errors(status: &mut WorkspaceStatus) {
    for c in status.conditions.iter_mut().flatten() {
        if let Some(at) = c.message.find(SUFFIX_START) {
            c.message.truncate(at);
        }
    }
}

/// Appends `error` to the message of condition `type_`, or of `WorkspaceSucceeded` when the
/// status has no such condition yet. Returns whether a condition took it.
pub fn record_error(status: &mut WorkspaceStatus, type_: ConditionType, error: &str) -> bool {
    let conditions = status.conditions.iter_mut().flatten();
    let mut fallback = None;
    let mut target = None;
    for c in conditions {
        if c.type_ == type_.as_str() {
            target = Some(c);
        } else if c.type_ == ConditionType::WorkspaceSucceeded.as_str() {
            fallback = Some(c);
        }
    }
    let Some(c) = target.or(fallback) else {
        return false;
    };
    if let Some(at) = c.message.find(SUFFIX_START) {
        c.message.truncate(at);
    }
    c.message = format!("{}{SUFFIX_START}{error})", c.message);
    true
}

/// A one-line, credential-free description of `error` for users: the API server's message
/// instead of kube's debug dump of the whole Status, at most `MAX_ERROR` characters.
pub fn describe(error: &Error) -> String {
    let full = error.to_string();
    let compact = compact_api_error(&full).unwrap_or(full);
    let one_line = compact.split_whitespace().collect::<Vec<_>>().join(" ");
    let redacted = redact(&one_line);
    if redacted.chars().count() <= MAX_ERROR {
        redacted
    } else {
        let cut: String = redacted.chars().take(MAX_ERROR).collect();
        format!("{cut}…")
    }
}

/// kube prints an API error as `ApiError: <message>: <reason> (Status { …, code: N, … })`, and
/// wrappers (ours, the provisioners') put it last after `<what>: `. Works on the text because
/// backend errors reach the operator flattened into a message, without a source chain.
fn compact_api_error(text: &str) -> Option<String> {
    let dump = text.find(" (Status {")?;
    let head = &text[..dump];
    let code: String = text[dump..]
        .split("code: ")
        .nth(1)?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let api = head.rfind("ApiError: ")?;
    let (before, status) = (&head[..api], &head[api + "ApiError: ".len()..]);
    let (message, reason) = status.rsplit_once(": ").unwrap_or((status, ""));
    let reason = if reason.is_empty() {
        String::new()
    } else {
        format!("{reason}, ")
    };
    Some(format!("{before}{} ({reason}HTTP {code})", message.trim()))
}

/// Replaces values that look like credentials (`token=…`, `password: …`, `Bearer …`, a SAS
/// `sig=…`) with `[redacted]`. Error texts come from API servers, proxies and cloud SDKs, which
/// occasionally echo a URL or header; nothing secret may reach a status or an Event.
pub fn redact(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let hit = SECRET_KEYS.iter().find_map(|key| {
            let starts_word = i == 0 || !is_word(bytes[i - 1]);
            if !starts_word || !lower[i..].starts_with(key) {
                return None;
            }
            let mut j = i + key.len();
            let sep = match bytes.get(j) {
                Some(b'=' | b':') => true,
                Some(b' ') if *key == "bearer" => true,
                _ => false,
            };
            if !sep {
                return None;
            }
            j += 1;
            while bytes.get(j).is_some_and(|b| *b == b' ' || *b == b'"') {
                j += 1;
            }
            // `Authorization: Bearer x`: keep the scheme word, redact what follows it.
            if *key == "authorization" && lower[j..].starts_with("bearer ") {
                j += "bearer ".len();
            }
            let end = (j..text.len())
                .find(|&k| matches!(bytes[k], b' ' | b'&' | b',' | b';' | b'"' | b')' | b'\''))
                .unwrap_or(text.len());
            (end > j).then_some((j, end))
        });
        match hit {
            Some((value_start, value_end)) => {
                out.push_str(&text[i..value_start]);
                out.push_str("[redacted]");
                i = value_end;
            }
            None => {
                let ch = text[i..].chars().next().map_or(1, char::len_utf8);
                out.push_str(&text[i..i + ch]);
                i += ch;
            }
        }
    }
    out
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    use k8s_openapi::jiff::Timestamp;

    fn cond(type_: ConditionType, message: &str) -> Condition {
        Condition {
            type_: type_.as_str().into(),
            status: "False".into(),
            reason: "r".into(),
            message: message.into(),
            observed_generation: None,
            last_transition_time: Time(Timestamp::UNIX_EPOCH),
        }
    }

    #[test]
    fn an_error_goes_on_its_condition_once_and_is_cleared() {
        let mut status = WorkspaceStatus {
            conditions: Some(vec![
                cond(ConditionType::ResourceReady, "waiting for nodes"),
                cond(ConditionType::WorkspaceSucceeded, "waiting for resources"),
            ]),
            ..WorkspaceStatus::default()
        };
        assert!(record_error(
            &mut status,
            ConditionType::ResourceReady,
            "boom"
        ));
        assert!(record_error(
            &mut status,
            ConditionType::ResourceReady,
            "bang"
        ));
        let rr = status.condition(ConditionType::ResourceReady).expect("rr");
        assert_eq!(rr.message, "waiting for nodes (last reconcile error: bang)");
        let ws = status
            .condition(ConditionType::WorkspaceSucceeded)
            .expect("ws");
        assert_eq!(ws.message, "waiting for resources");
        // A condition the plan did not set falls back to the summary condition.
        assert!(record_error(&mut status, ConditionType::JobStarted, "late"));
        let ws = status
            .condition(ConditionType::WorkspaceSucceeded)
            .expect("ws");
        assert!(ws.message.ends_with("(last reconcile error: late)"));
        clear_errors(&mut status);
        assert_eq!(
            status
                .condition(ConditionType::ResourceReady)
                .map(|c| c.message.as_str()),
            Some("waiting for nodes")
        );
        assert_eq!(
            status
                .condition(ConditionType::WorkspaceSucceeded)
                .map(|c| c.message.as_str()),
            Some("waiting for resources")
        );
        assert!(!record_error(
            &mut WorkspaceStatus::default(),
            ConditionType::JobStarted,
            "x"
        ));
    }

    #[test]
    fn credentials_are_redacted() {
        let text = "GET https://acct.blob.core.windows.net/c?sv=2022&sig=AbC%2Fd123&se=1 failed; \
                    Authorization: Bearer eyJhbGciOi.payload.sig, password=hunter2 token: \"t0k\"";
        let r = redact(text);
        for secret in ["AbC%2Fd123", "eyJhbGciOi", "hunter2", "t0k"] {
            assert!(!r.contains(secret), "{secret} leaked in {r}");
        }
        assert!(r.contains("sv=2022") && r.contains("se=1"), "{r}");
        assert!(r.contains("Authorization: Bearer [redacted]"), "{r}");
        // Words that merely contain a key are left alone.
        assert_eq!(
            redact("tokenizer: missing; signature ok"),
            "tokenizer: missing; signature ok"
        );
    }

    #[test]
    fn api_errors_are_described_without_kubes_debug_dump() {
        let status =
            kube::core::Status::failure("quota exceeded for jobs", "Forbidden").with_code(403);
        let err = Error::kube(
            "creating Job default/ws",
            kube::Error::Api(Box::new(status)),
        );
        assert_eq!(
            describe(&err),
            "creating Job default/ws: quota exceeded for jobs (Forbidden, HTTP 403)"
        );
        // A provisioner's error reaches the operator flattened into a message.
        let flat = kube::core::Status::failure("no: quota", "").with_code(500);
        let flattened = Error::Config(format!(
            "creating NodeClaim ws1: {}",
            kube::Error::Api(Box::new(flat))
        ));
        assert_eq!(
            describe(&flattened),
            "creating NodeClaim ws1: no: quota (HTTP 500)"
        );
        let long = Error::Config("x".repeat(1000));
        assert_eq!(describe(&long).chars().count(), MAX_ERROR + 1);
    }
}

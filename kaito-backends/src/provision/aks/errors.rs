//! Turning ARM error bodies into [`crate::Error::Arm`] and into readable terminal reasons.
//!
//! AKS rarely puts the interesting code at the top: a failed create usually says
//! `CreateVMSSAgentPoolFailed` (or `ReconcileVMSSAgentPoolFailed`) and hides `AllocationFailed` /
//! `SkuNotAvailable` in `details` or inside the message text as `Code="..."`. The reason we
//! report is the most specific known capacity code found anywhere, else the top-level code.

use kaito_core::ErrorKind;

use super::models::ArmErrorDetail;

/// ARM codes that mean "no capacity for this VM size here": retrying the same request will not
/// help until quota is raised or the size/region changes.
pub const CAPACITY_CODES: &[&str] = &[
    "QuotaExceeded",
    "InsufficientVCPUQuota",
    "SubscriptionQuotaExceeded",
    "SkuNotAvailable",
    "AllocationFailed",
    "ZonalAllocationFailed",
    "OverconstrainedAllocationRequest",
    "OverconstrainedZonalAllocationRequest",
];

/// Texts that make an `OperationNotAllowed` a quota failure. azure-sdk-for-go-extensions lists
/// "Family Cores quota", "Submit a request for Quota increase", "approved Total Regional Cores
/// quota" and "LowPriorityCores"; matching on "quota" covers the first three.
const QUOTA_TEXTS: &[&str] = &["quota", "lowprioritycores"];

/// Longest message carried into a reason (karpenter cuts at 800 too).
const MAX_MESSAGE: usize = 800;

/// A terminal failure of an agent pool, as `NodeReadiness::Failed` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArmFailure {
    /// The ARM error code, the most specific one found.
    pub code: String,
    /// ARM's explanation.
    pub message: String,
}

impl ArmFailure {
    /// The failure an error body describes.
    pub fn from_detail(detail: &ArmErrorDetail, fallback_code: &str) -> Self {
        let code = reason_code(detail).unwrap_or_else(|| fallback_code.to_owned());
        Self {
            code,
            message: full_message(detail),
        }
    }
}

/// Whether the error is a quota, SKU or capacity failure.
pub fn is_capacity_error(detail: &ArmErrorDetail) -> bool {
    known_capacity_code(detail).is_some() || is_quota_not_allowed(detail)
}

/// The reason to report: a known capacity code from anywhere in the tree, else the top code.
pub fn reason_code(detail: &ArmErrorDetail) -> Option<String> {
    known_capacity_code(detail).or_else(|| detail.code.clone())
}

/// How a caller should treat an ARM error response.
pub fn error_kind(status: u16, detail: &ArmErrorDetail) -> ErrorKind {
    if is_capacity_error(detail) {
        return ErrorKind::Terminal;
    }
    match status {
        401 | 403 => ErrorKind::Unauthorized,
        404 => ErrorKind::NotFound,
        // 409 and OperationNotAllowed without quota text: another operation holds the pool.
        408 | 409 | 429 | 500..=599 => ErrorKind::Retryable,
        _ if detail.code.as_deref() == Some("OperationNotAllowed") => ErrorKind::Retryable,
        _ => ErrorKind::InvalidInput,
    }
}

/// Whether a PUT was refused only because a create of the same pool is already running (the
/// text gpu-provisioner keys on after a restart).
pub fn is_create_in_progress(message: &str) -> bool {
    message.to_ascii_lowercase().contains("in progress create")
}

/// The error for a failed call.
pub fn arm_error(what: &str, status: u16, detail: &ArmErrorDetail) -> crate::Error {
    let code = reason_code(detail);
    let message = if detail.message.is_some() {
        full_message(detail)
    } else {
        format!("HTTP {status}")
    };
    crate::Error::Arm {
        kind: error_kind(status, detail),
        what: what.to_owned(),
        code,
        message,
        source: None,
    }
}

/// The top message followed by nested messages that add something, cut to [`MAX_MESSAGE`].
pub fn full_message(detail: &ArmErrorDetail) -> String {
    let mut parts: Vec<String> = Vec::new();
    collect_messages(detail, &mut parts);
    let mut text = parts.join("; ");
    if text.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

fn collect_messages(detail: &ArmErrorDetail, parts: &mut Vec<String>) {
    if let Some(m) = detail
        .message
        .as_deref()
        .map(str::trim)
        .filter(|m| !m.is_empty())
        && !parts.iter().any(|p| p.contains(m))
    {
        let entry = match detail.code.as_deref() {
            Some(code) if !parts.is_empty() => format!("{code}: {m}"),
            _ => m.to_owned(),
        };
        parts.push(entry);
    }
    for d in &detail.details {
        collect_messages(d, parts);
    }
}

fn known_capacity_code(detail: &ArmErrorDetail) -> Option<String> {
    if let Some(code) = detail.code.as_deref()
        && CAPACITY_CODES.iter().any(|c| c.eq_ignore_ascii_case(code))
    {
        return Some(code.to_owned());
    }
    if let Some(found) = detail.details.iter().find_map(known_capacity_code) {
        return Some(found);
    }
    // Compute errors are often only quoted inside the message: `Code="ZonalAllocationFailed"`.
    let message = detail.message.as_deref().unwrap_or_default();
    CAPACITY_CODES
        .iter()
        .find(|c| {
            message.contains(&format!("Code=\"{c}\""))
                || message.contains(&format!("\"code\": \"{c}\""))
        })
        .map(|c| (*c).to_owned())
}

fn is_quota_not_allowed(detail: &ArmErrorDetail) -> bool {
    let not_allowed = detail.code.as_deref() == Some("OperationNotAllowed");
    let text = detail
        .message
        .as_deref()
        .unwrap_or_default()
        .to_ascii_lowercase();
    (not_allowed && QUOTA_TEXTS.iter().any(|t| text.contains(t)))
        || detail.details.iter().any(is_quota_not_allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detail(code: &str, message: &str, details: Vec<ArmErrorDetail>) -> ArmErrorDetail {
        ArmErrorDetail {
            code: Some(code.into()),
            message: Some(message.into()),
            details,
        }
    }

    #[test]
    fn nested_allocation_failure_is_the_reason() {
        let d = detail(
            "CreateVMSSAgentPoolFailed",
            "Unable to create pool",
            vec![detail(
                "AllocationFailed",
                "Allocation failed. We do not have sufficient capacity",
                vec![],
            )],
        );
        let failure = ArmFailure::from_detail(&d, "Failed");
        assert_eq!(failure.code, "AllocationFailed");
        assert!(
            failure.message.contains("sufficient capacity"),
            "{}",
            failure.message
        );
        assert!(
            failure.message.starts_with("Unable to create pool"),
            "{}",
            failure.message
        );
        assert_eq!(error_kind(400, &d), ErrorKind::Terminal);
    }

    #[test]
    fn code_quoted_in_message_is_found() {
        let d = detail(
            "ReconcileVMSSAgentPoolFailed",
            r#"VMSS failed: Code="ZonalAllocationFailed" Message="no""#,
            vec![],
        );
        assert_eq!(reason_code(&d).as_deref(), Some("ZonalAllocationFailed"));
    }

    #[test]
    fn operation_not_allowed_is_quota_only_with_quota_text() {
        let quota = detail(
            "OperationNotAllowed",
            "Operation could not be completed as it results in exceeding approved Total Regional Cores quota",
            vec![],
        );
        assert!(is_capacity_error(&quota));
        assert_eq!(error_kind(409, &quota), ErrorKind::Terminal);
        assert_eq!(reason_code(&quota).as_deref(), Some("OperationNotAllowed"));
        let busy = detail(
            "OperationNotAllowed",
            "Operation is not allowed because there's an in progress create node pool operation",
            vec![],
        );
        assert!(!is_capacity_error(&busy));
        assert!(is_create_in_progress(&full_message(&busy)));
        assert_eq!(error_kind(409, &busy), ErrorKind::Retryable);
        assert_eq!(error_kind(400, &busy), ErrorKind::Retryable);
    }

    #[test]
    fn status_kinds() {
        let d = detail("InvalidParameter", "vmSize is wrong", vec![]);
        assert_eq!(error_kind(400, &d), ErrorKind::InvalidInput);
        assert_eq!(error_kind(401, &d), ErrorKind::Unauthorized);
        assert_eq!(error_kind(404, &d), ErrorKind::NotFound);
        assert_eq!(error_kind(429, &d), ErrorKind::Retryable);
        assert_eq!(error_kind(503, &d), ErrorKind::Retryable);
    }

    #[test]
    fn long_messages_are_cut() {
        let d = detail("X", &"é".repeat(1000), vec![]);
        assert!(full_message(&d).len() <= MAX_MESSAGE + '…'.len_utf8());
    }
}

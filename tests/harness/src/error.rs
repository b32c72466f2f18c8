//! Errors the fake apiserver returns, shaped as Kubernetes `Status` bodies.

use serde_json::{Value, json};

/// An apiserver error: HTTP code, `Status.reason` and a message, as kube's `ErrorResponse`
/// (`kube::core::Status`) expects them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    NotFound {
        message: String,
        kind: String,
        name: String,
    },
    #[error("{message}")]
    AlreadyExists {
        message: String,
        kind: String,
        name: String,
    },
    #[error("{message}")]
    Conflict {
        message: String,
        kind: String,
        name: String,
    },
    #[error("{message}")]
    Invalid { message: String },
    #[error("{message}")]
    BadRequest { message: String },
    #[error("resource version {0} is too old")]
    Gone(u64),
    #[error("{message}")]
    Injected {
        code: u16,
        reason: String,
        message: String,
    },
}

impl ApiError {
    pub fn not_found(resource: &str, name: &str) -> Self {
        Self::NotFound {
            message: format!("{resource} \"{name}\" not found"),
            kind: resource.to_string(),
            name: name.to_string(),
        }
    }

    pub fn already_exists(resource: &str, name: &str) -> Self {
        Self::AlreadyExists {
            message: format!("{resource} \"{name}\" already exists"),
            kind: resource.to_string(),
            name: name.to_string(),
        }
    }

    /// The optimistic-concurrency failure the real apiserver reports on a stale resourceVersion.
    pub fn conflict(resource: &str, name: &str) -> Self {
        Self::Conflict {
            message: format!(
                "Operation cannot be fulfilled on {resource} \"{name}\": the object has been \
                 modified; please apply your changes to the latest version and try again"
            ),
            kind: resource.to_string(),
            name: name.to_string(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid {
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest {
            message: message.into(),
        }
    }

    pub fn code(&self) -> u16 {
        match self {
            Self::NotFound { .. } => 404,
            Self::AlreadyExists { .. } | Self::Conflict { .. } => 409,
            Self::Invalid { .. } => 422,
            Self::BadRequest { .. } => 400,
            Self::Gone(_) => 410,
            Self::Injected { code, .. } => *code,
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            Self::NotFound { .. } => "NotFound",
            Self::AlreadyExists { .. } => "AlreadyExists",
            Self::Conflict { .. } => "Conflict",
            Self::Invalid { .. } => "Invalid",
            Self::BadRequest { .. } => "BadRequest",
            Self::Gone(_) => "Expired",
            Self::Injected { reason, .. } => reason,
        }
    }

    /// The `Status` object (`kind: Status`, `status: Failure`).
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code(),
        });
        if let Self::NotFound { kind, name, .. }
        | Self::AlreadyExists { kind, name, .. }
        | Self::Conflict { kind, name, .. } = self
        {
            let (plural, group) = kind.split_once('.').unwrap_or((kind.as_str(), ""));
            status["details"] = json!({"name": name, "group": group, "kind": plural});
        }
        status
    }
}

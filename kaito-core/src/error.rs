//! The one error type of kaito-core, shared by the three backend traits.

use std::fmt;

/// Result alias used throughout kaito-core and by the backend traits.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A boxed source error from a backend.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// How a caller should treat a backend failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Transient (timeouts, 5xx, 429, conflicts): the same call may succeed later.
    Retryable,
    /// The thing asked for does not exist (an image, a node pool, a file).
    NotFound,
    /// Credentials were missing or refused (401/403).
    Unauthorized,
    /// The request itself is wrong (bad reference, unsupported setting); retrying cannot help.
    InvalidInput,
    /// A permanent failure of the backend (quota exceeded, SKU unavailable, corrupt data).
    Terminal,
    /// The operation was cancelled by its caller.
    Cancelled,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Retryable => "retryable",
            Self::NotFound => "not found",
            Self::Unauthorized => "unauthorized",
            Self::InvalidInput => "invalid input",
            Self::Terminal => "terminal",
            Self::Cancelled => "cancelled",
        })
    }
}

/// Errors of kaito-core and of the backend traits.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A manifest file could not be parsed.
    #[error("{source_name}: {message}")]
    Manifest {
        /// The file (and document) that failed.
        source_name: String,
        /// What is wrong.
        message: String,
    },
    /// A Workspace (or its tuning config) violates one or more rules; all are listed.
    #[error("{0}")]
    Invalid(crate::validation::FieldErrors),
    /// A tuning ConfigMap's `training_config.yaml` is malformed or uses unknown keys.
    #[error("{path}: {message}")]
    TuningConfig {
        /// Path of the offending key, e.g. `training_config.LoraConfig.rank`.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A backend (provisioner, runtime, artifact store) failed.
    #[error("{message}")]
    Backend {
        /// How to treat the failure.
        kind: ErrorKind,
        /// What failed, naming the object (image reference, node pool, file); never a secret.
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
}

impl Error {
    /// A backend error without a source.
    pub fn backend(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self::Backend {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// The failure's kind; everything but backend errors is [`ErrorKind::InvalidInput`].
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Backend { kind, .. } => *kind,
            _ => ErrorKind::InvalidInput,
        }
    }

    /// Whether retrying the same call may succeed.
    pub fn is_retryable(&self) -> bool {
        self.kind() == ErrorKind::Retryable
    }
}

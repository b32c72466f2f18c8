//! The one error type of kaito-backends.
//!
//! Every variant names what failed (a file, a URL, an image reference, a field) so that a person
//! can act on it. Secrets never appear in a variant's text.

use std::path::PathBuf;

use kaito_core::{BoxError, ErrorKind};

/// Result alias used throughout kaito-backends.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors raised by the backends.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Input data (a dataset, a config file, a checkpoint) is malformed.
    #[error("{what}: {message}")]
    InvalidData {
        /// The file (and row, where known) that is malformed.
        what: String,
        /// What is wrong with it.
        message: String,
    },
    /// A chat template failed to compile or render (including the template's own
    /// `raise_exception`).
    #[error("chat template: {0}")]
    ChatTemplate(String),
    /// The tokenizer failed to load or to encode text.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A kaito-core call (validation, a trait implementation) failed.
    #[error(transparent)]
    Core(#[from] kaito_core::Error),
    /// Training or generation was cancelled by the caller.
    #[error("cancelled")]
    Cancelled,
    /// A setting the runtime does not implement was given (never silently ignored).
    #[error("{field}: {message}")]
    Unsupported {
        /// The setting, e.g. `TrainingArguments.fp16`.
        field: String,
        /// Why it is rejected.
        message: String,
    },
    /// A Kubernetes API call failed (`what` names the call and object).
    #[error("{what}: {source}")]
    Kube {
        /// The call, e.g. `creating NodeClaim ws1a2b3c4d5`.
        what: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// An OCI image could not be pushed or pulled (registry, local layout, credentials).
    #[error("{reference}: {message}")]
    Artifact {
        /// How a caller should treat the failure.
        kind: ErrorKind,
        /// The image reference or registry host involved; never a secret.
        reference: String,
        /// What went wrong.
        message: String,
        /// The underlying error, already free of secrets.
        #[source]
        source: Option<BoxError>,
    },
    /// A download (tuning input URL, Hugging Face hub file) failed.
    #[error("{url}: {message}")]
    Download {
        /// How a caller should treat the failure.
        kind: ErrorKind,
        /// The URL involved.
        url: String,
        /// What went wrong (HTTP status, TLS, empty body, too large).
        message: String,
        /// The underlying error.
        #[source]
        source: Option<BoxError>,
    },
    /// An Azure Resource Manager call failed (`what` names the call and agent pool).
    #[error("{what}: {}{message}", code.as_deref().map(|c| format!("{c}: ")).unwrap_or_default())]
    Arm {
        /// How to treat the failure (quota and SKU errors are terminal, 429/5xx retryable).
        kind: ErrorKind,
        /// The call, e.g. `creating agent pool ws1a2b3c4d00`.
        what: String,
        /// The ARM error code (`QuotaExceeded`, `SkuNotAvailable`, ...), when ARM sent one.
        code: Option<String>,
        /// ARM's message, or what went wrong on the way there.
        message: String,
        /// The transport or credential error, if any.
        #[source]
        source: Option<BoxError>,
    },
}

impl Error {
    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// An [`Error::InvalidData`] for `what`.
    pub fn invalid(what: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidData {
            what: what.into(),
            message: message.into(),
        }
    }

    /// An [`Error::Artifact`] without a source.
    pub fn artifact(
        kind: ErrorKind,
        reference: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::Artifact {
            kind,
            reference: reference.into(),
            message: message.into(),
            source: None,
        }
    }

    /// An [`Error::Download`] without a source.
    pub fn download(kind: ErrorKind, url: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Download {
            kind,
            url: url.into(),
            message: message.into(),
            source: None,
        }
    }

    /// How a caller should treat this failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                ErrorKind::NotFound
            }
            Self::Io { .. } => ErrorKind::Terminal,
            Self::InvalidData { .. } => ErrorKind::InvalidInput,
            Self::Cancelled => ErrorKind::Cancelled,
            Self::Core(err) => err.kind(),
            Self::Unsupported { .. } => ErrorKind::InvalidInput,
            Self::ChatTemplate(_) | Self::Tokenizer(_) => ErrorKind::InvalidInput,
            Self::Kube { source, .. } => match source {
                kube::Error::Api(status) => match status.code {
                    404 => ErrorKind::NotFound,
                    401 | 403 => ErrorKind::Unauthorized,
                    400 | 422 => ErrorKind::InvalidInput,
                    _ => ErrorKind::Retryable,
                },
                _ => ErrorKind::Retryable,
            },
            Self::Artifact { kind, .. } | Self::Download { kind, .. } => *kind,
            Self::Arm { kind, .. } => *kind,
        }
    }
}

impl From<Error> for kaito_core::Error {
    fn from(err: Error) -> Self {
        if let Error::Core(inner) = err {
            return inner;
        }
        // The whole chain goes into the message rather than `source`: keeping `err` as the
        // source as well would print every message twice in `{:#}` chains.
        let mut message = err.to_string();
        let mut cause = std::error::Error::source(&err);
        while let Some(c) = cause {
            let text = c.to_string();
            if !message.contains(&text) {
                message = format!("{message}: {text}");
            }
            cause = c.source();
        }
        kaito_core::Error::Backend {
            kind: err.kind(),
            message,
            source: None,
        }
    }
}

//! The one error type of the operator library.

/// Result alias of the operator.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a reconcile (or the operator's start-up) failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("{what}: {source}")]
    Kube {
        /// The call and object, e.g. `creating Job default/tune`.
        what: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// A backend (provisioner) or kaito-core builder failed.
    #[error(transparent)]
    Core(#[from] kaito_core::Error),
    /// Invalid operator configuration.
    #[error("{0}")]
    Config(String),
    /// Serving HTTP failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being served.
        what: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Wraps a kube error with the call it came from.
    pub fn kube(what: impl Into<String>, source: kube::Error) -> Self {
        Self::Kube {
            what: what.into(),
            source,
        }
    }

    /// Whether the failure is a 409 Conflict (stale resourceVersion): retry soon.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Kube { source: kube::Error::Api(s), .. } if s.code == 409)
    }
}

/// `Ok(None)` for a 404, the value otherwise.
pub(crate) fn not_found_ok<T>(
    r: std::result::Result<T, kube::Error>,
) -> std::result::Result<Option<T>, kube::Error> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
        Err(e) => Err(e),
    }
}

/// `Ok(false)` for a 409 AlreadyExists on create, `Ok(true)` when created.
pub(crate) fn exists_ok<T>(
    r: std::result::Result<T, kube::Error>,
) -> std::result::Result<bool, kube::Error> {
    match r {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

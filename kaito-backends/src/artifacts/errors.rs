//! Turning oci-client failures into kaito errors with a kind and a message a person can act on.
//!
//! Messages name the reference and the registry, never credentials: oci-client's own texts carry
//! URLs and registry bodies only, and authentication failures are summarised without them.

use kaito_core::ErrorKind;
use oci_client::errors::{OciDistributionError as Oci, OciErrorCode};

use super::credentials::registry_host;
use crate::error::Error;

/// Classifies `err`, raised while doing `action` for `reference`.
pub(crate) fn classify(err: Oci, reference: &str, action: &str) -> Error {
    let registry = registry_host(reference);
    let (kind, message) = match &err {
        Oci::UnauthorizedError { .. } | Oci::AuthenticationFailure(_) => {
            (ErrorKind::Unauthorized, denied(&registry))
        }
        Oci::ImageManifestNotFoundError(_) => by_status(404, &registry, ""),
        Oci::ServerError { code, message, .. } => by_status(*code, &registry, message),
        // blob_exists and a few other calls surface the status through reqwest.
        Oci::RequestError(e) if e.status().is_some() => {
            by_status(e.status().map_or(0, |s| s.as_u16()), &registry, "")
        }
        Oci::RegistryError { envelope, .. } => {
            let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
            let text: Vec<String> = envelope.errors.iter().map(|e| short(&e.message)).collect();
            let kind = if codes
                .iter()
                .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
            {
                return Error::artifact(
                    ErrorKind::Unauthorized,
                    reference,
                    format!("{action}: {}", denied(&registry)),
                );
            } else if codes.iter().any(|c| {
                matches!(
                    c,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::NotFound
                        | OciErrorCode::BlobUnknown
                )
            }) {
                ErrorKind::NotFound
            } else if codes.contains(&&OciErrorCode::Toomanyrequests) {
                ErrorKind::Retryable
            } else {
                ErrorKind::Terminal
            };
            (kind, format!("registry {registry}: {}", text.join("; ")))
        }
        Oci::RequestError(e) if e.is_timeout() => (
            ErrorKind::Retryable,
            format!("registry {registry} timed out"),
        ),
        Oci::RequestError(e) if e.is_connect() || e.is_request() || e.is_body() => (
            ErrorKind::Retryable,
            format!("cannot reach registry {registry}: {}", chain(e)),
        ),
        Oci::RequestError(e) => (
            ErrorKind::Terminal,
            format!("registry {registry}: {}", chain(e)),
        ),
        Oci::DigestError(e) => (
            ErrorKind::Terminal,
            format!("content does not match its digest: {e}"),
        ),
        Oci::IoError(e) => (ErrorKind::Terminal, format!("local I/O failed: {e}")),
        Oci::UnsupportedMediaTypeError(_)
        | Oci::UnsupportedSchemaVersionError(_)
        | Oci::ImageIndexParsingNoPlatformResolverError => (ErrorKind::Terminal, err.to_string()),
        other => (ErrorKind::Terminal, format!("registry {registry}: {other}")),
    };
    let source: Option<kaito_core::BoxError> = match kind {
        ErrorKind::Unauthorized => None,
        _ => Some(Box::new(err)),
    };
    Error::Artifact {
        kind,
        reference: reference.to_string(),
        message: format!("{action}: {message}"),
        source,
    }
}

fn by_status(code: u16, registry: &str, body: &str) -> (ErrorKind, String) {
    let detail = if body.trim().is_empty() {
        String::new()
    } else {
        format!(": {}", short(body))
    };
    match code {
        401 | 403 => (ErrorKind::Unauthorized, denied(registry)),
        404 => (
            ErrorKind::NotFound,
            format!("image not found in registry {registry} (HTTP 404)"),
        ),
        429 => (
            ErrorKind::Retryable,
            format!("registry {registry} is rate limiting (HTTP 429)"),
        ),
        500.. => (
            ErrorKind::Retryable,
            format!("registry {registry} answered HTTP {code}{detail}"),
        ),
        _ => (
            ErrorKind::Terminal,
            format!("registry {registry} answered HTTP {code}{detail}"),
        ),
    }
}

fn denied(registry: &str) -> String {
    format!(
        "registry {registry} refused the credentials (HTTP 401/403); check the pull/push secret"
    )
}

/// A registry's error body, cut so that an HTML page does not flood the message.
fn short(text: &str) -> String {
    let text = text.trim();
    if text.chars().count() > 200 {
        format!("{}…", text.chars().take(200).collect::<String>())
    } else {
        text.to_string()
    }
}

/// The error with its causes ("connection refused" sits a few levels down in reqwest).
fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        next = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_http_status() {
        let server = |code| Oci::ServerError {
            code,
            url: "http://r.io/v2/x".into(),
            message: "m".into(),
        };
        let k = |e| classify(e, "r.io/x:1", "pushing").kind();
        assert_eq!(k(server(401)), ErrorKind::Unauthorized);
        assert_eq!(k(server(403)), ErrorKind::Unauthorized);
        assert_eq!(k(server(404)), ErrorKind::NotFound);
        assert_eq!(k(server(429)), ErrorKind::Retryable);
        assert_eq!(k(server(503)), ErrorKind::Retryable);
        assert_eq!(k(server(400)), ErrorKind::Terminal);
        let e = classify(
            Oci::UnauthorizedError { url: "u".into() },
            "r.io/x:1",
            "pulling",
        );
        assert!(e.to_string().contains("registry r.io refused"), "{e}");
    }
}

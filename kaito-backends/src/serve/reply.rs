//! Error replies in the two wire formats the server speaks.
//!
//! KAITO's `/chat` is a FastAPI app, whose errors are `{"detail": "..."}`; the OpenAI-compatible
//! routes answer `{"error": {"message", "type", "param", "code"}}` as OpenAI and vLLM do. A
//! handler builds a neutral [`ApiError`] and picks the format by its return type.

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use kaito_core::ErrorKind;
use serde::de::DeserializeOwned;
use serde_json::json;

/// A request that cannot be answered: status, message and the offending field, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// The request field at fault (`generate_kwargs.num_beams`, `model`), when there is one.
    pub param: Option<String>,
    /// OpenAI's machine-readable code (`model_not_found`), when there is one.
    pub code: Option<&'static str>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            param: None,
            code: None,
        }
    }

    /// A 400 naming `field`.
    pub(crate) fn bad_field(field: impl Into<String>, message: impl std::fmt::Display) -> Self {
        let field = field.into();
        Self {
            status: StatusCode::BAD_REQUEST,
            message: format!("{field}: {message}"),
            param: Some(field),
            code: None,
        }
    }

    pub(crate) fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// Maps a model failure: bad input is the client's fault, anything else is the server's.
    pub(crate) fn from_model(err: &kaito_core::Error) -> Self {
        let status = match err {
            kaito_core::Error::Backend {
                kind: ErrorKind::InvalidInput,
                ..
            }
            | kaito_core::Error::Invalid(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, err.to_string())
    }

    /// OpenAI's error `type` for this status.
    fn openai_type(&self) -> &'static str {
        match self.status {
            StatusCode::NOT_FOUND => "NotFoundError",
            StatusCode::TOO_MANY_REQUESTS => "RateLimitError",
            s if s.is_server_error() => "InternalServerError",
            _ => "invalid_request_error",
        }
    }

    /// The OpenAI error object (also sent inside a stream that fails midway).
    pub(crate) fn openai_body(&self) -> serde_json::Value {
        json!({"error": {
            "message": self.message,
            "type": self.openai_type(),
            "param": self.param,
            "code": self.code,
        }})
    }
}

/// Reads a JSON body: a body over the limit is 413, and a malformed one is 400 naming the field
/// (`generate_kwargs.top_k: invalid type ...`, `missing field `messages``).
pub(crate) fn parse_body<T: DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let body = body.map_err(|rejection| {
        let message = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            "request body is larger than the server's limit (ServeLimits::max_body_bytes)"
                .to_owned()
        } else {
            rejection.body_text()
        };
        ApiError::new(rejection.status(), message)
    })?;
    let de = &mut serde_json::Deserializer::from_slice(&body);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        // Only data errors have a meaningful path; malformed JSON is about the body as a whole.
        if path == "." || err.inner().classify() != serde_json::error::Category::Data {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("request body: {}", err.inner()),
            )
        } else {
            ApiError::bad_field(path, err.inner())
        }
    })
}

/// An [`ApiError`] answered in KAITO's (FastAPI's) format.
#[derive(Debug)]
pub(crate) struct KaitoError(pub ApiError);

impl From<ApiError> for KaitoError {
    fn from(err: ApiError) -> Self {
        Self(err)
    }
}

impl IntoResponse for KaitoError {
    fn into_response(self) -> Response {
        (self.0.status, Json(json!({"detail": self.0.message}))).into_response()
    }
}

/// An [`ApiError`] answered in OpenAI's format.
#[derive(Debug)]
pub(crate) struct OpenAiError(pub ApiError);

impl From<ApiError> for OpenAiError {
    fn from(err: ApiError) -> Self {
        Self(err)
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        (self.0.status, Json(self.0.openai_body())).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Outer {
        inner: Inner,
    }
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        top_k: usize,
    }

    #[test]
    fn parse_errors_name_the_field() {
        let err = parse_body::<Outer>(Ok(Bytes::from_static(br#"{"inner": {"top_k": -1}}"#)))
            .unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert_eq!(err.param.as_deref(), Some("inner.top_k"));
        assert!(
            err.message.starts_with("inner.top_k: invalid value"),
            "{}",
            err.message
        );

        let err = parse_body::<Outer>(Ok(Bytes::from_static(b"{}"))).unwrap_err();
        assert!(
            err.message.contains("missing field `inner`"),
            "{}",
            err.message
        );

        let err = parse_body::<Outer>(Ok(Bytes::from_static(b"{not json"))).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(err.message.starts_with("request body:"), "{}", err.message);
    }
}

//! The HTTP boundary's error type and JSON plumbing. Every error is
//! `{error, field?, message}` with a 4xx or 5xx status; the `error` codes are
//! RULES.md's (R4, R8) plus the transport's own.

use super::config::MAX_BODY_BYTES;
use crate::refusal::Refusal;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde::Serialize;

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    pub status: StatusCode,
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, error: &str, message: impl Into<String>) -> ApiError {
        ApiError { status, error: error.to_owned(), field: None, message: message.into() }
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> ApiError {
        ApiError { field: Some(field.to_owned()), ..ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message) }
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> ApiError {
        let status = if r.code == crate::refusal::RefusalCode::InvalidRequest {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        ApiError { status, error: r.code.as_str().to_owned(), field: r.field, message: r.message }
    }
}

pub type Reply = Response<Full<Bytes>>;

/// A JSON response.
pub fn json<T: Serialize>(status: StatusCode, body: &T) -> Reply {
    let bytes = serde_json::to_vec(body).expect("responses serialize");
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(bytes)))
        .expect("valid response")
}

/// A plain-text response.
pub fn text(status: StatusCode, content_type: &'static str, body: String) -> Reply {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .expect("valid response")
}

impl ApiError {
    pub fn reply(&self) -> Reply {
        let mut r = json(self.status, self);
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert("www-authenticate", hyper::header::HeaderValue::from_static("Bearer"));
        }
        r
    }
}

/// Parses a body as JSON, or says why not.
pub fn parse_json(bytes: &[u8]) -> Result<serde_json::Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| ApiError::invalid("body", format!("the body is not valid JSON: {e}")))
}

/// Reads a request body of at most [`MAX_BODY_BYTES`].
pub async fn read_body(req: Request<Incoming>) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request bodies are limited to {MAX_BODY_BYTES} bytes; split the batch"),
        )
    };
    if let Some(len) =
        req.headers().get(hyper::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
    {
        if len > MAX_BODY_BYTES as u64 {
            return Err(too_large());
        }
    }
    let body = Limited::new(req.into_body(), MAX_BODY_BYTES).collect().await.map_err(|e| {
        if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
            too_large()
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", format!("could not read the request body: {e}"))
        }
    })?;
    Ok(body.to_bytes())
}

/// Constant-time comparison of two byte strings (for bearer tokens): the
/// time taken depends only on the lengths, never on where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff: usize = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0xFF));
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn tokens_compare_equal_only_when_identical() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }
}

//! The one place where error codes become HTTP statuses and RFC 9457 problem details.
//!
//! Client errors keep their detail; server errors answer "internal error" while the cause goes to
//! the log inside the request's span. No detail carries personal data: engine errors describe the
//! rule broken, never the value.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use custodia_core::{ErrorCode, SubjectId};
use custodia_engine::EngineError;
use serde::Serialize;

/// An RFC 9457 problem details body.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// A URI naming the problem type: `urn:custodia:problem:<code>`.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// A short summary of the problem type.
    pub title: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong in this case.
    pub detail: String,
    /// The same text as `detail`, for the Segment and RudderStack SDKs, which log `message`
    /// (an extension member, as RFC 9457 allows).
    pub message: String,
    /// The stable machine-readable code.
    pub code: &'static str,
    /// The input field at fault, if one is (a JSON pointer into the body, or a parameter name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For `subject_merged`: the subject that now holds the data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<SubjectId>,
}

/// An error answer from a handler.
#[derive(Debug)]
pub struct AppError {
    /// Boxed: handlers return `Result<_, AppError>` everywhere, and the happy path should stay small.
    problem: Box<Problem>,
    /// Logged, never sent.
    internal_cause: Option<String>,
    /// For 429: seconds until the client may try again (`Retry-After`).
    retry_after: Option<u64>,
}

/// Status and title of each code.
fn status_of(code: ErrorCode) -> (StatusCode, &'static str) {
    match code {
        ErrorCode::MalformedJson => (StatusCode::BAD_REQUEST, "Malformed request body"),
        ErrorCode::InvalidId => (StatusCode::BAD_REQUEST, "Invalid id"),
        ErrorCode::PurposeMissing => (StatusCode::BAD_REQUEST, "Purpose missing"),
        ErrorCode::InvalidField => (StatusCode::UNPROCESSABLE_ENTITY, "Invalid field"),
        ErrorCode::UnknownPurpose => (StatusCode::UNPROCESSABLE_ENTITY, "Unknown purpose"),
        ErrorCode::Unauthenticated => (StatusCode::UNAUTHORIZED, "Authentication required"),
        ErrorCode::RoleNotPermitted => (StatusCode::FORBIDDEN, "Role not permitted"),
        ErrorCode::PurposeNotPermitted => (StatusCode::FORBIDDEN, "Purpose not permitted"),
        ErrorCode::ConsentRequired => (StatusCode::FORBIDDEN, "Consent required"),
        ErrorCode::ProcessingRestricted => (StatusCode::FORBIDDEN, "Processing restricted"),
        ErrorCode::ObjectionRecorded => (StatusCode::FORBIDDEN, "Objection recorded"),
        ErrorCode::SubjectNotFound => (StatusCode::NOT_FOUND, "Subject not found"),
        ErrorCode::SubjectMerged => (StatusCode::NOT_FOUND, "Subject merged"),
        ErrorCode::NotFound => (StatusCode::NOT_FOUND, "Not found"),
        ErrorCode::Conflict => (StatusCode::CONFLICT, "Conflict"),
        ErrorCode::InvalidHeader => (StatusCode::BAD_REQUEST, "Invalid header"),
        ErrorCode::IdempotencyKeyReused => {
            (StatusCode::UNPROCESSABLE_ENTITY, "Idempotency key reused")
        }
        ErrorCode::IdempotencyKeyInFlight => (StatusCode::CONFLICT, "Idempotency key in flight"),
        ErrorCode::SubjectSuppressed => (StatusCode::CONFLICT, "Subject suppressed"),
        ErrorCode::LegalHold => (StatusCode::CONFLICT, "Under legal hold"),
        ErrorCode::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "Payload too large"),
        ErrorCode::UnsupportedMediaType => {
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "Unsupported media type")
        }
        ErrorCode::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "Too many requests"),
        ErrorCode::RequestTimeout => (StatusCode::REQUEST_TIMEOUT, "Request timeout"),
        ErrorCode::InsufficientStorage => {
            (StatusCode::INSUFFICIENT_STORAGE, "Insufficient storage")
        }
        ErrorCode::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "Internal error"),
    }
}

impl AppError {
    /// Whether this is a refusal with `code`.
    pub fn is(&self, code: ErrorCode) -> bool {
        self.problem.code == code.as_str()
    }

    /// A client error with a code, a detail and optionally the field at fault.
    pub fn new(code: ErrorCode, detail: impl Into<String>, field: Option<String>) -> AppError {
        let (status, title) = status_of(code);
        let detail: String = detail.into();
        AppError {
            problem: Box::new(Problem {
                type_uri: format!("urn:custodia:problem:{code}"),
                title,
                status: status.as_u16(),
                message: detail.clone(),
                detail,
                code: code.as_str(),
                field,
                merged_into: None,
            }),
            internal_cause: None,
            retry_after: None,
        }
    }

    /// 429 `rate_limited`, with `Retry-After` rounded up to whole seconds.
    pub fn rate_limited(wait: std::time::Duration) -> AppError {
        let mut error = AppError::new(
            ErrorCode::RateLimited,
            "too many requests for this api key; slow down",
            None,
        );
        error.retry_after = Some(wait.as_secs_f64().ceil().max(1.0) as u64);
        error
    }

    /// A server error: the cause is logged, the client reads "internal error".
    pub fn internal(cause: impl Into<String>) -> AppError {
        let mut error = AppError::new(ErrorCode::Internal, "internal error", None);
        error.internal_cause = Some(cause.into());
        error
    }

    /// The problem body.
    pub fn problem(&self) -> &Problem {
        &self.problem
    }
}

impl From<EngineError> for AppError {
    fn from(e: EngineError) -> AppError {
        let code = e.code();
        if code == ErrorCode::Internal {
            return AppError::internal(e.to_string());
        }
        if code == ErrorCode::InsufficientStorage {
            // The cause names files; the client learns only that the disk is full.
            let mut error = AppError::new(
                code,
                "the server's disk is full: nothing was stored; retry once space is freed",
                None,
            );
            error.internal_cause = Some(e.to_string());
            return error;
        }
        let mut error = AppError::new(code, e.to_string(), e.field().map(str::to_owned));
        if let EngineError::SubjectMerged { into } = e {
            error.problem.merged_into = Some(into);
        }
        error
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if let Some(cause) = &self.internal_cause {
            tracing::error!(error = %cause, "request failed");
        }
        let status =
            StatusCode::from_u16(self.problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let unauthenticated = status == StatusCode::UNAUTHORIZED;
        let body = serde_json::to_vec(&self.problem).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if unauthenticated {
            // Both schemes are accepted: Bearer, and Basic with the key as the user name.
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer, Basic realm=\"custodia\""),
            );
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

//! Every error the API answers: `{"error": stable_code, "message": text}`
//! with a status that says whose fault it was. Messages name what was wrong
//! and what is allowed, and never hold a secret.

use apikeys::{AuthError, Error, StoreError};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"error": "key_not_found", "message": "key key_0123456789abcdef0123456789abcdef not found"}))]
pub struct ErrorBody {
    /// A stable, machine-readable code, e.g. `invalid_json`, `unauthorized`,
    /// `forbidden`, `key_not_found`, `identifier_taken`,
    /// `invalid_credentials`, `address_not_allowed`.
    pub error: String,
    /// What was wrong, for people: names the field and what is allowed.
    pub message: String,
}

/// An error response: status, stable code and message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// `WWW-Authenticate` challenge, for 401s.
    challenge: Option<&'static str>,
    /// `Retry-After`, in whole seconds, for 429s and 503s.
    retry_after: Option<u64>,
    /// Whether to close the connection after this answer.
    close: bool,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            challenge: None,
            retry_after: None,
            close: false,
        }
    }

    /// This error, and the connection closed after it.
    pub(crate) fn closing(mut self) -> Self {
        self.close = true;
        self
    }

    /// 429: too many failed attempts from this address; try again after
    /// `retry_after` (rounded up to whole seconds, at least one).
    pub(crate) fn too_many(retry_after: time::Duration) -> Self {
        let seconds = u64::try_from(retry_after.whole_seconds()).unwrap_or(0)
            + u64::from(retry_after.subsec_nanoseconds() > 0);
        ApiError {
            retry_after: Some(seconds.max(1)),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "throttled",
                "too many failed attempts from this address: try again later",
            )
        }
    }

    /// 400: the request is malformed or breaks a rule.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401 `invalid_credentials`, saying what to send.
    pub(crate) fn invalid_credentials(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_credentials", message)
    }

    /// 413: the body is over `limit` bytes.
    pub(crate) fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than {limit} bytes, the most this server accepts"),
        )
        .closing()
    }

    /// 401 asking for the admin token.
    pub(crate) fn unauthorized(message: impl Into<String>) -> Self {
        ApiError {
            challenge: Some("Bearer realm=\"apikeys\""),
            ..Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
        }
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Adds a `WWW-Authenticate` challenge.
    pub(crate) fn with_challenge(mut self, challenge: &'static str) -> Self {
        self.challenge = Some(challenge);
        self
    }

    pub(crate) fn store_failed(e: &StoreError) -> Self {
        // The backend's error goes to the log (it may name files or hosts),
        // not to the caller. Store errors never hold secrets.
        tracing::error!(error = %e, "store failed");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_unavailable",
            "the key store failed; try again later",
        )
    }

    pub(crate) fn internal(what: &str) -> Self {
        tracing::error!(what, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server's log",
        )
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        use StatusCode as S;
        let (status, code) = match &e {
            Error::InvalidCredential(_) => (S::BAD_REQUEST, "invalid_credential"),
            Error::InvalidWhitelist(_) => (S::BAD_REQUEST, "invalid_whitelist"),
            Error::InvalidGrace(_) => (S::BAD_REQUEST, "invalid_grace"),
            Error::ParentNotMaster { .. } => (S::BAD_REQUEST, "parent_not_master"),
            Error::CreationOutOfRange(_) => (S::BAD_REQUEST, "invalid_created_at"),
            Error::NothingToChange => (S::BAD_REQUEST, "nothing_to_change"),
            Error::Forbidden { .. } => (S::FORBIDDEN, "forbidden"),
            Error::AccountNotFound(_) => (S::NOT_FOUND, "account_not_found"),
            Error::KeyNotFound(_) => (S::NOT_FOUND, "key_not_found"),
            Error::IdentifierTaken(_) => (S::CONFLICT, "identifier_taken"),
            Error::ChannelAlreadyActive { .. } => (S::CONFLICT, "channel_already_active"),
            Error::RestKeyLimit { .. } => (S::CONFLICT, "rest_key_limit"),
            Error::ConcurrentChange(_) => (S::CONFLICT, "concurrent_change"),
            Error::Store(StoreError::NotFound(_)) => (S::NOT_FOUND, "not_found"),
            Error::Store(StoreError::AlreadyExists(_)) => (S::CONFLICT, "already_exists"),
            Error::Store(StoreError::Conflict { .. }) => (S::CONFLICT, "concurrent_change"),
            Error::Store(store) => return ApiError::store_failed(store),
            Error::Hashing(h) => return ApiError::internal(&h.to_string()),
            other => return ApiError::internal(&other.to_string()),
        };
        // Domain messages say what was wrong and what is allowed, and never
        // hold a secret (the domain's own tests check this).
        ApiError::new(status, code, e.to_string())
    }
}

impl From<crate::facade::Busy> for ApiError {
    fn from(busy: crate::facade::Busy) -> Self {
        use crate::facade::Busy;
        match busy {
            Busy::Argon2Lane { retry_after } => ApiError {
                retry_after: Some(retry_after.as_secs().max(1)),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    "the server is busy checking secrets: try again shortly",
                )
            },
            Busy::Address { retry_after } => ApiError {
                retry_after: Some(retry_after.as_secs().max(1)),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "throttled",
                    "too many checks in progress from this address: wait for them to finish",
                )
            },
            other => ApiError::internal(&other.to_string()),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match &e {
            AuthError::InvalidCredentials(_) => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "invalid credentials",
            ),
            AuthError::AddressNotAllowed { client, .. } => ApiError::new(
                StatusCode::FORBIDDEN,
                "address_not_allowed",
                format!("address not allowed: {client} is outside this key's IP whitelist"),
            ),
            AuthError::Throttled { retry_after } => ApiError::too_many(*retry_after),
            AuthError::Unavailable(store) => ApiError::store_failed(store),
            _ => ApiError::internal(&e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code.to_owned(),
            message: self.message,
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(challenge) = self.challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        if self.close {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

//! Every error the API answers: `{"error": stable_code, "message": text}`
//! with a status that says whose fault it was. Messages name what was wrong
//! and what is allowed, and never hold a secret.

use apikeys::{AccountPolicyError, AuthError, Error, StoreError};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// Declares [`ErrorCode`] and its list [`ErrorCode::ALL`] from one table:
/// every code the API can answer is a variant, so the code can produce no
/// other, and the OpenAPI document's enum is generated from the same type.
macro_rules! error_codes {
    ($($(#[$doc:meta])* $variant:ident => $code:literal,)*) => {
        /// Every error code the API answers (the `error` field of
        /// [`ErrorBody`]): stable, machine-readable.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        #[non_exhaustive]
        pub enum ErrorCode {
            $($(#[$doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, in the order of the table.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),*];

            /// The code's text, as the `error` field carries it.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                }
            }
        }
    };
}

error_codes! {
    /// The body is not JSON.
    InvalidJson => "invalid_json",
    /// The JSON body has a missing, unknown or ill-typed field, or breaks a
    /// rule of the request's shape.
    InvalidBody => "invalid_body",
    /// The path could not be read.
    InvalidPath => "invalid_path",
    /// An account or key id is malformed.
    InvalidId => "invalid_id",
    /// A query parameter is malformed or out of range.
    InvalidQuery => "invalid_query",
    /// A header is malformed (e.g. `If-Match`).
    InvalidHeader => "invalid_header",
    /// An IP address to explain is malformed.
    InvalidAddress => "invalid_address",
    /// A channel code is unknown.
    InvalidChannel => "invalid_channel",
    /// An identifier, secret or label breaks a rule.
    InvalidCredential => "invalid_credential",
    /// A whitelist entry is bad, or there are too many.
    InvalidWhitelist => "invalid_whitelist",
    /// A grace period cannot be granted.
    InvalidGrace => "invalid_grace",
    /// A sub-account's parent is itself a sub-account.
    ParentNotMaster => "parent_not_master",
    /// A creation instant is out of range.
    InvalidCreatedAt => "invalid_created_at",
    /// An external id is empty, over 128 characters, holds a control character,
    /// or starts or ends with whitespace.
    InvalidExternalId => "invalid_external_id",
    /// A change names nothing to change.
    NothingToChange => "nothing_to_change",
    /// A key's expiry cannot be set: not in the future, past the longest
    /// lifetime that applies, too far, or cleared where one applies.
    InvalidExpiry => "invalid_expiry",
    /// An account policy breaks a rule (a sub-account's holds only a
    /// whitelist; a lifetime out of bounds).
    InvalidAccountPolicy => "invalid_account_policy",
    /// A dormancy period (`days`) out of its bounds.
    InvalidDays => "invalid_days",
    /// A header that identifies or frames a request is given twice.
    DuplicateHeader => "duplicate_header",
    /// A body is framed both by length and by chunks.
    AmbiguousLength => "ambiguous_length",
    /// A forwarding header from a trusted proxy is malformed.
    InvalidForwardedFor => "invalid_forwarded_for",
    /// No or wrong admin token.
    Unauthorized => "unauthorized",
    /// Credentials refused.
    InvalidCredentials => "invalid_credentials",
    /// The acting account may not do this.
    Forbidden => "forbidden",
    /// A sub-account's master does not allow its sub-accounts this channel.
    ChannelNotAllowed => "channel_not_allowed",
    /// The client's address is outside the key's whitelist.
    AddressNotAllowed => "address_not_allowed",
    /// No such account (or one the actor may not see).
    AccountNotFound => "account_not_found",
    /// No such key (or one the actor may not see).
    KeyNotFound => "key_not_found",
    /// No such route, or a thing the store no longer holds.
    NotFound => "not_found",
    /// The method is not served on this path.
    MethodNotAllowed => "method_not_allowed",
    /// The body did not arrive in time.
    RequestTimeout => "request_timeout",
    /// The identifier is taken.
    IdentifierTaken => "identifier_taken",
    /// Another account carries the external id.
    ExternalIdTaken => "external_id_taken",
    /// The channel already has its key.
    ChannelAlreadyActive => "channel_already_active",
    /// The account holds the most REST keys allowed.
    RestKeyLimit => "rest_key_limit",
    /// The key kept changing under the change.
    ConcurrentChange => "concurrent_change",
    /// A create-if-absent write found the thing there.
    AlreadyExists => "already_exists",
    /// The dormancy action is off: the server's policy does not set
    /// `disable_dormant_legacy_defaults_after`.
    DormancyActionOff => "dormancy_action_off",
    /// `If-Match` names a version the key is no longer at: nothing written.
    PreconditionFailed => "precondition_failed",
    /// The body is over the limit.
    PayloadTooLarge => "payload_too_large",
    /// The body is not `application/json`.
    UnsupportedMediaType => "unsupported_media_type",
    /// Too many attempts from this address.
    Throttled => "throttled",
    /// The store failed.
    StoreUnavailable => "store_unavailable",
    /// The argon2 lane is full.
    Busy => "busy",
    /// A portal session's `return_url` is not an absolute http(s) URL.
    InvalidReturnUrl => "invalid_return_url",
    /// A portal-session request's `Host` cannot make the link's origin.
    InvalidHost => "invalid_host",
    /// `X-Acting-Account` sent with a portal session, which acts as its own
    /// account.
    ActingAccountWithSession => "acting_account_with_session",
    /// The portal session has ended (signed out or idle too long).
    SessionEnded => "session_ended",
    /// A change made with a portal session lacks its CSRF token.
    CsrfFailed => "csrf_failed",
    /// A bug: see the server's log.
    Internal => "internal",
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"error": "key_not_found", "message": "key key_0123456789abcdef0123456789abcdef not found"}))]
pub struct ErrorBody {
    /// A stable, machine-readable code: one of [`ErrorCode`].
    pub error: ErrorCode,
    /// What was wrong, for people: names the field and what is allowed.
    pub message: String,
}

/// An error response: status, stable code and message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: ErrorCode,
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
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
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
                ErrorCode::Throttled,
                "too many failed attempts from this address: try again later",
            )
        }
    }

    /// 400: the request is malformed or breaks a rule.
    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401 `invalid_credentials`, saying what to send.
    pub(crate) fn invalid_credentials(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidCredentials,
            message,
        )
    }

    /// 413: the body is over `limit` bytes.
    pub(crate) fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!("the body is larger than {limit} bytes, the most this server accepts"),
        )
        .closing()
    }

    /// 401 asking for the admin token.
    pub(crate) fn unauthorized(message: impl Into<String>) -> Self {
        ApiError {
            challenge: Some("Bearer realm=\"apikeys\""),
            ..Self::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message)
        }
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code.as_str()
    }

    /// The stable code, as its variant.
    pub fn error_code(&self) -> ErrorCode {
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
            ErrorCode::StoreUnavailable,
            "the key store failed; try again later",
        )
    }

    pub(crate) fn internal(what: &str) -> Self {
        tracing::error!(what, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "internal error; see the server's log",
        )
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        use StatusCode as S;
        let (status, code) = match &e {
            Error::InvalidCredential(_) => (S::BAD_REQUEST, ErrorCode::InvalidCredential),
            Error::InvalidWhitelist(_) => (S::BAD_REQUEST, ErrorCode::InvalidWhitelist),
            Error::InvalidGrace(_) => (S::BAD_REQUEST, ErrorCode::InvalidGrace),
            Error::ParentNotMaster { .. } => (S::BAD_REQUEST, ErrorCode::ParentNotMaster),
            Error::CreationOutOfRange(_) => (S::BAD_REQUEST, ErrorCode::InvalidCreatedAt),
            Error::InvalidExternalId(_) => (S::BAD_REQUEST, ErrorCode::InvalidExternalId),
            Error::NothingToChange => (S::BAD_REQUEST, ErrorCode::NothingToChange),
            Error::InvalidExpiry(_) => (S::BAD_REQUEST, ErrorCode::InvalidExpiry),
            // A sub-account changing its own policy is a matter of who may,
            // not of what was asked: 403 like every other refusal of the
            // actor.
            Error::InvalidAccountPolicy(AccountPolicyError::SetBySubAccount(_)) => {
                (S::FORBIDDEN, ErrorCode::Forbidden)
            }
            Error::InvalidAccountPolicy(_) => (S::BAD_REQUEST, ErrorCode::InvalidAccountPolicy),
            Error::InvalidDormancy(_) => (S::BAD_REQUEST, ErrorCode::InvalidDays),
            Error::ChannelNotAllowed { .. } => (S::FORBIDDEN, ErrorCode::ChannelNotAllowed),
            // The request is well formed; the server's configuration does
            // not allow it: a conflict with its state, not bad input.
            Error::DormancyActionOff => (S::CONFLICT, ErrorCode::DormancyActionOff),
            Error::Forbidden { .. } => (S::FORBIDDEN, ErrorCode::Forbidden),
            Error::AccountNotFound(_) => (S::NOT_FOUND, ErrorCode::AccountNotFound),
            // What is missing is an account, as for a lookup by its id: one
            // code for both, and another's account looks alike.
            Error::ExternalIdNotFound(_) => (S::NOT_FOUND, ErrorCode::AccountNotFound),
            Error::KeyNotFound(_) => (S::NOT_FOUND, ErrorCode::KeyNotFound),
            Error::IdentifierTaken(_) => (S::CONFLICT, ErrorCode::IdentifierTaken),
            Error::ExternalIdTaken(_) => (S::CONFLICT, ErrorCode::ExternalIdTaken),
            Error::ChannelAlreadyActive { .. } => (S::CONFLICT, ErrorCode::ChannelAlreadyActive),
            Error::RestKeyLimit { .. } => (S::CONFLICT, ErrorCode::RestKeyLimit),
            Error::ConcurrentChange(_) => (S::CONFLICT, ErrorCode::ConcurrentChange),
            Error::Store(StoreError::NotFound(_)) => (S::NOT_FOUND, ErrorCode::NotFound),
            Error::Store(StoreError::AlreadyExists(_)) => (S::CONFLICT, ErrorCode::AlreadyExists),
            Error::Store(StoreError::Conflict { .. }) => (S::CONFLICT, ErrorCode::ConcurrentChange),
            Error::StaleVersion { .. } => (S::PRECONDITION_FAILED, ErrorCode::PreconditionFailed),
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
                    ErrorCode::Busy,
                    "the server is busy checking secrets: try again shortly",
                )
            },
            Busy::Address { retry_after } => ApiError {
                retry_after: Some(retry_after.as_secs().max(1)),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    ErrorCode::Throttled,
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
                ErrorCode::InvalidCredentials,
                "invalid credentials",
            ),
            AuthError::AddressNotAllowed { client, .. } => ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::AddressNotAllowed,
                // Which list refused (the key's, its account's, its master's)
                // is for the server's log, not the caller.
                format!(
                    "address not allowed: {client} is outside an IP whitelist this key must pass"
                ),
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
            error: self.code,
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

/// The answers every management operation may give whatever it does, for
/// the OpenAPI document: a malformed id or header (400), no or a wrong
/// admin token (401), a declared body over the limit (413), too many wrong
/// admin tokens from this address (429, with `Retry-After`), the store
/// failing (503).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Documentation only: the answers are `ApiError`s.
pub(crate) enum AdminErrors {
    /// 400.
    #[response(
        status = 400,
        description = "Malformed: an id, `X-Acting-Account`, a header given twice, a body framed twice"
    )]
    BadRequest(ErrorBody),
    /// 401.
    #[response(
        status = 401,
        description = "No or wrong admin token",
        headers(("WWW-Authenticate" = String, description = "Bearer realm=\"apikeys\""))
    )]
    Unauthorized(ErrorBody),
    /// 413.
    #[response(
        status = 413,
        description = "A declared body over the limit (64 KiB by default)"
    )]
    PayloadTooLarge(ErrorBody),
    /// 429.
    #[response(
        status = 429,
        description = "Too many wrong admin tokens from this address: try again later",
        headers(("Retry-After" = u64, description = "Seconds to wait"))
    )]
    Throttled(ErrorBody),
    /// 503.
    #[response(
        status = 503,
        description = "The key store failed, or the server is busy hashing secrets",
        headers(("Retry-After" = Option<u64>, description = "Seconds to wait, when busy"))
    )]
    Unavailable(ErrorBody),
}

/// The answers of an operation reading a JSON body, for the OpenAPI
/// document: a body too slow (408) and one that is not JSON (415).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Documentation only: the answers are `ApiError`s.
pub(crate) enum BodyErrors {
    /// 408.
    #[response(status = 408, description = "The body did not arrive in time")]
    RequestTimeout(ErrorBody),
    /// 415.
    #[response(status = 415, description = "The body is not `application/json`")]
    UnsupportedMediaType(ErrorBody),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variant is in the list once, and its text is what the body
    /// carries.
    #[test]
    fn the_list_of_codes_is_whole() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "{code} twice");
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::json!(code.as_str())
            );
            // Exhaustive: a new variant must be added here, and to the list.
            match code {
                ErrorCode::InvalidJson
                | ErrorCode::InvalidBody
                | ErrorCode::InvalidPath
                | ErrorCode::InvalidId
                | ErrorCode::InvalidQuery
                | ErrorCode::InvalidHeader
                | ErrorCode::InvalidAddress
                | ErrorCode::InvalidChannel
                | ErrorCode::InvalidCredential
                | ErrorCode::InvalidWhitelist
                | ErrorCode::InvalidGrace
                | ErrorCode::ParentNotMaster
                | ErrorCode::InvalidCreatedAt
                | ErrorCode::InvalidExternalId
                | ErrorCode::NothingToChange
                | ErrorCode::InvalidExpiry
                | ErrorCode::InvalidAccountPolicy
                | ErrorCode::InvalidDays
                | ErrorCode::ChannelNotAllowed
                | ErrorCode::DormancyActionOff
                | ErrorCode::DuplicateHeader
                | ErrorCode::AmbiguousLength
                | ErrorCode::InvalidForwardedFor
                | ErrorCode::Unauthorized
                | ErrorCode::InvalidCredentials
                | ErrorCode::Forbidden
                | ErrorCode::AddressNotAllowed
                | ErrorCode::AccountNotFound
                | ErrorCode::KeyNotFound
                | ErrorCode::NotFound
                | ErrorCode::MethodNotAllowed
                | ErrorCode::RequestTimeout
                | ErrorCode::IdentifierTaken
                | ErrorCode::ExternalIdTaken
                | ErrorCode::ChannelAlreadyActive
                | ErrorCode::RestKeyLimit
                | ErrorCode::ConcurrentChange
                | ErrorCode::AlreadyExists
                | ErrorCode::PreconditionFailed
                | ErrorCode::PayloadTooLarge
                | ErrorCode::UnsupportedMediaType
                | ErrorCode::Throttled
                | ErrorCode::StoreUnavailable
                | ErrorCode::Busy
                | ErrorCode::Internal
                | ErrorCode::InvalidReturnUrl
                | ErrorCode::InvalidHost
                | ErrorCode::ActingAccountWithSession
                | ErrorCode::SessionEnded
                | ErrorCode::CsrfFailed => {}
            }
        }
        assert_eq!(seen.len(), 50);
    }

    /// Every domain error has a code and a status; none is a 500 but the
    /// hashing or policy failures of a misconfigured service.
    #[test]
    fn stale_versions_are_412() {
        let key: apikeys::KeyId = "key_0123456789abcdef0123456789abcdef".parse().unwrap();
        let e = ApiError::from(Error::StaleVersion {
            key,
            expected: vec![1],
            current: 2,
        });
        assert_eq!(
            (e.status(), e.error_code()),
            (
                StatusCode::PRECONDITION_FAILED,
                ErrorCode::PreconditionFailed
            )
        );
    }
}

/// The answers the router's guard gives any request before its handler
/// runs, for the OpenAPI document: a header that identifies or frames the
/// request given twice, or a body framed twice (400), and a declared body
/// over the limit (413).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Documentation only: the answers are `ApiError`s.
pub(crate) enum GuardErrors {
    /// 400.
    #[response(
        status = 400,
        description = "A header given twice, or a body framed both ways"
    )]
    BadRequest(ErrorBody),
    /// 413.
    #[response(status = 413, description = "A declared body over the limit")]
    PayloadTooLarge(ErrorBody),
}

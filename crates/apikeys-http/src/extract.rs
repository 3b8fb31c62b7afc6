//! Extractors whose rejections answer in the API's error shape: axum's own
//! answer in plain text, with statuses (422) the API does not use. They are
//! public, so that an embedder's own routes refuse bad input with the same
//! messages.

use crate::error::ApiError;
use crate::error::ErrorCode;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::error::Category;
use std::fmt::Display;
use std::str::FromStr;

/// A JSON body. Malformed JSON, a missing or wrong field, an unknown field
/// and a wrong content type are 400 (415 for the content type), a body over
/// the limit is 413, a body that does not arrive within the deadline 408,
/// each with a message naming the problem.
///
/// The limit and the deadline are the router's (`Config::body_limit` and
/// `Config::body_timeout`) on its routes; on an embedder's own routes,
/// axum's `DefaultBodyLimit` and the default deadline of 10 s, unless the
/// routes carry a [`BodyLimits`] extension.
///
/// Decision: read with `serde_json` directly rather than through
/// `axum::Json`, which parses the content type as a full MIME type and
/// tracks the path of every value it reads: both are visible in the cost of
/// `POST /v1/authenticate`, the hot path. serde_json's own messages already
/// name the field and the position ("missing field `channel` at line 1
/// column 30").
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

/// The body limit and deadline [`ApiJson`] applies, when a request carries
/// them as an extension (the router's guard puts its own on every request).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyLimits {
    /// The largest body, in bytes.
    pub limit: usize,
    /// How long the body may take to arrive.
    pub timeout: std::time::Duration,
}

impl Default for BodyLimits {
    /// 2 MiB (axum's default limit) and 10 s.
    fn default() -> Self {
        BodyLimits {
            limit: 2 * 1024 * 1024,
            timeout: std::time::Duration::from_secs(10),
        }
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
                "expected a JSON body with `Content-Type: application/json`",
            ));
        }
        let limits = req
            .extensions()
            .get::<BodyLimits>()
            .copied()
            .unwrap_or_default();
        let body = tokio::time::timeout(limits.timeout, Bytes::from_request(req, state))
            .await
            .map_err(|_| body_too_slow(limits.timeout))?
            .map_err(|rejection| body_rejection(&rejection, limits.limit))?;
        serde_json::from_slice(&body)
            .map(ApiJson)
            .map_err(|e| match e.classify() {
                // serde's messages name the field: "missing field `channel`",
                // "unknown field `foo`, expected one of ...", "invalid type: ...".
                Category::Data => ApiError::bad_request(ErrorCode::InvalidBody, e.to_string()),
                Category::Syntax | Category::Eof | Category::Io => {
                    ApiError::bad_request(ErrorCode::InvalidJson, e.to_string())
                }
            })
    }
}

/// `application/json`, or any `application/…+json`, with or without
/// parameters (`; charset=utf-8`), in any case.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json")
            || subtype.len() > 5
                && subtype
                    .get(subtype.len() - 5..)
                    .is_some_and(|suffix| suffix.eq_ignore_ascii_case("+json")))
}

/// 408, and the connection closed: a client that trickles its body is not
/// waited for, and what it still sends is not read.
fn body_too_slow(deadline: std::time::Duration) -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        ErrorCode::RequestTimeout,
        format!(
            "the body did not arrive within {} s",
            deadline.as_secs_f64()
        ),
    )
    .closing()
}

fn body_rejection(rejection: &BytesRejection, limit: usize) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!("the body is larger than {limit} bytes, the most this server accepts"),
        )
    } else {
        ApiError::bad_request(
            ErrorCode::InvalidBody,
            format!("the body could not be read: {}", rejection.body_text()),
        )
    }
}

/// A single path parameter parsed with `FromStr` (account and key ids): a
/// malformed one is a 400 naming the expected shape, not a 404.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: FromStr,
    T::Err: Display,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(ErrorCode::InvalidPath, e.body_text()))?;
        raw.parse::<T>()
            .map(ApiPath)
            .map_err(|e| ApiError::bad_request(ErrorCode::InvalidId, e.to_string()))
    }
}

/// Query parameters; a bad one is a 400 naming it.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(ApiQuery(value)),
            Err(e) => Err(ApiError::bad_request(
                ErrorCode::InvalidQuery,
                e.body_text(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_type(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn json_content_types() {
        for yes in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            " application/json ;charset=UTF-8",
            "application/problem+json",
            "application/vnd.api+JSON",
        ] {
            assert!(is_json(&with_type(yes)), "{yes}");
        }
        for no in [
            "text/plain",
            "text/json",
            "application/jsonx",
            "application/x-www-form-urlencoded",
            "application/+json",
            "application",
            "json",
            "",
        ] {
            assert!(!is_json(&with_type(no)), "{no}");
        }
        assert!(!is_json(&HeaderMap::new()));
    }
}

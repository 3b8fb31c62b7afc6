//! Health, the OpenAPI document, the JSON answers for unknown routes and
//! methods, and the request log.

use crate::dto::Health;
use crate::error::ApiError;
use crate::error::ErrorCode;
use crate::extract::BodyLimits;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::Instant;

/// Liveness: answers without touching the store.
#[utoipa::path(
    get, path = "/healthz", tag = "meta",
    responses(
        crate::error::GuardErrors,
        (status = 200, description = "The server is up", body = Health),
    )
)]
pub(crate) async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// This API's OpenAPI document, generated from the handlers and their types.
#[utoipa::path(
    get, path = "/openapi.json", tag = "meta",
    responses(
        crate::error::GuardErrors,
        (status = 200, description = "The OpenAPI document", content_type = "application/json"),
    )
)]
pub(crate) async fn openapi_json(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.openapi_json().to_vec(),
    )
        .into_response()
}

pub(crate) async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
        format!(
            "no route for {method} {}: see /openapi.json for the routes",
            uri.path()
        ),
    )
}

pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        format!(
            "{method} is not allowed on {}: see /openapi.json for the methods",
            uri.path()
        ),
    )
}

/// The headers a request may carry once only: a second copy would be read
/// differently by different layers (a proxy, this server), so the request
/// is refused naming it.
const SINGLE_HEADERS: [header::HeaderName; 4] = [
    header::AUTHORIZATION,
    header::HeaderName::from_static(crate::admin::ACTING_ACCOUNT_HEADER),
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
];

/// Refuses, before any handler reads anything, requests that are ambiguous
/// or too big: a header that identifies or frames the request given twice
/// (400 naming it), a body framed by both `Transfer-Encoding` and
/// `Content-Length` (400: request smuggling's favourite), and a declared
/// `Content-Length` over the body limit (413 at once, the body unread and
/// the connection closed).
pub(crate) async fn guard_request(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let headers = req.headers();
    for name in &SINGLE_HEADERS {
        if headers.get_all(name).iter().nth(1).is_some() {
            return ApiError::bad_request(
                ErrorCode::DuplicateHeader,
                format!(
                    "the {} header is given more than once: send it once",
                    display_name(name)
                ),
            )
            .closing()
            .into_response();
        }
    }
    if headers.contains_key(header::TRANSFER_ENCODING)
        && headers.contains_key(header::CONTENT_LENGTH)
    {
        return ApiError::bad_request(
            ErrorCode::AmbiguousLength,
            "the request has both Transfer-Encoding and Content-Length: send one",
        )
        .closing()
        .into_response();
    }
    let limit = state.config().body_limit;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return ApiError::payload_too_large(limit).into_response();
    }
    req.extensions_mut().insert(BodyLimits {
        limit,
        timeout: state.config().body_timeout,
    });
    next.run(req).await
}

/// A header's name as people write it.
fn display_name(name: &header::HeaderName) -> &'static str {
    match name.as_str() {
        "authorization" => "Authorization",
        "x-acting-account" => "X-Acting-Account",
        "content-length" => "Content-Length",
        _ => "Transfer-Encoding",
    }
}

/// A path as the log may show it: a portal link's one-time token (the
/// segment after `/session/`, but for the sign-out's `end`) is replaced.
fn loggable_path(path: &str) -> String {
    match path.split_once("/session/") {
        Some((head, tail)) if tail != "end" && !tail.is_empty() => {
            format!("{head}/session/[token]")
        }
        _ => path.to_owned(),
    }
}

/// Every answer to a request that presents credentials (the admin token, a
/// REST key's Basic credentials or token) is `Cache-Control: no-store`: it
/// may show a secret (a generated one, a token) or an account's keys, and no
/// cache on the way may keep it. (Answers to a portal session get the same
/// from the page's module.)
pub(crate) async fn no_store_with_credentials(req: Request, next: Next) -> Response {
    let with_credentials = req.headers().contains_key(header::AUTHORIZATION);
    let mut response = next.run(req).await;
    if with_credentials {
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            axum::http::HeaderValue::from_static("no-store"),
        );
    }
    response
}

/// Logs each request's method, path, status and duration at debug level.
/// Never the query string: the HTTP channel carries a password in it; nor a
/// portal link's token.
pub(crate) async fn log_request(req: Request, next: Next) -> Response {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return next.run(req).await;
    }
    let method = req.method().clone();
    let path = loggable_path(req.uri().path());
    let start = Instant::now();
    let response = next.run(req).await;
    tracing::debug!(
        %method,
        %path,
        status = response.status().as_u16(),
        micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX),
        "request"
    );
    response
}

#[cfg(test)]
mod tests {
    #[test]
    fn link_tokens_never_reach_the_log() {
        use super::loggable_path;
        assert_eq!(
            loggable_path("/ui/session/ak_secret"),
            "/ui/session/[token]"
        );
        assert_eq!(loggable_path("/p/ui/session/x/y"), "/p/ui/session/[token]");
        assert_eq!(loggable_path("/ui/session/end"), "/ui/session/end");
        assert_eq!(loggable_path("/v1/keys/key_1"), "/v1/keys/key_1");
    }
}

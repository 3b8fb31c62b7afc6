//! Authentication, the hot path: a JSON endpoint and the channels' own
//! styles (REST with Basic auth, HTTP with query parameters). No admin
//! token; the answer is "this account, this key" or a uniform refusal.

use crate::accounts::parse_channel;
use crate::credentials_in::{Found, basic_credentials, query_credentials};
use crate::dto::{AuthenticateRequest, AuthenticatedView, HttpCredentials};
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::facade::CheckError;
use crate::layer::REST_CHALLENGE;
use crate::state::AppState;
use apikeys::{Channel, Secret};
use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use std::net::IpAddr;

/// The client's address: the TCP peer's, or, behind a trusted proxy, the
/// right-most untrusted forwarding entry (see [`crate::client_addr`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ClientAddr(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        state.client_address(parts).await.map(ClientAddr)
    }
}

/// Checks credentials through the service's async face (argon2-free step
/// first, argon2 only if needed, in its bounded lane) and logs the outcome
/// without the secret (nor the identifier of a refusal: people paste
/// secrets into it). Refusals are logged at most a few lines a second; the
/// service counts every one.
async fn check(
    state: &AppState,
    channel: Channel,
    identifier: String,
    secret: Secret,
    client: IpAddr,
) -> Result<Json<AuthenticatedView>, ApiError> {
    match state
        .keys()
        .authenticate(channel, identifier, secret, client)
        .await
    {
        Ok(who) => {
            tracing::debug!(%channel, key_id = %who.key_id, %client, matched = ?who.matched, "authenticated");
            Ok(Json(AuthenticatedView::from(who)))
        }
        Err(CheckError::Refused(e)) => {
            if let Some(left_out) = state.refusal_log().admit() {
                tracing::info!(%channel, %client, code = e.code(), reason = ?e.reason(), similar_lines_left_out = left_out, "authentication refused");
            }
            Err(e.into())
        }
        Err(CheckError::Busy(busy)) => Err(busy.into()),
    }
}

/// Checks credentials presented on a channel.
#[utoipa::path(
    post, path = "/v1/authenticate", tag = "authentication",
    request_body = AuthenticateRequest,
    responses(
        (status = 200, description = "This account, this key", body = AuthenticatedView),
        (status = 400, description = "Bad input (e.g. unknown channel)", body = ErrorBody),
        (status = 401, description = "`invalid_credentials`", body = ErrorBody),
        (status = 403, description = "`address_not_allowed`: right credentials, address outside the whitelist", body = ErrorBody),
        (status = 429, description = "`throttled`: too many failures from this address; see `Retry-After`", body = ErrorBody),
        (status = 503, description = "The store failed, or the argon2 lane is full (`busy`, with `Retry-After`): neither yes nor no", body = ErrorBody),
    )
)]
pub(crate) async fn authenticate(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    ApiJson(req): ApiJson<AuthenticateRequest>,
) -> Result<Json<AuthenticatedView>, ApiError> {
    let channel = parse_channel(&req.channel)?;
    check(&state, channel, req.identifier, req.secret.0, client).await
}

/// The REST channel's style: `Authorization: Basic base64(client_id:secret)`.
#[utoipa::path(
    get, path = "/v1/rest/whoami", tag = "authentication",
    responses(
        (status = 200, description = "This account, this key", body = AuthenticatedView),
        (status = 401, description = "`invalid_credentials` (also when Basic credentials are missing)", body = ErrorBody),
        (status = 403, description = "`address_not_allowed`", body = ErrorBody),
        (status = 429, description = "`throttled`: too many failures from this address; see `Retry-After`", body = ErrorBody),
        (status = 503, description = "The store failed, or the argon2 lane is full (`busy`)", body = ErrorBody),
    ),
    security(("rest_basic" = []))
)]
pub(crate) async fn rest_whoami(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: axum::http::HeaderMap,
) -> Result<Json<AuthenticatedView>, ApiError> {
    let result = match basic_credentials(&headers) {
        Found::Credentials(identifier, secret) => {
            check(&state, Channel::Rest, identifier, secret, client).await
        }
        Found::Nothing => Err(ApiError::invalid_credentials(
            "send `Authorization: Basic base64(client_id:secret)`",
        )),
        Found::Malformed(what) => Err(ApiError::invalid_credentials(what)),
    };
    result.map_err(|e| {
        if e.status() == StatusCode::UNAUTHORIZED {
            e.with_challenge(REST_CHALLENGE)
        } else {
            e
        }
    })
}

/// The HTTP channel's style: `?username=..&password=..`.
#[utoipa::path(
    get, path = "/http/whoami", tag = "authentication",
    params(HttpCredentials),
    responses(
        (status = 200, description = "This account, this key", body = AuthenticatedView),
        (status = 401, description = "`invalid_credentials` (also when a parameter is missing)", body = ErrorBody),
        (status = 403, description = "`address_not_allowed`", body = ErrorBody),
        (status = 429, description = "`throttled`: too many failures from this address; see `Retry-After`", body = ErrorBody),
        (status = 503, description = "The store failed, or the argon2 lane is full (`busy`)", body = ErrorBody),
    )
)]
pub(crate) async fn http_whoami(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    uri: axum::http::Uri,
) -> Result<Json<AuthenticatedView>, ApiError> {
    match query_credentials(uri.query()) {
        Found::Credentials(identifier, secret) => {
            check(&state, Channel::Http, identifier, secret, client).await
        }
        Found::Nothing | Found::Malformed(_) => Err(ApiError::invalid_credentials(
            "send `?username=<identifier>&password=<secret>`",
        )),
    }
}

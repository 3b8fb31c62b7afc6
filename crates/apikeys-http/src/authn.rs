//! Authentication, the hot path: a JSON endpoint and the channels' own
//! styles (REST with Basic auth, HTTP with query parameters). No admin
//! token; the answer is "this account, this key" or a uniform refusal.

use crate::accounts::parse_channel;
use crate::credentials_in::{Found, query_credentials, rest_credentials};
use crate::dto::{AuthenticateRequest, AuthenticatedView, HttpCredentials, TokenView};
use crate::error::{ApiError, ErrorBody};
use crate::extract::ApiJson;
use crate::facade::CheckError;
use crate::layer::REST_CHALLENGE;

/// The challenge of the token route, which takes Basic credentials only.
const BASIC_CHALLENGE: &str = "Basic realm=\"apikeys\"";
use crate::state::AppState;
use apikeys::{Authenticated, Channel, Secret};
use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::IntoResponse;
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
    let checked = state
        .keys()
        .authenticate(channel, identifier, secret, client)
        .await;
    answer(state, channel, client, checked).map(|who| Json(AuthenticatedView::from(who)))
}

/// REST credentials of either kind checked: Basic credentials, or a token.
async fn check_rest(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    client: IpAddr,
) -> Result<Authenticated, ApiError> {
    let checked = match rest_credentials(headers) {
        Found::Credentials(identifier, secret) => {
            state
                .keys()
                .authenticate(Channel::Rest, identifier, secret, client)
                .await
        }
        Found::Token(token) => state.keys().authenticate_token(token, client).await,
        Found::Nothing => {
            return Err(ApiError::invalid_credentials(
                "send `Authorization: Basic base64(client_id:secret)` or `Authorization: Bearer <token>`",
            )
            .with_challenge(REST_CHALLENGE));
        }
        Found::Malformed(what) => {
            return Err(ApiError::invalid_credentials(what).with_challenge(REST_CHALLENGE));
        }
    };
    answer(state, Channel::Rest, client, checked).map_err(|e| {
        if e.status() == StatusCode::UNAUTHORIZED {
            e.with_challenge(REST_CHALLENGE)
        } else {
            e
        }
    })
}

/// A check's outcome, logged (refusals at most a few lines a second; the
/// service counts every one), as the API answers it.
fn answer(
    state: &AppState,
    channel: Channel,
    client: IpAddr,
    checked: Result<Authenticated, CheckError>,
) -> Result<Authenticated, ApiError> {
    match checked {
        Ok(who) => {
            tracing::debug!(%channel, key_id = %who.key_id, %client, matched = ?who.matched, "authenticated");
            Ok(who)
        }
        Err(CheckError::Refused(e)) => {
            if let Some(left_out) = state.refusal_log().admit() {
                // Which whitelist refused is for the operator reading the
                // log; the caller gets only `address_not_allowed`.
                let list = match &e {
                    apikeys::AuthError::AddressNotAllowed { list, .. } => Some(list.code()),
                    _ => None,
                };
                tracing::info!(%channel, %client, code = e.code(), reason = ?e.reason(), list, similar_lines_left_out = left_out, "authentication refused");
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
        crate::error::GuardErrors,
        crate::error::BodyErrors,
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

/// The REST channel's style: `Authorization: Basic base64(client_id:secret)`,
/// or `Authorization: Bearer <token>` with a token from
/// `GET /v1/rest/authentication`.
#[utoipa::path(
    get, path = "/v1/rest/whoami", tag = "authentication",
    responses(
        crate::error::GuardErrors,
        (status = 200, description = "This account, this key", body = AuthenticatedView),
        (status = 401, description = "`invalid_credentials` (also when credentials are missing, or a token expired or was revoked)", body = ErrorBody),
        (status = 403, description = "`address_not_allowed`", body = ErrorBody),
        (status = 429, description = "`throttled`: too many failures from this address; see `Retry-After`", body = ErrorBody),
        (status = 503, description = "The store failed, or the argon2 lane is full (`busy`)", body = ErrorBody),
    ),
    security(("rest_basic" = []), ("rest_bearer" = []))
)]
pub(crate) async fn rest_whoami(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: axum::http::HeaderMap,
) -> Result<Json<AuthenticatedView>, ApiError> {
    check_rest(&state, &headers, client)
        .await
        .map(|who| Json(AuthenticatedView::from(who)))
}

/// Trades REST Basic credentials for a bearer token, as the provider's REST
/// API does: valid for the policy's token lifetime (1440 minutes by
/// default), dead at once when the key's credentials change or the key is
/// deleted. The token is in this answer only; only its digest is kept.
#[utoipa::path(
    get, path = "/v1/rest/authentication", tag = "authentication",
    responses(
        crate::error::GuardErrors,
        (status = 200, description = "A token", body = TokenView),
        (status = 401, description = "`invalid_credentials` (also when Basic credentials are missing)", body = ErrorBody),
        (status = 403, description = "`address_not_allowed`", body = ErrorBody),
        (status = 409, description = "`concurrent_change`: the key's credentials changed meanwhile; ask again", body = ErrorBody),
        (status = 429, description = "`throttled`: too many failures from this address; see `Retry-After`", body = ErrorBody),
        (status = 503, description = "The store failed, or the argon2 lane is full (`busy`)", body = ErrorBody),
    ),
    security(("rest_basic" = []))
)]
pub(crate) async fn rest_token(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: axum::http::HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    // Basic credentials only: a token does not buy another token.
    if matches!(rest_credentials(&headers), Found::Token(_)) {
        return Err(ApiError::invalid_credentials(
            "send `Authorization: Basic base64(client_id:secret)`: a token is traded for Basic credentials only",
        )
        .with_challenge(BASIC_CHALLENGE));
    }
    let who = check_rest(&state, &headers, client).await?;
    let issued = state
        .run(apikeys::Cost::Fast, move |k| k.issue_token(&who))
        .await??;
    let minutes = state.sync().policy().token_lifetime.whole_minutes();
    let view = TokenView {
        token: issued.token.expose_secret().to_owned(),
        schema: "Bearer",
        expires_in_minutes: minutes,
        expires_at: crate::dto::rfc3339(issued.expires_at),
    };
    Ok((
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        Json(view),
    )
        .into_response())
}

/// The HTTP channel's style: `?username=..&password=..`.
#[utoipa::path(
    get, path = "/http/whoami", tag = "authentication",
    params(HttpCredentials),
    responses(
        crate::error::GuardErrors,
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
        Found::Nothing | Found::Malformed(_) | Found::Token(_) => Err(
            ApiError::invalid_credentials("send `?username=<identifier>&password=<secret>`"),
        ),
    }
}

//! Authentication, the hot path: a JSON endpoint and the channels' own
//! styles (REST with Basic auth, HTTP with query parameters). No admin
//! token; the answer is "this account, this key" or a uniform refusal.

use crate::accounts::parse_channel;
use crate::dto::{AuthenticateRequest, AuthenticatedView, HttpCredentials};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiQuery};
use crate::state::{AppState, Lane};
use apikeys::{Channel, Check, Secret};
use axum::Json;
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use base64ct::{Base64, Encoding};
use std::net::{IpAddr, SocketAddr};

const BASIC_CHALLENGE: &str = "Basic realm=\"apikeys\"";

/// The client's address: the TCP peer's, or, when the server trusts a proxy
/// in front of it, the first `X-Forwarded-For` entry.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ClientAddr(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if state.trust_proxy()
            && let Some(value) = parts.headers.get("x-forwarded-for")
        {
            let first = value
                .to_str()
                .ok()
                .and_then(|v| v.split(',').next())
                .map(str::trim)
                .unwrap_or_default();
            return first.parse().map(ClientAddr).map_err(|_| {
                ApiError::bad_request(
                    "invalid_forwarded_for",
                    format!(
                        "X-Forwarded-For's first entry `{}` is not an IP address",
                        first.chars().take(64).collect::<String>()
                    ),
                )
            });
        }
        // axum's extractor, not the extension itself: it also finds the
        // address a test mocks with `MockConnectInfo`.
        ConnectInfo::<SocketAddr>::from_request_parts(parts, state)
            .await
            .map(|ConnectInfo(peer)| ClientAddr(peer.ip()))
            .map_err(|_| {
                ApiError::internal(
                    "no peer address: serve the router with `apikeys_http::serve` \
                     (into_make_service_with_connect_info)",
                )
            })
    }
}

/// Checks credentials and logs the outcome without the secret (nor the
/// identifier of a refusal: people paste secrets into it).
///
/// First the argon2-free check (a store lookup and a SHA-256, or the
/// verified-secret cache): on the event loop when the store is local
/// (`Config::inline_checks`), else in the fast lane. Only if the verdict
/// needs argon2 does the check go to the argon2 lane, which few run at once.
/// The domain decides that from the stored hash, not from the secret's
/// shape, which an attacker chooses.
async fn check(
    state: &AppState,
    channel: Channel,
    identifier: String,
    secret: Secret,
    client: IpAddr,
) -> Result<Json<AuthenticatedView>, ApiError> {
    let first = if state.inline_checks() {
        state
            .keys()
            .begin_authentication(channel, &identifier, secret.expose_secret(), client)
    } else {
        state
            .blocking(Lane::Fast, move |k| {
                k.begin_authentication(channel, &identifier, secret.expose_secret(), client)
            })
            .await?
    };
    let outcome = match first {
        Check::Done(outcome) => outcome,
        Check::NeedsArgon2(pending) => {
            state
                .blocking(Lane::Argon2, move |k| k.finish_authentication(pending))
                .await?
        }
    };
    match outcome {
        Ok(who) => {
            tracing::debug!(%channel, key_id = %who.key_id, %client, matched = ?who.matched, "authenticated");
            Ok(Json(AuthenticatedView::from(who)))
        }
        Err(e) => {
            tracing::info!(%channel, %client, code = e.code(), reason = ?e.reason(), "authentication refused");
            Err(e.into())
        }
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
        (status = 503, description = "The store failed: neither yes nor no", body = ErrorBody),
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
        (status = 503, description = "The store failed", body = ErrorBody),
    ),
    security(("rest_basic" = []))
)]
pub(crate) async fn rest_whoami(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: axum::http::HeaderMap,
) -> Result<Json<AuthenticatedView>, ApiError> {
    let result = async {
        let (identifier, secret) = basic_credentials(&headers)?;
        check(&state, Channel::Rest, identifier, secret, client).await
    }
    .await;
    result.map_err(|e| {
        if e.status() == StatusCode::UNAUTHORIZED {
            e.with_challenge(BASIC_CHALLENGE)
        } else {
            e
        }
    })
}

/// Splits `Basic base64(id:secret)`; the decoded text is held as a
/// [`Secret`] so that it is wiped on drop.
fn basic_credentials(headers: &axum::http::HeaderMap) -> Result<(String, Secret), ApiError> {
    let missing = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "send `Authorization: Basic base64(client_id:secret)`",
        )
    };
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(missing)?;
    let (scheme, encoded) = value.split_once(' ').ok_or_else(missing)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(missing());
    }
    let decoded = Base64::decode_vec(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .map(Secret::new)
        .ok_or_else(missing)?;
    let (identifier, secret) = decoded
        .expose_secret()
        .split_once(':')
        .ok_or_else(missing)?;
    Ok((identifier.to_owned(), Secret::new(secret)))
}

/// The HTTP channel's style: `?username=..&password=..`.
#[utoipa::path(
    get, path = "/http/whoami", tag = "authentication",
    params(HttpCredentials),
    responses(
        (status = 200, description = "This account, this key", body = AuthenticatedView),
        (status = 401, description = "`invalid_credentials` (also when a parameter is missing)", body = ErrorBody),
        (status = 403, description = "`address_not_allowed`", body = ErrorBody),
        (status = 503, description = "The store failed", body = ErrorBody),
    )
)]
pub(crate) async fn http_whoami(
    State(state): State<AppState>,
    ClientAddr(client): ClientAddr,
    ApiQuery(query): ApiQuery<HttpCredentials>,
) -> Result<Json<AuthenticatedView>, ApiError> {
    let (Some(identifier), Some(secret)) = (query.username, query.password) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "send `?username=<identifier>&password=<secret>`",
        ));
    };
    check(&state, Channel::Http, identifier, secret.0, client).await
}

//! One key: read it, change its credentials, its whitelist, delete it.

use crate::admin::Admin;
use crate::dto::{ChangeCredentialsRequest, KeyView, WhitelistBody, whitelist_view};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;
use apikeys::{Cost, CredentialChange, Grace, IdentifierChoice, KeyId, SecretChoice};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use time::Duration;

/// A key: never a secret or a hash.
#[utoipa::path(
    get, path = "/v1/keys/{key_id}", tag = "keys",
    params(
        ("key_id" = String, Path, description = "The key's id"),
        ("X-Acting-Account" = Option<String>, Header, description = "Act as this account"),
    ),
    responses(
        (status = 200, description = "The key", body = KeyView),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 403, description = "The acting account may not", body = ErrorBody),
        (status = 404, description = "No such key", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn get_key(
    State(state): State<AppState>,
    Admin(actor): Admin,
    ApiPath(id): ApiPath<KeyId>,
) -> Result<Json<KeyView>, ApiError> {
    let key = state.run(Cost::Fast, move |k| k.key(actor, id)).await??;
    Ok(Json(KeyView::from(&key)))
}

/// Deletes a key: its credentials stop working at once.
#[utoipa::path(
    delete, path = "/v1/keys/{key_id}", tag = "keys",
    params(
        ("key_id" = String, Path, description = "The key's id"),
        ("X-Acting-Account" = Option<String>, Header, description = "Act as this account"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 403, description = "The acting account may not", body = ErrorBody),
        (status = 404, description = "No such key", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn delete_key(
    State(state): State<AppState>,
    Admin(actor): Admin,
    ApiPath(id): ApiPath<KeyId>,
) -> Result<StatusCode, ApiError> {
    state
        .run(Cost::Fast, move |k| k.delete_key(actor, id))
        .await??;
    Ok(StatusCode::NO_CONTENT)
}

/// Changes a key's identifier and/or secret; the old ones stop working at
/// once unless `grace_seconds` keeps the previous secret alive a while.
/// `secret` is in the response only when it was regenerated.
#[utoipa::path(
    post, path = "/v1/keys/{key_id}/credentials", tag = "keys",
    request_body = ChangeCredentialsRequest,
    params(
        ("key_id" = String, Path, description = "The key's id"),
        ("X-Acting-Account" = Option<String>, Header, description = "Act as this account"),
    ),
    responses(
        (status = 200, description = "Changed; `secret` present if regenerated", body = KeyView),
        (status = 400, description = "Bad input, nothing to change, or a grace period that cannot be granted", body = ErrorBody),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 403, description = "The acting account may not", body = ErrorBody),
        (status = 404, description = "No such key", body = ErrorBody),
        (status = 409, description = "Identifier taken, or changed concurrently", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn change_credentials(
    State(state): State<AppState>,
    Admin(actor): Admin,
    ApiPath(id): ApiPath<KeyId>,
    ApiJson(req): ApiJson<ChangeCredentialsRequest>,
) -> Result<Json<KeyView>, ApiError> {
    let secret = match (req.secret, req.regenerate_secret) {
        (Some(_), true) => {
            return Err(ApiError::bad_request(
                "invalid_body",
                "give either `secret` (a chosen secret) or `regenerate_secret: true`, not both",
            ));
        }
        (Some(chosen), false) => Some(SecretChoice::Chosen(chosen.0)),
        (None, true) => Some(SecretChoice::Generate),
        (None, false) => None,
    };
    // The domain checks the grace period's bounds and names them.
    let change = CredentialChange {
        identifier: req.identifier.map(IdentifierChoice::Chosen),
        secret,
        grace: req
            .grace_seconds
            .map(|seconds| Grace::For(Duration::seconds(seconds))),
    };
    let cost = change.cost();
    let issued = state
        .run(cost, move |k| k.change_credentials(actor, id, change))
        .await??;
    Ok(Json(KeyView::from(issued)))
}

/// A key's IP whitelist, normalised.
#[utoipa::path(
    get, path = "/v1/keys/{key_id}/whitelist", tag = "whitelist",
    params(
        ("key_id" = String, Path, description = "The key's id"),
        ("X-Acting-Account" = Option<String>, Header, description = "Act as this account"),
    ),
    responses(
        (status = 200, description = "The whitelist (empty: any address)", body = WhitelistBody),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 403, description = "The acting account may not", body = ErrorBody),
        (status = 404, description = "No such key", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn get_whitelist(
    State(state): State<AppState>,
    Admin(actor): Admin,
    ApiPath(id): ApiPath<KeyId>,
) -> Result<Json<WhitelistBody>, ApiError> {
    let whitelist = state
        .run(Cost::Fast, move |k| k.whitelist(actor, id))
        .await??;
    Ok(Json(WhitelistBody {
        entries: whitelist_view(&whitelist),
    }))
}

/// Replaces a key's IP whitelist atomically; answers the normalised list.
#[utoipa::path(
    put, path = "/v1/keys/{key_id}/whitelist", tag = "whitelist",
    request_body = WhitelistBody,
    params(
        ("key_id" = String, Path, description = "The key's id"),
        ("X-Acting-Account" = Option<String>, Header, description = "Act as this account"),
    ),
    responses(
        (status = 200, description = "The normalised whitelist", body = WhitelistBody),
        (status = 400, description = "A bad entry (named), or too many", body = ErrorBody),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 403, description = "The acting account may not", body = ErrorBody),
        (status = 404, description = "No such key", body = ErrorBody),
        (status = 409, description = "Changed concurrently", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn put_whitelist(
    State(state): State<AppState>,
    Admin(actor): Admin,
    ApiPath(id): ApiPath<KeyId>,
    ApiJson(body): ApiJson<WhitelistBody>,
) -> Result<Json<WhitelistBody>, ApiError> {
    let entries = body
        .entries
        .iter()
        .map(|e| apikeys::whitelist::parse_entry(e))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::from(apikeys::Error::from(e)))?;
    let whitelist = state
        .run(Cost::Fast, move |k| k.set_whitelist(actor, id, entries))
        .await??;
    Ok(Json(WhitelistBody {
        entries: whitelist_view(&whitelist),
    }))
}

//! One key: read it, change its credentials, its label, its whitelist,
//! explain its whitelist, delete it. Every answer carrying the key carries
//! its `ETag`, and every change honours `If-Match` (see [`crate::versions`]).

use crate::accounts::parse_instant;
use crate::admin::Admin;
use crate::dto::{
    ChangeCredentialsRequest, ExplainQuery, ExplanationView, KeyPatch, KeyView,
    ListExplanationView, WhitelistBody, WhitelistPatch, whitelist_view,
};
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::extract::ApiQuery;
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;
use crate::versions::{IfMatch, etag_headers};
use apikeys::{
    AccessExplanation, Cost, CredentialChange, Grace, IdentifierChoice, KeyId, KeyUpdate,
    SecretChoice, WhitelistScope,
};
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use time::Duration;

/// A key: never a secret or a hash.
#[utoipa::path(
    get, path = "/v1/keys/{key_id}", tag = "keys",
    params(
        ("key_id" = String, Path, description = "The key's id", pattern = "^key_[0-9a-f]{32}$"),
        ("X-Acting-Account" = Option<String>, Header, description = "Act as this account", pattern = "^acc_[0-9a-f]{32}$"),
    ),
    responses(
        crate::error::AdminErrors,
        (status = 200, description = "The key", body = KeyView,
            headers(("ETag" = String, description = "The key's version, quoted"))),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such key", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn get_key(
    State(state): State<AppState>,
    Admin(actor): Admin,
    ApiPath(id): ApiPath<KeyId>,
) -> Result<(HeaderMap, Json<KeyView>), ApiError> {
    let key = state.run(Cost::Fast, move |k| k.key(actor, id)).await??;
    Ok((etag_headers(key.version), Json(KeyView::from(&key))))
}

/// Deletes a key: its credentials stop working at once.
#[utoipa::path(
    delete, path = "/v1/keys/{key_id}", tag = "keys",
    params(
        ("If-Match" = Option<String>, Header, description = "Change only if the key is at this version (its ETag), else 412", pattern = r#"^(\*|(W/)?"[!#-~]*"( *, *(W/)?"[!#-~]*")*)$"#),
        ("key_id" = String, Path, description = "The key's id", pattern = "^key_[0-9a-f]{32}$"),
        ("X-Acting-Account" = Option<String>, Header, description = "Act as this account", pattern = "^acc_[0-9a-f]{32}$"),
    ),
    responses(
        crate::error::AdminErrors,
        (status = 204, description = "Deleted"),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such key", body = ErrorBody),
        (status = 412, description = "If-Match names a version the key has left: nothing written", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn delete_key(
    State(state): State<AppState>,
    Admin(actor): Admin,
    ApiPath(id): ApiPath<KeyId>,
    IfMatch(precondition): IfMatch,
) -> Result<StatusCode, ApiError> {
    state
        .run(Cost::Fast, move |k| {
            k.delete_key_if(actor, id, precondition)
        })
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
        ("If-Match" = Option<String>, Header, description = "Change only if the key is at this version (its ETag), else 412", pattern = r#"^(\*|(W/)?"[!#-~]*"( *, *(W/)?"[!#-~]*")*)$"#),
        ("key_id" = String, Path, description = "The key's id", pattern = "^key_[0-9a-f]{32}$"),
        ("X-Acting-Account" = Option<String>, Header, description = "Act as this account", pattern = "^acc_[0-9a-f]{32}$"),
    ),
    responses(
        crate::error::AdminErrors,
        crate::error::BodyErrors,
        (status = 200, description = "Changed; `secret` present if regenerated", body = KeyView,
            headers(("ETag" = String, description = "The key's version, quoted"))),
        (status = 400, description = "Bad input, nothing to change, or a grace period that cannot be granted", body = ErrorBody),
        (status = 404, description = "No such key", body = ErrorBody),
        (status = 409, description = "Identifier taken, or changed concurrently", body = ErrorBody),
        (status = 412, description = "If-Match names a version the key has left: nothing written", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn change_credentials(
    State(state): State<AppState>,
    Admin(actor): Admin,
    ApiPath(id): ApiPath<KeyId>,
    IfMatch(precondition): IfMatch,
    ApiJson(req): ApiJson<ChangeCredentialsRequest>,
) -> Result<(HeaderMap, Json<KeyView>), ApiError> {
    let secret = match (req.secret, req.regenerate_secret) {
        (Some(_), true) => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidBody,
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
        .run(cost, move |k| {
            k.change_credentials_if(actor, id, change, precondition)
        })
        .await??;
    Ok((
        etag_headers(issued.key.version),
        Json(KeyView::from(issued)),
    ))
}

/// A key's IP whitelist, normalised.
#[utoipa::path(
    get, path = "/v1/keys/{key_id}/whitelist", tag = "whitelist",
    params(
        ("key_id" = String, Path, description = "The key's id", pattern = "^key_[0-9a-f]{32}$"),
        ("X-Acting-Account" = Option<String>, Header, description = "Act as this account", pattern = "^acc_[0-9a-f]{32}$"),
    ),
    responses(
        crate::error::AdminErrors,
        (status = 200, description = "The whitelist (empty: any address)", body = WhitelistBody,
            headers(("ETag" = String, description = "The key's version, quoted"))),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such key", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn get_whitelist(
    State(state): State<AppState>,
    Admin(actor): Admin,
    ApiPath(id): ApiPath<KeyId>,
) -> Result<(HeaderMap, Json<WhitelistBody>), ApiError> {
    // The key, not only its list: the answer carries the key's version.
    let key = state.run(Cost::Fast, move |k| k.key(actor, id)).await??;
    Ok(whitelist_answer(&key))
}

/// The whitelist of `key`, with the key's `ETag`.
fn whitelist_answer(key: &apikeys::ApiKey) -> (HeaderMap, Json<WhitelistBody>) {
    (
        etag_headers(key.version),
        Json(WhitelistBody {
            entries: whitelist_view(&key.whitelist),
        }),
    )
}

/// Whitelist entries from their text, or the domain's 400 naming the bad one.
/// Parses the entries a request lists. A request may list at most the
/// policy's number of entries, as its document says (`maxItems`), even when
/// some of them would merge: the domain counts the normalised list, the
/// request is bounded as sent.
pub(crate) fn parse_entries(
    state: &AppState,
    entries: &[String],
) -> Result<Vec<ipnet::IpNet>, ApiError> {
    let limit = state.sync().policy().max_whitelist_entries;
    if entries.len() > limit {
        return Err(ApiError::from(apikeys::Error::from(
            apikeys::whitelist::WhitelistError::TooManyListed {
                count: entries.len(),
                limit,
            },
        )));
    }
    entries
        .iter()
        .map(|e| apikeys::whitelist::parse_entry(e))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::from(apikeys::Error::from(e)))
}

/// Replaces a key's IP whitelist atomically; answers the normalised list.
#[utoipa::path(
    put, path = "/v1/keys/{key_id}/whitelist", tag = "whitelist",
    request_body = WhitelistBody,
    params(
        ("If-Match" = Option<String>, Header, description = "Change only if the key is at this version (its ETag), else 412", pattern = r#"^(\*|(W/)?"[!#-~]*"( *, *(W/)?"[!#-~]*")*)$"#),
        ("key_id" = String, Path, description = "The key's id", pattern = "^key_[0-9a-f]{32}$"),
        ("X-Acting-Account" = Option<String>, Header, description = "Act as this account", pattern = "^acc_[0-9a-f]{32}$"),
    ),
    responses(
        crate::error::AdminErrors,
        crate::error::BodyErrors,
        (status = 200, description = "The normalised whitelist", body = WhitelistBody,
            headers(("ETag" = String, description = "The key's version, quoted"))),
        (status = 400, description = "A bad entry (named), or too many", body = ErrorBody),
        (status = 404, description = "No such key", body = ErrorBody),
        (status = 409, description = "Changed concurrently", body = ErrorBody),
        (status = 412, description = "If-Match names a version the key has left: nothing written", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn put_whitelist(
    State(state): State<AppState>,
    Admin(actor): Admin,
    ApiPath(id): ApiPath<KeyId>,
    IfMatch(precondition): IfMatch,
    ApiJson(body): ApiJson<WhitelistBody>,
) -> Result<(HeaderMap, Json<WhitelistBody>), ApiError> {
    let entries = parse_entries(&state, &body.entries)?;
    let key = state
        .run(Cost::Fast, move |k| {
            k.set_whitelist_if(actor, id, entries, precondition)
        })
        .await??;
    Ok(whitelist_answer(&key))
}

/// Adds and removes whitelist entries in one change; answers the
/// normalised list. Removing an absent entry is no error.
#[utoipa::path(
    patch, path = "/v1/keys/{key_id}/whitelist", tag = "whitelist",
    request_body = WhitelistPatch,
    params(
        ("key_id" = String, Path, description = "The key's id", pattern = "^key_[0-9a-f]{32}$"),
        ("If-Match" = Option<String>, Header, description = "Change only if the key is at this version (its ETag), else 412", pattern = r#"^(\*|(W/)?"[!#-~]*"( *, *(W/)?"[!#-~]*")*)$"#),
        ("X-Acting-Account" = Option<String>, Header, description = "Act as this account", pattern = "^acc_[0-9a-f]{32}$"),
    ),
    responses(
        crate::error::AdminErrors,
        crate::error::BodyErrors,
        (status = 200, description = "The normalised whitelist", body = WhitelistBody,
            headers(("ETag" = String, description = "The key's new version, quoted"))),
        (status = 400, description = "A bad entry (named), too many, nothing to add or remove, or a bad If-Match", body = ErrorBody),
        (status = 404, description = "No such key", body = ErrorBody),
        (status = 409, description = "Changed concurrently, several times over", body = ErrorBody),
        (status = 412, description = "If-Match names a version the key has left: nothing written", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn patch_whitelist(
    State(state): State<AppState>,
    Admin(actor): Admin,
    ApiPath(id): ApiPath<KeyId>,
    IfMatch(precondition): IfMatch,
    ApiJson(body): ApiJson<WhitelistPatch>,
) -> Result<(HeaderMap, Json<WhitelistBody>), ApiError> {
    let add = parse_entries(&state, body.add.as_deref().unwrap_or_default())?;
    let remove = parse_entries(&state, body.remove.as_deref().unwrap_or_default())?;
    if add.is_empty() && remove.is_empty() {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidBody,
            "nothing to change: give at least one entry in `add` or `remove`",
        ));
    }
    let key = state
        .run(Cost::Fast, move |k| {
            k.edit_whitelist(actor, id, &add, &remove, precondition)
        })
        .await??;
    Ok(whitelist_answer(&key))
}

/// Whether an address would pass every whitelist that applies to the key
/// (its own, its account's account-wide list, and for a sub-account's key
/// its master's), which refuses it first, and why, in a sentence. Changes
/// nothing.
#[utoipa::path(
    get, path = "/v1/keys/{key_id}/whitelist/explain", tag = "whitelist",
    params(
        ("key_id" = String, Path, description = "The key's id", pattern = "^key_[0-9a-f]{32}$"),
        ExplainQuery,
        ("X-Acting-Account" = Option<String>, Header, description = "Act as this account", pattern = "^acc_[0-9a-f]{32}$"),
    ),
    responses(
        crate::error::AdminErrors,
        (status = 200, description = "The explanation", body = ExplanationView),
        (status = 400, description = "A malformed id or address", body = ErrorBody),
        (status = 404, description = "No such key", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn explain_whitelist(
    State(state): State<AppState>,
    Admin(actor): Admin,
    ApiPath(id): ApiPath<KeyId>,
    ApiQuery(query): ApiQuery<ExplainQuery>,
) -> Result<Json<ExplanationView>, ApiError> {
    let address: std::net::IpAddr = query.address.parse().map_err(|_| {
        ApiError::bad_request(
            ErrorCode::InvalidAddress,
            format!(
                "address `{}` is not an IPv4 or IPv6 address (examples: 203.0.113.7, 2001:db8::1)",
                query.address.chars().take(64).collect::<String>()
            ),
        )
    })?;
    let explanation = state
        .run(Cost::Fast, move |k| k.explain_access(actor, id, address))
        .await??;
    Ok(Json(explanation_view(address.to_canonical(), &explanation)))
}

/// The words for a list, in a sentence.
fn list_name(scope: WhitelistScope) -> &'static str {
    match scope {
        WhitelistScope::Key => "the key's whitelist",
        WhitelistScope::Account => "its account's account-wide whitelist",
        WhitelistScope::Master => "its master's account-wide whitelist",
    }
}

/// The answer to an explanation: every list's verdict, and the whole in a
/// sentence.
fn explanation_view(shown: std::net::IpAddr, e: &AccessExplanation) -> ExplanationView {
    let reason = match e.refused_by {
        Some(scope) => format!("{shown} is outside every entry of {}", list_name(scope)),
        None => {
            let inside: Vec<String> = e
                .lists
                .iter()
                .filter_map(|(scope, x)| {
                    x.matched
                        .map(|entry| format!("the entry {entry} of {}", list_name(*scope)))
                })
                .collect();
            if inside.is_empty() {
                format!(
                    "every whitelist that applies is empty, so every address, {shown} included, may use the key"
                )
            } else {
                format!(
                    "{shown} passes every whitelist that applies: it is inside {} (an empty list restricts nothing)",
                    inside.join(", and ")
                )
            }
        }
    };
    let key_match = e
        .lists
        .iter()
        .find(|(scope, _)| *scope == WhitelistScope::Key)
        .and_then(|(_, x)| x.matched);
    ExplanationView {
        address: shown.to_string(),
        allowed: e.allowed,
        matched: key_match.map(|m| m.to_string()),
        reason,
        refused_by: e.refused_by.map(Into::into),
        lists: e
            .lists
            .iter()
            .map(|(scope, x)| ListExplanationView {
                scope: (*scope).into(),
                allowed: x.allowed,
                matched: x.matched.map(|m| m.to_string()),
            })
            .collect(),
    }
}

/// Changes a key's label (set, or removed with `null`), its expiry (set,
/// or cleared with `null`) and whether it is enabled, any combination, in
/// one change (one version); answers the key. A disabled key's credentials
/// refuse at once; enabling it again restores them.
#[utoipa::path(
    patch, path = "/v1/keys/{key_id}", tag = "keys",
    request_body = KeyPatch,
    params(
        ("key_id" = String, Path, description = "The key's id", pattern = "^key_[0-9a-f]{32}$"),
        ("If-Match" = Option<String>, Header, description = "Change only if the key is at this version (its ETag), else 412", pattern = r#"^(\*|(W/)?"[!#-~]*"( *, *(W/)?"[!#-~]*")*)$"#),
        ("X-Acting-Account" = Option<String>, Header, description = "Act as this account", pattern = "^acc_[0-9a-f]{32}$"),
    ),
    responses(
        crate::error::AdminErrors,
        crate::error::BodyErrors,
        (status = 200, description = "The key", body = KeyView,
            headers(("ETag" = String, description = "The key's new version, quoted"))),
        (status = 400, description = "A bad label, a malformed expiry, an expiry that cannot be set (`invalid_expiry`: not in the future, past the longest lifetime that applies, or cleared where one applies), no field at all, or a bad If-Match", body = ErrorBody),
        (status = 404, description = "No such key", body = ErrorBody),
        (status = 409, description = "Changed concurrently, several times over", body = ErrorBody),
        (status = 412, description = "If-Match names a version the key has left: nothing written", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn patch_key(
    State(state): State<AppState>,
    Admin(actor): Admin,
    ApiPath(id): ApiPath<KeyId>,
    IfMatch(precondition): IfMatch,
    ApiJson(body): ApiJson<KeyPatch>,
) -> Result<(HeaderMap, Json<KeyView>), ApiError> {
    if body.label.is_none() && body.expires_at.is_none() && body.enabled.is_none() {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidBody,
            "nothing to change: give at least one of `label` (null removes it), `expires_at` (null clears it) and `enabled`",
        ));
    }
    let expires_at = match body.expires_at {
        None => None,
        Some(None) => Some(None),
        Some(Some(text)) => Some(Some(parse_instant(&text, "expires_at")?)),
    };
    let update = KeyUpdate {
        label: body.label,
        expires_at,
        enabled: body.enabled,
    };
    let key = state
        .run(Cost::Fast, move |k| {
            k.update_key(actor, id, update, precondition)
        })
        .await??;
    Ok((etag_headers(key.version), Json(KeyView::from(&key))))
}

//! Accounts, their keys and their audit trail.

use crate::admin::Admin;
use crate::dto::{
    AccountKindCode, AccountPageView, AccountPatch, AccountView, AccountsQuery, AccountsView,
    DormantQuery, PolicyBody,
};
use crate::dto::{
    AuditEventView, AuditQuery, AuditView, CreateKeyRequest, KeyView, KeysView, OpenAccountRequest,
    OpenedAccountView,
};
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use crate::versions::etag_headers;
use apikeys::{
    AccountId, AccountKind, AccountPolicy, Channel, ChannelSet, Cost, ExternalId, IdentifierChoice,
    NewAccount, NewKey, SecretChoice, Whitelist,
};
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Default and largest `?limit=` of the audit trail.
const AUDIT_DEFAULT_LIMIT: usize = 100;
const AUDIT_MAX_LIMIT: usize = 1000;
/// Default and largest `?limit=` of the list of accounts.
const ACCOUNTS_DEFAULT_LIMIT: usize = 100;
const ACCOUNTS_MAX_LIMIT: usize = 1000;

/// Every account, masters and sub-accounts, a page at a time, ascending by
/// id: the operator only. Follow `next_cursor` to the next page; accounts
/// opened meanwhile neither shift nor repeat a page.
#[utoipa::path(
    get, path = "/v1/accounts", tag = "accounts",
    params(
        AccountsQuery,
        ("X-Acting-Account" = Option<String>, Header, description = "Act as this account (an account may not list them all: 403)", pattern = "^acc_[0-9a-f]{32}$"),
    ),
    responses(
        crate::error::AdminErrors,
        (status = 200, description = "A page of accounts", body = AccountPageView),
        (status = 400, description = "A malformed cursor or limit", body = ErrorBody),
        (status = 403, description = "An acting account may not list every account", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn list_accounts(
    State(state): State<AppState>,
    Admin(actor): Admin,
    ApiQuery(query): ApiQuery<AccountsQuery>,
) -> Result<Json<AccountPageView>, ApiError> {
    let limit = query.limit.unwrap_or(ACCOUNTS_DEFAULT_LIMIT);
    if !(1..=ACCOUNTS_MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidQuery,
            format!(
                "limit is {limit}: it must be 1 to {ACCOUNTS_MAX_LIMIT} (default {ACCOUNTS_DEFAULT_LIMIT})"
            ),
        ));
    }
    // An empty cursor (`?cursor=`, as a form sends it) is the first page.
    let after = query
        .cursor
        .filter(|c| !c.is_empty())
        .map(|c| {
            c.parse::<AccountId>().map_err(|_| {
                ApiError::bad_request(
                    ErrorCode::InvalidQuery,
                    "cursor is not one this server gave: pass a previous page's `next_cursor`, or none for the first page",
                )
            })
        })
        .transpose()?;
    let (accounts, next) = state
        .run(Cost::Fast, move |k| k.accounts(actor, after, limit))
        .await??;
    Ok(Json(AccountPageView {
        accounts: accounts.iter().map(AccountView::from).collect(),
        next_cursor: next.map(|id| id.to_string()),
    }))
}

/// A master's sub-accounts, oldest first (ties by id); a sub-account has
/// none.
#[utoipa::path(
    get, path = "/v1/accounts/{account_id}/sub-accounts", tag = "accounts",
    params(
        ("account_id" = String, Path, description = "The master's id", pattern = "^acc_[0-9a-f]{32}$"),
        ("X-Acting-Account" = Option<String>, Header, description = "Act as this account", pattern = "^acc_[0-9a-f]{32}$"),
    ),
    responses(
        crate::error::AdminErrors,
        (status = 200, description = "Its sub-accounts", body = AccountsView),
        (status = 404, description = "No such account (or one the acting account may not see)", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn sub_accounts(
    State(state): State<AppState>,
    Admin(actor): Admin,
    ApiPath(id): ApiPath<AccountId>,
) -> Result<Json<AccountsView>, ApiError> {
    let accounts = state
        .run(Cost::Fast, move |k| k.sub_accounts(actor, id))
        .await??;
    Ok(Json(AccountsView {
        accounts: accounts.iter().map(AccountView::from).collect(),
    }))
}

/// Opens an account; a master created before the cutover gets its four
/// default keys, whose generated secrets are in this response only.
#[utoipa::path(
    post, path = "/v1/accounts", tag = "accounts",
    request_body = OpenAccountRequest,
    params(("X-Acting-Account" = Option<String>, Header, description = "Act as this account (only a master may open its own sub-accounts)", pattern = "^acc_[0-9a-f]{32}$")),
    responses(
        crate::error::AdminErrors,
        crate::error::BodyErrors,
        (status = 201, description = "Opened", body = OpenedAccountView),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 403, description = "The acting account may not", body = ErrorBody),
        (status = 404, description = "No such parent", body = ErrorBody),
        (status = 409, description = "Another account carries the external id", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn open_account(
    State(state): State<AppState>,
    Admin(actor): Admin,
    ApiJson(req): ApiJson<OpenAccountRequest>,
) -> Result<(StatusCode, Json<OpenedAccountView>), ApiError> {
    let kind = match (req.kind, req.parent_id) {
        (AccountKindCode::Master, None) => AccountKind::Master,
        (AccountKindCode::Master, Some(_)) => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidBody,
                "parent_id is only for kind `sub`: a master account has no parent",
            ));
        }
        (AccountKindCode::Sub, Some(parent)) => AccountKind::Sub {
            parent: parse_id(&parent, "parent_id")?,
        },
        (AccountKindCode::Sub, None) => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidBody,
                "parent_id is required for kind `sub`: the master this sub-account belongs to",
            ));
        }
    };
    let created_at = req
        .created_at
        .map(|text| parse_instant(&text, "created_at"))
        .transpose()?;
    let external_id = req
        .external_id
        .map(|text| ExternalId::new(&text))
        .transpose()
        .map_err(apikeys::Error::from)?;
    let new = NewAccount {
        kind,
        created_at,
        external_id,
    };
    let opened = state
        .run(Cost::Fast, move |k| k.open_account(actor, new))
        .await??;
    Ok((
        StatusCode::CREATED,
        Json(OpenedAccountView {
            account: AccountView::from(&opened.account),
            issued: opened.issued.into_iter().map(KeyView::from).collect(),
        }),
    ))
}

/// An account.
#[utoipa::path(
    get, path = "/v1/accounts/{account_id}", tag = "accounts",
    params(
        ("account_id" = String, Path, description = "The account's id", pattern = "^acc_[0-9a-f]{32}$"),
        ("X-Acting-Account" = Option<String>, Header, description = "Act as this account", pattern = "^acc_[0-9a-f]{32}$"),
    ),
    responses(
        crate::error::AdminErrors,
        (status = 200, description = "The account", body = AccountView),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn get_account(
    State(state): State<AppState>,
    Admin(actor): Admin,
    ApiPath(id): ApiPath<AccountId>,
) -> Result<Json<AccountView>, ApiError> {
    let account = state
        .run(Cost::Fast, move |k| k.account(actor, id))
        .await??;
    Ok(Json(AccountView::from(&account)))
}

/// The account carrying the platform's own id, found exactly (byte for
/// byte, case counts). The id is one path segment, percent-encoded as
/// UTF-8 (`/` as `%2F`). An account the acting account may not see is a
/// 404 `account_not_found`, exactly as one no account carries.
#[utoipa::path(
    get, path = "/v1/accounts/by-external-id/{external_id}", tag = "accounts",
    params(
        ("external_id" = String, Path, description = "The account's external id, percent-encoded"),
        ("X-Acting-Account" = Option<String>, Header, description = "Act as this account", pattern = "^acc_[0-9a-f]{32}$"),
    ),
    responses(
        crate::error::AdminErrors,
        (status = 200, description = "The account", body = AccountView),
        (status = 400, description = "Not a valid external id (`invalid_external_id`), or a segment that is not UTF-8", body = ErrorBody),
        (status = 404, description = "No account carries it (or none the acting account may see)", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn account_by_external_id(
    State(state): State<AppState>,
    Admin(actor): Admin,
    ApiPath(text): ApiPath<String>,
) -> Result<Json<AccountView>, ApiError> {
    let external_id = ExternalId::new(&text).map_err(apikeys::Error::from)?;
    let account = state
        .run(Cost::Fast, move |k| {
            k.account_by_external_id(actor, &external_id)
        })
        .await??;
    Ok(Json(AccountView::from(&account)))
}

/// An account's keys, oldest first: never a secret or a hash.
#[utoipa::path(
    get, path = "/v1/accounts/{account_id}/keys", tag = "keys",
    params(
        ("account_id" = String, Path, description = "The account's id", pattern = "^acc_[0-9a-f]{32}$"),
        ("X-Acting-Account" = Option<String>, Header, description = "Act as this account", pattern = "^acc_[0-9a-f]{32}$"),
    ),
    responses(
        crate::error::AdminErrors,
        (status = 200, description = "The keys", body = KeysView),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn list_keys(
    State(state): State<AppState>,
    Admin(actor): Admin,
    ApiPath(id): ApiPath<AccountId>,
) -> Result<Json<KeysView>, ApiError> {
    let keys = state.run(Cost::Fast, move |k| k.keys(actor, id)).await??;
    Ok(Json(KeysView {
        keys: keys.iter().map(KeyView::from).collect(),
    }))
}

/// Creates a key. `secret` is in the response only when it was generated: a
/// chosen secret is never echoed.
#[utoipa::path(
    post, path = "/v1/accounts/{account_id}/keys", tag = "keys",
    request_body = CreateKeyRequest,
    params(
        ("account_id" = String, Path, description = "The account's id", pattern = "^acc_[0-9a-f]{32}$"),
        ("X-Acting-Account" = Option<String>, Header, description = "Act as this account", pattern = "^acc_[0-9a-f]{32}$"),
    ),
    responses(
        crate::error::AdminErrors,
        crate::error::BodyErrors,
        (status = 201, description = "Created; `secret` present if generated", body = KeyView,
            headers(("ETag" = String, description = "The key's version, quoted"))),
        (status = 400, description = "Bad input: channel, identifier, secret, label or expiry (`invalid_expiry`: not in the future, or past the longest lifetime that applies)", body = ErrorBody),
        (status = 403, description = "`channel_not_allowed`: the sub-account's master does not allow its sub-accounts this channel", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 409, description = "Identifier taken, channel already active, or REST limit reached", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn create_key(
    State(state): State<AppState>,
    Admin(actor): Admin,
    ApiPath(id): ApiPath<AccountId>,
    ApiJson(req): ApiJson<CreateKeyRequest>,
) -> Result<(StatusCode, HeaderMap, Json<KeyView>), ApiError> {
    let channel = parse_channel(&req.channel)?;
    let new = NewKey {
        channel,
        identifier: req
            .identifier
            .map_or(IdentifierChoice::Generate, IdentifierChoice::Chosen),
        secret: req
            .secret
            .map_or(SecretChoice::Generate, |s| SecretChoice::Chosen(s.0)),
        label: req.label,
        expires_at: req
            .expires_at
            .map(|text| parse_instant(&text, "expires_at"))
            .transpose()?,
    };
    // A chosen secret is hashed with argon2: that runs in the argon2 lane.
    let cost = new.cost();
    let issued = state
        .run(cost, move |k| k.create_key(actor, id, new))
        .await??;
    Ok((
        StatusCode::CREATED,
        etag_headers(issued.key.version),
        Json(KeyView::from(issued)),
    ))
}

/// An account's audit trail, newest first.
#[utoipa::path(
    get, path = "/v1/accounts/{account_id}/audit", tag = "accounts",
    params(
        ("account_id" = String, Path, description = "The account's id", pattern = "^acc_[0-9a-f]{32}$"),
        AuditQuery,
        ("X-Acting-Account" = Option<String>, Header, description = "Act as this account", pattern = "^acc_[0-9a-f]{32}$"),
    ),
    responses(
        crate::error::AdminErrors,
        (status = 200, description = "The events, newest first", body = AuditView),
        (status = 400, description = "Malformed id or limit", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn audit(
    State(state): State<AppState>,
    Admin(actor): Admin,
    ApiPath(id): ApiPath<AccountId>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<AuditView>, ApiError> {
    let limit = query.limit.unwrap_or(AUDIT_DEFAULT_LIMIT);
    if !(1..=AUDIT_MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidQuery,
            format!(
                "limit is {limit}: it must be 1 to {AUDIT_MAX_LIMIT} (default {AUDIT_DEFAULT_LIMIT})"
            ),
        ));
    }
    let events = state
        .run(Cost::Fast, move |k| k.audit(actor, id, limit))
        .await??;
    Ok(Json(AuditView {
        events: events.iter().map(AuditEventView::from).collect(),
    }))
}

/// Suspends or resumes an account: the operator any, a master its
/// sub-accounts (an account never itself). From the next request on, in
/// every process, its keys and REST tokens refuse as invalid credentials
/// (a master's sub-accounts' too), or work again.
#[utoipa::path(
    patch, path = "/v1/accounts/{account_id}", tag = "accounts",
    request_body = AccountPatch,
    params(
        ("account_id" = String, Path, description = "The account's id", pattern = "^acc_[0-9a-f]{32}$"),
        ("X-Acting-Account" = Option<String>, Header, description = "Act as this account (a master may suspend its sub-accounts, no account itself)", pattern = "^acc_[0-9a-f]{32}$"),
    ),
    responses(
        crate::error::AdminErrors,
        crate::error::BodyErrors,
        (status = 200, description = "The account", body = AccountView),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 403, description = "The acting account may not suspend this account (itself, say)", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn patch_account(
    State(state): State<AppState>,
    Admin(actor): Admin,
    ApiPath(id): ApiPath<AccountId>,
    ApiJson(body): ApiJson<AccountPatch>,
) -> Result<Json<AccountView>, ApiError> {
    let account = state
        .run(Cost::Fast, move |k| {
            k.set_suspended(actor, id, body.suspended)
        })
        .await??;
    Ok(Json(AccountView::from(&account)))
}

/// An account's policy over its keys: its account-wide whitelist and, for
/// a master, the channels its sub-accounts may use and the longest their
/// keys may live. A sub-account may read its own.
#[utoipa::path(
    get, path = "/v1/accounts/{account_id}/policy", tag = "accounts",
    params(
        ("account_id" = String, Path, description = "The account's id", pattern = "^acc_[0-9a-f]{32}$"),
        ("X-Acting-Account" = Option<String>, Header, description = "Act as this account", pattern = "^acc_[0-9a-f]{32}$"),
    ),
    responses(
        crate::error::AdminErrors,
        (status = 200, description = "The policy", body = PolicyBody),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn get_policy(
    State(state): State<AppState>,
    Admin(actor): Admin,
    ApiPath(id): ApiPath<AccountId>,
) -> Result<Json<PolicyBody>, ApiError> {
    let policy = state
        .run(Cost::Fast, move |k| k.account_policy(actor, id))
        .await??;
    Ok(Json(PolicyBody::from(&policy)))
}

/// Replaces an account's policy (a field left out takes its default): the
/// operator any account's, a master its own and its sub-accounts'. Applies
/// to existing keys from the next request on. A sub-account's policy holds
/// only a whitelist, and a sub-account may not change its own. Answers the
/// normalised policy.
#[utoipa::path(
    put, path = "/v1/accounts/{account_id}/policy", tag = "accounts",
    request_body = PolicyBody,
    params(
        ("account_id" = String, Path, description = "The account's id", pattern = "^acc_[0-9a-f]{32}$"),
        ("X-Acting-Account" = Option<String>, Header, description = "Act as this account (a sub-account may not change its own policy)", pattern = "^acc_[0-9a-f]{32}$"),
    ),
    responses(
        crate::error::AdminErrors,
        crate::error::BodyErrors,
        (status = 200, description = "The normalised policy", body = PolicyBody),
        (status = 400, description = "A bad whitelist entry (named) or too many, an unknown channel, a lifetime out of bounds, or channels or a lifetime on a sub-account's policy (`invalid_account_policy`)", body = ErrorBody),
        (status = 403, description = "A sub-account may not change its own policy", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn put_policy(
    State(state): State<AppState>,
    Admin(actor): Admin,
    ApiPath(id): ApiPath<AccountId>,
    ApiJson(body): ApiJson<PolicyBody>,
) -> Result<Json<PolicyBody>, ApiError> {
    let entries = crate::keys::parse_entries(&state, &body.whitelist)?;
    let channels = body
        .sub_account_channels
        .iter()
        .map(|c| parse_channel(c))
        .collect::<Result<ChannelSet, _>>()?;
    // The domain checks the lifetime's bounds, and the whitelist's size
    // against the service's policy; a plain `usize::MAX` here only builds
    // the list.
    let whitelist =
        Whitelist::new(entries, usize::MAX).map_err(|e| ApiError::from(apikeys::Error::from(e)))?;
    let policy = AccountPolicy {
        whitelist,
        sub_account_channels: channels,
        max_key_lifetime: body.max_key_lifetime_seconds.map(time::Duration::seconds),
    };
    let account = state
        .run(Cost::Fast, move |k| k.set_account_policy(actor, id, policy))
        .await??;
    Ok(Json(PolicyBody::from(&account.policy)))
}

/// The keys of an account (and, for a master, of its sub-accounts) unused
/// for `days` days, ascending by id; a key never used counts from its
/// creation.
#[utoipa::path(
    get, path = "/v1/accounts/{account_id}/dormant-keys", tag = "keys",
    params(
        ("account_id" = String, Path, description = "The account's id", pattern = "^acc_[0-9a-f]{32}$"),
        DormantQuery,
        ("X-Acting-Account" = Option<String>, Header, description = "Act as this account", pattern = "^acc_[0-9a-f]{32}$"),
    ),
    responses(
        crate::error::AdminErrors,
        (status = 200, description = "The dormant keys", body = KeysView),
        (status = 400, description = "A malformed id, or `days` missing, not a number (`invalid_query`) or out of 1 to 36500 (`invalid_days`)", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn dormant_keys(
    State(state): State<AppState>,
    Admin(actor): Admin,
    ApiPath(id): ApiPath<AccountId>,
    ApiQuery(query): ApiQuery<DormantQuery>,
) -> Result<Json<KeysView>, ApiError> {
    let keys = state
        .run(Cost::Fast, move |k| k.dormant_keys(actor, id, query.days))
        .await??;
    Ok(Json(KeysView {
        keys: keys.iter().map(KeyView::from).collect(),
    }))
}

pub(crate) fn parse_channel(code: &str) -> Result<Channel, ApiError> {
    code.parse().map_err(|e: apikeys::ParseChannelError| {
        ApiError::bad_request(ErrorCode::InvalidChannel, e.to_string())
    })
}

fn parse_id<T>(text: &str, field: &str) -> Result<T, ApiError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    text.parse()
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidId, format!("{field}: {e}")))
}

pub(crate) fn parse_instant(text: &str, field: &str) -> Result<OffsetDateTime, ApiError> {
    OffsetDateTime::parse(text, &Rfc3339).map_err(|_| {
        ApiError::bad_request(
            ErrorCode::InvalidBody,
            format!(
                "{field} `{}` is not an RFC 3339 instant (example: 2021-05-01T00:00:00Z)",
                text.chars().take(64).collect::<String>()
            ),
        )
    })
}

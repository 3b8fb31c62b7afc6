//! Dormant keys across every account, and the dormancy action: the
//! operator's tools for finding keys nobody uses and disabling the legacy
//! default keys that were never used.

use crate::admin::Admin;
use crate::dto::{
    AllDormantQuery, DormancyActionRequest, DormancyActionView, DormantPageView, KeyView,
};
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::extract::{ApiJson, ApiQuery};
use crate::state::AppState;
use apikeys::{Cost, KeyId};
use axum::Json;
use axum::extract::State;

/// Default and largest `?limit=` of the list of dormant keys.
const DORMANT_DEFAULT_LIMIT: usize = 100;
const DORMANT_MAX_LIMIT: usize = 1000;

/// Every account's keys unused for `days` days (a key never used counts
/// from its creation), a page at a time, ascending by id: the operator
/// only. With `legacy_defaults_only`, only the legacy default keys never
/// used. Follow `next_cursor` to the next page.
#[utoipa::path(
    get, path = "/v1/dormant-keys", tag = "keys",
    params(
        AllDormantQuery,
        ("X-Acting-Account" = Option<String>, Header, description = "Act as this account (an account may not list every account's keys: 403)", pattern = "^acc_[0-9a-f]{32}$"),
    ),
    responses(
        crate::error::AdminErrors,
        (status = 200, description = "A page of dormant keys", body = DormantPageView),
        (status = 400, description = "`days` missing or malformed, a malformed cursor, limit or flag (`invalid_query`), or `days` out of 1 to 36500 (`invalid_days`)", body = ErrorBody),
        (status = 403, description = "An acting account may not list every account's keys", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn all_dormant_keys(
    State(state): State<AppState>,
    Admin(actor): Admin,
    ApiQuery(query): ApiQuery<AllDormantQuery>,
) -> Result<Json<DormantPageView>, ApiError> {
    let limit = query.limit.unwrap_or(DORMANT_DEFAULT_LIMIT);
    if !(1..=DORMANT_MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidQuery,
            format!(
                "limit is {limit}: it must be 1 to {DORMANT_MAX_LIMIT} (default {DORMANT_DEFAULT_LIMIT})"
            ),
        ));
    }
    // An empty cursor (`?cursor=`, as a form sends it) is the first page.
    let after = query
        .cursor
        .filter(|c| !c.is_empty())
        .map(|c| {
            c.parse::<KeyId>().map_err(|_| {
                ApiError::bad_request(
                    ErrorCode::InvalidQuery,
                    "cursor is not one this server gave: pass a previous page's `next_cursor`, or none for the first page",
                )
            })
        })
        .transpose()?;
    let legacy_only = query.legacy_defaults_only.unwrap_or(false);
    let days = query.days;
    let (keys, next) = state
        .run(Cost::Fast, move |k| {
            k.all_dormant_keys(actor, days, legacy_only, after, limit)
        })
        .await??;
    Ok(Json(DormantPageView {
        keys: keys.iter().map(KeyView::from).collect(),
        next_cursor: next.map(|id| id.to_string()),
    }))
}

/// The dormancy action: disables every enabled legacy default key never
/// used and older than the server's `disable_dormant_legacy_defaults_after`
/// (each audited), or with `dry_run` (the default) only lists them. The
/// operator only. When the server's policy does not set that period the
/// action is off: 409 `dormancy_action_off`, the request being well formed
/// but the server's configuration not allowing it.
#[utoipa::path(
    post, path = "/v1/dormant-keys/disable", tag = "keys",
    request_body = DormancyActionRequest,
    params(
        ("X-Acting-Account" = Option<String>, Header, description = "Act as this account (an account may not: 403)", pattern = "^acc_[0-9a-f]{32}$"),
    ),
    responses(
        crate::error::AdminErrors,
        crate::error::BodyErrors,
        (status = 200, description = "The keys disabled, or that would be", body = DormancyActionView),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 403, description = "An acting account may not", body = ErrorBody),
        (status = 409, description = "`dormancy_action_off`: the server's policy does not turn the action on", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
pub(crate) async fn disable_dormant(
    State(state): State<AppState>,
    Admin(actor): Admin,
    ApiJson(req): ApiJson<DormancyActionRequest>,
) -> Result<Json<DormancyActionView>, ApiError> {
    let dry_run = req.dry_run;
    let keys = state
        .run(Cost::Fast, move |k| {
            k.disable_dormant_legacy_defaults(actor, dry_run)
        })
        .await??;
    Ok(Json(DormancyActionView {
        dry_run,
        keys: keys.iter().map(KeyView::from).collect(),
    }))
}

//! The page itself, rendered with maud (which escapes every value it
//! interpolates): the account, its keys, its sub-accounts, its audit trail,
//! and the dialogs the script drives. No inline script or style: the page's
//! only script and stylesheet are its own static files.

use super::{PENDING_COOKIE, cookie, cookie_header};
use crate::state::AppState;
use apikeys::{
    Account, AccountId, AccountKind, Actor, ApiKey, AuditEvent, Channel, Cost, KeyState,
};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};
use time::OffsetDateTime;
use time::macros::format_description;

/// How many audit events the page shows.
const AUDIT_EVENTS: usize = 100;

/// What one rendering of the page shows.
pub(crate) struct PageData {
    /// The session's own account.
    pub(crate) me: Account,
    /// The account shown (the session's, or one of a master's sub-accounts).
    pub(crate) target: Account,
    pub(crate) keys: Vec<ApiKey>,
    pub(crate) sub_accounts: Vec<Account>,
    pub(crate) audit: Vec<AuditEvent>,
    pub(crate) max_rest_keys: u32,
}

/// `GET {path}/` and `?account=acc_…`.
pub(super) async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let now = state.sync().now();
    let name = state.portal().config().session_cookie_name();
    let session = cookie(&headers, name).and_then(|c| state.portal().session(c, now));
    let Some(session) = session else {
        if cookie(&headers, PENDING_COOKIE).is_some() {
            return continue_page(&state);
        }
        return message(
            StatusCode::UNAUTHORIZED,
            "Not signed in",
            "Your session has ended, or this browser never started one. Open the API Keys page again from your account settings on the platform.",
            "",
        );
    };
    let target: Option<AccountId> = match query
        .as_deref()
        .unwrap_or_default()
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| *name == "account")
        .map(|(_, value)| value.parse())
        .transpose()
    {
        Ok(t) => t,
        Err(_) => return not_found(),
    };
    let actor = Actor::Account(session.account);
    let me = session.account;
    let read = state
        .run(Cost::Fast, move |k| -> Result<PageData, apikeys::Error> {
            let me = k.account(actor, me)?;
            let target = match target {
                Some(id) if id != me.id => k.account(actor, id)?,
                _ => me.clone(),
            };
            let mut keys = k.keys(actor, target.id)?;
            // In the channels' order, then oldest first.
            keys.sort_by_key(|key| {
                let channel = Channel::ALL.iter().position(|c| *c == key.channel);
                (channel, key.created_at)
            });
            let audit = k.audit(actor, target.id, AUDIT_EVENTS)?;
            // The master's own page lists its sub-accounts.
            let sub_accounts = if target.id == me.id {
                k.sub_accounts(actor, target.id)?
            } else {
                Vec::new()
            };
            Ok(PageData {
                me,
                target,
                keys,
                sub_accounts,
                audit,
                max_rest_keys: k.policy().max_keys(Channel::Rest),
            })
        })
        .await;
    let data = match read {
        Ok(Ok(data)) => data,
        Ok(Err(apikeys::Error::AccountNotFound(_))) => return not_found(),
        Ok(Err(e)) => return failed(&crate::error::ApiError::from(e)),
        Err(e) => return failed(&e),
    };
    let base = api_base(&state);
    let mut response =
        Html(render(&data, &base, session.csrf_token()).into_string()).into_response();
    if cookie(&headers, PENDING_COOKIE).is_some() {
        response.headers_mut().append(
            header::SET_COOKIE,
            cookie_header(&state, PENDING_COOKIE, "", "; SameSite=Lax; Max-Age=0"),
        );
    }
    response
}

/// The JSON API's base as the script reaches it: configured, or the
/// router's root relative to the page.
fn api_base(state: &AppState) -> String {
    let config = state.portal().config();
    if let Some(base) = &config.api_base {
        return base.clone();
    }
    let depth = config.path.split('/').filter(|s| !s.is_empty()).count();
    if depth == 0 {
        ".".to_owned()
    } else {
        vec![".."; depth].join("/")
    }
}

fn not_found() -> Response {
    message(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no such account, or this session may not see it.",
        "./",
    )
}

fn failed(e: &crate::error::ApiError) -> Response {
    message(
        e.status(),
        "The page could not be loaded",
        e.message(),
        "./",
    )
}

/// The page a link's redirect lands on when the browser held back the
/// Strict session cookie (the click came from another site): it reloads
/// itself once, as a same-site navigation, and clears the marker.
fn continue_page(state: &AppState) -> Response {
    let body = layout(
        "Signing in",
        &html! {
            meta http-equiv="refresh" content="0";
        },
        &html! {
            main.message {
                h1 { "Signing in…" }
                p { a href="./" { "Continue to the API Keys page" } }
            }
        },
    );
    let mut response = Html(body.into_string()).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        cookie_header(state, PENDING_COOKIE, "", "; SameSite=Lax; Max-Age=0"),
    );
    response
}

/// A page with a title, a sentence, and an optional link.
pub(super) fn message(status: StatusCode, title: &str, text: &str, link: &str) -> Response {
    let body = layout(
        title,
        &html! {},
        &html! {
            main.message {
                h1 { (title) }
                p { (text) }
                @if !link.is_empty() {
                    p { a href=(link) { "Back to the API Keys page" } }
                }
            }
        },
    );
    (status, Html(body.into_string())).into_response()
}

fn layout(title: &str, head: &Markup, body: &Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · API Keys" }
                link rel="stylesheet" href="static/ui.css";
                (head)
            }
            body { (body) }
        }
    }
}

fn day(t: OffsetDateTime) -> String {
    t.format(format_description!("[year]-[month]-[day]"))
        .unwrap_or_default()
}

fn minute(t: OffsetDateTime) -> String {
    t.format(format_description!(
        "[year]-[month]-[day] [hour]:[minute] UTC"
    ))
    .unwrap_or_default()
}

fn kind_name(kind: &AccountKind) -> &'static str {
    match kind {
        AccountKind::Master => "Master account",
        AccountKind::Sub { .. } => "Sub-account",
    }
}

/// The whole page.
pub(crate) fn render(data: &PageData, api_base: &str, csrf: &str) -> Markup {
    let target = &data.target;
    let is_sub_view = target.id != data.me.id;
    let rest_keys = data
        .keys
        .iter()
        .filter(|k| k.channel == Channel::Rest)
        .count();
    let active: Vec<&str> = data
        .keys
        .iter()
        .map(|k| k.channel.code())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let body = html! {
        div #app
            data-api-base=(api_base)
            data-csrf=(csrf)
            data-account=(target.id)
            data-active=(active.join(","))
            data-rest-count=(rest_keys)
            data-rest-limit=(data.max_rest_keys)
        {
            a.skip href="#keys-heading" { "Skip to the keys" }
            header.top {
                div {
                    h1 { "API Keys" }
                    dl.account {
                        dt { "Account" } dd { code #account-id { (data.me.id) } }
                        dt { "Type" } dd #account-kind { (kind_name(&data.me.kind)) }
                        dt { "Created" } dd #account-created { (minute(data.me.created_at)) }
                    }
                }
                form method="post" action="session/end" {
                    input type="hidden" name="csrf_token" value=(csrf);
                    button.secondary type="submit" #sign-out { "Sign out" }
                }
            }
            main {
                @if is_sub_view {
                    nav.crumbs aria-label="Accounts" {
                        a href="./" { "← " (data.me.id) }
                        " / "
                        span aria-current="page" { "Sub-account " code #viewing { (target.id) } }
                    }
                }
                section aria-labelledby="keys-heading" {
                    div.bar {
                        h2 #keys-heading tabindex="-1" {
                            @if is_sub_view { "Keys of sub-account " code { (target.id) } } @else { "Keys" }
                        }
                        button.primary type="button" #create-open data-opens="create-dialog" { "+ Create API Key" }
                    }
                    p #status role="status" aria-live="polite" {}
                    @if data.keys.is_empty() {
                        div.empty #empty-state {
                            h3 { "No channel is active yet" }
                            p {
                                @if matches!(target.kind, AccountKind::Sub { .. }) {
                                    "This sub-account has no API key, so none of the five channels (FTP, REST, HTTP, Web Service, Email) accepts it yet."
                                } @else {
                                    "This account has no API key, so none of the five channels (FTP, REST, HTTP, Web Service, Email) accepts it yet."
                                }
                                " Create a key to open a channel."
                            }
                            button.primary type="button" #create-first data-opens="create-dialog" { "Create the first key" }
                        }
                    } @else {
                        table.keys #keys {
                            caption.visually-hidden { "API keys" }
                            thead { tr {
                                th scope="col" { "Channel" }
                                th scope="col" { "Identifier" }
                                th scope="col" { "Label" }
                                th scope="col" { "State" }
                                th scope="col" { "Expires" }
                                th scope="col" { "Last used" }
                                th scope="col" { "Created" }
                                th scope="col" { "Last changed" }
                                th scope="col" { "IP whitelist" }
                                th scope="col" { span.visually-hidden { "Actions" } }
                            } }
                            tbody {
                                @for key in &data.keys { (key_row(key)) }
                            }
                        }
                    }
                }
                @if matches!(target.kind, AccountKind::Master) {
                    (sub_accounts(data))
                    (policy_section(target))
                }
                section aria-labelledby="audit-heading" {
                    h2 #audit-heading { "Audit trail" }
                    @if data.audit.is_empty() {
                        p { "Nothing recorded yet." }
                    } @else {
                        table.audit #audit {
                            caption.visually-hidden { "Audit trail, newest first" }
                            thead { tr {
                                th scope="col" { "When" }
                                th scope="col" { "What" }
                                th scope="col" { "Channel" }
                                th scope="col" { "By" }
                                th scope="col" { "Detail" }
                            } }
                            tbody {
                                @for e in &data.audit {
                                    tr {
                                        td { (minute(e.at)) }
                                        td { (e.kind.code().replace('_', " ")) }
                                        td { (e.channel.map(Channel::label).unwrap_or("")) }
                                        td { (e.actor) }
                                        td.detail { (e.detail) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            (dialogs(data, rest_keys))
        }
    };
    layout(
        "API Keys",
        &html! { script src="static/ui.js" defer {} },
        &body,
    )
}

/// What a state is called on the page, and its badge's class.
fn state_badge(state: KeyState) -> (&'static str, &'static str) {
    match state {
        KeyState::Active => ("Active", "badge state-active"),
        KeyState::Disabled => ("Disabled", "badge state-disabled"),
        KeyState::Expired => ("Expired", "badge state-expired"),
        KeyState::Suspended => ("Suspended", "badge state-suspended"),
    }
}

fn key_row(key: &ApiKey) -> Markup {
    let menu = format!("menu-{}", key.id);
    let (state_name, state_class) = state_badge(key.state);
    // The expiry the script starts its dialog from: the instant as the
    // `datetime-local` input takes it, in UTC.
    let expires_input = key
        .expires_at
        .and_then(|t| {
            t.format(format_description!("[year]-[month]-[day]T[hour]:[minute]"))
                .ok()
        })
        .unwrap_or_default();
    html! {
        tr data-key=(key.id) data-version=(key.version) data-channel=(key.channel.code())
            data-identifier=(key.identifier) data-label=(key.label.as_deref().unwrap_or(""))
            data-enabled=(key.enabled) data-state=(key.state.code()) data-expires=(expires_input)
        {
            td { (key.channel.label()) }
            td { code.identifier { (key.identifier) } }
            td.label { @if let Some(l) = &key.label { (l) } @else { span.muted { "—" } } }
            td.state { span class=(state_class) { (state_name) } }
            td.expires {
                @if let Some(at) = key.expires_at { (minute(at)) } @else { span.muted { "never" } }
            }
            td.last-used {
                @if let Some(at) = key.usage.last_used_at {
                    (minute(at))
                    @if let Some(address) = key.usage.last_used_address {
                        br; span.muted { "from " code { (address) } }
                    }
                } @else {
                    span.muted { "never" }
                }
                @if key.grace_until.is_some() {
                    p.grace {
                        @if let Some(at) = key.usage.previous_secret_last_used_at {
                            "old secret last used " (minute(at))
                        } @else {
                            "old secret not used since the change"
                        }
                    }
                }
            }
            td.created { (day(key.created_at)) }
            td { (minute(key.changed_at)) }
            td.count {
                @if key.whitelist.is_empty() { "any address" }
                @else if key.whitelist.entries().len() == 1 { "1 entry" }
                @else { (key.whitelist.entries().len()) " entries" }
            }
            td.actions {
                div.menu {
                    button.secondary type="button" aria-haspopup="true" aria-expanded="false"
                        aria-controls=(menu) data-menu=(menu)
                    {
                        "Actions" span.visually-hidden { " for " (key.channel.label()) " key " (key.identifier) }
                    }
                    ul.menu-items #(menu) hidden {
                        li { button type="button" data-action="credentials" { "Change credentials" } }
                        li { button type="button" data-action="label" { "Edit label" } }
                        li {
                            @if key.enabled {
                                button type="button" data-action="disable" { "Disable" }
                            } @else {
                                button type="button" data-action="enable" { "Enable" }
                            }
                        }
                        li { button type="button" data-action="expiry" { "Set expiry" } }
                        li { button type="button" data-action="whitelist" { "IP Whitelist" } }
                        li { button.danger type="button" data-action="delete" { "Delete" } }
                    }
                }
            }
        }
    }
}

/// A master's policy over its sub-accounts' keys, and its account-wide
/// whitelist: edited in the page, saved in one `PUT …/policy`.
fn policy_section(account: &Account) -> Markup {
    let policy = &account.policy;
    let lifetime_days = policy.max_key_lifetime.map(|l| {
        let seconds = l.whole_seconds();
        if seconds % 86_400 == 0 {
            (seconds / 86_400).to_string()
        } else {
            format!("{:.3}", seconds as f64 / 86_400.0)
        }
    });
    html! {
        section aria-labelledby="policy-heading" #policy {
            h2 #policy-heading { "Policy" }
            p.muted { "Rules over every key of this account and of its sub-accounts. They apply from the next request on." }
            form #policy-form novalidate {
                fieldset {
                    legend { "Account-wide IP whitelist" }
                    p.muted { "Every key of this account and of its sub-accounts must also pass this list, besides its own. With no entry it restricts nothing." }
                    ul #policy-entries {
                        @for entry in policy.whitelist.entries() {
                            li data-entry=(entry) {
                                code { (entry) }
                                button.secondary type="button" data-remove-entry aria-label={ "Remove " (entry) } { "Remove" }
                            }
                        }
                    }
                    p.muted #policy-no-entries hidden[!policy.whitelist.is_empty()] { "No entry: any address is accepted." }
                    label for="policy-add" { "Add an address or network (CIDR)" }
                    div.inline {
                        input #policy-add type="text" autocomplete="off" placeholder="e.g. 203.0.113.0/24";
                        button.secondary type="button" #policy-add-button { "Add" }
                    }
                    p.field-error #policy-whitelist-error {}
                }
                fieldset {
                    legend { "Channels sub-accounts may use" }
                    @for c in Channel::ALL {
                        label.choice {
                            input type="checkbox" name="policy-channel" value=(c.code())
                                checked[policy.sub_account_channels.contains(c)];
                            " " (c.label())
                        }
                    }
                    p.muted { "A sub-account's key of an unticked channel stops working, and no new one can be created." }
                    p.field-error #policy-channels-error {}
                }
                div.field {
                    label for="policy-lifetime" { "Longest lifetime of a sub-account's key, in days " span.muted { "(empty: no limit)" } }
                    input #policy-lifetime type="number" min="1" max="36525" step="any" inputmode="decimal"
                        value=[lifetime_days.as_deref()];
                    p.field-error #policy-lifetime-error {}
                }
                p.field-error #policy-error {}
                p #policy-status role="status" aria-live="polite" {}
                div.buttons { button.primary type="submit" #policy-save { "Save policy" } }
            }
        }
    }
}

fn sub_accounts(data: &PageData) -> Markup {
    html! {
        section aria-labelledby="subs-heading" {
            div.bar {
                h2 #subs-heading { "Sub-accounts" }
                button.secondary type="button" #sub-open data-opens="sub-dialog" { "+ New sub-account" }
            }
            @if data.sub_accounts.is_empty() {
                p #no-subs { "No sub-account yet." }
            } @else {
                ul.subs #subs {
                    @for sub in &data.sub_accounts {
                        li {
                            a href={ "?account=" (sub.id) } { code { (sub.id) } }
                            span.muted { " created " (minute(sub.created_at)) }
                        }
                    }
                }
            }
        }
    }
}

fn dialogs(data: &PageData, rest_keys: usize) -> Markup {
    let active = |c: Channel| data.keys.iter().any(|k| k.channel == c);
    let rest_full = u32::try_from(rest_keys).unwrap_or(u32::MAX) >= data.max_rest_keys;
    html! {
        dialog #create-dialog aria-labelledby="create-title" {
            form #create-form method="dialog" novalidate {
                h2 #create-title { "Create API Key" }
                fieldset {
                    legend { "Channel" }
                    @for c in Channel::ALL {
                        @if c == Channel::Rest && active(c) {
                            @if rest_full {
                                p.note #rest-limit { "REST: this account holds " (rest_keys) " REST keys, the most allowed (" (data.max_rest_keys) ")." }
                            } @else {
                                label.choice { input type="radio" name="channel" value=(c.code()); " Another REST key (" (rest_keys) " of " (data.max_rest_keys) " used)" }
                            }
                        } @else if !active(c) {
                            label.choice { input type="radio" name="channel" value=(c.code()); " " (c.label()) }
                        }
                    }
                    p.field-error #create-channel-error {}
                }
                div.field {
                    label for="create-label" { "Label " span.muted { "(optional, up to 64 characters)" } }
                    input #create-label name="label" type="text" maxlength="64" autocomplete="off";
                    p.field-error #create-label-error {}
                }
                fieldset {
                    legend { "Identifier" }
                    label.choice { input type="radio" name="identifier-mode" value="generate" checked; " Generate one" }
                    label.choice { input type="radio" name="identifier-mode" value="choose"; " Choose one" }
                    label for="create-identifier" { "Identifier" }
                    input #create-identifier name="identifier" type="text" autocomplete="off" disabled;
                    p.field-error #create-identifier-error {}
                }
                fieldset {
                    legend { "Secret" }
                    label.choice { input type="radio" name="secret-mode" value="generate" checked; " Generate one (shown once)" }
                    label.choice { input type="radio" name="secret-mode" value="choose"; " Choose one" }
                    label for="create-secret" { "Secret" }
                    input #create-secret name="secret" type="password" autocomplete="new-password" disabled;
                    p.field-error #create-secret-error {}
                }
                p.field-error #create-error {}
                div.buttons {
                    button.secondary type="button" data-close { "Cancel" }
                    button.primary type="submit" #create-submit { "Create" }
                }
            }
        }
        dialog #secret-dialog aria-labelledby="secret-title" {
            form #secret-form method="dialog" {
                h2 #secret-title { "Save this secret now" }
                p.warning { "This secret is shown once and will not be shown again. Store it in your integration or password manager before closing." }
                dl {
                    dt { "Channel" } dd #secret-channel {}
                    dt { "Identifier" } dd { code #secret-identifier {} }
                    dt { "Secret" } dd { code #secret-value {} }
                }
                button.secondary type="button" #secret-copy { "Copy secret" }
                p #secret-copied role="status" aria-live="polite" {}
                label.choice { input type="checkbox" #secret-saved; " I have saved the secret" }
                div.buttons { button.primary type="submit" #secret-close disabled { "Close" } }
            }
        }
        dialog #credentials-dialog aria-labelledby="credentials-title" {
            form #credentials-form method="dialog" novalidate {
                h2 #credentials-title { "Change credentials" }
                p.warning { "Integrations that use the current credentials will stop working when they change (unless you keep the old secret working for a while below)." }
                p.muted #credentials-key {}
                div.field {
                    label for="credentials-identifier" { "New identifier " span.muted { "(leave empty to keep it)" } }
                    input #credentials-identifier type="text" autocomplete="off";
                    p.field-error #credentials-identifier-error {}
                }
                fieldset {
                    legend { "Secret" }
                    label.choice { input type="radio" name="cred-secret" value="keep" checked; " Keep it" }
                    label.choice { input type="radio" name="cred-secret" value="generate"; " Generate a new one (shown once)" }
                    label.choice { input type="radio" name="cred-secret" value="choose"; " Choose a new one" }
                    label for="credentials-secret" { "New secret" }
                    input #credentials-secret type="password" autocomplete="new-password" disabled;
                    p.field-error #credentials-secret-error {}
                }
                div.field {
                    label for="credentials-grace" { "Keep the old secret working for" }
                    select #credentials-grace {
                        option value="" { "no time: it stops at once" }
                        option value="3600" { "1 hour" }
                        option value="86400" { "1 day" }
                        option value="604800" { "7 days" }
                    }
                    p.field-error #credentials-grace-error {}
                }
                p.field-error #credentials-error {}
                div.buttons {
                    button.secondary type="button" data-close { "Cancel" }
                    button.primary type="submit" #credentials-submit { "Change credentials" }
                }
            }
        }
        dialog #label-dialog aria-labelledby="label-title" {
            form #label-form method="dialog" novalidate {
                h2 #label-title { "Edit label" }
                div.field {
                    label for="label-input" { "Label " span.muted { "(up to 64 characters; empty removes it)" } }
                    input #label-input type="text" maxlength="64" autocomplete="off";
                    p.field-error #label-input-error {}
                }
                p.field-error #label-error {}
                div.buttons {
                    button.secondary type="button" data-close { "Cancel" }
                    button.primary type="submit" #label-submit { "Save label" }
                }
            }
        }
        dialog #whitelist-dialog aria-labelledby="whitelist-title" {
            div {
                h2 #whitelist-title { "IP Whitelist" }
                p.muted #whitelist-key {}
                p { "With no entry, the key is accepted from any address. With entries, only from these addresses and networks." }
                ul #whitelist-entries {}
                form #whitelist-add-form novalidate {
                    label for="whitelist-add" { "Add an address or network (CIDR)" }
                    div.inline {
                        input #whitelist-add type="text" autocomplete="off" placeholder="e.g. 203.0.113.0/24";
                        button.secondary type="submit" { "Add" }
                    }
                    p.field-error #whitelist-add-error {}
                }
                form #whitelist-replace-form novalidate {
                    label for="whitelist-replace" { "Replace the whole list (one entry a line)" }
                    textarea #whitelist-replace rows="3" {}
                    button.secondary type="submit" { "Replace list" }
                    p.field-error #whitelist-replace-error {}
                }
                form #whitelist-test-form novalidate {
                    label for="whitelist-test" { "Test an address" }
                    div.inline {
                        input #whitelist-test type="text" autocomplete="off" placeholder="e.g. 203.0.113.7";
                        button.secondary type="submit" { "Test" }
                    }
                    p.field-error #whitelist-test-error {}
                    p #whitelist-test-result role="status" aria-live="polite" {}
                }
                p.field-error #whitelist-error {}
                div.buttons { button.primary type="button" data-close { "Done" } }
            }
        }
        dialog #expiry-dialog aria-labelledby="expiry-title" {
            form #expiry-form method="dialog" novalidate {
                h2 #expiry-title { "Set expiry" }
                p.muted #expiry-key {}
                p { "From this instant on the key's credentials stop working. Times are in UTC, not your local time." }
                fieldset {
                    legend { "Expiry" }
                    label.choice { input type="radio" name="expiry-mode" value="at" checked; " Expires at" }
                    label.choice { input type="radio" name="expiry-mode" value="never"; " No expiry" }
                    label for="expiry-at" { "Expires at (UTC)" }
                    input #expiry-at type="datetime-local" step="60";
                    p.field-error #expiry-at-error {}
                }
                p.field-error #expiry-error {}
                div.buttons {
                    button.secondary type="button" data-close { "Cancel" }
                    button.primary type="submit" #expiry-submit { "Save expiry" }
                }
            }
        }
        dialog #delete-dialog aria-labelledby="delete-title" {
            form #delete-form method="dialog" {
                h2 #delete-title { "Delete this key?" }
                p #delete-key {}
                p.warning { "Its credentials stop working at once. This cannot be undone." }
                p.field-error #delete-error {}
                div.buttons {
                    button.secondary type="button" data-close { "Cancel" }
                    button.danger type="submit" #delete-submit { "Delete key" }
                }
            }
        }
        @if matches!(data.target.kind, AccountKind::Master) {
            dialog #sub-dialog aria-labelledby="sub-title" {
                form #sub-form method="dialog" {
                    h2 #sub-title { "New sub-account" }
                    p { "A sub-account starts with no key: no channel is active until you create one." }
                    p.field-error #sub-error {}
                    div.buttons {
                        button.secondary type="button" data-close { "Cancel" }
                        button.primary type="submit" #sub-submit { "Open sub-account" }
                    }
                }
            }
        }
    }
}

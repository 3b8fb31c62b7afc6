//! The JSON the API reads and writes. Instants are RFC 3339 text in UTC;
//! ids are the domain's text forms (`acc_…`, `key_…`).

use apikeys::{
    Account, AccountId, AccountKind, AccountPolicy, ApiKey, AuditEvent, Authenticated, Channel,
    IssuedKey, KeyId, KeyState, Secret, WhitelistScope,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::{IntoParams, ToSchema};

/// An instant as RFC 3339 text.
pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// The five channel codes (documentation only: requests take the code as
/// text, case-insensitive, so that a bad one gets the domain's message).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum ChannelCode {
    /// FTP.
    Ftp,
    /// REST (the only channel with several keys per account).
    Rest,
    /// HTTP (query-string API).
    Http,
    /// Web Service (SOAP).
    WebService,
    /// Email.
    Email,
}

/// The audit kinds (documentation only; a test checks it lists the
/// domain's kinds, in their order).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum AuditKindCode {
    /// An account was opened.
    AccountOpened,
    /// A key was created.
    KeyCreated,
    /// A key's identifier or secret changed.
    CredentialsChanged,
    /// A key's IP whitelist changed.
    WhitelistChanged,
    /// A key was deleted.
    KeyDeleted,
    /// A REST token was issued.
    TokenIssued,
    /// A key's label was set, changed or removed.
    LabelChanged,
    /// A key was disabled (by hand, or as a dormant legacy default key).
    KeyDisabled,
    /// A key was enabled again.
    KeyEnabled,
    /// A key's expiry was set, changed or cleared.
    ExpiryChanged,
    /// An account was suspended.
    AccountSuspended,
    /// An account was resumed.
    AccountResumed,
    /// An account's policy changed.
    PolicyChanged,
}

/// What a key does now, all rules considered.
#[derive(Clone, Copy, Debug, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum KeyStateCode {
    /// It authenticates (subject to the whitelists).
    Active,
    /// It was disabled.
    Disabled,
    /// Its expiry, or the longest lifetime its master allows, has passed.
    Expired,
    /// Its account, or that account's master, is suspended.
    Suspended,
}

impl From<KeyState> for KeyStateCode {
    fn from(s: KeyState) -> Self {
        match s {
            KeyState::Active => KeyStateCode::Active,
            KeyState::Disabled => KeyStateCode::Disabled,
            KeyState::Expired => KeyStateCode::Expired,
            KeyState::Suspended => KeyStateCode::Suspended,
        }
    }
}

/// Which whitelist: the key's own, its account's account-wide list, or the
/// account's master's.
#[derive(Clone, Copy, Debug, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WhitelistScopeCode {
    /// The key's own whitelist.
    Key,
    /// The account-wide whitelist of the key's account.
    Account,
    /// The account-wide whitelist of the account's master.
    Master,
}

impl From<WhitelistScope> for WhitelistScopeCode {
    fn from(s: WhitelistScope) -> Self {
        match s {
            WhitelistScope::Key => WhitelistScopeCode::Key,
            WhitelistScope::Account => WhitelistScopeCode::Account,
            WhitelistScope::Master => WhitelistScopeCode::Master,
        }
    }
}

/// A secret received from a client: wrapped at once in the domain's
/// [`Secret`], which zeroizes on drop and never prints.
pub struct SecretInput(pub Secret);

impl<'de> Deserialize<'de> for SecretInput {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| SecretInput(Secret::new(s)))
    }
}

impl std::fmt::Debug for SecretInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A secret shown once, in the response that created it.
pub struct ShownSecret(pub Secret);

impl Serialize for ShownSecret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.expose_secret())
    }
}

/// Master or sub-account.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AccountKindCode {
    /// A master account.
    Master,
    /// A sub-account of a master (`parent_id`).
    Sub,
}

/// An account.
#[derive(Serialize, ToSchema)]
pub struct AccountView {
    /// Its id.
    #[schema(example = "acc_0123456789abcdef0123456789abcdef")]
    pub id: String,
    /// `master` or `sub`.
    pub kind: AccountKindCode,
    /// The master of a sub-account; `null` for a master.
    pub parent_id: Option<String>,
    /// When the account was created (an input: imported accounts keep theirs).
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Whether it is suspended: its keys (and, for a master, its
    /// sub-accounts' keys) refuse while it is.
    pub suspended: bool,
    /// The platform's own id for it, if it was opened with one; `null`
    /// otherwise.
    #[schema(example = "customer-4711")]
    pub external_id: Option<String>,
}

impl From<&Account> for AccountView {
    fn from(a: &Account) -> Self {
        AccountView {
            id: a.id.to_string(),
            kind: match a.kind {
                AccountKind::Master => AccountKindCode::Master,
                AccountKind::Sub { .. } => AccountKindCode::Sub,
            },
            parent_id: a.kind.parent().map(|p| p.to_string()),
            created_at: rfc3339(a.created_at),
            suspended: a.suspended,
            external_id: a.external_id.as_ref().map(|x| x.as_str().to_owned()),
        }
    }
}

/// An API key: never a hash; a secret only in the response that generated it.
#[derive(Serialize, ToSchema)]
pub struct KeyView {
    /// Its id.
    #[schema(example = "key_0123456789abcdef0123456789abcdef")]
    pub id: String,
    /// The account holding it.
    pub account_id: String,
    /// Its channel code.
    #[schema(value_type = ChannelCode)]
    pub channel: String,
    /// The identifier (username / client id).
    pub identifier: String,
    /// Its label, if any.
    pub label: Option<String>,
    /// The IP whitelist, normalised (empty: any address).
    #[schema(example = json!(["203.0.113.0/24", "2001:db8::1/128"]))]
    pub whitelist: Vec<String>,
    /// Until when the previous secret still works, during a grace period.
    #[schema(format = DateTime)]
    pub grace_until: Option<String>,
    /// When it was created.
    #[schema(format = DateTime)]
    pub created_at: String,
    /// When its credentials, whitelist or label last changed.
    #[schema(format = DateTime)]
    pub changed_at: String,
    /// Grows by one with every change.
    pub version: u64,
    /// Its own expiry: the first instant it no longer works; `null` if it
    /// has none (a master's longest lifetime may still end it: `state`
    /// tells).
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    /// Whether it is enabled (a disabled key refuses, and keeps everything
    /// else).
    pub enabled: bool,
    /// What it does now, its account, its master and the clock considered.
    pub state: KeyStateCode,
    /// Whether it was issued by default when its legacy master opened.
    pub legacy_default: bool,
    /// Its last successful authentication; `null` if never used.
    #[schema(format = DateTime)]
    pub last_used_at: Option<String>,
    /// The client address of that authentication; `null` if never used.
    pub last_used_address: Option<String>,
    /// The last authentication with the previous secret of the current
    /// grace period; `null` if it has not been used since the change.
    #[schema(format = DateTime)]
    pub previous_secret_last_used_at: Option<String>,
    /// The secret, shown this once: present only in the response of the call
    /// that generated it (a chosen secret is never echoed).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Password)]
    pub secret: Option<ShownSecret>,
}

impl From<&ApiKey> for KeyView {
    fn from(k: &ApiKey) -> Self {
        KeyView {
            id: k.id.to_string(),
            account_id: k.account_id.to_string(),
            channel: k.channel.code().to_owned(),
            identifier: k.identifier.clone(),
            label: k.label.clone(),
            whitelist: whitelist_view(&k.whitelist),
            grace_until: k.grace_until.map(rfc3339),
            created_at: rfc3339(k.created_at),
            changed_at: rfc3339(k.changed_at),
            version: k.version,
            expires_at: k.expires_at.map(rfc3339),
            enabled: k.enabled,
            state: k.state.into(),
            legacy_default: k.legacy_default,
            last_used_at: k.usage.last_used_at.map(rfc3339),
            last_used_address: k.usage.last_used_address.map(|a| a.to_string()),
            previous_secret_last_used_at: k.usage.previous_secret_last_used_at.map(rfc3339),
            secret: None,
        }
    }
}

impl From<IssuedKey> for KeyView {
    fn from(issued: IssuedKey) -> Self {
        KeyView {
            secret: issued.secret.map(ShownSecret),
            ..KeyView::from(&issued.key)
        }
    }
}

pub(crate) fn whitelist_view(w: &apikeys::Whitelist) -> Vec<String> {
    w.entries().iter().map(ToString::to_string).collect()
}

/// `POST /v1/accounts`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenAccountRequest {
    /// `master` or `sub`.
    pub kind: AccountKindCode,
    /// The master, for a sub-account (required for `sub`, refused for
    /// `master`).
    pub parent_id: Option<String>,
    /// When the account was created, RFC 3339; now if absent. A master
    /// created before the cutover (2023-06-05T22:00:00Z) gets four keys.
    #[schema(format = DateTime, example = "2021-05-01T00:00:00Z")]
    pub created_at: Option<String>,
    /// The platform's own id for it (1 to 128 characters, no control
    /// character, no whitespace at either end), unique among accounts and
    /// compared exactly; none if absent or `null`.
    #[schema(example = "customer-4711")]
    pub external_id: Option<String>,
}

/// The opened account and the default keys of a legacy master, with their
/// secrets (shown this once).
#[derive(Serialize, ToSchema)]
pub struct OpenedAccountView {
    /// The account.
    pub account: AccountView,
    /// Its default keys (none unless a master opened before the cutover).
    pub issued: Vec<KeyView>,
}

/// An account's keys.
#[derive(Serialize, ToSchema)]
pub struct KeysView {
    /// The keys, oldest first.
    pub keys: Vec<KeyView>,
}

/// `POST /v1/accounts/{account_id}/keys`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    /// The channel code (case-insensitive).
    #[schema(value_type = ChannelCode)]
    pub channel: String,
    /// A chosen identifier (3 to 64 of letters, digits, `.`, `_`, `-`);
    /// generated (UUID-shaped) if absent.
    pub identifier: Option<String>,
    /// A chosen secret (12 to 128 printable ASCII characters, not containing
    /// the identifier); generated and returned once if absent.
    #[schema(value_type = Option<String>, format = Password)]
    pub secret: Option<SecretInput>,
    /// An optional label (1 to 64 characters, no control characters).
    pub label: Option<String>,
    /// When the key stops working, RFC 3339: in the future, before
    /// 2200-01-01T00:00:00Z, and within the longest lifetime that applies
    /// (a master's over its sub-accounts' keys); none if absent or `null`,
    /// unless a longest lifetime applies: then it expires at its end.
    #[schema(format = DateTime, example = "2030-01-01T00:00:00Z")]
    pub expires_at: Option<String>,
}

/// `POST /v1/keys/{key_id}/credentials`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeCredentialsRequest {
    /// A new chosen identifier.
    pub identifier: Option<String>,
    /// A new chosen secret (not with `regenerate_secret`).
    #[schema(value_type = Option<String>, format = Password)]
    pub secret: Option<SecretInput>,
    /// Generate a new secret, returned once in the response.
    #[serde(default)]
    pub regenerate_secret: bool,
    /// Keep the previous secret working for this many seconds (only with a
    /// secret change; at most the policy's limit, 30 days by default).
    pub grace_seconds: Option<i64>,
}

/// A key's IP whitelist.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WhitelistBody {
    /// IPv4 or IPv6 addresses or networks; the response gives them
    /// normalised (host bits cleared, addresses as /32 or /128), sorted and
    /// de-duplicated.
    #[schema(example = json!(["203.0.113.0/24", "2001:db8::1"]))]
    pub entries: Vec<String>,
}

/// One recorded change.
#[derive(Serialize, ToSchema)]
pub struct AuditEventView {
    /// The account the change belongs to.
    pub account_id: String,
    /// The key concerned, if any.
    pub key_id: Option<String>,
    /// The key's channel, if any.
    #[schema(value_type = Option<ChannelCode>)]
    pub channel: Option<String>,
    /// When the change was made.
    #[schema(format = DateTime)]
    pub at: String,
    /// What kind of change.
    #[schema(value_type = AuditKindCode)]
    pub kind: String,
    /// `operator` or the acting account's id.
    pub actor: String,
    /// What changed, in words (never a secret).
    pub detail: String,
}

impl From<&AuditEvent> for AuditEventView {
    fn from(e: &AuditEvent) -> Self {
        AuditEventView {
            account_id: e.account_id.to_string(),
            key_id: e.key_id.map(|k| k.to_string()),
            channel: e.channel.map(|c| c.code().to_owned()),
            at: rfc3339(e.at),
            kind: e.kind.code().to_owned(),
            actor: e.actor.to_string(),
            detail: e.detail.clone(),
        }
    }
}

/// An account's audit trail.
#[derive(Serialize, ToSchema)]
pub struct AuditView {
    /// The events, newest first.
    pub events: Vec<AuditEventView>,
}

/// `?limit=` of the audit trail.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// How many events at most: 1 to 1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

/// `POST /v1/authenticate`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthenticateRequest {
    /// The channel the credentials are presented on.
    #[schema(value_type = ChannelCode)]
    pub channel: String,
    /// The identifier (username / client id).
    pub identifier: String,
    /// The secret.
    #[schema(value_type = String, format = Password)]
    pub secret: SecretInput,
}

/// A successful authentication: this account, this key.
///
/// Holds the ids themselves, written straight into the response: the hot
/// path allocates no text for them.
#[derive(Serialize, ToSchema)]
pub struct AuthenticatedView {
    /// The account (a sub-account's key authenticates as the sub-account).
    #[serde(serialize_with = "as_text")]
    #[schema(value_type = String, example = "acc_0123456789abcdef0123456789abcdef")]
    pub account_id: AccountId,
    /// The key.
    #[serde(serialize_with = "as_text")]
    #[schema(value_type = String, example = "key_0123456789abcdef0123456789abcdef")]
    pub key_id: KeyId,
    /// The channel.
    #[serde(serialize_with = "as_text")]
    #[schema(value_type = ChannelCode)]
    pub channel: Channel,
}

fn as_text<S: Serializer>(value: &impl std::fmt::Display, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

impl From<Authenticated> for AuthenticatedView {
    fn from(a: Authenticated) -> Self {
        AuthenticatedView {
            account_id: a.account_id,
            key_id: a.key_id,
            channel: a.channel,
        }
    }
}

/// `GET /http/whoami` query: the HTTP channel's style.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HttpCredentials {
    /// The HTTP key's identifier.
    pub username: Option<String>,
    /// The HTTP key's secret.
    #[param(value_type = Option<String>, format = Password)]
    pub password: Option<SecretInput>,
}

/// A REST token, shown once: `GET /v1/rest/authentication`.
#[derive(Serialize, ToSchema)]
pub struct TokenView {
    /// The token, for `Authorization: Bearer <token>`: shown this once.
    #[schema(example = "aktok0123456789ABCDEFGHIJabcdefghij0123456789xyz012")]
    pub token: String,
    /// Always `Bearer`.
    pub schema: &'static str,
    /// How long the token works, in minutes (the policy's lifetime).
    pub expires_in_minutes: i64,
    /// When it stops working.
    #[schema(format = DateTime)]
    pub expires_at: String,
}

/// `GET /healthz`.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
}

/// A master's sub-accounts.
#[derive(Serialize, ToSchema)]
pub struct AccountsView {
    /// Oldest first, ties by id.
    pub accounts: Vec<AccountView>,
}

/// A page of every account (operator only).
#[derive(Serialize, ToSchema)]
pub struct AccountPageView {
    /// Ascending by id.
    pub accounts: Vec<AccountView>,
    /// The `cursor` of the next page; `null` on the last page.
    #[schema(pattern = "^acc_[0-9a-f]{32}$")]
    pub next_cursor: Option<String>,
}

/// `?cursor=&limit=` of the list of accounts.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AccountsQuery {
    /// The `next_cursor` of the previous page; the first page without it
    /// (or with it empty).
    #[param(pattern = "^(acc_[0-9a-f]{32})?$")]
    pub cursor: Option<String>,
    /// How many accounts at most: 1 to 1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

/// `PATCH /v1/keys/{key_id}/whitelist`: entries to add and to remove, in
/// one change (an entry in both ends up removed; removing an absent entry
/// is no error). At least one of the two must hold an entry.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WhitelistPatch {
    /// Entries to add, parsed like `PUT`'s.
    #[schema(example = json!(["198.51.100.0/24"]))]
    pub add: Option<Vec<String>>,
    /// Entries to remove.
    #[schema(example = json!(["203.0.113.0/24"]))]
    pub remove: Option<Vec<String>>,
}

/// `?address=` of an explanation.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExplainQuery {
    /// An IPv4 or IPv6 address.
    #[param(example = "203.0.113.7")]
    pub address: String,
}

/// Whether an address would pass every whitelist that applies to a key
/// (its own, its account's account-wide list, its master's), and why.
#[derive(Serialize, ToSchema)]
pub struct ExplanationView {
    /// The address, as understood (IPv4-mapped IPv6 as IPv4).
    pub address: String,
    /// Whether it may use the key: it passes every list.
    pub allowed: bool,
    /// The most specific entry of the key's own whitelist containing it;
    /// `null` if none (or if that whitelist is empty).
    pub matched: Option<String>,
    /// The answer in a sentence.
    pub reason: String,
    /// The first list that refuses the address; `null` if none does.
    pub refused_by: Option<WhitelistScopeCode>,
    /// Each list that applies, in the order they are checked (key,
    /// account, then master for a sub-account's key).
    pub lists: Vec<ListExplanationView>,
}

/// How one whitelist judges an address.
#[derive(Serialize, ToSchema)]
pub struct ListExplanationView {
    /// Which list.
    pub scope: WhitelistScopeCode,
    /// Whether it lets the address through (an empty list lets every
    /// address through).
    pub allowed: bool,
    /// The most specific entry containing the address; `null` if none.
    pub matched: Option<String>,
}

/// `PATCH /v1/keys/{key_id}`: its label, expiry and enabled state, any
/// combination (at least one), in one change. A field left out stays.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyPatch {
    /// The new label (1 to 64 characters, none of them control, format or
    /// separator characters), or `null` to remove it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub label: Option<Option<String>>,
    /// The new expiry, RFC 3339 (in the future, before
    /// 2200-01-01T00:00:00Z, within the longest lifetime that applies), or
    /// `null` to clear it (refused when a longest lifetime applies).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, format = DateTime, example = "2030-01-01T00:00:00Z")]
    pub expires_at: Option<Option<String>>,
    /// `false` disables the key (its credentials refuse at once, nothing
    /// else changes), `true` enables it again. Never `null`.
    #[serde(default, deserialize_with = "not_null")]
    #[schema(value_type = bool)]
    pub enabled: Option<bool>,
}

/// `PATCH /v1/accounts/{account_id}`: suspend or resume it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountPatch {
    /// `true` suspends the account (its keys and tokens refuse from the
    /// next request on; a master's sub-accounts' too), `false` resumes it.
    pub suspended: bool,
}

/// An account's policy over its keys (`GET`/`PUT
/// /v1/accounts/{account_id}/policy`). `PUT` replaces the whole policy: a
/// field left out takes its default. A sub-account's policy holds only a
/// whitelist (its channels stay all five, its lifetime none).
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyBody {
    /// The account-wide whitelist, parsed and normalised like a key's:
    /// every key of the account (and of a master's sub-accounts) must pass
    /// it, besides its own. Empty: it restricts nothing.
    #[schema(example = json!(["203.0.113.0/24"]))]
    pub whitelist: Vec<String>,
    /// A master's: the channels its sub-accounts may hold keys for (all
    /// five if absent). A sub-account's key of another channel refuses.
    #[serde(default = "all_channels")]
    #[schema(value_type = Vec<ChannelCode>, example = json!(["rest", "http"]))]
    pub sub_account_channels: Vec<String>,
    /// A master's: the longest a sub-account's key may live, in seconds from
    /// its creation (1 to 3155760000, 100 years); `null` or absent: no
    /// limit.
    #[serde(default, deserialize_with = "integral_seconds")]
    pub max_key_lifetime_seconds: Option<i64>,
}

/// An integer as JSON Schema means it: `302` or `302.0` (a number whose
/// fraction is zero), never `302.5`. serde's `i64` alone refuses `302.0`,
/// which the document allows.
fn integral_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    use serde::de::Error as _;
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    if let Some(i) = n.as_i64() {
        return Ok(Some(i));
    }
    match n.as_f64() {
        // Within ±2^53 every integral f64 is exact, and far beyond any
        // lifetime allowed (the range is checked by the domain).
        Some(f) if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 => Ok(Some(f as i64)),
        _ => Err(D::Error::custom(format!(
            "max_key_lifetime_seconds must be a whole number of seconds, not {n}"
        ))),
    }
}

fn all_channels() -> Vec<String> {
    Channel::ALL.iter().map(|c| c.code().to_owned()).collect()
}

impl From<&AccountPolicy> for PolicyBody {
    fn from(p: &AccountPolicy) -> Self {
        PolicyBody {
            whitelist: whitelist_view(&p.whitelist),
            sub_account_channels: p
                .sub_account_channels
                .iter()
                .map(|c| c.code().to_owned())
                .collect(),
            max_key_lifetime_seconds: p.max_key_lifetime.map(|l| l.whole_seconds()),
        }
    }
}

/// `?days=` of an account's dormant keys.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DormantQuery {
    /// Unused for this many days (1 to 36500); a key never used counts from
    /// its creation.
    #[param(minimum = 1, maximum = 36500)]
    pub days: u32,
}

/// `?days=&legacy_defaults_only=&cursor=&limit=` of every account's
/// dormant keys.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AllDormantQuery {
    /// Unused for this many days (1 to 36500); a key never used counts from
    /// its creation.
    #[param(minimum = 1, maximum = 36500)]
    pub days: u32,
    /// Only legacy default keys never used (default `false`).
    pub legacy_defaults_only: Option<bool>,
    /// The `next_cursor` of the previous page; the first page without it
    /// (or with it empty).
    #[param(pattern = "^(key_[0-9a-f]{32})?$")]
    pub cursor: Option<String>,
    /// How many keys at most: 1 to 1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

/// A page of every account's dormant keys (operator only).
#[derive(Serialize, ToSchema)]
pub struct DormantPageView {
    /// Ascending by id.
    pub keys: Vec<KeyView>,
    /// The `cursor` of the next page; `null` on the last page.
    #[schema(pattern = "^key_[0-9a-f]{32}$")]
    pub next_cursor: Option<String>,
}

/// `POST /v1/dormant-keys/disable`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DormancyActionRequest {
    /// Only list the keys that would be disabled, changing nothing
    /// (default `true`: disabling takes `"dry_run": false`).
    #[serde(default = "yes")]
    #[schema(value_type = bool, default = true)]
    pub dry_run: bool,
}

fn yes() -> bool {
    true
}

/// The dormancy action's answer.
#[derive(Serialize, ToSchema)]
pub struct DormancyActionView {
    /// Whether this was a dry run (nothing changed).
    pub dry_run: bool,
    /// The keys disabled, or that would be; ascending by id.
    pub keys: Vec<KeyView>,
}

/// A field that may be `null` but must be present: `Some(None)` for `null`,
/// and `None` (the default) when it is missing.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// A boolean that may be missing (`None`, the default) but not `null`.
fn not_null<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    bool::deserialize(d).map(Some)
}

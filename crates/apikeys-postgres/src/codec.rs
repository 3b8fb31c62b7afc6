//! Values to columns and back (the encodings are listed in [`crate::schema`]).
//!
//! Decoding never panics: a value that cannot be read back is a
//! [`StoreError::Backend`] whose source is a [`BadRow`](apikeys::store::BadRow) naming the table and
//! the column.

use apikeys::store::encoding::{self, PolicyValues, RawAccount, RawEvent, RawKey, RawWhitelist};
use apikeys::{Account, AccountKind, AuditEvent, Channel, KeyRecord, StoreError};
use postgres::Row;
use postgres::types::{FromSql, ToSql};
use time::OffsetDateTime;

/// The columns of `apikeys_keys` that [`key_from_row`] reads, in its order.
pub(crate) const KEY_COLUMNS: &str = "id, account_id, channel, identifier, label, secret_hash, \
     previous_hash, previous_expires_at, whitelist, created_at, changed_at, version, \
     expires_at, enabled, legacy_default, last_used_at, last_used_address, \
     previous_secret_last_used_at";

/// How many columns [`KEY_COLUMNS`] names: where the next table's start in
/// a joined row.
pub(crate) const KEY_COLUMN_COUNT: usize = 18;

/// The columns of `apikeys_audit_events` that [`event_from_row`] reads, in
/// its order.
pub(crate) const EVENT_COLUMNS: &str = "account_id, key_id, channel, at, kind, actor, detail";

/// The columns of `apikeys_accounts` that [`account_from_row`] reads, in its
/// order.
pub(crate) const ACCOUNT_COLUMNS: &str = "id, kind, parent_id, created_at, suspended, \
     policy_whitelist, sub_account_channels, max_key_lifetime, external_id";

/// How many columns [`ACCOUNT_COLUMNS`] names.
pub(crate) const ACCOUNT_COLUMN_COUNT: usize = 9;

/// How many columns [`EVENT_COLUMNS`] names.
pub(crate) const EVENT_COLUMN_COUNT: usize = 7;

/// The SQL types of [`ACCOUNT_COLUMNS`], in order: what [`insert_many`]
/// casts each column's array to.
pub(crate) const ACCOUNT_TYPES: [&str; ACCOUNT_COLUMN_COUNT] = [
    "bytea", "text", "bytea", "bigint", "boolean", "text[]", "bigint", "bigint", "text",
];

/// The SQL types of [`KEY_COLUMNS`], in order.
pub(crate) const KEY_TYPES: [&str; KEY_COLUMN_COUNT] = [
    "bytea", "bytea", "text", "text", "text", "text", "text", "bigint", "text[]", "bigint",
    "bigint", "bigint", "bigint", "boolean", "boolean", "bigint", "text", "bigint",
];

/// The SQL types of [`EVENT_COLUMNS`], in order.
pub(crate) const EVENT_TYPES: [&str; EVENT_COLUMN_COUNT] =
    ["bytea", "bytea", "text", "bigint", "text", "text", "text"];

/// An `INSERT` of many rows in one statement: one array parameter per
/// column (`$1` the first column's values, and so on), unnested into rows in
/// the arrays' order. PostgreSQL has no array of arrays of differing
/// lengths, so a `text[]` column (a whitelist) travels as one text per row,
/// its entries joined by single spaces (normalised CIDR entries hold none),
/// and is split back by the statement.
pub(crate) fn insert_many(table: &str, columns: &str, types: &[&str]) -> String {
    let names: Vec<&str> = columns.split(',').map(str::trim).collect();
    let mut arrays = Vec::new();
    let mut values = Vec::new();
    for (i, (name, ty)) in names.iter().zip(types).enumerate() {
        match ty.strip_suffix("[]") {
            Some(element) => {
                arrays.push(format!("${}::{element}[]", i + 1));
                values.push(format!("string_to_array({name}, ' ')"));
            }
            None => {
                arrays.push(format!("${}::{ty}[]", i + 1));
                values.push((*name).to_owned());
            }
        }
    }
    format!(
        "INSERT INTO {table} ({columns}) SELECT {} FROM unnest({}) AS u({})",
        values.join(", "),
        arrays.join(", "),
        names.join(", ")
    )
}

/// `columns` (a list such as [`KEY_COLUMNS`]) qualified by a table alias,
/// for a join: `k.id, k.account_id, ...`.
pub(crate) fn qualified(columns: &str, alias: &str) -> String {
    columns
        .split(',')
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

// ----- writing ---------------------------------------------------------------

/// An instant as nanoseconds since 1970 (UTC), exactly.
pub(crate) fn instant(t: OffsetDateTime) -> Result<i64, StoreError> {
    Ok(encoding::instant_to_nanos(t)?)
}

/// A version as PostgreSQL's `bigint`.
pub(crate) fn version(v: u64) -> Result<i64, StoreError> {
    Ok(encoding::version_to_i64(v)?)
}

/// An account's columns, encoded once, in the order of [`ACCOUNT_COLUMNS`].
pub(crate) struct AccountParams<'a> {
    pub(crate) id: &'a [u8],
    pub(crate) kind: &'static str,
    pub(crate) parent_id: Option<&'a [u8]>,
    pub(crate) created_at: i64,
    pub(crate) suspended: bool,
    pub(crate) policy: PolicyValues,
    pub(crate) external_id: Option<&'a str>,
}

impl<'a> AccountParams<'a> {
    /// Encodes `a`: its creation instant, then its policy, the first that
    /// cannot be stored being the error.
    pub(crate) fn new(a: &'a Account) -> Result<Self, StoreError> {
        let created_at = instant(a.created_at)?;
        let policy = PolicyValues::new(&a.policy)?;
        let parent_id = match &a.kind {
            AccountKind::Sub { parent } => Some(parent.as_bytes().as_slice()),
            AccountKind::Master => None,
        };
        Ok(AccountParams {
            id: a.id.as_bytes(),
            kind: a.kind.code(),
            parent_id,
            created_at,
            suspended: a.suspended,
            policy,
            external_id: a.external_id.as_ref().map(|e| e.as_str()),
        })
    }
}

/// Many accounts' columns, for [`insert_many`] over [`ACCOUNT_COLUMNS`].
#[derive(Default)]
pub(crate) struct AccountRows<'a> {
    id: Vec<&'a [u8]>,
    kind: Vec<&'static str>,
    parent_id: Vec<Option<&'a [u8]>>,
    created_at: Vec<i64>,
    suspended: Vec<bool>,
    policy_whitelist: Vec<&'a str>,
    sub_account_channels: Vec<i64>,
    max_key_lifetime: Vec<Option<i64>>,
    external_id: Vec<Option<&'a str>>,
}

impl<'a> AccountRows<'a> {
    pub(crate) fn push(&mut self, p: &'a AccountParams<'a>) {
        self.id.push(p.id);
        self.kind.push(p.kind);
        self.parent_id.push(p.parent_id);
        self.created_at.push(p.created_at);
        self.suspended.push(p.suspended);
        self.policy_whitelist.push(&p.policy.whitelist_text);
        self.sub_account_channels
            .push(p.policy.sub_account_channels);
        self.max_key_lifetime.push(p.policy.max_key_lifetime);
        self.external_id.push(p.external_id);
    }

    pub(crate) fn params(&self) -> [&(dyn ToSql + Sync); ACCOUNT_COLUMN_COUNT] {
        [
            &self.id,
            &self.kind,
            &self.parent_id,
            &self.created_at,
            &self.suspended,
            &self.policy_whitelist,
            &self.sub_account_channels,
            &self.max_key_lifetime,
            &self.external_id,
        ]
    }
}

/// Many keys' columns, for [`insert_many`] over [`KEY_COLUMNS`].
#[derive(Default)]
pub(crate) struct KeyRows<'a> {
    id: Vec<&'a [u8]>,
    account_id: Vec<&'a [u8]>,
    channel: Vec<&'static str>,
    identifier: Vec<&'a str>,
    label: Vec<Option<&'a str>>,
    secret_hash: Vec<&'a str>,
    previous_hash: Vec<Option<&'a str>>,
    previous_expires_at: Vec<Option<i64>>,
    whitelist: Vec<String>,
    created_at: Vec<i64>,
    changed_at: Vec<i64>,
    version: Vec<i64>,
    expires_at: Vec<Option<i64>>,
    enabled: Vec<bool>,
    legacy_default: Vec<bool>,
    last_used_at: Vec<Option<i64>>,
    last_used_address: Vec<Option<&'a str>>,
    previous_secret_last_used_at: Vec<Option<i64>>,
}

impl<'a> KeyRows<'a> {
    pub(crate) fn push(&mut self, p: &'a KeyParams<'a>) {
        self.id.push(p.id);
        self.account_id.push(p.account_id);
        self.channel.push(p.channel);
        self.identifier.push(p.identifier);
        self.label.push(p.label);
        self.secret_hash.push(p.secret_hash);
        self.previous_hash.push(p.previous_hash);
        self.previous_expires_at.push(p.previous_expires_at);
        self.whitelist.push(p.whitelist.join(" "));
        self.created_at.push(p.created_at);
        self.changed_at.push(p.changed_at);
        self.version.push(p.version);
        self.expires_at.push(p.expires_at);
        self.enabled.push(p.enabled);
        self.legacy_default.push(p.legacy_default);
        self.last_used_at.push(p.last_used_at);
        self.last_used_address.push(p.last_used_address.as_deref());
        self.previous_secret_last_used_at
            .push(p.previous_secret_last_used_at);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.id.is_empty()
    }

    pub(crate) fn params(&self) -> [&(dyn ToSql + Sync); KEY_COLUMN_COUNT] {
        [
            &self.id,
            &self.account_id,
            &self.channel,
            &self.identifier,
            &self.label,
            &self.secret_hash,
            &self.previous_hash,
            &self.previous_expires_at,
            &self.whitelist,
            &self.created_at,
            &self.changed_at,
            &self.version,
            &self.expires_at,
            &self.enabled,
            &self.legacy_default,
            &self.last_used_at,
            &self.last_used_address,
            &self.previous_secret_last_used_at,
        ]
    }
}

/// Many audit events' columns, for [`insert_many`] over [`EVENT_COLUMNS`].
#[derive(Default)]
pub(crate) struct EventRows<'a> {
    account_id: Vec<&'a [u8]>,
    key_id: Vec<Option<&'a [u8]>>,
    channel: Vec<Option<&'static str>>,
    at: Vec<i64>,
    kind: Vec<&'static str>,
    actor: Vec<&'a str>,
    detail: Vec<&'a str>,
}

impl<'a> EventRows<'a> {
    pub(crate) fn push(&mut self, p: &'a EventParams<'a>) {
        self.account_id.push(p.account_id);
        self.key_id.push(p.key_id);
        self.channel.push(p.channel);
        self.at.push(p.at);
        self.kind.push(p.kind);
        self.actor.push(&p.actor);
        self.detail.push(p.detail);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.account_id.is_empty()
    }

    pub(crate) fn params(&self) -> [&(dyn ToSql + Sync); EVENT_COLUMN_COUNT] {
        [
            &self.account_id,
            &self.key_id,
            &self.channel,
            &self.at,
            &self.kind,
            &self.actor,
            &self.detail,
        ]
    }
}

/// A key's columns, encoded once, in the order of [`KEY_COLUMNS`].
pub(crate) struct KeyParams<'k> {
    pub(crate) id: &'k [u8],
    pub(crate) account_id: &'k [u8],
    pub(crate) channel: &'static str,
    pub(crate) identifier: &'k str,
    pub(crate) label: Option<&'k str>,
    pub(crate) secret_hash: &'k str,
    pub(crate) previous_hash: Option<&'k str>,
    pub(crate) previous_expires_at: Option<i64>,
    pub(crate) whitelist: Vec<String>,
    pub(crate) created_at: i64,
    pub(crate) changed_at: i64,
    pub(crate) version: i64,
    pub(crate) expires_at: Option<i64>,
    pub(crate) enabled: bool,
    pub(crate) legacy_default: bool,
    pub(crate) last_used_at: Option<i64>,
    pub(crate) last_used_address: Option<String>,
    pub(crate) previous_secret_last_used_at: Option<i64>,
}

impl<'k> KeyParams<'k> {
    pub(crate) fn new(k: &'k KeyRecord) -> Result<Self, StoreError> {
        let values = encoding::KeyValues::new(k)?;
        Ok(KeyParams {
            id: k.id.as_bytes(),
            account_id: k.account_id.as_bytes(),
            channel: k.channel.code(),
            identifier: &k.identifier,
            label: k.label.as_deref(),
            secret_hash: k.secret_hash.as_str(),
            previous_hash: values.previous_hash(),
            previous_expires_at: values.previous_expires_at,
            whitelist: encoding::whitelist_entries(&k.whitelist),
            created_at: values.created_at,
            changed_at: values.changed_at,
            version: values.version,
            expires_at: values.expires_at,
            enabled: k.enabled,
            legacy_default: k.legacy_default,
            last_used_at: values.last_used_at,
            last_used_address: values.last_used_address,
            previous_secret_last_used_at: values.previous_secret_last_used_at,
        })
    }
}

impl<'k> KeyParams<'k> {
    /// The columns an update writes, encoded: not the creation instant,
    /// which an update keeps whatever the record says, so that one out of
    /// range is ignored rather than refused (`created_at` is left 0 and
    /// must not be written), nor the legacy mark and the usage, which an
    /// update keeps too (left as the record says, unencoded, and not to be
    /// written either).
    pub(crate) fn for_update(k: &'k KeyRecord) -> Result<Self, StoreError> {
        Ok(KeyParams {
            id: k.id.as_bytes(),
            account_id: k.account_id.as_bytes(),
            channel: k.channel.code(),
            identifier: &k.identifier,
            label: k.label.as_deref(),
            secret_hash: k.secret_hash.as_str(),
            previous_hash: k.previous_secret.as_ref().map(|p| p.hash.as_str()),
            previous_expires_at: k
                .previous_secret
                .as_ref()
                .map(|p| instant(p.expires_at))
                .transpose()?,
            whitelist: encoding::whitelist_entries(&k.whitelist),
            created_at: 0,
            changed_at: instant(k.changed_at)?,
            version: version(k.version)?,
            expires_at: k.expires_at.map(instant).transpose()?,
            enabled: k.enabled,
            legacy_default: k.legacy_default,
            last_used_at: None,
            last_used_address: None,
            previous_secret_last_used_at: None,
        })
    }
}

/// An audit event's columns, encoded once, in the order of [`EVENT_COLUMNS`].
pub(crate) struct EventParams<'e> {
    pub(crate) account_id: &'e [u8],
    pub(crate) key_id: Option<&'e [u8]>,
    pub(crate) channel: Option<&'static str>,
    pub(crate) at: i64,
    pub(crate) kind: &'static str,
    pub(crate) actor: String,
    pub(crate) detail: &'e str,
}

impl<'e> EventParams<'e> {
    pub(crate) fn new(e: &'e AuditEvent) -> Result<Self, StoreError> {
        Ok(EventParams {
            account_id: e.account_id.as_bytes(),
            key_id: e.key_id.as_ref().map(|k| k.as_bytes().as_slice()),
            channel: e.channel.map(Channel::code),
            at: instant(e.at)?,
            kind: e.kind.code(),
            actor: e.actor.to_string(),
            detail: &e.detail,
        })
    }
}

// ----- reading ---------------------------------------------------------------

/// Reads typed columns of one row of one table, naming both in any error;
/// the values themselves are decoded by `apikeys::store::encoding`.
/// `base` is where the table's columns start in the row (0 unless the row
/// is a join's).
struct Columns<'r> {
    row: &'r Row,
    table: &'static str,
    base: usize,
}

impl<'r> Columns<'r> {
    fn get<T: FromSql<'r>>(&self, idx: usize, column: &'static str) -> Result<T, StoreError> {
        self.row
            .try_get(self.base + idx)
            .map_err(|e| StoreError::bad_row(self.table, column, e))
    }
}

/// A row of [`KEY_COLUMNS`].
pub(crate) fn key_from_row(row: &Row) -> Result<KeyRecord, StoreError> {
    let c = Columns {
        row,
        table: "apikeys_keys",
        base: 0,
    };
    RawKey {
        id: c.get(0, "id")?,
        account_id: c.get(1, "account_id")?,
        channel: c.get(2, "channel")?,
        identifier: c.get(3, "identifier")?,
        label: c.get(4, "label")?,
        secret_hash: c.get(5, "secret_hash")?,
        previous_hash: c.get(6, "previous_hash")?,
        previous_expires_at: c.get(7, "previous_expires_at")?,
        whitelist: RawWhitelist::Entries(c.get(8, "whitelist")?),
        created_at: c.get(9, "created_at")?,
        changed_at: c.get(10, "changed_at")?,
        version: c.get(11, "version")?,
        expires_at: c.get(12, "expires_at")?,
        enabled: c.get(13, "enabled")?,
        legacy_default: c.get(14, "legacy_default")?,
        last_used_at: c.get(15, "last_used_at")?,
        last_used_address: c.get(16, "last_used_address")?,
        previous_secret_last_used_at: c.get(17, "previous_secret_last_used_at")?,
    }
    .decode(c.table)
}

/// A row of [`ACCOUNT_COLUMNS`].
pub(crate) fn account_from_row(row: &Row) -> Result<Account, StoreError> {
    account_at(row, 0)
}

/// The [`ACCOUNT_COLUMNS`] of a joined row, starting at `base`.
pub(crate) fn account_at(row: &Row, base: usize) -> Result<Account, StoreError> {
    let c = Columns {
        row,
        table: "apikeys_accounts",
        base,
    };
    RawAccount {
        id: c.get(0, "id")?,
        kind: c.get(1, "kind")?,
        parent_id: c.get(2, "parent_id")?,
        created_at: c.get(3, "created_at")?,
        suspended: c.get(4, "suspended")?,
        policy_whitelist: RawWhitelist::Entries(c.get(5, "policy_whitelist")?),
        sub_account_channels: c.get(6, "sub_account_channels")?,
        max_key_lifetime: c.get(7, "max_key_lifetime")?,
        external_id: c.get(8, "external_id")?,
    }
    .decode(c.table)
}

/// The [`ACCOUNT_COLUMNS`] of a `LEFT JOIN`-ed account starting at `base`:
/// `None` when the join found none (its id is NULL).
pub(crate) fn opt_account_at(row: &Row, base: usize) -> Result<Option<Account>, StoreError> {
    let id: Option<&[u8]> = row
        .try_get(base)
        .map_err(|e| StoreError::bad_row("apikeys_accounts", "id", e))?;
    match id {
        None => Ok(None),
        Some(_) => account_at(row, base).map(Some),
    }
}

/// A row of [`EVENT_COLUMNS`].
pub(crate) fn event_from_row(row: &Row) -> Result<AuditEvent, StoreError> {
    let c = Columns {
        row,
        table: "apikeys_audit_events",
        base: 0,
    };
    RawEvent {
        account_id: c.get(0, "account_id")?,
        key_id: c.get(1, "key_id")?,
        channel: c.get(2, "channel")?,
        at: c.get(3, "at")?,
        kind: c.get(4, "kind")?,
        actor: c.get(5, "actor")?,
        detail: c.get(6, "detail")?,
    }
    .decode(c.table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_column_lists_have_their_counts() {
        for (columns, count) in [
            (ACCOUNT_COLUMNS, ACCOUNT_COLUMN_COUNT),
            (KEY_COLUMNS, KEY_COLUMN_COUNT),
            (EVENT_COLUMNS, EVENT_COLUMN_COUNT),
        ] {
            assert_eq!(columns.split(',').count(), count, "{columns}");
        }
    }

    #[test]
    fn a_many_row_insert_binds_one_array_per_column() {
        let sql = insert_many("t", "id, whitelist", &["bytea", "text[]"]);
        assert_eq!(
            sql,
            "INSERT INTO t (id, whitelist) SELECT id, string_to_array(whitelist, ' ') \
             FROM unnest($1::bytea[], $2::text[]) AS u(id, whitelist)"
        );
    }
}

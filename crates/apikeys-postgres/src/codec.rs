//! Values to columns and back (the encodings are listed in [`crate::schema`]).
//!
//! Decoding never panics: a value that cannot be read back is a
//! [`StoreError::Backend`] whose source is a [`BadRow`](apikeys::store::BadRow) naming the table and
//! the column.

use apikeys::store::encoding::{self, RawAccount, RawEvent, RawKey, RawWhitelist};
use apikeys::{Account, AuditEvent, Channel, KeyRecord, StoreError};
use postgres::Row;
use postgres::types::FromSql;
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
     policy_whitelist, sub_account_channels, max_key_lifetime";

/// How many columns [`ACCOUNT_COLUMNS`] names.
pub(crate) const ACCOUNT_COLUMN_COUNT: usize = 8;

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

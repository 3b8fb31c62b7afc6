//! Values to columns and back (the encodings are listed in [`crate::schema`]).
//!
//! Decoding never panics: a value that cannot be read back is a
//! [`StoreError::Backend`] whose source is a [`BadRow`](apikeys::store::BadRow) naming the table and
//! the column.

use apikeys::store::encoding::{self, RawAccount, RawEvent, RawKey, RawWhitelist};
use apikeys::{Account, AuditEvent, KeyRecord, StoreError, Whitelist};
use rusqlite::Row;
use rusqlite::types::ValueRef;
use time::OffsetDateTime;

/// The columns of `keys` that [`key_from_row`] reads, in its order (a macro,
/// so that queries are `concat!`-ed at compile time), qualified by the
/// table's alias in a query (`k`), so that a join can read them as well.
macro_rules! key_columns {
    () => {
        "k.id, k.account_id, k.channel, k.identifier, k.label, k.secret_hash, \
         k.previous_hash, k.previous_expires_at, k.whitelist, k.created_at, k.changed_at, \
         k.version, k.expires_at, k.enabled, k.legacy_default, k.last_used_at, \
         k.last_used_address, k.previous_secret_last_used_at"
    };
}

/// How many columns [`key_columns!`] names: where the next table's start in
/// a joined row.
pub(crate) const KEY_COLUMNS: usize = 18;

/// The columns of `audit_events` that [`event_from_row`] reads, in its order.
macro_rules! event_columns {
    () => {
        "account_id, key_id, channel, at, kind, actor, detail"
    };
}

/// The columns of `accounts` that [`account_from_row`] reads, in its order,
/// qualified by the alias given (`"a"` for an account, `"m"` for its
/// master in a join).
macro_rules! account_columns {
    ($t:literal) => {
        concat!(
            $t,
            ".id, ",
            $t,
            ".kind, ",
            $t,
            ".parent_id, ",
            $t,
            ".created_at, ",
            $t,
            ".suspended, ",
            $t,
            ".policy_whitelist, ",
            $t,
            ".sub_account_channels, ",
            $t,
            ".max_key_lifetime, ",
            $t,
            ".external_id"
        )
    };
}

/// How many columns [`account_columns!`] names.
pub(crate) const ACCOUNT_COLUMNS: usize = 9;

pub(crate) fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::backend(e)
}

// ----- writing ---------------------------------------------------------------

/// An instant as nanoseconds since 1970 (UTC), exactly.
pub(crate) fn instant(t: OffsetDateTime) -> Result<i64, StoreError> {
    Ok(encoding::instant_to_nanos(t)?)
}

/// The whitelist's normalised entries in CIDR form, separated by spaces.
pub(crate) fn whitelist(w: &Whitelist) -> String {
    encoding::whitelist_to_text(w)
}

// ----- reading ---------------------------------------------------------------

/// Reads typed columns of one row of one table, naming both in any error;
/// the values themselves are decoded by `apikeys::store::encoding`.
/// `base` is where the table's columns start in the row (0 unless the row
/// is a join's).
struct Columns<'r, 's> {
    row: &'r Row<'s>,
    table: &'static str,
    base: usize,
}

impl<'r, 's> Columns<'r, 's> {
    fn value(&self, idx: usize) -> Result<ValueRef<'r>, StoreError> {
        self.row.get_ref(self.base + idx).map_err(backend)
    }

    fn wrong_type(&self, column: &'static str, expected: &str, found: ValueRef<'_>) -> StoreError {
        StoreError::bad_row(
            self.table,
            column,
            format!("expected {expected}, found {}", found.data_type()),
        )
    }

    fn missing(&self, column: &'static str) -> StoreError {
        StoreError::bad_row(self.table, column, "missing value")
    }

    fn opt_blob(&self, idx: usize, column: &'static str) -> Result<Option<&'r [u8]>, StoreError> {
        match self.value(idx)? {
            ValueRef::Null => Ok(None),
            ValueRef::Blob(b) => Ok(Some(b)),
            other => Err(self.wrong_type(column, "BLOB", other)),
        }
    }

    fn blob(&self, idx: usize, column: &'static str) -> Result<&'r [u8], StoreError> {
        self.opt_blob(idx, column)?
            .ok_or_else(|| self.missing(column))
    }

    fn opt_text(&self, idx: usize, column: &'static str) -> Result<Option<&'r str>, StoreError> {
        match self.value(idx)? {
            ValueRef::Null => Ok(None),
            ValueRef::Text(t) => std::str::from_utf8(t)
                .map(Some)
                .map_err(|e| StoreError::bad_row(self.table, column, e)),
            other => Err(self.wrong_type(column, "TEXT", other)),
        }
    }

    fn text(&self, idx: usize, column: &'static str) -> Result<&'r str, StoreError> {
        self.opt_text(idx, column)?
            .ok_or_else(|| self.missing(column))
    }

    fn opt_int(&self, idx: usize, column: &'static str) -> Result<Option<i64>, StoreError> {
        match self.value(idx)? {
            ValueRef::Null => Ok(None),
            ValueRef::Integer(i) => Ok(Some(i)),
            other => Err(self.wrong_type(column, "INTEGER", other)),
        }
    }

    fn int(&self, idx: usize, column: &'static str) -> Result<i64, StoreError> {
        self.opt_int(idx, column)?
            .ok_or_else(|| self.missing(column))
    }

    /// A boolean kept as the integer 0 or 1; anything else is a bad row.
    fn bool(&self, idx: usize, column: &'static str) -> Result<bool, StoreError> {
        match self.int(idx, column)? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(StoreError::bad_row(
                self.table,
                column,
                format!("expected 0 or 1, found {other}"),
            )),
        }
    }
}

/// A row of [`key_columns!`].
pub(crate) fn key_from_row(row: &Row<'_>) -> Result<KeyRecord, StoreError> {
    let c = Columns {
        row,
        table: "keys",
        base: 0,
    };
    RawKey {
        id: c.blob(0, "id")?,
        account_id: c.blob(1, "account_id")?,
        channel: c.text(2, "channel")?,
        identifier: c.text(3, "identifier")?,
        label: c.opt_text(4, "label")?,
        secret_hash: c.text(5, "secret_hash")?,
        previous_hash: c.opt_text(6, "previous_hash")?,
        previous_expires_at: c.opt_int(7, "previous_expires_at")?,
        whitelist: RawWhitelist::Text(c.text(8, "whitelist")?),
        created_at: c.int(9, "created_at")?,
        changed_at: c.int(10, "changed_at")?,
        version: c.int(11, "version")?,
        expires_at: c.opt_int(12, "expires_at")?,
        enabled: c.bool(13, "enabled")?,
        legacy_default: c.bool(14, "legacy_default")?,
        last_used_at: c.opt_int(15, "last_used_at")?,
        last_used_address: c.opt_text(16, "last_used_address")?,
        previous_secret_last_used_at: c.opt_int(17, "previous_secret_last_used_at")?,
    }
    .decode(c.table)
}

/// A row of [`account_columns!`].
pub(crate) fn account_from_row(row: &Row<'_>) -> Result<Account, StoreError> {
    account_at(row, 0)
}

/// The [`account_columns!`] of a joined row starting at `base`.
pub(crate) fn account_at(row: &Row<'_>, base: usize) -> Result<Account, StoreError> {
    let c = Columns {
        row,
        table: "accounts",
        base,
    };
    RawAccount {
        id: c.blob(0, "id")?,
        kind: c.text(1, "kind")?,
        parent_id: c.opt_blob(2, "parent_id")?,
        created_at: c.int(3, "created_at")?,
        suspended: c.bool(4, "suspended")?,
        policy_whitelist: RawWhitelist::Text(c.text(5, "policy_whitelist")?),
        sub_account_channels: c.int(6, "sub_account_channels")?,
        max_key_lifetime: c.opt_int(7, "max_key_lifetime")?,
        external_id: c.opt_text(8, "external_id")?,
    }
    .decode(c.table)
}

/// The [`account_columns!`] of a `LEFT JOIN`-ed account starting at
/// `base`: `None` when the join found none (its id is NULL).
pub(crate) fn opt_account_at(row: &Row<'_>, base: usize) -> Result<Option<Account>, StoreError> {
    match row.get_ref(base).map_err(backend)? {
        ValueRef::Null => Ok(None),
        _ => account_at(row, base).map(Some),
    }
}

/// A row of [`event_columns!`].
pub(crate) fn event_from_row(row: &Row<'_>) -> Result<AuditEvent, StoreError> {
    let c = Columns {
        row,
        table: "audit_events",
        base: 0,
    };
    RawEvent {
        account_id: c.blob(0, "account_id")?,
        key_id: c.opt_blob(1, "key_id")?,
        channel: c.opt_text(2, "channel")?,
        at: c.int(3, "at")?,
        kind: c.text(4, "kind")?,
        actor: c.text(5, "actor")?,
        detail: c.text(6, "detail")?,
    }
    .decode(c.table)
}

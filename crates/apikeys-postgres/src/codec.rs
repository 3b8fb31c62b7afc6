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
     previous_hash, previous_expires_at, whitelist, created_at, changed_at, version";

/// The columns of `apikeys_audit_events` that [`event_from_row`] reads, in
/// its order.
pub(crate) const EVENT_COLUMNS: &str = "account_id, key_id, channel, at, kind, actor, detail";

/// The columns of `apikeys_accounts` that [`account_from_row`] reads, in its
/// order.
pub(crate) const ACCOUNT_COLUMNS: &str = "id, kind, parent_id, created_at";

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
        })
    }
}

impl<'k> KeyParams<'k> {
    /// The columns an update writes, encoded: not the creation instant,
    /// which an update keeps whatever the record says, so that one out of
    /// range is ignored rather than refused (`created_at` is left 0 and
    /// must not be written).
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
struct Columns<'r> {
    row: &'r Row,
    table: &'static str,
}

impl<'r> Columns<'r> {
    fn get<T: FromSql<'r>>(&self, idx: usize, column: &'static str) -> Result<T, StoreError> {
        self.row
            .try_get(idx)
            .map_err(|e| StoreError::bad_row(self.table, column, e))
    }
}

/// A row of [`KEY_COLUMNS`].
pub(crate) fn key_from_row(row: &Row) -> Result<KeyRecord, StoreError> {
    let c = Columns {
        row,
        table: "apikeys_keys",
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
    }
    .decode(c.table)
}

/// A row of [`ACCOUNT_COLUMNS`].
pub(crate) fn account_from_row(row: &Row) -> Result<Account, StoreError> {
    let c = Columns {
        row,
        table: "apikeys_accounts",
    };
    RawAccount {
        id: c.get(0, "id")?,
        kind: c.get(1, "kind")?,
        parent_id: c.get(2, "parent_id")?,
        created_at: c.get(3, "created_at")?,
    }
    .decode(c.table)
}

/// A row of [`EVENT_COLUMNS`].
pub(crate) fn event_from_row(row: &Row) -> Result<AuditEvent, StoreError> {
    let c = Columns {
        row,
        table: "apikeys_audit_events",
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

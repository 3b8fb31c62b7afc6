//! Values to columns and back (the encodings are listed in [`crate::schema`]).
//!
//! Decoding never panics: a value that cannot be read back is a
//! [`StoreError::Backend`] whose source is a [`BadRow`](apikeys::store::BadRow) naming the table and
//! the column.

use crate::error::Unstorable;
use apikeys::key::PreviousSecret;
use apikeys::whitelist::parse_entry;
use apikeys::{
    Account, AccountId, AccountKind, Actor, AuditEvent, AuditKind, Channel, KeyId, KeyRecord,
    StoreError, Whitelist,
};
use rusqlite::Row;
use rusqlite::types::ValueRef;
use std::fmt::Write as _;
use time::OffsetDateTime;

/// The columns of `keys` that [`key_from_row`] reads, in its order (a macro,
/// so that queries are `concat!`-ed at compile time).
macro_rules! key_columns {
    () => {
        "id, account_id, channel, identifier, label, secret_hash, previous_hash, \
         previous_expires_at, whitelist, created_at, changed_at, version"
    };
}

/// The columns of `audit_events` that [`event_from_row`] reads, in its order.
macro_rules! event_columns {
    () => {
        "account_id, key_id, channel, at, kind, actor, detail"
    };
}

/// The columns of `accounts` that [`account_from_row`] reads, in its order.
macro_rules! account_columns {
    () => {
        "id, kind, parent_id, created_at"
    };
}

pub(crate) fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::backend(e)
}

// ----- writing ---------------------------------------------------------------

/// An instant as nanoseconds since 1970 (UTC), exactly.
pub(crate) fn instant(t: OffsetDateTime) -> Result<i64, StoreError> {
    i64::try_from(t.unix_timestamp_nanos()).map_err(|_| StoreError::backend(Unstorable::Instant(t)))
}

/// A version as SQLite's signed integer.
pub(crate) fn version(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::backend(Unstorable::Version(v)))
}

/// The whitelist's normalised entries in CIDR form, separated by spaces.
pub(crate) fn whitelist(w: &Whitelist) -> String {
    let mut out = String::new();
    for (i, entry) in w.entries().iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        // Writing to a String cannot fail.
        let _ = write!(out, "{entry}");
    }
    out
}

// ----- reading ---------------------------------------------------------------

/// Reads one column of one table, naming both in any error.
struct Columns<'r, 's> {
    row: &'r Row<'s>,
    table: &'static str,
}

impl<'r, 's> Columns<'r, 's> {
    fn value(&self, idx: usize) -> Result<ValueRef<'r>, StoreError> {
        self.row.get_ref(idx).map_err(backend)
    }

    fn bytes16(&self, idx: usize, column: &'static str) -> Result<Option<[u8; 16]>, StoreError> {
        match self.value(idx)? {
            ValueRef::Null => Ok(None),
            ValueRef::Blob(b) => <[u8; 16]>::try_from(b).map(Some).map_err(|_| {
                StoreError::bad_row(
                    self.table,
                    column,
                    format!("an id must be 16 bytes, found {}", b.len()),
                )
            }),
            other => Err(StoreError::bad_row(
                self.table,
                column,
                format!("an id must be a BLOB, found {}", other.data_type()),
            )),
        }
    }

    fn id(&self, idx: usize, column: &'static str) -> Result<[u8; 16], StoreError> {
        self.bytes16(idx, column)?
            .ok_or_else(|| StoreError::bad_row(self.table, column, "missing id"))
    }

    fn opt_text(&self, idx: usize, column: &'static str) -> Result<Option<&'r str>, StoreError> {
        match self.value(idx)? {
            ValueRef::Null => Ok(None),
            ValueRef::Text(t) => std::str::from_utf8(t)
                .map(Some)
                .map_err(|e| StoreError::bad_row(self.table, column, e)),
            other => Err(StoreError::bad_row(
                self.table,
                column,
                format!("expected TEXT, found {}", other.data_type()),
            )),
        }
    }

    fn text(&self, idx: usize, column: &'static str) -> Result<&'r str, StoreError> {
        self.opt_text(idx, column)?
            .ok_or_else(|| StoreError::bad_row(self.table, column, "missing text"))
    }

    fn opt_int(&self, idx: usize, column: &'static str) -> Result<Option<i64>, StoreError> {
        match self.value(idx)? {
            ValueRef::Null => Ok(None),
            ValueRef::Integer(i) => Ok(Some(i)),
            other => Err(StoreError::bad_row(
                self.table,
                column,
                format!("expected INTEGER, found {}", other.data_type()),
            )),
        }
    }

    fn int(&self, idx: usize, column: &'static str) -> Result<i64, StoreError> {
        self.opt_int(idx, column)?
            .ok_or_else(|| StoreError::bad_row(self.table, column, "missing integer"))
    }

    fn instant(&self, idx: usize, column: &'static str) -> Result<OffsetDateTime, StoreError> {
        let nanos = self.int(idx, column)?;
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
            .map_err(|e| StoreError::bad_row(self.table, column, e))
    }

    fn channel(&self, idx: usize, column: &'static str) -> Result<Channel, StoreError> {
        self.text(idx, column)?
            .parse()
            .map_err(|e| StoreError::bad_row(self.table, column, e))
    }
}

/// A row of [`key_columns!`].
pub(crate) fn key_from_row(row: &Row<'_>) -> Result<KeyRecord, StoreError> {
    let c = Columns { row, table: "keys" };
    let previous_hash = c.opt_text(6, "previous_hash")?;
    let previous_expires_at = c.opt_int(7, "previous_expires_at")?;
    let previous_secret = match (previous_hash, previous_expires_at) {
        (None, None) => None,
        (Some(hash), Some(_)) => Some(PreviousSecret {
            hash: hash.to_owned(),
            expires_at: c.instant(7, "previous_expires_at")?,
        }),
        _ => {
            return Err(StoreError::bad_row(
                "keys",
                "previous_hash",
                "previous_hash and previous_expires_at must be both set or both NULL",
            ));
        }
    };
    let version = c.int(11, "version")?;
    let version = u64::try_from(version)
        .ok()
        .filter(|v| *v >= 1)
        .ok_or_else(|| {
            StoreError::bad_row("keys", "version", format!("version {version} is below 1"))
        })?;
    Ok(KeyRecord {
        id: KeyId::from_bytes(c.id(0, "id")?),
        account_id: AccountId::from_bytes(c.id(1, "account_id")?),
        channel: c.channel(2, "channel")?,
        identifier: c.text(3, "identifier")?.to_owned(),
        label: c.opt_text(4, "label")?.map(str::to_owned),
        secret_hash: c.text(5, "secret_hash")?.to_owned(),
        previous_secret,
        whitelist: parse_whitelist(c.text(8, "whitelist")?)?,
        created_at: c.instant(9, "created_at")?,
        changed_at: c.instant(10, "changed_at")?,
        version,
    })
}

fn parse_whitelist(text: &str) -> Result<Whitelist, StoreError> {
    if text.is_empty() {
        return Ok(Whitelist::default());
    }
    let entries = text
        .split(' ')
        .map(parse_entry)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StoreError::bad_row("keys", "whitelist", e))?;
    Whitelist::new(entries, usize::MAX).map_err(|e| StoreError::bad_row("keys", "whitelist", e))
}

/// A row of [`account_columns!`].
pub(crate) fn account_from_row(row: &Row<'_>) -> Result<Account, StoreError> {
    let c = Columns {
        row,
        table: "accounts",
    };
    let parent = c.bytes16(2, "parent_id")?.map(AccountId::from_bytes);
    let kind = match (c.text(1, "kind")?, parent) {
        ("master", None) => AccountKind::Master,
        ("sub", Some(parent)) => AccountKind::Sub { parent },
        (kind, _) => {
            return Err(StoreError::bad_row(
                "accounts",
                "kind",
                format!(
                    "kind `{kind}` does not match parent_id: a master has none, a sub-account has one"
                ),
            ));
        }
    };
    Ok(Account {
        id: AccountId::from_bytes(c.id(0, "id")?),
        kind,
        created_at: c.instant(3, "created_at")?,
    })
}

/// A row of [`event_columns!`].
pub(crate) fn event_from_row(row: &Row<'_>) -> Result<AuditEvent, StoreError> {
    let c = Columns {
        row,
        table: "audit_events",
    };
    let channel = match c.opt_text(2, "channel")? {
        None => None,
        Some(code) => Some(
            code.parse::<Channel>()
                .map_err(|e| StoreError::bad_row("audit_events", "channel", e))?,
        ),
    };
    Ok(AuditEvent {
        account_id: AccountId::from_bytes(c.id(0, "account_id")?),
        key_id: c.bytes16(1, "key_id")?.map(KeyId::from_bytes),
        channel,
        at: c.instant(3, "at")?,
        kind: c
            .text(4, "kind")?
            .parse::<AuditKind>()
            .map_err(|e| StoreError::bad_row("audit_events", "kind", e))?,
        actor: c
            .text(5, "actor")?
            .parse::<Actor>()
            .map_err(|e| StoreError::bad_row("audit_events", "actor", e))?,
        detail: c.text(6, "detail")?.to_owned(),
    })
}

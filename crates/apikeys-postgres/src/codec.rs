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
    i64::try_from(t.unix_timestamp_nanos()).map_err(|_| StoreError::backend(Unstorable::Instant(t)))
}

/// A version as PostgreSQL's `bigint`.
pub(crate) fn version(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::backend(Unstorable::Version(v)))
}

/// The whitelist's normalised entries in CIDR form.
pub(crate) fn whitelist(w: &Whitelist) -> Vec<String> {
    w.entries().iter().map(ToString::to_string).collect()
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
        Ok(KeyParams {
            id: k.id.as_bytes(),
            account_id: k.account_id.as_bytes(),
            channel: k.channel.code(),
            identifier: &k.identifier,
            label: k.label.as_deref(),
            secret_hash: &k.secret_hash,
            previous_hash: k.previous_secret.as_ref().map(|p| p.hash.as_str()),
            previous_expires_at: k
                .previous_secret
                .as_ref()
                .map(|p| instant(p.expires_at))
                .transpose()?,
            whitelist: whitelist(&k.whitelist),
            created_at: instant(k.created_at)?,
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

/// Reads the columns of one row of one table, naming both in any error.
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

    fn opt_id(&self, idx: usize, column: &'static str) -> Result<Option<[u8; 16]>, StoreError> {
        match self.get::<Option<&[u8]>>(idx, column)? {
            None => Ok(None),
            Some(b) => <[u8; 16]>::try_from(b).map(Some).map_err(|_| {
                StoreError::bad_row(
                    self.table,
                    column,
                    format!("an id must be 16 bytes, found {}", b.len()),
                )
            }),
        }
    }

    fn id(&self, idx: usize, column: &'static str) -> Result<[u8; 16], StoreError> {
        self.opt_id(idx, column)?
            .ok_or_else(|| StoreError::bad_row(self.table, column, "missing id"))
    }

    fn instant_of(&self, nanos: i64, column: &'static str) -> Result<OffsetDateTime, StoreError> {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
            .map_err(|e| StoreError::bad_row(self.table, column, e))
    }

    fn instant(&self, idx: usize, column: &'static str) -> Result<OffsetDateTime, StoreError> {
        let nanos = self.get::<i64>(idx, column)?;
        self.instant_of(nanos, column)
    }

    fn channel(&self, idx: usize, column: &'static str) -> Result<Channel, StoreError> {
        self.get::<&str>(idx, column)?
            .parse()
            .map_err(|e| StoreError::bad_row(self.table, column, e))
    }
}

/// A row of [`KEY_COLUMNS`].
pub(crate) fn key_from_row(row: &Row) -> Result<KeyRecord, StoreError> {
    let c = Columns {
        row,
        table: "apikeys_keys",
    };
    let previous_hash = c.get::<Option<String>>(6, "previous_hash")?;
    let previous_expires_at = c.get::<Option<i64>>(7, "previous_expires_at")?;
    let previous_secret = match (previous_hash, previous_expires_at) {
        (None, None) => None,
        (Some(hash), Some(nanos)) => Some(PreviousSecret {
            hash,
            expires_at: c.instant_of(nanos, "previous_expires_at")?,
        }),
        _ => {
            return Err(StoreError::bad_row(
                c.table,
                "previous_hash",
                "previous_hash and previous_expires_at must be both set or both NULL",
            ));
        }
    };
    let version = c.get::<i64>(11, "version")?;
    let version = u64::try_from(version)
        .ok()
        .filter(|v| *v >= 1)
        .ok_or_else(|| {
            StoreError::bad_row(c.table, "version", format!("version {version} is below 1"))
        })?;
    Ok(KeyRecord {
        id: KeyId::from_bytes(c.id(0, "id")?),
        account_id: AccountId::from_bytes(c.id(1, "account_id")?),
        channel: c.channel(2, "channel")?,
        identifier: c.get(3, "identifier")?,
        label: c.get(4, "label")?,
        secret_hash: c.get(5, "secret_hash")?,
        previous_secret,
        whitelist: parse_whitelist(c.get::<Vec<&str>>(8, "whitelist")?)?,
        created_at: c.instant(9, "created_at")?,
        changed_at: c.instant(10, "changed_at")?,
        version,
    })
}

fn parse_whitelist(entries: Vec<&str>) -> Result<Whitelist, StoreError> {
    let entries = entries
        .into_iter()
        .map(parse_entry)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StoreError::bad_row("apikeys_keys", "whitelist", e))?;
    Whitelist::new(entries, usize::MAX)
        .map_err(|e| StoreError::bad_row("apikeys_keys", "whitelist", e))
}

/// A row of [`ACCOUNT_COLUMNS`].
pub(crate) fn account_from_row(row: &Row) -> Result<Account, StoreError> {
    let c = Columns {
        row,
        table: "apikeys_accounts",
    };
    let parent = c.opt_id(2, "parent_id")?.map(AccountId::from_bytes);
    let kind = match (c.get::<&str>(1, "kind")?, parent) {
        ("master", None) => AccountKind::Master,
        ("sub", Some(parent)) => AccountKind::Sub { parent },
        (kind, _) => {
            return Err(StoreError::bad_row(
                c.table,
                "kind",
                format!(
                    "kind `{}` does not match parent_id: a master has none, a sub-account has one",
                    kind.chars().take(64).collect::<String>()
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

/// A row of [`EVENT_COLUMNS`].
pub(crate) fn event_from_row(row: &Row) -> Result<AuditEvent, StoreError> {
    let c = Columns {
        row,
        table: "apikeys_audit_events",
    };
    let channel = match c.get::<Option<&str>>(2, "channel")? {
        None => None,
        Some(code) => Some(
            code.parse::<Channel>()
                .map_err(|e| StoreError::bad_row(c.table, "channel", e))?,
        ),
    };
    Ok(AuditEvent {
        account_id: AccountId::from_bytes(c.id(0, "account_id")?),
        key_id: c.opt_id(1, "key_id")?.map(KeyId::from_bytes),
        channel,
        at: c.instant(3, "at")?,
        kind: c
            .get::<&str>(4, "kind")?
            .parse::<AuditKind>()
            .map_err(|e| StoreError::bad_row(c.table, "kind", e))?,
        actor: c
            .get::<&str>(5, "actor")?
            .parse::<Actor>()
            .map_err(|e| StoreError::bad_row(c.table, "actor", e))?,
        detail: c.get(6, "detail")?,
    })
}

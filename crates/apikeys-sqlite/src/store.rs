//! [`SqliteStore`]: the [`Store`] on SQLite.

use crate::codec::{
    ACCOUNT_COLUMNS, KEY_COLUMNS, account_at, account_from_row, backend, event_from_row, instant,
    key_from_row, opt_account_at, whitelist,
};
use crate::connection::{Options, Readers, open_memory, open_writer};
use crate::error::OpenError;
use crate::schema;
use apikeys::account::{AccountPolicy, ExternalId};
use apikeys::lifecycle::{HeldKey, Holders};
use apikeys::store::encoding::{self, KeyValues, PolicyValues};
use apikeys::store::{AccountRecords, DormantQuery, Entity, Existing};
use apikeys::token::{TokenDigest, TokenRecord};
use apikeys::usage::KeyUse;
use apikeys::{Account, AccountId, AuditEvent, KeyId, KeyRecord, SecretHash, Store, StoreError};
use rusqlite::{
    Connection, ErrorCode, OptionalExtension, Transaction, TransactionBehavior, params,
};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use time::OffsetDateTime;

/// A [`Store`] in a SQLite database: the embedded default.
///
/// Writes go through one connection behind a mutex, each in its own
/// `BEGIN IMMEDIATE` transaction together with its audit events; other
/// processes writing the same file wait for each other through SQLite's
/// locks (up to [`Options::busy_timeout`]). Each thread that reads keeps a
/// read connection of its own, so reads never queue behind each other, nor
/// (in WAL mode) behind writes.
///
/// The uniqueness rules are held by the database itself with unique indexes,
/// so they hold against other processes too; see [`crate::SCHEMA_VERSION`]
/// and the crate documentation.
pub struct SqliteStore {
    /// The file, or `None` in memory.
    path: Option<PathBuf>,
    writer: Mutex<Connection>,
    /// `None` in memory: reads use the writer's connection.
    readers: Option<Readers>,
    /// The holders authentication read, valid while `account_epoch` holds.
    /// A lock that readers share: every check reads it, changes are rare.
    holders: std::sync::RwLock<HoldersCache>,
}

/// The accounts (with their masters) the authentication reads found, at
/// one value of the database's `account_epoch`: every change of an
/// account's suspension or policy, by any process, moves the epoch in its
/// own transaction, and a read that finds another epoch drops them all. So
/// a check reads its key and one counter, and the accounts only after a
/// change, while seeing every change from the next read on.
#[derive(Default)]
struct HoldersCache {
    epoch: Option<i64>,
    by_account: std::collections::HashMap<AccountId, Holders>,
}

/// At most this many accounts are kept; one more empties the cache.
const HOLDERS_CACHE_CAPACITY: usize = 100_000;

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens the database at `path` with the default [`Options`], creating it
    /// if it does not exist and upgrading its schema if it is older than this
    /// crate's.
    ///
    /// Errors name the path: a file that cannot be opened, is not a SQLite
    /// database or is corrupt, is read-only, or holds a newer schema than
    /// this crate knows (see [`OpenError`]).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        Self::open_with(path, Options::default())
    }

    /// As [`SqliteStore::open`], with other options.
    pub fn open_with(path: impl AsRef<Path>, options: Options) -> Result<Self, OpenError> {
        let path = path.as_ref();
        let mut writer = open_writer(path, &options)?;
        schema::migrate(&mut writer, path)?;
        // Read connections open later: pin the file against a change of
        // working directory in between.
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        Ok(SqliteStore {
            path: Some(path.to_path_buf()),
            writer: Mutex::new(writer),
            readers: Some(Readers::new(absolute, options)),
            holders: std::sync::RwLock::default(),
        })
    }

    /// A new, empty database in memory, gone when the store is dropped: for
    /// tests and examples.
    ///
    /// Decision: it has a single connection, so reads wait for each other
    /// and for writes (SQLite's shared-cache mode would let several
    /// connections share it, but with table locks that fail instead of
    /// waiting). Use a file for concurrent readers.
    pub fn open_in_memory() -> Result<Self, OpenError> {
        let path = PathBuf::from(":memory:");
        let mut writer = open_memory().map_err(|source| OpenError::Setup {
            path: path.clone(),
            source,
        })?;
        schema::migrate(&mut writer, &path)?;
        Ok(SqliteStore {
            path: None,
            writer: Mutex::new(writer),
            readers: None,
            holders: std::sync::RwLock::default(),
        })
    }

    /// The database file, or `None` in memory.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The files of the database (the file itself, its `-wal` and `-shm`)
    /// that users other than the owner may read or write, with their modes.
    /// A file this crate created is private (0600); one made otherwise may
    /// not be, and holds every key's hash and every account: the server
    /// warns about each. Empty in memory, and on systems without Unix
    /// permissions.
    pub fn readable_by_others(&self) -> Vec<(PathBuf, u32)> {
        let mut exposed = Vec::new();
        #[cfg(unix)]
        if let Some(path) = &self.path {
            use std::os::unix::fs::PermissionsExt;
            for suffix in ["", "-wal", "-shm"] {
                let mut file = path.clone().into_os_string();
                file.push(suffix);
                let file = PathBuf::from(file);
                if let Ok(meta) = std::fs::metadata(&file) {
                    let mode = meta.permissions().mode() & 0o777;
                    if mode & 0o077 != 0 {
                        exposed.push((file, mode));
                    }
                }
            }
        }
        exposed
    }

    /// Opens many accounts, each with its initial keys and audit events, in
    /// one transaction: all of them or none.
    ///
    /// Each account is checked as by [`Store::create_account`], with the same
    /// errors; the first refusal ends the batch and nothing is kept. Meant for
    /// importing the accounts of an existing platform (with their historic
    /// dates), where one transaction per account would spend most of its time
    /// waiting for the disk.
    pub fn import_accounts(
        &self,
        batch: &[(Account, Vec<KeyRecord>, Vec<AuditEvent>)],
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            for (account, keys, events) in batch {
                create_account_in(tx, account, keys, events)?;
            }
            Ok(())
        })
    }

    // A panic while the writer was locked left no transaction open (a
    // `Transaction` rolls back when dropped, and `write` checks anyway):
    // recovering from poison is safe.
    fn writer(&self) -> MutexGuard<'_, Connection> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction, committed if `f`
    /// succeeds and rolled back otherwise.
    fn write<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.writer();
        if !conn.is_autocommit() {
            conn.execute_batch("ROLLBACK").map_err(backend)?;
        }
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        let out = f(&tx)?;
        tx.commit().map_err(backend)?;
        Ok(out)
    }

    /// Runs `f` on a read connection.
    fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match &self.readers {
            Some(readers) => readers.with(f),
            None => f(&self.writer()),
        }
    }
}

fn is_constraint(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation)
}

fn exists(tx: &Transaction<'_>, sql: &str, p: impl rusqlite::Params) -> Result<bool, StoreError> {
    tx.prepare_cached(sql)
        .and_then(|mut s| s.exists(p))
        .map_err(backend)
}

fn account_exists(tx: &Transaction<'_>, id: AccountId) -> Result<bool, StoreError> {
    exists(
        tx,
        "SELECT 1 FROM accounts WHERE id = ?1",
        [id.as_bytes().as_slice()],
    )
}

fn identifier_taken(
    tx: &Transaction<'_>,
    identifier: &str,
    other_than: KeyId,
) -> Result<bool, StoreError> {
    exists(
        tx,
        "SELECT 1 FROM keys WHERE identifier = ?1 AND id <> ?2",
        params![identifier, other_than.as_bytes().as_slice()],
    )
}

fn keys_held(tx: &Transaction<'_>, key: &KeyRecord) -> Result<i64, StoreError> {
    tx.prepare_cached("SELECT count(*) FROM keys WHERE account_id = ?1 AND channel = ?2")
        .and_then(|mut s| {
            s.query_row(
                params![key.account_id.as_bytes().as_slice(), key.channel.code()],
                |r| r.get(0),
            )
        })
        .map_err(backend)
}

/// Why a new key was refused, checked in the order of the contract (and of
/// the in-memory store): account, key id, identifier, channel. Called inside
/// the writing transaction, after the database refused the key or the
/// channel count reached its limit, so nothing can change in between.
fn why_key_refused(
    tx: &Transaction<'_>,
    key: &KeyRecord,
    max_for_channel: u32,
    cause: Option<rusqlite::Error>,
) -> StoreError {
    let diagnosis = (|| {
        if !account_exists(tx, key.account_id)? {
            return Ok(StoreError::NotFound(Entity::Account(key.account_id)));
        }
        if exists(
            tx,
            "SELECT 1 FROM keys WHERE id = ?1",
            [key.id.as_bytes().as_slice()],
        )? {
            return Ok(StoreError::AlreadyExists(Existing::Key));
        }
        if identifier_taken(tx, &key.identifier, key.id)? {
            return Ok(StoreError::AlreadyExists(Existing::Identifier));
        }
        let held = keys_held(tx, key)?;
        let limit = if key.channel.allows_several_keys() {
            max_for_channel
        } else {
            // The `keys_one_per_channel` index holds the product's rule.
            max_for_channel.min(1)
        };
        if held >= i64::from(limit) {
            return Ok(StoreError::AlreadyExists(Existing::ChannelFull(
                key.channel,
            )));
        }
        Ok(match cause {
            Some(e) => backend(e),
            None => StoreError::AlreadyExists(Existing::ChannelFull(key.channel)),
        })
    })();
    diagnosis.unwrap_or_else(|e| e)
}

fn insert_key_in(
    tx: &Transaction<'_>,
    key: &KeyRecord,
    max_for_channel: u32,
) -> Result<(), StoreError> {
    // For every channel but REST the unique index `keys_one_per_channel`
    // holds the limit of one; REST's policy limit is counted here, inside
    // the IMMEDIATE transaction, so two writers cannot both pass.
    let counted =
        (key.channel.allows_several_keys() && max_for_channel < u32::MAX) || max_for_channel == 0;
    if counted && keys_held(tx, key)? >= i64::from(max_for_channel) {
        return Err(why_key_refused(tx, key, max_for_channel, None));
    }
    let values = KeyValues::new(key)?;
    let inserted = tx
        .prepare_cached(
            "INSERT INTO keys (id, account_id, channel, identifier, label, secret_hash,
                previous_hash, previous_expires_at, whitelist, created_at, changed_at, version,
                expires_at, enabled, legacy_default, last_used_at, last_used_address,
                previous_secret_last_used_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12,
                ?13, ?14, ?15, ?16, ?17, ?18)",
        )
        .and_then(|mut s| {
            s.execute(params![
                key.id.as_bytes().as_slice(),
                key.account_id.as_bytes().as_slice(),
                key.channel.code(),
                key.identifier,
                key.label,
                key.secret_hash.as_str(),
                values.previous_hash(),
                values.previous_expires_at,
                whitelist(&key.whitelist),
                values.created_at,
                values.changed_at,
                values.version,
                values.expires_at,
                key.enabled,
                key.legacy_default,
                values.last_used_at,
                values.last_used_address,
                values.previous_secret_last_used_at,
            ])
        });
    match inserted {
        Ok(_) => Ok(()),
        Err(e) if is_constraint(&e) => Err(why_key_refused(tx, key, max_for_channel, Some(e))),
        Err(e) => Err(backend(e)),
    }
}

fn record_event(tx: &Transaction<'_>, event: &AuditEvent) -> Result<(), StoreError> {
    let at = instant(event.at)?;
    tx.prepare_cached(
        "INSERT INTO audit_events (account_id, key_id, channel, at, kind, actor, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .and_then(|mut s| {
        s.execute(params![
            event.account_id.as_bytes().as_slice(),
            event.key_id.as_ref().map(|k| k.as_bytes().as_slice()),
            event.channel.map(|c| c.code()),
            at,
            event.kind.code(),
            event.actor.to_string(),
            event.detail,
        ])
    })
    .map(|_| ())
    .map_err(backend)
}

fn create_account_in(
    tx: &Transaction<'_>,
    account: &Account,
    keys: &[KeyRecord],
    events: &[AuditEvent],
) -> Result<(), StoreError> {
    let parent = account.kind.parent();
    let created_at = instant(account.created_at)?;
    let policy = PolicyValues::new(&account.policy)?;
    let inserted = tx
        .prepare_cached(
            "INSERT INTO accounts (id, kind, parent_id, created_at, suspended, policy_whitelist,
                sub_account_channels, max_key_lifetime, external_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .and_then(|mut s| {
            s.execute(params![
                account.id.as_bytes().as_slice(),
                account.kind.code(),
                parent.as_ref().map(|p| p.as_bytes().as_slice()),
                created_at,
                account.suspended,
                policy.whitelist_text,
                policy.sub_account_channels,
                policy.max_key_lifetime,
                account.external_id.as_ref().map(ExternalId::as_str),
            ])
        });
    match inserted {
        // A sub-account of itself passes the foreign key (the row it names
        // is the one just inserted), but its parent was not stored.
        Ok(_) if parent == Some(account.id) => {
            return Err(StoreError::NotFound(Entity::Account(account.id)));
        }
        Ok(_) => {}
        Err(e) if is_constraint(&e) => {
            if account_exists(tx, account.id)? {
                return Err(StoreError::AlreadyExists(Existing::Account));
            }
            if let Some(e) = &account.external_id
                && exists(
                    tx,
                    "SELECT 1 FROM accounts WHERE external_id = ?1",
                    [e.as_str()],
                )?
            {
                return Err(StoreError::AlreadyExists(Existing::ExternalId));
            }
            if let Some(parent) = parent
                && !account_exists(tx, parent)?
            {
                return Err(StoreError::NotFound(Entity::Account(parent)));
            }
            return Err(backend(e));
        }
        Err(e) => return Err(backend(e)),
    }
    for key in keys {
        if key.account_id != account.id {
            return Err(StoreError::NotFound(Entity::Account(key.account_id)));
        }
        // Initial keys: the one-per-channel index applies, no REST count.
        insert_key_in(tx, key, u32::MAX)?;
    }
    for event in events {
        record_event(tx, event)?;
    }
    Ok(())
}

impl Store for SqliteStore {
    fn create_account(
        &self,
        account: &Account,
        keys: &[KeyRecord],
        events: &[AuditEvent],
    ) -> Result<(), StoreError> {
        self.write(|tx| create_account_in(tx, account, keys, events))
    }

    fn create_accounts(
        &self,
        accounts: &[AccountRecords],
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        // One transaction for the batch (one wait for the disk), a savepoint
        // per account (each all or nothing).
        self.write(|tx| {
            let mut results = Vec::with_capacity(accounts.len());
            for a in accounts {
                tx.execute_batch("SAVEPOINT account").map_err(backend)?;
                let r = create_account_in(tx, &a.account, &a.keys, &a.events);
                match r {
                    Err(e) if e.is_account_independent() => return Err(e),
                    Err(e) => {
                        tx.execute_batch("ROLLBACK TO account; RELEASE account")
                            .map_err(backend)?;
                        results.push(Err(e));
                    }
                    Ok(()) => {
                        tx.execute_batch("RELEASE account").map_err(backend)?;
                        results.push(Ok(()));
                    }
                }
            }
            Ok(results)
        })
    }

    fn account_by_external_id(
        &self,
        external_id: &ExternalId,
    ) -> Result<Option<Account>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached(concat!(
                    "SELECT ",
                    account_columns!("a"),
                    " FROM accounts a WHERE a.external_id = ?1"
                ))
                .map_err(backend)?;
            let mut rows = stmt.query([external_id.as_str()]).map_err(backend)?;
            rows.next()
                .map_err(backend)?
                .map(account_from_row)
                .transpose()
        })
    }

    fn account(&self, id: AccountId) -> Result<Option<Account>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached(concat!(
                    "SELECT ",
                    account_columns!("a"),
                    " FROM accounts a WHERE a.id = ?1"
                ))
                .map_err(backend)?;
            let mut rows = stmt.query([id.as_bytes().as_slice()]).map_err(backend)?;
            rows.next()
                .map_err(backend)?
                .map(account_from_row)
                .transpose()
        })
    }

    fn sub_accounts(&self, master: AccountId) -> Result<Vec<Account>, StoreError> {
        // `accounts_by_parent` holds this order: no sort.
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached(concat!(
                    "SELECT ",
                    account_columns!("a"),
                    " FROM accounts a WHERE a.parent_id = ?1 ORDER BY a.created_at, a.id"
                ))
                .map_err(backend)?;
            let rows = stmt
                .query([master.as_bytes().as_slice()])
                .map_err(backend)?;
            collect_accounts(rows)
        })
    }

    fn accounts(&self, after: Option<AccountId>, limit: usize) -> Result<Vec<Account>, StoreError> {
        // A range of the primary key. Blobs compare as `memcmp`, shorter
        // first on a tie, so the empty blob is before every id: `None`.
        let after: &[u8] = after.as_ref().map_or(&[], |a| a.as_bytes().as_slice());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached(concat!(
                    "SELECT ",
                    account_columns!("a"),
                    " FROM accounts a WHERE a.id > ?1 ORDER BY a.id LIMIT ?2"
                ))
                .map_err(backend)?;
            let rows = stmt.query(params![after, limit]).map_err(backend)?;
            collect_accounts(rows)
        })
    }

    fn insert_key(
        &self,
        key: &KeyRecord,
        max_for_channel: u32,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        // A missing account is caught by the foreign key, then diagnosed.
        self.write(|tx| {
            insert_key_in(tx, key, max_for_channel)?;
            record_event(tx, event)
        })
    }

    fn key(&self, id: KeyId) -> Result<Option<KeyRecord>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(KEY_BY_ID).map_err(backend)?;
            let mut rows = stmt.query([id.as_bytes().as_slice()]).map_err(backend)?;
            rows.next().map_err(backend)?.map(key_from_row).transpose()
        })
    }

    fn key_by_identifier(&self, identifier: &str) -> Result<Option<KeyRecord>, StoreError> {
        // The hot path: one search of the `keys` table, clustered by
        // identifier (the column's NOCASE collation makes `=` ignore ASCII
        // case), with a statement prepared once per connection.
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(KEY_BY_IDENTIFIER).map_err(backend)?;
            let mut rows = stmt.query([identifier]).map_err(backend)?;
            rows.next().map_err(backend)?.map(key_from_row).transpose()
        })
    }

    fn keys_of_account(&self, account: AccountId) -> Result<Vec<KeyRecord>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached(concat!(
                    "SELECT ",
                    key_columns!(),
                    " FROM keys k WHERE k.account_id = ?1 ORDER BY k.created_at, k.id"
                ))
                .map_err(backend)?;
            let rows = stmt
                .query([account.as_bytes().as_slice()])
                .map_err(backend)?;
            collect_keys(rows)
        })
    }

    fn update_key(
        &self,
        key: &KeyRecord,
        expected_version: u64,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            let found: Option<(i64, String, String)> = tx
                .prepare_cached("SELECT version, identifier, secret_hash FROM keys WHERE id = ?1")
                .and_then(|mut s| {
                    s.query_row([key.id.as_bytes().as_slice()], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })
                    .optional()
                })
                .map_err(backend)?;
            let Some((found, stored_identifier, stored_hash)) = found else {
                return Err(StoreError::NotFound(Entity::Key(key.id)));
            };
            let credentials_changed =
                stored_identifier != key.identifier || stored_hash != key.secret_hash.as_str();
            // Stored versions are at least 1 (a CHECK holds it).
            let found = u64::try_from(found).unwrap_or(0);
            if found != expected_version {
                return Err(StoreError::Conflict {
                    key: key.id,
                    expected: expected_version,
                    found,
                });
            }
            // The id, account, channel and creation instant are not written:
            // they never change. Only what is written is encoded, so a
            // creation instant out of range is ignored, not refused.
            let previous_expires_at = key
                .previous_secret
                .as_ref()
                .map(|p| instant(p.expires_at))
                .transpose()?;
            let changed_at = instant(key.changed_at)?;
            let version = encoding::version_to_i64(key.version)?;
            let expires_at = key.expires_at.map(instant).transpose()?;
            let updated = tx
                .prepare_cached(
                    // The right-hand sides read the row as it was: the
                    // previous secret's last use is kept only if its hash
                    // stays the same (`IS` compares NULLs too).
                    "UPDATE keys SET identifier = ?2, label = ?3, secret_hash = ?4,
                        previous_hash = ?5, previous_expires_at = ?6, whitelist = ?7,
                        changed_at = ?8, version = ?9, expires_at = ?10, enabled = ?11,
                        previous_secret_last_used_at = CASE WHEN previous_hash IS ?5
                            THEN previous_secret_last_used_at END
                     WHERE id = ?1",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        key.id.as_bytes().as_slice(),
                        key.identifier,
                        key.label,
                        key.secret_hash.as_str(),
                        key.previous_secret.as_ref().map(|p| p.hash.as_str()),
                        previous_expires_at,
                        whitelist(&key.whitelist),
                        changed_at,
                        version,
                        expires_at,
                        key.enabled,
                    ])
                });
            match updated {
                Ok(_) => {}
                Err(e) if is_constraint(&e) => {
                    return Err(if identifier_taken(tx, &key.identifier, key.id)? {
                        StoreError::AlreadyExists(Existing::Identifier)
                    } else {
                        backend(e)
                    });
                }
                Err(e) => return Err(backend(e)),
            }
            if credentials_changed {
                tx.prepare_cached("DELETE FROM tokens WHERE key_id = ?1")
                    .and_then(|mut s| s.execute([key.id.as_bytes().as_slice()]))
                    .map_err(backend)?;
            }
            record_event(tx, event)
        })
    }

    fn upgrade_secret_hash(
        &self,
        id: KeyId,
        current: &SecretHash,
        upgraded: &SecretHash,
    ) -> Result<bool, StoreError> {
        self.write(|tx| {
            tx.prepare_cached("UPDATE keys SET secret_hash = ?3 WHERE id = ?1 AND secret_hash = ?2")
                .and_then(|mut s| {
                    s.execute(params![
                        id.as_bytes().as_slice(),
                        current.as_str(),
                        upgraded.as_str()
                    ])
                })
                .map(|changed| changed == 1)
                .map_err(backend)
        })
    }

    fn delete_key(
        &self,
        id: KeyId,
        expected_version: Option<u64>,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        // The key's tokens go with it: `ON DELETE CASCADE`.
        self.write(|tx| {
            if let Some(expected) = expected_version {
                let found: Option<i64> = tx
                    .prepare_cached("SELECT version FROM keys WHERE id = ?1")
                    .and_then(|mut s| {
                        s.query_row([id.as_bytes().as_slice()], |r| r.get(0))
                            .optional()
                    })
                    .map_err(backend)?;
                let Some(found) = found else {
                    return Err(StoreError::NotFound(Entity::Key(id)));
                };
                // A version beyond what a store keeps matches none.
                if i64::try_from(expected).ok() != Some(found) {
                    return Err(StoreError::Conflict {
                        key: id,
                        expected,
                        found: u64::try_from(found).unwrap_or(0),
                    });
                }
            }
            let deleted = tx
                .prepare_cached("DELETE FROM keys WHERE id = ?1")
                .and_then(|mut s| s.execute([id.as_bytes().as_slice()]))
                .map_err(backend)?;
            if deleted == 0 {
                return Err(StoreError::NotFound(Entity::Key(id)));
            }
            record_event(tx, event)
        })
    }

    fn insert_token(
        &self,
        token: &TokenRecord,
        key_version: u64,
        max_live: u32,
        now: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let (issued_at, expires_at, now) = (
            instant(token.issued_at)?,
            instant(token.expires_at)?,
            instant(now)?,
        );
        let key_id = token.key_id.as_bytes().as_slice();
        self.write(|tx| {
            let found: Option<(i64, String)> = tx
                .prepare_cached("SELECT version, identifier FROM keys WHERE id = ?1")
                .and_then(|mut s| {
                    s.query_row([key_id], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()
                })
                .map_err(backend)?;
            let Some((found, identifier)) = found else {
                return Err(StoreError::NotFound(Entity::Key(token.key_id)));
            };
            let found = u64::try_from(found).unwrap_or(0);
            if found != key_version {
                return Err(StoreError::Conflict {
                    key: token.key_id,
                    expected: key_version,
                    found,
                });
            }
            if exists(
                tx,
                "SELECT 1 FROM tokens WHERE digest = ?1",
                [token.digest.0.as_slice()],
            )? {
                return Err(StoreError::AlreadyExists(Existing::Token));
            }
            tx.prepare_cached("DELETE FROM tokens WHERE key_id = ?1 AND expires_at <= ?2")
                .and_then(|mut s| s.execute(params![key_id, now]))
                .map_err(backend)?;
            // Room for one more: the oldest go (issue instant, then digest).
            tx.prepare_cached(
                "DELETE FROM tokens WHERE digest IN (
                     SELECT digest FROM tokens WHERE key_id = ?1
                     ORDER BY issued_at, digest
                     LIMIT max(0, (SELECT count(*) FROM tokens WHERE key_id = ?1) + 1 - ?2))",
            )
            .and_then(|mut s| s.execute(params![key_id, i64::from(max_live.max(1))]))
            .map_err(backend)?;
            tx.prepare_cached(
                "INSERT INTO tokens (digest, key_id, identifier, issued_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    token.digest.0.as_slice(),
                    key_id,
                    identifier,
                    issued_at,
                    expires_at
                ])
            })
            .map_err(backend)?;
            record_event(tx, event)
        })
    }

    fn token(&self, digest: &TokenDigest) -> Result<Option<(TokenRecord, KeyRecord)>, StoreError> {
        // One search in `tokens` by digest, one in `keys` by identifier.
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(TOKEN_WITH_KEY).map_err(backend)?;
            let mut rows = stmt.query([digest.0.as_slice()]).map_err(backend)?;
            let Some(row) = rows.next().map_err(backend)? else {
                return Ok(None);
            };
            let key = key_from_row(row)?;
            Ok(Some((token_at(row, digest, &key)?, key)))
        })
    }

    fn purge_expired_tokens(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let now = instant(now)?;
        self.write(|tx| {
            tx.prepare_cached("DELETE FROM tokens WHERE expires_at <= ?1")
                .and_then(|mut s| s.execute([now]))
                .map(|n| n as u64)
                .map_err(backend)
        })
    }

    fn audit_events(
        &self,
        account: AccountId,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached(concat!(
                    "SELECT ",
                    event_columns!(),
                    " FROM audit_events WHERE account_id = ?1 ORDER BY at DESC, seq DESC LIMIT ?2"
                ))
                .map_err(backend)?;
            let mut rows = stmt
                .query(params![account.as_bytes().as_slice(), limit])
                .map_err(backend)?;
            let mut events = Vec::new();
            while let Some(row) = rows.next().map_err(backend)? {
                events.push(event_from_row(row)?);
            }
            Ok(events)
        })
    }

    fn set_account_suspended(
        &self,
        id: AccountId,
        suspended: bool,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        // One column: a policy change racing this one keeps its own.
        self.write(|tx| {
            let changed = tx
                .prepare_cached("UPDATE accounts SET suspended = ?2 WHERE id = ?1")
                .and_then(|mut s| s.execute(params![id.as_bytes().as_slice(), suspended]))
                .map_err(backend)?;
            if changed == 0 {
                return Err(StoreError::NotFound(Entity::Account(id)));
            }
            bump_account_epoch(tx)?;
            record_event(tx, event)
        })
    }

    fn set_account_policy(
        &self,
        id: AccountId,
        policy: &AccountPolicy,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let policy = PolicyValues::new(policy)?;
        // The policy's columns only: a suspension racing this one keeps its
        // own.
        self.write(|tx| {
            let changed = tx
                .prepare_cached(
                    "UPDATE accounts SET policy_whitelist = ?2, sub_account_channels = ?3,
                        max_key_lifetime = ?4
                     WHERE id = ?1",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        id.as_bytes().as_slice(),
                        policy.whitelist_text,
                        policy.sub_account_channels,
                        policy.max_key_lifetime,
                    ])
                })
                .map_err(backend)?;
            if changed == 0 {
                return Err(StoreError::NotFound(Entity::Account(id)));
            }
            bump_account_epoch(tx)?;
            record_event(tx, event)
        })
    }

    fn record_uses(&self, uses: &[KeyUse]) -> Result<(), StoreError> {
        // Everything encoded first: an instant out of range refuses the
        // batch before anything is written.
        let encoded = uses
            .iter()
            .map(|u| {
                Ok((
                    u.key_id.as_bytes().as_slice(),
                    instant(u.at)?,
                    encoding::address_to_text(u.address),
                    u.previous
                        .as_ref()
                        .map(|(at, hash)| instant(*at).map(|at| (at, hash.as_str())))
                        .transpose()?,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        if encoded.is_empty() {
            return Ok(());
        }
        // One transaction (one commit, one fsync) for the whole batch. Each
        // update keeps the newer instant, so processes recording for the
        // same key in any order end with the latest use; a key that is gone
        // matches no row and is skipped.
        self.write(|tx| {
            let mut last = tx
                .prepare_cached(
                    "UPDATE keys SET last_used_at = ?2, last_used_address = ?3
                     WHERE id = ?1 AND (last_used_at IS NULL OR last_used_at < ?2)",
                )
                .map_err(backend)?;
            let mut previous = tx
                .prepare_cached(
                    "UPDATE keys SET previous_secret_last_used_at = ?2
                     WHERE id = ?1 AND previous_hash = ?3
                       AND (previous_secret_last_used_at IS NULL
                            OR previous_secret_last_used_at < ?2)",
                )
                .map_err(backend)?;
            for (id, at, address, prev) in &encoded {
                last.execute(params![id, at, address]).map_err(backend)?;
                if let Some((at, hash)) = prev {
                    previous.execute(params![id, at, hash]).map_err(backend)?;
                }
            }
            Ok(())
        })
    }

    fn holders(&self, account: AccountId) -> Result<Option<Holders>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(HOLDERS).map_err(backend)?;
            let mut rows = stmt
                .query([account.as_bytes().as_slice()])
                .map_err(backend)?;
            rows.next()
                .map_err(backend)?
                .map(|row| holders_at(row, 0))
                .transpose()
        })
    }

    fn key_for_authentication(&self, identifier: &str) -> Result<Option<HeldKey>, StoreError> {
        // The hot path, as `key_by_identifier`, and the holders with it in
        // the same statement: one snapshot, one call.
        self.read(|conn| {
            let (key, epoch) = {
                let mut stmt = conn.prepare_cached(KEY_WITH_EPOCH).map_err(backend)?;
                let mut rows = stmt.query([identifier]).map_err(backend)?;
                let Some(row) = rows.next().map_err(backend)? else {
                    return Ok(None);
                };
                let epoch: i64 = row.get(KEY_COLUMNS).map_err(backend)?;
                (key_from_row(row)?, epoch)
            };
            Ok(self
                .cached_holders(conn, key.account_id, epoch)?
                .map(|holders| HeldKey { key, holders }))
        })
    }

    fn token_for_authentication(
        &self,
        digest: &TokenDigest,
    ) -> Result<Option<(TokenRecord, HeldKey)>, StoreError> {
        self.read(|conn| {
            let (token, key, epoch) = {
                let mut stmt = conn.prepare_cached(TOKEN_WITH_EPOCH).map_err(backend)?;
                let mut rows = stmt.query([digest.0.as_slice()]).map_err(backend)?;
                let Some(row) = rows.next().map_err(backend)? else {
                    return Ok(None);
                };
                let key = key_from_row(row)?;
                let token = token_at(row, digest, &key)?;
                let epoch: i64 = row.get(KEY_COLUMNS + 2).map_err(backend)?;
                (token, key, epoch)
            };
            Ok(self
                .cached_holders(conn, key.account_id, epoch)?
                .map(|holders| (token, HeldKey { key, holders })))
        })
    }

    fn dormant_keys(&self, query: &DormantQuery) -> Result<Vec<KeyRecord>, StoreError> {
        let since = instant(query.unused_since)?;
        // The empty blob sorts before every id: no `after` is the first page.
        let after: &[u8] = query
            .after
            .as_ref()
            .map_or(&[], |k| k.as_bytes().as_slice());
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        let legacy = query.legacy_defaults_only;
        self.read(|conn| match query.account {
            None => {
                let mut stmt = conn.prepare_cached(DORMANT_KEYS).map_err(backend)?;
                let rows = stmt
                    .query(params![after, since, legacy, limit])
                    .map_err(backend)?;
                collect_keys(rows)
            }
            Some(account) => {
                let mut stmt = conn
                    .prepare_cached(DORMANT_KEYS_OF_ACCOUNT)
                    .map_err(backend)?;
                let rows = stmt
                    .query(params![
                        after,
                        since,
                        legacy,
                        limit,
                        account.as_bytes().as_slice()
                    ])
                    .map_err(backend)?;
                collect_keys(rows)
            }
        })
    }
}

impl SqliteStore {
    /// The holders of `account` as of `epoch` (read with the key): from
    /// the cache if it is still at that epoch, else read now, on the same
    /// connection, and kept. Holders read after the epoch are at least as
    /// new as it, so the cache never keeps an older state under a newer
    /// epoch.
    fn cached_holders(
        &self,
        conn: &Connection,
        account: AccountId,
        epoch: i64,
    ) -> Result<Option<Holders>, StoreError> {
        {
            let cache = self.holders.read().unwrap_or_else(PoisonError::into_inner);
            if cache.epoch == Some(epoch)
                && let Some(h) = cache.by_account.get(&account)
            {
                return Ok(Some(h.clone()));
            }
        }
        {
            let mut cache = self.holders.write().unwrap_or_else(PoisonError::into_inner);
            if cache.epoch != Some(epoch) {
                cache.by_account.clear();
                cache.epoch = Some(epoch);
            }
        }
        let found = {
            let mut stmt = conn.prepare_cached(HOLDERS).map_err(backend)?;
            let mut rows = stmt
                .query([account.as_bytes().as_slice()])
                .map_err(backend)?;
            rows.next()
                .map_err(backend)?
                .map(|row| holders_at(row, 0))
                .transpose()?
        };
        if let Some(h) = &found {
            let mut cache = self.holders.write().unwrap_or_else(PoisonError::into_inner);
            if cache.epoch == Some(epoch) {
                if cache.by_account.len() >= HOLDERS_CACHE_CAPACITY {
                    cache.by_account.clear();
                }
                cache.by_account.insert(account, h.clone());
            }
        }
        Ok(found)
    }
}

/// Moves `account_epoch` on, in the transaction of an account's change.
fn bump_account_epoch(tx: &rusqlite::Transaction<'_>) -> Result<(), StoreError> {
    tx.prepare_cached("UPDATE account_epoch SET n = n + 1")
        .and_then(|mut s| s.execute([]))
        .map_err(backend)?;
    Ok(())
}

/// The token's instants of a row holding them just after the key's
/// columns.
fn token_at(
    row: &rusqlite::Row<'_>,
    digest: &TokenDigest,
    key: &KeyRecord,
) -> Result<TokenRecord, StoreError> {
    let issued_at: i64 = row.get(KEY_COLUMNS).map_err(backend)?;
    let expires_at: i64 = row.get(KEY_COLUMNS + 1).map_err(backend)?;
    Ok(TokenRecord {
        digest: *digest,
        key_id: key.id,
        issued_at: encoding::instant_from_nanos(issued_at),
        expires_at: encoding::instant_from_nanos(expires_at),
    })
}

/// The holders of a row holding an account's columns at `base` and its
/// master's (NULLs for a master) just after.
fn holders_at(row: &rusqlite::Row<'_>, base: usize) -> Result<Holders, StoreError> {
    Ok(Holders {
        account: account_at(row, base)?,
        master: opt_account_at(row, base + ACCOUNT_COLUMNS)?,
    })
}

/// Every key of a query's rows.
fn collect_keys(mut rows: rusqlite::Rows<'_>) -> Result<Vec<KeyRecord>, StoreError> {
    let mut keys = Vec::new();
    while let Some(row) = rows.next().map_err(backend)? {
        keys.push(key_from_row(row)?);
    }
    Ok(keys)
}

/// A token and its key: the key's columns first, as `key_from_row` reads
/// them, then the token's.
///
/// Every account of a query's rows.
fn collect_accounts(mut rows: rusqlite::Rows<'_>) -> Result<Vec<Account>, StoreError> {
    let mut accounts = Vec::new();
    while let Some(row) = rows.next().map_err(backend)? {
        accounts.push(account_from_row(row)?);
    }
    Ok(accounts)
}

/// The `CAST` keeps the statement prepared: in a join SQLite propagates the
/// bound digest as a constant and marks the statement as depending on its
/// value, so the statement cache's `clear_bindings` expired it and every
/// check parsed and planned the join again (17 µs instead of 2 µs).
const TOKEN_WITH_KEY: &str = concat!(
    "SELECT ",
    key_columns!(),
    ", t.issued_at, t.expires_at \
     FROM tokens t JOIN keys k ON k.identifier = t.identifier \
     WHERE t.digest = CAST(?1 AS BLOB)"
);

const KEY_BY_ID: &str = concat!("SELECT ", key_columns!(), " FROM keys k WHERE k.id = ?1");

const KEY_BY_IDENTIFIER: &str = concat!(
    "SELECT ",
    key_columns!(),
    " FROM keys k WHERE k.identifier = ?1"
);

/// A key by identifier and the accounts' epoch: the authentication hot
/// path, with the holders from the cache while the epoch holds (see
/// `HoldersCache`). The `CAST` keeps the statement prepared.
const KEY_WITH_EPOCH: &str = concat!(
    "SELECT ",
    key_columns!(),
    ", (SELECT n FROM account_epoch) FROM keys k WHERE k.identifier = CAST(?1 AS TEXT)"
);

/// A token, its key and the accounts' epoch: the bearer-token hot path.
const TOKEN_WITH_EPOCH: &str = concat!(
    "SELECT ",
    key_columns!(),
    ", t.issued_at, t.expires_at, (SELECT n FROM account_epoch) \
     FROM tokens t JOIN keys k ON k.identifier = t.identifier \
     WHERE t.digest = CAST(?1 AS BLOB)"
);

/// An account and its master (NULLs for a master).
const HOLDERS: &str = concat!(
    "SELECT ",
    account_columns!("a"),
    ", ",
    account_columns!("m"),
    " FROM accounts a LEFT JOIN accounts m ON m.id = a.parent_id WHERE a.id = CAST(?1 AS BLOB)"
);

/// The filter of [`DormantQuery::matches`] and the keyset page, in id order
/// (`keys_by_last_use` serves both: its columns hold the filter, so only
/// the keys listed are searched in the table). `?1` is the last id of the
/// previous page (the empty blob, before every id, for the first),
/// `?2` `unused_since`, `?3` whether only unused legacy defaults count,
/// `?4` the limit.
macro_rules! dormant_filter {
    () => {
        "k.id > ?1 AND coalesce(k.last_used_at, k.created_at) <= ?2 \
         AND (?3 = 0 OR (k.legacy_default = 1 AND k.last_used_at IS NULL))"
    };
}

/// Dormant keys of every account.
const DORMANT_KEYS: &str = concat!(
    "SELECT ",
    key_columns!(),
    " FROM keys k WHERE ",
    dormant_filter!(),
    " ORDER BY k.id LIMIT ?4"
);

/// Dormant keys of one account (`?5`) and, for a master, of its
/// sub-accounts.
const DORMANT_KEYS_OF_ACCOUNT: &str = concat!(
    "SELECT ",
    key_columns!(),
    " FROM keys k WHERE k.account_id IN \
     (SELECT ?5 UNION ALL SELECT id FROM accounts WHERE parent_id = ?5) AND ",
    dormant_filter!(),
    " ORDER BY k.id LIMIT ?4"
);

#[cfg(test)]
mod tests {
    use super::*;

    /// The statements of the hot paths stay prepared between calls: taken
    /// from the statement cache, run with new values and put back (as
    /// `prepare_cached` does, which clears their bindings), they are never
    /// parsed and planned again.
    #[test]
    fn hot_statements_are_not_prepared_again_between_calls() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prepared.db");
        drop(SqliteStore::open(&path).unwrap());
        let conn = rusqlite::Connection::open(&path).unwrap();
        // Each statement, and its parameter's value in round `i`.
        type Value = fn(u8) -> rusqlite::types::Value;
        let hot: [(&str, Value); 6] = [
            (TOKEN_WITH_KEY, |i| vec![i; 32].into()),
            (KEY_BY_IDENTIFIER, |i| format!("identifier{i}").into()),
            (KEY_BY_ID, |i| vec![i; 16].into()),
            (KEY_WITH_EPOCH, |i| format!("identifier{i}").into()),
            (TOKEN_WITH_EPOCH, |i| vec![i; 32].into()),
            (HOLDERS, |i| vec![i; 16].into()),
        ];
        for (sql, value) in hot {
            for i in 0..10 {
                let mut stmt = conn.prepare_cached(sql).unwrap();
                let mut rows = stmt.query([value(i)]).unwrap();
                assert!(rows.next().unwrap().is_none());
            }
            let stmt = conn.prepare_cached(sql).unwrap();
            assert_eq!(
                stmt.get_status(rusqlite::StatementStatus::RePrepare),
                0,
                "prepared again: {sql}"
            );
        }
    }
}

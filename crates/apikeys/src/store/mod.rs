//! The storage contract (SPEC.md section 8): what every backend must do, and
//! the in-memory store.
//!
//! A store keeps accounts, keys and the audit trail. The domain validates
//! every input before it reaches the store; the store's job is to keep what
//! it is given, find it again fast, and enforce, atomically and even against
//! concurrent writers in other processes, the rules that no single reader
//! could enforce alone:
//!
//! - an identifier names at most one key, ignoring ASCII case;
//! - an account holds at most `max_for_channel` keys of one channel;
//! - a change applies only to the version it was computed from;
//! - a change and its audit event commit together or not at all.

mod memory;

pub use memory::MemoryStore;

use crate::account::Account;
use crate::audit::AuditEvent;
use crate::channel::Channel;
use crate::id::{AccountId, KeyId};
use crate::key::KeyRecord;
use std::fmt;
use std::sync::Arc;

/// A store behind `dyn`: what the service holds.
pub type DynStore = dyn Store;

/// Storage for accounts, keys and the audit trail.
///
/// Every method is synchronous and may be called from many threads at once.
/// "Absent" is `Ok(None)` (or an empty list) for reads, and
/// [`StoreError::NotFound`] for writes that need the thing to exist.
pub trait Store: Send + Sync {
    /// Stores a new account together with its initial keys and the audit
    /// events of its opening, all or nothing.
    ///
    /// Initial keys obey the rules of [`Store::insert_key`], with at most one
    /// key per channel other than REST (REST is never limited here: the
    /// domain issues no default REST key).
    ///
    /// Errors: [`StoreError::AlreadyExists`] with [`Existing::Account`] if the
    /// id is taken, or with the kinds of [`Store::insert_key`] if an initial
    /// key breaks a uniqueness rule; [`StoreError::NotFound`] if the account
    /// is a sub-account whose parent is not stored. On error nothing is kept.
    fn create_account(
        &self,
        account: &Account,
        keys: &[KeyRecord],
        events: &[AuditEvent],
    ) -> Result<(), StoreError>;

    /// The account with this id, or `None`.
    fn account(&self, id: AccountId) -> Result<Option<Account>, StoreError>;

    /// Stores a new key and its audit event, atomically checking:
    ///
    /// - the account exists, else [`StoreError::NotFound`];
    /// - the key id is free, else [`Existing::Key`];
    /// - no key has the same identifier ignoring ASCII case, else
    ///   [`Existing::Identifier`];
    /// - the account holds fewer than `max_for_channel` keys of the key's
    ///   channel, else [`Existing::ChannelFull`].
    ///
    /// Concurrent calls that would together break a rule: exactly one wins.
    fn insert_key(
        &self,
        key: &KeyRecord,
        max_for_channel: u32,
        event: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// The key with this id, or `None`.
    fn key(&self, id: KeyId) -> Result<Option<KeyRecord>, StoreError>;

    /// The key whose identifier equals `identifier` ignoring ASCII case, or
    /// `None`. This is the authentication hot path: one indexed lookup.
    fn key_by_identifier(&self, identifier: &str) -> Result<Option<KeyRecord>, StoreError>;

    /// The keys of an account, oldest first (ties by id); empty if none or if
    /// the account does not exist.
    fn keys_of_account(&self, account: AccountId) -> Result<Vec<KeyRecord>, StoreError>;

    /// Replaces a key's record with `key` and stores `event`, atomically, if
    /// and only if the stored version is still `expected_version`
    /// (compare-and-swap).
    ///
    /// Only the identifier, label, hashes, previous secret, whitelist,
    /// `changed_at` and `version` may differ from the stored record; the id,
    /// account, channel and creation instant are never changed.
    ///
    /// Errors: [`StoreError::NotFound`] if the key is gone;
    /// [`StoreError::Conflict`] if its version moved on;
    /// [`Existing::Identifier`] if the new identifier names another key.
    /// Once this returns `Ok`, every reader, in every process, sees the new
    /// record: old credentials stop working at once.
    fn update_key(
        &self,
        key: &KeyRecord,
        expected_version: u64,
        event: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// Replaces the current secret hash of a key with an upgraded hash of the
    /// same secret, if it still equals `current`. Returns whether it did.
    ///
    /// Not a change of credentials: no version bump and no audit event.
    fn upgrade_secret_hash(
        &self,
        id: KeyId,
        current: &str,
        upgraded: &str,
    ) -> Result<bool, StoreError>;

    /// Deletes a key and stores its audit event, atomically.
    ///
    /// Errors: [`StoreError::NotFound`] if there is no such key.
    fn delete_key(&self, id: KeyId, event: &AuditEvent) -> Result<(), StoreError>;

    /// The audit events of an account, newest first (by instant, then by
    /// order of recording), at most `limit` of them.
    fn audit_events(&self, account: AccountId, limit: usize)
    -> Result<Vec<AuditEvent>, StoreError>;
}

impl<S: Store + ?Sized> Store for Arc<S> {
    fn create_account(
        &self,
        account: &Account,
        keys: &[KeyRecord],
        events: &[AuditEvent],
    ) -> Result<(), StoreError> {
        (**self).create_account(account, keys, events)
    }
    fn account(&self, id: AccountId) -> Result<Option<Account>, StoreError> {
        (**self).account(id)
    }
    fn insert_key(
        &self,
        key: &KeyRecord,
        max_for_channel: u32,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        (**self).insert_key(key, max_for_channel, event)
    }
    fn key(&self, id: KeyId) -> Result<Option<KeyRecord>, StoreError> {
        (**self).key(id)
    }
    fn key_by_identifier(&self, identifier: &str) -> Result<Option<KeyRecord>, StoreError> {
        (**self).key_by_identifier(identifier)
    }
    fn keys_of_account(&self, account: AccountId) -> Result<Vec<KeyRecord>, StoreError> {
        (**self).keys_of_account(account)
    }
    fn update_key(
        &self,
        key: &KeyRecord,
        expected_version: u64,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        (**self).update_key(key, expected_version, event)
    }
    fn upgrade_secret_hash(
        &self,
        id: KeyId,
        current: &str,
        upgraded: &str,
    ) -> Result<bool, StoreError> {
        (**self).upgrade_secret_hash(id, current, upgraded)
    }
    fn delete_key(&self, id: KeyId, event: &AuditEvent) -> Result<(), StoreError> {
        (**self).delete_key(id, event)
    }
    fn audit_events(
        &self,
        account: AccountId,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        (**self).audit_events(account, limit)
    }
}

/// Conveniences over any [`Store`].
pub trait StoreExt: Store {
    /// The account, or [`StoreError::NotFound`].
    fn require_account(&self, id: AccountId) -> Result<Account, StoreError> {
        self.account(id)?
            .ok_or(StoreError::NotFound(Entity::Account(id)))
    }

    /// The key, or [`StoreError::NotFound`].
    fn require_key(&self, id: KeyId) -> Result<KeyRecord, StoreError> {
        self.key(id)?.ok_or(StoreError::NotFound(Entity::Key(id)))
    }

    /// The channels for which the account holds at least one key.
    fn active_channels(&self, account: AccountId) -> Result<crate::ChannelSet, StoreError> {
        Ok(self
            .keys_of_account(account)?
            .iter()
            .map(|k| k.channel)
            .collect())
    }
}

impl<S: Store + ?Sized> StoreExt for S {}

/// What was not found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entity {
    /// An account.
    Account(AccountId),
    /// A key.
    Key(KeyId),
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Entity::Account(id) => write!(f, "account {id}"),
            Entity::Key(id) => write!(f, "key {id}"),
        }
    }
}

/// Which uniqueness rule a write ran into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Existing {
    /// The account id is taken.
    Account,
    /// The key id is taken.
    Key,
    /// Another key has this identifier (ignoring ASCII case).
    Identifier,
    /// The account already holds as many keys of this channel as allowed.
    ChannelFull(Channel),
}

impl fmt::Display for Existing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Existing::Account => f.write_str("an account with this id exists"),
            Existing::Key => f.write_str("a key with this id exists"),
            Existing::Identifier => f.write_str("a key with this identifier exists"),
            Existing::ChannelFull(c) => write!(f, "the account holds the most {c} keys allowed"),
        }
    }
}

/// The one error type of every store. Backends map their own errors onto
/// these kinds; the domain decides what each means to the caller.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The thing to change does not exist.
    #[error("{0} not found")]
    NotFound(Entity),
    /// A create-if-absent write found the thing already there.
    #[error("already exists: {0}")]
    AlreadyExists(Existing),
    /// A compare-and-swap write found another version than expected.
    #[error("conflict: key {key} is at version {found}, not {expected}")]
    Conflict {
        /// The key concerned.
        key: KeyId,
        /// The version the write was computed from.
        expected: u64,
        /// The version stored now.
        found: u64,
    },
    /// The backend failed (I/O, connection, corrupt data...).
    #[error("storage backend failed: {source}")]
    Backend {
        /// The backend's own error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StoreError {
    /// Wraps a backend's error.
    pub fn backend(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        StoreError::Backend {
            source: source.into(),
        }
    }

    /// A backend error for a stored value that cannot be read back: its
    /// source is a [`BadRow`] naming the table and the column.
    pub fn bad_row(
        table: &'static str,
        column: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        StoreError::backend(BadRow {
            table,
            column,
            source: source.into(),
        })
    }
}

/// A stored value a store cannot read back: the row was damaged, or edited
/// by hand or by something else. Found as the source of a
/// [`StoreError::Backend`] (made with [`StoreError::bad_row`]); one type for
/// every store, so that a platform's tooling recognises it whatever the
/// backend.
#[derive(Debug, thiserror::Error)]
#[error("unreadable value in column `{column}` of table `{table}`")]
pub struct BadRow {
    /// The table.
    pub table: &'static str,
    /// The column.
    pub column: &'static str,
    /// What is wrong with the value.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

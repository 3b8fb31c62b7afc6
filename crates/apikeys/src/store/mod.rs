//! The storage contract: what every backend must do, and the in-memory
//! store.
//!
//! A store keeps accounts, keys and the audit trail. The domain validates
//! every input before it reaches the store; the store's job is to keep what
//! it is given exactly, find it again fast, and enforce, atomically and
//! even against concurrent writers in other processes, the rules that no
//! single reader could enforce alone:
//!
//! - an identifier names at most one key, ignoring ASCII case;
//! - an account holds at most `max_for_channel` keys of one channel;
//! - a change (or a deletion asked for at a version) applies only to the
//!   version it was computed from;
//! - a change and its audit events commit together or not at all.
//!
//! The whole contract is written on [`Store`], so that a backend can be
//! written from it alone; [`encoding`] has the value encodings every store
//! of the workspace shares, and the conformance suite (feature `testing`)
//! checks a backend against the contract.

pub mod encoding;
mod memory;

pub use encoding::Unstorable;
pub use memory::MemoryStore;

use crate::account::{Account, AccountPolicy, ExternalId};
use crate::audit::AuditEvent;
use crate::channel::Channel;
use crate::hashing::SecretHash;
use crate::id::{AccountId, KeyId};
use crate::key::KeyRecord;
use crate::lifecycle::{HeldKey, Holders};
use crate::token::{TokenDigest, TokenRecord};
use crate::usage::KeyUse;
use std::fmt;
use std::sync::Arc;
use time::OffsetDateTime;

/// A store behind `dyn`: what the service holds.
pub type DynStore = dyn Store;

/// Storage for accounts, keys and the audit trail.
///
/// Every method is synchronous and may be called from many threads at once;
/// the trait is object-safe ([`DynStore`]).
///
/// # The contract
///
/// **Absent things.** A read of something that does not exist is `Ok(None)`
/// (or an empty list); a write that needs something to exist fails with
/// [`StoreError::NotFound`] naming it.
///
/// **Atomicity, and what `Err` means.** Every write (account creation, key
/// insert, update, hash upgrade, delete) is applied whole, together with its
/// audit events, or not at all. `Ok` means applied; `Err` means *not*
/// applied: nothing of the write is visible, now or later. A store that
/// cannot tell at once whether a write took effect (a `COMMIT` whose answer
/// was lost with the connection) must find out before it returns, by asking
/// the database again; it never answers `Err` for a write that took effect.
///
/// **Visibility.** Once a write returns `Ok`, every read that starts after
/// it, on any thread and in any process sharing the database, sees it: the
/// old credentials of a changed or deleted key stop working at once. A store
/// keeps no cache that could answer with an older state.
///
/// **Concurrency.** Writes that would together break a rule (two keys with
/// one identifier, more keys of a channel than allowed, two updates from the
/// same version) never both succeed: the check and the write happen in one
/// critical section or transaction, so exactly as many succeed as the rule
/// allows, and the others fail with the rule's error.
///
/// **Identifiers** compare byte for byte after folding the ASCII letters
/// `A`–`Z` to `a`–`z`, and nothing else: `É` and `é` differ, and no
/// character is special (`_`, `%`, `*`, `?`, `[`, `\` are ordinary
/// characters, never wildcards or escapes of a `LIKE` or `GLOB`).
///
/// **Which error wins** when a write breaks several rules at once:
///
/// | write | errors, first that applies wins |
/// |---|---|
/// | [`Store::create_account`] | [`Existing::Account`]; [`Existing::ExternalId`]; [`StoreError::NotFound`] for the parent; then each initial key in order: `NotFound` for a key of another account, [`Existing::Key`], [`Existing::Identifier`], [`Existing::ChannelFull`] |
/// | [`Store::insert_key`] | `NotFound` for the account, [`Existing::Key`], [`Existing::Identifier`], [`Existing::ChannelFull`] |
/// | [`Store::update_key`] | `NotFound` for the key, [`StoreError::Conflict`], [`Existing::Identifier`] |
/// | [`Store::delete_key`] | `NotFound` for the key, [`StoreError::Conflict`] |
/// | [`Store::insert_token`] | `NotFound` for the key, [`StoreError::Conflict`], [`Existing::Token`] |
///
/// **Instants** (an account's creation, a key's creation and last change,
/// a grace period's end, an audit event's instant) are kept exactly, to the
/// nanosecond, from 1677-09-21 to 2262-04-11 UTC, and read back in UTC. A
/// write holding an instant outside that range fails with a
/// [`StoreError::Backend`] whose source is an [`Unstorable`], and writes
/// nothing. Durations (a policy's `max_key_lifetime`) likewise are kept to
/// the nanosecond up to 2^63 − 1 ns (about 292 years) and refused beyond
/// (the domain never asks for more than 100 years). Versions likewise are kept up to 2^63 − 1. Whether a write that
/// also breaks a rule fails with `Unstorable` or with the rule's error is
/// not specified; either way nothing is written. Only what a write stores
/// is checked: the creation instant [`Store::update_key`] ignores is never
/// refused, and an `expected_version` no key can be at is a
/// [`StoreError::Conflict`] like any other stale version.
///
/// **Sizes**, for a schema author sizing columns (the domain never hands a
/// store anything longer):
///
/// | field | longest |
/// |---|---|
/// | identifier | [`MAX_IDENTIFIER_LEN`](crate::credentials::MAX_IDENTIFIER_LEN) bytes, ASCII |
/// | label | [`MAX_LABEL_CHARS`](crate::credentials::MAX_LABEL_CHARS) characters, up to 256 bytes of UTF-8 |
/// | secret hash, current or previous | [`MAX_HASH_LEN`](crate::hashing::MAX_HASH_LEN) bytes, ASCII |
/// | whitelist | [`MAX_ENTRIES`](crate::whitelist::MAX_ENTRIES) entries of up to 43 bytes each |
/// | audit detail | [`MAX_DETAIL_LEN`](crate::audit::MAX_DETAIL_LEN) bytes of UTF-8 |
/// | actor | 36 bytes (`operator` or an account id's text) |
/// | external id | [`MAX_EXTERNAL_ID_CHARS`](crate::account::MAX_EXTERNAL_ID_CHARS) characters, up to [`MAX_EXTERNAL_ID_BYTES`](crate::account::MAX_EXTERNAL_ID_BYTES) (512) bytes of UTF-8 |
///
/// **External ids** ([`Account::external_id`]) are unique among accounts
/// and compare exactly, byte for byte: no case folding, no normalisation
/// (`A1`, `a1` and `A1` in another Unicode form are three ids). An account
/// without one takes part in no uniqueness. It is written at creation and
/// never changed.
///
/// **Tokens** (see [`crate::token`]) live and die with their key's
/// credentials: [`Store::update_key`] deletes a key's tokens, in the same
/// transaction, when it changes the identifier or the current secret hash;
/// [`Store::delete_key`] deletes them with the key;
/// [`Store::upgrade_secret_hash`] keeps them (the secret is the same).
///
/// **Fields a caller must not change.** A key's id, account, channel and
/// creation instant never change after it is inserted: [`Store::update_key`]
/// keeps the stored values whatever the record it is given says (it does
/// not refuse). [`Store::upgrade_secret_hash`] changes the current hash
/// only: not the version, not `changed_at`, and it records no event.
///
/// **Listings** and their order:
///
/// | listing | what | order |
/// |---|---|---|
/// | [`Store::keys_of_account`] | keys held by exactly this account, never its sub-accounts' | ascending by creation instant, ties ascending by id (its bytes, which is also its text's order) |
/// | [`Store::audit_events`] | events whose account is exactly this one | descending by instant, ties most recently recorded first |
/// | [`Store::sub_accounts`] | sub-accounts whose master is exactly this account | ascending by creation instant, ties ascending by id |
/// | [`Store::accounts`] | every account, masters and sub-accounts, whose id is after the cursor | ascending by id (its bytes) |
///
/// When [`Store::insert_token`] makes room, a key's oldest token goes first:
/// ascending by issue instant, ties ascending by digest.
///
/// **Lifecycle.** A key's `expires_at` and `enabled` are written like its
/// other fields; `legacy_default` is written once, at insert, and kept.
/// Its [`Usage`](crate::key::Usage) (last use) is written at insert and
/// then only by [`Store::record_uses`]: [`Store::update_key`] keeps the
/// stored usage, except that it clears `previous_secret_last_used_at` when
/// the previous secret's hash changes (a new grace, or none). An account's
/// `suspended` and `policy` are written at creation and then only by
/// [`Store::set_account_suspended`] and [`Store::set_account_policy`], each
/// writing its own field and nothing else, so that a suspension and a
/// policy change racing each other both land.
///
/// **Last use** ([`Store::record_uses`]) keeps the newest instant: a use
/// older than the one stored changes nothing, so processes may record in
/// any order. A previous secret's use is recorded only while the stored
/// previous hash is the one it matched.
///
/// **Authentication reads** ([`Store::key_for_authentication`],
/// [`Store::token_for_authentication`]) answer the key together with its
/// account and, for a sub-account, its master, as they are when the read
/// starts: a suspension or a policy change that returned is seen by the
/// next read. The provided methods read them one after the other; a
/// database store should override them with one query.
pub trait Store: Send + Sync {
    /// Stores a new account together with its initial keys and the audit
    /// events of its opening, all or nothing.
    ///
    /// Initial keys obey the rules of [`Store::insert_key`], with at most one
    /// key per channel other than REST (REST is never limited here: the
    /// domain issues no default REST key).
    ///
    /// Errors, in the order of the contract: [`Existing::Account`] if the id
    /// is taken; [`Existing::ExternalId`] if another account carries its
    /// external id; [`StoreError::NotFound`] if the account is a sub-account
    /// whose parent is not stored (before this write: a sub-account naming
    /// itself as its parent is not found); then, for the first initial key breaking
    /// a rule, [`StoreError::NotFound`] naming its account if that is not
    /// this account, or the kinds of [`Store::insert_key`].
    fn create_account(
        &self,
        account: &Account,
        keys: &[KeyRecord],
        events: &[AuditEvent],
    ) -> Result<(), StoreError>;

    /// Creates many accounts, each as [`Store::create_account`] would, in
    /// the order given: the answer holds one result per account, in order,
    /// and each account with its keys and events is written whole or not
    /// at all, whatever happens to the others. An account may name as its
    /// parent one created earlier in the same call. `Err` for the whole
    /// call means a failure that was not any one account's (the database
    /// went away): then each account either is written whole or not at
    /// all, and which is for a rerun to find out (by external id).
    ///
    /// What a bulk import writes through. The provided method calls
    /// [`Store::create_account`] once per account; a database store should
    /// override it to write many accounts per transaction and statement.
    fn create_accounts(
        &self,
        accounts: &[AccountRecords],
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let mut results = Vec::with_capacity(accounts.len());
        for a in accounts {
            match self.create_account(&a.account, &a.keys, &a.events) {
                Err(e) if e.is_account_independent() => return Err(e),
                other => results.push(other),
            }
        }
        Ok(results)
    }

    /// The account with this id, or `None`.
    fn account(&self, id: AccountId) -> Result<Option<Account>, StoreError>;

    /// The account carrying this external id (compared exactly), or `None`.
    fn account_by_external_id(
        &self,
        external_id: &ExternalId,
    ) -> Result<Option<Account>, StoreError>;

    /// The sub-accounts of `master`, ascending by creation instant, ties
    /// ascending by id: exactly those whose parent is `master`, never
    /// another master's. Empty if there are none, if `master` is a
    /// sub-account, or if it does not exist.
    fn sub_accounts(&self, master: AccountId) -> Result<Vec<Account>, StoreError>;

    /// At most `limit` accounts (masters and sub-accounts alike) whose id
    /// is greater than `after` (every account when `None`), ascending by
    /// id, compared as bytes: a keyset page. Passing the last id of one
    /// page as `after` gives the next one, and accounts created meanwhile
    /// neither shift a page nor repeat one: each account shows up once, on
    /// the page its id falls in. `after` need not be a stored id. A `limit`
    /// of 0 is an empty page.
    fn accounts(&self, after: Option<AccountId>, limit: usize) -> Result<Vec<Account>, StoreError>;

    /// Stores a new key and its audit event, atomically checking, in this
    /// order:
    ///
    /// - the account exists, else [`StoreError::NotFound`];
    /// - the key id is free, else [`Existing::Key`];
    /// - no key has the same identifier ignoring ASCII case, else
    ///   [`Existing::Identifier`];
    /// - the account holds fewer than `max_for_channel` keys of the key's
    ///   channel, else [`Existing::ChannelFull`].
    ///
    /// `max_for_channel` is the policy's limit for REST keys (0 or more);
    /// for every other channel it is 1, so a store may hold that limit with
    /// a unique index and need not support another.
    ///
    /// Concurrent calls that would together break a rule: exactly as many
    /// win as the rule allows.
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
    ///
    /// `identifier` is whatever a client presented: any string, including
    /// ones no stored identifier can be (empty, thousands of bytes, holding
    /// NUL or a database's wildcards); those are `Ok(None)`, not errors.
    fn key_by_identifier(&self, identifier: &str) -> Result<Option<KeyRecord>, StoreError>;

    /// The keys held by exactly this account, ascending by creation instant,
    /// ties ascending by id; empty if none or if the account does not exist.
    fn keys_of_account(&self, account: AccountId) -> Result<Vec<KeyRecord>, StoreError>;

    /// Replaces a key's record with `key` and stores `event`, atomically, if
    /// and only if the stored version is still `expected_version`
    /// (compare-and-swap).
    ///
    /// Only the identifier, label, hashes, previous secret, whitelist,
    /// expiry, enabled state, `changed_at` and `version` are written; the
    /// stored id, account, channel, creation instant, legacy mark and usage
    /// are kept, whatever `key` says (except that the previous secret's
    /// last use is cleared when the previous hash changes). If the
    /// identifier or the current secret hash changes, the key's tokens are
    /// deleted in the same transaction.
    ///
    /// Errors, in this order: [`StoreError::NotFound`] if the key is gone;
    /// [`StoreError::Conflict`] if its version moved on;
    /// [`Existing::Identifier`] if the new identifier names another key.
    fn update_key(
        &self,
        key: &KeyRecord,
        expected_version: u64,
        event: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// Replaces the current secret hash of a key with an upgraded hash of the
    /// same secret, if the stored one still equals `current`. Returns whether
    /// it did (`false` too when the key is gone).
    ///
    /// Not a change of credentials: no version bump, no new `changed_at`, no
    /// audit event.
    fn upgrade_secret_hash(
        &self,
        id: KeyId,
        current: &SecretHash,
        upgraded: &SecretHash,
    ) -> Result<bool, StoreError>;

    /// Deletes a key, with its tokens, and stores its audit event,
    /// atomically; with `Some(expected_version)`, only if the stored
    /// version is still that one (compare-and-swap, as
    /// [`Store::update_key`]), so that what is deleted is exactly the
    /// version the caller read and decided on.
    ///
    /// Errors, in this order: [`StoreError::NotFound`] if there is no such
    /// key; [`StoreError::Conflict`] if its version is not
    /// `expected_version`.
    fn delete_key(
        &self,
        id: KeyId,
        expected_version: Option<u64>,
        event: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// Stores a new REST token and its audit event, atomically:
    ///
    /// - the key must exist, else [`StoreError::NotFound`], and still be at
    ///   `key_version` (the credentials the token was issued for), else
    ///   [`StoreError::Conflict`];
    /// - the key's tokens expired at `now` (`expires_at <= now`) are
    ///   deleted;
    /// - while the key holds `max_live` tokens or more (`max_live` is at
    ///   least 1), its oldest is deleted;
    /// - a digest already stored is [`Existing::Token`].
    ///
    /// Concurrent inserts for one key never leave it more than `max_live`.
    fn insert_token(
        &self,
        token: &TokenRecord,
        key_version: u64,
        max_live: u32,
        now: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// The token with this digest and the key it stands for, read together
    /// in one lookup; `None` if there is none. An expired token may still be
    /// returned: the caller compares `expires_at` with its clock.
    fn token(&self, digest: &TokenDigest) -> Result<Option<(TokenRecord, KeyRecord)>, StoreError>;

    /// Deletes every token expired at `now` (`expires_at <= now`); returns
    /// how many.
    fn purge_expired_tokens(&self, now: OffsetDateTime) -> Result<u64, StoreError>;

    /// The audit events of exactly this account, newest first (by instant,
    /// ties most recently recorded first), at most `limit` of them.
    fn audit_events(&self, account: AccountId, limit: usize)
    -> Result<Vec<AuditEvent>, StoreError>;

    /// Suspends (`true`) or resumes (`false`) an account and stores `event`,
    /// atomically; writes nothing else of the account. Setting the state it
    /// already has is still written (with its event).
    ///
    /// Errors: [`StoreError::NotFound`] if there is no such account.
    fn set_account_suspended(
        &self,
        id: AccountId,
        suspended: bool,
        event: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// Replaces an account's policy and stores `event`, atomically; writes
    /// nothing else of the account.
    ///
    /// Errors: [`StoreError::NotFound`] if there is no such account.
    fn set_account_policy(
        &self,
        id: AccountId,
        policy: &AccountPolicy,
        event: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// Records last uses, all in one transaction: for each, if the key
    /// exists, its `last_used_at` and `last_used_address` become the use's
    /// if the use is newer than what is stored (or nothing is), and its
    /// `previous_secret_last_used_at` likewise from `previous`, only if the
    /// stored previous hash equals the one `previous` names. Uses of keys
    /// that are gone are skipped. No version bump, no `changed_at`, no
    /// audit event: last use is not a change.
    fn record_uses(&self, uses: &[KeyUse]) -> Result<(), StoreError>;

    /// The account and, for a sub-account, its master; `None` if the
    /// account does not exist.
    fn holders(&self, account: AccountId) -> Result<Option<Holders>, StoreError> {
        let Some(account) = self.account(account)? else {
            return Ok(None);
        };
        let master = match account.kind.parent() {
            Some(parent) => self.account(parent)?,
            None => None,
        };
        Ok(Some(Holders { account, master }))
    }

    /// The key whose identifier equals `identifier` ignoring ASCII case
    /// (as [`Store::key_by_identifier`]), with its holders: the
    /// authentication hot path. `None` if there is no such key.
    fn key_for_authentication(&self, identifier: &str) -> Result<Option<HeldKey>, StoreError> {
        let Some(key) = self.key_by_identifier(identifier)? else {
            return Ok(None);
        };
        Ok(self
            .holders(key.account_id)?
            .map(|holders| HeldKey { key, holders }))
    }

    /// The token with this digest, its key and the key's holders (as
    /// [`Store::token`]): the bearer-token hot path.
    fn token_for_authentication(
        &self,
        digest: &TokenDigest,
    ) -> Result<Option<(TokenRecord, HeldKey)>, StoreError> {
        let Some((token, key)) = self.token(digest)? else {
            return Ok(None);
        };
        Ok(self
            .holders(key.account_id)?
            .map(|holders| (token, HeldKey { key, holders })))
    }

    /// Keys unused since `query.unused_since`: those whose last use, or
    /// creation if never used, is at or before it (see [`DormantQuery`]),
    /// ascending by id (its bytes), at most `query.limit`, after
    /// `query.after`: a keyset page.
    ///
    /// The provided method walks every account; a database store should
    /// override it with one query.
    fn dormant_keys(&self, query: &DormantQuery) -> Result<Vec<KeyRecord>, StoreError> {
        let mut accounts = Vec::new();
        match query.account {
            Some(id) => {
                if let Some(a) = self.account(id)? {
                    accounts.extend(self.sub_accounts(a.id)?);
                    accounts.push(a);
                }
            }
            None => {
                let mut after = None;
                loop {
                    let page = self.accounts(after, 1000)?;
                    let Some(last) = page.last() else { break };
                    after = Some(last.id);
                    accounts.extend(page);
                }
            }
        }
        let mut found = Vec::new();
        for a in &accounts {
            found.extend(
                self.keys_of_account(a.id)?
                    .into_iter()
                    .filter(|k| query.matches(k) && query.after.is_none_or(|after| k.id > after)),
            );
        }
        found.sort_by_key(|k| k.id);
        found.truncate(query.limit);
        Ok(found)
    }
}

/// One account to create with [`Store::create_accounts`]: what
/// [`Store::create_account`] takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountRecords {
    /// The account.
    pub account: Account,
    /// Its initial keys.
    pub keys: Vec<KeyRecord>,
    /// The audit events of its opening.
    pub events: Vec<AuditEvent>,
}

/// Which dormant keys [`Store::dormant_keys`] lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DormantQuery {
    /// Only this account's keys and, for a master, its sub-accounts'
    /// (`None`: every account's).
    pub account: Option<AccountId>,
    /// Keys whose last use, or creation if never used, is at or before this
    /// instant.
    pub unused_since: OffsetDateTime,
    /// Only legacy default keys never used at all.
    pub legacy_defaults_only: bool,
    /// Only keys whose id is after this one (the last of the previous page).
    pub after: Option<KeyId>,
    /// At most this many keys.
    pub limit: usize,
}

impl DormantQuery {
    /// Whether `key` is one this query lists (its account and page aside).
    pub fn matches(&self, key: &KeyRecord) -> bool {
        key.usage.last_used_at.unwrap_or(key.created_at) <= self.unused_since
            && (!self.legacy_defaults_only
                || (key.legacy_default && key.usage.last_used_at.is_none()))
    }
}

/// Which [`Store`] method a call is: for wrappers that count or fail calls
/// (see `testing::Intercepted`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreCall {
    /// [`Store::create_account`].
    CreateAccount,
    /// [`Store::create_accounts`].
    CreateAccounts,
    /// [`Store::account`].
    Account,
    /// [`Store::account_by_external_id`].
    AccountByExternalId,
    /// [`Store::sub_accounts`].
    SubAccounts,
    /// [`Store::accounts`].
    Accounts,
    /// [`Store::insert_key`].
    InsertKey,
    /// [`Store::key`].
    Key,
    /// [`Store::key_by_identifier`]: the authentication lookup.
    KeyByIdentifier,
    /// [`Store::keys_of_account`].
    KeysOfAccount,
    /// [`Store::update_key`].
    UpdateKey,
    /// [`Store::upgrade_secret_hash`].
    UpgradeSecretHash,
    /// [`Store::delete_key`].
    DeleteKey,
    /// [`Store::audit_events`].
    AuditEvents,
    /// [`Store::insert_token`].
    InsertToken,
    /// [`Store::token`]: the bearer-token lookup.
    Token,
    /// [`Store::purge_expired_tokens`].
    PurgeExpiredTokens,
    /// [`Store::set_account_suspended`].
    SetAccountSuspended,
    /// [`Store::set_account_policy`].
    SetAccountPolicy,
    /// [`Store::record_uses`].
    RecordUses,
    /// [`Store::holders`].
    Holders,
    /// [`Store::key_for_authentication`]: the authentication lookup.
    KeyForAuthentication,
    /// [`Store::token_for_authentication`]: the bearer-token lookup.
    TokenForAuthentication,
    /// [`Store::dormant_keys`].
    DormantKeys,
}

/// Implements [`Store`] for a wrapper by forwarding every method to
/// `$inner`, after `$before` (a `Result<(), StoreError>` computed from the
/// [`StoreCall`] bound to `$call`; its error is then the call's answer).
/// Written once, for `Arc`, `Box`, references and the test wrappers.
macro_rules! forward_store {
    (impl[$($gen:tt)*] $ty:ty $(where [$($bound:tt)*])?, |$this:ident, $call:ident| $inner:expr, $before:expr) => {
        impl<$($gen)*> $crate::store::Store for $ty $(where $($bound)*)? {
            fn create_account(
                &self,
                account: &$crate::Account,
                keys: &[$crate::KeyRecord],
                events: &[$crate::AuditEvent],
            ) -> Result<(), $crate::StoreError> {
                let ($this, $call) = (self, $crate::store::StoreCall::CreateAccount);
                $before?;
                $inner.create_account(account, keys, events)
            }
            fn create_accounts(
                &self,
                accounts: &[$crate::store::AccountRecords],
            ) -> Result<Vec<Result<(), $crate::StoreError>>, $crate::StoreError> {
                let ($this, $call) = (self, $crate::store::StoreCall::CreateAccounts);
                $before?;
                $inner.create_accounts(accounts)
            }
            fn account_by_external_id(
                &self,
                external_id: &$crate::ExternalId,
            ) -> Result<Option<$crate::Account>, $crate::StoreError> {
                let ($this, $call) = (self, $crate::store::StoreCall::AccountByExternalId);
                $before?;
                $inner.account_by_external_id(external_id)
            }
            fn account(
                &self,
                id: $crate::AccountId,
            ) -> Result<Option<$crate::Account>, $crate::StoreError> {
                let ($this, $call) = (self, $crate::store::StoreCall::Account);
                $before?;
                $inner.account(id)
            }
            fn sub_accounts(
                &self,
                master: $crate::AccountId,
            ) -> Result<Vec<$crate::Account>, $crate::StoreError> {
                let ($this, $call) = (self, $crate::store::StoreCall::SubAccounts);
                $before?;
                $inner.sub_accounts(master)
            }
            fn accounts(
                &self,
                after: Option<$crate::AccountId>,
                limit: usize,
            ) -> Result<Vec<$crate::Account>, $crate::StoreError> {
                let ($this, $call) = (self, $crate::store::StoreCall::Accounts);
                $before?;
                $inner.accounts(after, limit)
            }
            fn insert_key(
                &self,
                key: &$crate::KeyRecord,
                max_for_channel: u32,
                event: &$crate::AuditEvent,
            ) -> Result<(), $crate::StoreError> {
                let ($this, $call) = (self, $crate::store::StoreCall::InsertKey);
                $before?;
                $inner.insert_key(key, max_for_channel, event)
            }
            fn key(
                &self,
                id: $crate::KeyId,
            ) -> Result<Option<$crate::KeyRecord>, $crate::StoreError> {
                let ($this, $call) = (self, $crate::store::StoreCall::Key);
                $before?;
                $inner.key(id)
            }
            fn key_by_identifier(
                &self,
                identifier: &str,
            ) -> Result<Option<$crate::KeyRecord>, $crate::StoreError> {
                let ($this, $call) = (self, $crate::store::StoreCall::KeyByIdentifier);
                $before?;
                $inner.key_by_identifier(identifier)
            }
            fn keys_of_account(
                &self,
                account: $crate::AccountId,
            ) -> Result<Vec<$crate::KeyRecord>, $crate::StoreError> {
                let ($this, $call) = (self, $crate::store::StoreCall::KeysOfAccount);
                $before?;
                $inner.keys_of_account(account)
            }
            fn update_key(
                &self,
                key: &$crate::KeyRecord,
                expected_version: u64,
                event: &$crate::AuditEvent,
            ) -> Result<(), $crate::StoreError> {
                let ($this, $call) = (self, $crate::store::StoreCall::UpdateKey);
                $before?;
                $inner.update_key(key, expected_version, event)
            }
            fn upgrade_secret_hash(
                &self,
                id: $crate::KeyId,
                current: &$crate::hashing::SecretHash,
                upgraded: &$crate::hashing::SecretHash,
            ) -> Result<bool, $crate::StoreError> {
                let ($this, $call) = (self, $crate::store::StoreCall::UpgradeSecretHash);
                $before?;
                $inner.upgrade_secret_hash(id, current, upgraded)
            }
            fn delete_key(
                &self,
                id: $crate::KeyId,
                expected_version: Option<u64>,
                event: &$crate::AuditEvent,
            ) -> Result<(), $crate::StoreError> {
                let ($this, $call) = (self, $crate::store::StoreCall::DeleteKey);
                $before?;
                $inner.delete_key(id, expected_version, event)
            }
            fn audit_events(
                &self,
                account: $crate::AccountId,
                limit: usize,
            ) -> Result<Vec<$crate::AuditEvent>, $crate::StoreError> {
                let ($this, $call) = (self, $crate::store::StoreCall::AuditEvents);
                $before?;
                $inner.audit_events(account, limit)
            }
            fn insert_token(
                &self,
                token: &$crate::token::TokenRecord,
                key_version: u64,
                max_live: u32,
                now: ::time::OffsetDateTime,
                event: &$crate::AuditEvent,
            ) -> Result<(), $crate::StoreError> {
                let ($this, $call) = (self, $crate::store::StoreCall::InsertToken);
                $before?;
                $inner.insert_token(token, key_version, max_live, now, event)
            }
            fn token(
                &self,
                digest: &$crate::token::TokenDigest,
            ) -> Result<Option<($crate::token::TokenRecord, $crate::KeyRecord)>, $crate::StoreError> {
                let ($this, $call) = (self, $crate::store::StoreCall::Token);
                $before?;
                $inner.token(digest)
            }
            fn purge_expired_tokens(
                &self,
                now: ::time::OffsetDateTime,
            ) -> Result<u64, $crate::StoreError> {
                let ($this, $call) = (self, $crate::store::StoreCall::PurgeExpiredTokens);
                $before?;
                $inner.purge_expired_tokens(now)
            }
            fn set_account_suspended(
                &self,
                id: $crate::AccountId,
                suspended: bool,
                event: &$crate::AuditEvent,
            ) -> Result<(), $crate::StoreError> {
                let ($this, $call) = (self, $crate::store::StoreCall::SetAccountSuspended);
                $before?;
                $inner.set_account_suspended(id, suspended, event)
            }
            fn set_account_policy(
                &self,
                id: $crate::AccountId,
                policy: &$crate::account::AccountPolicy,
                event: &$crate::AuditEvent,
            ) -> Result<(), $crate::StoreError> {
                let ($this, $call) = (self, $crate::store::StoreCall::SetAccountPolicy);
                $before?;
                $inner.set_account_policy(id, policy, event)
            }
            fn record_uses(
                &self,
                uses: &[$crate::usage::KeyUse],
            ) -> Result<(), $crate::StoreError> {
                let ($this, $call) = (self, $crate::store::StoreCall::RecordUses);
                $before?;
                $inner.record_uses(uses)
            }
            fn holders(
                &self,
                account: $crate::AccountId,
            ) -> Result<Option<$crate::lifecycle::Holders>, $crate::StoreError> {
                let ($this, $call) = (self, $crate::store::StoreCall::Holders);
                $before?;
                $inner.holders(account)
            }
            fn key_for_authentication(
                &self,
                identifier: &str,
            ) -> Result<Option<$crate::lifecycle::HeldKey>, $crate::StoreError> {
                let ($this, $call) = (self, $crate::store::StoreCall::KeyForAuthentication);
                $before?;
                $inner.key_for_authentication(identifier)
            }
            fn token_for_authentication(
                &self,
                digest: &$crate::token::TokenDigest,
            ) -> Result<Option<($crate::token::TokenRecord, $crate::lifecycle::HeldKey)>, $crate::StoreError> {
                let ($this, $call) = (self, $crate::store::StoreCall::TokenForAuthentication);
                $before?;
                $inner.token_for_authentication(digest)
            }
            fn dormant_keys(
                &self,
                query: &$crate::store::DormantQuery,
            ) -> Result<Vec<$crate::KeyRecord>, $crate::StoreError> {
                let ($this, $call) = (self, $crate::store::StoreCall::DormantKeys);
                $before?;
                $inner.dormant_keys(query)
            }
        }
    };
}
#[cfg_attr(not(feature = "testing"), allow(unused_imports))]
pub(crate) use forward_store;

forward_store!(impl[S: Store + ?Sized] Arc<S>, |this, _call| (**this), Ok::<(), StoreError>(()));
forward_store!(impl[S: Store + ?Sized] Box<S>, |this, _call| (**this), Ok::<(), StoreError>(()));
forward_store!(impl['a, S: Store + ?Sized] &'a S, |this, _call| (**this), Ok::<(), StoreError>(()));

/// Conveniences over any [`Store`].
pub trait StoreExt: Store {
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
    /// Another account carries this external id.
    ExternalId,
    /// The key id is taken.
    Key,
    /// Another key has this identifier (ignoring ASCII case).
    Identifier,
    /// The account already holds as many keys of this channel as allowed.
    ChannelFull(Channel),
    /// A token with this digest is stored already.
    Token,
}

impl fmt::Display for Existing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Existing::Account => f.write_str("an account with this id exists"),
            Existing::ExternalId => f.write_str("an account with this external id exists"),
            Existing::Key => f.write_str("a key with this id exists"),
            Existing::Identifier => f.write_str("a key with this identifier exists"),
            Existing::ChannelFull(c) => write!(f, "the account holds the most {c} keys allowed"),
            Existing::Token => f.write_str("a token with this digest exists"),
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

    /// Whether this error is no one write's fault: a backend failure other
    /// than a value the store cannot keep ([`Unstorable`]). What
    /// [`Store::create_accounts`] stops at.
    pub fn is_account_independent(&self) -> bool {
        match self {
            StoreError::Backend { source } => !source.is::<Unstorable>(),
            _ => false,
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

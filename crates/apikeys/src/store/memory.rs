//! An in-memory store: for tests, examples and single-process embedders that
//! need no persistence. Everything sits behind one `RwLock`, so reads run in
//! parallel and every write is atomic. It keeps exactly what the other
//! stores keep: instants in their range, in UTC, and versions up to
//! 2^63 - 1 (see [`super::encoding`]).

use super::encoding::{duration_to_nanos, instant_to_nanos, version_to_i64};
use super::{Entity, Existing, Store, StoreError, Unstorable};
use crate::account::{Account, AccountKind, AccountPolicy, ExternalId};
use crate::audit::AuditEvent;
use crate::hashing::SecretHash;
use crate::id::{AccountId, KeyId};
use crate::key::KeyRecord;
use crate::lifecycle::{HeldKey, Holders};
use crate::token::{TokenDigest, TokenRecord};
use crate::usage::KeyUse;
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use time::{OffsetDateTime, UtcOffset};

/// A [`Store`] in memory.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Ordered by id, for the keyset pages of [`Store::accounts`].
    accounts: BTreeMap<AccountId, Account>,
    /// External id to account.
    by_external_id: HashMap<ExternalId, AccountId>,
    keys: HashMap<KeyId, KeyRecord>,
    /// Lowercased identifier to key.
    by_identifier: HashMap<String, KeyId>,
    /// Per account, in order of recording.
    events: HashMap<AccountId, Vec<AuditEvent>>,
    tokens: HashMap<TokenDigest, TokenRecord>,
    /// Each key's tokens.
    tokens_of_key: HashMap<KeyId, Vec<TokenDigest>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    // Writers validate everything before mutating, so a panic elsewhere can
    // never leave `Inner` half-changed: recovering from poison is safe.
    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An instant as every store keeps it: in the range of the shared encoding
/// (so that the in-memory store refuses what the others refuse), in UTC.
fn keep(t: OffsetDateTime) -> Result<OffsetDateTime, Unstorable> {
    instant_to_nanos(t)?;
    Ok(t.to_offset(UtcOffset::UTC))
}

/// The account as stored.
fn kept_account(a: &Account) -> Result<Account, Unstorable> {
    kept_policy(&a.policy)?;
    Ok(Account {
        created_at: keep(a.created_at)?,
        ..a.clone()
    })
}

/// A policy as stored: its lifetime in the range of the shared encoding.
fn kept_policy(p: &AccountPolicy) -> Result<(), Unstorable> {
    if let Some(l) = p.max_key_lifetime {
        duration_to_nanos(l)?;
    }
    Ok(())
}

/// The key as stored: every instant kept, the version in range.
fn kept_key(k: &KeyRecord) -> Result<KeyRecord, Unstorable> {
    version_to_i64(k.version)?;
    let mut kept = k.clone();
    kept.created_at = keep(k.created_at)?;
    kept.changed_at = keep(k.changed_at)?;
    if let Some(p) = &mut kept.previous_secret {
        p.expires_at = keep(p.expires_at)?;
    }
    kept.expires_at = kept.expires_at.map(keep).transpose()?;
    kept.usage.last_used_at = kept.usage.last_used_at.map(keep).transpose()?;
    kept.usage.previous_secret_last_used_at = kept
        .usage
        .previous_secret_last_used_at
        .map(keep)
        .transpose()?;
    kept.usage.last_used_address = kept.usage.last_used_address.map(|a| a.to_canonical());
    Ok(kept)
}

/// The event as stored.
fn kept_event(e: &AuditEvent) -> Result<AuditEvent, Unstorable> {
    Ok(AuditEvent {
        at: keep(e.at)?,
        ..e.clone()
    })
}

impl Inner {
    /// The account and its master, read under the caller's lock: one
    /// consistent view with the key.
    fn holders(&self, account: AccountId) -> Option<Holders> {
        let account = self.accounts.get(&account)?.clone();
        let master = account
            .kind
            .parent()
            .and_then(|p| self.accounts.get(&p))
            .cloned();
        Some(Holders { account, master })
    }

    fn check_new_key(
        &self,
        key: &KeyRecord,
        max_for_channel: u32,
        pending: &[KeyRecord],
    ) -> Result<(), StoreError> {
        if self.keys.contains_key(&key.id) || pending.iter().any(|k| k.id == key.id) {
            return Err(StoreError::AlreadyExists(Existing::Key));
        }
        let lower = key.identifier.to_ascii_lowercase();
        if self.by_identifier.contains_key(&lower)
            || pending
                .iter()
                .any(|k| k.identifier.eq_ignore_ascii_case(&key.identifier))
        {
            return Err(StoreError::AlreadyExists(Existing::Identifier));
        }
        let held = self
            .keys
            .values()
            .chain(pending)
            .filter(|k| k.account_id == key.account_id && k.channel == key.channel)
            .count();
        if held >= max_for_channel as usize {
            return Err(StoreError::AlreadyExists(Existing::ChannelFull(
                key.channel,
            )));
        }
        Ok(())
    }

    fn put_key(&mut self, key: &KeyRecord) {
        self.by_identifier
            .insert(key.identifier.to_ascii_lowercase(), key.id);
        self.keys.insert(key.id, key.clone());
    }

    fn drop_tokens_of(&mut self, key: KeyId) {
        for digest in self.tokens_of_key.remove(&key).unwrap_or_default() {
            self.tokens.remove(&digest);
        }
    }

    fn drop_token(&mut self, digest: &TokenDigest) {
        if let Some(t) = self.tokens.remove(digest)
            && let Some(list) = self.tokens_of_key.get_mut(&t.key_id)
        {
            list.retain(|d| d != digest);
            if list.is_empty() {
                self.tokens_of_key.remove(&t.key_id);
            }
        }
    }

    fn record(&mut self, event: &AuditEvent) {
        self.events
            .entry(event.account_id)
            .or_default()
            .push(event.clone());
    }
}

impl Store for MemoryStore {
    fn create_account(
        &self,
        account: &Account,
        keys: &[KeyRecord],
        events: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let account = kept_account(account)?;
        let keys = keys.iter().map(kept_key).collect::<Result<Vec<_>, _>>()?;
        let events = events
            .iter()
            .map(kept_event)
            .collect::<Result<Vec<_>, _>>()?;
        let mut inner = self.write();
        if inner.accounts.contains_key(&account.id) {
            return Err(StoreError::AlreadyExists(Existing::Account));
        }
        if let Some(e) = &account.external_id
            && inner.by_external_id.contains_key(e)
        {
            return Err(StoreError::AlreadyExists(Existing::ExternalId));
        }
        if let AccountKind::Sub { parent } = account.kind
            && !inner.accounts.contains_key(&parent)
        {
            return Err(StoreError::NotFound(Entity::Account(parent)));
        }
        for (i, key) in keys.iter().enumerate() {
            if key.account_id != account.id {
                return Err(StoreError::NotFound(Entity::Account(key.account_id)));
            }
            let max = if key.channel.allows_several_keys() {
                u32::MAX
            } else {
                1
            };
            inner.check_new_key(key, max, &keys[..i])?;
        }
        if let Some(e) = &account.external_id {
            inner.by_external_id.insert(e.clone(), account.id);
        }
        inner.accounts.insert(account.id, account);
        for key in &keys {
            inner.put_key(key);
        }
        for event in &events {
            inner.record(event);
        }
        Ok(())
    }

    fn account(&self, id: AccountId) -> Result<Option<Account>, StoreError> {
        Ok(self.read().accounts.get(&id).cloned())
    }

    fn account_by_external_id(
        &self,
        external_id: &ExternalId,
    ) -> Result<Option<Account>, StoreError> {
        let inner = self.read();
        Ok(inner
            .by_external_id
            .get(external_id)
            .and_then(|id| inner.accounts.get(id))
            .cloned())
    }

    fn sub_accounts(&self, master: AccountId) -> Result<Vec<Account>, StoreError> {
        let mut subs: Vec<Account> = self
            .read()
            .accounts
            .values()
            .filter(|a| a.kind.parent() == Some(master))
            .cloned()
            .collect();
        subs.sort_by_key(|a| (a.created_at, a.id));
        Ok(subs)
    }

    fn accounts(&self, after: Option<AccountId>, limit: usize) -> Result<Vec<Account>, StoreError> {
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        Ok(self
            .read()
            .accounts
            .range((from, Bound::Unbounded))
            .take(limit)
            .map(|(_, a)| a.clone())
            .collect())
    }

    fn insert_key(
        &self,
        key: &KeyRecord,
        max_for_channel: u32,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let (key, event) = (&kept_key(key)?, &kept_event(event)?);
        let mut inner = self.write();
        if !inner.accounts.contains_key(&key.account_id) {
            return Err(StoreError::NotFound(Entity::Account(key.account_id)));
        }
        inner.check_new_key(key, max_for_channel, &[])?;
        inner.put_key(key);
        inner.record(event);
        Ok(())
    }

    fn key(&self, id: KeyId) -> Result<Option<KeyRecord>, StoreError> {
        Ok(self.read().keys.get(&id).cloned())
    }

    fn key_by_identifier(&self, identifier: &str) -> Result<Option<KeyRecord>, StoreError> {
        let lower = identifier.to_ascii_lowercase();
        let inner = self.read();
        Ok(inner
            .by_identifier
            .get(&lower)
            .and_then(|id| inner.keys.get(id))
            .cloned())
    }

    fn key_for_authentication(&self, identifier: &str) -> Result<Option<HeldKey>, StoreError> {
        let lower = identifier.to_ascii_lowercase();
        let inner = self.read();
        let Some(key) = inner
            .by_identifier
            .get(&lower)
            .and_then(|id| inner.keys.get(id))
        else {
            return Ok(None);
        };
        Ok(inner.holders(key.account_id).map(|holders| HeldKey {
            key: key.clone(),
            holders,
        }))
    }

    fn token_for_authentication(
        &self,
        digest: &TokenDigest,
    ) -> Result<Option<(TokenRecord, HeldKey)>, StoreError> {
        let inner = self.read();
        let Some(token) = inner.tokens.get(digest) else {
            return Ok(None);
        };
        let Some(key) = inner.keys.get(&token.key_id) else {
            return Ok(None);
        };
        Ok(inner.holders(key.account_id).map(|holders| {
            (
                token.clone(),
                HeldKey {
                    key: key.clone(),
                    holders,
                },
            )
        }))
    }

    fn holders(&self, account: AccountId) -> Result<Option<Holders>, StoreError> {
        Ok(self.read().holders(account))
    }

    fn keys_of_account(&self, account: AccountId) -> Result<Vec<KeyRecord>, StoreError> {
        let mut keys: Vec<KeyRecord> = self
            .read()
            .keys
            .values()
            .filter(|k| k.account_id == account)
            .cloned()
            .collect();
        keys.sort_by_key(|k| (k.created_at, k.id));
        Ok(keys)
    }

    fn update_key(
        &self,
        key: &KeyRecord,
        expected_version: u64,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        // The creation instant given is not written, so not checked either.
        let written = kept_key(&KeyRecord {
            created_at: OffsetDateTime::UNIX_EPOCH,
            ..key.clone()
        })?;
        let event = &kept_event(event)?;
        let mut inner = self.write();
        let stored = inner
            .keys
            .get(&key.id)
            .ok_or(StoreError::NotFound(Entity::Key(key.id)))?;
        if stored.version != expected_version {
            return Err(StoreError::Conflict {
                key: key.id,
                expected: expected_version,
                found: stored.version,
            });
        }
        let old_lower = stored.identifier.to_ascii_lowercase();
        let new_lower = key.identifier.to_ascii_lowercase();
        if new_lower != old_lower && inner.by_identifier.contains_key(&new_lower) {
            return Err(StoreError::AlreadyExists(Existing::Identifier));
        }
        let credentials_changed =
            stored.identifier != key.identifier || stored.secret_hash != key.secret_hash;
        // Immutable fields stay as stored, whatever the caller passed; so
        // does last use, which only `record_uses` writes.
        let mut next = written;
        next.account_id = stored.account_id;
        next.channel = stored.channel;
        next.created_at = stored.created_at;
        next.legacy_default = stored.legacy_default;
        next.usage = stored.usage;
        if next.previous_secret.as_ref().map(|p| &p.hash)
            != stored.previous_secret.as_ref().map(|p| &p.hash)
        {
            next.usage.previous_secret_last_used_at = None;
        }
        if credentials_changed {
            inner.drop_tokens_of(key.id);
        }
        inner.by_identifier.remove(&old_lower);
        inner.by_identifier.insert(new_lower, key.id);
        inner.keys.insert(key.id, next);
        inner.record(event);
        Ok(())
    }

    fn upgrade_secret_hash(
        &self,
        id: KeyId,
        current: &SecretHash,
        upgraded: &SecretHash,
    ) -> Result<bool, StoreError> {
        let mut inner = self.write();
        match inner.keys.get_mut(&id) {
            Some(k) if k.secret_hash == *current => {
                k.secret_hash = upgraded.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn delete_key(
        &self,
        id: KeyId,
        expected_version: Option<u64>,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let event = &kept_event(event)?;
        let mut inner = self.write();
        let stored = inner
            .keys
            .get(&id)
            .ok_or(StoreError::NotFound(Entity::Key(id)))?;
        if let Some(expected) = expected_version
            && stored.version != expected
        {
            return Err(StoreError::Conflict {
                key: id,
                expected,
                found: stored.version,
            });
        }
        let key = inner
            .keys
            .remove(&id)
            .ok_or(StoreError::NotFound(Entity::Key(id)))?;
        inner
            .by_identifier
            .remove(&key.identifier.to_ascii_lowercase());
        inner.drop_tokens_of(id);
        inner.record(event);
        Ok(())
    }

    fn set_account_suspended(
        &self,
        id: AccountId,
        suspended: bool,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let event = &kept_event(event)?;
        let mut inner = self.write();
        let account = inner
            .accounts
            .get_mut(&id)
            .ok_or(StoreError::NotFound(Entity::Account(id)))?;
        account.suspended = suspended;
        inner.record(event);
        Ok(())
    }

    fn set_account_policy(
        &self,
        id: AccountId,
        policy: &AccountPolicy,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        kept_policy(policy)?;
        let event = &kept_event(event)?;
        let mut inner = self.write();
        let account = inner
            .accounts
            .get_mut(&id)
            .ok_or(StoreError::NotFound(Entity::Account(id)))?;
        account.policy = policy.clone();
        inner.record(event);
        Ok(())
    }

    fn record_uses(&self, uses: &[KeyUse]) -> Result<(), StoreError> {
        let uses = uses
            .iter()
            .map(|u| {
                Ok(KeyUse {
                    at: keep(u.at)?,
                    address: u.address.to_canonical(),
                    previous: u
                        .previous
                        .as_ref()
                        .map(|(at, h)| keep(*at).map(|at| (at, h.clone())))
                        .transpose()?,
                    ..u.clone()
                })
            })
            .collect::<Result<Vec<_>, Unstorable>>()?;
        let mut inner = self.write();
        for u in &uses {
            let Some(key) = inner.keys.get_mut(&u.key_id) else {
                continue;
            };
            if key.usage.last_used_at.is_none_or(|t| u.at > t) {
                key.usage.last_used_at = Some(u.at);
                key.usage.last_used_address = Some(u.address);
            }
            if let Some((at, hash)) = &u.previous
                && key
                    .previous_secret
                    .as_ref()
                    .is_some_and(|p| p.hash == *hash)
                && key
                    .usage
                    .previous_secret_last_used_at
                    .is_none_or(|t| *at > t)
            {
                key.usage.previous_secret_last_used_at = Some(*at);
            }
        }
        Ok(())
    }

    fn insert_token(
        &self,
        token: &TokenRecord,
        key_version: u64,
        max_live: u32,
        now: OffsetDateTime,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        let token = TokenRecord {
            issued_at: keep(token.issued_at)?,
            expires_at: keep(token.expires_at)?,
            ..token.clone()
        };
        let event = &kept_event(event)?;
        let mut inner = self.write();
        let stored = inner
            .keys
            .get(&token.key_id)
            .ok_or(StoreError::NotFound(Entity::Key(token.key_id)))?;
        if stored.version != key_version {
            return Err(StoreError::Conflict {
                key: token.key_id,
                expected: key_version,
                found: stored.version,
            });
        }
        if inner.tokens.contains_key(&token.digest) {
            return Err(StoreError::AlreadyExists(Existing::Token));
        }
        let mine: Vec<TokenRecord> = inner
            .tokens_of_key
            .get(&token.key_id)
            .into_iter()
            .flatten()
            .filter_map(|d| inner.tokens.get(d).cloned())
            .collect();
        for t in mine.iter().filter(|t| t.expires_at <= now) {
            inner.drop_token(&t.digest);
        }
        let mut live: Vec<TokenRecord> = mine.into_iter().filter(|t| t.expires_at > now).collect();
        live.sort_by_key(|t| (t.issued_at, t.digest.0));
        let max_live = max_live.max(1) as usize;
        let excess = (live.len() + 1).saturating_sub(max_live);
        for t in live.iter().take(excess) {
            inner.drop_token(&t.digest);
        }
        inner
            .tokens_of_key
            .entry(token.key_id)
            .or_default()
            .push(token.digest);
        inner.tokens.insert(token.digest, token);
        inner.record(event);
        Ok(())
    }

    fn token(&self, digest: &TokenDigest) -> Result<Option<(TokenRecord, KeyRecord)>, StoreError> {
        let inner = self.read();
        Ok(inner
            .tokens
            .get(digest)
            .and_then(|t| inner.keys.get(&t.key_id).map(|k| (t.clone(), k.clone()))))
    }

    fn purge_expired_tokens(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let mut inner = self.write();
        let expired: Vec<TokenDigest> = inner
            .tokens
            .values()
            .filter(|t| t.expires_at <= now)
            .map(|t| t.digest)
            .collect();
        for d in &expired {
            inner.drop_token(d);
        }
        Ok(expired.len() as u64)
    }

    fn audit_events(
        &self,
        account: AccountId,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let inner = self.read();
        let Some(events) = inner.events.get(&account) else {
            return Ok(Vec::new());
        };
        // Recording order reversed, then a stable sort by instant: newest
        // first, ties newest-recorded first.
        let mut out: Vec<AuditEvent> = events.iter().rev().cloned().collect();
        out.sort_by_key(|e| std::cmp::Reverse(e.at));
        out.truncate(limit);
        Ok(out)
    }
}

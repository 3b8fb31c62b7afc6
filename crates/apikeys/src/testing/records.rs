//! Plain records for tests that talk to a store directly: a master account,
//! a key with a placeholder hash, the audit events of their creation.

use super::START;
use crate::account::{Account, AccountKind, Actor};
use crate::audit::{AuditEvent, AuditKind};
use crate::channel::Channel;
use crate::credentials::Secret;
use crate::hashing::{HashingPolicy, SALT_LEN, SecretHash, SecretOrigin, hash_secret};
use crate::id::{AccountId, KeyId};
use crate::key::KeyRecord;
use crate::whitelist::Whitelist;

/// A master account created at [`START`].
pub fn master(id: AccountId) -> Account {
    Account {
        id,
        kind: AccountKind::Master,
        created_at: START,
        suspended: false,
        policy: Default::default(),
        external_id: None,
    }
}

/// A readable stored hash, distinct for each `seed`: the SHA-256 hash of a
/// secret made from it.
pub fn hash(seed: &str) -> SecretHash {
    match hash_secret(
        &HashingPolicy::fast_for_tests(),
        &Secret::new(format!("placeholder secret {seed}")),
        SecretOrigin::Generated,
        &[0; SALT_LEN],
    ) {
        Ok(h) => h,
        Err(e) => super::unreachable_in_tests(e),
    }
}

/// A key created at [`START`], version 1, no label, an empty whitelist and a
/// placeholder hash made from its identifier (see [`hash`]).
pub fn key(id: KeyId, account: AccountId, channel: Channel, identifier: &str) -> KeyRecord {
    KeyRecord {
        id,
        account_id: account,
        channel,
        identifier: identifier.to_string(),
        label: None,
        secret_hash: hash(identifier),
        previous_secret: None,
        whitelist: Whitelist::default(),
        created_at: START,
        changed_at: START,
        version: 1,
        expires_at: None,
        enabled: true,
        legacy_default: false,
        usage: Default::default(),
    }
}

/// An event by the operator at [`START`], about `key` if given.
pub fn event(
    account: AccountId,
    key: Option<&KeyRecord>,
    kind: AuditKind,
    detail: &str,
) -> AuditEvent {
    AuditEvent {
        account_id: account,
        key_id: key.map(|k| k.id),
        channel: key.map(|k| k.channel),
        at: START,
        kind,
        actor: Actor::Operator,
        detail: detail.to_string(),
    }
}

/// The `account_opened` event of `account`, detail "opened".
pub fn opened(account: &Account) -> AuditEvent {
    event(account.id, None, AuditKind::AccountOpened, "opened")
}

/// The `key_created` event of `key`, detail "created".
pub fn created(key: &KeyRecord) -> AuditEvent {
    event(key.account_id, Some(key), AuditKind::KeyCreated, "created")
}

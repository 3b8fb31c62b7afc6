//! API keys: the stored record and the view shown to people.
//!
//! A key belongs to one account and one channel and carries that channel's
//! credentials: an identifier (a username or client id) and a secret, of
//! which only a hash is kept. The record a store keeps is [`KeyRecord`]; what
//! people and callers see is [`ApiKey`], which never holds a secret or a
//! hash.

use crate::channel::Channel;
use crate::credentials::Secret;
use crate::hashing::SecretHash;
use crate::id::{AccountId, KeyId};
use crate::whitelist::Whitelist;
use time::OffsetDateTime;

/// A key as a store keeps it: public fields plus the hashes of its secrets
/// (whose `Debug` hides them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRecord {
    /// Its id.
    pub id: KeyId,
    /// The account holding it.
    pub account_id: AccountId,
    /// The channel it opens.
    pub channel: Channel,
    /// The identifier (username / client id) as chosen or generated; unique
    /// across all keys ignoring ASCII case.
    pub identifier: String,
    /// An optional label telling keys apart.
    pub label: Option<String>,
    /// The stored hash of the current secret (see [`crate::hashing`]).
    pub secret_hash: SecretHash,
    /// The previous secret during a grace period, if one was granted.
    pub previous_secret: Option<PreviousSecret>,
    /// The IP whitelist.
    pub whitelist: Whitelist,
    /// When the key was created.
    pub created_at: OffsetDateTime,
    /// When its credentials, whitelist or label last changed (its creation at
    /// first).
    pub changed_at: OffsetDateTime,
    /// Starts at 1 and grows by one with every change: stores compare it to
    /// refuse a change made from a stale read (compare-and-swap).
    pub version: u64,
}

/// The previous secret of a key, still accepted until `expires_at`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreviousSecret {
    /// Its stored hash.
    pub hash: SecretHash,
    /// The first instant at which it no longer works.
    pub expires_at: OffsetDateTime,
}

/// A key as shown to people and callers: never a secret or a hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKey {
    /// Its id.
    pub id: KeyId,
    /// The account holding it.
    pub account_id: AccountId,
    /// The channel it opens.
    pub channel: Channel,
    /// The identifier (username / client id).
    pub identifier: String,
    /// Its label, if any.
    pub label: Option<String>,
    /// The whitelist (empty: any address).
    pub whitelist: Whitelist,
    /// Until when the previous secret still works, during a grace period.
    pub grace_until: Option<OffsetDateTime>,
    /// When it was created.
    pub created_at: OffsetDateTime,
    /// When it last changed.
    pub changed_at: OffsetDateTime,
    /// Its version (grows with every change).
    pub version: u64,
}

impl From<&KeyRecord> for ApiKey {
    fn from(r: &KeyRecord) -> Self {
        ApiKey {
            id: r.id,
            account_id: r.account_id,
            channel: r.channel,
            identifier: r.identifier.clone(),
            label: r.label.clone(),
            whitelist: r.whitelist.clone(),
            grace_until: r.previous_secret.as_ref().map(|p| p.expires_at),
            created_at: r.created_at,
            changed_at: r.changed_at,
            version: r.version,
        }
    }
}

/// A key together with its secret, returned once by the call that created or
/// changed the secret, when the secret was generated (a chosen secret is
/// never echoed back: the caller already has it).
#[derive(Clone, Debug)]
pub struct IssuedKey {
    /// The key.
    pub key: ApiKey,
    /// The new secret, if it was generated. Read it with
    /// [`Secret::expose_secret`] and show it to its owner now: it is not kept.
    pub secret: Option<Secret>,
}

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
use std::fmt;
use std::net::IpAddr;
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
    /// The first instant at which the key no longer works, if it expires.
    pub expires_at: Option<OffsetDateTime>,
    /// Whether the key works at all: a disabled key refuses until it is
    /// enabled again, and keeps everything else.
    pub enabled: bool,
    /// Whether the key was issued by default, at its legacy master's
    /// opening (never changes).
    pub legacy_default: bool,
    /// When and from where it was last used, as recorded (write-behind, see
    /// [`crate::usage`]); a store's [`crate::Store::update_key`] keeps the
    /// stored value, whatever the record says.
    pub usage: Usage,
}

impl KeyRecord {
    /// When the key stops working by its own expiry, or by a lifetime cap
    /// counted from its creation (a master's over its sub-accounts' keys):
    /// whichever comes first.
    pub fn effective_expiry(&self, max_lifetime: Option<time::Duration>) -> Option<OffsetDateTime> {
        let capped = max_lifetime.and_then(|l| self.created_at.checked_add(l));
        match (self.expires_at, capped) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// When a key was last used: the instant and client address of its last
/// successful authentication, and when its previous secret was last used
/// during the current grace period. `None` where nothing was recorded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// The last successful authentication (any secret or token).
    pub last_used_at: Option<OffsetDateTime>,
    /// The client address of that authentication.
    pub last_used_address: Option<IpAddr>,
    /// The last successful authentication with the previous secret of the
    /// current grace period; cleared when the previous secret changes.
    pub previous_secret_last_used_at: Option<OffsetDateTime>,
}

impl Usage {
    /// This usage with `other` merged in, field by field, the newest
    /// instant winning (an address goes with its instant).
    #[must_use]
    pub fn merged(self, other: Usage) -> Usage {
        let (last_used_at, last_used_address) = match (self.last_used_at, other.last_used_at) {
            (Some(a), Some(b)) if b > a => (Some(b), other.last_used_address),
            (None, Some(b)) => (Some(b), other.last_used_address),
            _ => (self.last_used_at, self.last_used_address),
        };
        Usage {
            last_used_at,
            last_used_address,
            previous_secret_last_used_at: self
                .previous_secret_last_used_at
                .max(other.previous_secret_last_used_at),
        }
    }
}

/// What a key does now, all rules considered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyState {
    /// It authenticates (subject to the whitelists).
    Active,
    /// It was disabled.
    Disabled,
    /// Its expiry, or the lifetime its master allows, has passed.
    Expired,
    /// Its account, or that account's master, is suspended.
    Suspended,
}

impl KeyState {
    /// Every state.
    pub const ALL: [KeyState; 4] = [
        KeyState::Active,
        KeyState::Disabled,
        KeyState::Expired,
        KeyState::Suspended,
    ];

    /// The stable code: `active`, `disabled`, `expired` or `suspended`.
    pub const fn code(self) -> &'static str {
        match self {
            KeyState::Active => "active",
            KeyState::Disabled => "disabled",
            KeyState::Expired => "expired",
            KeyState::Suspended => "suspended",
        }
    }
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.code())
    }
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
    /// Its own expiry, if set (a master's lifetime cap may end it sooner:
    /// `state` tells).
    pub expires_at: Option<OffsetDateTime>,
    /// Whether it is enabled.
    pub enabled: bool,
    /// What it does now: active, disabled, expired or suspended.
    pub state: KeyState,
    /// Whether it was issued by default to a legacy master.
    pub legacy_default: bool,
    /// When and from where it was last used.
    pub usage: Usage,
}

impl ApiKey {
    /// The view of `r` in the given state.
    pub fn with_state(r: &KeyRecord, state: KeyState) -> Self {
        ApiKey {
            state,
            ..ApiKey::from(r)
        }
    }
}

impl From<&KeyRecord> for ApiKey {
    /// The view of `r` by the key alone: `Disabled` if it is, else
    /// `Active` (the service computes the state with the key's account, its
    /// master and the clock: see [`ApiKey::with_state`]).
    fn from(r: &KeyRecord) -> Self {
        ApiKey {
            expires_at: r.expires_at,
            enabled: r.enabled,
            state: if r.enabled {
                KeyState::Active
            } else {
                KeyState::Disabled
            },
            legacy_default: r.legacy_default,
            usage: r.usage,
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

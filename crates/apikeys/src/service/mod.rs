//! The service: every operation of the API Keys page, and authentication,
//! over any store.
//!
//! [`ApiKeys`] computes every change in memory, then hands the store one
//! atomic write: create-if-absent for a new account or key, and
//! compare-and-swap on the key's version for a change, each with its audit
//! events. The operations are grouped by concern:
//!
//! - [`accounts`]: opening accounts, who may act on what, the audit trail;
//! - [`keys`]: creating keys, changing credentials and labels, deleting,
//!   and the preconditions that refuse lost updates;
//! - [`whitelist`]: a key's IP whitelist;
//! - [`authentication`]: the hot path;
//! - [`tokens`]: REST tokens, issued and checked;
//! - [`import`]: bringing in a platform's existing accounts and credentials.

pub mod accounts;
pub mod authentication;
pub mod import;
pub mod keys;
pub mod lifecycle;
pub mod tokens;
pub mod whitelist;

pub use accounts::{NewAccount, OpenedAccount};
pub use authentication::{Check, PendingCheck};
pub use import::{
    ImportAccount, ImportError, ImportKey, ImportKind, ImportOptions, ImportOutcome, ImportSecret,
    KeyProblem, PreparedAccount,
};
pub use keys::{CredentialChange, Grace, NewKey, Precondition};
pub use lifecycle::{KeyUpdate, UsageStats};

use crate::Actor;
use crate::audit::{AuditEvent, AuditKind, MAX_DETAIL_LEN};
use crate::cache::VerifiedCache;
use crate::channel::{Channel, ChannelSet};
use crate::clock::Clock;
use crate::credentials::generate_secret;
use crate::error::Error;
use crate::hashing::{SecretHash, SecretOrigin, hash_secret, random_salt};
use crate::id::AccountId;
use crate::key::KeyRecord;
use crate::policy::Policy;
use crate::store::{DynStore, Entity, Existing, StoreError};
use crate::throttle::Throttle;
use rand_core::CryptoRng;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use time::{OffsetDateTime, UtcOffset};

/// A random generator the service can share between threads.
type SharedRng = Box<dyn CryptoRng + Send>;

/// API-key management over a store: the library's entry point.
///
/// Every management call takes an [`Actor`]; authentication takes none.
pub struct ApiKeys {
    store: Arc<DynStore>,
    policy: Policy,
    clock: Arc<dyn Clock>,
    rng: Mutex<SharedRng>,
    /// Verified against when the identifier is unknown, so that an unknown
    /// identifier costs what a wrong secret costs (no user enumeration by
    /// timing).
    dummy_hash: SecretHash,
    /// `None` when the policy turns the cache off.
    cache: Option<VerifiedCache>,
    throttle: Throttle,
    stats: Counters,
    /// Last uses waiting for a flush (see [`crate::usage`]).
    usage: crate::usage::Recorder,
}

/// The counters behind [`CheckStats`].
#[derive(Default)]
struct Counters {
    argon2: AtomicU64,
    cached: AtomicU64,
    throttled: AtomicU64,
    refused: AtomicU64,
    succeeded: AtomicU64,
}

/// Counters of the authentications a service checked, exact, for metrics
/// and tests (logs may be sampled; these never are).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckStats {
    /// Argon2 verifications run: against a stored hash, or the dummy hash
    /// that gives a refusal its cost.
    pub argon2: u64,
    /// Checks of a chosen secret answered by the verified-secret cache.
    pub cached: u64,
    /// Attempts refused by the throttle, unchecked.
    pub throttled: u64,
    /// Attempts checked and refused (invalid credentials, address not
    /// allowed).
    pub refused: u64,
    /// Successful authentications.
    pub succeeded: u64,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeys")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl ApiKeys {
    /// A service over `store`, with a policy, a clock and a CSPRNG.
    ///
    /// In production, [`ApiKeys::production`] passes the system clock and the
    /// operating system's CSPRNG; tests pass a [`crate::ManualClock`] and a
    /// seeded generator.
    ///
    /// Errors: [`Error::InvalidPolicy`] if the policy is out of bounds, and
    /// [`Error::Hashing`] if argon2 refuses its parameters.
    pub fn new(
        store: Arc<DynStore>,
        policy: Policy,
        clock: Arc<dyn Clock>,
        rng: impl CryptoRng + Send + 'static,
    ) -> Result<Self, Error> {
        policy.validate()?;
        let mut rng: SharedRng = Box::new(rng);
        let dummy = generate_secret(&mut *rng);
        let dummy_hash = hash_secret(
            &policy.hashing,
            &dummy,
            SecretOrigin::Chosen,
            &random_salt(&mut *rng),
        )?;
        let mut cache_key = zeroize::Zeroizing::new([0u8; 32]);
        rng.fill_bytes(cache_key.as_mut());
        let cache = match policy.verified_cache_capacity {
            0 => None,
            capacity => VerifiedCache::new(&cache_key, capacity),
        };
        let policy_usage_capacity = policy.usage.capacity;
        Ok(ApiKeys {
            throttle: Throttle::new(policy.throttle.clone()),
            store,
            policy,
            clock,
            rng: Mutex::new(rng),
            dummy_hash,
            cache,
            stats: Counters::default(),
            usage: crate::usage::Recorder::new(policy_usage_capacity),
        })
    }

    /// A service over `store` with the production set-up: the system clock
    /// and the operating system's CSPRNG (feature `os`, on by default).
    ///
    /// Errors: as [`ApiKeys::new`].
    #[cfg(feature = "os")]
    pub fn production(store: Arc<DynStore>, policy: Policy) -> Result<Self, Error> {
        Self::new(
            store,
            policy,
            Arc::new(crate::clock::SystemClock),
            crate::os_rng(),
        )
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// What this service's authentications cost and answered so far.
    pub fn check_stats(&self) -> CheckStats {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CheckStats {
            argon2: load(&self.stats.argon2),
            cached: load(&self.stats.cached),
            throttled: load(&self.stats.throttled),
            refused: load(&self.stats.refused),
            succeeded: load(&self.stats.succeeded),
        }
    }

    /// The service's current instant, in UTC: what "now" means for every
    /// instant it records.
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now().to_offset(UtcOffset::UTC)
    }

    fn with_rng<T>(&self, f: impl FnOnce(&mut (dyn CryptoRng + Send)) -> T) -> T {
        // A generator is usable after a panic elsewhere: recover from poison.
        let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut **rng)
    }
}

pub(super) fn account_event(
    id: AccountId,
    kind: AuditKind,
    actor: Actor,
    at: OffsetDateTime,
    detail: String,
) -> AuditEvent {
    AuditEvent {
        account_id: id,
        key_id: None,
        channel: None,
        at,
        kind,
        actor,
        detail: bounded_detail(detail),
    }
}

/// An audit event about `key`, its detail cut to what stores keep.
fn key_event(
    key: &KeyRecord,
    kind: AuditKind,
    actor: Actor,
    at: OffsetDateTime,
    detail: String,
) -> AuditEvent {
    AuditEvent {
        account_id: key.account_id,
        key_id: Some(key.id),
        channel: Some(key.channel),
        at,
        kind,
        actor,
        detail: bounded_detail(detail),
    }
}

/// `detail`, cut at a character boundary to [`MAX_DETAIL_LEN`] bytes. The
/// details the service writes fit (the longest, a whitelist of the most
/// entries any policy allows, is under 50 KB); this keeps the bound a fact.
pub(super) fn bounded_detail(mut detail: String) -> String {
    if detail.len() > MAX_DETAIL_LEN {
        let mut end = MAX_DETAIL_LEN;
        while !detail.is_char_boundary(end) {
            end -= 1;
        }
        detail.truncate(end);
    }
    detail
}

/// An instant as RFC 3339 text, for audit details and messages.
pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// Versions as text for a message: `3`, or `3, 4`; an empty list names no
/// version at all.
pub(crate) fn version_list(versions: &[u64]) -> String {
    if versions.is_empty() {
        return "any version the change was asked for at (it names none)".into();
    }
    versions
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn channel_list(set: ChannelSet) -> String {
    if set.is_empty() {
        return "none".into();
    }
    set.iter()
        .map(Channel::label)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Maps a store error onto the caller's error, naming what it concerns.
fn map_store(e: StoreError, account: &AccountId, key: Option<&KeyRecord>) -> Error {
    match (e, key) {
        (StoreError::NotFound(Entity::Account(id)), _) => Error::AccountNotFound(id),
        (StoreError::NotFound(Entity::Key(id)), _) => Error::KeyNotFound(id),
        (StoreError::AlreadyExists(Existing::Identifier), Some(k)) => {
            Error::IdentifierTaken(k.identifier.clone())
        }
        (StoreError::AlreadyExists(Existing::ChannelFull(channel)), _) => {
            Error::ChannelAlreadyActive {
                account: *account,
                channel,
            }
        }
        (e, _) => Error::Store(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_are_cut_at_a_character_boundary() {
        let long = "é".repeat(MAX_DETAIL_LEN);
        let cut = bounded_detail(long);
        assert!(cut.len() <= MAX_DETAIL_LEN && cut.len() >= MAX_DETAIL_LEN - 1);
        assert!(cut.chars().all(|c| c == 'é'));
        assert_eq!(bounded_detail("short".into()), "short");
    }
}

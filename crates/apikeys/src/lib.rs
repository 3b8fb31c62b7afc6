#![doc = include_str!("../README.md")]

// The crates the API speaks in, so that an embedder's versions cannot
// disagree with this crate's.
pub use ipnet;
pub use rand_core;
pub use time;

pub mod account;
pub mod audit;
pub mod auth;
mod cache;
pub mod channel;
pub mod clock;
pub mod credentials;
pub mod error;
pub mod hashing;
pub mod id;
pub mod key;
pub mod lifecycle;
pub mod policy;
pub mod service;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod throttle;
pub mod token;
pub mod usage;
pub mod whitelist;

pub use account::{Account, AccountKind, AccountPolicy, Actor, ExternalId, InvalidExternalId};
pub use audit::{AuditEvent, AuditKind};
pub use auth::{AuthError, Authenticated, Refusal, SecretSlot};
pub use channel::{Channel, ChannelSet, ParseChannelError};
#[cfg(feature = "os")]
pub use clock::SystemClock;
pub use clock::{Clock, ManualClock};

/// The operating system's CSPRNG (feature `os`, on by default), as the
/// generator [`ApiKeys::new`] takes: `getrandom`'s `SysRng`, which panics
/// rather than hand out weak randomness if the OS cannot give any.
#[cfg(feature = "os")]
pub type OsRng = rand_core::UnwrapErr<getrandom::SysRng>;

/// A handle on the operating system's CSPRNG (see [`OsRng`]).
#[cfg(feature = "os")]
pub fn os_rng() -> OsRng {
    rand_core::UnwrapErr(getrandom::SysRng)
}

/// The workspace's README, whose examples are compiled and run as tests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct WorkspaceReadme;
pub use credentials::{IdentifierChoice, Secret, SecretChoice};
pub use error::{AccountPolicyError, Error, ExpiryError, GraceError};
pub use hashing::{Cost, HashingPolicy, SecretHash};
pub use id::{AccountId, KeyId};
pub use key::{ApiKey, IssuedKey, KeyRecord, KeyState, Usage};
pub use lifecycle::{AccessExplanation, HeldKey, Holders, WhitelistScope};
pub use policy::{ActivationPolicy, Policy, PolicyError};
pub use service::{
    ApiKeys, Check, CheckStats, CredentialChange, Grace, KeyUpdate, NewAccount, NewKey,
    OpenedAccount, PendingCheck, Precondition, UsageStats,
};
pub use store::{DormantQuery, DynStore, MemoryStore, Store, StoreCall, StoreError, StoreExt};
pub use throttle::{AddressThrottle, ThrottlePolicy};
pub use token::{IssuedToken, TokenDigest, TokenRecord};
pub use usage::{KeyUse, UsageFlusher, UsagePolicy};
pub use whitelist::{Explanation, Whitelist};

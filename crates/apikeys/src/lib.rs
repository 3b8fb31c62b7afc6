#![doc = include_str!("../README.md")]

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
pub mod policy;
pub mod service;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod whitelist;

pub use account::{Account, AccountKind, Actor};
pub use audit::{AuditEvent, AuditKind};
pub use auth::{AuthError, Authenticated, Refusal, SecretSlot};
pub use channel::{Channel, ChannelSet, ParseChannelError};
pub use clock::{Clock, ManualClock};
pub use credentials::{IdentifierChoice, Secret, SecretChoice};
pub use error::{Error, GraceError};
pub use hashing::{Cost, HashingPolicy, SecretHash};
pub use id::{AccountId, KeyId};
pub use key::{ApiKey, IssuedKey, KeyRecord};
pub use policy::{ActivationPolicy, Policy, PolicyError};
pub use service::{
    ApiKeys, Check, CheckStats, CredentialChange, Grace, NewAccount, NewKey, OpenedAccount,
    PendingCheck,
};
pub use store::{DynStore, MemoryStore, Store, StoreCall, StoreError, StoreExt};
pub use whitelist::{Explanation, Whitelist};

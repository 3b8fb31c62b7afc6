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
pub use auth::{AuthError, Authenticated, Refusal};
pub use channel::{Channel, ChannelSet, ParseChannelError};
pub use clock::{Clock, ManualClock};
pub use credentials::{IdentifierChoice, Secret, SecretChoice};
pub use error::{Error, GraceError};
pub use hashing::HashingPolicy;
pub use id::{AccountId, KeyId};
pub use key::{ApiKey, IssuedKey, KeyRecord};
pub use policy::{ActivationPolicy, Policy};
pub use service::{ApiKeys, CheckStats, CredentialChange, NewKey, OpenedAccount};
pub use store::{DynStore, MemoryStore, Store, StoreError, StoreExt};
pub use whitelist::{Explanation, Whitelist};

#![doc = include_str!("../README.md")]

#[macro_use]
mod codec;
mod connection;
mod error;
mod read_lock;
mod schema;
mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use apikeys::store::BadRow;
pub use apikeys::store::Unstorable;
pub use connection::{Durability, Options};
pub use error::OpenError;
pub use store::SqliteStore;

/// The schema version this version of the crate creates and reads. A
/// database recording a higher version is refused with
/// [`OpenError::NewerSchema`].
pub const SCHEMA_VERSION: i64 = schema::LATEST;

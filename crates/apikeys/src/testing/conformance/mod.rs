//! The storage conformance suite: one public function per rule of the
//! [`Store`](crate::Store) contract, each taking a fresh, empty store.
//! Backends run it through [`crate::store_conformance_tests!`]; the
//! functions panic on failure, as tests do, with a message naming the rule
//! that broke, what the store answered and what the contract expected.
//!
//! Every test here is about something a store can get wrong. The service's
//! own rules, which hold whatever the store, are tested once, on the
//! in-memory store, by the domain crate's integration tests.
//!
//! The tests, by what they catch:
//!
//! - the rules of each write and read, one at a time: round trips, the
//!   uniqueness rules, channel limits, compare-and-swap, deletion, the
//!   audit trail;
//! - refused writes: every kind of refusal of every write leaves no trace,
//!   and the error the contract's table puts first wins;
//! - identifiers compare exactly: no wildcards, ASCII folding only;
//! - listings: exactly the account asked for, in order, ties included;
//! - instants and versions: every nanosecond on every record, the whole
//!   range, `Unstorable` beyond it;
//! - the longest value of every field comes back whole;
//! - immutable fields stay put;
//! - visibility: a write is seen by every thread from the next read;
//! - races: every kind of write racing with itself;
//! - lifecycle: expiry, enabled, legacy mark and last use of a key, an
//!   account's suspension and policy, the authentication reads with their
//!   holders, dormancy, and their races;
//! - model-based: random sequences against a plain model of the contract,
//!   and random concurrent writes against what any order allows.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod basics;
mod identifiers;
mod immutable;
mod imports;
mod instants;
mod lifecycle;
mod listings;
mod model;
mod races;
mod refusals;
mod support;
mod tokens;
mod values;
mod visibility;

pub use basics::*;
pub use identifiers::*;
pub use immutable::*;
pub use imports::*;
pub use instants::*;
pub use lifecycle::*;
pub use listings::*;
pub use model::{model_based_concurrent, model_based_sequences};
pub use races::*;
pub use refusals::*;
pub use tokens::*;
pub use values::{longest_values_round_trip, longest_values_the_service_writes_round_trip};
pub use visibility::*;

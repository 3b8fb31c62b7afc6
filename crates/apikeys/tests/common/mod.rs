//! Helpers shared by the service tests: a fresh in-memory store, the
//! operator, addresses and whitelists, and the reason of a refusal.
#![allow(dead_code)] // Each test file uses some of these.

use apikeys::store::DynStore;
use apikeys::whitelist::Whitelist;
use apikeys::{Actor, AuthError, Authenticated, MemoryStore, Refusal};
use std::net::IpAddr;
use std::sync::Arc;

/// A new, empty in-memory store: the service's rules hold whatever the
/// store, so they are tested once, here (the store's own contract is the
/// conformance suite's).
pub fn memory() -> Arc<DynStore> {
    Arc::new(MemoryStore::new())
}

/// The operator.
pub fn op() -> Actor {
    Actor::Operator
}

/// An address that passes an empty whitelist.
pub fn any_ip() -> IpAddr {
    ip("198.51.100.1")
}

/// An address from its text.
pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Normalised whitelist entries from their text.
pub fn wl(entries: &[&str]) -> Vec<ipnet::IpNet> {
    Whitelist::parse(entries, 1000).unwrap().entries().to_vec()
}

/// Why credentials were refused, or a panic if they were not refused as
/// invalid credentials.
pub fn refusal(r: Result<Authenticated, AuthError>) -> Refusal {
    match r {
        Err(AuthError::InvalidCredentials(reason)) => reason,
        other => panic!("expected invalid credentials, got {other:?}"),
    }
}

/// A new master account, opened by the operator at `START`, holding one
/// key made from `new`: the key, and its secret if generated.
pub fn master_with_key(f: &apikeys::testing::Fixture, new: apikeys::NewKey) -> apikeys::IssuedKey {
    let account = f
        .keys
        .open_account(
            op(),
            apikeys::NewAccount::master().created_at(apikeys::testing::START),
        )
        .unwrap()
        .account;
    f.keys.create_key(op(), account.id, new).unwrap()
}

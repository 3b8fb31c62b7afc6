//! Authentication on PostgreSQL among 100,000 keys.
//!
//! `APIKEYS_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test cargo
//! bench -p apikeys-postgres`. Works in a schema of its own, dropped at the
//! end; without the variable it says it was skipped.
//!
//! Figures to compare:
//! - `postgres/authenticate_generated`: one round trip plus the SHA-256
//!   check of a generated secret; tens of microseconds on loopback;
//! - `postgres/key_by_identifier`: the store's lookup alone, the floor of the
//!   figure above;
//! - `postgres/key_for_authentication`: the lookup authentication makes,
//!   the key with its account and master in one statement, next to
//!   `key_by_identifier` in the same run.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use apikeys::NewAccount;
use apikeys::{AccountId, Actor, ApiKeys, Channel, KeyId, ManualClock, NewKey, Policy, Store};
use apikeys_postgres::{Options, PostgresStore};
use criterion::Criterion;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

const URL_VAR: &str = "APIKEYS_TEST_POSTGRES_URL";
const KEYS: usize = 100_000;
const KEYS_PER_ACCOUNT: usize = 10;
const BATCH: usize = 20_000;

/// Drops the bench's schema, whatever happens.
struct Schema {
    url: String,
    name: String,
}

impl Drop for Schema {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.url, postgres::NoTls) {
            let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
        }
    }
}

/// Loads `KEYS` keys over `KEYS / KEYS_PER_ACCOUNT` accounts with
/// multi-row inserts from arrays (a few statements in all).
fn bulk_load(schema: &Schema, rng: &mut ChaCha20Rng) {
    let started = Instant::now();
    let mut c = postgres::Client::connect(&schema.url, postgres::NoTls).unwrap();
    c.batch_execute(&format!("SET search_path = {}", schema.name))
        .unwrap();
    let accounts: Vec<Vec<u8>> = (0..KEYS / KEYS_PER_ACCOUNT)
        .map(|_| AccountId::random(rng).as_bytes().to_vec())
        .collect();
    c.execute(
        "INSERT INTO apikeys_accounts (id, kind, created_at) \
         SELECT id, 'master', 0 FROM unnest($1::bytea[]) AS id",
        &[&accounts],
    )
    .unwrap();
    for chunk in (0..KEYS).collect::<Vec<_>>().chunks(BATCH) {
        let ids: Vec<Vec<u8>> = chunk
            .iter()
            .map(|_| KeyId::random(rng).as_bytes().to_vec())
            .collect();
        let owners: Vec<&[u8]> = chunk
            .iter()
            .map(|i| accounts[i / KEYS_PER_ACCOUNT].as_slice())
            .collect();
        let identifiers: Vec<String> = chunk
            .iter()
            .map(|_| KeyId::random(rng).to_string())
            .collect();
        c.execute(
            "INSERT INTO apikeys_keys (id, account_id, channel, identifier, secret_hash, \
                                       created_at, changed_at, version) \
             SELECT id, account_id, 'rest', identifier, '$sha256$filler', 0, 0, 1 \
             FROM unnest($1::bytea[], $2::bytea[], $3::text[]) AS t(id, account_id, identifier)",
            &[&ids, &owners, &identifiers],
        )
        .unwrap();
    }
    c.batch_execute("ANALYZE").unwrap();
    eprintln!(
        "loaded {KEYS} keys in {} accounts in {:.1?}",
        accounts.len(),
        started.elapsed()
    );
}

fn bench(c: &mut Criterion, url: &str) {
    let schema = Schema {
        url: url.to_string(),
        name: format!("apikeys_bench_{}", std::process::id()),
    };
    let store = Arc::new(
        PostgresStore::connect_with(url, Options::default().pool_size(4).schema(&schema.name))
            .unwrap(),
    );
    let mut rng = ChaCha20Rng::seed_from_u64(42);
    bulk_load(&schema, &mut rng);

    let clock = Arc::new(ManualClock::new(apikeys::testing::START));
    let keys = ApiKeys::new(store.clone(), Policy::default(), clock, rng).unwrap();
    let account = keys
        .open_account(
            Actor::Operator,
            NewAccount::master().created_at(apikeys::testing::START),
        )
        .unwrap()
        .account;
    let issued = keys
        .create_key(
            Actor::Operator,
            account.id,
            NewKey::generated(Channel::Rest),
        )
        .unwrap();
    let secret = issued.secret.unwrap();
    let identifier = issued.key.identifier.clone();
    let ip = "203.0.113.9".parse().unwrap();

    let mut group = c.benchmark_group("postgres");
    group.bench_function("authenticate_generated", |b| {
        b.iter(|| {
            keys.authenticate(
                Channel::Rest,
                black_box(&identifier),
                black_box(secret.expose_secret()),
                ip,
            )
            .unwrap()
        })
    });
    group.bench_function("key_by_identifier", |b| {
        b.iter(|| store.key_by_identifier(black_box(&identifier)).unwrap())
    });
    group.bench_function("key_for_authentication", |b| {
        b.iter(|| {
            store
                .key_for_authentication(black_box(&identifier))
                .unwrap()
        })
    });
    group.finish();
    drop(keys);
    drop(store);
    drop(schema);
}

fn main() {
    let url = match std::env::var(URL_VAR) {
        Ok(url) if !url.trim().is_empty() => url,
        _ => {
            println!(
                "postgres bench skipped: set {URL_VAR} (e.g. postgres://postgres@127.0.0.1:5432/test)"
            );
            return;
        }
    };
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c, &url);
    c.final_summary();
}

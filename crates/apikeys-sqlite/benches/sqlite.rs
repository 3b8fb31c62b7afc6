//! The SQLite store under load: `cargo bench -p apikeys-sqlite`.
//!
//! Figures to compare:
//! - `authenticate/{10000,100000,1000000}_keys`: target under 5 µs (median)
//!   at 100,000;
//! - `authenticate/1000000_keys`: within 1.5x of the 100,000-key figure;
//! - `authenticate/store_lookup_*`: the store's share of it
//!   (`key_by_identifier` alone);
//! - `authenticate/store_lookup_held_*`: `key_for_authentication`, the key
//!   with its account and master in one statement, what authentication
//!   reads, next to `store_lookup_*` in the same run;
//! - `authenticate/token_100000_keys`: a REST token check
//!   (`ApiKeys::authenticate_token`), next to `authenticate/100000_keys` in
//!   the same run: target at most 1.2x of it (`store_token_lookup_*` is
//!   the store's share, `Store::token` alone);
//! - `create/import_batch_of_10000`: at least 20,000 keys per second (keys
//!   with generated credentials, hashed, 10,000 to a transaction, through
//!   `SqliteStore::import_accounts`);
//! - `create/create_key_*`: one `ApiKeys::create_key` call, one transaction,
//!   each, under both durabilities (for comparison; not a target).
//!
//! Each authentication picks the next of 1,000 known keys spread over the
//! whole database, so the lookups do not all hit the same few pages.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use apikeys::NewAccount;
use apikeys::Store;
use apikeys::testing::START;
use apikeys::testing::bulk::{self, Sample};
use apikeys::{AccountId, Actor, ApiKeys, Channel, ManualClock, NewKey, Policy};
use apikeys_sqlite::{Durability, Options, SqliteStore};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::hint::black_box;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Keys whose secrets the benchmark keeps, to authenticate with.
const SAMPLES: usize = 1000;

/// Builds a database of `n` keys at `path`; returns [`SAMPLES`] of them,
/// spread over the whole database.
fn build(path: &Path, n: usize) -> Vec<Sample> {
    let started = Instant::now();
    let store = SqliteStore::open(path).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(n as u64);
    let samples = bulk::build(&mut rng, n, 10_000, SAMPLES, |batch| {
        store.import_accounts(batch)
    })
    .unwrap();
    eprintln!(
        "built {n} keys in {:.1} s ({} bytes)",
        started.elapsed().as_secs_f64(),
        std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
    );
    samples
}

fn service(store: SqliteStore, seed: u64) -> ApiKeys {
    ApiKeys::new(
        Arc::new(store),
        Policy::fast_for_tests(),
        Arc::new(ManualClock::new(START)),
        ChaCha20Rng::seed_from_u64(seed),
    )
    .unwrap()
}

fn authenticate(c: &mut Criterion) {
    let client: IpAddr = "198.51.100.1".parse().unwrap();
    let mut group = c.benchmark_group("authenticate");
    for n in [10_000, 100_000, 1_000_000] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bench.db");
        let samples = build(&path, n);
        let store = SqliteStore::open(&path).unwrap();
        let mut next = 0;
        group.bench_function(format!("store_lookup_{n}_keys"), |b| {
            b.iter(|| {
                let s = &samples[next % samples.len()];
                next += 1;
                black_box(store.key_by_identifier(&s.identifier).unwrap())
            })
        });
        group.bench_function(format!("store_lookup_held_{n}_keys"), |b| {
            b.iter(|| {
                let s = &samples[next % samples.len()];
                next += 1;
                black_box(store.key_for_authentication(&s.identifier).unwrap())
            })
        });
        drop(store);
        let keys = service(SqliteStore::open(&path).unwrap(), 1);
        group.bench_function(format!("{n}_keys"), |b| {
            b.iter(|| {
                let s = &samples[next % samples.len()];
                next += 1;
                black_box(
                    keys.authenticate(s.channel, &s.identifier, s.secret.expose_secret(), client)
                        .unwrap(),
                )
            })
        });
        if n == 100_000 {
            // One token for each REST key among the samples, issued as a
            // client would get it: after a Basic check.
            let tokens: Vec<_> = samples
                .iter()
                .filter(|s| s.channel == Channel::Rest)
                .map(|s| {
                    let who = keys
                        .authenticate(s.channel, &s.identifier, s.secret.expose_secret(), client)
                        .unwrap();
                    keys.issue_token(&who).unwrap().token
                })
                .collect();
            assert!(tokens.len() > 100, "enough REST keys among the samples");
            let digests: Vec<_> = tokens
                .iter()
                .map(|t| apikeys::token::TokenDigest::of(t.expose_secret()))
                .collect();
            let store = SqliteStore::open(&path).unwrap();
            group.bench_function(format!("store_token_lookup_{n}_keys"), |b| {
                b.iter(|| {
                    let d = &digests[next % digests.len()];
                    next += 1;
                    black_box(store.token(d).unwrap())
                })
            });
            drop(store);
            group.bench_function(format!("token_{n}_keys"), |b| {
                b.iter(|| {
                    let t = &tokens[next % tokens.len()];
                    next += 1;
                    black_box(keys.authenticate_token(t.expose_secret(), client).unwrap())
                })
            });
        }
    }
    group.finish();
}

fn create(c: &mut Criterion) {
    let mut group = c.benchmark_group("create");

    const BATCH: usize = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("import.db")).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(10);
    group.bench_function(format!("import_batch_of_{BATCH}"), |b| {
        b.iter(|| {
            // Generating and hashing the credentials is part of the cost.
            let batch: Vec<_> = (0..BATCH / Channel::ALL.len())
                .map(|_| bulk::account_with_keys(&mut rng).0)
                .collect();
            store.import_accounts(&batch).unwrap();
        })
    });

    group.throughput(Throughput::Elements(1));
    group.sample_size(50);
    for (name, durability) in [
        ("power_loss", Durability::PowerLoss),
        ("process_crash", Durability::ProcessCrash),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("create.db");
        let store =
            SqliteStore::open_with(&path, Options::default().durability(durability)).unwrap();
        let keys = service(store, 2);
        group.bench_function(format!("create_key_{name}"), |b| {
            b.iter_custom(|iters| {
                // Accounts to hold the keys, one key per channel each,
                // opened outside the timing.
                let accounts: Vec<AccountId> = (0..iters.div_ceil(5))
                    .map(|_| {
                        keys.open_account(Actor::Operator, NewAccount::master().created_at(START))
                            .unwrap()
                            .account
                            .id
                    })
                    .collect();
                let started = Instant::now();
                for i in 0..iters as usize {
                    let channel = Channel::ALL[i % 5];
                    black_box(
                        keys.create_key(
                            Actor::Operator,
                            accounts[i / 5],
                            NewKey::generated(channel),
                        )
                        .unwrap(),
                    );
                }
                started.elapsed()
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = authenticate, create
}
criterion_main!(benches);

//! The authentication hot path on `MemoryStore`, and whitelist checks.
//!
//! `cargo bench --bench authenticate`. Figures to compare:
//! - `authenticate/generated`: target under 2 µs;
//! - `authenticate_argon2/chosen_argon2` (cache off: every check runs
//!   argon2) against `argon2_verify_alone` (the same hash checked by the
//!   hashing module alone): at most 5% on top;
//! - `authenticate/chosen_cached` (a chosen secret the verified-secret cache
//!   knows) against `authenticate/generated`: within 2x;
//! - `whitelist/allows/1000` against `whitelist/allows/10`: both under 100 ns.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use apikeys::NewAccount;
use apikeys::hashing::{Verification, verify_secret};
use apikeys::whitelist::Whitelist;
use apikeys::{Actor, ApiKeys, Channel, MemoryStore, NewKey, Policy, Secret};
use criterion::{Criterion, criterion_group, criterion_main};
use ipnet::IpNet;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Keys in the store besides the one checked, so the lookup is not trivial.
const OTHER_KEYS: u32 = 10_000;

fn service() -> (Arc<MemoryStore>, ApiKeys) {
    let store = Arc::new(MemoryStore::new());
    // The throttle off: the rejection bench presents the same bad secret
    // from one address over and over, which the default policy would soon
    // refuse unchecked (that refusal is measured in `benches/comparison.rs`).
    let keys = ApiKeys::new(
        store.clone(),
        Policy::default().throttle(apikeys::ThrottlePolicy::off()),
        std::sync::Arc::new(apikeys::SystemClock),
        ChaCha20Rng::seed_from_u64(42),
    )
    .unwrap();
    let filler = keys
        .open_account(
            Actor::Operator,
            NewAccount::master().created_at(apikeys::testing::START),
        )
        .unwrap()
        .account;
    for _ in 0..OTHER_KEYS / 10 {
        let holder = keys
            .open_account(
                Actor::Operator,
                NewAccount::sub(filler.id).created_at(apikeys::testing::START),
            )
            .unwrap()
            .account;
        for _ in 0..10 {
            keys.create_key(Actor::Operator, holder.id, NewKey::generated(Channel::Rest))
                .unwrap();
        }
    }
    (store, keys)
}

fn authenticate(c: &mut Criterion) {
    let (store, keys) = service();
    let account = keys
        .open_account(
            Actor::Operator,
            NewAccount::master().created_at(apikeys::testing::START),
        )
        .unwrap()
        .account;
    let ip: IpAddr = "203.0.113.9".parse().unwrap();

    let generated = keys
        .create_key(
            Actor::Operator,
            account.id,
            NewKey::generated(Channel::Rest),
        )
        .unwrap();
    let secret = generated.secret.unwrap();
    let mut group = c.benchmark_group("authenticate");
    group.bench_function("generated", |b| {
        b.iter(|| {
            keys.authenticate(
                Channel::Rest,
                black_box(&generated.key.identifier),
                black_box(secret.expose_secret()),
                ip,
            )
            .unwrap()
        })
    });
    // The same check by a service that records no last use, over the same
    // store: what recording costs the hot path.
    let unrecorded = ApiKeys::new(
        store.clone(),
        Policy::default()
            .throttle(apikeys::ThrottlePolicy::off())
            .usage(apikeys::UsagePolicy {
                capacity: 0,
                ..apikeys::UsagePolicy::default()
            }),
        std::sync::Arc::new(apikeys::SystemClock),
        ChaCha20Rng::seed_from_u64(43),
    )
    .unwrap();
    group.bench_function("generated_last_use_off", |b| {
        b.iter(|| {
            unrecorded
                .authenticate(
                    Channel::Rest,
                    black_box(&generated.key.identifier),
                    black_box(secret.expose_secret()),
                    ip,
                )
                .unwrap()
        })
    });
    group.bench_function("generated_rejected_bad_checksum", |b| {
        let mut typo = secret.expose_secret().to_string();
        typo.replace_range(10..11, if &typo[10..11] == "a" { "b" } else { "a" });
        b.iter(|| {
            keys.authenticate(
                Channel::Rest,
                black_box(&generated.key.identifier),
                black_box(&typo),
                ip,
            )
            .unwrap_err()
        })
    });
    group.finish();

    // Production argon2 parameters: each iteration costs tens of milliseconds.
    let chosen = keys
        .create_key(
            Actor::Operator,
            account.id,
            NewKey::chosen(
                Channel::Ftp,
                "bench-ftp",
                Secret::new("bench-chosen-secret"),
            ),
        )
        .unwrap();
    let stored_hash = apikeys::StoreExt::require_key(&*store, chosen.key.id)
        .unwrap()
        .secret_hash;
    let policy = keys.policy().hashing;
    // Every check of a first-seen secret runs argon2: measured on a service
    // whose verified-secret cache is off.
    let uncached = ApiKeys::new(
        store.clone(),
        Policy::default().verified_cache_capacity(0),
        std::sync::Arc::new(apikeys::SystemClock),
        ChaCha20Rng::seed_from_u64(43),
    )
    .unwrap();
    let mut group = c.benchmark_group("authenticate_argon2");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(8));
    group.bench_function("chosen_argon2", |b| {
        b.iter(|| {
            uncached
                .authenticate(
                    Channel::Ftp,
                    black_box("bench-ftp"),
                    black_box("bench-chosen-secret"),
                    ip,
                )
                .unwrap()
        })
    });
    group.finish();

    // The same chosen secret once the verified-secret cache knows it: the
    // figure to compare with `authenticate/generated` (target: within 2x).
    let mut group = c.benchmark_group("authenticate");
    keys.authenticate(Channel::Ftp, "bench-ftp", "bench-chosen-secret", ip)
        .unwrap();
    group.bench_function("chosen_cached", |b| {
        b.iter(|| {
            keys.authenticate(
                Channel::Ftp,
                black_box("bench-ftp"),
                black_box("bench-chosen-secret"),
                ip,
            )
            .unwrap()
        })
    });
    group.finish();

    let mut group = c.benchmark_group("authenticate_argon2");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(8));
    group.bench_function("argon2_verify_alone", |b| {
        b.iter(|| {
            let v = verify_secret(
                &policy,
                black_box("bench-chosen-secret"),
                black_box(&stored_hash),
            );
            assert_eq!(v, Verification::Match(apikeys::hashing::Rehash::NotNeeded));
        })
    });
    group.finish();

    // argon2's own cost drifts by several percent between measurement
    // windows on a shared machine, more than the overhead to measure; so the
    // overhead is also measured interleaved: pairs of (authenticate, argon2
    // alone) in alternating order, compared by their medians.
    let mut with_service = Vec::new();
    let mut alone = Vec::new();
    for i in 0..120 {
        for step in 0..2 {
            let started = Instant::now();
            if (step == 0) == (i % 2 == 0) {
                black_box(
                    uncached
                        .authenticate(Channel::Ftp, "bench-ftp", "bench-chosen-secret", ip)
                        .unwrap(),
                );
                with_service.push(started.elapsed());
            } else {
                black_box(verify_secret(&policy, "bench-chosen-secret", &stored_hash));
                alone.push(started.elapsed());
            }
        }
    }
    with_service.sort();
    alone.sort();
    let (a, v) = (with_service[with_service.len() / 2], alone[alone.len() / 2]);
    println!(
        "authenticate_argon2/interleaved: authenticate {a:?}, argon2 alone {v:?} (medians of 120 alternating pairs): ratio {:.4}",
        a.as_secs_f64() / v.as_secs_f64()
    );
}

fn whitelist(c: &mut Criterion) {
    let mut group = c.benchmark_group("whitelist/allows");
    for n in [10u32, 1000] {
        // Disjoint /28 networks spread over the IPv4 space, plus IPv6 ones.
        let entries: Vec<IpNet> = (0..n)
            .map(|i| {
                let base = Ipv4Addr::from(0x0b00_0000 + i * 0x1_0000);
                IpNet::V4(ipnet::Ipv4Net::new(base, 28).unwrap())
            })
            .collect();
        let wl = Whitelist::new(entries, 10_000).unwrap();
        let probes: Vec<IpAddr> = (0..64u32)
            .map(|i| {
                IpAddr::V4(Ipv4Addr::from(
                    0x0b00_0000 + (i * 7919 % n) * 0x1_0000 + (i % 20),
                ))
            })
            .collect();
        group.bench_function(n.to_string(), |b| {
            let mut i = 0usize;
            b.iter(|| {
                i = (i + 1) % probes.len();
                wl.allows(black_box(probes[i]))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, authenticate, whitelist);
criterion_main!(benches);

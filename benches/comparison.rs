//! apikeys against the API-key crates people use today, on the same work, in
//! one run: `cargo bench --bench comparison`.
//!
//! Systems: apikeys with a generated secret, with a chosen secret (first
//! check: argon2; cached check: the verified-secret cache), then
//! `api-keys-simplified` 0.5.1 (argon2 on every check) and
//! `prefixed-api-key` 0.3.0 (a SHA-256 of the long token).
//!
//! Work, for each: generating a key (credentials and their stored hash),
//! verifying a valid key, rejecting an invalid one. Verification includes
//! finding the stored hash: apikeys authenticates against a SQLite store of
//! 100,000 keys; the peers, which have no store, look their hash up in a
//! SQLite table of 100,000 rows by the key's id. The floor is measured in the
//! same run: one indexed SQLite lookup, one SHA-256 of 32 bytes, one
//! constant-time compare of 32 bytes.
//!
//! Targets: apikeys generated >= 1,000x faster than
//! api-keys-simplified at verifying, and within 1.3x of the floor; a cached
//! chosen check within 2x of a generated one. `benches/chart.py` turns the
//! results into the chart of benches/README.md.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use api_keys_simplified::{ApiKeyManagerV0, Environment, ExposeSecret, KeyStatus, SecureString};
use apikeys::NewAccount;
use apikeys::credentials::{generate_identifier, generate_secret};
use apikeys::hashing::{SecretOrigin, hash_secret, random_salt};
use apikeys::{Actor, ApiKeys, Channel, HashingPolicy, NewKey, Policy, Secret};
use apikeys_sqlite::SqliteStore;
use criterion::{
    BenchmarkGroup, Criterion, criterion_group, criterion_main, measurement::WallTime,
};
use prefixed_api_key::{PakControllerOsSha256, PrefixedApiKey};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use rusqlite::{Connection, OptionalExtension};
use sha2::{Digest, Sha256};
use std::hint::black_box;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;

const KEYS: usize = 100_000;

fn client() -> IpAddr {
    "198.51.100.1".parse().unwrap()
}

fn service(path: &Path, policy: Policy, seed: u64) -> ApiKeys {
    service_on(Arc::new(SqliteStore::open(path).unwrap()), policy, seed)
}

fn service_on(store: Arc<SqliteStore>, policy: Policy, seed: u64) -> ApiKeys {
    ApiKeys::new(
        store,
        policy,
        std::sync::Arc::new(apikeys::SystemClock),
        ChaCha20Rng::seed_from_u64(seed),
    )
    .unwrap()
}

/// A table of `KEYS` rows `(id, hash)` for a peer, holding the `real` keys
/// spread among random filler, as its users would keep it.
fn peer_table(path: &Path, real: &[(String, String)]) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; CREATE TABLE peer_keys (id TEXT PRIMARY KEY, hash TEXT NOT NULL) WITHOUT ROWID;",
    )
    .unwrap();
    let tx = conn.unchecked_transaction().unwrap();
    {
        let mut insert = tx
            .prepare("INSERT INTO peer_keys (id, hash) VALUES (?1, ?2)")
            .unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let filler_hash = &real[0].1;
        for _ in real.len()..KEYS {
            insert
                .execute([&generate_identifier(&mut rng), filler_hash])
                .unwrap();
        }
        for (id, hash) in real {
            insert.execute([id, hash]).unwrap();
        }
    }
    tx.commit().unwrap();
    conn
}

fn peer_hash(conn: &Connection, id: &str) -> Option<String> {
    conn.prepare_cached("SELECT hash FROM peer_keys WHERE id = ?1")
        .unwrap()
        .query_row([id], |r| r.get(0))
        .optional()
        .unwrap()
}

fn short(group: &mut BenchmarkGroup<'_, WallTime>) {
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(4));
}

fn comparison(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("apikeys.db");
    let samples = apikeys_sqlite::testing::populate(&db, KEYS, 1000, 1).unwrap();

    // apikeys: generated secrets through the default policy, and a chosen
    // secret checked with the cache on (default) and off. The throttle is
    // off: the rejections below are the same wrong secret over and over
    // from one address, which the default policy soon refuses unchecked
    // (measured on its own, as `apikeys_throttled`).
    let unthrottled = Policy::default().throttle(apikeys::ThrottlePolicy::off());
    let store = Arc::new(SqliteStore::open(&db).unwrap());
    let keys = service_on(store.clone(), unthrottled.clone(), 2);
    let uncached = service(&db, unthrottled.clone().verified_cache_capacity(0), 3);
    let throttled = service(&db, Policy::default(), 4);
    // The same check without last-use recording: what recording costs the
    // hot path (a flush, once per key per interval, is off the hot path).
    // Over the same store: only the recording differs.
    let unrecorded = service_on(
        store.clone(),
        unthrottled.clone().usage(apikeys::UsagePolicy {
            capacity: 0,
            ..apikeys::UsagePolicy::default()
        }),
        5,
    );
    let account = keys
        .open_account(
            Actor::Operator,
            NewAccount::master().created_at(apikeys::testing::START),
        )
        .unwrap();
    keys.create_key(
        Actor::Operator,
        account.account.id,
        NewKey::chosen(Channel::Ftp, "chosen-ftp", Secret::new("a-chosen-secret-9")),
    )
    .unwrap();
    let mut next = 0usize;
    let mut sample = || {
        next = (next + 1) % samples.len();
        &samples[next]
    };

    // api-keys-simplified, default configuration.
    let aks = ApiKeyManagerV0::init_default_config("sk").unwrap();
    let aks_key = aks.generate(Environment::production()).unwrap();
    let aks_id = aks.extract_key_id(aks_key.key());
    let aks_conn = peer_table(
        &dir.path().join("aks.db"),
        &[(aks_id.clone(), aks_key.expose_hash().hash().to_string())],
    );
    let aks_wrong = {
        // Same shape, valid checksum, another key: a wrong key that passes
        // the checksum (a random string would be refused by it alone).
        aks.generate(Environment::production()).unwrap().into_key()
    };

    // prefixed-api-key, Seam defaults (SHA-256).
    let pak = PakControllerOsSha256::configure()
        .prefix("acme".to_owned())
        .seam_defaults()
        .finalize()
        .unwrap();
    // As many known keys as apikeys cycles through, so that both touch as
    // much of their table.
    let pak_keys: Vec<String> = (0..samples.len())
        .map(|_| pak.generate_key_and_hash().0.to_string())
        .collect();
    let pak_rows: Vec<(String, String)> = pak_keys
        .iter()
        .map(|k| {
            let k = PrefixedApiKey::from_string(k).unwrap();
            (k.short_token().to_string(), pak.long_token_hashed(&k))
        })
        .collect();
    let pak_conn = peer_table(&dir.path().join("pak.db"), &pak_rows);
    let pak_key = PrefixedApiKey::from_string(&pak_keys[0]).unwrap();
    let pak_wrong =
        PrefixedApiKey::new("acme".into(), pak_key.short_token().into(), "0".repeat(24));

    // ----- generating a key -------------------------------------------
    let mut group = c.benchmark_group("compare/generate");
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let policy = HashingPolicy::default();
    group.bench_function("apikeys_generated", |b| {
        b.iter(|| {
            let id = generate_identifier(&mut rng);
            let secret = generate_secret(&mut rng);
            black_box((
                id,
                hash_secret(&policy, &secret, SecretOrigin::Generated, &[0; 16]).unwrap(),
            ))
        })
    });
    group.bench_function("prefixed_api_key", |b| {
        b.iter(|| black_box(pak.generate_key_and_hash()))
    });
    group.finish();
    let mut group = c.benchmark_group("compare/generate");
    short(&mut group);
    let chosen = Secret::new("a-chosen-secret-9");
    group.bench_function("apikeys_chosen", |b| {
        b.iter(|| {
            black_box(
                hash_secret(
                    &policy,
                    &chosen,
                    SecretOrigin::Chosen,
                    &random_salt(&mut rng),
                )
                .unwrap(),
            )
        })
    });
    group.bench_function("api_keys_simplified", |b| {
        b.iter(|| black_box(aks.generate(Environment::production()).unwrap()))
    });
    group.finish();

    // ----- verifying a valid key ----------------------------------------
    let mut group = c.benchmark_group("compare/verify");
    group.bench_function("apikeys_generated", |b| {
        b.iter(|| {
            let s = sample();
            black_box(
                keys.authenticate(s.channel, &s.identifier, s.secret.expose_secret(), client())
                    .unwrap(),
            )
        })
    });
    group.bench_function("apikeys_generated_last_use_off", |b| {
        b.iter(|| {
            let s = sample();
            black_box(
                unrecorded
                    .authenticate(s.channel, &s.identifier, s.secret.expose_secret(), client())
                    .unwrap(),
            )
        })
    });
    // Criterion's windows drift by more than last use costs on a shared
    // machine (whichever of the two runs second tends to lose), so the
    // cost is also measured interleaved: batches of checks with and
    // without recording, in alternating order, compared by their medians.
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for i in 0..200 {
        for step in 0..2 {
            let service = if (step == 0) == (i % 2 == 0) {
                &keys
            } else {
                &unrecorded
            };
            let started = std::time::Instant::now();
            for _ in 0..500 {
                let s = sample();
                black_box(
                    service
                        .authenticate(s.channel, &s.identifier, s.secret.expose_secret(), client())
                        .unwrap(),
                );
            }
            let per_check = started.elapsed() / 500;
            if std::ptr::eq(service, &keys) {
                on.push(per_check);
            } else {
                off.push(per_check);
            }
        }
    }
    on.sort();
    off.sort();
    let (a, b) = (on[on.len() / 2], off[off.len() / 2]);
    println!(
        "compare/verify/last_use_interleaved: recording {a:?}, not recording {b:?} per check (medians of 200 alternating batches of 500): ratio {:.4}",
        a.as_secs_f64() / b.as_secs_f64()
    );
    keys.authenticate(Channel::Ftp, "chosen-ftp", "a-chosen-secret-9", client())
        .unwrap();
    group.bench_function("apikeys_chosen_cached", |b| {
        b.iter(|| {
            black_box(
                keys.authenticate(Channel::Ftp, "chosen-ftp", "a-chosen-secret-9", client())
                    .unwrap(),
            )
        })
    });
    let mut pak_next = 0usize;
    group.bench_function("prefixed_api_key", |b| {
        b.iter(|| {
            pak_next = (pak_next + 1) % pak_keys.len();
            let presented = PrefixedApiKey::from_string(&pak_keys[pak_next]).unwrap();
            let hash = peer_hash(&pak_conn, presented.short_token()).unwrap();
            assert!(pak.check_hash(&presented, &hash));
        })
    });
    // The floor: what any system must do at least.
    let raw = Connection::open(&db).unwrap();
    let digest_32 = [7u8; 32];
    group.bench_function("floor_sqlite_lookup", |b| {
        b.iter(|| {
            let s = sample();
            black_box(
                raw.prepare_cached("SELECT secret_hash FROM keys WHERE identifier = ?1")
                    .unwrap()
                    .query_row([&s.identifier], |r| r.get::<_, String>(0))
                    .unwrap(),
            )
        })
    });
    group.bench_function("floor_sha256_32_bytes", |b| {
        b.iter(|| black_box(Sha256::digest(black_box(&digest_32))))
    });
    let other = [8u8; 32];
    group.bench_function("floor_ct_compare_32_bytes", |b| {
        b.iter(|| black_box(bool::from(black_box(&digest_32).ct_eq(black_box(&other)))))
    });
    group.bench_function("floor_total", |b| {
        b.iter(|| {
            let s = sample();
            let stored: String = raw
                .prepare_cached("SELECT secret_hash FROM keys WHERE identifier = ?1")
                .unwrap()
                .query_row([&s.identifier], |r| r.get(0))
                .unwrap();
            let d: [u8; 32] = Sha256::digest(black_box(&digest_32)).into();
            black_box((stored, bool::from(d.ct_eq(&other))))
        })
    });
    group.finish();
    let mut group = c.benchmark_group("compare/verify");
    short(&mut group);
    group.bench_function("apikeys_chosen_first", |b| {
        b.iter(|| {
            black_box(
                uncached
                    .authenticate(Channel::Ftp, "chosen-ftp", "a-chosen-secret-9", client())
                    .unwrap(),
            )
        })
    });
    group.bench_function("api_keys_simplified", |b| {
        b.iter(|| {
            let id = aks.extract_key_id(aks_key.key());
            let hash = peer_hash(&aks_conn, &id).unwrap();
            assert_eq!(aks.verify(aks_key.key(), hash).unwrap(), KeyStatus::Valid);
        })
    });
    group.finish();

    // ----- rejecting an invalid key -------------------------------------
    let mut group = c.benchmark_group("compare/reject");
    let s0 = samples[0].clone();
    let mut typo = s0.secret.expose_secret().to_string();
    typo.replace_range(10..11, if &typo[10..11] == "a" { "b" } else { "a" });
    group.bench_function("apikeys_generated_bad_checksum", |b| {
        b.iter(|| {
            black_box(
                keys.authenticate(s0.channel, &s0.identifier, black_box(&typo), client())
                    .unwrap_err(),
            )
        })
    });
    let wrong = generate_secret(&mut rng);
    group.bench_function("apikeys_generated_wrong_secret", |b| {
        b.iter(|| {
            black_box(
                keys.authenticate(s0.channel, &s0.identifier, wrong.expose_secret(), client())
                    .unwrap_err(),
            )
        })
    });
    group.bench_function("apikeys_throttled", |b| {
        b.iter(|| {
            black_box(
                throttled
                    .authenticate(s0.channel, &s0.identifier, wrong.expose_secret(), client())
                    .unwrap_err(),
            )
        })
    });
    group.bench_function("prefixed_api_key", |b| {
        b.iter(|| {
            let hash = peer_hash(&pak_conn, pak_wrong.short_token()).unwrap();
            assert!(!pak.check_hash(&pak_wrong, &hash));
        })
    });
    let garbage: SecureString = "sk_live_not-a-real-key-at-all".to_string().into();
    group.bench_function("api_keys_simplified_bad_checksum", |b| {
        b.iter(|| {
            assert_eq!(
                aks.verify(&garbage, aks_key.expose_hash().hash()).unwrap(),
                KeyStatus::Invalid
            )
        })
    });
    group.finish();
    let mut group = c.benchmark_group("compare/reject");
    short(&mut group);
    group.bench_function("apikeys_chosen_wrong_secret", |b| {
        b.iter(|| {
            black_box(
                keys.authenticate(Channel::Ftp, "chosen-ftp", "not-the-secret-0", client())
                    .unwrap_err(),
            )
        })
    });
    group.bench_function("api_keys_simplified_wrong_key", |b| {
        b.iter(|| {
            let hash = peer_hash(&aks_conn, &aks_id).unwrap();
            assert_eq!(aks.verify(&aks_wrong, hash).unwrap(), KeyStatus::Invalid);
        })
    });
    group.finish();
    let _ = aks_wrong.expose_secret();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = comparison
}
criterion_main!(benches);

//! The server going away: sessions terminated under the store, and a full
//! outage. Nothing panics, failures say the database connection failed,
//! the store recovers by itself, and nothing acknowledged is lost.
//!
//! Decision shown here: a connection found dead before anything committed is
//! replaced transparently (the operation runs again on another connection),
//! and one lost during `COMMIT` is resolved by asking the server, so
//! terminated sessions cost callers nothing; only a real outage reaches them
//! as an error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use apikeys::NewAccount;
use apikeys::testing::records;
use apikeys::testing::{Fixture, START};
use apikeys::{
    Account, AccountId, Actor, AuditEvent, Channel, KeyId, KeyRecord, NewKey, Store, StoreError,
    StoreExt,
};
use apikeys_postgres::testing::TestSchema;
use apikeys_postgres::{DatabaseError, Options, PostgresStore};
use common::{CommitCut, Proxy};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Ids(ChaCha20Rng);

impl Ids {
    fn account(&mut self) -> AccountId {
        AccountId::random(&mut self.0)
    }
    fn key(&mut self) -> KeyId {
        KeyId::random(&mut self.0)
    }
}

fn master(id: AccountId) -> Account {
    records::master(id)
}

fn record(id: KeyId, account: AccountId, identifier: &str) -> KeyRecord {
    records::key(id, account, Channel::Rest, identifier)
}

fn created(k: &KeyRecord) -> AuditEvent {
    records::created(k)
}

/// The error is a backend error saying the database connection failed.
fn assert_connection_failure(err: &StoreError) {
    let StoreError::Backend { source } = err else {
        panic!("expected a backend error, got {err:?}")
    };
    let db = source
        .downcast_ref::<DatabaseError>()
        .unwrap_or_else(|| panic!("expected a DatabaseError, got {source:?}"));
    assert!(db.is_connection_failure(), "{db:?}");
    assert!(
        err.to_string().contains("database connection failed"),
        "{err}"
    );
}

/// Busy the pool's connections so that several exist, then leave them idle.
fn open_connections(store: &PostgresStore, n: usize) {
    let barrier = std::sync::Barrier::new(n);
    std::thread::scope(|s| {
        for _ in 0..n {
            s.spawn(|| {
                barrier.wait();
                for _ in 0..20 {
                    store.key_by_identifier("warm-up").unwrap();
                }
            });
        }
    });
}

#[test]
fn terminated_sessions_are_replaced_transparently() {
    let Some(db) = TestSchema::new("loss_terminate") else {
        return;
    };
    let store = Arc::new(db.store(4));
    let f = Fixture::new(store.clone(), 7);
    let mut acknowledged = Vec::new();
    let a = f
        .keys
        .open_account(Actor::Operator, NewAccount::master().created_at(START))
        .unwrap()
        .account;

    for round in 0..3 {
        for _ in 0..3 {
            let k = f
                .keys
                .create_key(Actor::Operator, a.id, NewKey::generated(Channel::Rest))
                .unwrap();
            acknowledged.push((k.key, k.secret.unwrap()));
        }
        open_connections(&store, 4);
        let killed = db.terminate_sessions(db.application_name());
        assert!(killed >= 1, "round {round}: no session to terminate");

        // Every idle connection is now dead; the next operations, reads and
        // writes, find that out and go on on fresh connections.
        let (key, secret) = &acknowledged[0];
        let who = f
            .keys
            .authenticate(
                Channel::Rest,
                &key.identifier,
                secret.expose_secret(),
                "203.0.113.7".parse().unwrap(),
            )
            .unwrap();
        assert_eq!(who.key_id, key.id, "round {round}");
        f.keys
            .set_whitelist(Actor::Operator, key.id, Vec::new())
            .unwrap();
        open_connections(&store, 4);
        db.terminate_sessions(db.application_name());
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for (k, _) in &acknowledged {
                        assert_eq!(
                            store.key_by_identifier(&k.identifier).unwrap().unwrap().id,
                            k.id
                        );
                    }
                });
            }
        });
    }

    // Nothing acknowledged was lost.
    for (k, secret) in &acknowledged {
        assert_eq!(store.require_key(k.id).unwrap().identifier, k.identifier);
        f.keys
            .authenticate(
                Channel::Rest,
                &k.identifier,
                secret.expose_secret(),
                "203.0.113.7".parse().unwrap(),
            )
            .unwrap();
    }
    assert_eq!(
        store.keys_of_account(a.id).unwrap().len(),
        acknowledged.len()
    );
}

/// Writers keep writing while every session of the store is terminated,
/// again and again. Each write either is acknowledged, and then is found
/// afterwards, or fails with a connection error (in practice none does: a
/// session killed mid-transaction is retried, one killed during `COMMIT` is
/// resolved). Losing an acknowledged write is the failure.
#[test]
fn terminations_under_load_lose_nothing_acknowledged() {
    let Some(db) = TestSchema::new("loss_under_load") else {
        return;
    };
    let store = db.store(4);
    let mut ids = Ids(ChaCha20Rng::seed_from_u64(9));
    let accounts: Vec<Account> = (0..4).map(|_| master(ids.account())).collect();
    for a in &accounts {
        store.create_account(a, &[], &[]).unwrap();
    }
    let keys: Vec<Vec<KeyRecord>> = accounts
        .iter()
        .enumerate()
        .map(|(w, a)| {
            (0..400)
                .map(|i| record(ids.key(), a.id, &format!("load-{w}-{i}")))
                .collect()
        })
        .collect();
    let acknowledged = Mutex::new(Vec::new());
    let failures = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);

    std::thread::scope(|s| {
        for worker_keys in &keys {
            let (store, acknowledged, failures, stop) = (&store, &acknowledged, &failures, &stop);
            s.spawn(move || {
                for k in worker_keys {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    match store.insert_key(k, 1000, &created(k)) {
                        Ok(()) => acknowledged.lock().unwrap().push(k.clone()),
                        Err(e) => failures.lock().unwrap().push(e),
                    }
                }
            });
        }
        for _ in 0..5 {
            std::thread::sleep(Duration::from_millis(150));
            db.terminate_sessions(db.application_name());
        }
        std::thread::sleep(Duration::from_millis(100));
        stop.store(true, Ordering::SeqCst);
    });

    let acknowledged = acknowledged.into_inner().unwrap();
    let failures = failures.into_inner().unwrap();
    eprintln!(
        "{} writes acknowledged, {} failed while sessions were terminated",
        acknowledged.len(),
        failures.len()
    );
    assert!(!acknowledged.is_empty());
    for e in &failures {
        eprintln!("  {e}");
        assert_connection_failure(e);
    }
    for k in &acknowledged {
        assert_eq!(
            store.key(k.id).unwrap().as_ref(),
            Some(k),
            "an acknowledged write was lost"
        );
        assert_eq!(
            store
                .key_by_identifier(&k.identifier)
                .unwrap()
                .map(|f| f.id),
            Some(k.id)
        );
    }
    // And the store works normally afterwards.
    let last = record(ids.key(), accounts[0].id, "after-the-storm");
    store.insert_key(&last, 1000, &created(&last)).unwrap();
}

/// A full outage: every connection cut, new ones refused. Operations fail
/// within the checkout timeout with an error saying the database connection
/// failed, never a panic; once the server is back, the store recovers by
/// itself and everything acknowledged before is there.
#[test]
fn an_outage_fails_cleanly_and_the_store_recovers() {
    let Some(db) = TestSchema::new("loss_outage") else {
        return;
    };
    let proxy = Proxy::start(&db);
    let timeout = Duration::from_millis(500);
    let store = PostgresStore::connect_with(
        &proxy.url(&db),
        Options::default()
            .pool_size(4)
            .schema(db.name())
            .checkout_timeout(timeout),
    )
    .unwrap();
    let mut ids = Ids(ChaCha20Rng::seed_from_u64(10));
    let a = master(ids.account());
    store.create_account(&a, &[], &[]).unwrap();
    let mut acknowledged = Vec::new();
    for i in 0..10 {
        let k = record(ids.key(), a.id, &format!("before-outage-{i}"));
        store.insert_key(&k, 100, &created(&k)).unwrap();
        acknowledged.push(k);
    }
    open_connections(&store, 4);

    proxy.set_up(false);
    let refused = record(ids.key(), a.id, "during-outage");
    for _ in 0..3 {
        let started = Instant::now();
        assert_connection_failure(&store.key_by_identifier("before-outage-1").unwrap_err());
        assert_connection_failure(
            &store
                .insert_key(&refused, 100, &created(&refused))
                .unwrap_err(),
        );
        assert_connection_failure(&store.account(a.id).unwrap_err());
        assert!(
            started.elapsed() < 3 * timeout + Duration::from_secs(5),
            "failing took {:?}",
            started.elapsed()
        );
    }

    proxy.set_up(true);
    // The pool may still be waiting out a failed attempt: allow it a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match store.key_by_identifier("before-outage-1") {
            Ok(found) => {
                assert!(found.is_some());
                break;
            }
            Err(e) if Instant::now() < deadline => {
                assert_connection_failure(&e);
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("the store did not recover: {e}"),
        }
    }
    for k in &acknowledged {
        assert_eq!(store.key(k.id).unwrap().as_ref(), Some(k));
    }
    assert_eq!(
        store.key(refused.id).unwrap(),
        None,
        "a refused write left nothing"
    );
    store.insert_key(&refused, 100, &created(&refused)).unwrap();
    assert_eq!(store.keys_of_account(a.id).unwrap().len(), 11);
}

/// A connection lost during `COMMIT`: the client cannot know whether the
/// change was applied, the server can. The store asks it (`txid_status`):
/// a commit that happened is reported as the success it was, once; one
/// that did not is run again. Either way the caller sees one success and
/// the database holds the change and its audit event exactly once.
#[test]
fn a_commit_whose_answer_is_lost_is_resolved() {
    let Some(db) = TestSchema::new("loss_commit") else {
        return;
    };
    let proxy = Proxy::start(&db);
    let store = PostgresStore::connect_with(
        &proxy.url(&db),
        Options::default().pool_size(2).schema(db.name()),
    )
    .unwrap();
    let mut ids = Ids(ChaCha20Rng::seed_from_u64(11));
    let a = master(ids.account());
    store.create_account(&a, &[], &[]).unwrap();
    let events = |store: &PostgresStore| store.audit_events(a.id, 100).unwrap().len();

    for cut in [CommitCut::AnswerLost, CommitCut::ServerNeverSees] {
        // Insert.
        let k = record(ids.key(), a.id, &format!("commit-{cut:?}"));
        let before = events(&store);
        proxy.cut_at_next_commit(cut);
        store.insert_key(&k, 100, &created(&k)).unwrap();
        assert_eq!(store.key(k.id).unwrap().as_ref(), Some(&k), "{cut:?}");
        assert_eq!(events(&store), before + 1, "{cut:?}: one audit event");

        // Compare-and-swap update.
        let mut next = k.clone();
        next.version = 2;
        next.secret_hash = apikeys::testing::records::hash("rotated");
        proxy.cut_at_next_commit(cut);
        store.update_key(&next, 1, &created(&next)).unwrap();
        assert_eq!(store.key(k.id).unwrap().as_ref(), Some(&next), "{cut:?}");
        assert_eq!(events(&store), before + 2, "{cut:?}: one audit event");

        // Delete.
        proxy.cut_at_next_commit(cut);
        store.delete_key(k.id, None, &created(&next)).unwrap();
        assert_eq!(store.key(k.id).unwrap(), None, "{cut:?}");
        assert_eq!(events(&store), before + 3, "{cut:?}: one audit event");
    }

    // Opening an account, with a key.
    let b = master(ids.account());
    let kb = record(ids.key(), b.id, "commit-account");
    proxy.cut_at_next_commit(CommitCut::AnswerLost);
    store
        .create_account(&b, std::slice::from_ref(&kb), &[created(&kb)])
        .unwrap();
    assert_eq!(store.account(b.id).unwrap(), Some(b.clone()));
    assert_eq!(store.keys_of_account(b.id).unwrap(), vec![kb]);
    assert_eq!(store.audit_events(b.id, 10).unwrap().len(), 1);
}

/// When the server is out of reach from the moment a `COMMIT` was sent, the
/// store cannot tell at once what became of the write; since `Err` must mean
/// "not applied", it waits until the server can say, however long the outage
/// lasts, and then answers the truth (here: applied).
#[test]
fn a_commit_lost_with_the_server_waits_for_the_answer() {
    let Some(db) = TestSchema::new("loss_commit_outage") else {
        return;
    };
    let proxy = Proxy::start(&db);
    let store = PostgresStore::connect_with(
        &proxy.url(&db),
        Options::default()
            .pool_size(2)
            .schema(db.name())
            .checkout_timeout(Duration::from_millis(300)),
    )
    .unwrap();
    let mut ids = Ids(ChaCha20Rng::seed_from_u64(12));
    let a = master(ids.account());
    store.create_account(&a, &[], &[]).unwrap();
    let k = record(ids.key(), a.id, "commit-in-the-dark");

    // The answer to COMMIT is lost, and from then on the proxy refuses every
    // connection, so the store cannot ask until the outage ends.
    proxy.cut_at_next_commit(CommitCut::AnswerLostThenOutage);
    let outage = Duration::from_millis(1500);
    let (outcome, waited) = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let started = Instant::now();
            let outcome = store.insert_key(&k, 100, &created(&k));
            (outcome, started.elapsed())
        });
        std::thread::sleep(outage);
        proxy.set_up(true);
        writer.join().unwrap()
    });
    outcome.unwrap_or_else(|e| panic!("the write was applied, so it must answer Ok: {e:?}"));
    assert!(
        waited >= outage,
        "answered after {waited:?}, before the server could tell"
    );
    assert_eq!(store.key(k.id).unwrap(), Some(k.clone()));
    assert_eq!(
        store.audit_events(a.id, 10).unwrap().len(),
        1,
        "exactly one audit event for the one write"
    );
}

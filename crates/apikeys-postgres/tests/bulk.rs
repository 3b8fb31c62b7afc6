//! Bulk creation, what an import writes through: its throughput on this
//! backend (many rows per statement), the exact answer of each account when
//! a few of a large batch are refused, and a `COMMIT` whose answer is lost.
//! The contract itself is the conformance suite's.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use apikeys::store::{AccountRecords, Entity, Existing};
use apikeys::testing::records::{self, opened};
use apikeys::{AccountId, AccountKind, Channel, ExternalId, KeyId, Store, StoreError};
use apikeys_postgres::testing::TestSchema;
use apikeys_postgres::{Options, PostgresStore};
use common::{CommitCut, Proxy};
use std::time::Instant;

const CHANNELS: [Channel; 4] = [Channel::Ftp, Channel::Http, Channel::Rest, Channel::Email];

/// Ids that differ between the batches of one test: `tag` in the first
/// byte, `n` in the last eight.
fn account_id(tag: u8, n: u64) -> AccountId {
    let mut b = [0u8; 16];
    b[0] = tag;
    b[8..].copy_from_slice(&n.to_be_bytes());
    AccountId::from_bytes(b)
}

fn key_id(tag: u8, n: u64, k: u8) -> KeyId {
    let mut b = [0u8; 16];
    b[0] = tag;
    b[1] = k;
    b[8..].copy_from_slice(&n.to_be_bytes());
    KeyId::from_bytes(b)
}

/// Account `n` of batch `tag`: a master with external id `{tag}-{n}` and one
/// key on each of [`CHANNELS`], with its opening event.
fn account(tag: u8, n: u64) -> AccountRecords {
    let a = records::master(account_id(tag, n))
        .with_external_id(ExternalId::new(&format!("{tag}-{n}")).unwrap());
    let keys = CHANNELS
        .iter()
        .zip(0u8..)
        .map(|(&c, k)| records::key(key_id(tag, n, k), a.id, c, &format!("b{tag}-{n}-{c}")))
        .collect();
    AccountRecords {
        events: vec![opened(&a)],
        account: a,
        keys,
    }
}

fn count(db: &TestSchema, table: &str) -> i64 {
    db.client()
        .query_one(&format!("SELECT count(*) FROM {}.{table}", db.name()), &[])
        .unwrap()
        .get(0)
}

/// `a` is stored whole, as given.
#[track_caller]
fn stored(store: &PostgresStore, a: &AccountRecords) {
    assert_eq!(
        store.account(a.account.id).unwrap().as_ref(),
        Some(&a.account)
    );
    let mut keys = store.keys_of_account(a.account.id).unwrap();
    keys.sort_by_key(|k| k.id);
    let mut want = a.keys.clone();
    want.sort_by_key(|k| k.id);
    assert_eq!(keys, want);
    assert_eq!(
        store.audit_events(a.account.id, 10).unwrap().len(),
        a.events.len()
    );
}

/// Nothing of `a` is stored.
#[track_caller]
fn absent(store: &PostgresStore, a: &AccountRecords) {
    assert_eq!(store.account(a.account.id).unwrap(), None);
    assert_eq!(store.keys_of_account(a.account.id).unwrap(), vec![]);
    assert_eq!(store.audit_events(a.account.id, 10).unwrap(), vec![]);
    for k in &a.keys {
        assert_eq!(store.key(k.id).unwrap(), None);
    }
}

/// 5,000 accounts of 4 keys each in one call. Printed: the keys per second
/// (the import this serves needs 20,000 on a release build); asserted only
/// something a debug build on a slow machine reaches.
#[test]
fn five_thousand_accounts_of_four_keys() {
    let Some(db) = TestSchema::new("bulk_throughput") else {
        return;
    };
    let store = db.store(2);
    const N: u64 = 5_000;
    let batch: Vec<AccountRecords> = (0..N).map(|n| account(1, n)).collect();
    let keys = batch.iter().map(|a| a.keys.len()).sum::<usize>();
    let started = Instant::now();
    let answers = store.create_accounts(&batch).unwrap();
    let took = started.elapsed();
    let rate = keys as f64 / took.as_secs_f64();
    eprintln!(
        "create_accounts: {N} accounts, {keys} keys in {took:.2?}: {rate:.0} keys/s ({} build)",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    assert!(answers.iter().all(Result::is_ok));
    assert_eq!(answers.len(), batch.len());
    assert_eq!(count(&db, "apikeys_accounts"), N as i64);
    assert_eq!(count(&db, "apikeys_keys"), keys as i64);
    assert_eq!(count(&db, "apikeys_audit_events"), N as i64);
    for a in batch.iter().step_by(499) {
        stored(&store, a);
        let e = a.account.external_id.as_ref().unwrap();
        assert_eq!(
            store.account_by_external_id(e).unwrap().as_ref(),
            Some(&a.account)
        );
    }
    assert!(rate > 2_000.0, "{rate:.0} keys/s");
}

/// A few bad accounts scattered through a large batch: every good one
/// lands, each bad one gets exactly create_account's error and keeps
/// nothing, and the external ids a `LIKE` or a byte-length limit on
/// characters would get wrong round-trip.
#[test]
fn the_bad_accounts_of_a_large_batch_get_their_own_errors() {
    let Some(db) = TestSchema::new("bulk_bad_ones") else {
        return;
    };
    let store = db.store(2);
    const N: u64 = 3_000;
    let mut batch: Vec<AccountRecords> = (0..N).map(|n| account(2, n)).collect();
    let mut want: Vec<Option<StoreError>> = (0..N).map(|_| None).collect();

    // The longest external id, of 4-byte characters, and wildcards of LIKE.
    let longest = "\u{1F511}".repeat(apikeys::account::MAX_EXTERNAL_ID_CHARS);
    assert_eq!(longest.len(), apikeys::account::MAX_EXTERNAL_ID_BYTES);
    for (n, text) in [(10, longest.as_str()), (11, "a%b"), (12, "a_b"), (13, "%")] {
        let a = &mut batch[n];
        a.account = a
            .account
            .clone()
            .with_external_id(ExternalId::new(text).unwrap());
        a.events = vec![opened(&a.account)];
    }
    // An identifier taken by an account earlier in the batch.
    let taken = batch[100].keys[1].identifier.to_uppercase();
    batch[1700].keys[3].identifier = taken;
    want[1700] = Some(StoreError::AlreadyExists(Existing::Identifier));
    // An external id taken earlier in the batch.
    let twin = batch[5].account.external_id.clone().unwrap();
    batch[2999].account = batch[2999].account.clone().with_external_id(twin);
    want[2999] = Some(StoreError::AlreadyExists(Existing::ExternalId));
    // A sub-account of itself.
    let own = batch[400].account.id;
    batch[400].account.kind = AccountKind::Sub { parent: own };
    want[400] = Some(StoreError::NotFound(Entity::Account(own)));
    // A key of another account, after one breaking a rule: the key of
    // another account is found first, as the keys are checked in order.
    let other = batch[900].account.id;
    batch[901].keys[1].identifier = batch[0].keys[0].identifier.clone();
    batch[901].keys[2].account_id = other;
    want[901] = Some(StoreError::AlreadyExists(Existing::Identifier));
    batch[902].keys[0].account_id = other;
    want[902] = Some(StoreError::NotFound(Entity::Account(other)));
    // A sub-account of an account further down the batch: not yet written.
    let later = batch[2500].account.id;
    batch[2000].account.kind = AccountKind::Sub { parent: later };
    want[2000] = Some(StoreError::NotFound(Entity::Account(later)));
    // A sub-account of one earlier in the batch: written.
    batch[2001].account.kind = AccountKind::Sub {
        parent: batch[1999].account.id,
    };

    let answers = store.create_accounts(&batch).unwrap();
    assert_eq!(answers.len(), batch.len());
    let mut written = 0;
    for ((answer, want), a) in answers.iter().zip(&want).zip(&batch) {
        match want {
            None => {
                assert!(answer.is_ok(), "{:?}: {answer:?}", a.account.external_id);
                written += 1;
            }
            Some(want) => {
                assert_eq!(
                    answer.as_ref().err().map(ToString::to_string),
                    Some(want.to_string()),
                    "{:?}",
                    a.account.external_id
                );
                absent(&store, a);
            }
        }
    }
    assert_eq!(count(&db, "apikeys_accounts"), written);
    for n in [0, 10, 11, 12, 13, 399, 401, 1699, 1701, 2001, 2998] {
        stored(&store, &batch[n]);
    }
    for n in [10, 11, 12, 13] {
        let a = &batch[n].account;
        let found = store
            .account_by_external_id(a.external_id.as_ref().unwrap())
            .unwrap();
        assert_eq!(found.as_ref(), Some(a));
    }
    for nobody in ["ab", "a", "a%", "%b", "_"] {
        let e = ExternalId::new(nobody).unwrap();
        assert_eq!(store.account_by_external_id(&e).unwrap(), None, "{nobody}");
    }
}

/// The `COMMIT` of a bulk creation loses its answer, or never reaches the
/// server: either way the call answers the truth (every account written,
/// once), never an error for a batch that committed.
#[test]
fn a_bulk_creation_whose_commit_is_cut_answers_the_truth() {
    let Some(db) = TestSchema::new("bulk_commit_cut") else {
        return;
    };
    let proxy = Proxy::start(&db);
    let store = PostgresStore::connect_with(
        &proxy.url(&db),
        Options::default().pool_size(2).schema(db.name()),
    )
    .unwrap();
    let mut total = 0;
    for (tag, cut) in [(3, CommitCut::AnswerLost), (4, CommitCut::ServerNeverSees)] {
        let mut batch: Vec<AccountRecords> = (0..200).map(|n| account(tag, n)).collect();
        // One refused, so that both the many-row and the one-by-one writes
        // are in the transaction.
        batch[150].account.kind = AccountKind::Sub {
            parent: batch[150].account.id,
        };
        batch[150].events = vec![opened(&batch[150].account)];
        proxy.cut_at_next_commit(cut);
        let answers = store.create_accounts(&batch).unwrap();
        for (i, answer) in answers.iter().enumerate() {
            assert_eq!(answer.is_ok(), i != 150, "{cut:?} {i}: {answer:?}");
        }
        total += 199;
        assert_eq!(count(&db, "apikeys_accounts"), total, "{cut:?}");
        assert_eq!(count(&db, "apikeys_keys"), total * 4, "{cut:?}");
        assert_eq!(count(&db, "apikeys_audit_events"), total, "{cut:?}");
        stored(&store, &batch[0]);
        stored(&store, &batch[199]);
        absent(&store, &batch[150]);
    }
}

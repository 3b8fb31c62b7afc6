//! The storage conformance suite: one public function per behaviour, each
//! taking a fresh, empty store. Backends run it through
//! [`crate::store_conformance_tests!`]; these functions panic on failure, as
//! tests do.
//!
//! Every test here is about something a store can get wrong. The service's
//! own rules, which hold whatever the store, are tested once, on the
//! in-memory store, by the domain crate's integration tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use super::START;
use super::records::{event, hash, key as record, master, opened};
use crate::account::{Account, AccountKind, Actor};
use crate::audit::AuditKind;
use crate::channel::{Channel, ChannelSet};
use crate::id::{AccountId, KeyId};
use crate::key::{KeyRecord, PreviousSecret};
use crate::store::{DynStore, Entity, Existing, StoreError, StoreExt};
use crate::whitelist::Whitelist;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::sync::{Arc, Barrier};
use time::Duration;

const THREADS: usize = 8;
const ROUNDS: usize = 10;

// ----- builders --------------------------------------------------------

struct Ids(ChaCha20Rng);

impl Ids {
    fn new(seed: u64) -> Self {
        Ids(ChaCha20Rng::seed_from_u64(seed))
    }
    fn account(&mut self) -> AccountId {
        AccountId::random(&mut self.0)
    }
    fn key(&mut self) -> KeyId {
        KeyId::random(&mut self.0)
    }
}

fn add_master(store: &DynStore, ids: &mut Ids) -> Account {
    let a = master(ids.account());
    store.create_account(&a, &[], &[opened(&a)]).unwrap();
    a
}

fn insert(store: &DynStore, key: &KeyRecord, max: u32) -> Result<(), StoreError> {
    store.insert_key(
        key,
        max,
        &event(key.account_id, Some(key), AuditKind::KeyCreated, "created"),
    )
}

fn wl(entries: &[&str]) -> Vec<ipnet::IpNet> {
    Whitelist::parse(entries, 1000).unwrap().entries().to_vec()
}

// ----- the storage contract --------------------------------------------

/// An account reads back as written; an absent one is `None`; a taken id
/// is `AlreadyExists(Account)`.
pub fn account_roundtrip(store: Arc<DynStore>) {
    let mut ids = Ids::new(1);
    let m = add_master(&*store, &mut ids);
    let sub = Account {
        id: ids.account(),
        kind: AccountKind::Sub { parent: m.id },
        created_at: time::macros::datetime!(1999-12-31 23:59:59.123456 UTC),
    };
    store.create_account(&sub, &[], &[opened(&sub)]).unwrap();
    assert_eq!(store.account(m.id).unwrap(), Some(m.clone()));
    assert_eq!(store.account(sub.id).unwrap(), Some(sub.clone()));
    assert_eq!(store.account(ids.account()).unwrap(), None);
    let again = Account {
        created_at: START + Duration::days(1),
        ..m.clone()
    };
    assert!(matches!(
        store.create_account(&again, &[], &[]),
        Err(StoreError::AlreadyExists(Existing::Account))
    ));
    assert_eq!(store.account(m.id).unwrap(), Some(m));
}

/// A sub-account whose parent is not stored is refused with `NotFound`.
pub fn sub_account_needs_stored_parent(store: Arc<DynStore>) {
    let mut ids = Ids::new(2);
    let ghost = ids.account();
    let sub = Account {
        id: ids.account(),
        kind: AccountKind::Sub { parent: ghost },
        created_at: START,
    };
    let err = store
        .create_account(&sub, &[], &[opened(&sub)])
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound(Entity::Account(id)) if id == ghost),
        "{err:?}"
    );
    assert_eq!(store.account(sub.id).unwrap(), None);
}

/// Opening an account with initial keys is all or nothing: one bad key and
/// neither the account, nor any key, nor any event is kept.
pub fn create_account_is_all_or_nothing(store: Arc<DynStore>) {
    let mut ids = Ids::new(3);
    let other = add_master(&*store, &mut ids);
    insert(
        &*store,
        &record(ids.key(), other.id, Channel::Ftp, "taken-id"),
        1,
    )
    .unwrap();

    let a = master(ids.account());
    let good = record(ids.key(), a.id, Channel::Http, "fresh-id");
    let clash = record(ids.key(), a.id, Channel::Email, "TAKEN-ID");
    let events = [
        opened(&a),
        event(a.id, Some(&good), AuditKind::KeyCreated, "k1"),
    ];
    let err = store
        .create_account(&a, &[good.clone(), clash], &events)
        .unwrap_err();
    assert!(
        matches!(err, StoreError::AlreadyExists(Existing::Identifier)),
        "{err:?}"
    );
    assert_eq!(store.account(a.id).unwrap(), None);
    assert_eq!(store.key(good.id).unwrap(), None);
    assert_eq!(store.key_by_identifier("fresh-id").unwrap(), None);
    assert!(store.audit_events(a.id, 100).unwrap().is_empty());

    // Two initial keys clashing with each other are refused the same way.
    let twins = [
        record(ids.key(), a.id, Channel::Http, "twin"),
        record(ids.key(), a.id, Channel::Email, "Twin"),
    ];
    assert!(matches!(
        store.create_account(&a, &twins, &[opened(&a)]),
        Err(StoreError::AlreadyExists(Existing::Identifier))
    ));
    assert_eq!(store.account(a.id).unwrap(), None);

    // Two initial keys of one channel other than REST break the channel rule;
    // two REST keys do not.
    let two_ftp = [
        record(ids.key(), a.id, Channel::Ftp, "ftp-one"),
        record(ids.key(), a.id, Channel::Ftp, "ftp-two"),
    ];
    assert!(matches!(
        store.create_account(&a, &two_ftp, &[opened(&a)]),
        Err(StoreError::AlreadyExists(Existing::ChannelFull(
            Channel::Ftp
        )))
    ));
    assert_eq!(store.account(a.id).unwrap(), None);
    let b = master(ids.account());
    let two_rest = [
        record(ids.key(), b.id, Channel::Rest, "rest-one"),
        record(ids.key(), b.id, Channel::Rest, "rest-two"),
    ];
    store.create_account(&b, &two_rest, &[opened(&b)]).unwrap();
    assert_eq!(store.keys_of_account(b.id).unwrap().len(), 2);

    // And the same account with good keys then goes through.
    store
        .create_account(&a, std::slice::from_ref(&good), &events)
        .unwrap();
    assert_eq!(store.key(good.id).unwrap(), Some(good));
    assert_eq!(store.audit_events(a.id, 100).unwrap().len(), 2);
}

/// Every field of a key survives the round trip: label, hashes, previous
/// secret, a mixed IPv4/IPv6 whitelist, sub-second instants.
pub fn key_roundtrip_every_field(store: Arc<DynStore>) {
    let mut ids = Ids::new(4);
    let a = add_master(&*store, &mut ids);
    let mut k = record(ids.key(), a.id, Channel::Rest, "Client.ID-42");
    k.label = Some("Büro \"main\" server ✓".into());
    k.created_at = START + Duration::nanoseconds(123_456_000);
    k.changed_at = k.created_at;
    k.whitelist = Whitelist::new(
        wl(&["203.0.113.0/24", "2001:db8::/48", "198.51.100.7"]),
        100,
    )
    .unwrap();
    k.previous_secret = Some(PreviousSecret {
        hash: hash("old"),
        expires_at: START + Duration::hours(1),
    });
    insert(&*store, &k, 10).unwrap();

    assert_eq!(store.key(k.id).unwrap(), Some(k.clone()));
    for spelling in ["Client.ID-42", "client.id-42", "CLIENT.ID-42"] {
        assert_eq!(
            store.key_by_identifier(spelling).unwrap(),
            Some(k.clone()),
            "{spelling}"
        );
    }
    assert_eq!(store.key_by_identifier("Client.ID-43").unwrap(), None);
    assert_eq!(store.key(ids.key()).unwrap(), None);

    let mut k2 = record(ids.key(), a.id, Channel::Ftp, "second");
    k2.created_at = START + Duration::seconds(5);
    insert(&*store, &k2, 1).unwrap();
    assert_eq!(store.keys_of_account(a.id).unwrap(), vec![k, k2]);
    assert!(store.keys_of_account(ids.account()).unwrap().is_empty());
}

/// An identifier names one key across the whole store, ignoring ASCII case
/// (and only ASCII: `ß` is not `SS`).
pub fn identifier_unique_ignoring_case(store: Arc<DynStore>) {
    let mut ids = Ids::new(5);
    let a = add_master(&*store, &mut ids);
    let b = add_master(&*store, &mut ids);
    insert(
        &*store,
        &record(ids.key(), a.id, Channel::Ftp, "Shared-Name"),
        1,
    )
    .unwrap();
    let clash = record(ids.key(), b.id, Channel::Http, "sHARED-nAME");
    assert!(matches!(
        insert(&*store, &clash, 1),
        Err(StoreError::AlreadyExists(Existing::Identifier))
    ));
    assert_eq!(store.key(clash.id).unwrap(), None);
    // Case folding is ASCII-only (identifiers are ASCII anyway).
    insert(
        &*store,
        &record(ids.key(), b.id, Channel::Http, "straße"),
        1,
    )
    .unwrap();
    insert(
        &*store,
        &record(ids.key(), b.id, Channel::Email, "STRASSE"),
        1,
    )
    .unwrap();
    // Non-ASCII letters are not folded: `É` and `é` differ.
    insert(&*store, &record(ids.key(), b.id, Channel::Ftp, "École"), 1).unwrap();
    insert(
        &*store,
        &record(ids.key(), b.id, Channel::Rest, "éCOLE"),
        10,
    )
    .unwrap();
    assert_eq!(
        store.key_by_identifier("ÉCOLE").unwrap().map(|k| k.channel),
        Some(Channel::Ftp)
    );
    assert_eq!(
        store.key_by_identifier("école").unwrap().map(|k| k.channel),
        Some(Channel::Rest)
    );
}

/// `max_for_channel` is enforced per account and channel: one FTP key, up
/// to the limit of REST keys, and other accounts are unaffected.
pub fn one_key_per_channel_except_rest(store: Arc<DynStore>) {
    let mut ids = Ids::new(6);
    let a = add_master(&*store, &mut ids);
    let b = add_master(&*store, &mut ids);
    insert(&*store, &record(ids.key(), a.id, Channel::Ftp, "a-ftp"), 1).unwrap();
    let second = record(ids.key(), a.id, Channel::Ftp, "a-ftp-2");
    assert!(matches!(
        insert(&*store, &second, 1),
        Err(StoreError::AlreadyExists(Existing::ChannelFull(
            Channel::Ftp
        )))
    ));
    insert(&*store, &record(ids.key(), b.id, Channel::Ftp, "b-ftp"), 1).unwrap();
    for i in 0..3 {
        insert(
            &*store,
            &record(ids.key(), a.id, Channel::Rest, &format!("a-rest-{i}")),
            3,
        )
        .unwrap();
    }
    assert!(matches!(
        insert(
            &*store,
            &record(ids.key(), a.id, Channel::Rest, "a-rest-3"),
            3
        ),
        Err(StoreError::AlreadyExists(Existing::ChannelFull(
            Channel::Rest
        )))
    ));
    assert_eq!(
        store.active_channels(a.id).unwrap(),
        ChannelSet::of(&[Channel::Ftp, Channel::Rest])
    );
}

/// A key for an account that is not stored is refused with `NotFound`.
pub fn insert_key_needs_account(store: Arc<DynStore>) {
    let mut ids = Ids::new(7);
    let ghost = ids.account();
    let k = record(ids.key(), ghost, Channel::Ftp, "orphan");
    assert!(
        matches!(insert(&*store, &k, 1), Err(StoreError::NotFound(Entity::Account(id))) if id == ghost)
    );
    assert_eq!(store.key_by_identifier("orphan").unwrap(), None);
}

/// A taken key id is `AlreadyExists(Key)`.
pub fn key_id_is_unique(store: Arc<DynStore>) {
    let mut ids = Ids::new(8);
    let a = add_master(&*store, &mut ids);
    let k = record(ids.key(), a.id, Channel::Ftp, "first");
    insert(&*store, &k, 1).unwrap();
    let dup = record(k.id, a.id, Channel::Rest, "second");
    assert!(matches!(
        insert(&*store, &dup, 10),
        Err(StoreError::AlreadyExists(Existing::Key))
    ));
    assert_eq!(store.key(k.id).unwrap(), Some(k));
}

/// `update_key` writes only from the expected version: a stale version is a
/// `Conflict` (and changes nothing), a missing key `NotFound`.
pub fn update_is_compare_and_swap(store: Arc<DynStore>) {
    let mut ids = Ids::new(9);
    let a = add_master(&*store, &mut ids);
    let k = record(ids.key(), a.id, Channel::Http, "cas-key");
    insert(&*store, &k, 1).unwrap();

    let mut next = k.clone();
    next.secret_hash = hash("new");
    next.version = 2;
    next.changed_at = START + Duration::minutes(1);
    next.whitelist = Whitelist::new(wl(&["10.0.0.0/8"]), 100).unwrap();
    let ev = event(a.id, Some(&next), AuditKind::CredentialsChanged, "v2");
    store.update_key(&next, 1, &ev).unwrap();
    assert_eq!(store.key(k.id).unwrap(), Some(next.clone()));

    let mut stale = k.clone();
    stale.secret_hash = hash("stale");
    stale.version = 2;
    let err = store.update_key(&stale, 1, &ev).unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict { key, expected: 1, found: 2 } if key == k.id),
        "{err:?}"
    );
    assert_eq!(store.key(k.id).unwrap(), Some(next.clone()));

    // Immutable fields are not changed by an update.
    let mut sneaky = next.clone();
    sneaky.version = 3;
    sneaky.channel = Channel::Rest;
    sneaky.created_at = START + Duration::days(9);
    store.update_key(&sneaky, 2, &ev).unwrap();
    let stored = store.key(k.id).unwrap().unwrap();
    assert_eq!(
        (stored.channel, stored.created_at, stored.version),
        (Channel::Http, START, 3)
    );

    let ghost = record(ids.key(), a.id, Channel::Ftp, "ghost");
    assert!(
        matches!(store.update_key(&ghost, 1, &ev), Err(StoreError::NotFound(Entity::Key(id))) if id == ghost.id)
    );
}

/// Changing an identifier frees the old one at once and claims the new one;
/// a new identifier taken by another key is refused.
pub fn update_moves_the_identifier(store: Arc<DynStore>) {
    let mut ids = Ids::new(10);
    let a = add_master(&*store, &mut ids);
    let k = record(ids.key(), a.id, Channel::Http, "old-name");
    let other = record(ids.key(), a.id, Channel::Ftp, "other-name");
    insert(&*store, &k, 1).unwrap();
    insert(&*store, &other, 1).unwrap();

    let mut renamed = k.clone();
    renamed.identifier = "New-Name".into();
    renamed.version = 2;
    let ev = event(
        a.id,
        Some(&renamed),
        AuditKind::CredentialsChanged,
        "renamed",
    );
    store.update_key(&renamed, 1, &ev).unwrap();
    assert_eq!(store.key_by_identifier("old-name").unwrap(), None);
    assert_eq!(
        store.key_by_identifier("new-name").unwrap().map(|k| k.id),
        Some(k.id)
    );

    // Only the case changes: still the same key, no clash with itself.
    let mut recased = renamed.clone();
    recased.identifier = "NEW-NAME".into();
    recased.version = 3;
    store.update_key(&recased, 2, &ev).unwrap();
    assert_eq!(
        store
            .key_by_identifier("new-name")
            .unwrap()
            .unwrap()
            .identifier,
        "NEW-NAME"
    );

    let mut clash = recased.clone();
    clash.identifier = "OTHER-name".into();
    clash.version = 4;
    assert!(matches!(
        store.update_key(&clash, 3, &ev),
        Err(StoreError::AlreadyExists(Existing::Identifier))
    ));
    assert_eq!(store.key(k.id).unwrap(), Some(recased));

    // The freed identifier can be taken by a new key.
    insert(
        &*store,
        &record(ids.key(), a.id, Channel::Email, "OLD-NAME"),
        1,
    )
    .unwrap();
}

/// `upgrade_secret_hash` replaces the hash only if it is still the one the
/// caller verified, without a version bump.
pub fn upgrade_hash_is_compare_and_swap(store: Arc<DynStore>) {
    let mut ids = Ids::new(11);
    let a = add_master(&*store, &mut ids);
    let k = record(ids.key(), a.id, Channel::Http, "rehash-me");
    insert(&*store, &k, 1).unwrap();
    assert!(
        !store
            .upgrade_secret_hash(k.id, &hash("not-the-current"), &hash("x"))
            .unwrap()
    );
    assert!(
        store
            .upgrade_secret_hash(k.id, &k.secret_hash, &hash("stronger"))
            .unwrap()
    );
    let stored = store.key(k.id).unwrap().unwrap();
    assert_eq!((stored.secret_hash, stored.version), (hash("stronger"), 1));
    assert!(
        !store
            .upgrade_secret_hash(k.id, &k.secret_hash, &hash("again"))
            .unwrap()
    );
    assert!(
        !store
            .upgrade_secret_hash(ids.key(), &hash("a"), &hash("b"))
            .unwrap()
    );
    assert_eq!(
        store.audit_events(a.id, 100).unwrap().len(),
        2,
        "no audit event for an upgrade"
    );
}

/// Deleting a key removes it, frees its identifier and its channel; a second
/// delete is `NotFound`.
pub fn delete_frees_identifier_and_channel(store: Arc<DynStore>) {
    let mut ids = Ids::new(12);
    let a = add_master(&*store, &mut ids);
    let k = record(ids.key(), a.id, Channel::Ftp, "doomed");
    insert(&*store, &k, 1).unwrap();
    let ev = event(a.id, Some(&k), AuditKind::KeyDeleted, "gone");
    store.delete_key(k.id, &ev).unwrap();
    assert_eq!(store.key(k.id).unwrap(), None);
    assert_eq!(store.key_by_identifier("doomed").unwrap(), None);
    assert!(store.keys_of_account(a.id).unwrap().is_empty());
    assert!(
        matches!(store.delete_key(k.id, &ev), Err(StoreError::NotFound(Entity::Key(id))) if id == k.id)
    );
    insert(&*store, &record(ids.key(), a.id, Channel::Ftp, "DOOMED"), 1).unwrap();
}

/// The audit trail lists an account's events newest first (ties in order
/// of recording, newest first), honours the limit, and keeps accounts apart.
pub fn audit_newest_first_with_limit(store: Arc<DynStore>) {
    let mut ids = Ids::new(13);
    let a = add_master(&*store, &mut ids);
    let b = add_master(&*store, &mut ids);
    let k = record(ids.key(), a.id, Channel::Ftp, "audited");
    insert(&*store, &k, 1).unwrap();
    let mut last = k.clone();
    // Instants out of recording order, and two ties.
    for (i, minutes) in [(2, 30), (3, 10), (4, 30), (5, 20)] {
        let mut next = last.clone();
        next.version = i;
        let mut ev = event(
            a.id,
            Some(&next),
            AuditKind::WhitelistChanged,
            &format!("v{i}"),
        );
        ev.at = START + Duration::minutes(minutes);
        store.update_key(&next, i - 1, &ev).unwrap();
        last = next;
    }
    let all = store.audit_events(a.id, 100).unwrap();
    let details: Vec<&str> = all.iter().map(|e| e.detail.as_str()).collect();
    assert_eq!(details, ["v4", "v2", "v5", "v3", "created", "opened"]);
    assert_eq!(all[0].key_id, Some(k.id));
    assert_eq!(all[0].channel, Some(Channel::Ftp));
    assert_eq!(all[0].actor, Actor::Operator);
    assert_eq!(all[5].key_id, None);
    assert_eq!(store.audit_events(a.id, 2).unwrap(), all[..2].to_vec());
    assert!(store.audit_events(a.id, 0).unwrap().is_empty());
    assert_eq!(store.audit_events(b.id, 100).unwrap().len(), 1);
    assert!(store.audit_events(ids.account(), 100).unwrap().is_empty());
}

/// A refused write records no audit event and changes nothing.
pub fn failed_writes_leave_no_trace(store: Arc<DynStore>) {
    let mut ids = Ids::new(14);
    let a = add_master(&*store, &mut ids);
    let k = record(ids.key(), a.id, Channel::Ftp, "only-one");
    insert(&*store, &k, 1).unwrap();
    let before = store.audit_events(a.id, 100).unwrap();
    let _ = insert(
        &*store,
        &record(ids.key(), a.id, Channel::Ftp, "second-ftp"),
        1,
    )
    .unwrap_err();
    let _ = insert(
        &*store,
        &record(ids.key(), a.id, Channel::Http, "ONLY-ONE"),
        1,
    )
    .unwrap_err();
    let mut stale = k.clone();
    stale.version = 2;
    let ev = event(a.id, Some(&k), AuditKind::CredentialsChanged, "nope");
    let _ = store.update_key(&stale, 7, &ev).unwrap_err();
    let _ = store.delete_key(ids.key(), &ev).unwrap_err();
    assert_eq!(store.audit_events(a.id, 100).unwrap(), before);
    assert_eq!(store.keys_of_account(a.id).unwrap(), vec![k]);
}

fn race<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let barrier = Barrier::new(n);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let (barrier, f) = (&barrier, &f);
                s.spawn(move || {
                    barrier.wait();
                    f(i)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Many threads create keys with one identifier (in various cases) for
/// different accounts at once: exactly one wins, every round.
pub fn race_same_identifier(store: Arc<DynStore>) {
    let mut ids = Ids::new(15);
    let accounts: Vec<Account> = (0..THREADS)
        .map(|_| add_master(&*store, &mut ids))
        .collect();
    for round in 0..ROUNDS {
        let keys: Vec<KeyRecord> = accounts
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let name = format!("race-{round}");
                let name = if i % 2 == 0 {
                    name.to_uppercase()
                } else {
                    name
                };
                record(ids.key(), a.id, Channel::Rest, &name)
            })
            .collect();
        let results = race(THREADS, |i| insert(&*store, &keys[i], 10));
        let wins = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(wins, 1, "round {round}: {results:?}");
        assert!(results.iter().all(
            |r| r.is_ok() || matches!(r, Err(StoreError::AlreadyExists(Existing::Identifier)))
        ));
        assert!(
            store
                .key_by_identifier(&format!("race-{round}"))
                .unwrap()
                .is_some()
        );
    }
}

/// Many threads create an FTP key for one account at once: exactly one
/// wins, every round.
pub fn race_same_channel(store: Arc<DynStore>) {
    let mut ids = Ids::new(16);
    for round in 0..ROUNDS {
        let a = add_master(&*store, &mut ids);
        let keys: Vec<KeyRecord> = (0..THREADS)
            .map(|i| record(ids.key(), a.id, Channel::Ftp, &format!("ftp-{round}-{i}")))
            .collect();
        let results = race(THREADS, |i| insert(&*store, &keys[i], 1));
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            1,
            "round {round}: {results:?}"
        );
        assert!(results.iter().all(|r| r.is_ok()
            || matches!(
                r,
                Err(StoreError::AlreadyExists(Existing::ChannelFull(
                    Channel::Ftp
                )))
            )));
        assert_eq!(store.keys_of_account(a.id).unwrap().len(), 1);
        assert_eq!(store.audit_events(a.id, 100).unwrap().len(), 2);
    }
}

/// Many threads create REST keys for one account at once with a limit of
/// three: exactly three win, every round.
pub fn race_rest_limit(store: Arc<DynStore>) {
    let mut ids = Ids::new(17);
    for round in 0..ROUNDS {
        let a = add_master(&*store, &mut ids);
        let keys: Vec<KeyRecord> = (0..THREADS)
            .map(|i| record(ids.key(), a.id, Channel::Rest, &format!("rest-{round}-{i}")))
            .collect();
        let results = race(THREADS, |i| insert(&*store, &keys[i], 3));
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            3,
            "round {round}: {results:?}"
        );
        assert_eq!(store.keys_of_account(a.id).unwrap().len(), 3);
    }
}

/// Many threads update one key from the same version at once: exactly one
/// wins, the others get `Conflict`, and one audit event is recorded.
pub fn race_compare_and_swap(store: Arc<DynStore>) {
    let mut ids = Ids::new(18);
    let a = add_master(&*store, &mut ids);
    let k = record(ids.key(), a.id, Channel::Http, "contended");
    insert(&*store, &k, 1).unwrap();
    for round in 0..ROUNDS as u64 {
        let version = round + 1;
        let results = race(THREADS, |i| {
            let mut next = k.clone();
            next.version = version + 1;
            next.secret_hash = hash(&format!("round-{round}-thread-{i}"));
            let ev = event(
                a.id,
                Some(&next),
                AuditKind::CredentialsChanged,
                &format!("r{round}t{i}"),
            );
            store.update_key(&next, version, &ev)
        });
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            1,
            "round {round}: {results:?}"
        );
        assert!(
            results
                .iter()
                .all(|r| r.is_ok() || matches!(r, Err(StoreError::Conflict { .. })))
        );
        assert_eq!(store.key(k.id).unwrap().unwrap().version, version + 1);
    }
    // account_opened + key_created + one per round.
    assert_eq!(store.audit_events(a.id, 1000).unwrap().len(), 2 + ROUNDS);
}

//! The storage conformance suite: one public function per behaviour, each
//! taking a fresh, empty store. Backends run it through
//! [`crate::store_conformance_tests!`]; these functions panic on failure, as
//! tests do.
//!
//! The first part exercises the [`Store`](crate::Store) contract directly; the second runs
//! the product's rules through the service on top of the store, so that a
//! backend proves it carries every rule of SPEC.md, not just the trait.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use super::records::{event, hash, key as record, master, opened};
use super::{Fixture, START};
use crate::account::{Account, AccountKind, Actor};
use crate::audit::AuditKind;
use crate::auth::SecretSlot;
use crate::auth::{AuthError, Refusal};
use crate::channel::{Channel, ChannelSet};
use crate::credentials::{IdentifierChoice, Secret, SecretChoice};
use crate::error::{Error, GraceError};
use crate::hashing::HashingPolicy;
use crate::id::{AccountId, KeyId};
use crate::key::{KeyRecord, PreviousSecret};
use crate::policy::{ActivationPolicy, Policy};
use crate::service::{CredentialChange, Grace, NewAccount, NewKey};
use crate::store::{DynStore, Entity, Existing, StoreError, StoreExt};
use crate::whitelist::Whitelist;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::net::IpAddr;
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

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
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

// ----- the product's rules through the service ---------------------------

fn op() -> Actor {
    Actor::Operator
}

fn any_ip() -> IpAddr {
    ip("198.51.100.1")
}

fn refusal(r: Result<crate::Authenticated, AuthError>) -> Refusal {
    match r {
        Err(AuthError::InvalidCredentials(reason)) => reason,
        other => panic!("expected invalid credentials, got {other:?}"),
    }
}

/// A master created before the cutover gets FTP, HTTP, Web Service and
/// Email keys with generated credentials that work, and their secrets once.
pub fn legacy_master_gets_default_keys(store: Arc<DynStore>) {
    let f = Fixture::new(store, 101);
    let cutover = ActivationPolicy::DEFAULT_CUTOVER;
    let opened = f
        .keys
        .open_account(
            op(),
            NewAccount::master().created_at(cutover - Duration::nanoseconds(1)),
        )
        .unwrap();
    let channels: Vec<Channel> = opened.issued.iter().map(|k| k.key.channel).collect();
    assert_eq!(
        channels,
        [
            Channel::Ftp,
            Channel::Http,
            Channel::WebService,
            Channel::Email
        ]
    );
    assert_eq!(
        f.keys.active_channels(op(), opened.account.id).unwrap(),
        ActivationPolicy::DEFAULT_LEGACY_CHANNELS
    );
    for issued in &opened.issued {
        let secret = issued
            .secret
            .as_ref()
            .expect("default keys come with their secret");
        let who = f
            .keys
            .authenticate(
                issued.key.channel,
                &issued.key.identifier,
                secret.expose_secret(),
                any_ip(),
            )
            .unwrap();
        assert_eq!(
            (who.account_id, who.key_id),
            (opened.account.id, issued.key.id)
        );
        assert!(uuid::Uuid::try_parse(&issued.key.identifier).is_ok());
    }
    let listed = f.keys.keys(op(), opened.account.id).unwrap();
    assert_eq!(listed.len(), 4);
    // Deleting a default key is allowed and final.
    f.keys.delete_key(op(), opened.issued[0].key.id).unwrap();
    assert_eq!(
        f.keys
            .active_channels(op(), opened.account.id)
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        f.keys.account(op(), opened.account.id).unwrap(),
        opened.account
    );
}

/// A master at or after the cutover, and every sub-account whatever its
/// date, starts with no channel.
pub fn new_accounts_get_nothing(store: Arc<DynStore>) {
    let f = Fixture::new(store, 102);
    let cutover = ActivationPolicy::DEFAULT_CUTOVER;
    let at_cutover = f
        .keys
        .open_account(op(), NewAccount::master().created_at(cutover))
        .unwrap();
    assert!(at_cutover.issued.is_empty());
    assert!(
        f.keys
            .active_channels(op(), at_cutover.account.id)
            .unwrap()
            .is_empty()
    );
    let parent = f
        .keys
        .open_account(
            op(),
            NewAccount::master().created_at(cutover - Duration::days(900)),
        )
        .unwrap();
    let sub = f
        .keys
        .open_account(
            op(),
            NewAccount::sub(parent.account.id).created_at(cutover - Duration::days(800)),
        )
        .unwrap();
    assert!(sub.issued.is_empty());
    assert!(f.keys.keys(op(), sub.account.id).unwrap().is_empty());
    // A sub-account cannot have sub-accounts; a ghost parent is not found.
    let err = f
        .keys
        .open_account(op(), NewAccount::sub(sub.account.id).created_at(START))
        .unwrap_err();
    assert!(matches!(err, Error::ParentNotMaster { .. }), "{err:?}");
    let ghost = AccountId::from_bytes([9; 16]);
    assert!(matches!(
        f.keys.open_account(op(), NewAccount::sub(ghost).created_at(START)),
        Err(Error::AccountNotFound(id)) if id == ghost
    ));
    // Creation instants are bounded to what every store keeps.
    use time::macros::datetime;
    for bad in [
        datetime!(1969-12-31 23:59:59.999999999 UTC),
        datetime!(2200-01-01 0:00 UTC),
        datetime!(9999-12-31 0:00 UTC),
    ] {
        let err = f
            .keys
            .open_account(op(), NewAccount::master().created_at(bad))
            .unwrap_err();
        assert!(
            matches!(err, Error::CreationOutOfRange(t) if t == bad),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .contains("from 1970-01-01T00:00:00Z to before 2200-01-01T00:00:00Z")
        );
    }
    for good in [
        datetime!(1970-01-01 0:00 UTC),
        datetime!(2199-12-31 23:59:59.999999999 UTC),
    ] {
        let opened = f
            .keys
            .open_account(op(), NewAccount::master().created_at(good))
            .unwrap();
        assert_eq!(
            f.keys.account(op(), opened.account.id).unwrap().created_at,
            good
        );
    }

    // Creation instants are kept in UTC.
    let offset = f
        .keys
        .open_account(
            op(),
            NewAccount::master().created_at(time::macros::datetime!(2024-01-01 0:00 +05:00)),
        )
        .unwrap();
    assert_eq!(
        offset.account.created_at,
        time::macros::datetime!(2023-12-31 19:00 UTC)
    );
    assert_eq!(offset.account.created_at.offset(), time::UtcOffset::UTC);
}

/// REST allows several labelled keys up to the policy's limit; every other
/// channel one key per account.
pub fn rest_several_others_one(store: Arc<DynStore>) {
    let f = Fixture::new(store, 103);
    let a = f.master();
    for i in 0..10 {
        let mut new = NewKey::generated(Channel::Rest);
        new.label = Some(format!("server {i}"));
        let k = f.keys.create_key(op(), a.id, new).unwrap();
        assert_eq!(k.key.label.as_deref(), Some(format!("server {i}").as_str()));
    }
    let err = f
        .keys
        .create_key(op(), a.id, NewKey::generated(Channel::Rest))
        .unwrap_err();
    assert!(
        matches!(err, Error::RestKeyLimit { limit: 10, .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "account {} already holds 10 REST keys, the most the policy allows",
            a.id
        )
    );
    f.keys
        .create_key(op(), a.id, NewKey::generated(Channel::Ftp))
        .unwrap();
    let err = f
        .keys
        .create_key(op(), a.id, NewKey::generated(Channel::Ftp))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::ChannelAlreadyActive {
                channel: Channel::Ftp,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("only REST allows several keys"));
    let mut bad_label = NewKey::generated(Channel::Rest);
    bad_label.label = Some("x".repeat(65));
    assert!(matches!(
        f.keys.create_key(op(), a.id, bad_label),
        Err(Error::InvalidCredential(_))
    ));
    assert!(matches!(
        f.keys.create_key(
            op(),
            AccountId::from_bytes([7; 16]),
            NewKey::generated(Channel::Ftp)
        ),
        Err(Error::AccountNotFound(_))
    ));
}

/// Generated and chosen credentials, chosen independently, authenticate on
/// their channel; identifiers are matched ignoring ASCII case; a sub-account's
/// key authenticates as the sub-account.
pub fn authenticate_generated_and_chosen(store: Arc<DynStore>) {
    let f = Fixture::new(store, 104);
    let m = f.master();
    let sub = f.sub(m.id);
    let chosen = NewKey::chosen(
        Channel::Ftp,
        "Acme-Uploads",
        Secret::new("correct-horse-battery"),
    );
    let k = f.keys.create_key(op(), sub.id, chosen).unwrap();
    assert!(k.secret.is_none(), "a chosen secret is never echoed back");
    for spelling in ["Acme-Uploads", "acme-uploads", "ACME-UPLOADS"] {
        let who = f
            .keys
            .authenticate(Channel::Ftp, spelling, "correct-horse-battery", any_ip())
            .unwrap();
        assert_eq!(
            (
                who.account_id,
                who.key_id,
                who.channel,
                who.matched == SecretSlot::Previous
            ),
            (sub.id, k.key.id, Channel::Ftp, false)
        );
    }
    // Generated identifier with chosen secret, chosen identifier with generated secret.
    let mixed = f
        .keys
        .create_key(
            op(),
            m.id,
            NewKey {
                channel: Channel::Http,
                identifier: IdentifierChoice::Generate,
                secret: SecretChoice::Chosen(Secret::new("another-Secret-99")),
                label: None,
            },
        )
        .unwrap();
    f.keys
        .authenticate(
            Channel::Http,
            &mixed.key.identifier,
            "another-Secret-99",
            any_ip(),
        )
        .unwrap();
    let mixed2 = f
        .keys
        .create_key(
            op(),
            m.id,
            NewKey {
                channel: Channel::Rest,
                identifier: IdentifierChoice::Chosen("acme-api".into()),
                secret: SecretChoice::Generate,
                label: None,
            },
        )
        .unwrap();
    let s = mixed2.secret.unwrap();
    assert!(s.expose_secret().starts_with("akey"));
    let who = f
        .keys
        .authenticate(
            Channel::Rest,
            "acme-api",
            s.expose_secret(),
            ip("2001:db8::5"),
        )
        .unwrap();
    assert_eq!(who.account_id, m.id);
    // A chosen identifier that is taken, in any case, is refused by name.
    let err = f
        .keys
        .create_key(
            op(),
            m.id,
            NewKey {
                channel: Channel::Email,
                identifier: IdentifierChoice::Chosen("ACME-API".into()),
                secret: SecretChoice::Generate,
                label: None,
            },
        )
        .unwrap_err();
    assert!(
        matches!(&err, Error::IdentifierTaken(i) if i == "ACME-API"),
        "{err:?}"
    );
    // A chosen secret must not contain the identifier.
    let err = f
        .keys
        .create_key(
            op(),
            m.id,
            NewKey::chosen(Channel::Email, "mailer", Secret::new("my-MAILER-secret")),
        )
        .unwrap_err();
    assert!(matches!(
        err,
        Error::InvalidCredential(crate::credentials::CredentialError::SecretContainsIdentifier)
    ));
}

/// Unknown identifier, wrong secret, another channel's credentials, a deleted
/// key, a mistyped generated secret: the same refusal, with the precise
/// reason only in `reason()`.
pub fn authenticate_refusals_are_uniform(store: Arc<DynStore>) {
    let f = Fixture::new(store, 105);
    let a = f.master();
    let k = f
        .keys
        .create_key(op(), a.id, NewKey::generated(Channel::Rest))
        .unwrap();
    let secret = k.secret.unwrap();
    let s = secret.expose_secret();
    let id = k.key.identifier.as_str();

    let mut typo = s.as_bytes().to_vec();
    typo[8] = if typo[8] == b'x' { b'y' } else { b'x' };
    let typo = String::from_utf8(typo).unwrap();
    let other = crate::credentials::generate_secret(&mut ChaCha20Rng::seed_from_u64(5));
    let cases = [
        (
            f.keys
                .authenticate(Channel::Rest, "nobody-here", s, any_ip()),
            Refusal::UnknownIdentifier,
        ),
        (
            f.keys
                .authenticate(Channel::Rest, id, other.expose_secret(), any_ip()),
            Refusal::WrongSecret,
        ),
        (
            f.keys
                .authenticate(Channel::Rest, id, "not-the-secret!", any_ip()),
            Refusal::WrongSecret,
        ),
        (
            f.keys.authenticate(Channel::Rest, id, &typo, any_ip()),
            Refusal::MalformedSecret,
        ),
        (
            f.keys.authenticate(Channel::Http, id, s, any_ip()),
            Refusal::WrongChannel {
                key_channel: Channel::Rest,
            },
        ),
        (
            f.keys.authenticate(Channel::Rest, id, "", any_ip()),
            Refusal::WrongSecret,
        ),
        (
            f.keys.authenticate(Channel::Rest, "", s, any_ip()),
            Refusal::UnknownIdentifier,
        ),
        (
            f.keys
                .authenticate(Channel::Rest, &"a".repeat(10_000), s, any_ip()),
            Refusal::UnknownIdentifier,
        ),
        (
            f.keys
                .authenticate(Channel::Rest, id, &"a".repeat(100_000), any_ip()),
            Refusal::MalformedSecret,
        ),
    ];
    for (result, reason) in cases {
        let err = result.unwrap_err();
        assert_eq!(err.to_string(), "invalid credentials");
        assert_eq!(err.code(), "invalid_credentials");
        assert_eq!(err.reason(), Some(reason));
    }
    f.keys.delete_key(op(), k.key.id).unwrap();
    assert_eq!(
        refusal(f.keys.authenticate(Channel::Rest, id, s, any_ip())),
        Refusal::UnknownIdentifier
    );
}

/// After a credential change commits, the old secret and the old identifier
/// fail at once, and the new ones work.
pub fn rotation_stops_old_credentials_at_once(store: Arc<DynStore>) {
    let f = Fixture::new(store, 106);
    let a = f.master();
    let k = f
        .keys
        .create_key(op(), a.id, NewKey::generated(Channel::Http))
        .unwrap();
    let old = k.secret.unwrap();
    let id = k.key.identifier.clone();

    let changed = f
        .keys
        .change_credentials(op(), k.key.id, CredentialChange::regenerate_secret())
        .unwrap();
    let new = changed.secret.unwrap();
    assert_ne!(new, old);
    assert_eq!(changed.key.version, 2);
    assert_eq!(
        refusal(
            f.keys
                .authenticate(Channel::Http, &id, old.expose_secret(), any_ip())
        ),
        Refusal::WrongSecret
    );
    f.keys
        .authenticate(Channel::Http, &id, new.expose_secret(), any_ip())
        .unwrap();

    // Chosen secret and identifier together.
    let changed = f
        .keys
        .change_credentials(
            op(),
            k.key.id,
            CredentialChange {
                identifier: Some(IdentifierChoice::Chosen("renamed-user".into())),
                secret: Some(SecretChoice::Chosen(Secret::new("a-brand-new-secret"))),
                grace: None,
            },
        )
        .unwrap();
    assert!(changed.secret.is_none());
    assert_eq!(changed.key.identifier, "renamed-user");
    assert_eq!(
        refusal(
            f.keys
                .authenticate(Channel::Http, &id, "a-brand-new-secret", any_ip())
        ),
        Refusal::UnknownIdentifier
    );
    assert_eq!(
        refusal(
            f.keys
                .authenticate(Channel::Http, "renamed-user", new.expose_secret(), any_ip())
        ),
        Refusal::WrongSecret
    );
    f.keys
        .authenticate(
            Channel::Http,
            "renamed-user",
            "a-brand-new-secret",
            any_ip(),
        )
        .unwrap();

    // Identifier alone: the secret stays.
    f.keys
        .change_credentials(
            op(),
            k.key.id,
            CredentialChange {
                identifier: Some(IdentifierChoice::Generate),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        refusal(f.keys.authenticate(
            Channel::Http,
            "renamed-user",
            "a-brand-new-secret",
            any_ip()
        )),
        Refusal::UnknownIdentifier
    );
    let now = f.keys.key(op(), k.key.id).unwrap();
    f.keys
        .authenticate(
            Channel::Http,
            &now.identifier,
            "a-brand-new-secret",
            any_ip(),
        )
        .unwrap();

    // Bad changes are refused and change nothing.
    assert!(matches!(
        f.keys
            .change_credentials(op(), k.key.id, CredentialChange::default()),
        Err(Error::NothingToChange)
    ));
    let err = f
        .keys
        .change_credentials(
            op(),
            k.key.id,
            CredentialChange {
                secret: Some(SecretChoice::Chosen(Secret::new("short"))),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "secret is 5 characters long: it must have 12 to 128"
    );
    assert!(matches!(
        f.keys.change_credentials(
            op(),
            KeyId::from_bytes([3; 16]),
            CredentialChange::regenerate_secret()
        ),
        Err(Error::KeyNotFound(_))
    ));
    assert_eq!(f.keys.key(op(), k.key.id).unwrap(), now);
}

/// With a grace period the previous secret works until the expiry and not
/// from it on; a second change ends any grace still running; grace needs a
/// secret change and a bounded, future expiry.
pub fn grace_period(store: Arc<DynStore>) {
    let f = Fixture::new(store, 107);
    let a = f.master();
    let k = f
        .keys
        .create_key(op(), a.id, NewKey::generated(Channel::Rest))
        .unwrap();
    let id = k.key.identifier.clone();
    let first = k.secret.unwrap();
    let until = START + Duration::hours(1);
    let changed = f
        .keys
        .change_credentials(
            op(),
            k.key.id,
            CredentialChange::regenerate_secret().with_grace(Grace::Until(until)),
        )
        .unwrap();
    assert_eq!(changed.key.grace_until, Some(until));
    let second = changed.secret.unwrap();
    let who = f
        .keys
        .authenticate(Channel::Rest, &id, first.expose_secret(), any_ip())
        .unwrap();
    assert!(who.matched == SecretSlot::Previous);
    assert_eq!(
        f.keys
            .authenticate(Channel::Rest, &id, second.expose_secret(), any_ip())
            .unwrap()
            .matched,
        SecretSlot::Current
    );
    f.clock.set(until - Duration::nanoseconds(1));
    f.keys
        .authenticate(Channel::Rest, &id, first.expose_secret(), any_ip())
        .unwrap();
    f.clock.set(until);
    assert_eq!(
        refusal(
            f.keys
                .authenticate(Channel::Rest, &id, first.expose_secret(), any_ip())
        ),
        Refusal::GraceExpired
    );
    f.keys
        .authenticate(Channel::Rest, &id, second.expose_secret(), any_ip())
        .unwrap();

    // A second change ends the grace of the first.
    f.clock.set(START);
    let third = f
        .keys
        .change_credentials(
            op(),
            k.key.id,
            CredentialChange::regenerate_secret().with_grace(Grace::Until(until)),
        )
        .unwrap()
        .secret
        .unwrap();
    f.keys
        .authenticate(Channel::Rest, &id, second.expose_secret(), any_ip())
        .unwrap();
    let fourth = f
        .keys
        .change_credentials(op(), k.key.id, CredentialChange::regenerate_secret())
        .unwrap();
    assert_eq!(fourth.key.grace_until, None);
    assert_eq!(
        refusal(
            f.keys
                .authenticate(Channel::Rest, &id, second.expose_secret(), any_ip())
        ),
        Refusal::WrongSecret
    );
    assert_eq!(
        refusal(
            f.keys
                .authenticate(Channel::Rest, &id, third.expose_secret(), any_ip())
        ),
        Refusal::WrongSecret
    );

    // Grace with an identifier change: the old identifier fails at once.
    let fifth_secret = fourth.secret.unwrap();
    f.keys
        .change_credentials(
            op(),
            k.key.id,
            CredentialChange {
                identifier: Some(IdentifierChoice::Chosen("graceful".into())),
                secret: Some(SecretChoice::Generate),
                grace: Some(Grace::Until(until)),
            },
        )
        .unwrap();
    assert_eq!(
        refusal(
            f.keys
                .authenticate(Channel::Rest, &id, fifth_secret.expose_secret(), any_ip())
        ),
        Refusal::UnknownIdentifier
    );
    assert!(
        f.keys
            .authenticate(
                Channel::Rest,
                "graceful",
                fifth_secret.expose_secret(),
                any_ip()
            )
            .unwrap()
            .matched
            == SecretSlot::Previous
    );

    // Bad grace requests.
    let bad = |change: CredentialChange| {
        f.keys
            .change_credentials(op(), k.key.id, change)
            .unwrap_err()
    };
    let e = bad(CredentialChange {
        identifier: Some(IdentifierChoice::Generate),
        grace: Some(Grace::Until(until)),
        ..Default::default()
    });
    assert!(
        matches!(e, Error::InvalidGrace(GraceError::NoSecretChange)),
        "{e:?}"
    );
    let e = bad(CredentialChange::regenerate_secret().with_grace(Grace::Until(START)));
    assert!(
        matches!(e, Error::InvalidGrace(GraceError::NotInFuture { .. })),
        "{e:?}"
    );
    let e = bad(CredentialChange {
        secret: Some(SecretChoice::Generate),
        grace: Some(Grace::Until(START + Duration::days(31))),
        ..Default::default()
    });
    assert!(
        matches!(
            e,
            Error::InvalidGrace(GraceError::TooLong {
                max_seconds: 2_592_000,
                ..
            })
        ),
        "{e:?}"
    );
}

/// A whitelist refuses right credentials from outside its entries (IPv4,
/// IPv6, IPv4-mapped IPv6), is returned normalised, and can be replaced,
/// extended and shrunk.
pub fn whitelist_enforced(store: Arc<DynStore>) {
    let f = Fixture::new(store, 108);
    let a = f.master();
    let k = f
        .keys
        .create_key(op(), a.id, NewKey::generated(Channel::Rest))
        .unwrap();
    let s = k.secret.unwrap();
    let auth = |addr: &str| {
        f.keys.authenticate(
            Channel::Rest,
            &k.key.identifier,
            s.expose_secret(),
            ip(addr),
        )
    };

    let got = f
        .keys
        .set_whitelist(op(), k.key.id, wl(&["203.0.113.9/24", "2001:db8::1"]))
        .unwrap();
    let shown: Vec<String> = got.entries().iter().map(|e| e.to_string()).collect();
    assert_eq!(shown, ["203.0.113.0/24", "2001:db8::1/128"]);
    assert_eq!(f.keys.whitelist(op(), k.key.id).unwrap(), got);
    auth("203.0.113.200").unwrap();
    auth("::ffff:203.0.113.200").unwrap();
    auth("2001:db8::1").unwrap();
    for outside in ["198.51.100.1", "2001:db8::2", "::ffff:198.51.100.1"] {
        let err = auth(outside).unwrap_err();
        assert!(
            matches!(err, AuthError::AddressNotAllowed { client, .. } if client == ip(outside)),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "address not allowed");
    }
    // Wrong credentials from outside are still "invalid credentials".
    let err = f
        .keys
        .authenticate(
            Channel::Rest,
            &k.key.identifier,
            "wrong-secret-1",
            ip("198.51.100.1"),
        )
        .unwrap_err();
    assert_eq!(err.code(), "invalid_credentials");

    f.keys
        .add_to_whitelist(op(), k.key.id, wl(&["198.51.100.0/24"]))
        .unwrap();
    auth("198.51.100.1").unwrap();
    f.keys
        .remove_from_whitelist(op(), k.key.id, wl(&["203.0.113.0/24"]))
        .unwrap();
    assert!(auth("203.0.113.200").is_err());
    let e = f
        .keys
        .explain_address(op(), k.key.id, ip("198.51.100.77"))
        .unwrap();
    assert!(e.allowed && e.matched == Some("198.51.100.0/24".parse().unwrap()));

    let too_many: Vec<ipnet::IpNet> = (0..101u32)
        .map(|i| ipnet::IpNet::from(IpAddr::from(std::net::Ipv4Addr::from(i))))
        .collect();
    let err = f.keys.set_whitelist(op(), k.key.id, too_many).unwrap_err();
    assert_eq!(
        err.to_string(),
        "whitelist has 101 entries after normalisation: at most 100 are allowed"
    );
    assert_eq!(
        f.keys.whitelist(op(), k.key.id).unwrap().entries().len(),
        2,
        "a refused change changes nothing"
    );

    f.keys.set_whitelist(op(), k.key.id, Vec::new()).unwrap();
    auth("192.0.2.1").unwrap();
}

/// The operator may do anything; an account its own keys; a master its
/// sub-accounts' keys; siblings and a sub-account acting on its master are
/// refused with `Forbidden`.
pub fn who_may_act(store: Arc<DynStore>) {
    let f = Fixture::new(store, 109);
    let m = f.master();
    let stranger = f.master();
    let s1 = f
        .keys
        .open_account(
            Actor::Account(m.id),
            NewAccount::sub(m.id).created_at(START),
        )
        .unwrap()
        .account;
    let s2 = f.sub(m.id);
    // What an account may not see is "not found", like what does not exist.
    let forbidden = |r: Result<(), Error>| {
        assert!(
            matches!(
                r,
                Err(Error::AccountNotFound(_) | Error::KeyNotFound(_) | Error::Forbidden { .. })
            ),
            "{r:?}"
        )
    };

    // Opening accounts.
    forbidden(
        f.keys
            .open_account(Actor::Account(m.id), NewAccount::master().created_at(START))
            .map(|_| ()),
    );
    forbidden(
        f.keys
            .open_account(
                Actor::Account(stranger.id),
                NewAccount::sub(m.id).created_at(START),
            )
            .map(|_| ()),
    );
    forbidden(
        f.keys
            .open_account(
                Actor::Account(s1.id),
                NewAccount::sub(m.id).created_at(START),
            )
            .map(|_| ()),
    );

    let master_key = f
        .keys
        .create_key(Actor::Account(m.id), m.id, NewKey::generated(Channel::Ftp))
        .unwrap()
        .key;
    let s1_key = f
        .keys
        .create_key(Actor::Account(m.id), s1.id, NewKey::generated(Channel::Ftp))
        .unwrap()
        .key;
    let s2_key = f
        .keys
        .create_key(
            Actor::Account(s2.id),
            s2.id,
            NewKey::generated(Channel::Ftp),
        )
        .unwrap()
        .key;

    let sib = Actor::Account(s1.id);
    forbidden(
        f.keys
            .create_key(sib, s2.id, NewKey::generated(Channel::Rest))
            .map(|_| ()),
    );
    forbidden(f.keys.keys(sib, s2.id).map(|_| ()));
    forbidden(f.keys.key(sib, s2_key.id).map(|_| ()));
    forbidden(f.keys.delete_key(sib, s2_key.id));
    forbidden(f.keys.set_whitelist(sib, s2_key.id, Vec::new()).map(|_| ()));
    forbidden(
        f.keys
            .change_credentials(sib, s2_key.id, CredentialChange::regenerate_secret())
            .map(|_| ()),
    );
    forbidden(f.keys.audit(sib, s2.id, 10).map(|_| ()));
    // A sub-account on its master.
    forbidden(f.keys.keys(sib, m.id).map(|_| ()));
    forbidden(f.keys.delete_key(sib, master_key.id));
    forbidden(f.keys.account(sib, m.id).map(|_| ()));
    // A stranger on a master and its sub.
    let st = Actor::Account(stranger.id);
    forbidden(f.keys.keys(st, m.id).map(|_| ()));
    forbidden(f.keys.delete_key(st, s1_key.id));

    // What is allowed.
    assert_eq!(f.keys.keys(sib, s1.id).unwrap(), vec![s1_key.clone()]);
    assert_eq!(
        f.keys.keys(Actor::Account(m.id), s2.id).unwrap(),
        vec![s2_key.clone()]
    );
    f.keys
        .set_whitelist(Actor::Account(m.id), s2_key.id, wl(&["10.0.0.0/8"]))
        .unwrap();
    f.keys.delete_key(Actor::Account(m.id), s1_key.id).unwrap();
    f.keys.delete_key(op(), s2_key.id).unwrap();
    let err = f.keys.delete_key(sib, s2_key.id).unwrap_err();
    assert!(matches!(err, Error::KeyNotFound(_)));
    assert!(err.to_string().starts_with("key key_"));
}

/// Every change is in the audit trail of its account, newest first, with
/// key, channel, kind and actor, and never a secret.
pub fn audit_trail_of_every_change(store: Arc<DynStore>) {
    let f = Fixture::new(store, 110);
    let m = f.master();
    let sub = f.sub(m.id);
    let actor = Actor::Account(m.id);
    let k = f
        .keys
        .create_key(
            actor,
            sub.id,
            NewKey {
                channel: Channel::Email,
                identifier: IdentifierChoice::Chosen("audited-mailer".into()),
                secret: SecretChoice::Chosen(Secret::new("first-chosen-secret")),
                label: Some("mail gateway".into()),
            },
        )
        .unwrap();
    f.clock.advance(Duration::seconds(1));
    let regenerated = f
        .keys
        .change_credentials(actor, k.key.id, CredentialChange::regenerate_secret())
        .unwrap()
        .secret
        .unwrap();
    f.clock.advance(Duration::seconds(1));
    f.keys
        .set_whitelist(actor, k.key.id, wl(&["192.0.2.0/24"]))
        .unwrap();
    f.clock.advance(Duration::seconds(1));
    f.keys.delete_key(Actor::Account(sub.id), k.key.id).unwrap();

    let events = f.keys.audit(op(), sub.id, 100).unwrap();
    let kinds: Vec<AuditKind> = events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            AuditKind::KeyDeleted,
            AuditKind::WhitelistChanged,
            AuditKind::CredentialsChanged,
            AuditKind::KeyCreated,
            AuditKind::AccountOpened
        ]
    );
    assert!(events.windows(2).all(|w| w[0].at >= w[1].at));
    for e in &events[..4] {
        assert_eq!(
            (e.account_id, e.key_id, e.channel),
            (sub.id, Some(k.key.id), Some(Channel::Email))
        );
    }
    assert_eq!(events[0].actor, Actor::Account(sub.id));
    assert_eq!(events[1].actor, actor);
    assert_eq!(events[4].actor, op());
    let all = format!("{events:?}");
    assert!(!all.contains("first-chosen-secret") && !all.contains(regenerated.expose_secret()));
    assert!(
        f.keys
            .audit(op(), m.id, 100)
            .unwrap()
            .iter()
            .all(|e| e.account_id == m.id)
    );
}

/// A chosen secret hashed under weaker parameters than the policy is rehashed
/// at the next successful check, and still works afterwards.
pub fn rehash_on_verify(store: Arc<DynStore>) {
    let weak = Fixture::new(store.clone(), 111);
    let a = weak
        .keys
        .open_account(op(), NewAccount::master().created_at(START))
        .unwrap()
        .account;
    let new = NewKey::chosen(
        Channel::WebService,
        "soap-client",
        Secret::new("soap-secret-123"),
    );
    let k = weak.keys.create_key(op(), a.id, new).unwrap();
    let before = store.key(k.key.id).unwrap().unwrap().secret_hash;
    assert!(
        before.as_str().starts_with("$argon2id$v=19$m=64,t=1,p=1$"),
        "{}",
        before.as_str()
    );

    let stronger = Policy {
        hashing: HashingPolicy {
            m_kib: 128,
            t: 2,
            p: 1,
        },
        ..Policy::fast_for_tests()
    };
    let strong = Fixture::with_policy(store.clone(), 112, stronger);
    // A wrong secret upgrades nothing.
    let _ = strong
        .keys
        .authenticate(
            Channel::WebService,
            "soap-client",
            "wrong-secret-123",
            any_ip(),
        )
        .unwrap_err();
    assert_eq!(store.key(k.key.id).unwrap().unwrap().secret_hash, before);
    strong
        .keys
        .authenticate(
            Channel::WebService,
            "soap-client",
            "soap-secret-123",
            any_ip(),
        )
        .unwrap();
    let after = store.key(k.key.id).unwrap().unwrap();
    assert!(
        after
            .secret_hash
            .as_str()
            .starts_with("$argon2id$v=19$m=128,t=2,p=1$"),
        "{}",
        after.secret_hash.as_str()
    );
    assert_eq!(
        after.version, k.key.version,
        "an upgrade is not a change of credentials"
    );
    strong
        .keys
        .authenticate(
            Channel::WebService,
            "soap-client",
            "soap-secret-123",
            any_ip(),
        )
        .unwrap();
    weak.keys
        .authenticate(
            Channel::WebService,
            "soap-client",
            "soap-secret-123",
            any_ip(),
        )
        .unwrap();
}

/// No secret, chosen or generated, appears in any stored record or event.
pub fn no_secret_is_ever_stored(store: Arc<DynStore>) {
    let f = Fixture::new(store.clone(), 113);
    let opened = f
        .keys
        .open_account(
            op(),
            NewAccount::master().created_at(START - Duration::days(2000)),
        )
        .unwrap();
    let mut secrets: Vec<String> = opened
        .issued
        .iter()
        .map(|k| k.secret.as_ref().unwrap().expose_secret().to_string())
        .collect();
    let chosen = f
        .keys
        .create_key(
            op(),
            opened.account.id,
            NewKey::chosen(
                Channel::Rest,
                "plain-check",
                Secret::new("Chosen-Secret-Value"),
            ),
        )
        .unwrap();
    secrets.push("Chosen-Secret-Value".into());
    let rotated = f
        .keys
        .change_credentials(
            op(),
            chosen.key.id,
            CredentialChange {
                secret: Some(SecretChoice::Generate),
                grace: Some(Grace::Until(START + Duration::hours(1))),
                ..Default::default()
            },
        )
        .unwrap();
    secrets.push(rotated.secret.as_ref().unwrap().expose_secret().to_string());

    let mut dump = String::new();
    for k in store.keys_of_account(opened.account.id).unwrap() {
        dump.push_str(&format!(
            "{} {} {:?} {:?} {k:?}",
            k.identifier,
            k.secret_hash.as_str(),
            k.previous_secret.as_ref().map(|p| p.hash.as_str()),
            k.label,
        ));
    }
    dump.push_str(&format!(
        "{:?}",
        store.audit_events(opened.account.id, 1000).unwrap()
    ));
    for s in &secrets {
        assert!(
            !dump.contains(s.as_str()),
            "a secret was stored in plain text"
        );
    }
    assert!(
        !format!("{rotated:?}").contains("akey"),
        "Debug of an issued key hides the secret"
    );
}

/// The verified-secret cache answers repeated checks of a chosen secret
/// without argon2, but never outlives a change: a whitelist change, a
/// rotation, a grace expiry or a deletion made through another service on
/// the same store (another process, say) takes effect on the very next check.
pub fn verified_cache_never_outlives_a_change(store: Arc<DynStore>) {
    let here = Fixture::new(store.clone(), 120);
    let elsewhere = Fixture::new(store.clone(), 121);
    let account = here.master();
    let key = here
        .keys
        .create_key(
            op(),
            account.id,
            NewKey::chosen(Channel::Ftp, "cached-ftp", Secret::new("cached-secret-1")),
        )
        .unwrap()
        .key;
    let auth = |secret: &str, from: IpAddr| {
        here.keys
            .authenticate(Channel::Ftp, "cached-ftp", secret, from)
    };
    let stats = || here.keys.check_stats();

    auth("cached-secret-1", any_ip()).unwrap();
    assert_eq!((stats().argon2, stats().cached), (1, 0));
    auth("cached-secret-1", any_ip()).unwrap();
    assert_eq!(
        (stats().argon2, stats().cached),
        (1, 1),
        "the second check is cached"
    );
    assert_eq!(
        refusal(auth("cached-secret-2", any_ip())),
        Refusal::WrongSecret
    );
    assert_eq!(stats().argon2, 2, "a wrong secret always costs argon2");

    // A whitelist change elsewhere: the next check verifies again, and the
    // new whitelist applies at once.
    elsewhere
        .keys
        .set_whitelist(op(), key.id, wl(&["198.51.100.0/24"]))
        .unwrap();
    let err = auth("cached-secret-1", ip("203.0.113.1")).unwrap_err();
    assert!(
        matches!(err, AuthError::AddressNotAllowed { .. }),
        "{err:?}"
    );
    assert_eq!(stats().argon2, 3, "a new version is a cache miss");
    auth("cached-secret-1", any_ip()).unwrap();

    // A rotation elsewhere: the old secret fails on the very next check.
    elsewhere
        .keys
        .change_credentials(
            op(),
            key.id,
            CredentialChange {
                secret: Some(SecretChoice::Chosen(Secret::new("cached-secret-3"))),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        refusal(auth("cached-secret-1", any_ip())),
        Refusal::WrongSecret
    );
    auth("cached-secret-3", any_ip()).unwrap();
    auth("cached-secret-3", any_ip()).unwrap();

    // Grace: the previous secret may be cached too, but its expiry is read
    // from the fresh record every time.
    let until = START + Duration::hours(1);
    elsewhere
        .keys
        .change_credentials(
            op(),
            key.id,
            CredentialChange {
                secret: Some(SecretChoice::Chosen(Secret::new("cached-secret-4"))),
                ..Default::default()
            }
            .with_grace(Grace::Until(until)),
        )
        .unwrap();
    assert!(auth("cached-secret-3", any_ip()).unwrap().matched == SecretSlot::Previous);
    let before = stats();
    assert!(auth("cached-secret-3", any_ip()).unwrap().matched == SecretSlot::Previous);
    assert_eq!(stats().cached, before.cached + 1);
    here.clock.set(until);
    assert_eq!(
        refusal(auth("cached-secret-3", any_ip())),
        Refusal::GraceExpired
    );
    auth("cached-secret-4", any_ip()).unwrap();
    auth("cached-secret-4", any_ip()).unwrap();

    // A deletion elsewhere: refused on the very next check.
    elsewhere.keys.delete_key(op(), key.id).unwrap();
    assert_eq!(
        refusal(auth("cached-secret-4", any_ip())),
        Refusal::UnknownIdentifier
    );

    // The cache can be turned off.
    let off = Fixture::with_policy(
        store,
        122,
        Policy {
            verified_cache_capacity: 0,
            ..Policy::fast_for_tests()
        },
    );
    let account = off.master();
    off.keys
        .create_key(
            op(),
            account.id,
            NewKey::chosen(
                Channel::Http,
                "no-cache-http",
                Secret::new("uncached-secret"),
            ),
        )
        .unwrap();
    for _ in 0..3 {
        off.keys
            .authenticate(Channel::Http, "no-cache-http", "uncached-secret", any_ip())
            .unwrap();
    }
    assert_eq!(
        (off.keys.check_stats().argon2, off.keys.check_stats().cached),
        (3, 0)
    );
}

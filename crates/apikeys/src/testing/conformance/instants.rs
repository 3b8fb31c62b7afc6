//! Instants and versions: kept exactly, to the nanosecond, across the whole
//! range (1677-09-21 to 2262-04-11), on every kind of record, and read back
//! in UTC; anything outside the range is `Unstorable`, and nothing of the
//! write is kept.

use super::support::*;
use crate::account::Account;
use crate::audit::{AuditEvent, AuditKind};
use crate::channel::Channel;
use crate::key::{KeyRecord, PreviousSecret};
use crate::store::DynStore;
use crate::testing::records::{event, hash, key as record, master, opened};
use std::sync::Arc;
use time::{Duration, OffsetDateTime, UtcOffset};

/// The instants every store must keep exactly: both ends of the range and
/// their neighbours, both sides of 1970, sub-microsecond digits.
fn keepable() -> Vec<OffsetDateTime> {
    let epoch = OffsetDateTime::UNIX_EPOCH;
    vec![
        EARLIEST,
        EARLIEST + Duration::nanoseconds(1),
        epoch - Duration::nanoseconds(1),
        epoch,
        epoch + Duration::nanoseconds(1),
        time::macros::datetime!(2025-06-01 12:34:56.123456789 UTC),
        time::macros::datetime!(1999-12-31 23:59:59.999999999 UTC),
        time::macros::datetime!(2199-12-31 23:59:59.999999999 UTC),
        LATEST - Duration::nanoseconds(1),
        LATEST,
    ]
}

/// The same instant seen from another offset (it must read back in UTC).
fn elsewhere(t: OffsetDateTime, hours: i8) -> OffsetDateTime {
    // At the ends of the range an offset may not be representable: keep UTC.
    UtcOffset::from_hms(hours, 0, 0)
        .ok()
        .and_then(|o| t.checked_to_offset(o))
        .unwrap_or(t)
}

/// `got` is `expected` to the nanosecond, in UTC.
#[track_caller]
fn exact(got: OffsetDateTime, expected: OffsetDateTime, what: &str) {
    holds(
        got == expected && got.offset() == UtcOffset::UTC,
        &format!("instants are kept to the nanosecond and read back in UTC ({what})"),
        got,
        &format!("{expected} in UTC"),
    );
}

/// Every kind of instant (an account's creation, a key's creation, last
/// change and grace expiry, an audit event's instant) reads back to the
/// nanosecond, in UTC, from one end of the range to the other, whatever the
/// offset it was written in, through every write that stores it.
pub fn instants_keep_every_nanosecond(store: Arc<DynStore>) {
    let mut ids = Ids::new(41);
    let times = keepable();
    for (i, t) in times.iter().copied().enumerate() {
        let given = elsewhere(t, if i % 2 == 0 { 5 } else { -3 });
        let other = times[times.len() - 1 - i];
        // An account, with an initial key, and their events.
        let a = Account {
            created_at: given,
            ..master(ids.account())
        };
        let mut k = record(ids.key(), a.id, Channel::Ftp, &format!("instant-{i}"));
        k.created_at = given;
        k.changed_at = elsewhere(other, 2);
        k.previous_secret = Some(PreviousSecret {
            hash: hash("previous"),
            expires_at: given,
        });
        let opening = AuditEvent {
            at: given,
            ..opened(&a)
        };
        let key_event = AuditEvent {
            at: elsewhere(other, -1),
            ..event(a.id, Some(&k), AuditKind::KeyCreated, "initial")
        };
        ok(
            store.create_account(&a, std::slice::from_ref(&k), &[opening, key_event]),
            &format!("an account created at {t} (within the range) is stored"),
        );
        let got = present(
            ok(store.account(a.id), "account succeeds"),
            "a stored account reads back",
        );
        exact(got.created_at, t, "account created_at");
        let got = present(
            ok(store.key(k.id), "key succeeds"),
            "a stored key reads back",
        );
        exact(got.created_at, t, "key created_at, initial key");
        exact(got.changed_at, other, "key changed_at, initial key");
        exact(
            present(got.previous_secret, "a previous secret reads back").expires_at,
            t,
            "key previous expiry, initial key",
        );

        // A key inserted on its own, then changed.
        let mut r = record(ids.key(), a.id, Channel::Rest, &format!("instant-rest-{i}"));
        r.created_at = elsewhere(other, 1);
        r.changed_at = given;
        let inserted = AuditEvent {
            at: given,
            ..created_event(&r)
        };
        ok(
            store.insert_key(&r, 10, &inserted),
            "a valid new key is stored",
        );
        let got = present(
            ok(store.key(r.id), "key succeeds"),
            "a stored key reads back",
        );
        exact(got.created_at, other, "key created_at, insert_key");
        exact(got.changed_at, t, "key changed_at, insert_key");
        let mut v2 = next(&r, "v2");
        v2.changed_at = elsewhere(other, 4);
        v2.previous_secret = Some(PreviousSecret {
            hash: r.secret_hash.clone(),
            expires_at: elsewhere(t, -7),
        });
        let changed = AuditEvent {
            at: elsewhere(other, -2),
            ..about(&v2, AuditKind::CredentialsChanged, "changed")
        };
        ok(
            store.update_key(&v2, 1, &changed),
            "an update from the stored version is applied",
        );
        let got = present(
            ok(
                store.key_by_identifier(&r.identifier),
                "key_by_identifier succeeds",
            ),
            "a stored key is found by its identifier",
        );
        exact(got.created_at, other, "key created_at after update_key");
        exact(got.changed_at, other, "key changed_at, update_key");
        exact(
            present(got.previous_secret, "a previous secret reads back").expires_at,
            t,
            "key previous expiry, update_key",
        );
        let listed = ok(store.keys_of_account(a.id), "keys_of_account succeeds");
        holds(
            listed.iter().all(key_in_utc),
            "instants read back in UTC (keys_of_account)",
            &listed,
            "every instant in UTC",
        );
        let deleted = AuditEvent {
            at: elsewhere(t, 3),
            ..about(&v2, AuditKind::KeyDeleted, "deleted")
        };
        ok(
            store.delete_key(r.id, None, &deleted),
            "a stored key can be deleted",
        );

        let trail = ok(store.audit_events(a.id, 10), "audit_events succeeds");
        let at_of = |detail: &str| {
            present(
                trail.iter().find(|e| e.detail == detail).map(|e| e.at),
                &format!("the event {detail:?} of a write that succeeded is recorded"),
            )
        };
        exact(at_of("opened"), t, "audit at, create_account");
        exact(
            at_of("initial"),
            other,
            "audit at, create_account initial key",
        );
        exact(at_of("created"), t, "audit at, insert_key");
        exact(at_of("changed"), other, "audit at, update_key");
        exact(at_of("deleted"), t, "audit at, delete_key");
    }
}

/// The writes that can hold an out-of-range instant: each builds an
/// otherwise valid write around the instant `t` in one field, names the
/// field, and runs it.
type Write<'a> = Box<dyn Fn(&DynStore, OffsetDateTime) -> Result<(), crate::StoreError> + 'a>;

/// Every instant field of every write refuses an instant outside the range
/// (one nanosecond past either end, and far beyond) with a backend error
/// whose source is `Unstorable::Instant` naming it, and nothing of the
/// write is kept.
pub fn instants_outside_the_range_are_unstorable(store: Arc<DynStore>) {
    let mut ids = Ids::new(42);
    let a = add_master(&*store, &mut ids);
    let held = add_key(&*store, &mut ids, a.id, Channel::Http, "held");
    let fresh = master(ids.account());
    let newkey = record(ids.key(), a.id, Channel::Rest, "unstorable");
    let initial = record(ids.key(), fresh.id, Channel::Ftp, "unstorable-initial");
    let mut watch = Watch::default();
    watch
        .account(&a)
        .account(&fresh)
        .key(&held)
        .key(&newkey)
        .key(&initial);

    let with_key = |k: &KeyRecord, f: &dyn Fn(&mut KeyRecord, OffsetDateTime), t| {
        let mut k = k.clone();
        f(&mut k, t);
        k
    };
    let created: &dyn Fn(&mut KeyRecord, OffsetDateTime) = &|k, t| k.created_at = t;
    let changed: &dyn Fn(&mut KeyRecord, OffsetDateTime) = &|k, t| k.changed_at = t;
    let expiry: &dyn Fn(&mut KeyRecord, OffsetDateTime) = &|k, t| {
        k.previous_secret = Some(PreviousSecret {
            hash: hash("p"),
            expires_at: t,
        })
    };
    let writes: Vec<(&str, Write<'_>)> = vec![
        (
            "create_account: the account's creation",
            Box::new(|s, t| {
                let acc = Account {
                    created_at: t,
                    ..fresh.clone()
                };
                s.create_account(&acc, &[], &[opened(&fresh)])
            }),
        ),
        (
            "create_account: an initial key's creation",
            Box::new(|s, t| {
                s.create_account(&fresh, &[with_key(&initial, created, t)], &[opened(&fresh)])
            }),
        ),
        (
            "create_account: an initial key's last change",
            Box::new(|s, t| {
                s.create_account(&fresh, &[with_key(&initial, changed, t)], &[opened(&fresh)])
            }),
        ),
        (
            "create_account: an initial key's grace expiry",
            Box::new(|s, t| {
                s.create_account(&fresh, &[with_key(&initial, expiry, t)], &[opened(&fresh)])
            }),
        ),
        (
            "create_account: an event's instant",
            Box::new(|s, t| {
                let e = AuditEvent {
                    at: t,
                    ..opened(&fresh)
                };
                s.create_account(&fresh, std::slice::from_ref(&initial), &[opened(&fresh), e])
            }),
        ),
        (
            "insert_key: the key's creation",
            Box::new(|s, t| insert(s, &with_key(&newkey, created, t), 10)),
        ),
        (
            "insert_key: the key's last change",
            Box::new(|s, t| insert(s, &with_key(&newkey, changed, t), 10)),
        ),
        (
            "insert_key: the key's grace expiry",
            Box::new(|s, t| insert(s, &with_key(&newkey, expiry, t), 10)),
        ),
        (
            "insert_key: the event's instant",
            Box::new(|s, t| {
                let e = AuditEvent {
                    at: t,
                    ..created_event(&newkey)
                };
                s.insert_key(&newkey, 10, &e)
            }),
        ),
        (
            "update_key: the key's last change",
            Box::new(|s, t| {
                let k = with_key(&next(&held, "u"), changed, t);
                s.update_key(&k, 1, &about(&k, AuditKind::CredentialsChanged, "u"))
            }),
        ),
        (
            "update_key: the key's grace expiry",
            Box::new(|s, t| {
                let k = with_key(&next(&held, "u"), expiry, t);
                s.update_key(&k, 1, &about(&k, AuditKind::CredentialsChanged, "u"))
            }),
        ),
        (
            "update_key: the event's instant",
            Box::new(|s, t| {
                let k = next(&held, "u");
                let e = AuditEvent {
                    at: t,
                    ..about(&k, AuditKind::CredentialsChanged, "u")
                };
                s.update_key(&k, 1, &e)
            }),
        ),
        (
            "delete_key: the event's instant",
            Box::new(|s, t| {
                let e = AuditEvent {
                    at: t,
                    ..about(&held, AuditKind::KeyDeleted, "d")
                };
                s.delete_key(held.id, None, &e)
            }),
        ),
    ];
    let outside = [
        EARLIEST - Duration::nanoseconds(1),
        LATEST + Duration::nanoseconds(1),
        time::macros::datetime!(2300-01-01 0:00 UTC),
        time::macros::datetime!(9999-12-31 23:59:59.999999999 UTC),
        time::macros::datetime!(-9999-01-01 0:00 UTC),
    ];
    for (what, write) in &writes {
        for t in outside {
            let before = Snapshot::take(&*store, &watch);
            let result = write(&*store, t);
            refused(
                result,
                Want::UnstorableInstant(t),
                &format!("an instant outside 1677-09-21..2262-04-11 is Unstorable ({what})"),
            );
            before.unchanged(
                &*store,
                &watch,
                &format!("a write refused as Unstorable keeps nothing ({what})"),
            );
        }
    }
    // The error says what is allowed.
    let err = writes[0].1(&*store, outside[2]).expect_err("refused above");
    holds(
        err.to_string().contains("from 1677-09-21 to 2262-04-11"),
        "an Unstorable instant's message says the range that is kept",
        describe(&err),
        "a message naming 1677-09-21 to 2262-04-11",
    );
}

/// Versions are kept up to 2^63 − 1: a key at that version reads back and
/// can be updated to it, and one beyond it is `Unstorable::Version`, by
/// insert and by update, with nothing written.
pub fn versions_beyond_the_range_are_unstorable(store: Arc<DynStore>) {
    let mut ids = Ids::new(43);
    let a = add_master(&*store, &mut ids);
    let mut top = record(ids.key(), a.id, Channel::Rest, "top-version");
    top.version = MAX_VERSION;
    put(&*store, &top, 10);
    let rule = "versions up to 2^63 - 1 are kept";
    same(ok(store.key(top.id), rule), Some(top.clone()), rule);

    let k = add_key(&*store, &mut ids, a.id, Channel::Ftp, "near-top");
    let mut watch = Watch::default();
    watch.account(&a).key(&top).key(&k);
    for v in [MAX_VERSION + 1, u64::MAX] {
        let mut over = record(ids.key(), a.id, Channel::Http, "over-version");
        over.version = v;
        let before = Snapshot::take(&*store, &watch);
        refused(
            insert(&*store, &over, 1),
            Want::UnstorableVersion(v),
            "insert_key refuses a version beyond 2^63 - 1 as Unstorable",
        );
        same(
            ok(store.key(over.id), "key succeeds"),
            None,
            "a key refused as Unstorable is not stored",
        );
        let mut bumped = k.clone();
        bumped.version = v;
        refused(
            store.update_key(
                &bumped,
                1,
                &about(&bumped, AuditKind::CredentialsChanged, "over"),
            ),
            Want::UnstorableVersion(v),
            "update_key refuses a version beyond 2^63 - 1 as Unstorable",
        );
        before.unchanged(
            &*store,
            &watch,
            "a write refused as Unstorable keeps nothing",
        );
    }
    let mut last = k.clone();
    last.version = MAX_VERSION;
    ok(
        store.update_key(
            &last,
            1,
            &about(&last, AuditKind::CredentialsChanged, "to top"),
        ),
        "an update to version 2^63 - 1 is kept",
    );
    same(ok(store.key(k.id), rule), Some(last.clone()), rule);
}

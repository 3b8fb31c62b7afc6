//! Listings: exactly the account asked for (never its sub-accounts', never
//! another's), in the contract's order, ties included.

use super::support::*;
use crate::account::Account;
use crate::audit::{AuditEvent, AuditKind};
use crate::channel::Channel;
use crate::id::{AccountId, KeyId};
use crate::key::KeyRecord;
use crate::store::DynStore;
use crate::testing::START;
use crate::testing::records::{event, key as record, master, opened};
use std::sync::Arc;
use time::Duration;

/// A master with two sub-accounts and a sibling master, each with keys on
/// the same channels, and ids that differ from each other in one byte.
struct Family {
    accounts: Vec<Account>,
    keys: Vec<KeyRecord>,
}

#[track_caller]
fn family(store: &DynStore, seed: u8) -> Family {
    let id = |n: u8| {
        let mut bytes = [seed; 16];
        bytes[15] = n;
        AccountId::from_bytes(bytes)
    };
    let m = master(id(1));
    let s1 = sub(id(2), m.id);
    let s2 = sub(id(3), m.id);
    let other = master(id(4));
    let accounts = vec![m, s1, s2, other];
    let mut keys = Vec::new();
    for (i, a) in accounts.iter().enumerate() {
        open(store, a);
        for (j, channel) in [Channel::Ftp, Channel::Rest, Channel::Rest]
            .into_iter()
            .enumerate()
        {
            let mut kid = [seed; 16];
            kid[14] = i as u8;
            kid[15] = j as u8;
            let k = record(
                KeyId::from_bytes(kid),
                a.id,
                channel,
                &format!("fam-{seed}-{i}-{j}"),
            );
            put(store, &k, limit(channel));
            keys.push(k);
        }
    }
    Family { accounts, keys }
}

/// `keys_of_account` lists the keys held by exactly this account: a
/// master's listing never includes its sub-accounts' keys (nor a
/// sub-account's its master's or its sibling's), whatever the ids have in
/// common.
pub fn keys_listing_is_exactly_the_account(store: Arc<DynStore>) {
    let f = family(&*store, 0x41);
    for a in &f.accounts {
        let mut expected: Vec<KeyRecord> = f
            .keys
            .iter()
            .filter(|k| k.account_id == a.id)
            .cloned()
            .collect();
        expected.sort_by_key(|k| (k.created_at, *k.id.as_bytes()));
        same(
            ok(store.keys_of_account(a.id), "keys_of_account succeeds"),
            expected,
            &format!(
                "keys_of_account lists the keys held by exactly this account ({:?}), never its sub-accounts' or another's",
                a.kind
            ),
        );
    }
    let mut near = *f.accounts[0].id.as_bytes();
    near[15] = 9;
    same(
        ok(
            store.keys_of_account(AccountId::from_bytes(near)),
            "keys_of_account succeeds",
        ),
        vec![],
        "keys_of_account of an absent account is empty",
    );
}

/// `audit_events` lists the events of exactly this account: a master's
/// trail never includes its sub-accounts' events, nor another account's.
pub fn audit_listing_is_exactly_the_account(store: Arc<DynStore>) {
    let f = family(&*store, 0x42);
    // One more event of every kind on each key, and a deletion.
    for (i, k) in f.keys.iter().enumerate() {
        let mut v2 = next(k, "v2");
        v2.changed_at = START + Duration::seconds(i as i64);
        update(&*store, &v2, &format!("update of {}", k.identifier));
    }
    let gone = &f.keys[4];
    ok(
        store.delete_key(gone.id, &about(gone, AuditKind::KeyDeleted, "deleted")),
        "a stored key can be deleted",
    );
    for a in &f.accounts {
        let trail = ok(
            store.audit_events(a.id, usize::MAX),
            "audit_events succeeds",
        );
        holds(
            trail.iter().all(|e| e.account_id == a.id),
            &format!(
                "audit_events lists the events of exactly this account ({:?}), never its sub-accounts' or another's",
                a.kind
            ),
            &trail,
            &format!("only events of {}", a.id),
        );
        let held = f.keys.iter().filter(|k| k.account_id == a.id).count();
        let deleted = usize::from(gone.account_id == a.id);
        same(
            trail.len(),
            1 + 2 * held + deleted,
            "audit_events lists every event of the account: its opening, each key's creation and change, a deletion",
        );
    }
}

/// Keys are listed ascending by creation instant, ties ascending by id (its
/// bytes), whatever the order of insertion, the identifiers, the last
/// change, and on both sides of 1970.
pub fn keys_ordered_by_creation_then_id(store: Arc<DynStore>) {
    let mut ids = Ids::new(34);
    let a = add_master(&*store, &mut ids);
    let instants = [
        START,
        START - Duration::nanoseconds(1),
        START + Duration::nanoseconds(1),
        time::OffsetDateTime::UNIX_EPOCH - Duration::nanoseconds(1),
        time::OffsetDateTime::UNIX_EPOCH,
        time::OffsetDateTime::UNIX_EPOCH - Duration::days(365 * 50),
    ];
    // Ids chosen so that signed, textual or reversed comparisons disagree
    // with the bytes' order.
    let id_bytes: [[u8; 16]; 6] = [
        [0x80; 16],
        [0x7f; 16],
        [0x00; 16],
        [0xff; 16],
        {
            let mut b = [0x10; 16];
            b[15] = 0xff;
            b
        },
        {
            let mut b = [0x10; 16];
            b[0] = 0x11;
            b
        },
    ];
    let mut keys = Vec::new();
    let mut n = 0;
    for (i, at) in instants.iter().enumerate() {
        for (j, bytes) in id_bytes.iter().enumerate() {
            // Skip some, so that not every instant has every id.
            if (i + j) % 4 == 3 {
                continue;
            }
            let mut b = *bytes;
            b[8] = i as u8;
            let mut k = record(
                KeyId::from_bytes(b),
                a.id,
                Channel::Rest,
                &format!("order-{}", 99 - n),
            );
            n += 1;
            k.created_at = *at;
            k.changed_at = *at;
            keys.push(k);
        }
    }
    // Inserted in an order unrelated to either key.
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by_key(|i| (i * 7) % keys.len());
    for i in &order {
        put(&*store, &keys[*i], 1000);
    }
    // A later change to the first-created key must not move it.
    let mut sorted = keys.clone();
    sorted.sort_by_key(|k| (k.created_at, *k.id.as_bytes()));
    let mut changed = next(&sorted[0], "changed");
    changed.changed_at = START + Duration::days(1000);
    update(&*store, &changed, "changed");
    sorted[0] = changed;
    let got = ok(store.keys_of_account(a.id), "keys_of_account succeeds");
    same(
        got.iter().map(|k| (k.created_at, k.id)).collect::<Vec<_>>(),
        sorted
            .iter()
            .map(|k| (k.created_at, k.id))
            .collect::<Vec<_>>(),
        "keys are listed ascending by creation instant, ties ascending by id bytes",
    );
    same(got, sorted, "keys_of_account returns the keys whole");
}

/// Audit events with equal instants are listed most recently recorded
/// first, whether they were recorded by one write (an account's opening
/// and its initial keys) or by many; instants on both sides of 1970 order
/// as instants; every limit gives a prefix of the whole trail.
pub fn audit_ties_newest_recorded_first(store: Arc<DynStore>) {
    let mut ids = Ids::new(35);
    let a = master(ids.account());
    let tie = START;
    let before_1970 = time::OffsetDateTime::UNIX_EPOCH - Duration::nanoseconds(1);
    let initial: Vec<KeyRecord> = [Channel::Ftp, Channel::Http, Channel::Email]
        .into_iter()
        .enumerate()
        .map(|(i, c)| record(ids.key(), a.id, c, &format!("tie-{i}")))
        .collect();
    let mut recorded: Vec<AuditEvent> = vec![opened(&a)];
    for (i, k) in initial.iter().enumerate() {
        recorded.push(AuditEvent {
            at: tie,
            ..event(
                a.id,
                Some(k),
                AuditKind::KeyCreated,
                &format!("initial {i}"),
            )
        });
    }
    ok(
        store.create_account(&a, &initial, &recorded),
        "an account with initial keys and their events is stored",
    );
    let ats = [
        tie,
        before_1970,
        tie,
        tie + Duration::nanoseconds(1),
        tie,
        before_1970,
        tie - Duration::nanoseconds(1),
        tie,
    ];
    let mut current = initial[0].clone();
    for (i, at) in ats.iter().enumerate() {
        let mut v = next(&current, "tie");
        v.changed_at = *at;
        let e = AuditEvent {
            at: *at,
            ..about(&v, AuditKind::WhitelistChanged, &format!("change {i}"))
        };
        ok(
            store.update_key(&v, current.version, &e),
            "an update from the stored version is applied",
        );
        recorded.push(e);
        current = v;
    }
    let rest = add_key(&*store, &mut ids, a.id, Channel::Rest, "tie-rest");
    recorded.push(created_event(&rest));
    let e = AuditEvent {
        at: tie,
        ..about(&rest, AuditKind::KeyDeleted, "deleted")
    };
    ok(store.delete_key(rest.id, &e), "a stored key can be deleted");
    recorded.push(e);

    let mut expected = recorded.clone();
    expected.reverse();
    expected.sort_by_key(|e| std::cmp::Reverse(e.at));
    let all = ok(
        store.audit_events(a.id, usize::MAX),
        "audit_events succeeds",
    );
    same(
        all.iter()
            .map(|e| (e.at, e.detail.as_str()))
            .collect::<Vec<_>>(),
        expected
            .iter()
            .map(|e| (e.at, e.detail.as_str()))
            .collect::<Vec<_>>(),
        "audit events are listed descending by instant, ties most recently recorded first",
    );
    same(all.clone(), expected, "audit events read back whole");
    for limit in 0..=all.len() + 1 {
        same(
            ok(store.audit_events(a.id, limit), "audit_events succeeds"),
            all[..limit.min(all.len())].to_vec(),
            &format!("audit_events with limit {limit} is the newest {limit} events of the trail"),
        );
    }
}

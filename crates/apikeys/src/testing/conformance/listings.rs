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
        store.delete_key(
            gone.id,
            None,
            &about(gone, AuditKind::KeyDeleted, "deleted"),
        ),
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
    ok(
        store.delete_key(rest.id, None, &e),
        "a stored key can be deleted",
    );
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

/// An account id made of `seed` with its first byte `first` and its last
/// `last`: ids that differ in one byte, on both sides of 0x80 (so that a
/// signed comparison orders them otherwise).
fn id_at(seed: u8, first: u8, last: u8) -> AccountId {
    let mut bytes = [seed; 16];
    bytes[0] = first;
    bytes[15] = last;
    AccountId::from_bytes(bytes)
}

/// `sub_accounts` lists exactly the sub-accounts of this master, ascending
/// by creation instant, ties ascending by id (as unsigned bytes), whatever
/// the order of insertion: never another master's (even an older one), and
/// nothing for a sub-account, a master without any, or an absent id.
pub fn sub_accounts_listing_is_exactly_the_master(store: Arc<DynStore>) {
    let seed = 0x43;
    let m = master(id_at(seed, 0x40, 1));
    let other = master(id_at(seed, 0x40, 2));
    let lonely = master(id_at(seed, 0x40, 3));
    for a in [&m, &other, &lonely] {
        open(&*store, a);
    }
    let sub_at = |last: u8, parent: AccountId, at: time::OffsetDateTime| Account {
        created_at: at,
        ..sub(id_at(seed, 0x41, last), parent)
    };
    let newest = sub_at(0x01, m.id, START + Duration::seconds(2));
    let tie_low = sub_at(0x25, m.id, START);
    let tie_high = sub_at(0xf0, m.id, START);
    let tie_mid = sub_at(0x30, m.id, START);
    let oldest = sub_at(0x80, m.id, START - Duration::nanoseconds(1));
    let others = sub_at(0x02, other.id, START - Duration::days(1));
    for a in [&tie_high, &others, &newest, &tie_low, &oldest, &tie_mid] {
        open(&*store, a);
    }
    same(
        ok(store.sub_accounts(m.id), "sub_accounts succeeds"),
        vec![
            oldest.clone(),
            tie_low.clone(),
            tie_mid.clone(),
            tie_high.clone(),
            newest.clone(),
        ],
        "sub_accounts lists exactly the master's sub-accounts, by creation instant, ties by id as unsigned bytes",
    );
    same(
        ok(store.sub_accounts(other.id), "sub_accounts succeeds"),
        vec![others.clone()],
        "sub_accounts of another master lists its own sub-accounts only",
    );
    for (what, id) in [
        ("a master without sub-accounts", lonely.id),
        ("a sub-account", tie_low.id),
        ("an absent account", id_at(seed, 0x40, 9)),
    ] {
        same(
            ok(store.sub_accounts(id), "sub_accounts succeeds"),
            vec![],
            &format!("sub_accounts of {what} is empty"),
        );
    }
}

/// `accounts` pages every account (masters and sub-accounts) ascending by
/// id as unsigned bytes: an empty store has none; a page holds at most
/// `limit` (0 gives none); a page starts right after its cursor, never at
/// it, whether or not the cursor is a stored id; walking the pages with
/// any limit gives every account once; an account inserted before the
/// cursor does not shift the next page, and one after it shows up in it.
pub fn accounts_are_paged_by_id(store: Arc<DynStore>) {
    let seed = 0x44;
    same(
        ok(store.accounts(None, 10), "accounts succeeds"),
        vec![],
        "an empty store lists no account",
    );
    let root = master(id_at(seed, 0x90, 0));
    open(&*store, &root);
    // Created newest first as the ids go up: ordering by creation or by
    // insertion would show.
    let mut all = vec![root.clone()];
    for (i, (first, last)) in [
        (0x00, 0x00),
        (0xff, 0xff),
        (0x7f, 0x10),
        (0x80, 0x01),
        (0x80, 0x00),
        (0x01, 0x05),
        (0xfe, 0x00),
    ]
    .into_iter()
    .enumerate()
    {
        let id = id_at(seed, first, last);
        let mut a = if i % 2 == 0 {
            master(id)
        } else {
            sub(id, root.id)
        };
        a.created_at = START - Duration::seconds(i as i64);
        open(&*store, &a);
        all.push(a);
    }
    all.sort_by_key(|a| *a.id.as_bytes());
    same(
        ok(store.accounts(None, usize::MAX), "accounts succeeds"),
        all.clone(),
        "accounts lists every account, masters and sub-accounts, ascending by id as unsigned bytes",
    );
    same(
        ok(store.accounts(None, 0), "accounts succeeds"),
        vec![],
        "a limit of 0 is an empty page",
    );
    for limit in 1..=4 {
        let mut walked = Vec::new();
        let mut after = None;
        // Bounded: a store that repeats its cursor would loop for ever.
        for _ in 0..=all.len() {
            let page = ok(store.accounts(after, limit), "accounts succeeds");
            holds(
                page.len() <= limit,
                "a page holds at most `limit` accounts",
                (limit, &page),
                "at most limit",
            );
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            let full = page.len() == limit;
            walked.extend(page);
            if !full {
                break;
            }
        }
        same(
            walked,
            all.clone(),
            &format!("walking the pages (limit {limit}) gives every account once, in order"),
        );
    }
    for (i, a) in all.iter().enumerate() {
        same(
            ok(store.accounts(Some(a.id), 2), "accounts succeeds"),
            all[i + 1..].iter().take(2).cloned().collect::<Vec<_>>(),
            "a page starts right after its cursor, never at it",
        );
    }
    let mut between = *all[2].id.as_bytes();
    between[15] = between[15].wrapping_add(1);
    holds(
        &between < all[3].id.as_bytes(),
        "(the test's own cursor sits between two ids)",
        between,
        "between",
    );
    same(
        ok(
            store.accounts(Some(AccountId::from_bytes(between)), 1),
            "accounts succeeds",
        ),
        vec![all[3].clone()],
        "a cursor that is no stored id starts the page at the next id",
    );
    same(
        ok(
            store.accounts(Some(AccountId::from_bytes([0xff; 16])), 5),
            "accounts succeeds",
        ),
        vec![],
        "a cursor after every id is an empty page",
    );
    // New accounts on both sides of a cursor.
    let cursor = all[4].id;
    let before_page = ok(store.accounts(Some(cursor), 2), "accounts succeeds");
    let early = master(id_at(seed, 0x00, 0x01));
    open(&*store, &early);
    same(
        ok(store.accounts(Some(cursor), 2), "accounts succeeds"),
        before_page,
        "an account inserted before the cursor does not shift the next page",
    );
    let mut right_after = *cursor.as_bytes();
    right_after[15] = right_after[15].wrapping_add(1);
    let late = master(AccountId::from_bytes(right_after));
    open(&*store, &late);
    same(
        ok(store.accounts(Some(cursor), 1), "accounts succeeds"),
        vec![late],
        "an account inserted right after the cursor is on the next page",
    );
}

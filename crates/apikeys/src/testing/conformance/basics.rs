//! The rules of each write and read, one at a time: what is stored reads
//! back, what breaks a rule is refused with the rule's error.

use super::support::*;
use crate::account::{Account, Actor};
use crate::audit::{AuditEvent, AuditKind};
use crate::channel::Channel;
use crate::key::{KeyRecord, PreviousSecret};
use crate::store::{DynStore, Existing, StoreExt};
use crate::testing::START;
use crate::testing::records::{event, hash, key as record, master, opened};
use crate::whitelist::Whitelist;
use std::sync::Arc;
use time::Duration;

fn wl(entries: &[&str]) -> Whitelist {
    Whitelist::parse(entries, 1000).unwrap()
}

/// An account reads back as written, master or sub-account; an absent one
/// is `None`; a taken id is `AlreadyExists(Account)` and the stored account
/// stays as it was.
pub fn account_roundtrip(store: Arc<DynStore>) {
    let mut ids = Ids::new(1);
    let m = add_master(&*store, &mut ids);
    let s = Account {
        created_at: time::macros::datetime!(1999-12-31 23:59:59.123456789 UTC),
        ..sub(ids.account(), m.id)
    };
    open(&*store, &s);
    let rule = "an account reads back as it was stored";
    same(ok(store.account(m.id), rule), Some(m.clone()), rule);
    same(ok(store.account(s.id), rule), Some(s.clone()), rule);
    let rule = "a read of an absent account is Ok(None)";
    same(ok(store.account(ids.account()), rule), None, rule);
    let again = Account {
        created_at: START + Duration::days(1),
        ..m.clone()
    };
    refused(
        store.create_account(&again, &[], &[]),
        Want::Taken(Existing::Account),
        "an account id names one account: a taken id is AlreadyExists(Account)",
    );
    let rule = "a refused account creation changes nothing";
    same(ok(store.account(m.id), rule), Some(m), rule);
}

/// A sub-account whose parent is not stored is refused with `NotFound`
/// naming the parent, and nothing of it is kept.
pub fn sub_account_needs_stored_parent(store: Arc<DynStore>) {
    let mut ids = Ids::new(2);
    let ghost = ids.account();
    let s = sub(ids.account(), ghost);
    refused(
        store.create_account(&s, &[], &[opened(&s)]),
        Want::AccountNotFound(ghost),
        "a sub-account needs its parent stored: NotFound names the parent",
    );
    let rule = "a refused account creation keeps nothing";
    same(ok(store.account(s.id), rule), None, rule);
    same(ok(store.audit_events(s.id, 100), rule), vec![], rule);
    same(ok(store.account(ghost), rule), None, rule);
    // Its own parent: not stored before the write, so not found.
    let own = sub(s.id, s.id);
    refused(
        store.create_account(&own, &[], &[opened(&own)]),
        Want::AccountNotFound(s.id),
        "a sub-account needs its parent stored before it: its own id is NotFound",
    );
    same(ok(store.account(s.id), rule), None, rule);
    same(ok(store.audit_events(s.id, 100), rule), vec![], rule);
}

/// Opening an account with initial keys is all or nothing: one bad key and
/// neither the account, nor any key, nor any event is kept.
pub fn create_account_is_all_or_nothing(store: Arc<DynStore>) {
    let mut ids = Ids::new(3);
    let other = add_master(&*store, &mut ids);
    add_key(&*store, &mut ids, other.id, Channel::Ftp, "taken-id");

    let a = master(ids.account());
    let good = record(ids.key(), a.id, Channel::Http, "fresh-id");
    let clash = record(ids.key(), a.id, Channel::Email, "TAKEN-ID");
    let events = [
        opened(&a),
        event(a.id, Some(&good), AuditKind::KeyCreated, "k1"),
    ];
    refused(
        store.create_account(&a, &[good.clone(), clash], &events),
        Want::Taken(Existing::Identifier),
        "an initial key obeys the identifier rule of insert_key",
    );
    let rule = "a refused account creation keeps nothing: not the account, a key or an event";
    same(ok(store.account(a.id), rule), None, rule);
    same(ok(store.key(good.id), rule), None, rule);
    same(ok(store.key_by_identifier("fresh-id"), rule), None, rule);
    same(ok(store.audit_events(a.id, 100), rule), vec![], rule);

    let twins = [
        record(ids.key(), a.id, Channel::Http, "twin"),
        record(ids.key(), a.id, Channel::Email, "Twin"),
    ];
    refused(
        store.create_account(&a, &twins, &[opened(&a)]),
        Want::Taken(Existing::Identifier),
        "two initial keys with one identifier (ignoring ASCII case) are refused",
    );
    same(ok(store.account(a.id), rule), None, rule);

    let two_ftp = [
        record(ids.key(), a.id, Channel::Ftp, "ftp-one"),
        record(ids.key(), a.id, Channel::Ftp, "ftp-two"),
    ];
    refused(
        store.create_account(&a, &two_ftp, &[opened(&a)]),
        Want::Taken(Existing::ChannelFull(Channel::Ftp)),
        "initial keys: at most one per channel other than REST",
    );
    same(ok(store.account(a.id), rule), None, rule);
    same(ok(store.key_by_identifier("ftp-one"), rule), None, rule);

    let b = master(ids.account());
    let rests: Vec<KeyRecord> = (0..12)
        .map(|i| record(ids.key(), b.id, Channel::Rest, &format!("rest-{i}")))
        .collect();
    ok(
        store.create_account(&b, &rests, &[opened(&b)]),
        "initial REST keys are never limited",
    );
    let rule = "initial keys are stored with their account";
    same(ok(store.keys_of_account(b.id), rule).len(), 12, rule);

    ok(
        store.create_account(&a, std::slice::from_ref(&good), &events),
        "an account refused before can be opened once the write is valid",
    );
    same(ok(store.key(good.id), rule), Some(good), rule);
    let rule = "the events of an account creation are stored with it";
    same(ok(store.audit_events(a.id, 100), rule).len(), 2, rule);
}

/// Every field of a key survives the round trip: label, hashes, previous
/// secret, a mixed IPv4/IPv6 whitelist, sub-second instants; the lookup by
/// identifier ignores ASCII case; absent keys are `None`.
pub fn key_roundtrip_every_field(store: Arc<DynStore>) {
    let mut ids = Ids::new(4);
    let a = add_master(&*store, &mut ids);
    let mut k = record(ids.key(), a.id, Channel::Rest, "Client.ID-42");
    k.label = Some("Büro \"main\" server ✓ 'quoted' \\ back".into());
    k.created_at = START + Duration::nanoseconds(123_456_789);
    k.changed_at = START + Duration::nanoseconds(987_654_321);
    k.whitelist = wl(&["203.0.113.0/24", "2001:db8::/48", "198.51.100.7"]);
    k.previous_secret = Some(PreviousSecret {
        hash: hash("old"),
        expires_at: START + Duration::hours(1) + Duration::nanoseconds(1),
    });
    k.version = 7;
    put(&*store, &k, 10);

    let rule = "a key reads back as it was stored, every field";
    same(ok(store.key(k.id), rule), Some(k.clone()), rule);
    for spelling in [
        "Client.ID-42",
        "client.id-42",
        "CLIENT.ID-42",
        "cLIENT.iD-42",
    ] {
        same(
            ok(store.key_by_identifier(spelling), rule),
            Some(k.clone()),
            "key_by_identifier finds the key whatever the ASCII case of the identifier",
        );
    }
    let rule = "a read of an absent key is Ok(None)";
    same(
        ok(store.key_by_identifier("Client.ID-43"), rule),
        None,
        rule,
    );
    same(ok(store.key(ids.key()), rule), None, rule);

    let mut plain = record(ids.key(), a.id, Channel::Ftp, "second");
    plain.created_at = START + Duration::seconds(5);
    plain.changed_at = plain.created_at;
    put(&*store, &plain, 1);
    let rule = "a key without label, previous secret or whitelist reads back as stored";
    same(ok(store.key(plain.id), rule), Some(plain.clone()), rule);
    let rule = "keys_of_account lists the account's keys, oldest first";
    same(ok(store.keys_of_account(a.id), rule), vec![k, plain], rule);
    same(
        ok(store.keys_of_account(ids.account()), rule),
        vec![],
        "keys_of_account of an absent account is empty",
    );
}

/// An identifier names one key across the whole store, ignoring ASCII case:
/// another key of any account with the same identifier in any case is
/// `AlreadyExists(Identifier)` and is not stored.
pub fn identifier_unique_ignoring_case(store: Arc<DynStore>) {
    let mut ids = Ids::new(5);
    let a = add_master(&*store, &mut ids);
    let b = add_master(&*store, &mut ids);
    let first = add_key(&*store, &mut ids, a.id, Channel::Ftp, "Shared-Name");
    for (i, spelling) in ["Shared-Name", "sHARED-nAME", "SHARED-NAME", "shared-name"]
        .into_iter()
        .enumerate()
    {
        let channel = [
            Channel::Http,
            Channel::Rest,
            Channel::Email,
            Channel::WebService,
        ][i];
        let clash = record(ids.key(), b.id, channel, spelling);
        refused(
            insert(&*store, &clash, 10),
            Want::Taken(Existing::Identifier),
            "an identifier names one key, ignoring ASCII case, across all accounts",
        );
        let rule = "a refused key is not stored";
        same(ok(store.key(clash.id), rule), None, rule);
    }
    let rule = "the first key keeps its identifier";
    same(
        ok(store.key_by_identifier("shared-NAME"), rule),
        Some(first),
        rule,
    );
    let rule = "identifiers differing in more than ASCII case are different";
    for (channel, other) in [
        (Channel::Http, "Shared-Name2"),
        (Channel::Email, "Shared Name"),
    ] {
        let k = record(ids.key(), b.id, channel, other);
        ok(insert(&*store, &k, 1), rule);
    }
}

/// `max_for_channel` is enforced per account and channel: one FTP key, up
/// to the limit of REST keys (none with a limit of 0), and other accounts
/// and other channels are unaffected.
pub fn one_key_per_channel_except_rest(store: Arc<DynStore>) {
    let mut ids = Ids::new(6);
    let a = add_master(&*store, &mut ids);
    let b = add_master(&*store, &mut ids);
    let s = add_sub(&*store, &mut ids, a.id);
    add_key(&*store, &mut ids, a.id, Channel::Ftp, "a-ftp");
    let second = record(ids.key(), a.id, Channel::Ftp, "a-ftp-2");
    refused(
        insert(&*store, &second, 1),
        Want::Taken(Existing::ChannelFull(Channel::Ftp)),
        "an account holds at most max_for_channel keys of a channel",
    );
    let rule = "the channel limit is per account: another account, a sub-account, another channel are unaffected";
    for (account, channel, identifier) in [
        (b.id, Channel::Ftp, "b-ftp"),
        (s.id, Channel::Ftp, "s-ftp"),
        (a.id, Channel::Http, "a-http"),
        (a.id, Channel::WebService, "a-ws"),
        (a.id, Channel::Email, "a-email"),
    ] {
        ok(
            insert(&*store, &record(ids.key(), account, channel, identifier), 1),
            rule,
        );
    }
    for i in 0..3 {
        ok(
            insert(
                &*store,
                &record(ids.key(), a.id, Channel::Rest, &format!("a-rest-{i}")),
                3,
            ),
            "REST keys are stored up to max_for_channel",
        );
    }
    refused(
        insert(
            &*store,
            &record(ids.key(), a.id, Channel::Rest, "a-rest-3"),
            3,
        ),
        Want::Taken(Existing::ChannelFull(Channel::Rest)),
        "an account holds at most max_for_channel REST keys",
    );
    ok(
        insert(
            &*store,
            &record(ids.key(), a.id, Channel::Rest, "a-rest-4"),
            4,
        ),
        "the REST limit is the one passed with each insert",
    );
    refused(
        insert(
            &*store,
            &record(ids.key(), b.id, Channel::Rest, "b-rest-0"),
            0,
        ),
        Want::Taken(Existing::ChannelFull(Channel::Rest)),
        "a limit of 0 refuses the first key",
    );
    let rule = "active channels are the channels of the keys held";
    same(
        ok(store.active_channels(a.id), rule),
        crate::ChannelSet::of(&[
            Channel::Ftp,
            Channel::Rest,
            Channel::Http,
            Channel::WebService,
            Channel::Email,
        ]),
        rule,
    );
    same(
        ok(store.active_channels(b.id), rule),
        crate::ChannelSet::of(&[Channel::Ftp]),
        rule,
    );
}

/// A key for an account that is not stored is refused with `NotFound`
/// naming the account.
pub fn insert_key_needs_account(store: Arc<DynStore>) {
    let mut ids = Ids::new(7);
    let ghost = ids.account();
    let k = record(ids.key(), ghost, Channel::Ftp, "orphan");
    refused(
        insert(&*store, &k, 1),
        Want::AccountNotFound(ghost),
        "a key needs its account stored: NotFound names the account",
    );
    let rule = "a refused key is not stored";
    same(ok(store.key_by_identifier("orphan"), rule), None, rule);
    same(ok(store.key(k.id), rule), None, rule);
}

/// A taken key id is `AlreadyExists(Key)`, even for another account, and
/// the stored key stays as it was.
pub fn key_id_is_unique(store: Arc<DynStore>) {
    let mut ids = Ids::new(8);
    let a = add_master(&*store, &mut ids);
    let b = add_master(&*store, &mut ids);
    let k = add_key(&*store, &mut ids, a.id, Channel::Ftp, "first");
    for (account, channel) in [(a.id, Channel::Rest), (b.id, Channel::Http)] {
        let dup = record(k.id, account, channel, "second");
        refused(
            insert(&*store, &dup, 10),
            Want::Taken(Existing::Key),
            "a key id names one key: a taken id is AlreadyExists(Key)",
        );
    }
    let rule = "a refused key changes nothing";
    same(ok(store.key(k.id), rule), Some(k), rule);
    same(ok(store.key_by_identifier("second"), rule), None, rule);
}

/// `update_key` writes only from the expected version: a stale or a future
/// version is a `Conflict` naming both versions (and changes nothing), a
/// missing key `NotFound`.
pub fn update_is_compare_and_swap(store: Arc<DynStore>) {
    let mut ids = Ids::new(9);
    let a = add_master(&*store, &mut ids);
    let k = add_key(&*store, &mut ids, a.id, Channel::Http, "cas-key");

    let mut v2 = next(&k, "new");
    v2.whitelist = wl(&["10.0.0.0/8"]);
    v2.label = Some("relabelled".into());
    v2.previous_secret = Some(PreviousSecret {
        hash: k.secret_hash.clone(),
        expires_at: START + Duration::minutes(5),
    });
    let ev = about(&v2, AuditKind::CredentialsChanged, "v2");
    ok(
        store.update_key(&v2, 1, &ev),
        "an update from the stored version is applied",
    );
    let rule = "an applied update reads back whole";
    same(ok(store.key(k.id), rule), Some(v2.clone()), rule);
    same(
        ok(store.key_by_identifier("cas-key"), rule),
        Some(v2.clone()),
        rule,
    );

    for expected in [1, 3, 0, super::support::MAX_VERSION, u64::MAX] {
        let mut stale = next(&k, "stale");
        stale.version = 3;
        refused(
            store.update_key(&stale, expected, &ev),
            Want::Conflict {
                key: k.id,
                expected,
                found: 2,
            },
            "update_key is a compare-and-swap: another version than the stored one is a Conflict naming both",
        );
        let rule = "a conflicting update changes nothing";
        same(ok(store.key(k.id), rule), Some(v2.clone()), rule);
    }

    let ghost = record(ids.key(), a.id, Channel::Ftp, "ghost");
    refused(
        store.update_key(&ghost, 1, &ev),
        Want::KeyNotFound(ghost.id),
        "an update of an absent key is NotFound naming the key",
    );
    let rule = "an update of an absent key stores nothing";
    same(ok(store.key(ghost.id), rule), None, rule);
    same(ok(store.key_by_identifier("ghost"), rule), None, rule);
}

/// Changing an identifier frees the old one at once and claims the new one;
/// a case-only change is no clash with itself; a new identifier taken by
/// another key is refused.
pub fn update_moves_the_identifier(store: Arc<DynStore>) {
    let mut ids = Ids::new(10);
    let a = add_master(&*store, &mut ids);
    let b = add_master(&*store, &mut ids);
    let k = add_key(&*store, &mut ids, a.id, Channel::Http, "old-name");
    let other = add_key(&*store, &mut ids, b.id, Channel::Ftp, "other-name");

    let mut renamed = next(&k, "same");
    renamed.identifier = "New-Name".into();
    update(&*store, &renamed, "renamed");
    let rule = "a renamed key is found by its new identifier only";
    same(ok(store.key_by_identifier("old-name"), rule), None, rule);
    same(
        ok(store.key_by_identifier("new-name"), rule),
        Some(renamed.clone()),
        rule,
    );

    let mut recased = next(&renamed, "same");
    recased.identifier = "NEW-NAME".into();
    update(&*store, &recased, "recased");
    let rule = "a case-only change of identifier is no clash, and the new spelling is kept";
    same(
        ok(store.key_by_identifier("new-name"), rule).map(|k| k.identifier),
        Some("NEW-NAME".to_string()),
        rule,
    );

    for spelling in ["other-name", "OTHER-name", "Other-Name"] {
        let mut clash = next(&recased, "clash");
        clash.identifier = spelling.into();
        refused(
            store.update_key(
                &clash,
                recased.version,
                &about(&clash, AuditKind::CredentialsChanged, "clash"),
            ),
            Want::Taken(Existing::Identifier),
            "an update onto another key's identifier (ignoring ASCII case) is AlreadyExists(Identifier)",
        );
    }
    let rule = "a refused update changes nothing";
    same(ok(store.key(k.id), rule), Some(recased), rule);
    same(ok(store.key(other.id), rule), Some(other.clone()), rule);
    same(
        ok(store.key_by_identifier("OTHER-NAME"), rule),
        Some(other),
        rule,
    );

    ok(
        insert(
            &*store,
            &record(ids.key(), a.id, Channel::Email, "OLD-NAME"),
            1,
        ),
        "an identifier freed by a rename can be taken by a new key",
    );
}

/// `upgrade_secret_hash` replaces the current hash only if it is still the
/// one the caller verified (compared exactly), and answers whether it did.
pub fn upgrade_hash_is_compare_and_swap(store: Arc<DynStore>) {
    let mut ids = Ids::new(11);
    let a = add_master(&*store, &mut ids);
    let mut k = record(ids.key(), a.id, Channel::Http, "rehash-me");
    k.previous_secret = Some(PreviousSecret {
        hash: hash("previous"),
        expires_at: START + Duration::hours(1),
    });
    put(&*store, &k, 1);
    let rule = "upgrade_secret_hash answers false, and changes nothing, unless the current hash is the one given";
    let swapped_case = {
        // The digest's base64 with its letters' case swapped: another
        // readable hash, equal to the current one only if compared
        // ignoring case.
        let text = k.secret_hash.as_str();
        let (prefix, digest) = text.split_at("$sha256$".len());
        // (The last character is left alone: it has unused bits.)
        let swapped: String = digest
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if i + 1 == digest.len() {
                    c
                } else if c.is_ascii_lowercase() {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect();
        crate::hashing::SecretHash::parse(&format!("{prefix}{swapped}")).unwrap()
    };
    for wrong in [hash("not-the-current"), hash("previous"), swapped_case] {
        same(
            ok(store.upgrade_secret_hash(k.id, &wrong, &hash("x")), rule),
            false,
            rule,
        );
        same(ok(store.key(k.id), rule), Some(k.clone()), rule);
    }
    let rule = "upgrade_secret_hash from the current hash replaces it and answers true";
    same(
        ok(
            store.upgrade_secret_hash(k.id, &k.secret_hash, &hash("stronger")),
            rule,
        ),
        true,
        rule,
    );
    let upgraded = KeyRecord {
        secret_hash: hash("stronger"),
        ..k.clone()
    };
    same(ok(store.key(k.id), rule), Some(upgraded.clone()), rule);
    let rule = "a second upgrade from the old hash answers false";
    same(
        ok(
            store.upgrade_secret_hash(k.id, &k.secret_hash, &hash("again")),
            rule,
        ),
        false,
        rule,
    );
    same(ok(store.key(k.id), rule), Some(upgraded), rule);
    let rule = "an upgrade of an absent key answers false";
    same(
        ok(
            store.upgrade_secret_hash(ids.key(), &hash("a"), &hash("b")),
            rule,
        ),
        false,
        rule,
    );
    let rule = "an upgrade records no audit event";
    same(ok(store.audit_events(a.id, 100), rule).len(), 2, rule);
}

/// Deleting a key removes it, frees its identifier and its channel at once;
/// its audit trail stays; a second delete is `NotFound`.
pub fn delete_frees_identifier_and_channel(store: Arc<DynStore>) {
    let mut ids = Ids::new(12);
    let a = add_master(&*store, &mut ids);
    let k = add_key(&*store, &mut ids, a.id, Channel::Ftp, "doomed");
    let keep = add_key(&*store, &mut ids, a.id, Channel::Rest, "kept");
    let ev = about(&k, AuditKind::KeyDeleted, "gone");
    ok(
        store.delete_key(k.id, None, &ev),
        "a stored key can be deleted",
    );
    let rule = "a deleted key is gone at once, by id, by identifier and from its account's keys";
    same(ok(store.key(k.id), rule), None, rule);
    same(ok(store.key_by_identifier("doomed"), rule), None, rule);
    same(
        ok(store.keys_of_account(a.id), rule),
        vec![keep.clone()],
        rule,
    );
    let rule = "the audit trail outlives the key: the deletion is recorded, earlier events stay";
    let trail = ok(store.audit_events(a.id, 100), rule);
    same(trail.first(), Some(&ev), rule);
    same(trail.len(), 4, rule);
    refused(
        store.delete_key(k.id, None, &ev),
        Want::KeyNotFound(k.id),
        "a delete of an absent key is NotFound naming the key",
    );
    ok(
        insert(&*store, &record(ids.key(), a.id, Channel::Ftp, "DOOMED"), 1),
        "a deleted key's identifier and channel are free again",
    );
    let rule = "deleting one key leaves the others alone";
    same(ok(store.key(keep.id), rule), Some(keep), rule);
}

/// The audit trail lists an account's events newest first (ties in order
/// of recording, newest first), honours the limit (0, some, `usize::MAX`),
/// and keeps accounts apart.
pub fn audit_newest_first_with_limit(store: Arc<DynStore>) {
    let mut ids = Ids::new(13);
    let a = add_master(&*store, &mut ids);
    let b = add_master(&*store, &mut ids);
    let k = add_key(&*store, &mut ids, a.id, Channel::Ftp, "audited");
    let mut last = k.clone();
    // Instants out of recording order, and two ties.
    for (i, minutes) in [(2, 30), (3, 10), (4, 30), (5, 20)] {
        let mut next = last.clone();
        next.version = i;
        let mut ev = about(&next, AuditKind::WhitelistChanged, &format!("v{i}"));
        ev.at = START + Duration::minutes(minutes);
        ok(
            store.update_key(&next, i - 1, &ev),
            "an update from the stored version is applied",
        );
        last = next;
    }
    let rule = "audit events are listed newest first, ties most recently recorded first";
    let all = ok(store.audit_events(a.id, 100), rule);
    let details: Vec<&str> = all.iter().map(|e| e.detail.as_str()).collect();
    same(
        details,
        vec!["v4", "v2", "v5", "v3", "created", "opened"],
        rule,
    );
    let rule = "audit_events returns at most `limit` events, the newest";
    for limit in [0, 1, 2, 5, 6, 7, usize::MAX] {
        same(
            ok(store.audit_events(a.id, limit), rule),
            all[..limit.min(all.len())].to_vec(),
            rule,
        );
    }
    let rule = "audit events are listed per account";
    same(
        ok(store.audit_events(b.id, 100), rule),
        vec![opened(&b)],
        rule,
    );
    same(
        ok(store.audit_events(ids.account(), 100), rule),
        vec![],
        rule,
    );
}

/// Every field of an audit event reads back as written, through every kind
/// of write: every kind, both kinds of actor, with and without a key and
/// channel, empty and unusual details.
pub fn audit_event_roundtrip_every_field(store: Arc<DynStore>) {
    let mut ids = Ids::new(14);
    let a = master(ids.account());
    let k = record(ids.key(), a.id, Channel::WebService, "every-field");
    let rest = record(ids.key(), a.id, Channel::Rest, "every-field-rest");
    let by_account = Actor::Account(ids.account());
    let at = |n: i64| START + Duration::nanoseconds(n);
    let opening = vec![
        AuditEvent {
            at: at(1),
            ..event(a.id, None, AuditKind::AccountOpened, "")
        },
        AuditEvent {
            at: at(2),
            actor: by_account,
            ..event(
                a.id,
                Some(&k),
                AuditKind::KeyCreated,
                "line one\nline two\ttab",
            )
        },
        AuditEvent {
            at: at(3),
            channel: None,
            ..event(
                a.id,
                Some(&k),
                AuditKind::WhitelistChanged,
                "key, no channel",
            )
        },
        AuditEvent {
            at: at(4),
            key_id: None,
            ..event(
                a.id,
                Some(&k),
                AuditKind::CredentialsChanged,
                "channel, no key",
            )
        },
    ];
    ok(
        store.create_account(&a, std::slice::from_ref(&k), &opening),
        "an account with an initial key and several events is stored",
    );
    let inserted = AuditEvent {
        at: at(5),
        ..created_event(&rest)
    };
    ok(
        store.insert_key(&rest, 10, &inserted),
        "a valid new key is stored",
    );
    let mut v2 = next(&k, "v2");
    v2.label = Some("x".into());
    let updated = AuditEvent {
        at: at(6),
        actor: by_account,
        ..about(
            &v2,
            AuditKind::CredentialsChanged,
            "Ünïcödé ✓ \"quotes\" 'single' \\ back % _ * 🔑",
        )
    };
    ok(
        store.update_key(&v2, 1, &updated),
        "an update from the stored version is applied",
    );
    let deleted = AuditEvent {
        at: at(7),
        ..about(&rest, AuditKind::KeyDeleted, "deleted")
    };
    ok(
        store.delete_key(rest.id, None, &deleted),
        "a stored key can be deleted",
    );

    let mut want = opening;
    want.extend([inserted, updated, deleted]);
    want.reverse();
    let rule = "an audit event reads back as written, every field";
    let got = ok(store.audit_events(a.id, 100), rule);
    same(got.clone(), want, rule);
    holds(
        got.iter().all(|e| e.at.offset() == time::UtcOffset::UTC),
        "instants read back in UTC",
        &got,
        "every event's instant in UTC",
    );
}

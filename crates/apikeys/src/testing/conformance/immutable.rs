//! Fields a caller must not change stay put: `update_key` keeps a key's id,
//! account, channel and creation instant whatever the record says (without
//! refusing it), and `upgrade_secret_hash` changes the current hash and
//! nothing else.

use super::support::*;
use crate::audit::AuditKind;
use crate::channel::Channel;
use crate::key::{KeyRecord, PreviousSecret};
use crate::store::{DynStore, Existing, StoreExt};
use crate::testing::START;
use crate::testing::records::{hash, key as record};
use crate::whitelist::Whitelist;
use std::sync::Arc;
use time::Duration;

/// A change an update sneaks into the record it is given.
type Sneak = Box<dyn Fn(&mut KeyRecord)>;

/// An update naming another account (stored or not), another channel (one
/// the account already holds, or a free one), another creation instant (even
/// one no store keeps) is applied to the fields it may change only: the
/// stored account, channel and creation instant stay, the listings and the
/// channel rule still follow them, and nothing is refused for them.
pub fn update_keeps_immutable_fields(store: Arc<DynStore>) {
    let mut ids = Ids::new(61);
    let a = add_master(&*store, &mut ids);
    let b = add_master(&*store, &mut ids);
    let ftp_of_b = add_key(&*store, &mut ids, b.id, Channel::Ftp, "b-ftp");
    let k = add_key(&*store, &mut ids, a.id, Channel::Http, "immutable");
    let held_ftp = add_key(&*store, &mut ids, a.id, Channel::Email, "a-email");
    let ghost = ids.account();

    let sneaky_values: Vec<(&str, Sneak)> = vec![
        (
            "another stored account",
            Box::new(move |r| r.account_id = b.id),
        ),
        (
            "an account that does not exist",
            Box::new(move |r| r.account_id = ghost),
        ),
        (
            "a channel the account already holds",
            Box::new(|r| r.channel = Channel::Email),
        ),
        ("a free channel", Box::new(|r| r.channel = Channel::Ftp)),
        ("REST", Box::new(|r| r.channel = Channel::Rest)),
        (
            "a later creation instant",
            Box::new(|r| r.created_at = START + Duration::days(9)),
        ),
        (
            "an earlier creation instant, to the nanosecond",
            Box::new(|r| r.created_at = START - Duration::nanoseconds(1)),
        ),
        (
            "a creation instant no store keeps",
            Box::new(|r| r.created_at = time::macros::datetime!(2300-01-01 0:00 UTC)),
        ),
        (
            "everything at once",
            Box::new(move |r| {
                r.account_id = b.id;
                r.channel = Channel::Ftp;
                r.created_at = START + Duration::days(1);
            }),
        ),
    ];
    let mut current = k.clone();
    for (i, (what, sneak)) in sneaky_values.iter().enumerate() {
        let mut wanted = next(&current, &format!("sneaky {i}"));
        wanted.identifier = format!("immutable-{i}");
        wanted.label = Some(format!("label {i}"));
        wanted.whitelist = Whitelist::parse(&[format!("10.0.{i}.0/24")], 10).expect("an entry");
        wanted.previous_secret = Some(PreviousSecret {
            hash: current.secret_hash.clone(),
            expires_at: START + Duration::hours(i as i64 + 1),
        });
        let mut given = wanted.clone();
        sneak(&mut given);
        ok(
            store.update_key(
                &given,
                current.version,
                &about(&wanted, AuditKind::CredentialsChanged, what),
            ),
            &format!("an update is not refused for naming {what}: those fields are not written"),
        );
        same(
            ok(store.key(k.id), "key succeeds"),
            Some(wanted.clone()),
            &format!(
                "update_key keeps the stored id, account, channel and creation instant, and writes the rest (given {what})"
            ),
        );
        same(
            ok(
                store.key_by_identifier(&wanted.identifier),
                "key_by_identifier succeeds",
            ),
            Some(wanted.clone()),
            "the lookup by identifier reads the same record",
        );
        current = wanted;
    }
    let rule = "the key stays listed under its stored account only";
    let listed = ok(store.keys_of_account(a.id), rule);
    holds(
        listed.contains(&current),
        rule,
        &listed,
        "the key among account a's keys",
    );
    same(
        ok(store.keys_of_account(b.id), rule),
        vec![ftp_of_b.clone()],
        rule,
    );
    same(ok(store.keys_of_account(ghost), rule), vec![], rule);
    let rule = "the channel rule follows the stored channel, not the ones updates named";
    ok(
        insert(&*store, &record(ids.key(), a.id, Channel::Ftp, "a-ftp"), 1),
        &format!("{rule}: account a holds no FTP key"),
    );
    refused(
        insert(
            &*store,
            &record(ids.key(), a.id, Channel::Http, "a-http-2"),
            1,
        ),
        Want::Taken(Existing::ChannelFull(Channel::Http)),
        &format!("{rule}: account a still holds its HTTP key"),
    );
    same(
        ok(store.key(held_ftp.id), "key succeeds"),
        Some(held_ftp),
        "other keys are untouched",
    );
    same(
        ok(store.key(ftp_of_b.id), "key succeeds"),
        Some(ftp_of_b),
        "other keys are untouched",
    );
}

/// An upgrade of the hash changes the current hash and nothing else: not
/// the version, not `changed_at`, not the previous secret or any other
/// field; it records no event; and an update from the unchanged version
/// still applies after it.
pub fn upgrade_changes_only_the_hash(store: Arc<DynStore>) {
    let mut ids = Ids::new(62);
    let a = add_master(&*store, &mut ids);
    let mut k = record(ids.key(), a.id, Channel::WebService, "upgrade-only");
    k.label = Some("upgraded".into());
    k.version = 4;
    k.changed_at = START + Duration::nanoseconds(777);
    k.whitelist = Whitelist::parse(&["192.0.2.0/24"], 10).expect("an entry");
    k.previous_secret = Some(PreviousSecret {
        hash: hash("previous"),
        expires_at: START + Duration::hours(2),
    });
    put(&*store, &k, 1);
    let trail = ok(store.audit_events(a.id, 100), "audit_events succeeds");
    let upgraded = hash("upgraded");
    same(
        ok(
            store.upgrade_secret_hash(k.id, &k.secret_hash, &upgraded),
            "upgrade succeeds",
        ),
        true,
        "an upgrade from the current hash answers true",
    );
    let expected = KeyRecord {
        secret_hash: upgraded.clone(),
        ..k.clone()
    };
    same(
        ok(store.key(k.id), "key succeeds"),
        Some(expected.clone()),
        "upgrade_secret_hash changes the current hash only: not the version, changed_at, previous secret or anything else",
    );
    same(
        ok(
            store.key_by_identifier("UPGRADE-ONLY"),
            "key_by_identifier succeeds",
        ),
        Some(expected.clone()),
        "the lookup by identifier reads the upgraded hash",
    );
    same(
        ok(store.audit_events(a.id, 100), "audit_events succeeds"),
        trail,
        "upgrade_secret_hash records no event",
    );
    let v5 = next(&expected, "v5");
    ok(
        store.update_key(
            &v5,
            4,
            &about(&v5, AuditKind::CredentialsChanged, "after upgrade"),
        ),
        "an upgrade bumps no version: an update from the version before it applies",
    );
    let active = ok(store.active_channels(a.id), "active_channels succeeds");
    same(
        active.len(),
        1,
        "an upgrade leaves the account's keys as they were",
    );
}

//! Refused writes: every kind of refusal of every write leaves no trace (no
//! audit event, nothing changed), and when a write breaks several rules at
//! once, the error the contract's table puts first wins.

use super::support::*;
use crate::audit::AuditKind;
use crate::channel::Channel;
use crate::key::KeyRecord;
use crate::store::{DynStore, Existing};
use crate::testing::records::{event, key as record, master, opened};
use std::sync::Arc;

const NO_TRACE: &str = "a refused write leaves no trace: no audit event, nothing changed";

/// A store with two masters, a sub-account, and keys on several channels
/// (REST at its limit of 2), and the watch over all of it.
struct Scene {
    a: crate::Account,
    b: crate::Account,
    ftp: KeyRecord,
    http: KeyRecord,
    rest: Vec<KeyRecord>,
    watch: Watch,
}

impl Scene {
    #[track_caller]
    fn new(store: &DynStore, ids: &mut Ids) -> Scene {
        let a = add_master(store, ids);
        let b = add_master(store, ids);
        let s = add_sub(store, ids, a.id);
        let ftp = add_key(store, ids, a.id, Channel::Ftp, "scene-ftp");
        let http = add_key(store, ids, s.id, Channel::Http, "Scene_HTTP");
        let rest: Vec<KeyRecord> = (0..2)
            .map(|i| {
                let k = record(ids.key(), a.id, Channel::Rest, &format!("scene-rest-{i}"));
                put(store, &k, 2);
                k
            })
            .collect();
        let mut watch = Watch::default();
        watch.account(&a).account(&b).account(&s);
        for k in [&ftp, &http].into_iter().chain(&rest) {
            watch.key(k);
        }
        Scene {
            a,
            b,
            ftp,
            http,
            rest,
            watch,
        }
    }

    /// Also watches what a refused write would have created.
    fn watching(&self, accounts: &[crate::AccountId], keys: &[&KeyRecord]) -> Watch {
        let mut w = self.watch.clone();
        w.accounts.extend_from_slice(accounts);
        for k in keys {
            w.key(k);
        }
        w
    }
}

/// Every refusal of `create_account` (a taken id, a missing parent, an
/// initial key of another account, a taken key id, a taken identifier, a
/// full channel, two initial keys clashing) records no event and changes
/// nothing: not the new account, not its keys, not any other account's
/// trail.
pub fn refused_account_creations_leave_no_trace(store: Arc<DynStore>) {
    let mut ids = Ids::new(21);
    let sc = Scene::new(&*store, &mut ids);
    let fresh = master(ids.account());
    let ghost = ids.account();
    let key_of =
        |ids: &mut Ids, channel, identifier: &str| record(ids.key(), fresh.id, channel, identifier);
    let good = key_of(&mut ids, Channel::Email, "fresh-email");
    let cases: Vec<(&str, crate::Account, Vec<KeyRecord>, Want)> = vec![
        (
            "taken account id",
            crate::Account {
                created_at: fresh.created_at,
                ..sc.a.clone()
            },
            vec![record(ids.key(), sc.a.id, Channel::Email, "fresh-for-a")],
            Want::Taken(Existing::Account),
        ),
        (
            "missing parent",
            sub(fresh.id, ghost),
            vec![good.clone()],
            Want::AccountNotFound(ghost),
        ),
        (
            "initial key of another account",
            fresh.clone(),
            vec![
                good.clone(),
                record(ids.key(), sc.b.id, Channel::Ftp, "fresh-for-b"),
            ],
            Want::AccountNotFound(sc.b.id),
        ),
        (
            "initial key with a taken key id",
            fresh.clone(),
            vec![
                good.clone(),
                record(sc.ftp.id, fresh.id, Channel::Ftp, "fresh-ftp"),
            ],
            Want::Taken(Existing::Key),
        ),
        (
            "two initial keys with one key id",
            fresh.clone(),
            vec![
                good.clone(),
                record(good.id, fresh.id, Channel::Ftp, "fresh-ftp"),
            ],
            Want::Taken(Existing::Key),
        ),
        (
            "initial key with a taken identifier",
            fresh.clone(),
            vec![good.clone(), key_of(&mut ids, Channel::Ftp, "SCENE_http")],
            Want::Taken(Existing::Identifier),
        ),
        (
            "two initial keys with one identifier",
            fresh.clone(),
            vec![good.clone(), key_of(&mut ids, Channel::Ftp, "FRESH-email")],
            Want::Taken(Existing::Identifier),
        ),
        (
            "two initial keys of one channel",
            fresh.clone(),
            vec![
                good.clone(),
                key_of(&mut ids, Channel::Email, "fresh-email-2"),
            ],
            Want::Taken(Existing::ChannelFull(Channel::Email)),
        ),
    ];
    for (case, account, keys, want) in cases {
        let refs: Vec<&KeyRecord> = keys.iter().collect();
        let watch = sc.watching(&[account.id], &refs);
        let before = Snapshot::take(&*store, &watch);
        let mut events = vec![opened(&account)];
        events.extend(keys.iter().map(created_event));
        refused(
            store.create_account(&account, &keys, &events),
            want,
            &format!("create_account refuses a write with a {case}"),
        );
        before.unchanged(
            &*store,
            &watch,
            &format!("{NO_TRACE} (create_account, {case})"),
        );
    }
}

/// Every refusal of `insert_key` (a missing account, a taken key id, a
/// taken identifier in any case, a full channel, the REST limit, a limit of
/// 0) records no event and changes nothing.
pub fn refused_key_inserts_leave_no_trace(store: Arc<DynStore>) {
    let mut ids = Ids::new(22);
    let sc = Scene::new(&*store, &mut ids);
    let ghost = ids.account();
    let cases: Vec<(&str, KeyRecord, u32, Want)> = vec![
        (
            "missing account",
            record(ids.key(), ghost, Channel::Ftp, "ghost-ftp"),
            1,
            Want::AccountNotFound(ghost),
        ),
        (
            "taken key id",
            record(sc.ftp.id, sc.b.id, Channel::Http, "new-http"),
            1,
            Want::Taken(Existing::Key),
        ),
        (
            "taken identifier",
            record(ids.key(), sc.b.id, Channel::Http, "scene_http"),
            1,
            Want::Taken(Existing::Identifier),
        ),
        (
            "taken identifier of the same account",
            record(ids.key(), sc.a.id, Channel::Rest, "SCENE-FTP"),
            10,
            Want::Taken(Existing::Identifier),
        ),
        (
            "full channel",
            record(ids.key(), sc.a.id, Channel::Ftp, "second-ftp"),
            1,
            Want::Taken(Existing::ChannelFull(Channel::Ftp)),
        ),
        (
            "full REST limit",
            record(ids.key(), sc.a.id, Channel::Rest, "third-rest"),
            2,
            Want::Taken(Existing::ChannelFull(Channel::Rest)),
        ),
        (
            "limit of 0",
            record(ids.key(), sc.b.id, Channel::Rest, "no-rest"),
            0,
            Want::Taken(Existing::ChannelFull(Channel::Rest)),
        ),
    ];
    for (case, key, max, want) in cases {
        let watch = sc.watching(&[key.account_id], &[&key]);
        let before = Snapshot::take(&*store, &watch);
        refused(
            insert(&*store, &key, max),
            want,
            &format!("insert_key refuses a key with a {case}"),
        );
        before.unchanged(&*store, &watch, &format!("{NO_TRACE} (insert_key, {case})"));
    }
}

/// Every refusal of `update_key` (a missing key, a stale or a future
/// version, an identifier taken by another key) records no event and
/// changes nothing; nor does an upgrade of the hash that answers `false`.
pub fn refused_updates_leave_no_trace(store: Arc<DynStore>) {
    let mut ids = Ids::new(23);
    let sc = Scene::new(&*store, &mut ids);
    let mut renamed = next(&sc.ftp, "renamed");
    renamed.identifier = "SCENE-rest-1".into();
    let ghost = next(
        &record(ids.key(), sc.a.id, Channel::Email, "ghost-key"),
        "ghost",
    );
    let cases: Vec<(&str, KeyRecord, u64, Want)> = vec![
        ("missing key", ghost.clone(), 1, Want::KeyNotFound(ghost.id)),
        (
            "stale version",
            next(&sc.ftp, "stale"),
            0,
            Want::Conflict {
                key: sc.ftp.id,
                expected: 0,
                found: 1,
            },
        ),
        (
            "future version",
            next(&next(&sc.ftp, "future"), "future"),
            2,
            Want::Conflict {
                key: sc.ftp.id,
                expected: 2,
                found: 1,
            },
        ),
        (
            "taken identifier",
            renamed,
            1,
            Want::Taken(Existing::Identifier),
        ),
    ];
    for (case, key, expected, want) in cases {
        let watch = sc.watching(&[], &[&key]);
        let before = Snapshot::take(&*store, &watch);
        refused(
            store.update_key(
                &key,
                expected,
                &about(&key, AuditKind::CredentialsChanged, case),
            ),
            want,
            &format!("update_key refuses an update with a {case}"),
        );
        before.unchanged(&*store, &watch, &format!("{NO_TRACE} (update_key, {case})"));
    }
    let before = Snapshot::take(&*store, &sc.watch);
    let rule = "an upgrade from a hash that is not the current one answers false";
    same(
        ok(
            store.upgrade_secret_hash(
                sc.http.id,
                &sc.ftp.secret_hash,
                &crate::testing::records::hash("up"),
            ),
            rule,
        ),
        false,
        rule,
    );
    same(
        ok(
            store.upgrade_secret_hash(
                ids.key(),
                &sc.ftp.secret_hash,
                &crate::testing::records::hash("up"),
            ),
            rule,
        ),
        false,
        "an upgrade of an absent key answers false",
    );
    before.unchanged(
        &*store,
        &sc.watch,
        "an upgrade that answers false changes nothing",
    );
}

/// Every refusal of `delete_key` (a key that never existed, one already
/// deleted, with or without a version; a stored key at another version
/// than asked) records no event and changes nothing, and `NotFound` wins
/// over `Conflict`.
pub fn refused_deletes_leave_no_trace(store: Arc<DynStore>) {
    let mut ids = Ids::new(24);
    let sc = Scene::new(&*store, &mut ids);
    let kept = next(&sc.rest[0], "kept at version 2");
    update(&*store, &kept, "to version 2");
    for (case, expected) in [
        ("an older version", kept.version - 1),
        ("a newer version", kept.version + 1),
        ("a version no key can be at", u64::MAX),
    ] {
        let before = Snapshot::take(&*store, &sc.watch);
        refused(
            store.delete_key(
                kept.id,
                Some(expected),
                &about(&kept, AuditKind::KeyDeleted, case),
            ),
            Want::Conflict {
                key: kept.id,
                expected,
                found: kept.version,
            },
            &format!("delete_key at {case} is a Conflict naming both versions"),
        );
        before.unchanged(
            &*store,
            &sc.watch,
            &format!("{NO_TRACE} (delete_key at {case})"),
        );
    }
    let doomed = sc.rest[1].clone();
    ok(
        store.delete_key(
            doomed.id,
            None,
            &about(&doomed, AuditKind::KeyDeleted, "first"),
        ),
        "a stored key can be deleted",
    );
    for (case, id) in [
        ("key that never existed", ids.key()),
        ("key already deleted", doomed.id),
    ] {
        let before = Snapshot::take(&*store, &sc.watch);
        for version in [None, Some(1), Some(2)] {
            refused(
                store.delete_key(
                    id,
                    version,
                    &event(sc.a.id, Some(&doomed), AuditKind::KeyDeleted, case),
                ),
                Want::KeyNotFound(id),
                &format!(
                    "delete_key of a {case} (version {version:?}) is NotFound naming the key, before any Conflict"
                ),
            );
        }
        before.unchanged(
            &*store,
            &sc.watch,
            &format!("{NO_TRACE} (delete_key, {case})"),
        );
    }
}

/// `create_account` breaking several rules at once is refused with the
/// first error of the contract's order: the taken account id, then the
/// missing parent, then the first initial key breaking a rule (a key of
/// another account, then its key id, its identifier, its channel).
pub fn which_error_wins_create_account(store: Arc<DynStore>) {
    let mut ids = Ids::new(25);
    let sc = Scene::new(&*store, &mut ids);
    let ghost = ids.account();
    let fresh = master(ids.account());
    let rule = |what: &str| format!("which error wins (create_account): {what}");

    // Taken id over missing parent and over every key error.
    let taken_sub = sub(sc.a.id, ghost);
    let bad_key = record(sc.ftp.id, sc.b.id, Channel::Ftp, "scene-ftp");
    refused(
        store.create_account(
            &taken_sub,
            std::slice::from_ref(&bad_key),
            &[opened(&taken_sub)],
        ),
        Want::Taken(Existing::Account),
        &rule("a taken account id wins over a missing parent and bad keys"),
    );
    // Missing parent over key errors.
    let orphan = sub(fresh.id, ghost);
    refused(
        store.create_account(
            &orphan,
            &[record(sc.ftp.id, fresh.id, Channel::Ftp, "scene-ftp")],
            &[],
        ),
        Want::AccountNotFound(ghost),
        &rule("a missing parent wins over the initial keys' errors"),
    );
    // Within a key: another account, then key id, then identifier, then channel.
    let cases: Vec<(&str, Vec<KeyRecord>, Want)> = vec![
        (
            "a key of another account wins over its taken id and identifier",
            vec![record(sc.ftp.id, sc.b.id, Channel::Ftp, "SCENE-FTP")],
            Want::AccountNotFound(sc.b.id),
        ),
        (
            "a taken key id wins over a taken identifier",
            vec![record(sc.http.id, fresh.id, Channel::Http, "scene-ftp")],
            Want::Taken(Existing::Key),
        ),
        (
            "a taken identifier wins over a full channel",
            vec![
                record(ids.key(), fresh.id, Channel::Ftp, "fresh-ftp"),
                record(ids.key(), fresh.id, Channel::Ftp, "scene-rest-0"),
            ],
            Want::Taken(Existing::Identifier),
        ),
        (
            "the first key breaking a rule decides (identifier before a later taken id)",
            vec![
                record(ids.key(), fresh.id, Channel::Email, "fresh-email"),
                record(ids.key(), fresh.id, Channel::Http, "SCENE-FTP"),
                record(sc.ftp.id, fresh.id, Channel::Ftp, "fresh-ftp-2"),
            ],
            Want::Taken(Existing::Identifier),
        ),
        (
            "the first key breaking a rule decides (full channel before a later key of another account)",
            vec![
                record(ids.key(), fresh.id, Channel::Email, "fresh-email"),
                record(ids.key(), fresh.id, Channel::Email, "fresh-email-2"),
                record(ids.key(), sc.b.id, Channel::Ftp, "fresh-ftp-3"),
            ],
            Want::Taken(Existing::ChannelFull(Channel::Email)),
        ),
    ];
    for (what, keys, want) in cases {
        let before = Snapshot::take(&*store, &sc.watch);
        refused(
            store.create_account(&fresh, &keys, &[opened(&fresh)]),
            want,
            &rule(what),
        );
        before.unchanged(&*store, &sc.watch, NO_TRACE);
    }
    let rule = "a refused account creation keeps nothing";
    same(ok(store.account(fresh.id), rule), None, rule);
}

/// `insert_key` breaking several rules at once is refused with the first
/// error of the contract's order: the missing account, then the taken key
/// id, then the taken identifier, then the full channel.
pub fn which_error_wins_insert_key(store: Arc<DynStore>) {
    let mut ids = Ids::new(26);
    let sc = Scene::new(&*store, &mut ids);
    let ghost = ids.account();
    let rule = |what: &str| format!("which error wins (insert_key): {what}");
    let cases: Vec<(&str, KeyRecord, u32, Want)> = vec![
        (
            "a missing account wins over a taken key id and identifier",
            record(sc.ftp.id, ghost, Channel::Ftp, "SCENE-FTP"),
            1,
            Want::AccountNotFound(ghost),
        ),
        (
            "a missing account wins over a limit of 0",
            record(ids.key(), ghost, Channel::Rest, "ghost-rest"),
            0,
            Want::AccountNotFound(ghost),
        ),
        (
            "a taken key id wins over a taken identifier and a full channel",
            record(sc.http.id, sc.a.id, Channel::Ftp, "scene-rest-0"),
            1,
            Want::Taken(Existing::Key),
        ),
        (
            "a taken key id wins over the REST limit",
            record(sc.ftp.id, sc.a.id, Channel::Rest, "brand-new"),
            2,
            Want::Taken(Existing::Key),
        ),
        (
            "a taken identifier wins over a full channel",
            record(ids.key(), sc.a.id, Channel::Ftp, "scene_http"),
            1,
            Want::Taken(Existing::Identifier),
        ),
        (
            "a taken identifier wins over the REST limit",
            record(ids.key(), sc.a.id, Channel::Rest, "SCENE-REST-1"),
            2,
            Want::Taken(Existing::Identifier),
        ),
        (
            "a taken identifier wins over a limit of 0",
            record(ids.key(), sc.b.id, Channel::Rest, "scene-ftp"),
            0,
            Want::Taken(Existing::Identifier),
        ),
    ];
    for (what, key, max, want) in cases {
        let watch = sc.watching(&[], &[&key]);
        let before = Snapshot::take(&*store, &watch);
        refused(insert(&*store, &key, max), want, &rule(what));
        before.unchanged(&*store, &watch, NO_TRACE);
    }
}

/// `update_key` breaking several rules at once is refused with the first
/// error of the contract's order: the missing key, then the moved version,
/// then the taken identifier.
pub fn which_error_wins_update_key(store: Arc<DynStore>) {
    let mut ids = Ids::new(27);
    let sc = Scene::new(&*store, &mut ids);
    let rule = |what: &str| format!("which error wins (update_key): {what}");
    let mut ghost = record(ids.key(), sc.a.id, Channel::Ftp, "scene-http");
    ghost.version = 2;
    let mut stale_clash = next(&sc.ftp, "x");
    stale_clash.identifier = "SCENE-REST-0".into();
    let cases: Vec<(&str, KeyRecord, u64, Want)> = vec![
        (
            "a missing key wins over a taken identifier",
            ghost.clone(),
            1,
            Want::KeyNotFound(ghost.id),
        ),
        (
            "a moved version wins over a taken identifier",
            stale_clash.clone(),
            7,
            Want::Conflict {
                key: sc.ftp.id,
                expected: 7,
                found: 1,
            },
        ),
    ];
    for (what, key, expected, want) in cases {
        let watch = sc.watching(&[], &[&key]);
        let before = Snapshot::take(&*store, &watch);
        refused(
            store.update_key(
                &key,
                expected,
                &about(&key, AuditKind::CredentialsChanged, what),
            ),
            want,
            &rule(what),
        );
        before.unchanged(&*store, &watch, NO_TRACE);
    }
}

//! The service's rules about accounts, on the in-memory store: default keys
//! of legacy masters, nothing for new accounts, who may act on what, the
//! audit trail of every change. No store can break these (the store's part,
//! keeping what it is given, is the conformance suite's).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use apikeys::service::CredentialChange;
use apikeys::testing::{Fixture, START};
use apikeys::{
    AccountId, ActivationPolicy, Actor, AuditKind, Channel, Error, IdentifierChoice, NewAccount,
    NewKey, Secret, SecretChoice,
};
use common::{any_ip, memory, op, wl};
use time::Duration;

/// A master created before the cutover gets FTP, HTTP, Web Service and
/// Email keys with generated credentials that work, and their secrets once.
#[test]
fn legacy_master_gets_default_keys() {
    let store = memory();
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
#[test]
fn new_accounts_get_nothing() {
    let store = memory();
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

/// The operator may do anything; an account its own keys; a master its
/// sub-accounts' keys; siblings and a sub-account acting on its master are
/// refused, with "not found" for what they may not see.
#[test]
fn who_may_act() {
    let store = memory();
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
    // What an account may not see is "not found", as what does not exist;
    // opening a master is simply forbidden to an account.
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
#[test]
fn audit_trail_of_every_change() {
    let store = memory();
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
                expires_at: None,
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

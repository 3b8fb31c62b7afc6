//! Two stores on one file, as two processes would have: every lifecycle
//! change made through one (suspension, a master's policy, disabling,
//! expiry) stops the key through the other on its very next check, with
//! its statements, its verified-secret cache and a REST token warm.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use apikeys::testing::{Fixture, START};
use apikeys::{
    AccountPolicy, Actor, AuthError, Channel, ChannelSet, NewAccount, NewKey, Secret, Whitelist,
};
use apikeys_sqlite::SqliteStore;
use std::sync::Arc;

fn reason(r: Result<apikeys::Authenticated, AuthError>) -> String {
    match r {
        Err(AuthError::InvalidCredentials(reason)) => format!("{reason:?}"),
        Err(AuthError::AddressNotAllowed { list, .. }) => format!("address:{list}"),
        other => format!("{other:?}"),
    }
}

/// What it is, how to make it, how to undo it, and the refusal it causes.
type Change<'a> = (&'a str, Box<dyn Fn() + 'a>, Box<dyn Fn() + 'a>, &'a str);

#[test]
fn each_lifecycle_change_through_one_store_is_seen_through_another_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("two.db");
    let writer = Fixture::new(Arc::new(SqliteStore::open(&path).unwrap()), 1);
    let reader = Fixture::new(Arc::new(SqliteStore::open(&path).unwrap()), 2);
    let op = Actor::Operator;
    let m = writer
        .keys
        .open_account(op, NewAccount::master().created_at(START))
        .unwrap()
        .account;
    let s = writer
        .keys
        .open_account(op, NewAccount::sub(m.id).created_at(START))
        .unwrap()
        .account;
    let chosen = "a-chosen-secret-for-both-stores";
    let k = writer
        .keys
        .create_key(
            op,
            s.id,
            NewKey::chosen(Channel::Rest, "lifecycle-key", Secret::new(chosen)),
        )
        .unwrap()
        .key;
    let client: std::net::IpAddr = "192.0.2.9".parse().unwrap();
    let check = || {
        reader
            .keys
            .authenticate(Channel::Rest, "lifecycle-key", chosen, client)
    };
    let who = check().unwrap();
    check().unwrap();
    assert_eq!(
        reader.keys.check_stats().cached,
        1,
        "the reader's cache is warm"
    );
    let token = reader.keys.issue_token(&who).unwrap().token;
    let by_token = || {
        reader
            .keys
            .authenticate_token(token.expose_secret(), client)
    };
    by_token().unwrap();

    let changes: Vec<Change<'_>> = vec![
        (
            "master suspended",
            Box::new(|| drop(writer.keys.set_suspended(op, m.id, true).unwrap())),
            Box::new(|| drop(writer.keys.set_suspended(op, m.id, false).unwrap())),
            "AccountSuspended",
        ),
        (
            "sub-account suspended",
            Box::new(|| drop(writer.keys.set_suspended(op, s.id, true).unwrap())),
            Box::new(|| drop(writer.keys.set_suspended(op, s.id, false).unwrap())),
            "AccountSuspended",
        ),
        (
            "REST no longer allowed",
            Box::new(|| {
                let p = AccountPolicy {
                    sub_account_channels: ChannelSet::of(&[Channel::Ftp]),
                    ..AccountPolicy::default()
                };
                drop(writer.keys.set_account_policy(op, m.id, p).unwrap());
            }),
            Box::new(|| {
                drop(
                    writer
                        .keys
                        .set_account_policy(op, m.id, AccountPolicy::default())
                        .unwrap(),
                )
            }),
            "ChannelNotAllowed",
        ),
        (
            "master whitelist",
            Box::new(|| {
                let p = AccountPolicy {
                    whitelist: Whitelist::parse(&["10.0.0.0/8"], 10).unwrap(),
                    ..AccountPolicy::default()
                };
                drop(writer.keys.set_account_policy(op, m.id, p).unwrap());
            }),
            Box::new(|| {
                drop(
                    writer
                        .keys
                        .set_account_policy(op, m.id, AccountPolicy::default())
                        .unwrap(),
                )
            }),
            "address:master",
        ),
        (
            "key disabled",
            Box::new(|| drop(writer.keys.set_enabled(op, k.id, false, None).unwrap())),
            Box::new(|| drop(writer.keys.set_enabled(op, k.id, true, None).unwrap())),
            "KeyDisabled",
        ),
        (
            "lifetime passed",
            Box::new(|| {
                // The key, created at the reader's now, is older than 1 ns
                // a second later.
                reader.clock.advance(time::Duration::seconds(1));
                let p = AccountPolicy {
                    max_key_lifetime: Some(time::Duration::nanoseconds(1)),
                    ..AccountPolicy::default()
                };
                drop(writer.keys.set_account_policy(op, m.id, p).unwrap());
            }),
            Box::new(|| {
                drop(
                    writer
                        .keys
                        .set_account_policy(op, m.id, AccountPolicy::default())
                        .unwrap(),
                )
            }),
            "KeyExpired",
        ),
    ];
    for (what, stop, restore, expected) in &changes {
        stop();
        assert_eq!(
            reason(check()),
            *expected,
            "{what}: the check through the other store"
        );
        assert_eq!(
            reason(by_token()),
            *expected,
            "{what}: the token through the other store"
        );
        restore();
        check().unwrap_or_else(|e| panic!("{what}: restored, yet {e:?}"));
        by_token().unwrap();
    }
}

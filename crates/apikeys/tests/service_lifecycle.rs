//! The lifecycle rules of the service, on the in-memory store: expiry,
//! disabling, suspension of accounts and their sub-accounts, a master's
//! policy over its sub-accounts, last use recorded write-behind, and
//! dormancy. Each with the verified-secret cache and REST tokens in play.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use apikeys::auth::SecretSlot;
use apikeys::service::{CredentialChange, Grace, KeyUpdate};
use apikeys::testing::{Fixture, Intercepted, START};
use apikeys::{
    AccountPolicy, AccountPolicyError, Actor, AuditKind, AuthError, Channel, ChannelSet, Error,
    ExpiryError, KeyState, MemoryStore, NewAccount, NewKey, Policy, Refusal, Secret, Store,
    StoreCall, StoreError, ThrottlePolicy, UsageFlusher, UsagePolicy, Whitelist, WhitelistScope,
};
use common::{any_ip, ip, memory, op, refusal, wl};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use time::Duration;

fn generated(
    f: &Fixture,
    account: apikeys::AccountId,
    channel: Channel,
) -> (apikeys::ApiKey, String) {
    let k = f
        .keys
        .create_key(op(), account, NewKey::generated(channel))
        .unwrap();
    let secret = k.secret.unwrap().expose_secret().to_owned();
    (k.key, secret)
}

fn auth(
    f: &Fixture,
    k: &apikeys::ApiKey,
    secret: &str,
) -> Result<apikeys::Authenticated, AuthError> {
    f.keys
        .authenticate(k.channel, &k.identifier, secret, any_ip())
}

/// An expiry set at creation, changed, cleared: the key works until the
/// instant and refuses from it on (the boundary included), with its own
/// reason; an expiry in the past or beyond 2200 is refused and nothing
/// changes.
#[test]
fn keys_expire_exactly_at_their_expiry() {
    let f = Fixture::new(memory(), 301);
    let m = f.master();
    let at = START + Duration::hours(2);
    let k = f
        .keys
        .create_key(op(), m.id, NewKey::generated(Channel::Rest).with_expiry(at))
        .unwrap();
    let secret = k.secret.as_ref().unwrap().expose_secret().to_owned();
    assert_eq!(k.key.expires_at, Some(at));
    assert_eq!(k.key.state, KeyState::Active);
    f.clock
        .advance(Duration::hours(2) - Duration::nanoseconds(1));
    auth(&f, &k.key, &secret).expect("a key works until its expiry");
    f.clock.advance(Duration::nanoseconds(1));
    assert_eq!(refusal(auth(&f, &k.key, &secret)), Refusal::KeyExpired);
    assert_eq!(f.keys.key(op(), k.key.id).unwrap().state, KeyState::Expired);
    // Moved later, it works again; cleared, it works for good.
    let later = f
        .keys
        .set_expiry(op(), k.key.id, Some(at + Duration::days(1)), None)
        .unwrap();
    assert_eq!((later.state, later.version), (KeyState::Active, 2));
    auth(&f, &k.key, &secret).unwrap();
    let cleared = f.keys.set_expiry(op(), k.key.id, None, 2).unwrap();
    assert_eq!(cleared.expires_at, None);
    f.clock.advance(Duration::days(3650));
    auth(&f, &k.key, &secret).unwrap();
    // Bad expiries.
    let now = f.keys.now();
    assert!(matches!(
        f.keys.set_expiry(op(), k.key.id, Some(now), None),
        Err(Error::InvalidExpiry(ExpiryError::NotInFuture { .. }))
    ));
    assert!(matches!(
        f.keys.set_expiry(
            op(),
            k.key.id,
            Some(time::macros::datetime!(2200-01-01 0:00 UTC)),
            None
        ),
        Err(Error::InvalidExpiry(ExpiryError::OutOfRange { .. }))
    ));
    assert!(matches!(
        f.keys.create_key(
            op(),
            m.id,
            NewKey::generated(Channel::Ftp).with_expiry(now - Duration::seconds(1))
        ),
        Err(Error::InvalidExpiry(ExpiryError::NotInFuture { .. }))
    ));
    assert!(
        f.keys.keys(op(), m.id).unwrap().len() == 1,
        "a refused creation creates nothing"
    );
    assert_eq!(
        f.keys.key(op(), k.key.id).unwrap().version,
        3,
        "refused changes change nothing"
    );
    let kinds: Vec<AuditKind> = f
        .keys
        .audit(op(), m.id, 10)
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        &kinds[..2],
        &[AuditKind::ExpiryChanged, AuditKind::ExpiryChanged]
    );
}

/// The policy's lifetime cap: a new key expires at the cap unless it asks
/// for sooner, may not ask for later, and may not clear its expiry.
#[test]
fn the_policy_caps_new_keys_lifetime() {
    let policy = Policy::fast_for_tests()
        .throttle(ThrottlePolicy::off())
        .max_key_lifetime(Some(Duration::days(90)));
    let f = Fixture::with_policy(memory(), 302, policy);
    let m = f.master();
    let (k, _) = generated(&f, m.id, Channel::Rest);
    assert_eq!(k.expires_at, Some(START + Duration::days(90)));
    let sooner = f
        .keys
        .create_key(
            op(),
            m.id,
            NewKey::generated(Channel::Ftp).with_expiry(START + Duration::days(9)),
        )
        .unwrap();
    assert_eq!(sooner.key.expires_at, Some(START + Duration::days(9)));
    let e = f
        .keys
        .create_key(
            op(),
            m.id,
            NewKey::generated(Channel::Http).with_expiry(START + Duration::days(91)),
        )
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::InvalidExpiry(ExpiryError::BeyondLifetime { by: "policy", .. })
        ),
        "{e}"
    );
    f.clock.advance(Duration::days(1));
    assert!(matches!(
        f.keys.set_expiry(op(), k.id, None, None),
        Err(Error::InvalidExpiry(ExpiryError::Required { .. }))
    ));
    assert!(matches!(
        f.keys.set_expiry(
            op(),
            k.id,
            Some(START + Duration::days(90) + Duration::nanoseconds(1)),
            None
        ),
        Err(Error::InvalidExpiry(ExpiryError::BeyondLifetime { .. }))
    ));
    f.keys
        .set_expiry(op(), k.id, Some(START + Duration::days(90)), None)
        .unwrap();
    assert!(
        Policy::default()
            .max_key_lifetime(Some(Duration::ZERO))
            .validate()
            .is_err()
    );
    assert!(
        Policy::default()
            .max_key_lifetime(Some(Duration::days(36_526)))
            .validate()
            .is_err()
    );
}

/// A disabled key refuses, with a warm verified-secret cache and with a
/// live token, and works again once enabled; both changes are audited
/// versions of the key.
#[test]
fn disabled_keys_refuse_until_enabled() {
    let f = Fixture::new(memory(), 303);
    let m = f.master();
    let chosen = "a-chosen-secret-for-disabling";
    let k = f
        .keys
        .create_key(
            op(),
            m.id,
            NewKey::chosen(Channel::Rest, "to-disable", Secret::new(chosen)),
        )
        .unwrap()
        .key;
    let who = auth(&f, &k, chosen).unwrap();
    auth(&f, &k, chosen).unwrap();
    assert_eq!(f.keys.check_stats().cached, 1, "the cache is warm");
    let token = f.keys.issue_token(&who).unwrap().token;
    let disabled = f.keys.set_enabled(op(), k.id, false, 1).unwrap();
    assert_eq!(
        (disabled.state, disabled.enabled, disabled.version),
        (KeyState::Disabled, false, 2)
    );
    assert_eq!(refusal(auth(&f, &k, chosen)), Refusal::KeyDisabled);
    assert_eq!(
        refusal(f.keys.authenticate_token(token.expose_secret(), any_ip())),
        Refusal::KeyDisabled
    );
    assert_eq!(
        refusal(auth(&f, &k, "wrong-secret-entirely")),
        Refusal::WrongSecret,
        "a wrong secret is still just wrong"
    );
    f.keys.set_enabled(op(), k.id, true, 2).unwrap();
    auth(&f, &k, chosen).unwrap();
    f.keys
        .authenticate_token(token.expose_secret(), any_ip())
        .unwrap();
    let kinds: Vec<AuditKind> = f
        .keys
        .audit(op(), m.id, 2)
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, vec![AuditKind::KeyEnabled, AuditKind::KeyDisabled]);
    // Several fields in one write: one version, one event naming each.
    let both = KeyUpdate {
        label: Some(Some("nightly".into())),
        expires_at: Some(Some(START + Duration::days(5))),
        enabled: Some(false),
    };
    let changed = f.keys.update_key(op(), k.id, both, 3).unwrap();
    assert_eq!(
        (changed.version, changed.label.as_deref()),
        (4, Some("nightly"))
    );
    let last = &f.keys.audit(op(), m.id, 1).unwrap()[0];
    assert_eq!(last.kind, AuditKind::KeyDisabled);
    assert!(
        last.detail.contains("disabled")
            && last.detail.contains("expiry set")
            && last.detail.contains("label set"),
        "{}",
        last.detail
    );
    assert!(matches!(
        f.keys.update_key(op(), k.id, KeyUpdate::default(), None),
        Err(Error::NothingToChange)
    ));
    assert!(matches!(
        f.keys.set_enabled(op(), k.id, true, 3),
        Err(Error::StaleVersion { .. })
    ));
}

/// Suspending a master stops its keys, its sub-accounts' keys and their
/// tokens from the next request on, in another service over the same store
/// too (another process), cache warm; resuming brings them back.
#[test]
fn suspension_stops_a_master_and_its_sub_accounts() {
    let store = memory();
    let f = Fixture::new(store.clone(), 304);
    let other_process = Fixture::new(store, 305);
    let m = f.master();
    let s = f.sub(m.id);
    let (mk, msecret) = generated(&f, m.id, Channel::Ftp);
    let chosen = "sub-account-chosen-secret";
    let sk = f
        .keys
        .create_key(
            op(),
            s.id,
            NewKey::chosen(Channel::Rest, "sub-rest", Secret::new(chosen)),
        )
        .unwrap()
        .key;
    let who = auth(&other_process, &sk, chosen).unwrap();
    auth(&other_process, &sk, chosen).unwrap();
    let token = other_process.keys.issue_token(&who).unwrap().token;
    let suspended = f.keys.set_suspended(op(), m.id, true).unwrap();
    assert!(suspended.suspended);
    assert_eq!(
        refusal(auth(&other_process, &mk, &msecret)),
        Refusal::AccountSuspended
    );
    assert_eq!(
        refusal(auth(&other_process, &sk, chosen)),
        Refusal::AccountSuspended
    );
    assert_eq!(
        refusal(
            other_process
                .keys
                .authenticate_token(token.expose_secret(), any_ip())
        ),
        Refusal::AccountSuspended
    );
    assert_eq!(f.keys.key(op(), sk.id).unwrap().state, KeyState::Suspended);
    assert!(f.keys.account(op(), m.id).unwrap().suspended);
    f.keys.set_suspended(op(), m.id, false).unwrap();
    auth(&other_process, &mk, &msecret).unwrap();
    auth(&other_process, &sk, chosen).unwrap();
    other_process
        .keys
        .authenticate_token(token.expose_secret(), any_ip())
        .unwrap();
    // A sub-account alone.
    f.keys
        .set_suspended(Actor::Account(m.id), s.id, true)
        .unwrap();
    assert_eq!(refusal(auth(&f, &sk, chosen)), Refusal::AccountSuspended);
    auth(&f, &mk, &msecret).expect("the master's own keys are unaffected");
    // Who may.
    assert!(matches!(
        f.keys.set_suspended(Actor::Account(m.id), m.id, true),
        Err(Error::Forbidden { .. })
    ));
    assert!(matches!(
        f.keys.set_suspended(Actor::Account(s.id), s.id, false),
        Err(Error::Forbidden { .. })
    ));
    let stranger = f.master();
    assert!(matches!(
        f.keys
            .set_suspended(Actor::Account(stranger.id), s.id, false),
        Err(Error::AccountNotFound(_))
    ));
    let kinds: Vec<AuditKind> = f
        .keys
        .audit(op(), m.id, 10)
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        &kinds[..2],
        &[AuditKind::AccountResumed, AuditKind::AccountSuspended]
    );
}

/// A master's policy binds its sub-accounts' keys from the next request:
/// channels it no longer allows refuse and cannot be created, keys older
/// than its lifetime refuse as expired, new keys expire at the cap; only
/// the master or the operator sets it, and a sub-account's policy holds
/// only a whitelist.
#[test]
fn a_masters_policy_binds_its_sub_accounts_keys() {
    let f = Fixture::new(memory(), 306);
    let m = f.master();
    let s = f.sub(m.id);
    let (ftp, ftp_secret) = generated(&f, s.id, Channel::Ftp);
    let (own, own_secret) = generated(&f, m.id, Channel::Ftp);
    f.clock.advance(Duration::days(40));
    let policy = AccountPolicy {
        sub_account_channels: ChannelSet::of(&[Channel::Rest, Channel::Email]),
        max_key_lifetime: Some(Duration::days(30)),
        ..AccountPolicy::default()
    };
    f.keys
        .set_account_policy(Actor::Account(m.id), m.id, policy.clone())
        .unwrap();
    assert_eq!(
        refusal(auth(&f, &ftp, &ftp_secret)),
        Refusal::KeyExpired,
        "40 days old under a 30-day cap"
    );
    auth(&f, &own, &own_secret).expect("the master's own keys are not its sub-accounts'");
    assert!(matches!(
        f.keys
            .create_key(op(), s.id, NewKey::generated(Channel::Http)),
        Err(Error::ChannelNotAllowed {
            channel: Channel::Http,
            ..
        })
    ));
    let (rest, rest_secret) = generated(&f, s.id, Channel::Rest);
    assert_eq!(rest.expires_at, Some(f.keys.now() + Duration::days(30)));
    auth(&f, &rest, &rest_secret).unwrap();
    // The lifetime lifted, the channel still refused.
    f.keys
        .set_account_policy(
            op(),
            m.id,
            AccountPolicy {
                max_key_lifetime: None,
                ..policy
            },
        )
        .unwrap();
    assert_eq!(
        refusal(auth(&f, &ftp, &ftp_secret)),
        Refusal::ChannelNotAllowed
    );
    f.keys
        .set_account_policy(op(), m.id, AccountPolicy::default())
        .unwrap();
    auth(&f, &ftp, &ftp_secret).unwrap();
    // Who may set what.
    assert!(matches!(
        f.keys
            .set_account_policy(Actor::Account(s.id), s.id, AccountPolicy::default()),
        Err(Error::InvalidAccountPolicy(
            AccountPolicyError::SetBySubAccount(_)
        ))
    ));
    assert!(matches!(
        f.keys.set_account_policy(
            op(),
            s.id,
            AccountPolicy {
                sub_account_channels: ChannelSet::EMPTY,
                ..AccountPolicy::default()
            }
        ),
        Err(Error::InvalidAccountPolicy(
            AccountPolicyError::SubAccountRules
        ))
    ));
    assert!(matches!(
        f.keys.set_account_policy(
            op(),
            m.id,
            AccountPolicy {
                max_key_lifetime: Some(Duration::ZERO),
                ..AccountPolicy::default()
            }
        ),
        Err(Error::InvalidAccountPolicy(AccountPolicyError::Lifetime))
    ));
    let sub_list = AccountPolicy {
        whitelist: Whitelist::parse(&["10.0.0.0/8"], 100).unwrap(),
        ..AccountPolicy::default()
    };
    f.keys
        .set_account_policy(Actor::Account(m.id), s.id, sub_list)
        .unwrap();
    assert_eq!(
        f.keys
            .account_policy(Actor::Account(s.id), s.id)
            .unwrap()
            .whitelist
            .entries()
            .len(),
        1
    );
    let stranger = f.master();
    assert!(matches!(
        f.keys.account_policy(Actor::Account(stranger.id), m.id),
        Err(Error::AccountNotFound(_))
    ));
    let too_many: Vec<String> = (0..101).map(|i| format!("10.0.{i}.0/24")).collect();
    assert!(matches!(
        f.keys.set_account_policy(
            op(),
            m.id,
            AccountPolicy {
                whitelist: Whitelist::parse(&too_many, 1000).unwrap(),
                ..AccountPolicy::default()
            }
        ),
        Err(Error::InvalidWhitelist(_))
    ));
    assert_eq!(
        f.keys.audit(op(), m.id, 1).unwrap()[0].kind,
        AuditKind::PolicyChanged
    );
}

/// The chain of whitelists: the key's, its account's, its master's; the
/// explain call names the first that refuses, and authentication answers
/// "address not allowed" naming it to the embedder.
#[test]
fn the_whitelist_chain_names_the_list_that_refused() {
    let f = Fixture::new(memory(), 307);
    let m = f.master();
    let s = f.sub(m.id);
    let (k, secret) = generated(&f, s.id, Channel::Http);
    f.keys
        .set_whitelist(op(), k.id, wl(&["10.0.0.0/8"]))
        .unwrap();
    let list = |e: &[&str]| AccountPolicy {
        whitelist: Whitelist::parse(e, 100).unwrap(),
        ..AccountPolicy::default()
    };
    f.keys
        .set_account_policy(op(), s.id, list(&["10.1.0.0/16"]))
        .unwrap();
    f.keys
        .set_account_policy(op(), m.id, list(&["10.1.2.0/24"]))
        .unwrap();
    let try_from = |addr: &str| {
        f.keys
            .authenticate(Channel::Http, &k.identifier, &secret, ip(addr))
    };
    for (addr, refused_by) in [
        ("192.0.2.1", Some(WhitelistScope::Key)),
        ("10.2.0.1", Some(WhitelistScope::Account)),
        ("10.1.3.1", Some(WhitelistScope::Master)),
        ("10.1.2.3", None),
    ] {
        let explained = f.keys.explain_access(op(), k.id, ip(addr)).unwrap();
        assert_eq!(
            (explained.allowed, explained.refused_by),
            (refused_by.is_none(), refused_by),
            "{addr}"
        );
        assert_eq!(explained.lists.len(), 3);
        match (try_from(addr), refused_by) {
            (Ok(_), None) => {}
            (Err(AuthError::AddressNotAllowed { list, .. }), Some(scope)) => {
                assert_eq!(list, scope, "{addr}")
            }
            (other, _) => panic!("{addr}: {other:?}"),
        }
    }
}

/// Last use: noted in memory by each success, shown in the key's view at
/// once, written by a flush in one store call holding one entry per key,
/// however many uses; the previous secret's use kept apart; nothing written
/// on the hot path.
#[test]
fn last_use_is_written_behind_once_per_key() {
    let writes = Arc::new(AtomicUsize::new(0));
    let w = writes.clone();
    let store: Arc<apikeys::DynStore> = Arc::new(Intercepted {
        store: MemoryStore::new(),
        before: move |call| {
            if !matches!(
                call,
                StoreCall::Account
                    | StoreCall::Key
                    | StoreCall::KeysOfAccount
                    | StoreCall::KeyForAuthentication
                    | StoreCall::TokenForAuthentication
                    | StoreCall::Holders
                    | StoreCall::AuditEvents
                    | StoreCall::SubAccounts
            ) {
                w.fetch_add(1, Ordering::SeqCst);
            }
            Ok::<(), StoreError>(())
        },
    });
    let f = Fixture::new(store.clone(), 308);
    let m = f.master();
    let (a, a_secret) = generated(&f, m.id, Channel::Rest);
    let (b, b_secret) = generated(&f, m.id, Channel::Rest);
    let old = b_secret.clone();
    let rotated = f
        .keys
        .change_credentials(
            op(),
            b.id,
            CredentialChange::regenerate_secret().with_grace(Grace::For(Duration::days(1))),
        )
        .unwrap();
    let b_new = rotated.secret.unwrap().expose_secret().to_owned();
    let before = writes.load(Ordering::SeqCst);
    for i in 0..50 {
        f.clock.advance(Duration::seconds(1));
        f.keys
            .authenticate(
                Channel::Rest,
                &a.identifier,
                &a_secret,
                ip(&format!("192.0.2.{}", i + 1)),
            )
            .unwrap();
    }
    f.clock.advance(Duration::seconds(1));
    let used_old_at = f.keys.now();
    assert_eq!(auth(&f, &b, &old).unwrap().matched, SecretSlot::Previous);
    f.clock.advance(Duration::seconds(1));
    auth(&f, &b, &b_new).unwrap();
    assert_eq!(
        writes.load(Ordering::SeqCst),
        before,
        "authentication writes nothing"
    );
    let view = f.keys.key(op(), a.id).unwrap();
    assert_eq!(
        view.usage.last_used_address,
        Some(ip("192.0.2.50")),
        "the view shows uses not yet flushed"
    );
    assert_eq!(f.keys.usage_stats().waiting, 2);
    assert_eq!(f.keys.flush_usage().unwrap(), 2, "one entry per key");
    assert_eq!(
        writes.load(Ordering::SeqCst),
        before + 1,
        "one store write for the whole flush"
    );
    assert_eq!(f.keys.flush_usage().unwrap(), 0);
    assert_eq!(
        writes.load(Ordering::SeqCst),
        before + 1,
        "nothing to flush, no write"
    );
    let stored_a = store.key(a.id).unwrap().unwrap();
    assert_eq!(
        stored_a.usage.last_used_at,
        Some(START + Duration::seconds(50))
    );
    assert_eq!(stored_a.usage.last_used_address, Some(ip("192.0.2.50")));
    assert_eq!(stored_a.usage.previous_secret_last_used_at, None);
    let stored_b = store.key(b.id).unwrap().unwrap();
    assert_eq!(
        stored_b.usage.previous_secret_last_used_at,
        Some(used_old_at),
        "the old secret's use"
    );
    assert_eq!(
        stored_b.usage.last_used_at,
        Some(used_old_at + Duration::seconds(1))
    );
    assert_eq!(
        (stored_b.version, stored_b.changed_at),
        (2, START),
        "last use is not a change"
    );
    // A new grace period starts with no use of its old secret.
    let again = f
        .keys
        .change_credentials(
            op(),
            b.id,
            CredentialChange::regenerate_secret().with_grace(Grace::For(Duration::days(1))),
        )
        .unwrap();
    assert_eq!(again.key.usage.previous_secret_last_used_at, None);
    assert_eq!(
        again.key.usage.last_used_at,
        Some(used_old_at + Duration::seconds(1))
    );
}

/// A failed flush keeps its uses for the next; a full recorder drops new
/// keys' uses and counts them, never growing.
#[test]
fn failed_flushes_keep_their_uses_and_memory_is_bounded() {
    let fail = Arc::new(AtomicUsize::new(1));
    let fl = fail.clone();
    let store: Arc<apikeys::DynStore> = Arc::new(Intercepted {
        store: MemoryStore::new(),
        before: move |call| {
            if call == StoreCall::RecordUses && fl.load(Ordering::SeqCst) > 0 {
                fl.fetch_sub(1, Ordering::SeqCst);
                return Err(StoreError::backend("disk full"));
            }
            Ok(())
        },
    });
    let policy = Policy::fast_for_tests()
        .throttle(ThrottlePolicy::off())
        .usage(UsagePolicy {
            capacity: 3,
            ..UsagePolicy::default()
        });
    let f = Fixture::with_policy(store.clone(), 309, policy);
    let m = f.master();
    let keys: Vec<_> = (0..4).map(|_| generated(&f, m.id, Channel::Rest)).collect();
    for (k, s) in &keys {
        auth(&f, k, s).unwrap();
    }
    assert_eq!(
        (f.keys.usage_stats().waiting, f.keys.usage_stats().dropped),
        (3, 1)
    );
    assert!(f.keys.flush_usage().is_err());
    assert_eq!(
        f.keys.usage_stats().waiting,
        3,
        "a failed flush keeps its uses"
    );
    assert_eq!(f.keys.flush_usage().unwrap(), 3);
    let recorded = keys
        .iter()
        .filter(|(k, _)| {
            store
                .key(k.id)
                .unwrap()
                .unwrap()
                .usage
                .last_used_at
                .is_some()
        })
        .count();
    assert_eq!(recorded, 3);
    let off = Fixture::with_policy(
        memory(),
        310,
        Policy::fast_for_tests().usage(UsagePolicy {
            capacity: 0,
            ..UsagePolicy::default()
        }),
    );
    let om = off.master();
    let (k, s) = generated(&off, om.id, Channel::Rest);
    auth(&off, &k, &s).unwrap();
    assert_eq!(
        off.keys.usage_stats().waiting,
        0,
        "capacity 0 records nothing"
    );
}

/// Two processes recording for one key, flushing in either order: the
/// newest use stays.
#[test]
fn the_newest_use_wins_across_processes() {
    let store = memory();
    let one = Fixture::new(store.clone(), 311);
    let two = Fixture::new(store.clone(), 312);
    let m = one.master();
    let (k, s) = generated(&one, m.id, Channel::Ftp);
    two.clock.advance(Duration::minutes(5));
    two.keys
        .authenticate(Channel::Ftp, &k.identifier, &s, ip("192.0.2.2"))
        .unwrap();
    one.keys
        .authenticate(Channel::Ftp, &k.identifier, &s, ip("192.0.2.1"))
        .unwrap();
    two.keys.flush_usage().unwrap();
    one.keys.flush_usage().unwrap();
    let u = store.key(k.id).unwrap().unwrap().usage;
    assert_eq!(
        (u.last_used_at, u.last_used_address),
        (Some(START + Duration::minutes(5)), Some(ip("192.0.2.2")))
    );
}

/// A service in an `Arc`, as a flusher needs, over `store`.
fn shared(
    store: Arc<apikeys::DynStore>,
    policy: Policy,
) -> (Arc<apikeys::ApiKeys>, Arc<apikeys::ManualClock>) {
    let clock = Arc::new(apikeys::ManualClock::new(START));
    let svc = apikeys::ApiKeys::new(
        store,
        policy,
        clock.clone(),
        <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(315),
    )
    .unwrap();
    (Arc::new(svc), clock)
}

/// A key of a new master of `svc`, and its secret.
fn shared_key(svc: &apikeys::ApiKeys) -> (apikeys::ApiKey, String) {
    let m = svc
        .open_account(op(), NewAccount::master().created_at(START))
        .unwrap()
        .account;
    let k = svc
        .create_key(op(), m.id, NewKey::generated(Channel::Rest))
        .unwrap();
    (k.key, k.secret.unwrap().expose_secret().to_owned())
}

/// The flusher writes once per interval without being asked, and once
/// more when stopped.
#[test]
fn the_flusher_flushes_each_interval_and_at_stop() {
    let store = memory();
    let policy = Policy::fast_for_tests().usage(UsagePolicy {
        interval: Duration::milliseconds(50),
        ..UsagePolicy::default()
    });
    let (svc, _) = shared(store.clone(), policy);
    let (k, s) = shared_key(&svc);
    let flusher = UsageFlusher::start(svc.clone()).unwrap();
    svc.authenticate(Channel::Rest, &k.identifier, &s, any_ip())
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while store
        .key(k.id)
        .unwrap()
        .unwrap()
        .usage
        .last_used_at
        .is_none()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the flusher never wrote"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    flusher.stop();
    // The default interval (60 s): only the stop writes.
    let store = memory();
    let (svc, clock) = shared(store.clone(), Policy::fast_for_tests());
    let (k, s) = shared_key(&svc);
    let flusher = UsageFlusher::start(svc.clone()).unwrap();
    svc.authenticate(Channel::Rest, &k.identifier, &s, any_ip())
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(
        store
            .key(k.id)
            .unwrap()
            .unwrap()
            .usage
            .last_used_at
            .is_none(),
        "not before the interval"
    );
    flusher.stop();
    assert!(
        store
            .key(k.id)
            .unwrap()
            .unwrap()
            .usage
            .last_used_at
            .is_some(),
        "stopping flushes"
    );
    // Dropping it flushes too.
    clock.advance(Duration::seconds(1));
    svc.authenticate(Channel::Rest, &k.identifier, &s, ip("192.0.2.77"))
        .unwrap();
    drop(UsageFlusher::start(svc.clone()).unwrap());
    assert_eq!(
        store.key(k.id).unwrap().unwrap().usage.last_used_address,
        Some(ip("192.0.2.77"))
    );
}

/// Dormancy: keys unused for N days (a never-used key from its creation),
/// a master's including its sub-accounts', uses waiting for a flush
/// counting; the operator's listing in pages and of legacy defaults only;
/// days out of range refused.
#[test]
fn dormant_keys_are_those_unused_for_n_days() {
    let f = Fixture::new(memory(), 320);
    let legacy = f
        .keys
        .open_account(
            op(),
            NewAccount::master().created_at(time::macros::datetime!(2020-01-01 0:00 UTC)),
        )
        .unwrap();
    assert_eq!(legacy.issued.len(), 4);
    assert!(legacy.issued.iter().all(|k| k.key.legacy_default));
    let m = f.master();
    let s = f.sub(m.id);
    let (used, used_secret) = generated(&f, s.id, Channel::Rest);
    let (_idle, _) = generated(&f, m.id, Channel::Ftp);
    assert!(!_idle.legacy_default);
    f.clock.advance(Duration::days(10));
    auth(&f, &used, &used_secret).unwrap();
    let ids = |keys: Vec<apikeys::ApiKey>| {
        let mut v: Vec<_> = keys.into_iter().map(|k| k.id).collect();
        v.sort();
        v
    };
    assert_eq!(
        f.keys.dormant_keys(op(), m.id, 10).unwrap().len(),
        1,
        "the idle key, not the one just used (unflushed)"
    );
    f.keys.flush_usage().unwrap();
    assert_eq!(
        f.keys.dormant_keys(op(), m.id, 10).unwrap().len(),
        1,
        "the same once flushed"
    );
    assert_eq!(
        f.keys.dormant_keys(op(), m.id, 11).unwrap().len(),
        0,
        "created 10 days ago: not unused for 11"
    );
    f.clock.advance(Duration::days(5));
    assert_eq!(
        f.keys.dormant_keys(op(), m.id, 5).unwrap().len(),
        2,
        "the used key too, 5 days on"
    );
    assert_eq!(
        f.keys
            .dormant_keys(Actor::Account(s.id), s.id, 5)
            .unwrap()
            .len(),
        1,
        "a sub-account's own"
    );
    let stranger = f.master();
    assert!(matches!(
        f.keys.dormant_keys(Actor::Account(stranger.id), m.id, 5),
        Err(Error::AccountNotFound(_))
    ));
    for bad in [0, 36_501] {
        assert!(matches!(
            f.keys.dormant_keys(op(), m.id, bad),
            Err(Error::InvalidDormancy(_))
        ));
    }
    // The operator's listing.
    let (all, next) = f.keys.all_dormant_keys(op(), 5, false, None, 100).unwrap();
    assert_eq!((all.len(), next), (6, None));
    let (first, next) = f.keys.all_dormant_keys(op(), 5, false, None, 4).unwrap();
    let (rest, last) = f.keys.all_dormant_keys(op(), 5, false, next, 4).unwrap();
    assert_eq!((first.len(), rest.len(), last), (4, 2, None));
    let mut paged = ids(first);
    paged.extend(ids(rest));
    paged.sort();
    assert_eq!(paged, ids(all));
    let (defaults, _) = f.keys.all_dormant_keys(op(), 5, true, None, 100).unwrap();
    assert_eq!(
        ids(defaults),
        ids(legacy.issued.iter().map(|k| k.key.clone()).collect()),
        "legacy defaults never used"
    );
    assert!(matches!(
        f.keys
            .all_dormant_keys(Actor::Account(m.id), 5, false, None, 10),
        Err(Error::Forbidden { .. })
    ));
}

/// The dormancy action: off unless the policy sets it; its dry run lists
/// and changes nothing; its run disables exactly the enabled legacy
/// default keys never used and older than the period, audited, and a
/// second run finds nothing.
#[test]
fn the_dormancy_action_disables_only_unused_legacy_defaults() {
    let off = Fixture::new(memory(), 321);
    assert!(matches!(
        off.keys.disable_dormant_legacy_defaults(op(), true),
        Err(Error::DormancyActionOff)
    ));
    let policy = Policy::fast_for_tests()
        .throttle(ThrottlePolicy::off())
        .disable_dormant_legacy_defaults_after(Some(Duration::days(180)));
    let f = Fixture::with_policy(memory(), 322, policy);
    let old = time::macros::datetime!(2020-01-01 0:00 UTC);
    let a = f
        .keys
        .open_account(op(), NewAccount::master().created_at(old))
        .unwrap();
    let b = f
        .keys
        .open_account(op(), NewAccount::master().created_at(old))
        .unwrap();
    // One of b's defaults is used; a's are not.
    let used = &b.issued[0];
    f.clock.advance(Duration::days(181));
    f.keys
        .authenticate(
            used.key.channel,
            &used.key.identifier,
            used.secret.as_ref().unwrap().expose_secret(),
            any_ip(),
        )
        .unwrap();
    // A fresh legacy master (opened now, its defaults issued now) is not dormant yet.
    let young = f
        .keys
        .open_account(op(), NewAccount::master().created_at(old))
        .unwrap();
    assert!(matches!(
        f.keys
            .disable_dormant_legacy_defaults(Actor::Account(a.account.id), true),
        Err(Error::Forbidden { .. })
    ));
    let dry = f.keys.disable_dormant_legacy_defaults(op(), true).unwrap();
    assert_eq!(
        dry.len(),
        7,
        "a's four and b's three unused (b's used one is waiting for a flush)"
    );
    assert!(
        f.keys
            .keys(op(), a.account.id)
            .unwrap()
            .iter()
            .all(|k| k.enabled),
        "a dry run changes nothing"
    );
    f.keys.flush_usage().unwrap();
    let done = f.keys.disable_dormant_legacy_defaults(op(), false).unwrap();
    assert_eq!(done.len(), 7);
    assert!(done.iter().all(|k| k.state == KeyState::Disabled));
    assert!(
        f.keys
            .keys(op(), a.account.id)
            .unwrap()
            .iter()
            .all(|k| !k.enabled)
    );
    let b_keys = f.keys.keys(op(), b.account.id).unwrap();
    assert_eq!(
        b_keys.iter().filter(|k| k.enabled).count(),
        1,
        "the used default stays"
    );
    assert!(
        f.keys
            .keys(op(), young.account.id)
            .unwrap()
            .iter()
            .all(|k| k.enabled),
        "not old enough"
    );
    let trail = f.keys.audit(op(), a.account.id, 4).unwrap();
    assert!(trail.iter().all(|e| e.kind == AuditKind::KeyDisabled
        && e.actor == Actor::Operator
        && e.detail.contains("dormant")));
    assert!(
        f.keys
            .disable_dormant_legacy_defaults(op(), false)
            .unwrap()
            .is_empty(),
        "a second run finds nothing"
    );
    assert_eq!(
        refusal(f.keys.authenticate(
            a.issued[0].key.channel,
            &a.issued[0].key.identifier,
            a.issued[0].secret.as_ref().unwrap().expose_secret(),
            any_ip()
        )),
        Refusal::KeyDisabled
    );
}

/// The hot path stays one lookup: a successful check of a generated secret
/// asks the store exactly once (the key with its holders) and writes
/// nothing, suspension and policy included.
#[test]
fn a_check_is_one_lookup_and_no_write() {
    let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
    let c = calls.clone();
    let store: Arc<apikeys::DynStore> = Arc::new(Intercepted {
        store: MemoryStore::new(),
        before: move |call| {
            c.lock().unwrap().push(call);
            Ok::<(), StoreError>(())
        },
    });
    let f = Fixture::new(store, 323);
    let m = f.master();
    let s = f.sub(m.id);
    let (k, secret) = generated(&f, s.id, Channel::Rest);
    f.keys
        .set_account_policy(
            op(),
            m.id,
            AccountPolicy {
                whitelist: Whitelist::parse(&["0.0.0.0/0"], 10).unwrap(),
                ..AccountPolicy::default()
            },
        )
        .unwrap();
    calls.lock().unwrap().clear();
    auth(&f, &k, &secret).unwrap();
    assert_eq!(
        *calls.lock().unwrap(),
        vec![StoreCall::KeyForAuthentication]
    );
}

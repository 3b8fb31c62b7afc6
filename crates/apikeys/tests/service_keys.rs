//! The service's rules about keys, on the in-memory store: REST allows
//! several keys and other channels one, credential changes stop the old
//! credentials at once, grace periods, and no secret reaching the store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use apikeys::auth::SecretSlot;
use apikeys::service::{CredentialChange, Grace};
use apikeys::store::StoreCall;
use apikeys::testing::{Fixture, START};
use apikeys::testing::{Intercepted, records};
use apikeys::{
    AccountId, Channel, Error, GraceError, IdentifierChoice, KeyId, NewAccount, NewKey, Refusal,
    Secret, SecretChoice,
};
use apikeys::{AuditKind, MemoryStore, Store};
use common::{any_ip, master_with_key, memory, op, refusal};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use time::Duration;

/// REST allows several labelled keys up to the policy's limit; every other
/// channel one key per account.
#[test]
fn rest_several_others_one() {
    let store = memory();
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

/// After a credential change commits, the old secret and the old identifier
/// fail at once, and the new ones work.
#[test]
fn rotation_stops_old_credentials_at_once() {
    let store = memory();
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
#[test]
fn grace_period() {
    let store = memory();
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

/// No secret, chosen or generated, appears in any stored record or event.
#[test]
fn no_secret_is_ever_stored() {
    let store = memory();
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

/// A store whose `update_key` first runs `hook` on the inner store (as
/// another writer would, just before this write lands), and the number of
/// `update_key` calls.
fn racing_store(
    hook: impl Fn(&MemoryStore, usize) -> Result<(), apikeys::StoreError> + Send + Sync + 'static,
) -> (Arc<apikeys::DynStore>, Arc<MemoryStore>, Arc<AtomicUsize>) {
    let inner = Arc::new(MemoryStore::new());
    let calls = Arc::new(AtomicUsize::new(0));
    let store = Intercepted {
        store: inner.clone(),
        before: {
            let (inner, calls) = (inner.clone(), calls.clone());
            move |call| {
                if call == StoreCall::UpdateKey {
                    let n = calls.fetch_add(1, Ordering::SeqCst);
                    hook(&inner, n)?;
                }
                Ok(())
            }
        },
    };
    (Arc::new(store), inner, calls)
}

/// A chosen secret is checked against the identifier the key has when the
/// write lands: if another writer renames the key between the check and the
/// write, the secret is checked again, and one containing the new
/// identifier is refused.
#[test]
fn a_chosen_secret_is_checked_again_after_a_rename_that_raced_it() {
    let target: Arc<Mutex<Option<KeyId>>> = Arc::default();
    let (store, inner, _) = racing_store({
        let target = target.clone();
        move |inner, n| {
            let Some(id) = *target.lock().unwrap() else {
                return Ok(());
            };
            if n == 0 {
                let key = inner.key(id)?.unwrap();
                let mut renamed = key.clone();
                renamed.identifier = "racer".into();
                renamed.version += 1;
                let event = records::event(
                    key.account_id,
                    Some(&renamed),
                    AuditKind::CredentialsChanged,
                    "renamed by another writer",
                );
                inner.update_key(&renamed, key.version, &event)?;
            }
            Ok(())
        }
    });
    let f = Fixture::new(store, 40);
    let key = master_with_key(&f, NewKey::generated(Channel::Ftp)).key;
    *target.lock().unwrap() = Some(key.id);
    // Fine against the identifier read first, not against the new one.
    let result = f.keys.change_credentials(
        op(),
        key.id,
        CredentialChange {
            secret: Some(SecretChoice::Chosen(Secret::new("my-racer-password-1"))),
            ..Default::default()
        },
    );
    assert!(
        matches!(
            result,
            Err(Error::InvalidCredential(
                apikeys::credentials::CredentialError::SecretContainsIdentifier
            ))
        ),
        "{result:?}"
    );
    let stored = inner.key(key.id).unwrap().unwrap();
    assert_eq!(stored.identifier, "racer");
    assert_eq!(stored.version, 2, "only the other writer's change landed");
}

/// A change that keeps losing its compare-and-swap is decided again on the
/// fresh key each time, five times in all, then answered as a concurrent
/// change, with nothing written; one that wins on its last try lands.
#[test]
fn a_change_that_keeps_losing_its_race_gives_up_after_five_tries() {
    for losses in [4, 5] {
        let (store, inner, calls) = racing_store(move |_, n| {
            if n < losses {
                Err(apikeys::StoreError::Conflict {
                    key: KeyId::from_bytes([0; 16]),
                    expected: 1,
                    found: 2,
                })
            } else {
                Ok(())
            }
        });
        let f = Fixture::new(store, 41);
        let key = master_with_key(&f, NewKey::generated(Channel::Ftp)).key;
        let result = f
            .keys
            .change_credentials(op(), key.id, CredentialChange::regenerate_secret());
        let stored = inner.key(key.id).unwrap().unwrap();
        if losses < 5 {
            assert!(result.is_ok(), "{result:?}");
            assert_eq!(stored.version, 2);
        } else {
            assert!(
                matches!(result, Err(Error::ConcurrentChange(id)) if id == key.id),
                "{result:?}"
            );
            assert_eq!(stored.version, 1, "nothing was written");
        }
        assert_eq!(calls.load(Ordering::SeqCst), losses.min(4) + 1);
    }
}

/// Every chosen secret is hashed with a fresh random salt: the same secret
/// on two keys, or set again on one, is never stored twice alike.
#[test]
fn the_same_chosen_secret_is_never_stored_alike() {
    let f = Fixture::new(memory(), 42);
    let secret = || SecretChoice::Chosen(Secret::new("shared-by-habit-2024"));
    let mut hashes = Vec::new();
    for _ in 0..3 {
        let new = NewKey {
            secret: secret(),
            ..NewKey::generated(Channel::Ftp)
        };
        let key = master_with_key(&f, new).key;
        hashes.push(f.store.key(key.id).unwrap().unwrap().secret_hash);
        f.keys
            .change_credentials(
                op(),
                key.id,
                CredentialChange {
                    secret: Some(secret()),
                    ..Default::default()
                },
            )
            .unwrap();
        hashes.push(f.store.key(key.id).unwrap().unwrap().secret_hash);
    }
    for (i, a) in hashes.iter().enumerate() {
        for b in &hashes[i + 1..] {
            assert_ne!(a, b);
        }
    }
}

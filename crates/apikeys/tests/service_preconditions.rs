//! No lost updates, on the in-memory store: every change of a key (its
//! credentials, whitelist, label, its deletion) asked for at a version the
//! key has left is refused with `StaleVersion` and writes nothing; at the
//! current version it applies; a deletion deletes exactly the version it
//! decided on. And the label: set, changed, removed, under a new key's
//! rules, audited.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use apikeys::credentials::validate_label;
use apikeys::service::CredentialChange;
use apikeys::store::StoreCall;
use apikeys::testing::{Fixture, Intercepted};
use apikeys::{
    ApiKey, AuditKind, Channel, Error, KeyId, KeyRecord, MemoryStore, NewKey, Precondition, Secret,
    SecretChoice, Store,
};
use common::{master_with_key, memory, op, wl};
use proptest::prelude::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[track_caller]
fn stale<T: std::fmt::Debug>(r: Result<T, Error>, key: KeyId, expected: &[u64], current: u64) {
    match r {
        Err(Error::StaleVersion {
            key: k,
            expected: e,
            current: c,
        }) => {
            assert_eq!((k, e.as_slice(), c), (key, expected, current));
        }
        other => panic!("expected StaleVersion, got {other:?}"),
    }
}

/// Every kind of change, asked for at a version the key is not at (older,
/// newer, none of a list, an empty list), is refused naming both, and
/// leaves the key and its trail as they were; the message says to read
/// again.
#[test]
fn every_change_at_a_stale_version_is_refused_and_writes_nothing() {
    let f = Fixture::new(memory(), 501);
    let k = master_with_key(&f, NewKey::generated(Channel::Rest));
    let id = k.key.id;
    // Two changes: the key is at version 3.
    f.keys.set_whitelist(op(), id, wl(&["10.0.0.0/8"])).unwrap();
    f.keys.set_label(op(), id, Some("first".into()), 2).unwrap();
    let before = f.keys.key(op(), id).unwrap();
    assert_eq!(before.version, 3);
    let trail = f.keys.audit(op(), k.key.account_id, 100).unwrap();

    let cases: Vec<(Precondition, Vec<u64>)> = vec![
        (1.into(), vec![1]),
        (2.into(), vec![2]),
        (4.into(), vec![4]),
        (Precondition::OneOf(vec![1, 2, 4]), vec![1, 2, 4]),
        (Precondition::OneOf(vec![]), vec![]),
    ];
    for (pre, expected) in cases {
        stale(
            f.keys.change_credentials_if(
                op(),
                id,
                CredentialChange::regenerate_secret(),
                pre.clone(),
            ),
            id,
            &expected,
            3,
        );
        stale(
            f.keys.change_credentials_if(
                op(),
                id,
                CredentialChange {
                    secret: Some(SecretChoice::Chosen(Secret::new("a-Chosen-secret-42"))),
                    ..Default::default()
                },
                pre.clone(),
            ),
            id,
            &expected,
            3,
        );
        stale(
            f.keys
                .set_whitelist_if(op(), id, wl(&["192.0.2.0/24"]), pre.clone()),
            id,
            &expected,
            3,
        );
        stale(
            f.keys.edit_whitelist(
                op(),
                id,
                &wl(&["192.0.2.0/24"]),
                &wl(&["10.0.0.0/8"]),
                pre.clone(),
            ),
            id,
            &expected,
            3,
        );
        stale(
            f.keys
                .set_label(op(), id, Some("second".into()), pre.clone()),
            id,
            &expected,
            3,
        );
        stale(
            f.keys.set_label(op(), id, None, pre.clone()),
            id,
            &expected,
            3,
        );
        stale(
            f.keys.delete_key_if(op(), id, pre.clone()),
            id,
            &expected,
            3,
        );
    }
    assert_eq!(f.keys.key(op(), id).unwrap(), before, "nothing changed");
    assert_eq!(
        f.keys.audit(op(), k.key.account_id, 100).unwrap(),
        trail,
        "nothing recorded"
    );
    let message = f
        .keys
        .delete_key_if(op(), id, Precondition::OneOf(vec![1, 2]))
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("version 3, not 1, 2") && message.contains("read it again"),
        "{message}"
    );
}

/// At the current version (or one of a list holding it, or with no
/// precondition) every change applies and moves the version on by one.
#[test]
fn changes_at_the_current_version_apply() {
    let f = Fixture::new(memory(), 502);
    let k = master_with_key(&f, NewKey::generated(Channel::Rest));
    let id = k.key.id;
    let v = |key: &ApiKey| key.version;
    let issued = f
        .keys
        .change_credentials_if(op(), id, CredentialChange::regenerate_secret(), 1)
        .unwrap();
    assert_eq!(v(&issued.key), 2);
    let key = f
        .keys
        .set_whitelist_if(
            op(),
            id,
            wl(&["10.0.0.0/8"]),
            Precondition::OneOf(vec![7, 2]),
        )
        .unwrap();
    assert_eq!(v(&key), 3);
    let key = f
        .keys
        .edit_whitelist(op(), id, &wl(&["192.0.2.1"]), &wl(&["10.0.0.0/8"]), 3)
        .unwrap();
    assert_eq!(
        key.whitelist.entries(),
        wl(&["192.0.2.1"]).as_slice(),
        "added, and the removed entry gone"
    );
    assert_eq!(v(&key), 4);
    let key = f
        .keys
        .set_label(op(), id, Some("build server".into()), Precondition::Any)
        .unwrap();
    assert_eq!((key.label.as_deref(), v(&key)), (Some("build server"), 5));
    f.keys.delete_key_if(op(), id, 5).unwrap();
    assert!(matches!(f.keys.key(op(), id), Err(Error::KeyNotFound(_))));
}

/// Two editors read the key at one version and both change it at that
/// version: the first wins, the second is refused, and the first edit is
/// what the key holds.
#[test]
fn two_editors_from_one_read_lose_nothing() {
    let f = Fixture::new(memory(), 503);
    let k = master_with_key(&f, NewKey::generated(Channel::Ftp));
    let id = k.key.id;
    let read = f.keys.key(op(), id).unwrap().version;
    let first = f
        .keys
        .set_label(op(), id, Some("alice's label".into()), read)
        .unwrap();
    stale(
        f.keys.set_label(op(), id, Some("bob's label".into()), read),
        id,
        &[read],
        read + 1,
    );
    stale(f.keys.delete_key_if(op(), id, read), id, &[read], read + 1);
    assert_eq!(f.keys.key(op(), id).unwrap(), first);
}

/// A deletion deletes exactly the version it decided on: a change landing
/// between its read and its write makes the store refuse it; without a
/// precondition the service reads again and deletes the new version
/// (recording the identifier it deleted); with one, it is refused.
#[test]
fn a_deletion_never_deletes_a_version_it_did_not_read() {
    for conditional in [false, true] {
        let inner = Arc::new(MemoryStore::new());
        let meddle = Arc::new(AtomicBool::new(true));
        let target: Arc<std::sync::Mutex<Option<KeyId>>> = Arc::default();
        let store = {
            let (inner, meddle, target) = (inner.clone(), meddle.clone(), target.clone());
            Intercepted {
                store: inner.clone(),
                before: move |call| {
                    if call == StoreCall::DeleteKey
                        && meddle.swap(false, Ordering::SeqCst)
                        && let Some(id) = *target.lock().unwrap()
                    {
                        let k: KeyRecord = inner.key(id)?.unwrap();
                        let renamed = KeyRecord {
                            identifier: format!("{}-renamed", k.identifier),
                            version: k.version + 1,
                            ..k.clone()
                        };
                        let e = apikeys::testing::records::event(
                            k.account_id,
                            Some(&renamed),
                            AuditKind::CredentialsChanged,
                            "meanwhile",
                        );
                        inner.update_key(&renamed, k.version, &e)?;
                    }
                    Ok(())
                },
            }
        };
        let f = Fixture::new(Arc::new(store), 504);
        let k = master_with_key(&f, NewKey::generated(Channel::Http));
        *target.lock().unwrap() = Some(k.key.id);
        if conditional {
            stale(f.keys.delete_key_if(op(), k.key.id, 1), k.key.id, &[1], 2);
            let kept = inner.key(k.key.id).unwrap().unwrap();
            assert!(kept.identifier.ends_with("-renamed"), "the change is kept");
        } else {
            f.keys.delete_key(op(), k.key.id).unwrap();
            assert_eq!(inner.key(k.key.id).unwrap(), None);
            let trail = inner.audit_events(k.key.account_id, 1).unwrap();
            assert_eq!(trail[0].kind, AuditKind::KeyDeleted);
            assert!(
                trail[0].detail.ends_with("-renamed"),
                "the deletion recorded is of the version deleted: {}",
                trail[0].detail
            );
        }
    }
}

/// A label may be set, changed and removed, by whoever may manage the key;
/// each change is recorded as `label_changed`; a bad label is refused as
/// at creation; another's key is "not found".
#[test]
fn labels_are_set_changed_removed_and_audited() {
    let f = Fixture::new(memory(), 505);
    let k = master_with_key(&f, NewKey::generated(Channel::Rest));
    let (id, account) = (k.key.id, k.key.account_id);
    let me = apikeys::Actor::Account(account);
    let key = f
        .keys
        .set_label(me, id, Some("Zahlungen – Büro".into()), Precondition::Any)
        .unwrap();
    assert_eq!(key.label.as_deref(), Some("Zahlungen – Büro"));
    assert_eq!(key.changed_at, f.keys.now());
    let key = f.keys.set_label(op(), id, None, Precondition::Any).unwrap();
    assert_eq!(key.label, None);
    assert_eq!(f.keys.key(op(), id).unwrap().label, None);
    let trail = f.keys.audit(op(), account, 2).unwrap();
    assert!(trail.iter().all(|e| e.kind == AuditKind::LabelChanged
        && e.key_id == Some(id)
        && e.channel == Some(Channel::Rest)));
    let details: Vec<&str> = trail.iter().map(|e| e.detail.as_str()).collect();
    assert!(details.contains(&"label removed"), "{details:?}");
    assert!(
        details.contains(&"label set to \"Zahlungen – Büro\""),
        "{details:?}"
    );
    for bad in ["", "a\nb", "pay\u{200b}ments", &"x".repeat(65)] {
        let err = f
            .keys
            .set_label(op(), id, Some(bad.to_string()), Precondition::Any)
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidCredential(_)),
            "{bad:?}: {err:?}"
        );
    }
    let other = f.master();
    let err = f
        .keys
        .set_label(
            apikeys::Actor::Account(other.id),
            id,
            Some("mine now".into()),
            Precondition::Any,
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::KeyNotFound(got) if got == id),
        "{err:?}"
    );
    assert_eq!(
        f.keys.key(op(), id).unwrap().version,
        3,
        "refusals wrote nothing"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// For every string, `set_label` accepts it exactly when a new key's
    /// label rule does, and then the key holds exactly it.
    #[test]
    fn set_label_follows_the_label_rule(label in "\\PC{0,70}|[\\x00-\\x1f\u{200b}\u{202e}a-z]{0,5}") {
        let f = Fixture::new(memory(), 506);
        let k = master_with_key(&f, NewKey::generated(Channel::Ftp));
        let got = f.keys.set_label(op(), k.key.id, Some(label.clone()), 1);
        match validate_label(&label) {
            Ok(()) => prop_assert_eq!(got.unwrap().label, Some(label)),
            Err(_) => {
                prop_assert!(matches!(got, Err(Error::InvalidCredential(_))));
                prop_assert_eq!(f.keys.key(op(), k.key.id).unwrap().version, 1);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// For every number of earlier changes and every list of versions, a
    /// change asked for at that list applies exactly when the key's version
    /// is in it, whichever change it is; otherwise it is refused naming the
    /// list and the version, and the key is as it was.
    #[test]
    fn a_change_applies_exactly_at_the_versions_it_names(
        earlier in 0u64..4,
        versions in proptest::collection::vec(0u64..7, 0..4),
        which in 0usize..4,
    ) {
        let f = Fixture::new(memory(), 507);
        let k = master_with_key(&f, NewKey::generated(Channel::Rest));
        let id = k.key.id;
        for i in 0..earlier {
            f.keys.set_label(op(), id, Some(format!("v{i}")), Precondition::Any).unwrap();
        }
        let current = 1 + earlier;
        let before = f.keys.key(op(), id).unwrap();
        let pre = Precondition::OneOf(versions.clone());
        let result = match which {
            0 => f.keys.set_label(op(), id, Some("new".into()), pre).map(|_| ()),
            1 => f.keys.edit_whitelist(op(), id, &wl(&["10.0.0.0/8"]), &[], pre).map(|_| ()),
            2 => f
                .keys
                .change_credentials_if(op(), id, CredentialChange::regenerate_secret(), pre)
                .map(|_| ()),
            _ => f.keys.delete_key_if(op(), id, pre),
        };
        if versions.contains(&current) {
            prop_assert!(result.is_ok(), "{result:?}");
        } else {
            match result {
                Err(Error::StaleVersion { key, expected, current: c }) => {
                    prop_assert_eq!((key, expected, c), (id, versions, current));
                }
                other => prop_assert!(false, "expected StaleVersion, got {other:?}"),
            }
            prop_assert_eq!(f.keys.key(op(), id).unwrap(), before);
        }
    }
}

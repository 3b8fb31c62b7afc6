//! The service's authentication rules, on the in-memory store: generated and
//! chosen credentials, uniform refusals, rehashing, and the verified-secret
//! cache never outliving a change.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use apikeys::auth::SecretSlot;
use apikeys::service::{CredentialChange, Grace};
use apikeys::testing::{Fixture, START};
use apikeys::{
    AuthError, Channel, Error, HashingPolicy, IdentifierChoice, NewAccount, NewKey, Policy,
    Refusal, Secret, SecretChoice,
};
use common::{any_ip, ip, memory, op, refusal, wl};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::net::IpAddr;
use time::Duration;

/// Generated and chosen credentials, chosen independently, authenticate on
/// their channel; identifiers are matched ignoring ASCII case; a sub-account's
/// key authenticates as the sub-account.
#[test]
fn authenticate_generated_and_chosen() {
    let store = memory();
    let f = Fixture::new(store, 104);
    let m = f.master();
    let sub = f.sub(m.id);
    let chosen = NewKey::chosen(
        Channel::Ftp,
        "Acme-Uploads",
        Secret::new("correct-horse-battery"),
    );
    let k = f.keys.create_key(op(), sub.id, chosen).unwrap();
    assert!(k.secret.is_none(), "a chosen secret is never echoed back");
    for spelling in ["Acme-Uploads", "acme-uploads", "ACME-UPLOADS"] {
        let who = f
            .keys
            .authenticate(Channel::Ftp, spelling, "correct-horse-battery", any_ip())
            .unwrap();
        assert_eq!(
            (
                who.account_id,
                who.key_id,
                who.channel,
                who.matched == SecretSlot::Previous
            ),
            (sub.id, k.key.id, Channel::Ftp, false)
        );
    }
    // Generated identifier with chosen secret, chosen identifier with generated secret.
    let mixed = f
        .keys
        .create_key(
            op(),
            m.id,
            NewKey {
                channel: Channel::Http,
                identifier: IdentifierChoice::Generate,
                secret: SecretChoice::Chosen(Secret::new("another-Secret-99")),
                label: None,
                expires_at: None,
            },
        )
        .unwrap();
    f.keys
        .authenticate(
            Channel::Http,
            &mixed.key.identifier,
            "another-Secret-99",
            any_ip(),
        )
        .unwrap();
    let mixed2 = f
        .keys
        .create_key(
            op(),
            m.id,
            NewKey {
                channel: Channel::Rest,
                identifier: IdentifierChoice::Chosen("acme-api".into()),
                secret: SecretChoice::Generate,
                label: None,
                expires_at: None,
            },
        )
        .unwrap();
    let s = mixed2.secret.unwrap();
    assert!(s.expose_secret().starts_with("akey"));
    let who = f
        .keys
        .authenticate(
            Channel::Rest,
            "acme-api",
            s.expose_secret(),
            ip("2001:db8::5"),
        )
        .unwrap();
    assert_eq!(who.account_id, m.id);
    // A chosen identifier that is taken, in any case, is refused by name.
    let err = f
        .keys
        .create_key(
            op(),
            m.id,
            NewKey {
                channel: Channel::Email,
                identifier: IdentifierChoice::Chosen("ACME-API".into()),
                secret: SecretChoice::Generate,
                label: None,
                expires_at: None,
            },
        )
        .unwrap_err();
    assert!(
        matches!(&err, Error::IdentifierTaken(i) if i == "ACME-API"),
        "{err:?}"
    );
    // A chosen secret must not contain the identifier.
    let err = f
        .keys
        .create_key(
            op(),
            m.id,
            NewKey::chosen(Channel::Email, "mailer", Secret::new("my-MAILER-secret")),
        )
        .unwrap_err();
    assert!(matches!(
        err,
        Error::InvalidCredential(apikeys::credentials::CredentialError::SecretContainsIdentifier)
    ));
}

/// Unknown identifier, wrong secret, another channel's credentials, a deleted
/// key, a mistyped generated secret: the same refusal, with the precise
/// reason only in `reason()`.
#[test]
fn authenticate_refusals_are_uniform() {
    let store = memory();
    let f = Fixture::new(store, 105);
    let a = f.master();
    let k = f
        .keys
        .create_key(op(), a.id, NewKey::generated(Channel::Rest))
        .unwrap();
    let secret = k.secret.unwrap();
    let s = secret.expose_secret();
    let id = k.key.identifier.as_str();

    let mut typo = s.as_bytes().to_vec();
    typo[8] = if typo[8] == b'x' { b'y' } else { b'x' };
    let typo = String::from_utf8(typo).unwrap();
    let other = apikeys::credentials::generate_secret(&mut ChaCha20Rng::seed_from_u64(5));
    let cases = [
        (
            f.keys
                .authenticate(Channel::Rest, "nobody-here", s, any_ip()),
            Refusal::UnknownIdentifier,
        ),
        (
            f.keys
                .authenticate(Channel::Rest, id, other.expose_secret(), any_ip()),
            Refusal::WrongSecret,
        ),
        (
            f.keys
                .authenticate(Channel::Rest, id, "not-the-secret!", any_ip()),
            Refusal::WrongSecret,
        ),
        (
            f.keys.authenticate(Channel::Rest, id, &typo, any_ip()),
            Refusal::MalformedSecret,
        ),
        (
            f.keys.authenticate(Channel::Http, id, s, any_ip()),
            Refusal::WrongChannel {
                key_channel: Channel::Rest,
            },
        ),
        (
            f.keys.authenticate(Channel::Rest, id, "", any_ip()),
            Refusal::WrongSecret,
        ),
        (
            f.keys.authenticate(Channel::Rest, "", s, any_ip()),
            Refusal::UnknownIdentifier,
        ),
        (
            f.keys
                .authenticate(Channel::Rest, &"a".repeat(10_000), s, any_ip()),
            Refusal::UnknownIdentifier,
        ),
        (
            f.keys
                .authenticate(Channel::Rest, id, &"a".repeat(100_000), any_ip()),
            Refusal::MalformedSecret,
        ),
    ];
    for (result, reason) in cases {
        let err = result.unwrap_err();
        assert_eq!(err.to_string(), "invalid credentials");
        assert_eq!(err.code(), "invalid_credentials");
        assert_eq!(err.reason(), Some(reason));
    }
    f.keys.delete_key(op(), k.key.id).unwrap();
    assert_eq!(
        refusal(f.keys.authenticate(Channel::Rest, id, s, any_ip())),
        Refusal::UnknownIdentifier
    );
}

/// A chosen secret hashed under weaker parameters than the policy is rehashed
/// at the next successful check, and still works afterwards.
#[test]
fn rehash_on_verify() {
    let store = memory();
    let weak = Fixture::new(store.clone(), 111);
    let a = weak
        .keys
        .open_account(op(), NewAccount::master().created_at(START))
        .unwrap()
        .account;
    let new = NewKey::chosen(
        Channel::WebService,
        "soap-client",
        Secret::new("soap-secret-123"),
    );
    let k = weak.keys.create_key(op(), a.id, new).unwrap();
    let before = store.key(k.key.id).unwrap().unwrap().secret_hash;
    assert!(
        before.as_str().starts_with("$argon2id$v=19$m=64,t=1,p=1$"),
        "{}",
        before.as_str()
    );

    let stronger = Policy::fast_for_tests().hashing(HashingPolicy {
        m_kib: 128,
        t: 2,
        p: 1,
    });
    let strong = Fixture::with_policy(store.clone(), 112, stronger);
    // A wrong secret upgrades nothing.
    let _ = strong
        .keys
        .authenticate(
            Channel::WebService,
            "soap-client",
            "wrong-secret-123",
            any_ip(),
        )
        .unwrap_err();
    assert_eq!(store.key(k.key.id).unwrap().unwrap().secret_hash, before);
    strong
        .keys
        .authenticate(
            Channel::WebService,
            "soap-client",
            "soap-secret-123",
            any_ip(),
        )
        .unwrap();
    let after = store.key(k.key.id).unwrap().unwrap();
    assert!(
        after
            .secret_hash
            .as_str()
            .starts_with("$argon2id$v=19$m=128,t=2,p=1$"),
        "{}",
        after.secret_hash.as_str()
    );
    assert_eq!(
        after.version, k.key.version,
        "an upgrade is not a change of credentials"
    );
    strong
        .keys
        .authenticate(
            Channel::WebService,
            "soap-client",
            "soap-secret-123",
            any_ip(),
        )
        .unwrap();
    weak.keys
        .authenticate(
            Channel::WebService,
            "soap-client",
            "soap-secret-123",
            any_ip(),
        )
        .unwrap();
}

/// The verified-secret cache answers repeated checks of a chosen secret
/// without argon2, but never outlives a change: a whitelist change, a
/// rotation, a grace expiry or a deletion made through another service on
/// the same store (another process, say) takes effect on the very next check.
#[test]
fn verified_cache_never_outlives_a_change() {
    let store = memory();
    let here = Fixture::new(store.clone(), 120);
    let elsewhere = Fixture::new(store.clone(), 121);
    let account = here.master();
    let key = here
        .keys
        .create_key(
            op(),
            account.id,
            NewKey::chosen(Channel::Ftp, "cached-ftp", Secret::new("cached-secret-1")),
        )
        .unwrap()
        .key;
    let auth = |secret: &str, from: IpAddr| {
        here.keys
            .authenticate(Channel::Ftp, "cached-ftp", secret, from)
    };
    let stats = || here.keys.check_stats();

    auth("cached-secret-1", any_ip()).unwrap();
    assert_eq!((stats().argon2, stats().cached), (1, 0));
    auth("cached-secret-1", any_ip()).unwrap();
    assert_eq!(
        (stats().argon2, stats().cached),
        (1, 1),
        "the second check is cached"
    );
    assert_eq!(
        refusal(auth("cached-secret-2", any_ip())),
        Refusal::WrongSecret
    );
    assert_eq!(stats().argon2, 2, "a wrong secret always costs argon2");

    // A whitelist change elsewhere: the next check verifies again, and the
    // new whitelist applies at once.
    elsewhere
        .keys
        .set_whitelist(op(), key.id, wl(&["198.51.100.0/24"]))
        .unwrap();
    let err = auth("cached-secret-1", ip("203.0.113.1")).unwrap_err();
    assert!(
        matches!(err, AuthError::AddressNotAllowed { .. }),
        "{err:?}"
    );
    assert_eq!(stats().argon2, 3, "a new version is a cache miss");
    auth("cached-secret-1", any_ip()).unwrap();

    // A rotation elsewhere: the old secret fails on the very next check.
    elsewhere
        .keys
        .change_credentials(
            op(),
            key.id,
            CredentialChange {
                secret: Some(SecretChoice::Chosen(Secret::new("cached-secret-3"))),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        refusal(auth("cached-secret-1", any_ip())),
        Refusal::WrongSecret
    );
    auth("cached-secret-3", any_ip()).unwrap();
    auth("cached-secret-3", any_ip()).unwrap();

    // Grace: the previous secret may be cached too, but its expiry is read
    // from the fresh record every time.
    let until = START + Duration::hours(1);
    elsewhere
        .keys
        .change_credentials(
            op(),
            key.id,
            CredentialChange {
                secret: Some(SecretChoice::Chosen(Secret::new("cached-secret-4"))),
                ..Default::default()
            }
            .with_grace(Grace::Until(until)),
        )
        .unwrap();
    assert!(auth("cached-secret-3", any_ip()).unwrap().matched == SecretSlot::Previous);
    let before = stats();
    assert!(auth("cached-secret-3", any_ip()).unwrap().matched == SecretSlot::Previous);
    assert_eq!(stats().cached, before.cached + 1);
    here.clock.set(until);
    assert_eq!(
        refusal(auth("cached-secret-3", any_ip())),
        Refusal::GraceExpired
    );
    auth("cached-secret-4", any_ip()).unwrap();
    auth("cached-secret-4", any_ip()).unwrap();

    // A deletion elsewhere: refused on the very next check.
    elsewhere.keys.delete_key(op(), key.id).unwrap();
    assert_eq!(
        refusal(auth("cached-secret-4", any_ip())),
        Refusal::UnknownIdentifier
    );

    // The cache can be turned off.
    let off = Fixture::with_policy(
        store,
        122,
        Policy::fast_for_tests().verified_cache_capacity(0),
    );
    let account = off.master();
    off.keys
        .create_key(
            op(),
            account.id,
            NewKey::chosen(
                Channel::Http,
                "no-cache-http",
                Secret::new("uncached-secret"),
            ),
        )
        .unwrap();
    for _ in 0..3 {
        off.keys
            .authenticate(Channel::Http, "no-cache-http", "uncached-secret", any_ip())
            .unwrap();
    }
    assert_eq!(
        (off.keys.check_stats().argon2, off.keys.check_stats().cached),
        (3, 0)
    );
}

/// A hash upgrade the store fails to write leaves the old hash, which still
/// works, and costs the check nothing; the next check that runs argon2 tries
/// the upgrade again.
#[test]
fn a_failed_hash_upgrade_keeps_the_old_hash_and_is_tried_again() {
    use apikeys::Store;
    use apikeys::store::StoreCall;
    use apikeys::testing::Intercepted;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let inner = Arc::new(apikeys::MemoryStore::new());
    let upgrades = Arc::new(AtomicUsize::new(0));
    let store: Arc<apikeys::DynStore> = Arc::new(Intercepted {
        store: inner.clone(),
        before: {
            let upgrades = upgrades.clone();
            move |call| {
                if call == StoreCall::UpgradeSecretHash
                    && upgrades.fetch_add(1, Ordering::SeqCst) == 0
                {
                    return Err(apikeys::StoreError::backend(std::io::Error::other(
                        "disk full",
                    )));
                }
                Ok(())
            }
        },
    });
    let weak = Fixture::new(store.clone(), 113);
    let a = weak
        .keys
        .open_account(op(), NewAccount::master().created_at(START))
        .unwrap()
        .account;
    let new = NewKey::chosen(Channel::Ftp, "ftp-client", Secret::new("ftp-secret-1234"));
    let k = weak.keys.create_key(op(), a.id, new).unwrap();
    let before = inner.key(k.key.id).unwrap().unwrap().secret_hash;
    let stronger = Policy::fast_for_tests().hashing(HashingPolicy {
        m_kib: 128,
        t: 2,
        p: 1,
    });
    let check = |seed| {
        // A service of its own each time: its verified-secret cache is
        // empty, so the check runs argon2.
        Fixture::with_policy(store.clone(), seed, stronger.clone())
            .keys
            .authenticate(Channel::Ftp, "ftp-client", "ftp-secret-1234", any_ip())
    };
    check(114).unwrap();
    assert_eq!(upgrades.load(Ordering::SeqCst), 1);
    assert_eq!(inner.key(k.key.id).unwrap().unwrap().secret_hash, before);
    check(115).unwrap();
    assert_eq!(upgrades.load(Ordering::SeqCst), 2);
    let after = inner.key(k.key.id).unwrap().unwrap().secret_hash;
    assert!(after.as_str().starts_with("$argon2id$v=19$m=128,t=2,p=1$"));
    check(116).unwrap();
    assert_eq!(
        upgrades.load(Ordering::SeqCst),
        2,
        "nothing left to upgrade"
    );
}

/// A hash imported from another system is checked on the slow path, and
/// replaced by the policy's argon2id at its first successful check.
#[test]
fn an_imported_hash_is_replaced_after_its_first_use() {
    for (name, text) in apikeys::testing::foreign::hashes_of("soap-secret-123") {
        let store = memory();
        let f = Fixture::new(store.clone(), 113);
        let a = f
            .keys
            .open_account(op(), NewAccount::master().created_at(START))
            .unwrap()
            .account;
        let new = NewKey::chosen(
            Channel::WebService,
            "soap-client",
            Secret::new("another-secret-1"),
        );
        let k = f.keys.create_key(op(), a.id, new).unwrap();
        let ours = store.key(k.key.id).unwrap().unwrap().secret_hash;
        let imported = apikeys::SecretHash::parse(&text).unwrap();
        assert!(
            store
                .upgrade_secret_hash(k.key.id, &ours, &imported)
                .unwrap()
        );
        let check = |secret: &str| {
            f.keys
                .authenticate(Channel::WebService, "soap-client", secret, any_ip())
        };
        check("wrong-secret-123").unwrap_err();
        assert_eq!(
            store.key(k.key.id).unwrap().unwrap().secret_hash,
            imported,
            "{name}"
        );
        check("soap-secret-123").unwrap_or_else(|e| panic!("{name}: {e}"));
        let after = store.key(k.key.id).unwrap().unwrap();
        if name.starts_with("argon2id") {
            // Stronger than the policy: kept, as an argon2id hash of ours.
            assert_eq!(after.secret_hash, imported, "{name}");
        } else {
            assert!(
                after
                    .secret_hash
                    .as_str()
                    .starts_with("$argon2id$v=19$m=64,t=1,p=1$"),
                "{name}: {:?}",
                after.secret_hash
            );
        }
        assert_eq!(after.version, k.key.version, "{name}");
        check("soap-secret-123").unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

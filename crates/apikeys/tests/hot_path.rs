//! What `authenticate` asks of the store: one lookup for well-formed input,
//! none for a secret that cannot be right.

use apikeys::store::DynStore;
use apikeys::testing::{Fixture, Intercepted, StoreCall};
use apikeys::{Channel, MemoryStore, NewKey, Refusal};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A memory store that counts identifier lookups.
fn counting() -> (Arc<DynStore>, Arc<AtomicUsize>) {
    let lookups = Arc::new(AtomicUsize::new(0));
    let counter = lookups.clone();
    let store = Intercepted {
        store: MemoryStore::new(),
        before: move |call| {
            if call == StoreCall::KeyForAuthentication {
                counter.fetch_add(1, Ordering::SeqCst);
            }
            Ok(())
        },
    };
    (Arc::new(store), lookups)
}

#[test]
fn bad_checksum_and_oversized_secrets_cost_no_lookup() {
    let (store, lookups) = counting();
    let f = Fixture::new(store, 1);
    let a = f.master();
    let k = f
        .keys
        .create_key(
            apikeys::Actor::Operator,
            a.id,
            NewKey::generated(Channel::Rest),
        )
        .unwrap();
    let secret = k.secret.unwrap();
    let ip = "192.0.2.1".parse().unwrap();

    let mut typo = secret.expose_secret().to_string().into_bytes();
    let last = typo.len() - 1;
    typo[last] = if typo[last] == b'0' { b'1' } else { b'0' };
    let typo = String::from_utf8(typo).unwrap();
    let before = lookups.load(Ordering::SeqCst);
    for bad in [typo.as_str(), &"x".repeat(129)] {
        let err = f
            .keys
            .authenticate(Channel::Rest, &k.key.identifier, bad, ip)
            .unwrap_err();
        assert_eq!(err.reason(), Some(Refusal::MalformedSecret));
    }
    let err = f
        .keys
        .authenticate(Channel::Rest, &"i".repeat(65), secret.expose_secret(), ip)
        .unwrap_err();
    assert_eq!(err.reason(), Some(Refusal::UnknownIdentifier));
    assert_eq!(
        lookups.load(Ordering::SeqCst),
        before,
        "no lookup for impossible input"
    );

    f.keys
        .authenticate(Channel::Rest, &k.key.identifier, secret.expose_secret(), ip)
        .unwrap();
    assert_eq!(
        lookups.load(Ordering::SeqCst),
        before + 1,
        "exactly one lookup per check"
    );
}

/// The production policy end to end: a chosen secret is stored as argon2id
/// with OWASP's parameters, checks, and needs no rehash.
#[test]
fn production_policy_chosen_secret() {
    let store = Arc::new(MemoryStore::new());
    let f = Fixture::with_policy(store.clone(), 3, apikeys::Policy::default());
    let a = f.master();
    let k = f
        .keys
        .create_key(
            apikeys::Actor::Operator,
            a.id,
            NewKey::chosen(
                Channel::Email,
                "prod-mailer",
                apikeys::Secret::new("production-secret-1"),
            ),
        )
        .unwrap();
    let stored = apikeys::StoreExt::require_key(&*store, k.key.id).unwrap();
    assert!(
        stored
            .secret_hash
            .as_str()
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{:?}",
        stored.secret_hash
    );
    let ip = "192.0.2.1".parse().unwrap();
    f.keys
        .authenticate(Channel::Email, "prod-mailer", "production-secret-1", ip)
        .unwrap();
    let err = f
        .keys
        .authenticate(Channel::Email, "prod-mailer", "production-secret-2", ip)
        .unwrap_err();
    assert_eq!(err.reason(), Some(Refusal::WrongSecret));
    assert_eq!(
        apikeys::StoreExt::require_key(&*store, k.key.id)
            .unwrap()
            .secret_hash,
        stored.secret_hash
    );
}

/// `begin_authentication` answers whatever needs no argon2, and says so
/// (`NeedsArgon2`) for the rest, never running it. A secret of the generated
/// shape presented for a key whose secret was chosen is refused at once: no
/// chosen secret has that shape.
#[test]
fn begin_authentication_never_runs_argon2() {
    use apikeys::credentials::generate_secret;
    use rand_core::SeedableRng;
    let f = Fixture::new(Arc::new(MemoryStore::new()), 4);
    let a = f.master();
    let op = apikeys::Actor::Operator;
    let ip = "192.0.2.1".parse().unwrap();
    let generated = f
        .keys
        .create_key(op, a.id, NewKey::generated(Channel::Rest))
        .unwrap();
    let gen_secret = generated.secret.unwrap();
    f.keys
        .create_key(
            op,
            a.id,
            NewKey::chosen(
                Channel::Ftp,
                "chosen-ftp",
                apikeys::Secret::new("chosen-secret-1"),
            ),
        )
        .unwrap();
    let other_generated = generate_secret(&mut rand_chacha::ChaCha20Rng::seed_from_u64(9));
    let slow = |f: &Fixture| f.keys.check_stats().argon2;
    let before = slow(&f);
    let fast = |channel, id: &str, secret: &str| match f
        .keys
        .begin_authentication(channel, id, secret, ip)
    {
        apikeys::Check::Done(outcome) => Some(outcome),
        apikeys::Check::NeedsArgon2(_) => None,
    };

    // Generated secrets: answered, right or wrong.
    let who = fast(
        Channel::Rest,
        &generated.key.identifier,
        gen_secret.expose_secret(),
    );
    assert_eq!(who.unwrap().unwrap().key_id, generated.key.id);
    let wrong = fast(
        Channel::Rest,
        &generated.key.identifier,
        other_generated.expose_secret(),
    );
    assert_eq!(
        wrong.unwrap().unwrap_err().reason(),
        Some(Refusal::WrongSecret)
    );
    let unknown = fast(Channel::Rest, "nobody", other_generated.expose_secret());
    assert_eq!(
        unknown.unwrap().unwrap_err().reason(),
        Some(Refusal::UnknownIdentifier)
    );
    // A generated-shape secret against a chosen key: refused, no argon2.
    assert_eq!(
        fast(Channel::Ftp, "chosen-ftp", other_generated.expose_secret())
            .unwrap()
            .unwrap_err()
            .reason(),
        Some(Refusal::WrongSecret)
    );
    // Argon2 needed: a chosen secret not yet vouched for, an unknown
    // identifier or a generated key with a chosen-shape secret (the dummy
    // check that gives the refusal its cost).
    assert!(fast(Channel::Ftp, "chosen-ftp", "chosen-secret-1").is_none());
    assert!(fast(Channel::Ftp, "nobody", "chosen-secret-1").is_none());
    assert!(fast(Channel::Rest, &generated.key.identifier, "chosen-secret-1").is_none());
    assert_eq!(slow(&f), before, "no argon2 ran");
    // Once `authenticate` has verified it, the cache answers without argon2.
    f.keys
        .authenticate(Channel::Ftp, "chosen-ftp", "chosen-secret-1", ip)
        .unwrap();
    let after = slow(&f);
    assert_eq!(after, before + 1);
    assert!(
        fast(Channel::Ftp, "chosen-ftp", "chosen-secret-1")
            .unwrap()
            .is_ok()
    );
    assert_eq!(slow(&f), after);
}

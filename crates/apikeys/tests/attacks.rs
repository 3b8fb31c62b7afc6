//! Attacks on authentication and on the management calls, mounted against
//! the service on the memory store. Each test counts what the defence must
//! bound (argon2 runs, store lookups) and would fail without it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use apikeys::credentials::{CredentialError, generate_secret};
use apikeys::testing::{Fixture, Intercepted};
use apikeys::{
    Actor, AuthError, Channel, Check, CredentialChange, Error, Grace, MemoryStore, NewKey, Policy,
    Refusal, Secret, SecretChoice, SecretSlot, StoreCall, StoreError, ThrottlePolicy,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use time::Duration;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const CLIENT: &str = "198.51.100.20";

fn argon2_runs(f: &Fixture) -> u64 {
    f.keys.check_stats().argon2
}

/// A key of each kind an attacker could meet, with the secret that opens it.
struct Keys {
    generated: (String, Secret),
    chosen: (String, Secret),
    chosen_id: apikeys::KeyId,
    generated_then_chosen_in_grace: String,
    chosen_then_generated_in_grace: String,
    chosen_then_chosen_in_grace: String,
}

fn keys_of_every_kind(f: &Fixture) -> Keys {
    let op = Actor::Operator;
    let a = f.master();
    let generated = f
        .keys
        .create_key(op, a.id, NewKey::generated(Channel::Rest))
        .unwrap();
    let chosen = f
        .keys
        .create_key(
            op,
            a.id,
            NewKey::chosen(Channel::Ftp, "chosen-ftp", Secret::new("chosen-secret-1")),
        )
        .unwrap();
    let grace = CredentialChange {
        grace: Some(Grace::For(Duration::hours(1))),
        ..CredentialChange::default()
    };
    let rotated = |channel, from: NewKey, to: SecretChoice| {
        let k = f.keys.create_key(op, a.id, from).unwrap().key;
        assert_eq!(k.channel, channel);
        f.keys
            .change_credentials(
                op,
                k.id,
                CredentialChange {
                    secret: Some(to),
                    ..grace.clone()
                },
            )
            .unwrap();
        k.identifier
    };
    Keys {
        generated: (
            generated.key.identifier,
            generated.secret.expect("generated"),
        ),
        chosen_id: chosen.key.id,
        chosen: (chosen.key.identifier, Secret::new("chosen-secret-1")),
        generated_then_chosen_in_grace: rotated(
            Channel::Http,
            NewKey::generated(Channel::Http),
            SecretChoice::Chosen(Secret::new("http-chosen-2")),
        ),
        chosen_then_generated_in_grace: rotated(
            Channel::WebService,
            NewKey::chosen(
                Channel::WebService,
                "soap-client",
                Secret::new("soap-secret-3"),
            ),
            SecretChoice::Generate,
        ),
        chosen_then_chosen_in_grace: rotated(
            Channel::Email,
            NewKey::chosen(Channel::Email, "mailer", Secret::new("mail-secret-4")),
            SecretChoice::Chosen(Secret::new("mail-secret-5")),
        ),
    }
}

/// For every refusal class, the number of argon2 runs depends only on the
/// presented secret's shape: exactly one for a secret not of the generated
/// shape (two for a key in grace whose both secrets are argon2 hashes), none
/// for a well-formed generated-shape secret.
#[test]
fn the_cost_of_a_refusal_depends_only_on_the_secrets_shape() {
    let f = Fixture::new(Arc::new(MemoryStore::new()), 31);
    let k = keys_of_every_kind(&f);
    let forged = generate_secret(&mut ChaCha20Rng::seed_from_u64(99));
    let chosen_shape = "wrong-but-plausible-9";
    let cases: Vec<(&str, &str, Channel)> = vec![
        ("unknown identifier", "no-such-client", Channel::Rest),
        ("generated-secret key", &k.generated.0, Channel::Rest),
        (
            "generated-secret key, other channel",
            &k.generated.0,
            Channel::Ftp,
        ),
        ("chosen-secret key", &k.chosen.0, Channel::Ftp),
        (
            "chosen-secret key, other channel",
            &k.chosen.0,
            Channel::Rest,
        ),
        (
            "grace: generated, then chosen",
            &k.generated_then_chosen_in_grace,
            Channel::Http,
        ),
        (
            "grace: chosen, then generated",
            &k.chosen_then_generated_in_grace,
            Channel::WebService,
        ),
        (
            "grace: chosen, then chosen",
            &k.chosen_then_chosen_in_grace,
            Channel::Email,
        ),
    ];
    println!("| refusal class | chosen-shape wrong secret | forged generated secret |");
    println!("|---|---|---|");
    for (class, identifier, channel) in cases {
        let mut runs = Vec::new();
        for secret in [chosen_shape, forged.expose_secret()] {
            let before = argon2_runs(&f);
            let outcome = f.keys.authenticate(channel, identifier, secret, ip(CLIENT));
            assert!(
                matches!(outcome, Err(AuthError::InvalidCredentials(_))),
                "{class}: {outcome:?}"
            );
            runs.push(argon2_runs(&f) - before);
        }
        println!("| {class} | {} | {} |", runs[0], runs[1]);
        let expected_chosen_shape = if class == "grace: chosen, then chosen" {
            2
        } else {
            1
        };
        assert_eq!(
            runs,
            [expected_chosen_shape, 0],
            "{class}: argon2 runs for [chosen-shape, generated-shape] secrets"
        );
    }
}

/// A chosen secret with the generated shape would be checked without
/// argon2: it is refused when created and when set.
#[test]
fn a_chosen_secret_may_not_look_generated() {
    let f = Fixture::new(Arc::new(MemoryStore::new()), 32);
    let a = f.master();
    let lookalike = generate_secret(&mut ChaCha20Rng::seed_from_u64(5));
    let e = f
        .keys
        .create_key(
            Actor::Operator,
            a.id,
            NewKey::chosen(Channel::Rest, "lookalike", lookalike.clone()),
        )
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::InvalidCredential(CredentialError::SecretLooksGenerated)
        ),
        "{e:?}"
    );
    let k = f
        .keys
        .create_key(Actor::Operator, a.id, NewKey::generated(Channel::Ftp))
        .unwrap()
        .key;
    let e = f
        .keys
        .change_credentials(
            Actor::Operator,
            k.id,
            CredentialChange {
                secret: Some(SecretChoice::Chosen(lookalike)),
                ..CredentialChange::default()
            },
        )
        .unwrap_err();
    assert!(e.to_string().contains("shape of a generated secret"), "{e}");
}

/// A client still on its previous secret during a grace period pays argon2
/// on its first request only: the cache is asked about both secrets before
/// any argon2 runs.
#[test]
fn a_client_on_its_previous_secret_pays_argon2_once() {
    let f = Fixture::new(Arc::new(MemoryStore::new()), 33);
    let k = keys_of_every_kind(&f);
    let id = &k.chosen_then_chosen_in_grace;
    let before = argon2_runs(&f);
    for round in 0..20 {
        let who = f
            .keys
            .authenticate(Channel::Email, id, "mail-secret-4", ip(CLIENT))
            .unwrap();
        assert_eq!(who.matched, SecretSlot::Previous);
        let runs = argon2_runs(&f) - before;
        assert_eq!(
            runs, 2,
            "round {round}: the first check runs argon2 twice (current, then previous), later ones never"
        );
    }
    // The current secret, too, once.
    f.keys
        .authenticate(Channel::Email, id, "mail-secret-5", ip(CLIENT))
        .unwrap();
    f.keys
        .authenticate(Channel::Email, id, "mail-secret-5", ip(CLIENT))
        .unwrap();
    assert_eq!(argon2_runs(&f) - before, 3);
}

fn counted_store() -> (Arc<apikeys::DynStore>, Arc<AtomicUsize>) {
    let lookups = Arc::new(AtomicUsize::new(0));
    let counter = lookups.clone();
    let store = Intercepted {
        store: MemoryStore::new(),
        before: move |call| {
            if call == StoreCall::KeyForAuthentication {
                counter.fetch_add(1, Ordering::SeqCst);
            }
            Ok::<(), StoreError>(())
        },
    };
    (Arc::new(store), lookups)
}

fn throttled_fixture(seed: u64) -> (Fixture, Arc<AtomicUsize>) {
    let (store, lookups) = counted_store();
    let f = Fixture::with_policy(
        store,
        seed,
        Policy::fast_for_tests().throttle(ThrottlePolicy::default()),
    );
    (f, lookups)
}

/// Guessing one key's secret from one address: past the allowance every
/// attempt is refused as throttled, with no lookup and no argon2, until the
/// backoff (which doubles) has passed.
#[test]
fn guessing_is_throttled_without_argon2_or_lookups() {
    let (f, lookups) = throttled_fixture(34);
    let k = keys_of_every_kind(&f);
    let attacker = ip("203.0.113.66");
    let guess = |n: usize| {
        f.keys.authenticate(
            Channel::Ftp,
            &k.chosen.0,
            &format!("guess-number-{n}"),
            attacker,
        )
    };
    for n in 0..6 {
        assert!(matches!(guess(n), Err(AuthError::InvalidCredentials(_))));
    }
    let (argon2, looked_up) = (argon2_runs(&f), lookups.load(Ordering::SeqCst));
    for n in 6..1006 {
        match guess(n) {
            Err(AuthError::Throttled { retry_after }) => {
                assert!(retry_after > Duration::ZERO && retry_after <= Duration::seconds(1));
            }
            other => panic!("attempt {n} past the allowance: {other:?}"),
        }
    }
    assert_eq!(
        argon2_runs(&f),
        argon2,
        "a throttled attempt runs no argon2"
    );
    assert_eq!(
        lookups.load(Ordering::SeqCst),
        looked_up,
        "a throttled attempt looks nothing up"
    );
    assert_eq!(f.keys.check_stats().throttled, 1000);
    // Even the right secret waits: the attacker must not learn it now.
    assert!(matches!(
        f.keys
            .authenticate(Channel::Ftp, &k.chosen.0, "chosen-secret-1", attacker),
        Err(AuthError::Throttled { .. })
    ));
    // After the backoff, one more guess is checked, and the next backoff is
    // twice as long.
    f.clock.advance(Duration::seconds(1));
    assert!(matches!(guess(2000), Err(AuthError::InvalidCredentials(_))));
    match guess(2001) {
        Err(AuthError::Throttled { retry_after }) => assert_eq!(retry_after, Duration::seconds(2)),
        other => panic!("{other:?}"),
    }
}

/// No lockout: the owner, from its own address, authenticates while the
/// attacker is blocked.
#[test]
fn the_owner_is_never_locked_out_by_someone_elses_guessing() {
    let (f, _) = throttled_fixture(35);
    let k = keys_of_every_kind(&f);
    let attacker = ip("203.0.113.66");
    for n in 0..200 {
        let _ = f.keys.authenticate(
            Channel::Ftp,
            &k.chosen.0,
            &format!("guess-number-{n}"),
            attacker,
        );
        let _ = f.keys.authenticate(
            Channel::Rest,
            &k.generated.0,
            generate_secret(&mut ChaCha20Rng::seed_from_u64(n)).expose_secret(),
            attacker,
        );
    }
    for (channel, (id, secret)) in [(Channel::Ftp, &k.chosen), (Channel::Rest, &k.generated)] {
        f.keys
            .authenticate(channel, id, secret.expose_secret(), ip("192.0.2.10"))
            .unwrap_or_else(|e| panic!("the owner of {id} was locked out: {e:?}"));
    }
}

/// One address spraying guesses over many identifiers is throttled for all
/// of them; other addresses are not; and a valid key of the attacker's own
/// does not buy more guesses.
#[test]
fn an_address_spraying_identifiers_is_throttled() {
    let (f, _) = throttled_fixture(36);
    let k = keys_of_every_kind(&f);
    let attacker = ip("203.0.113.77");
    for n in 0..51 {
        let outcome = f.keys.authenticate(
            Channel::Rest,
            &format!("client-{n}"),
            "wrong-secret-xx",
            attacker,
        );
        assert!(
            matches!(outcome, Err(AuthError::InvalidCredentials(_))),
            "{n}"
        );
        // The attacker's own key, used in between, clears nothing.
        f.keys
            .authenticate(Channel::Ftp, &k.chosen.0, "chosen-secret-1", attacker)
            .ok();
    }
    assert!(matches!(
        f.keys
            .authenticate(Channel::Rest, "client-999", "wrong-secret-xx", attacker),
        Err(AuthError::Throttled { .. })
    ));
    assert!(matches!(
        f.keys.authenticate(
            Channel::Rest,
            "client-999",
            "wrong-secret-xx",
            ip("203.0.113.78")
        ),
        Err(AuthError::InvalidCredentials(_))
    ));
}

/// A check that started before a deletion or a rotation returned, and is
/// still in argon2 when it does, is refused: revocation wins. Only the slow
/// path pays the extra read.
#[test]
fn revocation_beats_a_check_in_flight() {
    let f = Fixture::new(Arc::new(MemoryStore::new()), 37);
    let k = keys_of_every_kind(&f);
    let (id, secret) = &k.chosen;
    let key_id = k.chosen_id;
    // A fresh service: its cache has not seen the secret, so argon2 runs.
    let begin = |f: &Fixture| match f.keys.begin_authentication(
        Channel::Ftp,
        id,
        secret.expose_secret(),
        ip(CLIENT),
    ) {
        Check::NeedsArgon2(pending) => pending,
        Check::Done(outcome) => panic!("expected argon2 work, got {outcome:?}"),
    };
    let uncached = Fixture::with_policy(
        f.store.clone(),
        38,
        Policy::fast_for_tests().verified_cache_capacity(0),
    );
    // Rotation while argon2 runs.
    let pending = begin(&uncached);
    f.keys
        .change_credentials(
            Actor::Operator,
            key_id,
            CredentialChange {
                secret: Some(SecretChoice::Chosen(Secret::new("rotated-secret-6"))),
                ..CredentialChange::default()
            },
        )
        .unwrap();
    let outcome = uncached.keys.finish_authentication(pending);
    assert_eq!(
        outcome.unwrap_err().reason(),
        Some(Refusal::ChangedDuringCheck),
        "a rotation that returned beats the check in flight"
    );
    // Deletion while argon2 runs.
    let pending =
        match uncached
            .keys
            .begin_authentication(Channel::Ftp, id, "rotated-secret-6", ip(CLIENT))
        {
            Check::NeedsArgon2(p) => p,
            Check::Done(o) => panic!("{o:?}"),
        };
    f.keys.delete_key(Actor::Operator, key_id).unwrap();
    let outcome = uncached.keys.finish_authentication(pending);
    assert_eq!(
        outcome.unwrap_err().reason(),
        Some(Refusal::ChangedDuringCheck)
    );
}

/// An account learns nothing about what others hold: another's account or
/// key is "not found", exactly like one that does not exist, and the
/// refusal comes before any argon2.
#[test]
fn management_answers_reveal_nothing_to_an_acting_account() {
    let f = Fixture::new(Arc::new(MemoryStore::new()), 39);
    let victim = f.master();
    let victim_key = f
        .keys
        .create_key(Actor::Operator, victim.id, NewKey::generated(Channel::Ftp))
        .unwrap()
        .key;
    let intruder = Actor::Account(f.master().id);
    let ghost_key: apikeys::KeyId = "key_00000000000000000000000000000000".parse().unwrap();
    let ghost_account: apikeys::AccountId = "acc_00000000000000000000000000000000".parse().unwrap();

    let shape = |e: Error, id: &str| e.to_string().replace(id, "<id>");
    assert_eq!(
        shape(
            f.keys.key(intruder, victim_key.id).unwrap_err(),
            &victim_key.id.to_string()
        ),
        shape(
            f.keys.key(intruder, ghost_key).unwrap_err(),
            &ghost_key.to_string()
        ),
    );
    assert_eq!(
        shape(
            f.keys.keys(intruder, victim.id).unwrap_err(),
            &victim.id.to_string()
        ),
        shape(
            f.keys.keys(intruder, ghost_account).unwrap_err(),
            &ghost_account.to_string()
        ),
    );
    assert_eq!(
        shape(
            f.keys
                .open_account(intruder, apikeys::NewAccount::sub(victim.id))
                .unwrap_err(),
            &victim.id.to_string()
        ),
        "account <id> not found"
    );
    // A chosen secret for someone else's account is refused before argon2
    // hashes it (under the production policy argon2 alone takes over 10 ms).
    let f_prod = Fixture::with_policy(f.store.clone(), 40, Policy::default());
    let started = std::time::Instant::now();
    f_prod
        .keys
        .create_key(
            intruder,
            victim.id,
            NewKey::chosen(Channel::Rest, "sneaky", Secret::new("sneaky-secret-1")),
        )
        .unwrap_err();
    assert!(
        started.elapsed() < std::time::Duration::from_millis(5),
        "refused under the production policy in {:?}: argon2 ran",
        started.elapsed()
    );
}

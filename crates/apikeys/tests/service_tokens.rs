//! The service's rules about REST tokens, on the in-memory store: only a
//! REST check buys one, issuing is audited, a check never runs argon2, a
//! token dies with its lifetime, and wrong tokens are throttled per address.
//! (What a store must do with tokens is the conformance suite's.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use apikeys::testing::{Fixture, START};
use apikeys::{
    AccountId, Actor, AuditKind, AuthError, Authenticated, Channel, Error, NewKey, Policy, Refusal,
    Secret, SecretChoice, ThrottlePolicy,
};
use common::{any_ip, ip, master_with_key, memory, op, refusal};

/// A master account with a key of `channel` (a generated secret), and the
/// check that key passes.
fn checked(f: &Fixture, channel: Channel) -> (AccountId, Authenticated) {
    let issued = master_with_key(f, NewKey::generated(channel));
    let who = f
        .keys
        .authenticate(
            channel,
            &issued.key.identifier,
            issued.secret.unwrap().expose_secret(),
            any_ip(),
        )
        .unwrap();
    (issued.key.account_id, who)
}

/// Only a REST check is traded for a token: a check of any other channel's
/// key is refused, and nothing is stored.
#[test]
fn only_a_rest_check_buys_a_token() {
    let f = Fixture::new(memory(), 1);
    for channel in Channel::ALL {
        let (account, who) = checked(&f, channel);
        let before = f.keys.audit(op(), account, 100).unwrap().len();
        let result = f.keys.issue_token(&who);
        if channel == Channel::Rest {
            let token = result.unwrap();
            assert_eq!(token.expires_at, START + Policy::default().token_lifetime);
            f.keys
                .authenticate_token(token.token.expose_secret(), any_ip())
                .unwrap();
        } else {
            match result {
                Err(Error::TokenChannel(c)) => assert_eq!(c, channel),
                other => panic!("{channel:?}: {other:?}"),
            }
            assert_eq!(f.keys.audit(op(), account, 100).unwrap().len(), before);
        }
    }
}

/// Issuing a token is in the account's audit trail: the key, the channel,
/// the account as actor, and until when it is valid (never the token).
#[test]
fn issuing_a_token_is_audited_without_the_token() {
    let f = Fixture::new(memory(), 2);
    let (account, who) = checked(&f, Channel::Rest);
    let token = f.keys.issue_token(&who).unwrap();
    let events = f.keys.audit(op(), account, 100).unwrap();
    let latest = &events[0];
    assert_eq!(latest.kind, AuditKind::TokenIssued);
    assert_eq!(latest.key_id, Some(who.key_id));
    assert_eq!(latest.channel, Some(Channel::Rest));
    assert_eq!(latest.actor, Actor::Account(account));
    assert!(latest.detail.contains("2025-"), "{}", latest.detail);
    let body = &token.token.expose_secret()[5..];
    for e in &events {
        assert!(!e.detail.contains(body), "the token is in the trail");
    }
}

/// A token works until the first instant of its expiry, and from then on
/// is refused as expired.
#[test]
fn a_token_dies_at_its_expiry() {
    let f = Fixture::new(memory(), 3);
    let (_, who) = checked(&f, Channel::Rest);
    let token = f.keys.issue_token(&who).unwrap();
    f.clock
        .set(token.expires_at - time::Duration::nanoseconds(1));
    f.keys
        .authenticate_token(token.token.expose_secret(), any_ip())
        .unwrap();
    f.clock.set(token.expires_at);
    assert_eq!(
        refusal(
            f.keys
                .authenticate_token(token.token.expose_secret(), any_ip())
        ),
        Refusal::TokenExpired
    );
}

/// A key with a chosen secret pays argon2 for the check that buys the
/// token, and never again however often the token is used.
#[test]
fn a_token_check_never_runs_argon2() {
    let f = Fixture::new(memory(), 4);
    let chosen = Secret::new("a-chosen-secret,2x!");
    let issued = master_with_key(
        &f,
        NewKey {
            secret: SecretChoice::Chosen(chosen.clone()),
            ..NewKey::generated(Channel::Rest)
        },
    );
    let who = f
        .keys
        .authenticate(
            Channel::Rest,
            &issued.key.identifier,
            chosen.expose_secret(),
            any_ip(),
        )
        .unwrap();
    let token = f.keys.issue_token(&who).unwrap();
    let before = f.keys.check_stats().argon2;
    assert_eq!(before, 1, "the Basic check ran argon2 once");
    for _ in 0..200 {
        f.keys
            .authenticate_token(token.token.expose_secret(), any_ip())
            .unwrap();
    }
    assert_eq!(f.keys.check_stats().argon2, before);
}

/// Wrong tokens from one address, well-formed or not, are throttled like
/// wrong secrets: the address is then refused even with a good token,
/// without a lookup, while another address's good token still works.
#[test]
fn wrong_tokens_are_throttled_per_address() {
    let f = Fixture::with_policy(
        memory(),
        5,
        Policy::fast_for_tests().throttle(ThrottlePolicy::default()),
    );
    let (_, who) = checked(&f, Channel::Rest);
    let good = f.keys.issue_token(&who).unwrap().token;
    let attacker = ip("203.0.113.66");
    let forged = format!("aktok{}", "A".repeat(46));
    let mut throttled_after = None;
    for attempt in 1..=100 {
        let guess = if attempt % 2 == 0 {
            forged.as_str()
        } else {
            "nonsense"
        };
        match f.keys.authenticate_token(guess, attacker) {
            Err(AuthError::InvalidCredentials(_)) => {}
            Err(AuthError::Throttled { retry_after }) => {
                assert!(retry_after > std::time::Duration::ZERO);
                throttled_after = Some(attempt);
                break;
            }
            other => panic!("attempt {attempt}: {other:?}"),
        }
    }
    let throttled_after = throttled_after.expect("wrong tokens are throttled");
    assert!(
        throttled_after <= 20,
        "throttled only after {throttled_after}"
    );
    assert!(matches!(
        f.keys.authenticate_token(good.expose_secret(), attacker),
        Err(AuthError::Throttled { .. })
    ));
    f.keys
        .authenticate_token(good.expose_secret(), any_ip())
        .unwrap();
}

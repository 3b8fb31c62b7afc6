//! REST tokens in the store: kept exactly, bound to their key's
//! credentials, bounded per key, purged when expired, and all of it
//! atomically.

use super::super::records::{event, hash};
use super::support::*;
use crate::audit::AuditKind;
use crate::channel::Channel;
use crate::id::KeyId;
use crate::key::KeyRecord;
use crate::store::{DynStore, Existing};
use crate::token::{TokenDigest, TokenRecord};
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

/// When the tests' tokens are issued: nanoseconds included.
const ISSUED: OffsetDateTime = time::macros::datetime!(2025-03-04 5:06:07.123456789 UTC);

fn token(seed: &str, key: KeyId, issued_at: OffsetDateTime) -> TokenRecord {
    TokenRecord {
        digest: TokenDigest::of(seed),
        key_id: key,
        issued_at,
        expires_at: issued_at + Duration::minutes(1440),
    }
}

fn issue(
    store: &DynStore,
    t: &TokenRecord,
    key: &KeyRecord,
    max_live: u32,
    now: OffsetDateTime,
) -> Result<(), crate::StoreError> {
    store.insert_token(
        t,
        key.version,
        max_live,
        now,
        &event(key.account_id, Some(key), AuditKind::TokenIssued, "token"),
    )
}

#[track_caller]
fn found(store: &DynStore, t: &TokenRecord) -> Option<(TokenRecord, KeyRecord)> {
    ok(
        store.token(&t.digest),
        "a token lookup of a healthy store succeeds",
    )
}

#[track_caller]
fn trail_len(store: &DynStore, key: &KeyRecord) -> usize {
    ok(
        store.audit_events(key.account_id, 1000),
        "audit reads succeed",
    )
    .len()
}

/// A token reads back exactly, with its key, in one lookup; it survives
/// changes that keep the credentials (the whitelist, the label, a hash
/// upgrade) and dies with a new secret, a new identifier, or the key.
pub fn tokens_live_and_die_with_their_credentials(store: Arc<DynStore>) {
    let mut ids = Ids::new(301);
    let a = add_master(&*store, &mut ids);
    let mut k = add_key(&*store, &mut ids, a.id, Channel::Rest, "rest-client");
    let t = token("first", k.id, ISSUED);
    ok(
        issue(&*store, &t, &k, 10, ISSUED),
        "a token for a key at its version is stored",
    );
    same(
        found(&*store, &t),
        Some((t.clone(), k.clone())),
        "a token reads back exactly, with its key, instants to the nanosecond",
    );
    same(
        found(&*store, &token("never-issued", k.id, ISSUED)),
        None,
        "an unknown digest finds nothing",
    );

    // Changes that keep the credentials keep the token.
    let mut listed = k.clone();
    listed.version += 1;
    listed.whitelist = crate::whitelist::Whitelist::parse(&["10.0.0.0/8"], 10).unwrap();
    listed.label = Some("renamed label".into());
    update(&*store, &listed, "whitelist and label");
    same(
        found(&*store, &t).map(|(t, _)| t),
        Some(t.clone()),
        "a change of whitelist or label keeps the key's tokens",
    );
    same(
        found(&*store, &t).map(|(_, k)| k),
        Some(listed.clone()),
        "the token's key reads back as it is now",
    );
    k = listed;
    ok(
        store.upgrade_secret_hash(k.id, &k.secret_hash, &hash("stronger")),
        "an upgrade of a hash is applied",
    );
    k.secret_hash = hash("stronger");
    holds(
        found(&*store, &t).is_some(),
        "a hash upgrade (same secret) keeps the key's tokens",
        found(&*store, &t),
        "Some(_)",
    );

    // A new secret kills it.
    let rotated = next(&k, "rotated");
    update(&*store, &rotated, "secret changed");
    same(
        found(&*store, &t),
        None,
        "a new secret deletes the key's tokens",
    );
    k = rotated;

    // So does a new identifier.
    let t2 = token("second", k.id, ISSUED);
    ok(
        issue(&*store, &t2, &k, 10, ISSUED),
        "a token for the new credentials",
    );
    let mut renamed = k.clone();
    renamed.version += 1;
    renamed.identifier = "rest-client-renamed".into();
    update(&*store, &renamed, "identifier changed");
    same(
        found(&*store, &t2),
        None,
        "a new identifier deletes the key's tokens",
    );
    k = renamed;

    // And so does deleting the key.
    let t3 = token("third", k.id, ISSUED);
    ok(
        issue(&*store, &t3, &k, 10, ISSUED),
        "a token for the renamed key",
    );
    ok(
        store.delete_key(k.id, None, &about(&k, AuditKind::KeyDeleted, "deleted")),
        "a key is deleted",
    );
    same(
        found(&*store, &t3),
        None,
        "deleting a key deletes its tokens",
    );
    same(
        ok(
            store.purge_expired_tokens(ISSUED + Duration::days(365)),
            "a purge succeeds",
        ),
        0,
        "no token outlives its key or its credentials, not even unreachable",
    );
}

/// An insert is refused if the key is gone or its credentials moved on
/// since they were checked, or the digest is taken; a refused insert
/// records nothing.
pub fn token_inserts_are_checked_and_refusals_leave_no_trace(store: Arc<DynStore>) {
    let mut ids = Ids::new(302);
    let a = add_master(&*store, &mut ids);
    let k = add_key(&*store, &mut ids, a.id, Channel::Rest, "tok-checked");
    let before = trail_len(&*store, &k);
    let ghost = ids.key();
    let t = token("for-a-ghost", ghost, ISSUED);
    refused(
        store.insert_token(
            &t,
            1,
            10,
            ISSUED,
            &event(a.id, None, AuditKind::TokenIssued, "ghost"),
        ),
        Want::KeyNotFound(ghost),
        "a token for a key that does not exist is NotFound naming the key",
    );
    let stale = token("stale", k.id, ISSUED);
    refused(
        store.insert_token(
            &stale,
            k.version + 1,
            10,
            ISSUED,
            &event(a.id, Some(&k), AuditKind::TokenIssued, "stale"),
        ),
        Want::Conflict {
            key: k.id,
            expected: k.version + 1,
            found: k.version,
        },
        "a token for credentials that moved on is a Conflict",
    );
    let good = token("good", k.id, ISSUED);
    ok(
        issue(&*store, &good, &k, 10, ISSUED),
        "a valid token is stored",
    );
    let twin = TokenRecord {
        issued_at: ISSUED + Duration::seconds(1),
        ..good.clone()
    };
    refused(
        issue(&*store, &twin, &k, 10, ISSUED),
        Want::Taken(Existing::Token),
        "a digest already stored is AlreadyExists(Token)",
    );
    same(found(&*store, &t), None, "a refused token is not stored");
    same(
        found(&*store, &stale),
        None,
        "a refused token is not stored",
    );
    same(
        found(&*store, &good).map(|(t, _)| t),
        Some(good.clone()),
        "a refused duplicate leaves the stored token as it was",
    );
    same(
        trail_len(&*store, &k),
        before + 1,
        "only the stored token recorded an event",
    );
}

/// A token's instants are kept like every other instant: to the
/// nanosecond, read back in UTC whatever offset they were written in; an
/// instant outside the range every store keeps is `Unstorable`, and the
/// refused insert leaves neither token nor event.
pub fn token_instants_are_kept_exactly_or_refused(store: Arc<DynStore>) {
    let mut ids = Ids::new(306);
    let a = add_master(&*store, &mut ids);
    let k = add_key(&*store, &mut ids, a.id, Channel::Rest, "tok-instants");
    let east = time::UtcOffset::from_hms(5, 30, 0).unwrap_or(time::UtcOffset::UTC);
    let written = TokenRecord {
        issued_at: ISSUED.to_offset(east),
        expires_at: (ISSUED + Duration::minutes(1440)).to_offset(east),
        ..token("elsewhere", k.id, ISSUED)
    };
    ok(
        issue(&*store, &written, &k, 10, ISSUED),
        "a token written in another offset is stored",
    );
    let read = found(&*store, &written).map(|(t, _)| t);
    same(
        read.as_ref().map(|t| (t.issued_at, t.expires_at)),
        Some((ISSUED, ISSUED + Duration::minutes(1440))),
        "a token's instants read back to the nanosecond",
    );
    same(
        read.map(|t| (t.issued_at.offset(), t.expires_at.offset())),
        Some((time::UtcOffset::UTC, time::UtcOffset::UTC)),
        "a token's instants read back in UTC",
    );
    let before = trail_len(&*store, &k);
    let too_late = LATEST + Duration::nanoseconds(1);
    let late = TokenRecord {
        expires_at: too_late,
        ..token("expires-too-late", k.id, ISSUED)
    };
    refused(
        issue(&*store, &late, &k, 10, ISSUED),
        Want::UnstorableInstant(too_late),
        "a token expiring after the range is Unstorable",
    );
    let too_early = EARLIEST - Duration::nanoseconds(1);
    let early = TokenRecord {
        issued_at: too_early,
        ..token("issued-too-early", k.id, ISSUED)
    };
    refused(
        issue(&*store, &early, &k, 10, ISSUED),
        Want::UnstorableInstant(too_early),
        "a token issued before the range is Unstorable",
    );
    same(found(&*store, &late), None, "a refused token is not stored");
    same(
        found(&*store, &early),
        None,
        "a refused token is not stored",
    );
    same(
        trail_len(&*store, &k),
        before,
        "a refused token records no event",
    );
}

/// Issuing a token clears its key's expired ones and, at the bound, its
/// oldest (ties by digest); other keys' tokens are untouched; a token
/// expiring exactly now is expired, and does not count toward the bound.
pub fn token_inserts_purge_expired_and_keep_the_bound(store: Arc<DynStore>) {
    let mut ids = Ids::new(303);
    let a = add_master(&*store, &mut ids);
    let k = add_key(&*store, &mut ids, a.id, Channel::Rest, "tok-bounded");
    let other = add_key(&*store, &mut ids, a.id, Channel::Rest, "tok-other");
    let theirs = token("theirs", other.id, ISSUED);
    ok(
        issue(&*store, &theirs, &other, 1, ISSUED),
        "another key's token",
    );

    // Two tokens issued at the same instant: the smaller digest is older.
    let (x, y) = (token("tie-x", k.id, ISSUED), token("tie-y", k.id, ISSUED));
    let (older, newer) = if x.digest.0 < y.digest.0 {
        (x, y)
    } else {
        (y, x)
    };
    let third = token("third", k.id, ISSUED + Duration::seconds(1));
    for t in [&older, &newer, &third] {
        ok(issue(&*store, t, &k, 3, ISSUED), "tokens within the bound");
    }
    let fourth = token("fourth", k.id, ISSUED + Duration::seconds(2));
    ok(
        issue(&*store, &fourth, &k, 3, ISSUED),
        "a token past the bound is stored",
    );
    same(
        found(&*store, &older),
        None,
        "at the bound the oldest token goes (issue instant, then digest)",
    );
    for t in [&newer, &third, &fourth] {
        holds(
            found(&*store, t).is_some(),
            "the other tokens within the bound stay",
            found(&*store, t),
            "Some(_)",
        );
    }
    // Later, with two of them expired: issuing clears them.
    let expiring = TokenRecord {
        expires_at: ISSUED + Duration::minutes(5),
        ..token("short-lived", k.id, ISSUED + Duration::seconds(3))
    };
    ok(
        issue(&*store, &expiring, &k, 10, ISSUED),
        "a short-lived token",
    );
    let later = ISSUED + Duration::minutes(5);
    let fresh = token("fresh", k.id, later);
    ok(
        issue(&*store, &fresh, &k, 10, later),
        "a token issued later",
    );
    same(
        found(&*store, &expiring),
        None,
        "a token expiring exactly at `now` is expired, and cleared by the next issue",
    );
    holds(
        found(&*store, &newer).is_some(),
        "tokens not yet expired stay",
        found(&*store, &newer),
        "Some(_)",
    );
    same(
        found(&*store, &theirs).map(|(t, _)| t),
        Some(theirs.clone()),
        "another key's tokens are untouched",
    );
    // At the bound, a token expiring exactly at `now` counts for nothing:
    // it goes, and no live token goes in its place.
    let b = add_master(&*store, &mut ids);
    let k2 = add_key(&*store, &mut ids, b.id, Channel::Rest, "tok-bound-edge");
    let live_old = token("edge-live", k2.id, ISSUED);
    let dying = TokenRecord {
        expires_at: ISSUED + Duration::minutes(5),
        ..token("edge-dying", k2.id, ISSUED + Duration::seconds(1))
    };
    for t in [&live_old, &dying] {
        ok(issue(&*store, t, &k2, 2, ISSUED), "two tokens at the bound");
    }
    let edge = ISSUED + Duration::minutes(5);
    let newest = token("edge-new", k2.id, edge);
    ok(
        issue(&*store, &newest, &k2, 2, edge),
        "a token issued as another expires",
    );
    same(
        found(&*store, &dying),
        None,
        "a token expiring exactly at `now` is cleared",
    );
    holds(
        found(&*store, &live_old).is_some(),
        "an expired token does not count toward the bound: the live one stays",
        found(&*store, &live_old),
        "Some(_)",
    );
}

/// `purge_expired_tokens` deletes exactly the expired tokens of every key
/// and says how many.
pub fn purge_removes_exactly_the_expired_tokens(store: Arc<DynStore>) {
    let mut ids = Ids::new(304);
    let a = add_master(&*store, &mut ids);
    let k1 = add_key(&*store, &mut ids, a.id, Channel::Rest, "purge-one");
    let k2 = add_key(&*store, &mut ids, a.id, Channel::Rest, "purge-two");
    let now = ISSUED + Duration::hours(1);
    let at = |seed: &str, k: &KeyRecord, expires: OffsetDateTime| TokenRecord {
        expires_at: expires,
        ..token(seed, k.id, ISSUED)
    };
    let gone = [
        at("gone-1", &k1, now - Duration::nanoseconds(1)),
        at("gone-2", &k2, now),
    ];
    let kept = [
        at("kept-1", &k1, now + Duration::nanoseconds(1)),
        at("kept-2", &k2, now + Duration::days(1)),
    ];
    for t in gone.iter().chain(&kept) {
        let k = if t.key_id == k1.id { &k1 } else { &k2 };
        ok(issue(&*store, t, k, 10, ISSUED), "tokens to purge");
    }
    same(
        ok(store.purge_expired_tokens(now), "a purge succeeds"),
        2,
        "the purge counts what it deleted",
    );
    for t in &gone {
        same(found(&*store, t), None, "expired tokens are purged");
    }
    for t in &kept {
        holds(
            found(&*store, t).is_some(),
            "live tokens are kept",
            found(&*store, t),
            "Some(_)",
        );
    }
    same(
        ok(store.purge_expired_tokens(now), "a purge succeeds"),
        0,
        "nothing left to purge",
    );
}

/// Threads issue tokens for one key at once under a bound of one, round
/// after round until enough rounds really ran at once: every insert
/// succeeds, and the key never holds more than one.
pub fn race_token_inserts_keep_the_bound(store: Arc<DynStore>) {
    let mut ids = Ids::new(305);
    let a = add_master(&*store, &mut ids);
    let k = add_key(&*store, &mut ids, a.id, Channel::Rest, "tok-race");
    // Two threads: on a small machine, as many as truly run at once.
    const THREADS: usize = 2;
    let mut issued: Vec<TokenRecord> = Vec::new();
    let mut overlapped = 0;
    for round in 0..400usize {
        let tokens: Vec<TokenRecord> = (0..THREADS)
            .map(|i| {
                token(
                    &format!("race-{round}-{i}"),
                    k.id,
                    ISSUED + Duration::seconds((round * THREADS + i) as i64),
                )
            })
            .collect();
        let (answers, together) =
            race(THREADS, 1, |_, i| issue(&*store, &tokens[i], &k, 1, ISSUED));
        for r in &answers[0] {
            holds(
                r.is_ok(),
                "concurrent token inserts within a key succeed",
                show(r),
                "Ok(())",
            );
        }
        issued.extend(tokens);
        let live = issued
            .iter()
            .filter(|t| found(&*store, t).is_some())
            .count();
        holds(
            live <= 1,
            "concurrent inserts never leave a key more tokens than the bound",
            (round, live),
            "at most 1",
        );
        overlapped += usize::from(together[0]);
        if overlapped >= 60 {
            break;
        }
    }
}

/// Once a credential change returns, a lookup of the key's token from
/// another thread finds nothing: revocation is at once.
pub fn token_revocation_is_seen_at_once(store: Arc<DynStore>) {
    let mut ids = Ids::new(306);
    let a = add_master(&*store, &mut ids);
    let k = add_key(&*store, &mut ids, a.id, Channel::Rest, "tok-revoked");
    let t = token("soon-revoked", k.id, ISSUED);
    ok(issue(&*store, &t, &k, 10, ISSUED), "a token is stored");
    let rotated = next(&k, "rotated");
    update(&*store, &rotated, "rotated");
    let seen = std::thread::scope(|s| s.spawn(|| found(&*store, &t)).join().unwrap());
    same(
        seen,
        None,
        "a token revoked by a returned change is gone for every reader",
    );
}

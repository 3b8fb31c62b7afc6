//! The authentication path costs one round trip to the server: counted on
//! the wire, by a proxy that sees every `ReadyForQuery` the server sends. A
//! second statement, a `Parse` before the `Bind`, a ping at checkout or a
//! `SET search_path` per request would each add one and fail these tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use apikeys::NewAccount;
use apikeys::testing::{Fixture, START};
use apikeys::{Actor, Channel, NewKey, Store};
use apikeys_postgres::testing::TestSchema;
use apikeys_postgres::{Options, PostgresStore};
use common::Proxy;
use std::sync::Arc;

const CALLS: u64 = 50;

#[test]
fn key_by_identifier_is_one_round_trip() {
    let Some(db) = TestSchema::new("round_trips_lookup") else {
        return;
    };
    let proxy = Proxy::start(&db);
    let store = Arc::new(
        PostgresStore::connect_with(
            &proxy.url(&db),
            Options::default().pool_size(1).schema(db.name()),
        )
        .unwrap(),
    );
    let f = Fixture::new(store.clone(), 1);
    let a = f
        .keys
        .open_account(Actor::Operator, NewAccount::master().created_at(START))
        .unwrap()
        .account;
    let k = f
        .keys
        .create_key(Actor::Operator, a.id, NewKey::generated(Channel::Rest))
        .unwrap();

    let upper = k.key.identifier.to_uppercase();
    for (what, identifier, found) in [
        ("present", k.key.identifier.as_str(), true),
        ("present, other case", upper.as_str(), true),
        ("absent", "no-such-identifier", false),
    ] {
        let before = proxy.round_trips();
        for _ in 0..CALLS {
            assert_eq!(
                store.key_by_identifier(identifier).unwrap().is_some(),
                found
            );
        }
        assert_eq!(
            proxy.round_trips() - before,
            CALLS,
            "{what}: one round trip per key_by_identifier"
        );
    }
}

#[test]
fn authentication_is_one_round_trip() {
    let Some(db) = TestSchema::new("round_trips_auth") else {
        return;
    };
    let proxy = Proxy::start(&db);
    let store = PostgresStore::connect_with(
        &proxy.url(&db),
        Options::default().pool_size(1).schema(db.name()),
    )
    .unwrap();
    let f = Fixture::new(Arc::new(store), 2);
    let a = f
        .keys
        .open_account(Actor::Operator, NewAccount::master().created_at(START))
        .unwrap()
        .account;
    let k = f
        .keys
        .create_key(Actor::Operator, a.id, NewKey::generated(Channel::Rest))
        .unwrap();
    let secret = k.secret.unwrap();
    let client = "203.0.113.7".parse().unwrap();

    let before = proxy.round_trips();
    for _ in 0..CALLS {
        f.keys
            .authenticate(
                Channel::Rest,
                &k.key.identifier,
                secret.expose_secret(),
                client,
            )
            .unwrap();
    }
    assert_eq!(
        proxy.round_trips() - before,
        CALLS,
        "one round trip per successful authentication"
    );

    let before = proxy.round_trips();
    for _ in 0..CALLS {
        f.keys
            .authenticate(Channel::Rest, "unknown-client", "wrong-secret-1", client)
            .unwrap_err();
    }
    assert!(
        proxy.round_trips() - before <= CALLS,
        "at most one round trip per refusal"
    );
}

/// The lookup is an index scan on the folded identifier, also in the
/// generic plan a prepared statement ends up with.
#[test]
fn lookup_uses_the_identifier_index() {
    let Some(db) = TestSchema::new("round_trips_plan") else {
        return;
    };
    let store = db.store(1);
    drop(store);
    let mut client = db.client();
    client
        .batch_execute(&format!(
            "SET search_path = {schema};
             INSERT INTO apikeys_accounts (id, kind, created_at)
                 VALUES ('\\x00000000000000000000000000000001', 'master', 0);
             INSERT INTO apikeys_keys (id, account_id, channel, identifier, secret_hash,
                                       created_at, changed_at, version)
                 SELECT decode(lpad(to_hex(i), 32, '0'), 'hex'),
                        '\\x00000000000000000000000000000001', 'rest', 'client-' || i,
                        '{hash}', 0, 0, 1
                 FROM generate_series(1, 2000) i;
             ANALYZE apikeys_keys;
             SET plan_cache_mode = force_generic_plan;
             PREPARE lookup(text) AS SELECT id FROM apikeys_keys
                 WHERE translate(identifier, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')
                     = translate($1::text, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz');",
            schema = db.name(),
            hash = apikeys::testing::records::hash("x").as_str(),
        ))
        .unwrap();
    let plan: Vec<String> = client
        .query("EXPLAIN EXECUTE lookup('CLIENT-42')", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let plan = plan.join("\n");
    assert!(
        plan.contains("Index Scan using apikeys_keys_identifier_key"),
        "{plan}"
    );
    // And the store, reconnected, finds rows written by hand.
    let store = db.store(1);
    assert!(store.key_by_identifier("CLIENT-42").unwrap().is_some());
}

/// The authentication reads bring the key's account and master with it in
/// the same single round trip: a sub-account's key by identifier, and by
/// token.
#[test]
fn the_authentication_reads_are_one_round_trip_with_their_holders() {
    let Some(db) = TestSchema::new("round_trips_held") else {
        return;
    };
    let proxy = Proxy::start(&db);
    let store = Arc::new(
        PostgresStore::connect_with(
            &proxy.url(&db),
            Options::default().pool_size(1).schema(db.name()),
        )
        .unwrap(),
    );
    let f = Fixture::new(store.clone(), 3);
    let master = f.master();
    let sub = f.sub(master.id);
    let k = f
        .keys
        .create_key(Actor::Operator, sub.id, NewKey::generated(Channel::Rest))
        .unwrap();
    let who = f
        .keys
        .authenticate(
            Channel::Rest,
            &k.key.identifier,
            k.secret.unwrap().expose_secret(),
            "203.0.113.7".parse().unwrap(),
        )
        .unwrap();
    let token = f.keys.issue_token(&who).unwrap().token;
    let digest = apikeys::token::TokenDigest::of(token.expose_secret());

    let before = proxy.round_trips();
    for _ in 0..CALLS {
        let held = store
            .key_for_authentication(&k.key.identifier)
            .unwrap()
            .unwrap();
        assert_eq!(held.holders.account.id, sub.id);
        assert_eq!(held.holders.master.as_ref().map(|m| m.id), Some(master.id));
        let (t, held) = store.token_for_authentication(&digest).unwrap().unwrap();
        assert_eq!(t.key_id, k.key.id);
        assert_eq!(held.holders.master.map(|m| m.id), Some(master.id));
    }
    assert_eq!(
        proxy.round_trips() - before,
        2 * CALLS,
        "one round trip per authentication read"
    );
}

/// A flush of 10,000 keys' last uses, previous secrets' included, is one
/// transaction of a few round trips, not one per key.
#[test]
fn a_batch_of_ten_thousand_uses_is_a_few_round_trips() {
    let Some(db) = TestSchema::new("round_trips_uses") else {
        return;
    };
    drop(db.store(1));
    const N: i64 = 10_000;
    let mut client = db.client();
    client
        .batch_execute(&format!(
            "SET search_path = {schema};
             INSERT INTO apikeys_accounts (id, kind, created_at)
                 VALUES ('\\x00000000000000000000000000000001', 'master', 0);
             INSERT INTO apikeys_keys (id, account_id, channel, identifier, secret_hash,
                                       previous_hash, previous_expires_at,
                                       created_at, changed_at, version)
                 SELECT decode(lpad(to_hex(i), 32, '0'), 'hex'),
                        '\\x00000000000000000000000000000001', 'rest', 'client-' || i,
                        '{hash}', '{hash}', 1, 0, 0, 1
                 FROM generate_series(1, {N}) i;",
            schema = db.name(),
            hash = apikeys::testing::records::hash("x").as_str(),
        ))
        .unwrap();
    let proxy = Proxy::start(&db);
    let store = PostgresStore::connect_with(
        &proxy.url(&db),
        Options::default().pool_size(1).schema(db.name()),
    )
    .unwrap();
    let uses: Vec<apikeys::KeyUse> = (1..=N as u128)
        .map(|i| apikeys::KeyUse {
            key_id: apikeys::KeyId::from_bytes(i.to_be_bytes()),
            at: START + apikeys::time::Duration::seconds(i as i64),
            address: "192.0.2.1".parse().unwrap(),
            previous: Some((START, apikeys::testing::records::hash("x"))),
        })
        .collect();
    // A first call warms the pool's connection.
    store.record_uses(&uses[..1]).unwrap();
    let before = proxy.round_trips();
    store.record_uses(&uses).unwrap();
    let trips = proxy.round_trips() - before;
    assert!(trips <= 4, "{trips} round trips for a batch of {N}");
    let row = client
        .query_one(
            &format!(
                "SELECT count(*) FILTER (WHERE last_used_at IS NOT NULL),
                        count(*) FILTER (WHERE previous_secret_last_used_at IS NOT NULL)
                 FROM {}.apikeys_keys",
                db.name()
            ),
            &[],
        )
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (N, N));
}

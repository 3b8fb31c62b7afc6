//! The router on the PostgreSQL store, end to end over real sockets: two
//! server instances sharing one database see each other's changes at once,
//! and a server whose database sessions are killed under load answers
//! clearly, recovers, and loses nothing it acknowledged.
//!
//! Each test works in a throw-away schema (`TestSchema`); without a
//! PostgreSQL server they are skipped, saying so (see
//! `apikeys_postgres::testing`).

// Test code: failing loudly is its job.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use apikeys::Policy;
use apikeys::testing::Fixture;
use apikeys_http::Config;
use apikeys_postgres::testing::TestSchema;
use common::{Response, Server, s};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const NEW: &str = "2024-01-01T00:00:00Z";

/// A server over its own `PostgresStore` (a pool of `pool` connections) in
/// `db`'s schema, as a separate deployment would be. Servers sharing a
/// schema need different seeds, or their ids collide.
fn server(db: &TestSchema, seed: u64, pool: u32) -> Server {
    let store = Arc::new(db.store(pool));
    // Config::default(): checks off the event loop, as the server runs
    // PostgreSQL.
    Server::start_fixture(
        Fixture::with_policy(store, seed, Policy::fast_for_tests()),
        Config::default(),
    )
}

fn authenticate(server: &Server, channel: &str, identifier: &str, secret: &str) -> Response {
    server
        .post(
            "/v1/authenticate",
            json!({"channel": channel, "identifier": identifier, "secret": secret}),
        )
        .send()
}

fn open_master(server: &Server) -> String {
    let opened = server
        .post("/v1/accounts", json!({"kind": "master", "created_at": NEW}))
        .admin()
        .send()
        .expect(201);
    s(&opened["account"], "id")
}

/// A key created through one instance authenticates through the other, and
/// every credential change through the first is in force on the second's
/// very next request: for a generated secret, for a chosen one the second's
/// verified-secret cache holds, for a renamed identifier and a deleted key.
#[test]
fn two_instances_on_one_database_see_each_others_changes_at_once() {
    let Some(db) = TestSchema::new("two_instances") else {
        return;
    };
    let a = server(&db, 7, 4);
    let b = server(&db, 8, 4);
    let account = open_master(&a);

    // Generated credentials.
    let key = a
        .post(
            &format!("/v1/accounts/{account}/keys"),
            json!({"channel": "rest"}),
        )
        .admin()
        .send()
        .expect(201);
    let (key_id, identifier, first) = (s(&key, "id"), s(&key, "identifier"), s(&key, "secret"));
    // A token issued by the first instance works on the second...
    use base64ct::{Base64, Encoding};
    let basic = format!(
        "Basic {}",
        Base64::encode_string(format!("{identifier}:{first}").as_bytes())
    );
    let token = s(
        &a.get("/v1/rest/authentication")
            .header("Authorization", &basic)
            .send()
            .expect(200),
        "token",
    );
    let bearer = |server: &Server| {
        server
            .get("/v1/rest/whoami")
            .header("Authorization", &format!("Bearer {token}"))
            .send()
    };
    bearer(&b).expect(200);
    let who = authenticate(&b, "rest", &identifier, &first).expect(200);
    assert_eq!(
        who,
        json!({"account_id": account, "key_id": key_id, "channel": "rest"})
    );
    let changed = a
        .post(
            &format!("/v1/keys/{key_id}/credentials"),
            json!({"regenerate_secret": true}),
        )
        .admin()
        .send()
        .expect(200);
    let second = s(&changed, "secret");
    authenticate(&b, "rest", &identifier, &first).expect_error(401, "invalid_credentials");
    authenticate(&b, "rest", &identifier, &second).expect(200);
    // ...until the first rotates the key: the second refuses it at once.
    bearer(&b).expect_error(401, "invalid_credentials");
    // The second instance's management API sees the change too.
    let seen = b
        .get(&format!("/v1/keys/{key_id}"))
        .admin()
        .send()
        .expect(200);
    assert_eq!(seen["version"], changed["version"]);

    // A chosen secret, cached by the second instance before the change.
    let chosen = a
        .post(
            &format!("/v1/accounts/{account}/keys"),
            json!({"channel": "http", "identifier": "shared-chosen", "secret": "first-chosen-1"}),
        )
        .admin()
        .send()
        .expect(201);
    let chosen_id = s(&chosen, "id");
    let before = b.keys.check_stats();
    authenticate(&b, "http", "shared-chosen", "first-chosen-1").expect(200);
    authenticate(&b, "http", "shared-chosen", "first-chosen-1").expect(200);
    let after = b.keys.check_stats();
    assert_eq!(
        (after.argon2 - before.argon2, after.cached - before.cached),
        (1, 1),
        "the second check is answered by the second instance's cache"
    );
    a.post(
        &format!("/v1/keys/{chosen_id}/credentials"),
        json!({"secret": "second-chosen-2"}),
    )
    .admin()
    .send()
    .expect(200);
    authenticate(&b, "http", "shared-chosen", "first-chosen-1")
        .expect_error(401, "invalid_credentials");
    authenticate(&b, "http", "shared-chosen", "second-chosen-2").expect(200);

    // A grace period set through the first instance holds on the second.
    let graced = a
        .post(
            &format!("/v1/keys/{key_id}/credentials"),
            json!({"regenerate_secret": true, "grace_seconds": 3600}),
        )
        .admin()
        .send()
        .expect(200);
    let third = s(&graced, "secret");
    authenticate(&b, "rest", &identifier, &second).expect(200);
    authenticate(&b, "rest", &identifier, &third).expect(200);

    // A new identifier takes effect at once.
    a.post(
        &format!("/v1/keys/{chosen_id}/credentials"),
        json!({"identifier": "renamed-chosen"}),
    )
    .admin()
    .send()
    .expect(200);
    authenticate(&b, "http", "shared-chosen", "second-chosen-2")
        .expect_error(401, "invalid_credentials");
    authenticate(&b, "http", "renamed-chosen", "second-chosen-2").expect(200);

    // Suspending the account through the first stops its keys on the
    // second at once, its cache warm; resuming brings them back. So does
    // disabling one key.
    authenticate(&b, "http", "renamed-chosen", "second-chosen-2").expect(200);
    let patch = |server: &Server, path: &str, body: serde_json::Value| {
        server.request("PATCH", path).json(&body).admin().send()
    };
    patch(
        &a,
        &format!("/v1/accounts/{account}"),
        json!({"suspended": true}),
    )
    .expect(200);
    authenticate(&b, "http", "renamed-chosen", "second-chosen-2")
        .expect_error(401, "invalid_credentials");
    authenticate(&b, "rest", &identifier, &third).expect_error(401, "invalid_credentials");
    patch(
        &a,
        &format!("/v1/accounts/{account}"),
        json!({"suspended": false}),
    )
    .expect(200);
    authenticate(&b, "http", "renamed-chosen", "second-chosen-2").expect(200);
    patch(
        &a,
        &format!("/v1/keys/{chosen_id}"),
        json!({"enabled": false}),
    )
    .expect(200);
    authenticate(&b, "http", "renamed-chosen", "second-chosen-2")
        .expect_error(401, "invalid_credentials");
    authenticate(&b, "rest", &identifier, &third).expect(200);

    // A deleted key stops at once; its channel is free again on both.
    let deleted = a.delete(&format!("/v1/keys/{chosen_id}")).admin().send();
    assert_eq!(deleted.status, 204);
    authenticate(&b, "http", "renamed-chosen", "second-chosen-2")
        .expect_error(401, "invalid_credentials");
    b.post(
        &format!("/v1/accounts/{account}/keys"),
        json!({"channel": "http", "identifier": "renamed-chosen"}),
    )
    .admin()
    .send()
    .expect(201);
    // And the one-per-channel rule holds across instances.
    a.post(
        &format!("/v1/accounts/{account}/keys"),
        json!({"channel": "http"}),
    )
    .admin()
    .send()
    .expect_error(409, "channel_already_active");
}

/// What the load threads saw.
#[derive(Default)]
struct Seen {
    /// Accounts whose opening was acknowledged (201).
    accounts: Vec<String>,
    /// Keys whose creation was acknowledged: id, identifier, secret.
    keys: Vec<(String, String, String)>,
    succeeded: usize,
    unavailable: usize,
}

/// A success, or the store's clear 503; anything else fails the test.
fn succeeded_or_unavailable(r: &Response, success: u16, seen: &Mutex<Seen>) -> Option<Value> {
    if r.status == success {
        seen.lock().unwrap().succeeded += 1;
        return Some(r.expect(success));
    }
    let message = r.expect_error(503, "store_unavailable");
    assert!(
        !message.contains("postgres"),
        "details stay in the log: {message}"
    );
    seen.lock().unwrap().unavailable += 1;
    None
}

/// While clients keep opening accounts, creating keys and authenticating,
/// the server's database sessions are terminated again and again: every
/// request succeeds or answers a clear 503, requests succeed again
/// afterwards, and everything acknowledged is there.
#[test]
fn killing_the_database_sessions_under_load_loses_nothing_acknowledged() {
    let Some(db) = TestSchema::new("killed_sessions") else {
        return;
    };
    let server = Arc::new(server(&db, 9, 4));
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let during = Arc::new(AtomicUsize::new(0));

    let clients: Vec<_> = (0..3)
        .map(|_| {
            let (server, stop, seen, during) =
                (server.clone(), stop.clone(), seen.clone(), during.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let r = server
                        .post("/v1/accounts", json!({"kind": "master", "created_at": NEW}))
                        .admin()
                        .send();
                    let Some(opened) = succeeded_or_unavailable(&r, 201, &seen) else {
                        continue;
                    };
                    let account = s(&opened["account"], "id");
                    seen.lock().unwrap().accounts.push(account.clone());
                    let r = server
                        .post(
                            &format!("/v1/accounts/{account}/keys"),
                            json!({"channel": "rest"}),
                        )
                        .admin()
                        .send();
                    let Some(key) = succeeded_or_unavailable(&r, 201, &seen) else {
                        continue;
                    };
                    let (id, identifier, secret) =
                        (s(&key, "id"), s(&key, "identifier"), s(&key, "secret"));
                    seen.lock()
                        .unwrap()
                        .keys
                        .push((id, identifier.clone(), secret.clone()));
                    let r = authenticate(&server, "rest", &identifier, &secret);
                    succeeded_or_unavailable(&r, 200, &seen);
                    during.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();

    std::thread::sleep(Duration::from_millis(300));
    let mut killed = 0;
    let rounds_before = during.load(Ordering::SeqCst);
    for _ in 0..8 {
        killed += db.terminate_sessions(db.application_name());
        std::thread::sleep(Duration::from_millis(150));
    }
    let rounds_during = during.load(Ordering::SeqCst) - rounds_before;
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    assert!(
        killed > 0,
        "no session of the server was found to terminate"
    );
    assert!(
        rounds_during > 0,
        "no request ran while sessions were killed"
    );

    // Requests succeed again.
    let account = open_master(&server);
    let key = server
        .post(
            &format!("/v1/accounts/{account}/keys"),
            json!({"channel": "rest"}),
        )
        .admin()
        .send()
        .expect(201);
    authenticate(&server, "rest", &s(&key, "identifier"), &s(&key, "secret")).expect(200);

    // Everything acknowledged is there, and its credentials work.
    let seen = seen.lock().unwrap();
    eprintln!(
        "killed {killed} sessions; {} requests succeeded, {} answered 503; {} accounts and {} keys acknowledged",
        seen.succeeded,
        seen.unavailable,
        seen.accounts.len(),
        seen.keys.len()
    );
    for account in &seen.accounts {
        server
            .get(&format!("/v1/accounts/{account}"))
            .admin()
            .send()
            .expect(200);
    }
    for (id, identifier, secret) in &seen.keys {
        let got = server
            .get(&format!("/v1/keys/{id}"))
            .admin()
            .send()
            .expect(200);
        assert_eq!(got["identifier"], identifier.as_str());
        authenticate(&server, "rest", identifier, secret).expect(200);
    }
    drop(seen);
    // The server goes before the schema.
    drop(server);
    drop(db);
}

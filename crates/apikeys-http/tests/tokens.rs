//! REST tokens over the API, in-process: traded for Basic credentials,
//! accepted as Bearer wherever Basic is, dead at once when the key's
//! credentials change, the key is deleted or the token expires; a
//! chosen-secret key pays argon2 once per token.

// Test code: failing loudly is its job.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Server, basic, s};
use serde_json::{Value, json};

const NEW: &str = "2024-01-01T00:00:00Z";

fn rest_key(server: &Server, body: Value) -> (String, String, String) {
    let opened = server
        .post("/v1/accounts", json!({"kind": "master", "created_at": NEW}))
        .admin()
        .send()
        .expect(201);
    let account = s(&opened["account"], "id");
    let key = server
        .post(&format!("/v1/accounts/{account}/keys"), body)
        .admin()
        .send()
        .expect(201);
    let secret = key["secret"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_default();
    (s(&key, "id"), s(&key, "identifier"), secret)
}

fn token_for(server: &Server, identifier: &str, secret: &str) -> String {
    let r = server
        .get("/v1/rest/authentication")
        .header("Authorization", &basic(identifier, secret))
        .send();
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let body = r.expect(200);
    assert_eq!(body["schema"], "Bearer");
    assert_eq!(body["expires_in_minutes"], 1440);
    assert_eq!(body["expires_at"], "2025-01-02T00:00:00Z");
    let token = s(&body, "token");
    assert!(token.starts_with("aktok") && token.len() == 51, "{token}");
    token
}

fn whoami(server: &Server, token: &str) -> common::Response {
    server
        .get("/v1/rest/whoami")
        .header("Authorization", &format!("Bearer {token}"))
        .send()
}

#[test]
fn a_token_is_traded_for_basic_credentials_and_works_as_bearer() {
    let server = Server::start();
    let (key_id, identifier, secret) = rest_key(&server, json!({"channel": "rest"}));
    let token = token_for(&server, &identifier, &secret);
    let who = whoami(&server, &token).expect(200);
    assert_eq!(who["key_id"], key_id.as_str());
    // A token does not buy another token.
    server
        .get("/v1/rest/authentication")
        .header("Authorization", &format!("Bearer {token}"))
        .send()
        .expect_error(401, "invalid_credentials");
    // Wrong Basic credentials get no token.
    server
        .get("/v1/rest/authentication")
        .header("Authorization", &basic(&identifier, "wrong-secret-123"))
        .send()
        .expect_error(401, "invalid_credentials");
    // Unknown, mistyped and malformed tokens are refused, with a challenge.
    let mut typo = token.clone().into_bytes();
    typo[10] = if typo[10] == b'a' { b'b' } else { b'a' };
    for bad in [
        String::from_utf8(typo).unwrap(),
        "aktok".to_string(),
        "not-a-token-at-all".to_string(),
    ] {
        let r = whoami(&server, &bad);
        assert_eq!(
            r.header("www-authenticate"),
            Some("Basic realm=\"apikeys\", Bearer realm=\"apikeys\"")
        );
        r.expect_error(401, "invalid_credentials");
    }
}

#[test]
fn a_token_dies_with_its_keys_credentials_and_lives_through_the_rest() {
    let server = Server::start();
    let (key_id, identifier, secret) = rest_key(&server, json!({"channel": "rest"}));
    let token = token_for(&server, &identifier, &secret);
    // A whitelist change keeps it, and the whitelist is checked every time.
    server
        .put(
            &format!("/v1/keys/{key_id}/whitelist"),
            json!({"entries": ["203.0.113.0/24"]}),
        )
        .admin()
        .send()
        .expect(200);
    whoami(&server, &token).expect_error(403, "address_not_allowed");
    server
        .put(
            &format!("/v1/keys/{key_id}/whitelist"),
            json!({"entries": []}),
        )
        .admin()
        .send()
        .expect(200);
    whoami(&server, &token).expect(200);
    // A new secret kills it at once.
    let rotated = server
        .post(
            &format!("/v1/keys/{key_id}/credentials"),
            json!({"regenerate_secret": true}),
        )
        .admin()
        .send()
        .expect(200);
    whoami(&server, &token).expect_error(401, "invalid_credentials");
    // A new token for the new secret; a renamed key kills it.
    let token = token_for(&server, &identifier, &s(&rotated, "secret"));
    whoami(&server, &token).expect(200);
    server
        .post(
            &format!("/v1/keys/{key_id}/credentials"),
            json!({"identifier": "renamed-rest-client"}),
        )
        .admin()
        .send()
        .expect(200);
    whoami(&server, &token).expect_error(401, "invalid_credentials");
    // And a deleted key.
    let token = token_for(&server, "renamed-rest-client", &s(&rotated, "secret"));
    server
        .delete(&format!("/v1/keys/{key_id}"))
        .admin()
        .send()
        .expect(204);
    whoami(&server, &token).expect_error(401, "invalid_credentials");
}

#[test]
fn a_token_expires_after_its_lifetime() {
    let server = Server::start();
    let (_, identifier, secret) = rest_key(&server, json!({"channel": "rest"}));
    let token = token_for(&server, &identifier, &secret);
    server
        .clock
        .advance(time::Duration::minutes(1440) - time::Duration::seconds(1));
    whoami(&server, &token).expect(200);
    server.clock.advance(time::Duration::seconds(1));
    whoami(&server, &token).expect_error(401, "invalid_credentials");
}

/// Over 1,000 requests with one token, a REST key whose secret was chosen
/// runs argon2 exactly once: to issue the token.
#[test]
fn a_chosen_secret_pays_argon2_once_per_token() {
    let server = Server::start();
    let (_, identifier, secret) = rest_key(
        &server,
        json!({"channel": "rest", "identifier": "billing-client", "secret": "chosen-rest-secret-1"}),
    );
    assert!(secret.is_empty(), "a chosen secret is never echoed");
    let before = server.keys.check_stats().argon2;
    let token = token_for(&server, &identifier, "chosen-rest-secret-1");
    for _ in 0..1000 {
        whoami(&server, &token).expect(200);
    }
    assert_eq!(server.keys.check_stats().argon2 - before, 1);
}

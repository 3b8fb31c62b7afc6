//! The whole API, every error status, through the router in-process (see
//! `common`): what a socket would add is the server's, tested by
//! `apikeys-server`.

// Test code: failing loudly is its job.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use apikeys::Policy;
use apikeys_http::Config;
use common::{Server, basic, s};
use serde_json::{Value, json};
use time::Duration;

const LEGACY: &str = "2021-05-01T00:00:00Z";
const NEW: &str = "2024-01-01T00:00:00Z";

fn open_master(server: &Server, created_at: &str) -> Value {
    server
        .post(
            "/v1/accounts",
            json!({"kind": "master", "created_at": created_at}),
        )
        .admin()
        .send()
        .expect(201)
}

fn open_sub(server: &Server, parent: &str) -> Value {
    server
        .post("/v1/accounts", json!({"kind": "sub", "parent_id": parent}))
        .admin()
        .send()
        .expect(201)
}

fn create_key(server: &Server, account: &str, body: Value) -> Value {
    server
        .post(&format!("/v1/accounts/{account}/keys"), body)
        .admin()
        .send()
        .expect(201)
}

fn authenticate(
    server: &Server,
    channel: &str,
    identifier: &str,
    secret: &str,
) -> common::Response {
    server
        .post(
            "/v1/authenticate",
            json!({"channel": channel, "identifier": identifier, "secret": secret}),
        )
        .send()
}

#[test]
fn legacy_master_gets_four_keys_new_master_and_sub_get_none() {
    let server = Server::start();
    let legacy = open_master(&server, LEGACY);
    let account = &legacy["account"];
    assert_eq!(account["kind"], "master");
    assert_eq!(account["parent_id"], Value::Null);
    assert_eq!(account["created_at"], LEGACY);
    let issued = legacy["issued"].as_array().unwrap();
    let channels: Vec<_> = issued
        .iter()
        .map(|k| k["channel"].as_str().unwrap())
        .collect();
    assert_eq!(channels, ["ftp", "http", "web_service", "email"]);
    for key in issued {
        assert!(
            s(key, "secret").starts_with("akey"),
            "secrets shown once: {key}"
        );
        assert_eq!(key["account_id"], account["id"]);
    }
    // Each default key authenticates on its channel.
    for key in issued {
        let who = authenticate(
            &server,
            &s(key, "channel"),
            &s(key, "identifier"),
            &s(key, "secret"),
        )
        .expect(200);
        assert_eq!(
            who,
            json!({"account_id": account["id"], "key_id": key["id"], "channel": key["channel"]})
        );
    }
    // Listing shows them without secrets or hashes.
    let id = s(account, "id");
    let listed = server
        .get(&format!("/v1/accounts/{id}/keys"))
        .admin()
        .send()
        .expect(200);
    let keys = listed["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 4);
    for key in keys {
        assert!(key.get("secret").is_none());
        let text = key.to_string();
        assert!(!text.contains("$sha256$") && !text.contains("argon2"));
        for field in [
            "id",
            "channel",
            "identifier",
            "label",
            "whitelist",
            "created_at",
            "changed_at",
            "grace_until",
        ] {
            assert!(key.get(field).is_some(), "{field} missing in {key}");
        }
    }
    let got = server
        .get(&format!("/v1/accounts/{id}"))
        .admin()
        .send()
        .expect(200);
    assert_eq!(&got, account);

    // A master at the cutover or after, and every sub-account, start empty.
    let new = open_master(&server, NEW);
    assert_eq!(new["issued"], json!([]));
    let at_cutover = open_master(&server, "2023-06-06T00:00:00+02:00");
    assert_eq!(at_cutover["issued"], json!([]));
    assert_eq!(at_cutover["account"]["created_at"], "2023-06-05T22:00:00Z");
    let sub = open_sub(&server, &id);
    assert_eq!(sub["issued"], json!([]));
    assert_eq!(sub["account"]["kind"], "sub");
    assert_eq!(sub["account"]["parent_id"], id.as_str());
    // Without created_at: now, the service's clock.
    let now = server
        .post("/v1/accounts", json!({"kind": "master"}))
        .admin()
        .send()
        .expect(201);
    assert_eq!(now["account"]["created_at"], "2025-01-01T00:00:00Z");
    assert_eq!(now["issued"], json!([]));
}

#[test]
fn rest_keys_several_ftp_one_chosen_and_generated_credentials() {
    let server = Server::start();
    let account = s(&open_master(&server, NEW)["account"], "id");

    // Generated identifier and secret: the secret is returned once.
    let generated = create_key(
        &server,
        &account,
        json!({"channel": "rest", "label": "Production"}),
    );
    assert!(s(&generated, "secret").starts_with("akey"));
    assert_eq!(s(&generated, "identifier").len(), 36, "UUID-shaped");
    assert_eq!(generated["label"], "Production");
    // Chosen identifier and secret: the secret is not echoed.
    let chosen = create_key(
        &server,
        &account,
        json!({"channel": "REST", "identifier": "shop-backend", "secret": "correct-horse-42"}),
    );
    assert!(
        chosen.get("secret").is_none(),
        "a chosen secret is never echoed: {chosen}"
    );
    assert_eq!(chosen["identifier"], "shop-backend");
    assert_eq!(chosen["channel"], "rest");
    authenticate(&server, "rest", "shop-backend", "correct-horse-42").expect(200);
    authenticate(&server, "rest", "SHOP-BACKEND", "correct-horse-42").expect(200);
    // Chosen identifier, generated secret.
    let mixed = create_key(
        &server,
        &account,
        json!({"channel": "rest", "identifier": "mixed.one"}),
    );
    authenticate(&server, "rest", "mixed.one", &s(&mixed, "secret")).expect(200);

    // FTP: one key only.
    create_key(&server, &account, json!({"channel": "ftp"}));
    server
        .post(
            &format!("/v1/accounts/{account}/keys"),
            json!({"channel": "ftp"}),
        )
        .admin()
        .send()
        .expect_error(409, "channel_already_active");
    // Identifiers are unique ignoring case, across accounts.
    let other = s(&open_master(&server, NEW)["account"], "id");
    let m = server
        .post(
            &format!("/v1/accounts/{other}/keys"),
            json!({"channel": "http", "identifier": "Shop-Backend"}),
        )
        .admin()
        .send()
        .expect_error(409, "identifier_taken");
    assert!(m.contains("Shop-Backend"));
    // REST: up to ten keys.
    for _ in 3..10 {
        create_key(&server, &account, json!({"channel": "rest"}));
    }
    server
        .post(
            &format!("/v1/accounts/{account}/keys"),
            json!({"channel": "rest"}),
        )
        .admin()
        .send()
        .expect_error(409, "rest_key_limit");
    let keys = server
        .get(&format!("/v1/accounts/{account}/keys"))
        .admin()
        .send()
        .expect(200);
    assert_eq!(keys["keys"].as_array().unwrap().len(), 11);

    // Credential rules are 400s naming what is allowed, never echoing the secret.
    let msg = server
        .post(
            &format!("/v1/accounts/{other}/keys"),
            json!({"channel": "rest", "secret": "short-pw"}),
        )
        .admin()
        .send()
        .expect_error(400, "invalid_credential");
    assert!(
        msg.contains("12 to 128") && !msg.contains("short-pw"),
        "{msg}"
    );
    let msg = server
        .post(
            &format!("/v1/accounts/{other}/keys"),
            json!({"channel": "rest", "identifier": "a b"}),
        )
        .admin()
        .send()
        .expect_error(400, "invalid_credential");
    assert!(msg.contains("only ASCII letters"), "{msg}");
    server
        .post(
            &format!("/v1/accounts/{other}/keys"),
            json!({"channel": "rest", "label": "x".repeat(65)}),
        )
        .admin()
        .send()
        .expect_error(400, "invalid_credential");
}

#[test]
fn authenticate_on_each_channel_style() {
    let server = Server::start();
    let master = s(&open_master(&server, NEW)["account"], "id");
    let sub = s(&open_sub(&server, &master)["account"], "id");
    let rest = create_key(&server, &sub, json!({"channel": "rest"}));
    let http = create_key(
        &server,
        &sub,
        json!({"channel": "http", "identifier": "sub-http", "secret": "http-secret-99"}),
    );
    let (rest_id, rest_secret) = (s(&rest, "identifier"), s(&rest, "secret"));

    // JSON: a sub-account's key authenticates as the sub-account.
    let who = authenticate(&server, "rest", &rest_id, &rest_secret).expect(200);
    assert_eq!(who["account_id"], sub.as_str());
    assert_eq!(who["key_id"], rest["id"]);
    assert_eq!(who["channel"], "rest");

    // REST style: Basic auth.
    let who = server
        .get("/v1/rest/whoami")
        .header("Authorization", &basic(&rest_id, &rest_secret))
        .send()
        .expect(200);
    assert_eq!(who["key_id"], rest["id"]);
    let refused = server
        .get("/v1/rest/whoami")
        .header("Authorization", &basic(&rest_id, "wrong-secret-123"))
        .send();
    refused.expect_error(401, "invalid_credentials");
    assert_eq!(
        refused.header("www-authenticate"),
        Some("Basic realm=\"apikeys\", Bearer realm=\"apikeys\"")
    );
    server
        .get("/v1/rest/whoami")
        .send()
        .expect_error(401, "invalid_credentials");
    server
        .get("/v1/rest/whoami")
        .header("Authorization", "Basic !!!not-base64")
        .send()
        .expect_error(401, "invalid_credentials");
    // The HTTP key on the REST style: another channel's credentials.
    server
        .get("/v1/rest/whoami")
        .header("Authorization", &basic("sub-http", "http-secret-99"))
        .send()
        .expect_error(401, "invalid_credentials");

    // HTTP style: query parameters.
    let who = server
        .get("/http/whoami?username=sub-http&password=http-secret-99")
        .send()
        .expect(200);
    assert_eq!(who["key_id"], http["id"]);
    assert_eq!(who["channel"], "http");
    server
        .get("/http/whoami?username=sub-http&password=wrong-secret-99")
        .send()
        .expect_error(401, "invalid_credentials");
    server
        .get("/http/whoami?username=sub-http")
        .send()
        .expect_error(401, "invalid_credentials");
    let encoded = rest_secret.clone();
    server
        .get(&format!(
            "/http/whoami?username={rest_id}&password={encoded}"
        ))
        .send()
        .expect_error(401, "invalid_credentials");

    // Uniform refusals on the JSON endpoint.
    let wrong_channel = authenticate(&server, "http", &rest_id, &rest_secret);
    let unknown = authenticate(&server, "rest", "nobody-here", &rest_secret);
    let wrong_secret = authenticate(&server, "rest", &rest_id, "wrong-secret-123");
    for r in [&wrong_channel, &unknown, &wrong_secret] {
        assert_eq!(
            r.expect(401),
            json!({"error": "invalid_credentials", "message": "invalid credentials"})
        );
    }
    // A mistyped generated secret (bad checksum) is refused the same way.
    let mut typo = rest_secret.into_bytes();
    typo[10] = if typo[10] == b'a' { b'b' } else { b'a' };
    authenticate(
        &server,
        "rest",
        &rest_id,
        std::str::from_utf8(&typo).unwrap(),
    )
    .expect_error(401, "invalid_credentials");
    let msg = authenticate(&server, "sms", &rest_id, "whatever-secret")
        .expect_error(400, "invalid_channel");
    assert_eq!(
        msg,
        "channel `sms` is not one of ftp, rest, http, web_service, email"
    );
}

#[test]
fn rotation_refuses_the_old_secret_and_grace_keeps_it_a_while() {
    let server = Server::start();
    let account = s(&open_master(&server, NEW)["account"], "id");
    let key = create_key(&server, &account, json!({"channel": "rest"}));
    let (key_id, identifier, first) = (s(&key, "id"), s(&key, "identifier"), s(&key, "secret"));
    let credentials = format!("/v1/keys/{key_id}/credentials");

    // Regenerate: the new secret is returned, the old one stops at once.
    let changed = server
        .post(&credentials, json!({"regenerate_secret": true}))
        .admin()
        .send()
        .expect(200);
    let second = s(&changed, "secret");
    assert_ne!(second, first);
    assert_eq!(changed["version"], 2);
    authenticate(&server, "rest", &identifier, &first).expect_error(401, "invalid_credentials");
    authenticate(&server, "rest", &identifier, &second).expect(200);

    // Regenerate with a grace period: the previous secret works until it ends.
    let changed = server
        .post(
            &credentials,
            json!({"regenerate_secret": true, "grace_seconds": 3600}),
        )
        .admin()
        .send()
        .expect(200);
    let third = s(&changed, "secret");
    assert_eq!(changed["grace_until"], "2025-01-01T01:00:00Z");
    authenticate(&server, "rest", &identifier, &second).expect(200);
    authenticate(&server, "rest", &identifier, &third).expect(200);
    server.clock.advance(Duration::seconds(3600));
    authenticate(&server, "rest", &identifier, &second).expect_error(401, "invalid_credentials");
    authenticate(&server, "rest", &identifier, &third).expect(200);

    // A chosen secret and a new identifier: nothing echoed, old ones refused.
    let changed = server
        .post(
            &credentials,
            json!({"identifier": "renamed-key", "secret": "my-own-secret-7"}),
        )
        .admin()
        .send()
        .expect(200);
    assert!(changed.get("secret").is_none());
    assert_eq!(changed["identifier"], "renamed-key");
    authenticate(&server, "rest", &identifier, &third).expect_error(401, "invalid_credentials");
    authenticate(&server, "rest", "renamed-key", &third).expect_error(401, "invalid_credentials");
    authenticate(&server, "rest", "renamed-key", "my-own-secret-7").expect(200);

    // Refusals.
    let msg = server
        .post(
            &credentials,
            json!({"secret": "another-secret-1", "regenerate_secret": true}),
        )
        .admin()
        .send()
        .expect_error(400, "invalid_body");
    assert!(msg.contains("not both"), "{msg}");
    server
        .post(&credentials, json!({}))
        .admin()
        .send()
        .expect_error(400, "nothing_to_change");
    server
        .post(
            &credentials,
            json!({"identifier": "again-renamed", "grace_seconds": 60}),
        )
        .admin()
        .send()
        .expect_error(400, "invalid_grace");
    let msg = server
        .post(
            &credentials,
            json!({"regenerate_secret": true, "grace_seconds": 40 * 86_400}),
        )
        .admin()
        .send()
        .expect_error(400, "invalid_grace");
    assert!(msg.contains("2592000 seconds"), "{msg}");
    server
        .post(
            &credentials,
            json!({"regenerate_secret": true, "grace_seconds": 0}),
        )
        .admin()
        .send()
        .expect_error(400, "invalid_grace");
    server
        .post(
            &credentials,
            json!({"regenerate_secret": true, "grace_seconds": i64::MAX}),
        )
        .admin()
        .send()
        .expect_error(400, "invalid_grace");
    server
        .post(&credentials, json!({"regenerate_secret": "yes"}))
        .admin()
        .send()
        .expect_error(400, "invalid_body");
    // Taken identifier.
    create_key(
        &server,
        &account,
        json!({"channel": "rest", "identifier": "taken-name"}),
    );
    server
        .post(&credentials, json!({"identifier": "TAKEN-name"}))
        .admin()
        .send()
        .expect_error(409, "identifier_taken");
}

#[test]
fn whitelist_ipv4_normalised_and_enforced() {
    let server = Server::start();
    let account = s(&open_master(&server, NEW)["account"], "id");
    let key = create_key(&server, &account, json!({"channel": "rest"}));
    let (key_id, identifier, secret) = (s(&key, "id"), s(&key, "identifier"), s(&key, "secret"));
    let whitelist = format!("/v1/keys/{key_id}/whitelist");

    assert_eq!(
        server.get(&whitelist).admin().send().expect(200),
        json!({"entries": []})
    );
    let set = server
        .put(
            &whitelist,
            json!({"entries": ["203.0.113.9/24", "2001:db8::1", "203.0.113.0/24", "198.51.100.7"]}),
        )
        .admin()
        .send()
        .expect(200);
    assert_eq!(
        set,
        json!({"entries": ["198.51.100.7/32", "203.0.113.0/24", "2001:db8::1/128"]})
    );
    assert_eq!(server.get(&whitelist).admin().send().expect(200), set);
    // The test peer is 127.0.0.1: outside the list.
    let msg = authenticate(&server, "rest", &identifier, &secret)
        .expect_error(403, "address_not_allowed");
    assert!(msg.contains("127.0.0.1"), "{msg}");
    // Wrong credentials stay a 401 whatever the address.
    authenticate(&server, "rest", &identifier, "wrong-secret-123")
        .expect_error(401, "invalid_credentials");
    server
        .get("/v1/rest/whoami")
        .header("Authorization", &basic(&identifier, &secret))
        .send()
        .expect_error(403, "address_not_allowed");
    // X-Forwarded-For is ignored without --trust-proxy.
    server
        .post(
            "/v1/authenticate",
            json!({"channel": "rest", "identifier": identifier, "secret": secret}),
        )
        .header("X-Forwarded-For", "203.0.113.7")
        .send()
        .expect_error(403, "address_not_allowed");
    // Loopback allowed: passes.
    server
        .put(&whitelist, json!({"entries": ["127.0.0.0/8"]}))
        .admin()
        .send()
        .expect(200);
    authenticate(&server, "rest", &identifier, &secret).expect(200);

    // A bad entry is named; the list is unchanged.
    let msg = server
        .put(
            &whitelist,
            json!({"entries": ["10.0.0.0/8", "10.0.0.0/33"]}),
        )
        .admin()
        .send()
        .expect_error(400, "invalid_whitelist");
    assert!(msg.contains("`10.0.0.0/33`"), "{msg}");
    server
        .put(&whitelist, json!({"entries": ["not-an-address"]}))
        .admin()
        .send()
        .expect_error(400, "invalid_whitelist");
    let too_many: Vec<String> = (0..101).map(|i| format!("10.0.{i}.1")).collect();
    let msg = server
        .put(&whitelist, json!({"entries": too_many}))
        .admin()
        .send()
        .expect_error(400, "invalid_whitelist");
    assert!(msg.contains("at most 100"), "{msg}");
    assert_eq!(
        server.get(&whitelist).admin().send().expect(200),
        json!({"entries": ["127.0.0.0/8"]})
    );
    // Emptied: any address again.
    server
        .put(&whitelist, json!({"entries": []}))
        .admin()
        .send()
        .expect(200);
    authenticate(&server, "rest", &identifier, &secret).expect(200);
}

/// Behind trusted proxies the client is the right-most forwarding entry
/// that is not a proxy: what a client writes into the header itself (to the
/// left) can never pass a whitelist for it.
#[test]
fn whitelist_behind_a_trusted_proxy_ipv4_ipv6_and_mapped() {
    let proxies = apikeys_http::TrustedProxies {
        networks: vec![
            "127.0.0.0/8".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ],
        ..Default::default()
    };
    let config = Config::default().trusted_proxies(proxies.clone());
    let server = Server::start_with(config, Policy::fast_for_tests());
    let account = s(&open_master(&server, NEW)["account"], "id");
    let key = create_key(&server, &account, json!({"channel": "http"}));
    let (key_id, identifier, secret) = (s(&key, "id"), s(&key, "identifier"), s(&key, "secret"));
    server
        .put(
            &format!("/v1/keys/{key_id}/whitelist"),
            json!({"entries": ["203.0.113.0/24", "2001:db8::/32"]}),
        )
        .admin()
        .send()
        .expect(200);
    let auth = || {
        server.post(
            "/v1/authenticate",
            json!({"channel": "http", "identifier": identifier, "secret": secret}),
        )
    };
    let from = |forwarded: &str| auth().header("X-Forwarded-For", forwarded).send();
    from("203.0.113.7").expect(200);
    // A proxy hop (10.0.0.1) after the client is skipped.
    from("203.0.113.7, 10.0.0.1").expect(200);
    // The client wrote an address of its own; the edge proxy appended the
    // real one: the real one is checked.
    from("1.2.3.4, 203.0.113.7").expect(200);
    from("203.0.113.7, 198.51.100.1").expect_error(403, "address_not_allowed");
    from("2001:db8::42").expect(200);
    from("::ffff:203.0.113.8").expect(200);
    from("198.51.100.1").expect_error(403, "address_not_allowed");
    from("2001:db9::1").expect_error(403, "address_not_allowed");
    from("garbage").expect_error(400, "invalid_forwarded_for");
    // Every line of the header counts, in order.
    auth()
        .header("X-Forwarded-For", "203.0.113.7")
        .header("X-Forwarded-For", "198.51.100.1")
        .send()
        .expect_error(403, "address_not_allowed");
    // Without the header: the TCP peer (127.0.0.1), outside the list.
    authenticate(&server, "http", &identifier, &secret).expect_error(403, "address_not_allowed");
    // The HTTP style takes the same address.
    server
        .get(&format!(
            "/http/whoami?username={identifier}&password={secret}"
        ))
        .header("X-Forwarded-For", "2001:db8::1")
        .send()
        .expect(200);
    // A peer that is not a trusted proxy: its header is never read.
    let direct = Server::start_from(
        "192.0.2.50:40000",
        std::sync::Arc::new(apikeys::MemoryStore::new()),
        Config::default().trusted_proxies(proxies),
        Policy::fast_for_tests(),
    );
    let account = s(&open_master(&direct, NEW)["account"], "id");
    let key = create_key(&direct, &account, json!({"channel": "http"}));
    direct
        .put(
            &format!("/v1/keys/{}/whitelist", s(&key, "id")),
            json!({"entries": ["203.0.113.0/24"]}),
        )
        .admin()
        .send()
        .expect(200);
    direct
        .post(
            "/v1/authenticate",
            json!({"channel": "http", "identifier": s(&key, "identifier"), "secret": s(&key, "secret")}),
        )
        .header("X-Forwarded-For", "203.0.113.7")
        .send()
        .expect_error(403, "address_not_allowed");
}

#[test]
fn whitelist_ipv6_peer_on_loopback() {
    // A peer on IPv6 loopback, as a client connecting to [::1] would be.
    let server = Server::start_from(
        "[::1]:50000",
        std::sync::Arc::new(apikeys::MemoryStore::new()),
        Config::default(),
        Policy::fast_for_tests(),
    );
    let account = s(&open_master(&server, NEW)["account"], "id");
    let key = create_key(&server, &account, json!({"channel": "rest"}));
    let (key_id, identifier, secret) = (s(&key, "id"), s(&key, "identifier"), s(&key, "secret"));
    let whitelist = format!("/v1/keys/{key_id}/whitelist");
    server
        .put(
            &whitelist,
            json!({"entries": ["2001:db8::/32", "127.0.0.1"]}),
        )
        .admin()
        .send()
        .expect(200);
    let msg = authenticate(&server, "rest", &identifier, &secret)
        .expect_error(403, "address_not_allowed");
    assert!(msg.contains("::1"), "{msg}");
    server
        .put(&whitelist, json!({"entries": ["::1"]}))
        .admin()
        .send()
        .expect(200);
    authenticate(&server, "rest", &identifier, &secret).expect(200);
}

#[test]
fn deletion_and_audit_trail() {
    let server = Server::start();
    let account = s(&open_master(&server, LEGACY)["account"], "id");
    let key = create_key(
        &server,
        &account,
        json!({"channel": "rest", "label": "to delete"}),
    );
    let (key_id, identifier, secret) = (s(&key, "id"), s(&key, "identifier"), s(&key, "secret"));
    server
        .post(
            &format!("/v1/keys/{key_id}/credentials"),
            json!({"regenerate_secret": true}),
        )
        .admin()
        .send()
        .expect(200);
    server
        .put(
            &format!("/v1/keys/{key_id}/whitelist"),
            json!({"entries": ["127.0.0.1"]}),
        )
        .admin()
        .send()
        .expect(200);
    assert_eq!(
        server
            .get(&format!("/v1/keys/{key_id}"))
            .admin()
            .send()
            .expect(200)["id"],
        key_id.as_str()
    );

    let deleted = server.delete(&format!("/v1/keys/{key_id}")).admin().send();
    assert_eq!(deleted.status, 204);
    assert!(deleted.body.is_empty());
    server
        .get(&format!("/v1/keys/{key_id}"))
        .admin()
        .send()
        .expect_error(404, "key_not_found");
    server
        .delete(&format!("/v1/keys/{key_id}"))
        .admin()
        .send()
        .expect_error(404, "key_not_found");
    server
        .get(&format!("/v1/keys/{key_id}/whitelist"))
        .admin()
        .send()
        .expect_error(404, "key_not_found");
    authenticate(&server, "rest", &identifier, &secret).expect_error(401, "invalid_credentials");
    // The channel is free again.
    let keys = server
        .get(&format!("/v1/accounts/{account}/keys"))
        .admin()
        .send()
        .expect(200);
    assert_eq!(keys["keys"].as_array().unwrap().len(), 4);

    let audit = server
        .get(&format!("/v1/accounts/{account}/audit"))
        .admin()
        .send()
        .expect(200);
    let events = audit["events"].as_array().unwrap();
    let kinds: Vec<_> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    // Newest first: the opening (with its four default keys) comes last.
    assert_eq!(
        kinds[..4],
        [
            "key_deleted",
            "whitelist_changed",
            "credentials_changed",
            "key_created"
        ]
    );
    assert_eq!(kinds.last(), Some(&"account_opened"));
    assert_eq!(kinds.len(), 9);
    assert_eq!(events[0]["key_id"], key_id.as_str());
    assert_eq!(events[0]["channel"], "rest");
    assert_eq!(events[0]["actor"], "operator");
    assert!(!audit.to_string().contains(&secret));
    let limited = server
        .get(&format!("/v1/accounts/{account}/audit?limit=2"))
        .admin()
        .send()
        .expect(200);
    assert_eq!(limited["events"].as_array().unwrap().len(), 2);
    for bad in ["0", "1001", "-1", "many"] {
        server
            .get(&format!("/v1/accounts/{account}/audit?limit={bad}"))
            .admin()
            .send()
            .expect_error(400, "invalid_query");
    }
}

#[test]
fn acting_account_allowed_and_refused() {
    let server = Server::start();
    let master = s(&open_master(&server, NEW)["account"], "id");
    let stranger = s(&open_master(&server, NEW)["account"], "id");
    // A master opens its own sub-account, and manages its keys.
    let sub = server
        .post("/v1/accounts", json!({"kind": "sub", "parent_id": master}))
        .acting(&master)
        .send()
        .expect(201);
    let sub = s(&sub["account"], "id");
    let key = server
        .post(
            &format!("/v1/accounts/{sub}/keys"),
            json!({"channel": "email"}),
        )
        .acting(&master)
        .send()
        .expect(201);
    let key_id = s(&key, "id");
    server
        .get(&format!("/v1/keys/{key_id}"))
        .acting(&sub)
        .send()
        .expect(200);
    server
        .get(&format!("/v1/accounts/{sub}/keys"))
        .acting(&master)
        .send()
        .expect(200);
    let audit = server
        .get(&format!("/v1/accounts/{sub}/audit"))
        .acting(&sub)
        .send()
        .expect(200);
    assert_eq!(audit["events"][0]["actor"], master.as_str());

    // Refused: what an account may not see is "not found", like what does
    // not exist, and says nothing of who holds it.
    let msg = server
        .get(&format!("/v1/keys/{key_id}"))
        .acting(&stranger)
        .send()
        .expect_error(404, "key_not_found");
    assert_eq!(msg, format!("key {key_id} not found"));
    server
        .get(&format!("/v1/accounts/{master}"))
        .acting(&sub)
        .send()
        .expect_error(404, "account_not_found");
    server
        .post(
            &format!("/v1/accounts/{master}/keys"),
            json!({"channel": "rest"}),
        )
        .acting(&sub)
        .send()
        .expect_error(404, "account_not_found");
    server
        .post(
            &format!("/v1/keys/{key_id}/credentials"),
            json!({"regenerate_secret": true}),
        )
        .acting(&stranger)
        .send()
        .expect_error(404, "key_not_found");
    server
        .put(
            &format!("/v1/keys/{key_id}/whitelist"),
            json!({"entries": []}),
        )
        .acting(&stranger)
        .send()
        .expect_error(404, "key_not_found");
    server
        .delete(&format!("/v1/keys/{key_id}"))
        .acting(&stranger)
        .send()
        .expect_error(404, "key_not_found");
    server
        .post("/v1/accounts", json!({"kind": "sub", "parent_id": master}))
        .acting(&stranger)
        .send()
        .expect_error(404, "account_not_found");
    server
        .post("/v1/accounts", json!({"kind": "master"}))
        .acting(&master)
        .send()
        .expect_error(403, "forbidden");
    // A malformed acting account is a 400.
    server
        .get(&format!("/v1/accounts/{master}"))
        .acting("acc_nope")
        .send()
        .expect_error(400, "invalid_id");
    // The key still exists: nothing was done by the refused calls.
    server
        .get(&format!("/v1/keys/{key_id}"))
        .admin()
        .send()
        .expect(200);
}

#[test]
fn admin_token_is_required() {
    // Many wrong tokens from one address: the throttle is off here, and
    // tested below.
    let server = Server::start_with(
        Config::default(),
        Policy::fast_for_tests().throttle(apikeys::ThrottlePolicy::off()),
    );
    let account = s(&open_master(&server, NEW)["account"], "id");
    let paths = [
        ("POST", "/v1/accounts".to_string()),
        ("GET", format!("/v1/accounts/{account}")),
        ("GET", format!("/v1/accounts/{account}/keys")),
        ("POST", format!("/v1/accounts/{account}/keys")),
        ("GET", format!("/v1/accounts/{account}/audit")),
        (
            "GET",
            "/v1/keys/key_0123456789abcdef0123456789abcdef".to_string(),
        ),
        (
            "DELETE",
            "/v1/keys/key_0123456789abcdef0123456789abcdef".to_string(),
        ),
        (
            "POST",
            "/v1/keys/key_0123456789abcdef0123456789abcdef/credentials".to_string(),
        ),
        (
            "GET",
            "/v1/keys/key_0123456789abcdef0123456789abcdef/whitelist".to_string(),
        ),
        (
            "PUT",
            "/v1/keys/key_0123456789abcdef0123456789abcdef/whitelist".to_string(),
        ),
    ];
    for (method, path) in &paths {
        let none = server.request(method, path).json(&json!({})).send();
        none.expect_error(401, "unauthorized");
        assert_eq!(
            none.header("www-authenticate"),
            Some("Bearer realm=\"apikeys\"")
        );
        let msg = server
            .request(method, path)
            .header("Authorization", "Bearer not-the-token")
            .json(&json!({}))
            .send()
            .expect_error(401, "unauthorized");
        assert_eq!(msg, "wrong admin token");
        server
            .request(method, path)
            .header("Authorization", &format!("Basic {}", common::TOKEN))
            .json(&json!({}))
            .send()
            .expect_error(401, "unauthorized");
        // The token is checked before the body and the ids.
        server
            .request(method, path)
            .raw_body("application/json", b"{not json".to_vec())
            .send()
            .expect_error(401, "unauthorized");
    }
    // Health and the document need no token.
    server.get("/healthz").send().expect(200);
    server.get("/openapi.json").send().expect(200);
}

/// Guessing the admin token from one address is throttled like guessing a
/// secret: past five wrong tokens every attempt is a 429 with `Retry-After`,
/// the right token included (a request without a token is still a 401);
/// another address is not held up.
#[test]
fn wrong_admin_tokens_are_throttled_per_address() {
    let proxies = apikeys_http::TrustedProxies {
        networks: vec!["127.0.0.0/8".parse().unwrap()],
        ..Default::default()
    };
    let server = Server::start_with(
        Config::default().trusted_proxies(proxies),
        Policy::fast_for_tests(),
    );
    let from = |client: &str, token: &str| {
        server
            .get("/v1/accounts/acc_0123456789abcdef0123456789abcdef")
            .header("X-Forwarded-For", client)
            .header("Authorization", &format!("Bearer {token}"))
            .send()
    };
    for n in 0..6 {
        from("203.0.113.66", &format!("guess-number-{n:030}")).expect_error(401, "unauthorized");
    }
    for n in 6..100 {
        let r = from("203.0.113.66", &format!("guess-number-{n:030}"));
        r.expect_error(429, "throttled");
        assert_eq!(r.header("retry-after"), Some("1"));
    }
    from("203.0.113.66", common::TOKEN).expect_error(429, "throttled");
    // No token at all is no guess: 401 at once, throttled or not.
    server
        .get("/v1/accounts/acc_0123456789abcdef0123456789abcdef")
        .header("X-Forwarded-For", "203.0.113.66")
        .send()
        .expect_error(401, "unauthorized");
    from("198.51.100.1", common::TOKEN).expect_error(404, "account_not_found");
    server.clock.advance(time::Duration::seconds(1));
    from("203.0.113.66", common::TOKEN).expect_error(404, "account_not_found");
}

#[test]
fn bad_input_is_a_4xx_with_a_message_never_a_500() {
    let server = Server::start();
    let account = s(&open_master(&server, NEW)["account"], "id");
    let keys = format!("/v1/accounts/{account}/keys");

    let msg = server
        .post("/v1/accounts", json!({}))
        .admin()
        .raw_body("application/json", b"{\"kind\": \"master\",".to_vec())
        .send()
        .expect_error(400, "invalid_json");
    assert!(msg.contains("line 1"), "{msg}");
    server
        .request("POST", "/v1/accounts")
        .admin()
        .raw_body("text/plain", b"{\"kind\": \"master\"}".to_vec())
        .send()
        .expect_error(415, "unsupported_media_type");
    server
        .request("POST", "/v1/accounts")
        .admin()
        .send()
        .expect_error(415, "unsupported_media_type");
    let msg = server
        .post(&keys, json!({"label": "x"}))
        .admin()
        .send()
        .expect_error(400, "invalid_body");
    assert!(msg.contains("missing field `channel`"), "{msg}");
    let msg = server
        .post(&keys, json!({"channel": "rest", "colour": "red"}))
        .admin()
        .send()
        .expect_error(400, "invalid_body");
    assert!(msg.contains("unknown field `colour`"), "{msg}");
    let msg = server
        .post(&keys, json!({"channel": "sms"}))
        .admin()
        .send()
        .expect_error(400, "invalid_channel");
    assert!(msg.contains("ftp, rest, http, web_service, email"), "{msg}");
    let msg = server
        .post("/v1/accounts", json!({"kind": "owner"}))
        .admin()
        .send()
        .expect_error(400, "invalid_body");
    assert!(msg.contains("`master` or `sub`"), "{msg}");
    let msg = server
        .post(
            "/v1/accounts",
            json!({"kind": "master", "created_at": "yesterday"}),
        )
        .admin()
        .send()
        .expect_error(400, "invalid_body");
    assert!(msg.contains("RFC 3339"), "{msg}");
    for out_of_range in [
        "1969-12-31T23:59:59Z",
        "2200-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
    ] {
        let msg = server
            .post(
                "/v1/accounts",
                json!({"kind": "master", "created_at": out_of_range}),
            )
            .admin()
            .send()
            .expect_error(400, "invalid_created_at");
        assert!(
            msg.contains("from 1970-01-01T00:00:00Z to before 2200-01-01T00:00:00Z"),
            "{msg}"
        );
    }
    server
        .post("/v1/accounts", json!({"kind": "sub"}))
        .admin()
        .send()
        .expect_error(400, "invalid_body");
    server
        .post(
            "/v1/accounts",
            json!({"kind": "master", "parent_id": account}),
        )
        .admin()
        .send()
        .expect_error(400, "invalid_body");
    server
        .post(
            "/v1/accounts",
            json!({"kind": "sub", "parent_id": "acc_123"}),
        )
        .admin()
        .send()
        .expect_error(400, "invalid_id");
    server
        .post(
            "/v1/accounts",
            json!({"kind": "sub", "parent_id": "acc_0123456789abcdef0123456789abcdef"}),
        )
        .admin()
        .send()
        .expect_error(404, "account_not_found");
    // A sub-account cannot be a parent.
    let sub = s(&open_sub(&server, &account)["account"], "id");
    server
        .post("/v1/accounts", json!({"kind": "sub", "parent_id": sub}))
        .admin()
        .send()
        .expect_error(400, "parent_not_master");

    // Ids in the path.
    let msg = server
        .get("/v1/accounts/42")
        .admin()
        .send()
        .expect_error(400, "invalid_id");
    assert!(msg.contains("acc_"), "{msg}");
    server
        .get(&format!("/v1/keys/{account}"))
        .admin()
        .send()
        .expect_error(400, "invalid_id");
    server
        .get("/v1/accounts/acc_0123456789abcdef0123456789abcdef")
        .admin()
        .send()
        .expect_error(404, "account_not_found");

    // Too large a body: 413.
    let huge = json!({"entries": vec!["203.0.113.1"; 10_000]});
    server
        .put(
            "/v1/keys/key_0123456789abcdef0123456789abcdef/whitelist",
            huge.clone(),
        )
        .admin()
        .send()
        .expect_error(413, "payload_too_large");
    server
        .post("/v1/authenticate", huge)
        .send()
        .expect_error(413, "payload_too_large");

    // Unknown routes and methods.
    server
        .get("/v1/nothing")
        .send()
        .expect_error(404, "not_found");
    server.get("/").send().expect_error(404, "not_found");
    server
        .delete("/v1/accounts")
        .admin()
        .send()
        .expect_error(405, "method_not_allowed");

    // Authentication input.
    server
        .post(
            "/v1/authenticate",
            json!({"channel": "rest", "identifier": "x"}),
        )
        .send()
        .expect_error(400, "invalid_body");
    server
        .post(
            "/v1/authenticate",
            json!({"channel": "rest", "identifier": "x", "secret": 12}),
        )
        .send()
        .expect_error(400, "invalid_body");
    authenticate(&server, "rest", &"x".repeat(5000), &"y".repeat(5000))
        .expect_error(401, "invalid_credentials");
}

/// A memory store that works until `failing` is set, then fails every call
/// as a backend would (a lost connection, a full disk).
fn failing_store() -> (
    std::sync::Arc<apikeys::DynStore>,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    let failing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = failing.clone();
    let store = apikeys::testing::Intercepted {
        store: apikeys::MemoryStore::new(),
        before: move |_| {
            if flag.load(std::sync::atomic::Ordering::SeqCst) {
                Err(apikeys::StoreError::backend("disk on fire (test)"))
            } else {
                Ok(())
            }
        },
    };
    (std::sync::Arc::new(store), failing)
}

/// A failing store is a 503 on every path, authentication included (neither
/// a yes nor a no), and its error's details stay in the log.
#[test]
fn store_failure_is_503() {
    for inline_checks in [
        apikeys_http::StoreCalls::BlockingPool,
        apikeys_http::StoreCalls::Inline,
    ] {
        let (store, failing) = failing_store();
        let config =
            Config::default().lanes(apikeys_http::Lanes::default().store_calls(inline_checks));
        let server = Server::start_on(store, config, Policy::fast_for_tests());
        let account = s(&open_master(&server, NEW)["account"], "id");
        let key = create_key(&server, &account, json!({"channel": "rest"}));
        let chosen = create_key(
            &server,
            &account,
            json!({"channel": "http", "identifier": format!("chosen-{inline_checks:?}"), "secret": "chosen-secret-1"}),
        );
        failing.store(true, std::sync::atomic::Ordering::SeqCst);
        let msg = authenticate(&server, "rest", &s(&key, "identifier"), &s(&key, "secret"))
            .expect_error(503, "store_unavailable");
        assert!(
            !msg.contains("fire"),
            "backend details stay in the log: {msg}"
        );
        authenticate(
            &server,
            "http",
            &s(&chosen, "identifier"),
            "chosen-secret-1",
        )
        .expect_error(503, "store_unavailable");
        server
            .get(&format!("/v1/accounts/{account}/keys"))
            .admin()
            .send()
            .expect_error(503, "store_unavailable");
        server
            .post("/v1/accounts", json!({"kind": "master"}))
            .admin()
            .send()
            .expect_error(503, "store_unavailable");
        server.get("/healthz").send().expect(200);
    }
}

/// Every route the router serves is in the OpenAPI document, with its
/// method; and every documented operation is routed.
#[test]
fn openapi_documents_every_route() {
    let server = Server::start();
    let doc = server.get("/openapi.json").send().expect(200);
    let routes = [
        ("post", "/v1/accounts"),
        ("get", "/v1/accounts"),
        ("get", "/v1/accounts/{account_id}"),
        ("get", "/v1/accounts/by-external-id/{external_id}"),
        ("get", "/v1/accounts/{account_id}/sub-accounts"),
        ("get", "/v1/accounts/{account_id}/keys"),
        ("post", "/v1/accounts/{account_id}/keys"),
        ("get", "/v1/accounts/{account_id}/audit"),
        ("patch", "/v1/accounts/{account_id}"),
        ("get", "/v1/accounts/{account_id}/policy"),
        ("put", "/v1/accounts/{account_id}/policy"),
        ("get", "/v1/accounts/{account_id}/dormant-keys"),
        ("get", "/v1/dormant-keys"),
        ("post", "/v1/dormant-keys/disable"),
        ("get", "/v1/keys/{key_id}"),
        ("delete", "/v1/keys/{key_id}"),
        ("patch", "/v1/keys/{key_id}"),
        ("post", "/v1/keys/{key_id}/credentials"),
        ("get", "/v1/keys/{key_id}/whitelist"),
        ("put", "/v1/keys/{key_id}/whitelist"),
        ("patch", "/v1/keys/{key_id}/whitelist"),
        ("get", "/v1/keys/{key_id}/whitelist/explain"),
        ("post", "/v1/authenticate"),
        ("get", "/v1/rest/whoami"),
        ("get", "/v1/rest/authentication"),
        ("get", "/http/whoami"),
        ("get", "/healthz"),
        ("get", "/openapi.json"),
    ];
    #[cfg(feature = "ui")]
    let routes: Vec<_> = routes
        .into_iter()
        .chain([("post", "/v1/accounts/{account_id}/portal-sessions")])
        .collect();
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = 0;
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            documented += 1;
            assert!(
                routes.contains(&(method.as_str(), path.as_str())),
                "{method} {path} is documented but not in this test's list"
            );
        }
    }
    assert_eq!(documented, routes.len());
    for (method, path) in routes {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is not documented");
        assert!(op["responses"].is_object());
        // And it is routed: neither our 404 nor a 405.
        let concrete = path
            .replace("{account_id}", "acc_0123456789abcdef0123456789abcdef")
            .replace("{key_id}", "key_0123456789abcdef0123456789abcdef")
            .replace("{external_id}", "customer-4711");
        let r = server
            .request(&method.to_uppercase(), &concrete)
            .admin()
            .json(&json!({}))
            .send();
        assert!(
            r.status != 405 && !(r.status == 404 && r.json()["error"] == "not_found"),
            "{method} {path} is documented but not routed: {}",
            r.text()
        );
    }
    for schema in [
        "ErrorBody",
        "KeyView",
        "AccountView",
        "OpenedAccountView",
        "AuthenticatedView",
        "WhitelistBody",
        "AuditView",
    ] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "{schema} missing"
        );
    }
    assert!(doc["components"]["securitySchemes"]["admin_token"].is_object());
    // The document the library exposes is the one served.
    assert_eq!(apikeys_http::openapi_for(server.keys.policy()), doc);
    assert_eq!(
        apikeys_http::openapi()["components"]["schemas"]["WhitelistBody"]["properties"]["entries"]
            ["maxItems"],
        json!(apikeys::Policy::default().max_whitelist_entries)
    );
}

/// With many slow chosen-secret attempts in flight (argon2 at a heavy
/// cost), a generated-secret authentication still answers quickly: the
/// argon2 lane holds the flood, the fast lane (or the event loop) is free.
#[test]
fn generated_secrets_stay_fast_under_an_argon2_flood() {
    for inline_checks in [false, true] {
        flood(inline_checks, |i| format!("wrong-secret-{i:04}"));
    }
}

/// The same with a flood of secrets of the generated shape (valid checksum)
/// against a key whose secret was chosen: no chosen secret has that shape, so
/// they are refused without argon2 and never wait in its lane.
#[test]
fn generated_shape_secrets_against_a_chosen_key_never_meet_argon2() {
    use rand_core::SeedableRng;
    let policy = Policy::fast_for_tests()
        .throttle(apikeys::ThrottlePolicy::off())
        .hashing(apikeys::HashingPolicy {
            m_kib: 32 * 1024,
            t: 3,
            p: 1,
        });
    for inline_checks in [false, true] {
        let config = Config::default().lanes(flood_lanes(inline_checks));
        let server = std::sync::Arc::new(Server::start_with(config, policy.clone()));
        let account = s(&open_master(&server, NEW)["account"], "id");
        create_key(
            &server,
            &account,
            json!({"channel": "http", "identifier": "chosen-one", "secret": "chosen-secret-1"}),
        );
        let before = server.keys.check_stats().argon2;
        let started = std::time::Instant::now();
        let flood: Vec<_> = (0..24)
            .map(|i| {
                let server = server.clone();
                std::thread::spawn(move || {
                    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(i);
                    let forged = apikeys::credentials::generate_secret(&mut rng);
                    authenticate(&server, "http", "chosen-one", forged.expose_secret())
                        .expect_error(401, "invalid_credentials");
                })
            })
            .collect();
        for t in flood {
            t.join().unwrap();
        }
        let took = started.elapsed();
        assert_eq!(
            server.keys.check_stats().argon2,
            before,
            "inline {inline_checks}: a generated-shape secret ran argon2"
        );
        // 24 heavy argon2 runs one at a time would take seconds.
        assert!(took < std::time::Duration::from_secs(1), "{took:?}");
    }
}

/// One argon2 at a time, and room for a whole flood from one address to
/// wait: these tests measure what a full lane holds up (the lane's own
/// bounds are tested in `src/facade.rs`).
fn flood_lanes(inline_checks: bool) -> apikeys_http::Lanes {
    apikeys_http::Lanes::default()
        .argon2_concurrency(1)
        .argon2_queue(1000)
        .argon2_wait(std::time::Duration::from_secs(60))
        .argon2_per_address(1000)
        .store_calls(if inline_checks {
            apikeys_http::StoreCalls::Inline
        } else {
            apikeys_http::StoreCalls::BlockingPool
        })
}

fn flood(inline_checks: bool, wrong_secret: fn(usize) -> String) {
    // One source floods: the throttle would answer it after five failures,
    // and this measures the lanes, not the throttle.
    let mut policy = Policy::fast_for_tests().throttle(apikeys::ThrottlePolicy::off());
    // Heavy enough that one verification takes tens of milliseconds.
    policy.hashing = apikeys::HashingPolicy {
        m_kib: 32 * 1024,
        t: 3,
        p: 1,
    };
    let config = Config::default().lanes(flood_lanes(inline_checks));
    let server = std::sync::Arc::new(Server::start_with(config, policy));
    let account = s(&open_master(&server, NEW)["account"], "id");
    create_key(
        &server,
        &account,
        json!({"channel": "http", "identifier": "chosen-one", "secret": "chosen-secret-1"}),
    );
    let generated = create_key(&server, &account, json!({"channel": "rest"}));
    let (identifier, secret) = (s(&generated, "identifier"), s(&generated, "secret"));

    // How long one chosen-secret attempt takes alone.
    let start = std::time::Instant::now();
    authenticate(&server, "http", "chosen-one", &wrong_secret(999))
        .expect_error(401, "invalid_credentials");
    let one_argon2 = start.elapsed();

    let flood: Vec<_> = (0..24)
        .map(|i| {
            let server = server.clone();
            std::thread::spawn(move || {
                let r = authenticate(&server, "http", "chosen-one", &wrong_secret(i));
                assert_eq!(r.status, 401);
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(50));
    let start = std::time::Instant::now();
    for _ in 0..5 {
        authenticate(&server, "rest", &identifier, &secret).expect(200);
    }
    let five_generated = start.elapsed();
    let flood_start = std::time::Instant::now();
    for t in flood {
        t.join().unwrap();
    }
    let flood_rest = flood_start.elapsed();
    eprintln!(
        "inline {inline_checks}: one argon2 {one_argon2:?}; five generated checks under the flood {five_generated:?}; the flood ran {flood_rest:?} more"
    );
    // The flood queues behind one argon2 at a time: ~24 × one_argon2 in all.
    // Five generated checks finish well before that.
    assert!(
        five_generated < one_argon2 * 4,
        "generated checks took {five_generated:?} under the flood; one argon2 takes {one_argon2:?}"
    );
    assert!(
        flood_rest > one_argon2 * 4,
        "the flood ({flood_rest:?} after) should still have been running"
    );
}

/// Requests a proxy and this server could read differently, or that would
/// make the server read a body it will refuse, are refused first: a header
/// that identifies or frames the request given twice, both
/// `Transfer-Encoding` and `Content-Length`, a declared length over the
/// limit. A body that does not arrive in time gets 408.
#[test]
fn ambiguous_oversized_and_slow_requests_are_refused() {
    let server = Server::start_with(
        Config::default()
            .body_limit(1024)
            .body_timeout(std::time::Duration::from_millis(200)),
        Policy::fast_for_tests(),
    );
    let account = s(&open_master(&server, NEW)["account"], "id");
    let path = format!("/v1/accounts/{account}");
    let msg = server
        .get(&path)
        .admin()
        .header("Authorization", "Bearer something-else-entirely-0123456789")
        .send()
        .expect_error(400, "duplicate_header");
    assert!(msg.contains("Authorization"), "{msg}");
    let other = s(&open_master(&server, NEW)["account"], "id");
    let r = server
        .get(&path)
        .acting(&account)
        .header("X-Acting-Account", &other)
        .send();
    assert_eq!(r.header("connection"), Some("close"));
    assert!(
        r.expect_error(400, "duplicate_header")
            .contains("X-Acting-Account")
    );
    server
        .post("/v1/authenticate", json!({}))
        .header("Transfer-Encoding", "chunked")
        .header("Content-Length", "2")
        .send()
        .expect_error(400, "ambiguous_length");
    // Declared too big: refused at once, the body never read (here it
    // would never even arrive).
    let started = std::time::Instant::now();
    server
        .request("POST", "/v1/authenticate")
        .stalled_body("application/json")
        .header("Content-Length", "10000000")
        .send()
        .expect_error(413, "payload_too_large");
    assert!(started.elapsed() < std::time::Duration::from_millis(150));
    // A body that never comes: 408 after the deadline, and the connection
    // is to be closed.
    let started = std::time::Instant::now();
    let r = server
        .request("POST", "/v1/authenticate")
        .stalled_body("application/json")
        .send();
    let waited = started.elapsed();
    assert_eq!(r.header("connection"), Some("close"));
    r.expect_error(408, "request_timeout");
    assert!(
        waited >= std::time::Duration::from_millis(190)
            && waited < std::time::Duration::from_secs(3),
        "{waited:?}"
    );
}

/// Answers that show a generated secret, or any answer to the admin token,
/// are kept by no cache: `Cache-Control: no-store`.
#[test]
fn answers_with_secrets_are_never_stored_by_caches() {
    let server = Server::start();
    let opened = server
        .post(
            "/v1/accounts",
            json!({"kind": "master", "created_at": LEGACY}),
        )
        .admin()
        .send();
    assert_eq!(opened.header("cache-control"), Some("no-store"));
    let account = opened.expect(201)["account"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let created = server
        .post(
            &format!("/v1/accounts/{account}/keys"),
            json!({"channel": "rest"}),
        )
        .admin()
        .send();
    assert_eq!(created.header("cache-control"), Some("no-store"));
    let key = created.expect(201);
    let changed = server
        .post(
            &format!("/v1/keys/{}/credentials", key["id"].as_str().unwrap()),
            json!({"regenerate_secret": true}),
        )
        .admin()
        .send();
    assert_eq!(changed.header("cache-control"), Some("no-store"));
    assert!(changed.expect(200)["secret"].is_string());
    // Without credentials the header is the caches' business (the open
    // document, health, a refusal).
    let refused = server.get(&format!("/v1/accounts/{account}")).send();
    assert_eq!(refused.header("cache-control"), None);
    assert_eq!(server.get("/healthz").send().header("cache-control"), None);
}

//! The lifecycle through the API: a key's expiry and enabled state, an
//! account's suspension and policy (account-wide whitelist, sub-accounts'
//! channels, longest key lifetime), the whole whitelist chain explained,
//! last use in the key's answer, dormant keys and the dormancy action; and
//! each of them taking effect on authentication.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use apikeys::Policy;
use apikeys_http::Config;
use common::{Server, s};
use serde_json::{Value, json};

/// A master opened by the operator.
fn master(server: &Server) -> String {
    let opened = server
        .post("/v1/accounts", json!({"kind": "master"}))
        .admin()
        .send()
        .expect(201);
    s(&opened["account"], "id")
}

/// A sub-account of `parent`.
fn sub(server: &Server, parent: &str) -> String {
    let opened = server
        .post("/v1/accounts", json!({"kind": "sub", "parent_id": parent}))
        .admin()
        .send()
        .expect(201);
    s(&opened["account"], "id")
}

/// A new key of `account` on `channel`, with its generated secret.
fn key(server: &Server, account: &str, channel: &str) -> Value {
    server
        .post(
            &format!("/v1/accounts/{account}/keys"),
            json!({"channel": channel}),
        )
        .admin()
        .send()
        .expect(201)
}

/// Presents the key's credentials on its channel.
fn authenticate(server: &Server, key: &Value) -> common::Response {
    server
        .post(
            "/v1/authenticate",
            json!({"channel": s(key, "channel"), "identifier": s(key, "identifier"), "secret": s(key, "secret")}),
        )
        .send()
}

fn patch<'a>(server: &'a Server, path: &str, body: Value) -> common::Req<'a> {
    server.request("PATCH", path).json(&body)
}

#[test]
fn a_key_answer_carries_its_lifecycle() {
    let server = Server::start();
    let account = master(&server);
    let created = key(&server, &account, "ftp");
    for (field, value) in [
        ("expires_at", Value::Null),
        ("enabled", json!(true)),
        ("state", json!("active")),
        ("legacy_default", json!(false)),
        ("last_used_at", Value::Null),
        ("last_used_address", Value::Null),
        ("previous_secret_last_used_at", Value::Null),
    ] {
        assert_eq!(created[field], value, "{field} in {created}");
    }
    let got = server
        .get(&format!("/v1/accounts/{account}"))
        .admin()
        .send()
        .expect(200);
    assert_eq!(got["suspended"], false);
    // A legacy master's default keys say so.
    let legacy = server
        .post(
            "/v1/accounts",
            json!({"kind": "master", "created_at": "2021-05-01T00:00:00Z"}),
        )
        .admin()
        .send()
        .expect(201);
    assert!(
        legacy["issued"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["legacy_default"] == true && k["state"] == "active"),
        "{legacy}"
    );
}

#[test]
fn creating_a_key_with_an_expiry() {
    let server = Server::start();
    let account = master(&server);
    let path = format!("/v1/accounts/{account}/keys");
    let created = server
        .post(
            &path,
            json!({"channel": "ftp", "expires_at": "2025-03-01T12:00:00+02:00"}),
        )
        .admin()
        .send()
        .expect(201);
    assert_eq!(created["expires_at"], "2025-03-01T10:00:00Z", "kept in UTC");
    for (body, code) in [
        (
            json!({"channel": "http", "expires_at": "2024-12-31T00:00:00Z"}),
            "invalid_expiry",
        ),
        (
            json!({"channel": "http", "expires_at": "2200-01-01T00:00:00Z"}),
            "invalid_expiry",
        ),
        (
            json!({"channel": "http", "expires_at": "tomorrow"}),
            "invalid_body",
        ),
        (json!({"channel": "http", "expires_at": 5}), "invalid_body"),
    ] {
        let message = server
            .post(&path, body.clone())
            .admin()
            .send()
            .expect_error(400, code);
        if body["expires_at"].is_string() {
            assert!(message.contains("expir"), "{body}: {message}");
        }
    }
    // Past its expiry the key refuses, uniformly.
    authenticate(&server, &created).expect(200);
    server.clock.advance(time::Duration::days(60));
    authenticate(&server, &created).expect_error(401, "invalid_credentials");
    let got = server
        .get(&format!("/v1/keys/{}", s(&created, "id")))
        .admin()
        .send()
        .expect(200);
    assert_eq!(got["state"], "expired");
}

#[test]
fn patching_expiry_enabled_and_label_in_one_change() {
    let server = Server::start();
    let account = master(&server);
    let created = key(&server, &account, "ftp");
    let path = format!("/v1/keys/{}", s(&created, "id"));
    let r = patch(
        &server,
        &path,
        json!({"label": "nightly", "expires_at": "2026-01-01T00:00:00Z", "enabled": false}),
    )
    .acting(&account)
    .header("If-Match", "\"1\"")
    .send();
    let body = r.expect(200);
    assert_eq!(
        (
            &body["label"],
            &body["expires_at"],
            &body["enabled"],
            &body["state"],
            &body["version"]
        ),
        (
            &json!("nightly"),
            &json!("2026-01-01T00:00:00Z"),
            &json!(false),
            &json!("disabled"),
            &json!(2)
        ),
        "one write, one version"
    );
    assert_eq!(r.header("ETag"), Some("\"2\""));
    // A disabled key's right credentials refuse, like wrong ones.
    authenticate(&server, &created).expect_error(401, "invalid_credentials");
    // Enabled again, it works; its expiry cleared with null.
    let body = patch(&server, &path, json!({"enabled": true, "expires_at": null}))
        .admin()
        .send()
        .expect(200);
    assert_eq!(
        (&body["enabled"], &body["expires_at"], &body["state"]),
        (&json!(true), &Value::Null, &json!("active"))
    );
    authenticate(&server, &created).expect(200);
    // A stale If-Match writes nothing.
    patch(&server, &path, json!({"enabled": false}))
        .admin()
        .header("If-Match", "\"2\"")
        .send()
        .expect_error(412, "precondition_failed");
    authenticate(&server, &created).expect(200);
    // Bad input: 400, nothing written.
    for (body, code) in [
        (json!({}), "invalid_body"),
        (json!({"enabled": null}), "invalid_body"),
        (json!({"enabled": "no"}), "invalid_body"),
        (
            json!({"expires_at": "2026-13-01T00:00:00Z"}),
            "invalid_body",
        ),
        (
            json!({"expires_at": "2024-06-01T00:00:00Z"}),
            "invalid_expiry",
        ),
        (
            json!({"expires_at": "2025-01-01T00:00:00Z"}),
            "invalid_expiry",
        ),
        (
            json!({"expires_at": "2300-01-01T00:00:00Z"}),
            "invalid_expiry",
        ),
        (json!({"label": "", "enabled": false}), "invalid_credential"),
        (json!({"enabled": false, "bogus": 1}), "invalid_body"),
    ] {
        patch(&server, &path, body.clone())
            .admin()
            .send()
            .expect_error(400, code);
    }
    let now = server.get(&path).admin().send();
    assert_eq!(now.header("ETag"), Some("\"3\""), "refusals wrote nothing");
    // The trail names the changes.
    let trail = server
        .get(&format!("/v1/accounts/{account}/audit"))
        .admin()
        .send()
        .expect(200);
    let kinds: Vec<String> = trail["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| s(e, "kind"))
        .collect();
    assert_eq!(&kinds[..2], ["key_enabled", "key_disabled"], "{trail}");
}

#[test]
fn a_masters_lifetime_caps_its_sub_accounts_keys() {
    let server = Server::start();
    let m = master(&server);
    let sub = sub(&server, &m);
    server
        .put(
            &format!("/v1/accounts/{m}/policy"),
            json!({"whitelist": [], "max_key_lifetime_seconds": 86_400 * 30}),
        )
        .acting(&m)
        .send()
        .expect(200);
    // A new key without an expiry expires at the cap.
    let created = key(&server, &sub, "ftp");
    assert_eq!(created["expires_at"], "2025-01-31T00:00:00Z");
    let path = format!("/v1/keys/{}", s(&created, "id"));
    let message = patch(
        &server,
        &path,
        json!({"expires_at": "2025-03-01T00:00:00Z"}),
    )
    .acting(&m)
    .send()
    .expect_error(400, "invalid_expiry");
    assert!(message.contains("master's policy"), "{message}");
    patch(&server, &path, json!({"expires_at": null}))
        .acting(&m)
        .send()
        .expect_error(400, "invalid_expiry");
    server
        .post(
            &format!("/v1/accounts/{sub}/keys"),
            json!({"channel": "http", "expires_at": "2025-06-01T00:00:00Z"}),
        )
        .admin()
        .send()
        .expect_error(400, "invalid_expiry");
    patch(
        &server,
        &path,
        json!({"expires_at": "2025-01-15T00:00:00Z"}),
    )
    .acting(&m)
    .send()
    .expect(200);
}

#[test]
fn suspending_an_account() {
    let server = Server::start();
    let m = master(&server);
    let sub_account = sub(&server, &m);
    let sub_key = key(&server, &sub_account, "ftp");
    let master_key = key(&server, &m, "ftp");
    let path = format!("/v1/accounts/{m}");
    // No account suspends itself; a sub-account not its master.
    patch(&server, &path, json!({"suspended": true}))
        .acting(&m)
        .send()
        .expect_error(403, "forbidden");
    patch(
        &server,
        &format!("/v1/accounts/{sub_account}"),
        json!({"suspended": true}),
    )
    .acting(&sub_account)
    .send()
    .expect_error(403, "forbidden");
    patch(&server, &path, json!({"suspended": true}))
        .acting(&sub_account)
        .send()
        .expect_error(404, "account_not_found");
    for body in [
        json!({}),
        json!({"suspended": "yes"}),
        json!({"suspended": null}),
    ] {
        patch(&server, &path, body)
            .admin()
            .send()
            .expect_error(400, "invalid_body");
    }
    // The operator suspends the master: its keys and its sub-accounts' refuse.
    let answer = patch(&server, &path, json!({"suspended": true}))
        .admin()
        .send()
        .expect(200);
    assert_eq!(
        (&answer["id"], &answer["suspended"]),
        (&json!(m), &json!(true))
    );
    authenticate(&server, &master_key).expect_error(401, "invalid_credentials");
    authenticate(&server, &sub_key).expect_error(401, "invalid_credentials");
    let listed = server
        .get(&format!("/v1/accounts/{sub_account}/keys"))
        .admin()
        .send()
        .expect(200);
    assert_eq!(listed["keys"][0]["state"], "suspended");
    // Resumed, they work again.
    patch(&server, &path, json!({"suspended": false}))
        .admin()
        .send()
        .expect(200);
    authenticate(&server, &sub_key).expect(200);
    // A master suspends its sub-account.
    let answer = patch(
        &server,
        &format!("/v1/accounts/{sub_account}"),
        json!({"suspended": true}),
    )
    .acting(&m)
    .send()
    .expect(200);
    assert_eq!(answer["suspended"], true);
    authenticate(&server, &sub_key).expect_error(401, "invalid_credentials");
    authenticate(&server, &master_key).expect(200);
}

#[test]
fn an_accounts_policy_read_and_replaced() {
    let server = Server::start();
    let m = master(&server);
    let sub_account = sub(&server, &m);
    let path = format!("/v1/accounts/{m}/policy");
    let default = server.get(&path).acting(&m).send().expect(200);
    assert_eq!(
        default,
        json!({"whitelist": [], "sub_account_channels": ["ftp", "rest", "http", "web_service", "email"], "max_key_lifetime_seconds": null})
    );
    let put = server
        .put(
            &path,
            json!({"whitelist": ["203.0.113.7/24", "2001:db8::1"], "sub_account_channels": ["HTTP", "rest", "rest"], "max_key_lifetime_seconds": 3600}),
        )
        .acting(&m)
        .send()
        .expect(200);
    let expected = json!({"whitelist": ["203.0.113.0/24", "2001:db8::1/128"], "sub_account_channels": ["rest", "http"], "max_key_lifetime_seconds": 3600});
    assert_eq!(put, expected, "normalised");
    assert_eq!(server.get(&path).admin().send().expect(200), expected);
    // The sub-account reads its own, and may not change it.
    let sub_path = format!("/v1/accounts/{sub_account}/policy");
    server
        .get(&sub_path)
        .acting(&sub_account)
        .send()
        .expect(200);
    server
        .put(&sub_path, json!({"whitelist": ["198.51.100.0/24"]}))
        .acting(&sub_account)
        .send()
        .expect_error(403, "forbidden");
    // Its master sets its whitelist, and only that.
    let set = server
        .put(&sub_path, json!({"whitelist": ["198.51.100.0/24"]}))
        .acting(&m)
        .send()
        .expect(200);
    assert_eq!(set["whitelist"], json!(["198.51.100.0/24"]));
    for body in [
        json!({"whitelist": [], "sub_account_channels": ["ftp"]}),
        json!({"whitelist": [], "max_key_lifetime_seconds": 60}),
    ] {
        let message = server
            .put(&sub_path, body)
            .acting(&m)
            .send()
            .expect_error(400, "invalid_account_policy");
        assert!(message.contains("sub-account"), "{message}");
    }
    // A sub-account never sees its master's.
    server
        .get(&path)
        .acting(&sub_account)
        .send()
        .expect_error(404, "account_not_found");
    // Bad input: 400, nothing written.
    for (body, code) in [
        (json!({"whitelist": ["300.0.0.1"]}), "invalid_whitelist"),
        (
            json!({"whitelist": [], "sub_account_channels": ["pigeon"]}),
            "invalid_channel",
        ),
        (
            json!({"whitelist": [], "max_key_lifetime_seconds": 0}),
            "invalid_account_policy",
        ),
        (
            json!({"whitelist": [], "max_key_lifetime_seconds": 3_155_760_001_i64}),
            "invalid_account_policy",
        ),
        (json!({}), "invalid_body"),
        (json!({"whitelist": [], "extra": true}), "invalid_body"),
        (
            json!({"whitelist": [], "max_key_lifetime_seconds": 302.5}),
            "invalid_body",
        ),
        (
            json!({"whitelist": [], "max_key_lifetime_seconds": "302"}),
            "invalid_body",
        ),
    ] {
        server
            .put(&path, body.clone())
            .admin()
            .send()
            .expect_error(400, code);
    }
    assert_eq!(server.get(&path).admin().send().expect(200), expected);
    // An integer as JSON Schema has it: 3600.0 is 3600 (found by Schemathesis).
    let whole = server
        .put(
            &path,
            json!({"whitelist": ["203.0.113.7/24", "2001:db8::1"], "sub_account_channels": ["rest", "http"], "max_key_lifetime_seconds": 3600.0}),
        )
        .admin()
        .send()
        .expect(200);
    assert_eq!(whole, expected);
    let trail = server
        .get(&format!("/v1/accounts/{m}/audit"))
        .admin()
        .send()
        .expect(200);
    assert_eq!(trail["events"][0]["kind"], "policy_changed");
}

#[test]
fn a_masters_policy_applies_to_its_sub_accounts_keys() {
    let server = Server::start();
    let m = master(&server);
    let sub_account = sub(&server, &m);
    let ftp = key(&server, &sub_account, "ftp");
    let path = format!("/v1/accounts/{m}/policy");
    // The channels: an existing key of another refuses, no new one is made.
    server
        .put(
            &path,
            json!({"whitelist": [], "sub_account_channels": ["rest"]}),
        )
        .admin()
        .send()
        .expect(200);
    authenticate(&server, &ftp).expect_error(401, "invalid_credentials");
    server
        .post(
            &format!("/v1/accounts/{sub_account}/keys"),
            json!({"channel": "http"}),
        )
        .admin()
        .send()
        .expect_error(403, "channel_not_allowed");
    key(&server, &sub_account, "rest");
    // The account-wide whitelist: the peer (127.0.0.1) is outside it.
    server
        .put(&path, json!({"whitelist": ["203.0.113.0/24"]}))
        .admin()
        .send()
        .expect(200);
    let message = authenticate(&server, &ftp).expect_error(403, "address_not_allowed");
    assert!(
        !message.contains("master"),
        "the caller is not told which list: {message}"
    );
    // Explained: the key's list and the account's let it, the master's not.
    let explained = server
        .get(&format!(
            "/v1/keys/{}/whitelist/explain?address=127.0.0.1",
            s(&ftp, "id")
        ))
        .acting(&m)
        .send()
        .expect(200);
    assert_eq!(
        (
            &explained["allowed"],
            &explained["refused_by"],
            &explained["matched"]
        ),
        (&json!(false), &json!("master"), &Value::Null)
    );
    assert_eq!(
        explained["lists"],
        json!([
            {"scope": "key", "allowed": true, "matched": null},
            {"scope": "account", "allowed": true, "matched": null},
            {"scope": "master", "allowed": false, "matched": null},
        ])
    );
    assert!(s(&explained, "reason").contains("master"), "{explained}");
    let inside = server
        .get(&format!(
            "/v1/keys/{}/whitelist/explain?address=203.0.113.9",
            s(&ftp, "id")
        ))
        .admin()
        .send()
        .expect(200);
    assert_eq!(
        (&inside["allowed"], &inside["refused_by"]),
        (&json!(true), &Value::Null)
    );
    assert_eq!(
        inside["lists"][2],
        json!({"scope": "master", "allowed": true, "matched": "203.0.113.0/24"})
    );
    assert!(s(&inside, "reason").contains("203.0.113.0/24"), "{inside}");
    // A master's key: key and account lists only.
    let own = key(&server, &m, "ftp");
    let explained = server
        .get(&format!(
            "/v1/keys/{}/whitelist/explain?address=127.0.0.1",
            s(&own, "id")
        ))
        .admin()
        .send()
        .expect(200);
    assert_eq!(explained["refused_by"], "account");
    assert_eq!(explained["lists"].as_array().map(Vec::len), Some(2));
}

#[test]
fn last_use_shows_in_the_key_answer() {
    let server = Server::start();
    let m = master(&server);
    let created = key(&server, &m, "ftp");
    let path = format!("/v1/keys/{}", s(&created, "id"));
    authenticate(&server, &created).expect(200);
    let got = server.get(&path).admin().send().expect(200);
    assert_eq!(
        (&got["last_used_at"], &got["last_used_address"]),
        (&json!("2025-01-01T00:00:00Z"), &json!("127.0.0.1")),
        "the pending use is merged into the view, no flush needed"
    );
    assert_eq!(got["previous_secret_last_used_at"], Value::Null);
    // A grace period: the old secret's use is shown apart.
    let changed = server
        .post(
            &format!("{path}/credentials"),
            json!({"regenerate_secret": true, "grace_seconds": 3600}),
        )
        .admin()
        .send()
        .expect(200);
    assert!(changed["grace_until"].is_string());
    assert_eq!(changed["previous_secret_last_used_at"], Value::Null);
    server.clock.advance(time::Duration::minutes(5));
    authenticate(&server, &created).expect(200);
    let got = server.get(&path).admin().send().expect(200);
    assert_eq!(got["previous_secret_last_used_at"], "2025-01-01T00:05:00Z");
    assert_eq!(got["last_used_at"], "2025-01-01T00:05:00Z");
}

#[test]
fn dormant_keys_of_an_account() {
    let server = Server::start();
    let m = master(&server);
    let sub_account = sub(&server, &m);
    let used = key(&server, &m, "ftp");
    let idle = key(&server, &sub_account, "ftp");
    server.clock.advance(time::Duration::days(40));
    authenticate(&server, &used).expect(200);
    let path = format!("/v1/accounts/{m}/dormant-keys");
    let dormant = server
        .get(&format!("{path}?days=30"))
        .acting(&m)
        .send()
        .expect(200);
    let ids: Vec<String> = dormant["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| s(k, "id"))
        .collect();
    assert_eq!(
        ids,
        [s(&idle, "id")],
        "a master's includes its sub-accounts'"
    );
    let none = server
        .get(&format!("{path}?days=50"))
        .admin()
        .send()
        .expect(200);
    assert_eq!(none["keys"], json!([]));
    for (query, code) in [
        ("?days=0", "invalid_days"),
        ("?days=36501", "invalid_days"),
        ("?days=ten", "invalid_query"),
        ("?days=-1", "invalid_query"),
        ("", "invalid_query"),
    ] {
        server
            .get(&format!("{path}{query}"))
            .admin()
            .send()
            .expect_error(400, code);
    }
    server
        .get(&format!("/v1/accounts/{m}/dormant-keys?days=30"))
        .acting(&sub_account)
        .send()
        .expect_error(404, "account_not_found");
}

#[test]
fn every_dormant_key_a_page_at_a_time_for_the_operator_only() {
    let server = Server::start();
    let legacy = server
        .post(
            "/v1/accounts",
            json!({"kind": "master", "created_at": "2021-05-01T00:00:00Z"}),
        )
        .admin()
        .send()
        .expect(201);
    let legacy_id = s(&legacy["account"], "id");
    let m = master(&server);
    key(&server, &m, "rest");
    server.clock.advance(time::Duration::days(10));
    let mut walked = Vec::new();
    let mut url = "/v1/dormant-keys?days=5&limit=2".to_string();
    for _ in 0..10 {
        let page = server.get(&url).admin().send().expect(200);
        walked.extend(page["keys"].as_array().unwrap().iter().map(|k| s(k, "id")));
        match page["next_cursor"].as_str() {
            Some(c) => url = format!("/v1/dormant-keys?days=5&limit=2&cursor={c}"),
            None => break,
        }
    }
    let mut sorted = walked.clone();
    sorted.sort();
    assert_eq!(walked, sorted, "ascending by id");
    assert_eq!(walked.len(), 5, "four default keys and one more");
    let legacy_only = server
        .get("/v1/dormant-keys?days=5&legacy_defaults_only=true&cursor=")
        .admin()
        .send()
        .expect(200);
    let keys = legacy_only["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 4);
    assert!(keys.iter().all(|k| k["account_id"] == json!(legacy_id)));
    assert_eq!(legacy_only["next_cursor"], Value::Null);
    for query in [
        "?days=5&limit=0",
        "?days=5&limit=1001",
        "?days=5&cursor=acc_x",
        "?days=5&legacy_defaults_only=maybe",
        "?limit=5",
    ] {
        server
            .get(&format!("/v1/dormant-keys{query}"))
            .admin()
            .send()
            .expect_error(400, "invalid_query");
    }
    server
        .get("/v1/dormant-keys?days=0")
        .admin()
        .send()
        .expect_error(400, "invalid_days");
    server
        .get("/v1/dormant-keys?days=5")
        .acting(&m)
        .send()
        .expect_error(403, "forbidden");
}

#[test]
fn the_dormancy_action_is_off_unless_the_policy_turns_it_on() {
    let server = Server::start();
    for body in [json!({}), json!({"dry_run": false})] {
        let message = server
            .post("/v1/dormant-keys/disable", body)
            .admin()
            .send()
            .expect_error(409, "dormancy_action_off");
        assert!(
            message.contains("disable_dormant_legacy_defaults_after"),
            "{message}"
        );
    }
}

#[test]
fn the_dormancy_action_disables_never_used_legacy_default_keys() {
    let server = Server::start_with(
        Config::default(),
        Policy::fast_for_tests()
            .disable_dormant_legacy_defaults_after(Some(time::Duration::days(90))),
    );
    let legacy = server
        .post(
            "/v1/accounts",
            json!({"kind": "master", "created_at": "2021-05-01T00:00:00Z"}),
        )
        .admin()
        .send()
        .expect(201);
    let issued = legacy["issued"].as_array().unwrap().clone();
    let account = s(&legacy["account"], "id");
    // One default key used: it stays.
    authenticate(&server, &issued[0]).expect(200);
    server.clock.advance(time::Duration::days(100));
    // Only the operator; and only a boolean.
    server
        .post("/v1/dormant-keys/disable", json!({}))
        .acting(&account)
        .send()
        .expect_error(403, "forbidden");
    for body in [
        json!({"dry_run": null}),
        json!({"dry_run": "no"}),
        json!({"now": true}),
    ] {
        server
            .post("/v1/dormant-keys/disable", body)
            .admin()
            .send()
            .expect_error(400, "invalid_body");
    }
    // A dry run by default: listed, nothing changed.
    let dry = server
        .post("/v1/dormant-keys/disable", json!({}))
        .admin()
        .send()
        .expect(200);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["keys"].as_array().map(Vec::len), Some(3), "{dry}");
    authenticate(&server, &issued[1]).expect(200);
    // That use counts: the next run leaves the key alone.
    let done = server
        .post("/v1/dormant-keys/disable", json!({"dry_run": false}))
        .admin()
        .send()
        .expect(200);
    assert_eq!(done["dry_run"], false);
    let disabled: Vec<&Value> = done["keys"].as_array().unwrap().iter().collect();
    assert_eq!(disabled.len(), 2, "{done}");
    assert!(disabled.iter().all(|k| k["state"] == "disabled"));
    authenticate(&server, &issued[2]).expect_error(401, "invalid_credentials");
    authenticate(&server, &issued[0]).expect(200);
    authenticate(&server, &issued[1]).expect(200);
}

#[test]
fn the_document_describes_the_lifecycle() {
    let server = Server::start();
    let doc = server.get("/openapi.json").send().expect(200);
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["KeyStateCode"]["enum"],
        json!(
            apikeys::KeyState::ALL
                .iter()
                .map(|k| k.code())
                .collect::<Vec<_>>()
        )
    );
    assert_eq!(
        schemas["WhitelistScopeCode"]["enum"],
        json!(["key", "account", "master"])
    );
    let key = &schemas["KeyView"];
    for field in [
        "expires_at",
        "enabled",
        "state",
        "legacy_default",
        "last_used_at",
        "last_used_address",
        "previous_secret_last_used_at",
    ] {
        assert!(key["properties"].get(field).is_some(), "KeyView.{field}");
    }
    assert_eq!(
        schemas["KeyPatch"]["anyOf"].as_array().map(Vec::len),
        Some(3),
        "a patch changes something"
    );
    assert_eq!(
        schemas["KeyPatch"]["properties"]["enabled"]["type"],
        "boolean"
    );
    assert_eq!(
        schemas["PolicyBody"]["properties"]["max_key_lifetime_seconds"]["maximum"],
        json!(3_155_760_000_i64)
    );
    assert_eq!(
        schemas["AccountView"]["properties"]["suspended"]["type"],
        "boolean"
    );
    let paths = &doc["paths"];
    for (path, method, status) in [
        ("/v1/accounts/{account_id}", "patch", "403"),
        ("/v1/accounts/{account_id}/policy", "get", "200"),
        ("/v1/accounts/{account_id}/policy", "put", "403"),
        ("/v1/accounts/{account_id}/dormant-keys", "get", "400"),
        ("/v1/dormant-keys", "get", "403"),
        ("/v1/dormant-keys/disable", "post", "409"),
        ("/v1/accounts/{account_id}/keys", "post", "403"),
        ("/v1/keys/{key_id}", "patch", "412"),
    ] {
        assert!(
            paths[path][method]["responses"].get(status).is_some(),
            "{method} {path} answers {status}"
        );
    }
    let days = paths["/v1/dormant-keys"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "days")
        .unwrap();
    assert_eq!(
        (
            &days["required"],
            &days["schema"]["minimum"],
            &days["schema"]["maximum"]
        ),
        (&json!(true), &json!(1), &json!(36500))
    );
}

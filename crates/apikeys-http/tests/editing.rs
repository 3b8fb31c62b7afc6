//! What the page edits through the API: the whitelist patched and
//! explained, the label, sub-accounts and the operator's pages of accounts,
//! and the versions on the wire (`ETag` on every answer carrying a key,
//! `If-Match` on every change: 412 and nothing written when stale).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Server, s};
use serde_json::{Value, json};

/// A master opened by the operator, and its FTP key: (account id, key id).
fn master_with_key(server: &Server) -> (String, String) {
    let opened = server
        .post("/v1/accounts", json!({"kind": "master"}))
        .admin()
        .send()
        .expect(201);
    let account = s(&opened["account"], "id");
    let key = server
        .post(
            &format!("/v1/accounts/{account}/keys"),
            json!({"channel": "ftp"}),
        )
        .admin()
        .send()
        .expect(201);
    (account, s(&key, "id"))
}

fn patch<'a>(server: &'a Server, path: &str, body: Value) -> common::Req<'a> {
    server.request("PATCH", path).json(&body)
}

/// The `ETag` of a response, and its body's version, which must agree.
#[track_caller]
fn etag_of(r: &common::Response) -> String {
    r.header("ETag")
        .unwrap_or_else(|| panic!("no ETag: {}", r.text()))
        .to_string()
}

#[test]
fn patching_the_whitelist_adds_and_removes_in_one_change() {
    let server = Server::start();
    let (_, key) = master_with_key(&server);
    let path = format!("/v1/keys/{key}/whitelist");
    server
        .put(&path, json!({"entries": ["203.0.113.0/24", "10.0.0.0/8"]}))
        .admin()
        .send()
        .expect(200);
    let r = patch(
        &server,
        &path,
        json!({"add": ["2001:db8::1", "198.51.100.7/24"], "remove": ["10.0.0.0/8", "192.0.2.1"]}),
    )
    .admin()
    .send();
    let body = r.expect(200);
    assert_eq!(
        body,
        json!({"entries": ["198.51.100.0/24", "203.0.113.0/24", "2001:db8::1/128"]}),
        "added normalised, removed gone, removing an absent entry is fine"
    );
    assert_eq!(etag_of(&r), "\"3\"");
    // Only one of the two, or both.
    let body = patch(&server, &path, json!({"remove": ["203.0.113.0/24"]}))
        .admin()
        .send()
        .expect(200);
    assert_eq!(
        body["entries"],
        json!(["198.51.100.0/24", "2001:db8::1/128"])
    );
    // Nothing to do, or bad input: 400, nothing written.
    for (body, code) in [
        (json!({}), "invalid_body"),
        (json!({"add": [], "remove": []}), "invalid_body"),
        (json!({"add": ["300.1.2.3"]}), "invalid_whitelist"),
        (json!({"add": ["10.0.0.0/8"], "bogus": 1}), "invalid_body"),
        (json!({"add": "10.0.0.0/8"}), "invalid_body"),
    ] {
        patch(&server, &path, body.clone())
            .admin()
            .send()
            .expect_error(400, code);
    }
    let r = server.get(&path).admin().send();
    assert_eq!(etag_of(&r), "\"4\"", "refusals wrote nothing");
}

#[test]
fn explaining_an_address() {
    let server = Server::start();
    let (_, key) = master_with_key(&server);
    let explain = |address: &str| {
        server
            .get(&format!(
                "/v1/keys/{key}/whitelist/explain?address={address}"
            ))
            .admin()
            .send()
    };
    let empty = explain("203.0.113.7").expect(200);
    assert_eq!(
        (&empty["address"], &empty["allowed"], &empty["matched"]),
        (&json!("203.0.113.7"), &json!(true), &Value::Null)
    );
    assert!(s(&empty, "reason").contains("empty"), "{empty}");
    server
        .put(
            &format!("/v1/keys/{key}/whitelist"),
            json!({"entries": ["203.0.113.0/24", "203.0.113.0/28"]}),
        )
        .admin()
        .send()
        .expect(200);
    let inside = explain("::ffff:203.0.113.7").expect(200);
    assert_eq!(inside["address"], "203.0.113.7", "IPv4-mapped is IPv4");
    assert_eq!(inside["allowed"], true);
    assert_eq!(
        inside["matched"], "203.0.113.0/28",
        "the most specific entry"
    );
    let outside = explain("198.51.100.1").expect(200);
    assert_eq!(
        (&outside["allowed"], &outside["matched"]),
        (&json!(false), &Value::Null)
    );
    assert!(s(&outside, "reason").contains("outside"), "{outside}");
    for bad in ["nope", "203.0.113.0/24", "", "1.2.3.4.5"] {
        explain(bad).expect_error(400, "invalid_address");
    }
    server
        .get(&format!("/v1/keys/{key}/whitelist/explain"))
        .admin()
        .send()
        .expect_error(400, "invalid_query");
}

#[test]
fn patching_the_label() {
    let server = Server::start();
    let (account, key) = master_with_key(&server);
    let path = format!("/v1/keys/{key}");
    let r = patch(&server, &path, json!({"label": "Büro – Zahlungen"}))
        .acting(&account)
        .send();
    let body = r.expect(200);
    assert_eq!(body["label"], "Büro – Zahlungen");
    assert_eq!(etag_of(&r), format!("\"{}\"", body["version"]));
    let body = patch(&server, &path, json!({"label": null}))
        .admin()
        .send()
        .expect(200);
    assert_eq!(body["label"], Value::Null);
    for (body, code) in [
        (json!({}), "invalid_body"),
        (json!({"label": ""}), "invalid_credential"),
        (json!({"label": "a\u{202e}b"}), "invalid_credential"),
        (json!({"label": "x".repeat(65)}), "invalid_credential"),
        (json!({"label": 5}), "invalid_body"),
    ] {
        patch(&server, &path, body)
            .admin()
            .send()
            .expect_error(400, code);
    }
    let trail = server
        .get(&format!("/v1/accounts/{account}/audit"))
        .admin()
        .send()
        .expect(200);
    assert_eq!(trail["events"][0]["kind"], "label_changed");
    // Another master's key is not found.
    let other = server
        .post("/v1/accounts", json!({"kind": "master"}))
        .admin()
        .send()
        .expect(201);
    patch(&server, &path, json!({"label": "mine"}))
        .acting(&s(&other["account"], "id"))
        .send()
        .expect_error(404, "key_not_found");
}

#[test]
fn sub_accounts_are_listed_oldest_first() {
    let server = Server::start();
    let open = |body: Value| {
        server.post("/v1/accounts", body).admin().send().expect(201)["account"].clone()
    };
    let m = s(&open(json!({"kind": "master"})), "id");
    let newer = open(json!({"kind": "sub", "parent_id": m, "created_at": "2024-02-01T00:00:00Z"}));
    let older = open(json!({"kind": "sub", "parent_id": m, "created_at": "2021-02-01T00:00:00Z"}));
    let other = s(&open(json!({"kind": "master"})), "id");
    let path = format!("/v1/accounts/{m}/sub-accounts");
    let listed = server.get(&path).acting(&m).send().expect(200);
    assert_eq!(listed, json!({"accounts": [older, newer]}));
    server
        .get(&path)
        .acting(&other)
        .send()
        .expect_error(404, "account_not_found");
    let sub = s(&older, "id");
    assert_eq!(
        server
            .get(&format!("/v1/accounts/{sub}/sub-accounts"))
            .admin()
            .send()
            .expect(200),
        json!({"accounts": []})
    );
    server
        .get("/v1/accounts/acc_x/sub-accounts")
        .admin()
        .send()
        .expect_error(400, "invalid_id");
}

#[test]
fn every_account_a_page_at_a_time_for_the_operator_only() {
    let server = Server::start();
    let mut ids: Vec<String> = (0..5)
        .map(|_| {
            s(
                &server
                    .post("/v1/accounts", json!({"kind": "master"}))
                    .admin()
                    .send()
                    .expect(201)["account"],
                "id",
            )
        })
        .collect();
    ids.sort();
    let mut walked = Vec::new();
    let mut url = "/v1/accounts?limit=2".to_string();
    for _ in 0..10 {
        let page = server.get(&url).admin().send().expect(200);
        walked.extend(
            page["accounts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| s(a, "id")),
        );
        match page["next_cursor"].as_str() {
            Some(c) => url = format!("/v1/accounts?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(walked, ids);
    let all = server.get("/v1/accounts").admin().send().expect(200);
    assert_eq!(
        server
            .get("/v1/accounts?cursor=")
            .admin()
            .send()
            .expect(200),
        all,
        "an empty cursor is the first page"
    );
    assert_eq!(all["accounts"].as_array().unwrap().len(), 5);
    assert_eq!(all["next_cursor"], Value::Null);
    for bad in [
        "/v1/accounts?limit=0",
        "/v1/accounts?limit=1001",
        "/v1/accounts?limit=x",
        "/v1/accounts?cursor=nope",
        "/v1/accounts?cursor=key_0123456789abcdef0123456789abcdef",
    ] {
        server
            .get(bad)
            .admin()
            .send()
            .expect_error(400, "invalid_query");
    }
    server
        .get("/v1/accounts")
        .acting(&ids[0])
        .send()
        .expect_error(403, "forbidden");
    server
        .get("/v1/accounts")
        .send()
        .expect_error(401, "unauthorized");
}

/// Every answer carrying one key carries its version as a strong ETag.
#[test]
fn every_answer_carrying_a_key_carries_its_etag() {
    let server = Server::start();
    let opened = server
        .post("/v1/accounts", json!({"kind": "master"}))
        .admin()
        .send()
        .expect(201);
    let account = s(&opened["account"], "id");
    let created = server
        .post(
            &format!("/v1/accounts/{account}/keys"),
            json!({"channel": "rest"}),
        )
        .admin()
        .send();
    assert_eq!(etag_of(&created), "\"1\"");
    let key = s(&created.expect(201), "id");
    let k = format!("/v1/keys/{key}");
    let w = format!("/v1/keys/{key}/whitelist");
    let answers = [
        (server.get(&k).admin().send(), "\"1\""),
        (server.get(&w).admin().send(), "\"1\""),
        (
            server
                .post(
                    &format!("{k}/credentials"),
                    json!({"regenerate_secret": true}),
                )
                .admin()
                .send(),
            "\"2\"",
        ),
        (
            server
                .put(&w, json!({"entries": ["10.0.0.0/8"]}))
                .admin()
                .send(),
            "\"3\"",
        ),
        (
            patch(&server, &w, json!({"add": ["192.0.2.1"]}))
                .admin()
                .send(),
            "\"4\"",
        ),
        (
            patch(&server, &k, json!({"label": "x"})).admin().send(),
            "\"5\"",
        ),
        (server.get(&k).admin().send(), "\"5\""),
    ];
    for (r, tag) in answers {
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(etag_of(&r), tag);
    }
}

/// Two editors read version N and both send `If-Match: "N"`: one wins,
/// the other gets 412 and the first edit is kept, for every kind of change.
#[test]
fn two_editors_from_one_read_one_wins_the_other_gets_412() {
    let server = Server::start();
    let (_, key) = master_with_key(&server);
    let k = format!("/v1/keys/{key}");
    let w = format!("/v1/keys/{key}/whitelist");
    let read = etag_of(&server.get(&k).admin().send());
    patch(&server, &k, json!({"label": "alice"}))
        .admin()
        .header("If-Match", &read)
        .send()
        .expect(200);
    let edits: Vec<common::Req<'_>> = vec![
        patch(&server, &k, json!({"label": "bob"})),
        patch(&server, &w, json!({"add": ["10.0.0.1"]})),
        server.put(&w, json!({"entries": ["10.0.0.1"]})),
        server.post(
            &format!("{k}/credentials"),
            json!({"regenerate_secret": true}),
        ),
        server.delete(&k),
    ];
    for edit in edits {
        let message = edit
            .admin()
            .header("If-Match", &read)
            .send()
            .expect_error(412, "precondition_failed");
        assert!(message.contains("version 2, not 1"), "{message}");
    }
    let now = server.get(&k).admin().send();
    let body = now.expect(200);
    assert_eq!(body["label"], "alice", "the first edit is kept");
    assert_eq!(body["whitelist"], json!([]));
    assert_eq!(etag_of(&now), "\"2\"", "the losers wrote nothing");
}

/// `If-Match` as RFC 9110 has it: `*`, a list (any tag matching is enough),
/// weak tags never match; a value that is no entity-tag list is a 400.
#[test]
fn if_match_values() {
    let server = Server::start();
    let (_, key) = master_with_key(&server);
    let k = format!("/v1/keys/{key}");
    let label = |if_match: &str, label: &str| {
        patch(&server, &k, json!({"label": label}))
            .admin()
            .header("If-Match", if_match)
            .send()
    };
    assert_eq!(etag_of(&label("*", "a")), "\"2\"");
    assert_eq!(etag_of(&label("\"7\", \"2\"", "b")), "\"3\"");
    label("W/\"3\"", "c").expect_error(412, "precondition_failed");
    label("\"03\"", "c").expect_error(412, "precondition_failed");
    for bad in ["3", "\"3", "\"3\" \"4\"", "\"3\",", "w/\"3\""] {
        label(bad, "c").expect_error(400, "invalid_header");
    }
    // Several header lines are one list.
    let r = patch(&server, &k, json!({"label": "d"}))
        .admin()
        .header("If-Match", "\"1\"")
        .header("If-Match", "\"3\"")
        .send();
    assert_eq!(etag_of(&r), "\"4\"");
    // A deletion at the current version deletes.
    server
        .delete(&k)
        .admin()
        .header("If-Match", "\"4\"")
        .send()
        .expect(204);
    server
        .get(&k)
        .admin()
        .send()
        .expect_error(404, "key_not_found");
}

/// The OpenAPI document says what the server does: the error codes are an
/// enum of exactly `ErrorCode::ALL`, ids carry their pattern, every change
/// of a key documents `If-Match` (with the pattern the parser accepts) and
/// 412, every answer carrying a key documents its `ETag`, and every
/// management operation the refusals it can meet whatever it does.
#[test]
fn the_document_is_exact() {
    let server = Server::start();
    let doc = server.get("/openapi.json").send().expect(200);
    let codes: Vec<&str> = apikeys_http::ErrorCode::ALL
        .iter()
        .map(|c| c.as_str())
        .collect();
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["ErrorCode"]["enum"],
        json!(codes),
        "the document's error codes are the code's"
    );
    assert_eq!(
        schemas["ErrorBody"]["properties"]["error"]["$ref"],
        "#/components/schemas/ErrorCode"
    );
    let paths = doc["paths"].as_object().unwrap();
    let changes = [
        ("delete", "/v1/keys/{key_id}"),
        ("patch", "/v1/keys/{key_id}"),
        ("post", "/v1/keys/{key_id}/credentials"),
        ("put", "/v1/keys/{key_id}/whitelist"),
        ("patch", "/v1/keys/{key_id}/whitelist"),
    ];
    let carrying_a_key = [
        ("get", "/v1/keys/{key_id}", "200"),
        ("patch", "/v1/keys/{key_id}", "200"),
        ("post", "/v1/keys/{key_id}/credentials", "200"),
        ("get", "/v1/keys/{key_id}/whitelist", "200"),
        ("put", "/v1/keys/{key_id}/whitelist", "200"),
        ("patch", "/v1/keys/{key_id}/whitelist", "200"),
        ("post", "/v1/accounts/{account_id}/keys", "201"),
    ];
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let param = |name: &str| params.iter().find(|p| p["name"] == name).cloned();
            for (name, pattern) in [
                ("external_id", apikeys_http::openapi()["components"]["schemas"]["AccountView"]["properties"]["external_id"]["pattern"].as_str().unwrap()),
                ("key_id", "^key_[0-9a-f]{32}$"),
                ("account_id", "^acc_[0-9a-f]{32}$"),
                ("X-Acting-Account", "^acc_[0-9a-f]{32}$"),
            ] {
                if let Some(p) = param(name) {
                    assert_eq!(p["schema"]["pattern"], pattern, "{method} {path} {name}");
                }
            }
            let responses = op["responses"].as_object().unwrap();
            let is_change = changes.contains(&(method.as_str(), path.as_str()));
            assert_eq!(
                param("If-Match").map(|p| p["schema"]["pattern"].clone()),
                is_change.then(|| json!(apikeys_http::versions::IF_MATCH_PATTERN)),
                "{method} {path}: If-Match"
            );
            assert_eq!(
                responses.contains_key("412"),
                is_change,
                "{method} {path}: 412"
            );
            // The guard's refusals, before any handler.
            for status in ["400", "413"] {
                assert!(
                    responses.contains_key(status),
                    "{method} {path} does not document {status}"
                );
            }
            if op["security"][0].get("admin_token").is_some() {
                for status in ["400", "401", "413", "429", "503"] {
                    assert!(
                        responses.contains_key(status),
                        "{method} {path} does not document {status}"
                    );
                }
            }
            if op.get("requestBody").is_some() {
                assert!(responses.contains_key("415"), "{method} {path}: 415");
            }
            if let Some((_, _, status)) = carrying_a_key
                .iter()
                .find(|(m, p, _)| m == method && p == path)
            {
                assert!(
                    responses[*status]["headers"].get("ETag").is_some(),
                    "{method} {path}: ETag"
                );
            }
        }
    }
    // Lengths and the policy's bounds, from the rules themselves.
    let create = &schemas["CreateKeyRequest"]["properties"];
    assert_eq!(
        (
            &create["identifier"]["minLength"],
            &create["identifier"]["maxLength"],
            &create["secret"]["minLength"],
            &create["secret"]["maxLength"],
            &create["label"]["maxLength"],
        ),
        (&json!(3), &json!(64), &json!(12), &json!(128), &json!(64))
    );
    let policy = server.keys.policy();
    assert_eq!(
        schemas["WhitelistBody"]["properties"]["entries"]["maxItems"],
        json!(policy.max_whitelist_entries)
    );
    assert_eq!(
        schemas["ChangeCredentialsRequest"]["properties"]["grace_seconds"]["maximum"],
        json!(policy.max_grace.whole_seconds())
    );
    let acting = &doc["paths"]["/v1/keys/{key_id}"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "X-Acting-Account")
        .unwrap()["schema"];
    assert_eq!(acting["type"], "string", "a header is never null");
    assert_eq!(
        schemas["OpenAccountRequest"]["oneOf"]
            .as_array()
            .map(Vec::len),
        Some(2),
        "a master names no parent, a sub-account its master"
    );
    assert_eq!(
        schemas["AuditEventView"]["properties"]["kind"]["$ref"],
        "#/components/schemas/AuditKindCode",
        "audit kinds are an enum"
    );
    assert_eq!(
        schemas["AuditKindCode"]["enum"],
        json!(
            apikeys::AuditKind::ALL
                .iter()
                .map(|k| k.code())
                .collect::<Vec<_>>()
        )
    );
}

/// The document bounds every list of entries a request carries by the
/// policy's limit, and the answers keep to it as sent: one entry repeated
/// past the limit merges into one, yet the request is refused, on a key's
/// whitelist, its patch, and an account's policy alike.
#[test]
fn a_request_lists_at_most_the_policys_number_of_entries() {
    let server = Server::start();
    let (account, key) = master_with_key(&server);
    let limit = server.keys.policy().max_whitelist_entries;
    let listed = |n: usize| vec!["b40::/22"; n];
    let policy = format!("/v1/accounts/{account}/policy");
    let whitelist = format!("/v1/keys/{key}/whitelist");
    for (method, path, body) in [
        ("put", &whitelist, json!({"entries": listed(limit + 1)})),
        ("patch", &whitelist, json!({"add": listed(limit + 1)})),
        ("patch", &whitelist, json!({"remove": listed(limit + 1)})),
        ("put", &policy, json!({"whitelist": listed(limit + 1)})),
    ] {
        let r = match method {
            "put" => server.put(path, body),
            _ => patch(&server, path, body),
        };
        let message = r.admin().send().expect_error(400, "invalid_whitelist");
        assert!(
            message.contains(&format!("lists {} whitelist entries", limit + 1)),
            "{method} {path}: {message}"
        );
    }
    // Exactly the limit is accepted, and merges.
    let body = server
        .put(&whitelist, json!({"entries": listed(limit)}))
        .admin()
        .send()
        .expect(200);
    assert_eq!(body["entries"], json!(["b40::/22"]));
    let body = server
        .put(&policy, json!({"whitelist": listed(limit)}))
        .admin()
        .send()
        .expect(200);
    assert_eq!(body["whitelist"], json!(["b40::/22"]));
}

//! The served OpenAPI document against the real binary, by Schemathesis:
//! every operation fuzzed from the document with every check, so that the
//! server answers what the document says (statuses, bodies, headers) and a
//! request the document calls valid is never refused as malformed, nor one
//! it calls invalid accepted.
//!
//! Needs the `schemathesis` command (v4). Without it the test says it
//! SKIPPED, unless `APIKEYS_REQUIRE_SCHEMATHESIS=1`, which makes its absence
//! a failure.
//!
//! What the run leaves out, and why:
//!
//! - the `ignored_auth` check: the server throttles wrong admin tokens per
//!   address (all of Schemathesis's requests come from one), so past the
//!   allowance a wrong token is a 429 where that check insists on a 401.
//!   This test checks instead, on every documented operation, that no
//!   token is a 401 and a wrong one a 401 or 429, never an answer.
//! - the coverage phase: while it varies one part of a request it keeps
//!   the optional `X-Acting-Account` header from a negative case (an empty
//!   value, 37 characters for a 36-character pattern), yet labels the case
//!   positive (its own metadata says `header: negative` inside a `positive`
//!   case), so a correct 400 counts as a failure. The examples, fuzzing and
//!   stateful phases generate from the document.
//! - the rules no schema can state are allowed a 400 on the operations
//!   they concern: a chosen secret containing its key's identifier, or
//!   shaped like a generated secret (`POST …/keys`, `POST …/credentials`);
//!   an expiry in the past (`POST …/keys`, `PATCH /v1/keys/{key_id}`);
//!   and a 412 (a version the key has left, in an `If-Match` the document
//!   allows) counts, like a 409, as a refusal of state, not of shape.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::binary::start;
use common::{Req, TOKEN, s};
use serde_json::{Value, json};
use std::process::Command;

fn schemathesis_version() -> Option<String> {
    let out = Command::new("schemathesis")
        .arg("--version")
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[test]
fn the_document_holds_against_the_server() {
    let Some(version) = schemathesis_version() else {
        assert!(
            std::env::var("APIKEYS_REQUIRE_SCHEMATHESIS").as_deref() != Ok("1"),
            "APIKEYS_REQUIRE_SCHEMATHESIS=1 but the `schemathesis` command is missing"
        );
        eprintln!("SKIPPED: the `schemathesis` command is missing (pip install schemathesis)");
        return;
    };
    eprintln!("running {version}");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("apikeys.sqlite3");
    let mut server = start(&["--db".to_string(), db.display().to_string()], Some(TOKEN));
    let addr = server.addr;

    // Seed: a master with a sub-account and keys, whose ids the fuzzer
    // uses, so that operations reach their logic instead of a 404.
    let admin = |method: &str, path: &str, body: Option<Value>| {
        let r = Req::new(addr, method, path).admin();
        match body {
            Some(b) => r.json(&b).send(),
            None => r.send(),
        }
    };
    let master = admin("POST", "/v1/accounts", Some(json!({"kind": "master"}))).expect(201);
    let master = s(&master["account"], "id");
    admin(
        "POST",
        "/v1/accounts",
        Some(json!({"kind": "sub", "parent_id": master})),
    )
    .expect(201);
    let key = admin(
        "POST",
        &format!("/v1/accounts/{master}/keys"),
        Some(json!({"channel": "rest", "label": "seeded"})),
    )
    .expect(201);
    let key = s(&key, "id");
    admin(
        "PUT",
        &format!("/v1/keys/{key}/whitelist"),
        Some(json!({"entries": ["203.0.113.0/24"]})),
    )
    .expect(200);

    let config = dir.path().join("schemathesis.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[parameters]
key_id = "{key}"
account_id = "{master}"

# 412 is a refusal of state, like 404 and 409: an If-Match the document
# allows, naming a version the key has left.
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "412", "429", "5xx"]

[[operations]]
include-name = "POST /v1/accounts/{{account_id}}/keys"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "412", "429", "5xx"]

[[operations]]
include-name = "POST /v1/keys/{{key_id}}/credentials"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "412", "429", "5xx"]

# An expiry in the past (or past the longest lifetime that applies) is a
# 400 `invalid_expiry`: no schema can say "after now".
[[operations]]
include-name = "PATCH /v1/keys/{{key_id}}"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "412", "429", "5xx"]
"#
        ),
    )
    .unwrap();
    let out = Command::new("schemathesis")
        .arg("--config-file")
        .arg(&config)
        .args([
            "run",
            &format!("http://{addr}/openapi.json"),
            "--checks",
            "all",
            "--exclude-checks",
            "ignored_auth",
            "--phases",
            "examples,fuzzing,stateful",
            "--max-examples",
            "30",
            "--workers",
            "2",
            "--seed",
            "20261202",
            "--max-time",
            "80",
            "-H",
            &format!("Authorization: Bearer {TOKEN}"),
        ])
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Auth is enforced on every management operation, throttled or not
    // (after the run: wrong tokens hold up this address).
    let doc = Req::new(addr, "GET", "/openapi.json").send().expect(200);
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if op["security"][0].get("admin_token").is_none() {
                continue;
            }
            operations += 1;
            let concrete = path
                .replace("{account_id}", &master)
                .replace("{key_id}", &key);
            let method = method.to_uppercase();
            let none = Req::new(addr, &method, &concrete).send();
            assert_eq!(none.status, 401, "{method} {path} without a token");
            let wrong = Req::new(addr, &method, &concrete)
                .header(
                    "Authorization",
                    "Bearer not-the-admin-token-0123456789abcdef",
                )
                .send();
            assert!(
                [401, 429].contains(&wrong.status),
                "{method} {path} with a wrong token: {}",
                wrong.status
            );
        }
    }
    assert!(operations >= 15, "{operations}");

    server.stop();
    assert!(
        !server.log().contains("panicked"),
        "the server panicked:\n{}",
        server.log()
    );
}

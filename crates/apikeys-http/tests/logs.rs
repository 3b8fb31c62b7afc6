//! No secret ever reaches a log line, even at the most verbose level: the
//! whole flow runs with a TRACE subscriber capturing everything.

// Test code: failing loudly is its job.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Server, basic, s};
use serde_json::json;

#[test]
fn no_secret_in_any_log_line() {
    let captured = apikeys_http::testing::CapturedLog::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .init();

    let server = Server::start();
    let opened = server
        .post(
            "/v1/accounts",
            json!({"kind": "master", "created_at": "2021-01-01T00:00:00Z"}),
        )
        .admin()
        .send()
        .expect(201);
    let mut secrets: Vec<String> = opened["issued"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| s(k, "secret"))
        .collect();
    let account = s(&opened["account"], "id");
    let rest = server
        .post(
            &format!("/v1/accounts/{account}/keys"),
            json!({"channel": "rest"}),
        )
        .admin()
        .send()
        .expect(201);
    let (key_id, identifier) = (s(&rest, "id"), s(&rest, "identifier"));
    secrets.push(s(&rest, "secret"));
    let chosen = "my-chosen-secret-42";
    secrets.push(chosen.into());
    server
        .post(
            &format!("/v1/keys/{key_id}/credentials"),
            json!({"secret": chosen}),
        )
        .admin()
        .send()
        .expect(200);
    // Successes and refusals on every style, including a secret in the
    // query string and one mistyped into the identifier field.
    server
        .post(
            "/v1/authenticate",
            json!({"channel": "rest", "identifier": identifier, "secret": chosen}),
        )
        .send()
        .expect(200);
    let wrong = "wrong-secret-for-logs";
    secrets.push(wrong.into());
    server
        .post(
            "/v1/authenticate",
            json!({"channel": "rest", "identifier": identifier, "secret": wrong}),
        )
        .send()
        .expect(401);
    server
        .post(
            "/v1/authenticate",
            json!({"channel": "rest", "identifier": chosen, "secret": chosen}),
        )
        .send()
        .expect(401);
    server
        .get("/v1/rest/whoami")
        .header("Authorization", &basic(&identifier, chosen))
        .send()
        .expect(200);
    let http = &opened["issued"][1];
    server
        .get(&format!(
            "/http/whoami?username={}&password={}",
            s(http, "identifier"),
            s(http, "secret")
        ))
        .send()
        .expect(200);
    server
        .put(
            &format!("/v1/keys/{key_id}/whitelist"),
            json!({"entries": ["192.0.2.1"]}),
        )
        .admin()
        .send()
        .expect(200);
    server
        .post(
            "/v1/authenticate",
            json!({"channel": "rest", "identifier": identifier, "secret": chosen}),
        )
        .send()
        .expect(403);
    server
        .get("/v1/accounts/acc_x")
        .header("Authorization", &format!("Bearer {}", common::TOKEN))
        .send()
        .expect(400);
    server
        .get("/healthz")
        .header("Authorization", "Bearer not-the-token")
        .send()
        .expect(200);
    drop(server);

    let logs = captured.text();
    assert!(
        logs.contains("authentication refused"),
        "the test captured nothing useful:\n{logs}"
    );
    assert!(
        logs.contains("/http/whoami"),
        "requests are logged:\n{logs}"
    );
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "a secret is in the logs:\n{logs}"
        );
    }
    assert!(
        !logs.contains(common::TOKEN),
        "the admin token is in the logs"
    );
}

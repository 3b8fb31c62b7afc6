//! A flood of refusals writes a few log lines a second, not one a refusal:
//! the lines say how many like them were left out, and the service's
//! counters keep the exact numbers. Wrong admin tokens are logged with the
//! client's address, rate-limited the same way.

// Test code: failing loudly is its job.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use apikeys_http::{Config, TrustedProxies};
use common::{Server, s};

const NEW: &str = "2025-01-01T00:00:00Z";
use serde_json::json;

#[test]
fn a_flood_of_refusals_writes_a_few_lines_a_second() {
    let captured = apikeys_http::testing::CapturedLog::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .init();
    // Each request from its own address, through a trusted proxy, so that
    // the throttle lets every one be checked.
    let proxies = TrustedProxies {
        networks: vec!["127.0.0.0/8".parse().unwrap()],
        ..Default::default()
    };
    let server = Server::start_with(
        Config::default().trusted_proxies(proxies),
        apikeys::Policy::fast_for_tests(),
    );
    let account = s(&open_master(&server)["account"], "id");
    let key = server
        .post(
            &format!("/v1/accounts/{account}/keys"),
            json!({"channel": "rest"}),
        )
        .admin()
        .send()
        .expect(201);
    let identifier = s(&key, "identifier");
    let started = std::time::Instant::now();
    let floods = 2000u32;
    for n in 0..floods {
        let client = format!("10.{}.{}.{}", n >> 16 & 255, n >> 8 & 255, n & 255);
        let forged = apikeys::credentials::generate_secret(
            &mut <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(u64::from(n)),
        );
        server
            .post(
                "/v1/authenticate",
                json!({"channel": "rest", "identifier": identifier, "secret": forged.expose_secret()}),
            )
            .header("X-Forwarded-For", &client)
            .send()
            .expect_error(401, "invalid_credentials");
        if n % 10 == 0 {
            server
                .get(&format!("/v1/accounts/{account}"))
                .header("X-Forwarded-For", &format!("203.0.113.{}", n / 10 % 250))
                .header(
                    "Authorization",
                    "Bearer a-wrong-admin-token-of-enough-length",
                )
                .send()
                .expect_error(401, "unauthorized");
        }
    }
    let seconds = started.elapsed().as_secs() + 1;
    let logs = captured.text();
    let refusal_lines = logs.matches("authentication refused").count() as u64;
    let admin_lines = logs.matches("wrong admin token").count() as u64;
    eprintln!(
        "{floods} refusals in {seconds} s: {refusal_lines} lines; 200 wrong tokens: {admin_lines} lines"
    );
    assert!(refusal_lines >= 1, "refusals are still logged");
    assert!(
        refusal_lines <= 10 * (seconds + 1),
        "{refusal_lines} refusal lines in {seconds} s: the log is not rate-limited"
    );
    assert!(
        admin_lines >= 1 && admin_lines <= 5 * (seconds + 1),
        "{admin_lines}"
    );
    assert!(
        logs.contains("similar_lines_left_out"),
        "lines say how many like them were left out"
    );
    // A wrong admin token's line names the client.
    let admin_line = logs
        .lines()
        .find(|l| l.contains("wrong admin token"))
        .unwrap();
    assert!(admin_line.contains("client=203.0.113."), "{admin_line}");
    // The counters are exact.
    assert_eq!(server.keys.check_stats().refused, u64::from(floods));
}

fn open_master(server: &Server) -> serde_json::Value {
    server
        .post("/v1/accounts", json!({"kind": "master", "created_at": NEW}))
        .admin()
        .send()
        .expect(201)
}

//! The real binary on a SQLite file: it listens, answers, prints a generated
//! admin token on the first start only, and exits cleanly on SIGTERM.

// Test code: failing loudly is its job.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Req;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

struct Running {
    child: Child,
    addr: SocketAddr,
    /// Lines printed before the "listening" line.
    printed: Vec<String>,
    /// The rest of stdout, read on a thread.
    _rest: std::thread::JoinHandle<()>,
}

fn start(db: &Path, admin_token: Option<&str>) -> Running {
    let mut command = Command::new(env!("CARGO_BIN_EXE_apikeys-server"));
    command
        .args(["--listen", "127.0.0.1:0", "--db"])
        .arg(db)
        .env_remove("APIKEYS_LISTEN")
        .env_remove("APIKEYS_DB")
        .env_remove("APIKEYS_TRUST_PROXY")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    match admin_token {
        Some(t) => command.env("APIKEYS_ADMIN_TOKEN", t),
        None => command.env_remove("APIKEYS_ADMIN_TOKEN"),
    };
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let rest = std::thread::spawn(move || forward_lines(stdout, tx));
    let mut printed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server did not print where it listens: {printed:?}");
        };
        if let Some(addr) = line.strip_prefix("apikeys-server listening on http://") {
            return Running {
                child,
                addr: addr.trim().parse().unwrap(),
                printed,
                _rest: rest,
            };
        }
        printed.push(line);
    }
}

impl Drop for Running {
    /// A test that fails half-way leaves no server behind.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn forward_lines(stdout: ChildStdout, tx: mpsc::Sender<String>) {
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { return };
        let _ = tx.send(line);
    }
}

fn stop(running: &mut Running) {
    let status = Command::new("kill")
        .args(["-TERM", &running.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = running.child.try_wait().unwrap() {
            assert!(status.success(), "exit after SIGTERM: {status}");
            return;
        }
        if Instant::now() > deadline {
            let _ = running.child.kill();
            panic!("the server did not stop within 20 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn binary_serves_sqlite_prints_the_token_once_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("apikeys.sqlite3");

    // First start: a token is generated and printed once.
    let mut first = start(&db, None);
    let token_line = first
        .printed
        .iter()
        .find(|l| l.starts_with("Generated admin token"))
        .expect("the first start prints the generated token");
    let token = token_line.rsplit(' ').next().unwrap().to_string();
    assert!(token.starts_with("akey"), "{token_line}");
    Req::new(first.addr, "GET", "/healthz").send().expect(200);
    let opened = Req::new(first.addr, "POST", "/v1/accounts")
        .header("Authorization", &format!("Bearer {token}"))
        .json(&json!({"kind": "master", "created_at": "2020-01-01T00:00:00Z"}))
        .send()
        .expect(201);
    assert_eq!(opened["issued"].as_array().unwrap().len(), 4);
    let account = opened["account"]["id"].as_str().unwrap().to_string();
    let ftp = &opened["issued"][0];
    Req::new(first.addr, "GET", &format!("/v1/accounts/{account}"))
        .header("Authorization", "Bearer wrong-token-wrong-token")
        .send()
        .expect_error(401, "unauthorized");
    stop(&mut first);

    // The file holds the digest, never the token.
    let bytes = std::fs::read(&db).unwrap();
    assert!(!bytes.windows(token.len()).any(|w| w == token.as_bytes()));

    // Second start on the same file: nothing printed, same token, same data.
    let mut second = start(&db, None);
    assert!(
        second.printed.iter().all(|l| !l.contains("admin token")),
        "printed again: {:?}",
        second.printed
    );
    let got = Req::new(second.addr, "GET", &format!("/v1/accounts/{account}"))
        .header("Authorization", &format!("Bearer {token}"))
        .send()
        .expect(200);
    assert_eq!(got["id"], account.as_str());
    Req::new(second.addr, "POST", "/v1/authenticate")
        .json(&json!({"channel": "ftp", "identifier": ftp["identifier"], "secret": ftp["secret"]}))
        .send()
        .expect(200);
    stop(&mut second);

    // With APIKEYS_ADMIN_TOKEN: that token, nothing printed.
    let mut third = start(&db, Some("operator-chosen-token-1"));
    assert!(third.printed.is_empty(), "{:?}", third.printed);
    Req::new(third.addr, "GET", &format!("/v1/accounts/{account}"))
        .header("Authorization", "Bearer operator-chosen-token-1")
        .send()
        .expect(200);
    Req::new(third.addr, "GET", &format!("/v1/accounts/{account}"))
        .header("Authorization", &format!("Bearer {token}"))
        .send()
        .expect_error(401, "unauthorized");
    stop(&mut third);
}

#[test]
fn binary_refuses_a_short_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_apikeys-server"))
        .args(["--listen", "127.0.0.1:0", "--db"])
        .arg(dir.path().join("db.sqlite3"))
        .env("APIKEYS_ADMIN_TOKEN", "short")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("16 to 256"), "{stderr}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("listening"));
}

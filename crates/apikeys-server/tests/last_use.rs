//! Last use in the real binary: written behind once per interval, flushed
//! at a clean shutdown, and a SIGKILL under authentication load loses at
//! most one interval of it and nothing else.

// Test code: failing loudly is its job.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use apikeys::Store;
use apikeys_sqlite::SqliteStore;
use common::binary::{Running, start};
use common::{Req, TOKEN};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

struct Key {
    channel: String,
    identifier: String,
    secret: String,
}

fn admin(r: Req) -> Req {
    r.header("Authorization", &format!("Bearer {TOKEN}"))
}

/// A legacy master (four default keys) and new masters holding `rest` REST
/// keys, through the API; their credentials.
fn populate(server: &Running, rest: usize) -> Vec<Key> {
    let key = |v: &Value| Key {
        channel: v["channel"].as_str().unwrap().to_owned(),
        identifier: v["identifier"].as_str().unwrap().to_owned(),
        secret: v["secret"].as_str().unwrap().to_owned(),
    };
    let legacy = admin(Req::new(server.addr, "POST", "/v1/accounts"))
        .json(&json!({"kind": "master", "created_at": "2020-01-01T00:00:00Z"}))
        .send()
        .expect(201);
    let mut keys: Vec<Key> = legacy["issued"]
        .as_array()
        .unwrap()
        .iter()
        .map(key)
        .collect();
    let mut id = String::new();
    for i in 0..rest {
        // A master holds at most 10 REST keys: a new one every ten.
        if i % 10 == 0 {
            let fresh = admin(Req::new(server.addr, "POST", "/v1/accounts"))
                .json(&json!({"kind": "master"}))
                .send()
                .expect(201);
            id = fresh["account"]["id"].as_str().unwrap().to_owned();
        }
        let k = admin(Req::new(
            server.addr,
            "POST",
            &format!("/v1/accounts/{id}/keys"),
        ))
        .json(&json!({"channel": "rest"}))
        .send()
        .expect(201);
        keys.push(key(&k));
    }
    keys
}

fn authenticate(server: &Running, k: &Key) {
    Req::new(server.addr, "POST", "/v1/authenticate")
        .json(&json!({"channel": k.channel, "identifier": k.identifier, "secret": k.secret}))
        .send()
        .expect(200);
}

fn last_used(store: &SqliteStore, k: &Key) -> Option<OffsetDateTime> {
    store
        .key_by_identifier(&k.identifier)
        .unwrap()
        .expect("the key is still there")
        .usage
        .last_used_at
}

/// A clean stop (SIGTERM) writes the uses noted since the last flush, even
/// with an interval of an hour.
#[test]
fn a_clean_shutdown_flushes_last_use() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("keys.sqlite3");
    let db_arg = db.to_str().unwrap();
    let mut server = start(
        &["--db", db_arg, "--last-use-interval", "3600"],
        Some(TOKEN),
    );
    let keys = populate(&server, 1);
    authenticate(&server, &keys[0]);
    let before = wall_clock();
    authenticate(&server, &keys[4]);
    server.stop();
    assert!(
        server.log().contains("last use flushed"),
        "{}",
        server.log()
    );
    let store = SqliteStore::open(&db).unwrap();
    let at = last_used(&store, &keys[4]).expect("flushed at shutdown");
    assert!(at >= before - time::Duration::seconds(1));
    assert!(last_used(&store, &keys[0]).is_some());
    assert_eq!(
        last_used(&store, &keys[1]),
        None,
        "an unused key has no last use"
    );
    let k = store
        .key_by_identifier(&keys[4].identifier)
        .unwrap()
        .unwrap();
    assert_eq!(
        k.usage.last_used_address,
        Some("127.0.0.1".parse().unwrap())
    );
}

/// SIGKILL in the middle of an authentication load, with a 1 s interval:
/// every use older than one interval (and a margin for a loaded machine) is
/// on disk, and every account, key and credential is intact.
#[test]
fn a_crash_under_load_loses_at_most_one_interval_of_last_use() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("keys.sqlite3");
    let db_arg = db.to_str().unwrap();
    let args = ["--db", db_arg, "--last-use-interval", "1"];
    let mut server = start(&args, Some(TOKEN));
    let keys = Arc::new(populate(&server, 16));
    // Phase one: half the keys used once, then two intervals pass.
    for k in &keys[..10] {
        authenticate(&server, k);
    }
    std::thread::sleep(Duration::from_millis(2500));
    // Phase two: the other half under load from four threads, then SIGKILL.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let addr = server.addr;
    let load: Vec<_> = (0..4)
        .map(|t| {
            let (keys, stop, done) = (keys.clone(), stop.clone(), done.clone());
            std::thread::spawn(move || {
                let mut i = t;
                while !stop.load(Ordering::SeqCst) {
                    let k = &keys[10 + i % 10];
                    let sent = Req::new(addr, "POST", "/v1/authenticate")
                        .json(&json!({"channel": k.channel, "identifier": k.identifier, "secret": k.secret}));
                    // Once the server is killed, requests fail: that ends the load.
                    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sent.send())) {
                        Ok(r) if r.status == 200 => {
                            done.fetch_add(1, Ordering::SeqCst);
                        }
                        _ => return,
                    }
                    i += 4;
                }
            })
        })
        .collect();
    let load_started = Instant::now();
    while load_started.elapsed() < Duration::from_millis(3500) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let killed_at = wall_clock();
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    stop.store(true, Ordering::SeqCst);
    for t in load {
        t.join().unwrap();
    }
    assert!(
        done.load(Ordering::SeqCst) > 100,
        "the load ran: {}",
        done.load(Ordering::SeqCst)
    );
    // What is on disk.
    let store = SqliteStore::open(&db).unwrap();
    for k in &keys[..10] {
        assert!(
            last_used(&store, k).is_some(),
            "a use two intervals before the crash is kept"
        );
    }
    // A use is lost only if it came after the last flush: at most one
    // interval before the kill (and a second of margin for a loaded machine).
    let oldest_allowed = killed_at - time::Duration::seconds(2);
    for k in &keys[10..] {
        let at = last_used(&store, k).expect("a key in use for 3.5 s has a flushed use");
        assert!(
            at >= oldest_allowed,
            "lost more than an interval: {at} vs kill at {killed_at}"
        );
        assert!(at <= killed_at);
    }
    drop(store);
    // Nothing else was lost: the server starts again on the file, every
    // credential authenticates, and the accounts are all there.
    let mut again = start(&args, Some(TOKEN));
    for k in keys.iter() {
        authenticate(&again, k);
    }
    let page = admin(Req::new(again.addr, "GET", "/v1/accounts"))
        .send()
        .expect(200);
    assert_eq!(page["accounts"].as_array().unwrap().len(), 3);
    again.stop();
}

/// Now, by the clock the server itself reads (the system's).
fn wall_clock() -> OffsetDateTime {
    apikeys::Clock::now(&apikeys::SystemClock)
}

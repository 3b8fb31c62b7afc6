//! The argon2 flood check (not part of the test suite): how long a
//! legitimate client waits while one source floods the server with wrong
//! chosen secrets over 64 connections.
//!
//! `cargo run --release --example flood -- URL ADMIN_TOKEN` (see
//! `benches/flood.sh`, which starts the server and runs this).
//!
//! It measures, from 127.0.0.2 (the legitimate client), without and then
//! with the flood running from 127.0.0.3:
//! - a first check of a chosen secret (a new key each time, so argon2 runs);
//! - a check of a generated secret;
//! - `GET /healthz`;
//!
//! and prints p50/p99 of each, and what the flood's requests were answered.
//! The goal: a legitimate first chosen-secret check has p99 under 250 ms
//! during the flood.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::error::Error;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpSocket;
use tokio::sync::Mutex;

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// A keep-alive connection from `source` to `server`.
async fn connect(server: SocketAddr, source: &str) -> Result<Sender, Box<dyn Error>> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(format!("{source}:0").parse()?)?;
    let stream = socket.connect(server).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Sends one request and reads the whole answer: (status, body).
async fn send(
    sender: &mut Sender,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Result<(u16, Value), Box<dyn Error>> {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "flood");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let body = match body {
        Some(v) => {
            request = request.header("content-type", "application/json");
            Full::new(Bytes::from(serde_json::to_vec(&v)?))
        }
        None => Full::new(Bytes::new()),
    };
    sender.ready().await?;
    let response = sender.send_request(request.body(body)?).await?;
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await?.to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok((status, value))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct Keys {
    /// (identifier, secret) of chosen-secret keys, each checked once.
    chosen: Vec<(String, String)>,
    generated: (String, String),
    flood_target: String,
}

/// Opens accounts and keys: `n` chosen-secret keys for first checks, one
/// generated-secret key, one key for the flood to guess at.
async fn set_up(admin: &mut Sender, token: &str, n: usize) -> Result<Keys, Box<dyn Error>> {
    let mut chosen = Vec::new();
    for i in 0..n {
        let (_, opened) = send(
            admin,
            "POST",
            "/v1/accounts",
            Some(token),
            Some(json!({"kind": "master"})),
        )
        .await?;
        let account = opened["account"]["id"]
            .as_str()
            .ok_or("no account id")?
            .to_owned();
        let identifier = format!("legit-client-{i}");
        let secret = format!("legit-secret-{i:06}");
        let (status, _) = send(
            admin,
            "POST",
            &format!("/v1/accounts/{account}/keys"),
            Some(token),
            Some(json!({"channel": "http", "identifier": identifier, "secret": secret})),
        )
        .await?;
        if status != 201 {
            return Err(format!("creating a chosen key: {status}").into());
        }
        chosen.push((identifier, secret));
    }
    let (_, opened) = send(
        admin,
        "POST",
        "/v1/accounts",
        Some(token),
        Some(json!({"kind": "master"})),
    )
    .await?;
    let account = opened["account"]["id"]
        .as_str()
        .ok_or("no account id")?
        .to_owned();
    let (_, generated) = send(
        admin,
        "POST",
        &format!("/v1/accounts/{account}/keys"),
        Some(token),
        Some(json!({"channel": "rest"})),
    )
    .await?;
    let (_, target) = send(
        admin,
        "POST",
        &format!("/v1/accounts/{account}/keys"),
        Some(token),
        Some(
            json!({"channel": "ftp", "identifier": "flood-target", "secret": "the-real-secret-1"}),
        ),
    )
    .await?;
    Ok(Keys {
        chosen,
        generated: (
            generated["identifier"]
                .as_str()
                .ok_or("no identifier")?
                .to_owned(),
            generated["secret"].as_str().ok_or("no secret")?.to_owned(),
        ),
        flood_target: target["identifier"]
            .as_str()
            .ok_or("no identifier")?
            .to_owned(),
    })
}

/// p50 and p99 of each kind of legitimate request.
async fn measure(
    server: SocketAddr,
    chosen: &[(String, String)],
    generated: &(String, String),
    rounds: usize,
) -> Result<BTreeMap<&'static str, (Duration, Duration)>, Box<dyn Error>> {
    let mut client = connect(server, "127.0.0.2").await?;
    let mut first = Vec::new();
    let mut gen_times = Vec::new();
    let mut health = Vec::new();
    for (identifier, secret) in chosen {
        let started = Instant::now();
        let (status, _) = send(
            &mut client,
            "POST",
            "/v1/authenticate",
            None,
            Some(json!({"channel": "http", "identifier": identifier, "secret": secret})),
        )
        .await?;
        first.push(started.elapsed());
        if status != 200 {
            return Err(format!("a legitimate first check answered {status}").into());
        }
    }
    for _ in 0..rounds {
        let started = Instant::now();
        let (status, _) = send(
            &mut client,
            "POST",
            "/v1/authenticate",
            None,
            Some(json!({"channel": "rest", "identifier": generated.0, "secret": generated.1})),
        )
        .await?;
        gen_times.push(started.elapsed());
        if status != 200 {
            return Err(format!("a generated check answered {status}").into());
        }
        let started = Instant::now();
        send(&mut client, "GET", "/healthz", None, None).await?;
        health.push(started.elapsed());
    }
    let mut out = BTreeMap::new();
    for (name, mut times) in [
        ("1 first chosen-secret check", first),
        ("2 generated-secret check", gen_times),
        ("3 GET /healthz", health),
    ] {
        times.sort();
        out.insert(name, (percentile(&times, 0.5), percentile(&times, 0.99)));
    }
    Ok(out)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: flood URL ADMIN_TOKEN";
    let url = args.next().ok_or(usage)?;
    let token = args.next().ok_or(usage)?;
    let server: SocketAddr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()?;
    let per_phase = 100;
    let mut admin = connect(server, "127.0.0.1").await?;
    let keys = set_up(&mut admin, &token, 2 * per_phase).await?;
    let (quiet_keys, flood_keys) = keys.chosen.split_at(per_phase);

    let quiet = measure(server, quiet_keys, &keys.generated, per_phase).await?;

    // The flood: 64 connections from one source, wrong chosen secrets for
    // one identifier, as fast as the server answers.
    let stop = Arc::new(AtomicBool::new(false));
    let answers: Arc<Mutex<BTreeMap<u16, u64>>> = Arc::default();
    let mut flooders = Vec::new();
    for c in 0..64 {
        let mut sender = connect(server, "127.0.0.3").await?;
        let (stop, answers, target) = (stop.clone(), answers.clone(), keys.flood_target.clone());
        flooders.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let body = json!({"channel": "ftp", "identifier": target, "secret": format!("guess-{c}-{n:08}")});
                let status = match send(&mut sender, "POST", "/v1/authenticate", None, Some(body)).await {
                    Ok((status, _)) => status,
                    Err(_) => 0,
                };
                *answers.lock().await.entry(status).or_default() += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let flooded = measure(server, flood_keys, &keys.generated, per_phase).await?;
    stop.store(true, Ordering::Relaxed);
    for f in flooders {
        let _ = f.await;
    }

    println!("| request (from 127.0.0.2) | p50 quiet | p99 quiet | p50 flood | p99 flood |");
    println!("|---|---|---|---|---|");
    for (name, (p50, p99)) in &quiet {
        let (f50, f99) = flooded[name];
        println!(
            "| {} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms |",
            &name[2..],
            p50.as_secs_f64() * 1e3,
            p99.as_secs_f64() * 1e3,
            f50.as_secs_f64() * 1e3,
            f99.as_secs_f64() * 1e3
        );
    }
    let answers = answers.lock().await;
    let total: u64 = answers.values().sum();
    println!("\nthe flood (64 connections from 127.0.0.3): {total} requests answered {answers:?}");
    let (_, p99) = flooded["1 first chosen-secret check"];
    if p99 > Duration::from_millis(250) {
        println!("GOAL MISSED: p99 of a first chosen check under the flood is over 250 ms");
        std::process::exit(1);
    }
    Ok(())
}

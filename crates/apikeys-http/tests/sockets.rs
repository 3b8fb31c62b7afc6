//! The serving loop over real sockets (the loop and the listening socket are
//! what is under test): slow and stuck clients (headers that never end,
//! idle keep-alive connections, more connections than allowed, a shutdown
//! with stuck clients still connected), framing attacks on the wire, and
//! the same answers on an IPv4 and a dual-stack listener.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use apikeys_http::server::{ServeOptions, serve};
use axum::Router;
use axum::routing::get;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Running {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: std::sync::mpsc::Receiver<Instant>,
    _thread: std::thread::JoinHandle<()>,
}

fn start(options: ServeOptions) -> Running {
    start_app(
        "127.0.0.1:0",
        options,
        Router::new().route("/healthz", get(|| async { "ok" })),
    )
}

/// The API's own router over `keys`, served by the loop on `bind`.
fn start_api(bind: &'static str, keys: Arc<apikeys::ApiKeys>) -> Running {
    let app = apikeys_http::router(
        keys,
        apikeys_http::AdminToken::from_chosen("an-admin-token-for-these-tests-only").unwrap(),
        apikeys_http::Config::default().body_limit(1024),
    );
    start_app(bind, ServeOptions::default(), app)
}

fn start_app(bind: &'static str, options: ServeOptions, app: Router) -> Running {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind(bind).await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            serve(listener, app, options, async {
                let _ = stop_rx.await;
            })
            .await
            .unwrap();
            let _ = done_tx.send(Instant::now());
        });
    });
    Running {
        addr: addr_rx.recv().unwrap(),
        stop: Some(stop_tx),
        done: done_rx,
        _thread: thread,
    }
}

/// How long until the server closes `stream` (reads until EOF or reset),
/// or `None` if it is still open after `limit`.
fn closed_after(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        match stream.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

fn request(stream: &mut TcpStream) -> String {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = stream.read(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn a_client_stuck_mid_headers_is_closed_at_the_header_timeout() {
    let server = start(
        ServeOptions::default()
            .header_read_timeout(Duration::from_millis(300))
            .idle_timeout(Duration::from_secs(30)),
    );
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: te")
        .unwrap();
    let closed = closed_after(&mut stream, Duration::from_secs(5))
        .expect("still open 5 s after a 300 ms header timeout");
    eprintln!("stuck mid-headers: closed after {closed:?}");
    assert!(closed >= Duration::from_millis(250), "{closed:?}");
    // A client that sends nothing at all likewise.
    let mut silent = TcpStream::connect(server.addr).unwrap();
    let closed = closed_after(&mut silent, Duration::from_secs(5)).expect("silent client kept");
    assert!(closed < Duration::from_secs(2), "{closed:?}");
}

#[test]
fn an_idle_keep_alive_connection_is_closed() {
    let server = start(
        ServeOptions::default()
            .header_read_timeout(Duration::from_secs(20))
            .idle_timeout(Duration::from_millis(400)),
    );
    let mut stream = TcpStream::connect(server.addr).unwrap();
    assert!(request(&mut stream).starts_with("HTTP/1.1 200"));
    // Still usable at once: keep-alive.
    assert!(request(&mut stream).starts_with("HTTP/1.1 200"));
    let closed = closed_after(&mut stream, Duration::from_secs(10))
        .expect("idle connection still open 10 s after a 400 ms idle timeout");
    eprintln!("idle keep-alive: closed after {closed:?}");
    assert!(closed >= Duration::from_millis(350), "{closed:?}");
    assert!(closed < Duration::from_secs(3), "{closed:?}");
}

#[test]
fn connections_past_the_cap_wait_their_turn() {
    let server = start(
        ServeOptions::default()
            .max_connections(2)
            .header_read_timeout(Duration::from_millis(600)),
    );
    // Two stuck clients take both slots.
    let stuck: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = TcpStream::connect(server.addr).unwrap();
            s.write_all(b"GET /").unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let start = Instant::now();
    let mut third = TcpStream::connect(server.addr).unwrap();
    let answer = request(&mut third);
    let waited = start.elapsed();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    eprintln!("third connection served after {waited:?}");
    assert!(
        waited >= Duration::from_millis(300),
        "served at once ({waited:?}): the cap of 2 did not hold"
    );
    drop(stuck);
}

/// Clients stuck in the middle of their bodies are requests in flight: the
/// server waits for them for the grace, then closes them and stops.
#[test]
fn shutdown_with_stuck_clients_ends_within_the_grace() {
    let app = Router::new().route(
        "/echo",
        axum::routing::post(|body: String| async move { body }),
    );
    let mut server = start_app(
        "127.0.0.1:0",
        ServeOptions::default()
            .header_read_timeout(Duration::from_secs(60))
            .idle_timeout(Duration::from_secs(60))
            .shutdown_grace(Duration::from_millis(500)),
        app,
    );
    let stuck: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut s = TcpStream::connect(server.addr).unwrap();
            s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
                .unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let asked = Instant::now();
    server.stop.take().unwrap().send(()).unwrap();
    let done = server
        .done
        .recv_timeout(Duration::from_secs(10))
        .expect("the server did not stop within 10 s");
    let took = done - asked;
    eprintln!("shutdown with 200 clients stuck mid-body: {took:?}");
    assert!(took >= Duration::from_millis(450), "did not wait: {took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    drop(stuck);
}

/// At shutdown, connections with nothing in flight (stuck in their
/// headers, or idle) close at once; a request in flight keeps its
/// connection, and the server, until it is answered, within the grace.
#[test]
fn shutdown_closes_idle_connections_at_once_and_finishes_requests_in_flight() {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(600)).await;
                "slow but done"
            }),
        );
    let mut server = start_app(
        "127.0.0.1:0",
        ServeOptions::default()
            .header_read_timeout(Duration::from_secs(60))
            .idle_timeout(Duration::from_secs(60))
            .shutdown_grace(Duration::from_secs(5)),
        app,
    );
    let mut stuck: Vec<TcpStream> = (0..100)
        .map(|_| {
            let mut s = TcpStream::connect(server.addr).unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            s
        })
        .collect();
    let mut idle = TcpStream::connect(server.addr).unwrap();
    assert!(request(&mut idle).starts_with("HTTP/1.1 200"));
    let mut slow = TcpStream::connect(server.addr).unwrap();
    slow.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let asked = Instant::now();
    server.stop.take().unwrap().send(()).unwrap();
    for s in stuck.iter_mut().chain([&mut idle]) {
        let closed = closed_after(s, Duration::from_secs(3)).expect("still open");
        assert!(
            closed < Duration::from_millis(300),
            "closed after {closed:?}"
        );
    }
    let closed_idle = asked.elapsed();
    let mut answer = String::new();
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = slow.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("slow but done"), "{answer}");
    let done = server
        .done
        .recv_timeout(Duration::from_secs(10))
        .expect("the server did not stop");
    let took = done - asked;
    eprintln!(
        "101 idle connections closed within {closed_idle:?}; the server stopped after {took:?}"
    );
    assert!(
        took >= Duration::from_millis(350),
        "did not wait for /slow: {took:?}"
    );
    assert!(took < Duration::from_secs(2), "{took:?}");
}

fn raw(addr: SocketAddr, request: &[u8]) -> (String, Duration) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(request).unwrap();
    let started = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

/// Over a real socket: a body framed twice is a 400, and a declared body
/// over the limit is a 413 sent at once, without waiting for the body; both
/// close the connection.
#[test]
fn framing_attacks_are_refused_on_the_wire() {
    let f = apikeys::testing::Fixture::new(Arc::new(apikeys::MemoryStore::new()), 1);
    let server = start_api("127.0.0.1:0", Arc::new(f.keys));
    let (answer, _) = raw(
        server.addr,
        b"POST /v1/authenticate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let (answer, took) = raw(
        server.addr,
        b"POST /v1/authenticate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload_too_large"), "{answer}");
    assert!(took < Duration::from_secs(2), "answered after {took:?}");
}

/// The status of an authentication over the wire.
fn authenticate_status(addr: SocketAddr, identifier: &str, secret: &str) -> String {
    let body = format!(r#"{{"channel":"http","identifier":"{identifier}","secret":"{secret}"}}"#);
    let request = format!(
        "POST /v1/authenticate HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (answer, _) = raw(addr, request.as_bytes());
    answer.lines().next().unwrap_or_default().to_owned()
}

/// An IPv4 client gets the same answer from an IPv4 listener and from a
/// dual-stack `[::]` one (where it arrives as `::ffff:127.0.0.1`): an IPv4
/// entry admits it on both, an IPv6 range such as `::/0` on neither.
#[test]
fn the_same_answer_on_an_ipv4_and_a_dual_stack_listener() {
    use apikeys::{Actor, Channel, NewKey};
    let f = apikeys::testing::Fixture::new(Arc::new(apikeys::MemoryStore::new()), 2);
    // One HTTP key per account: an account per key.
    let key = |entries: &[&str]| {
        let account = f.master();
        let issued = f
            .keys
            .create_key(
                Actor::Operator,
                account.id,
                NewKey::generated(Channel::Http),
            )
            .unwrap();
        let nets = entries
            .iter()
            .map(|e| apikeys::whitelist::parse_entry(e).unwrap())
            .collect();
        f.keys
            .set_whitelist(Actor::Operator, issued.key.id, nets)
            .unwrap();
        (issued.key.identifier, issued.secret.unwrap())
    };
    let (v4_id, v4_secret) = key(&["127.0.0.1"]);
    let (v6_id, v6_secret) = key(&["::/0"]);
    let keys = Arc::new(f.keys);
    let v4 = start_api("127.0.0.1:0", keys.clone());
    let dual = start_api("[::]:0", keys);
    let dual_via_v4: SocketAddr = format!("127.0.0.1:{}", dual.addr.port()).parse().unwrap();
    for addr in [v4.addr, dual_via_v4] {
        assert!(
            authenticate_status(addr, &v4_id, v4_secret.expose_secret())
                .starts_with("HTTP/1.1 200"),
            "{addr}: the IPv4 entry admits 127.0.0.1"
        );
        assert!(
            authenticate_status(addr, &v6_id, v6_secret.expose_secret())
                .starts_with("HTTP/1.1 403"),
            "{addr}: ::/0 must not admit an IPv4 client"
        );
    }
}

/// Over a real socket, the time a refusal takes tells nothing about the
/// identifier or its key: a chosen-shape wrong secret costs one argon2 run
/// whether the identifier is unknown or names a generated-secret key, and a
/// forged generated secret costs none, whether the identifier is unknown or
/// names a chosen-secret key. Medians of many tries, compared with a wide
/// margin (argon2 here takes several milliseconds, the rest well under one).
#[test]
fn the_time_of_a_refusal_tells_nothing_about_the_identifier() {
    use apikeys::{Actor, Channel, NewKey, Secret};
    let policy = apikeys::Policy::fast_for_tests()
        .throttle(apikeys::ThrottlePolicy::off())
        .hashing(apikeys::HashingPolicy {
            m_kib: 8 * 1024,
            t: 2,
            p: 1,
        });
    let f =
        apikeys::testing::Fixture::with_policy(Arc::new(apikeys::MemoryStore::new()), 3, policy);
    let a = f.master();
    let generated = f
        .keys
        .create_key(Actor::Operator, a.id, NewKey::generated(Channel::Http))
        .unwrap()
        .key
        .identifier;
    let b = f.master();
    f.keys
        .create_key(
            Actor::Operator,
            b.id,
            NewKey::chosen(
                Channel::Http,
                "chosen-client",
                Secret::new("chosen-secret-1"),
            ),
        )
        .unwrap();
    let server = start_api("127.0.0.1:0", Arc::new(f.keys));
    let forged = apikeys::credentials::generate_secret(
        &mut <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(4),
    );
    let median = |identifier: &str, secret: &str| {
        let mut times: Vec<Duration> = (0..31)
            .map(|_| {
                let started = Instant::now();
                let status = authenticate_status(server.addr, identifier, secret);
                assert!(status.starts_with("HTTP/1.1 401"), "{status}");
                started.elapsed()
            })
            .collect();
        times.sort();
        times[times.len() / 2]
    };
    let chosen_shape = "wrong-chosen-secret-9";
    let unknown_slow = median("nobody-at-all", chosen_shape);
    let generated_slow = median(&generated, chosen_shape);
    let unknown_fast = median("nobody-at-all", forged.expose_secret());
    let chosen_fast = median("chosen-client", forged.expose_secret());
    eprintln!(
        "chosen-shape secret: unknown {unknown_slow:?}, generated key {generated_slow:?}; forged generated secret: unknown {unknown_fast:?}, chosen key {chosen_fast:?}"
    );
    let close = |a: Duration, b: Duration| a < b * 2 && b < a * 2;
    assert!(
        close(unknown_slow, generated_slow),
        "a chosen-shape refusal: {unknown_slow:?} for an unknown identifier, {generated_slow:?} for a generated key"
    );
    // The argon2 run shows: the fast class is well below the slow one.
    assert!(
        unknown_fast * 2 < unknown_slow,
        "{unknown_fast:?} vs {unknown_slow:?}"
    );
    assert!(
        chosen_fast * 2 < unknown_slow,
        "a forged generated secret against a chosen key took {chosen_fast:?}: argon2 ran"
    );
}

//! Slow and stuck clients against the serving loop, over real sockets (the
//! loop is what is under test): headers that never end, idle keep-alive
//! connections, more connections than allowed, and a shutdown with stuck
//! clients still connected.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use apikeys_http::server::{ServeOptions, serve};
use axum::Router;
use axum::routing::get;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

struct Running {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: std::sync::mpsc::Receiver<Instant>,
    _thread: std::thread::JoinHandle<()>,
}

fn start(options: ServeOptions) -> Running {
    start_app(options, || {
        Router::new().route("/healthz", get(|| async { "ok" }))
    })
}

/// The API's own router over a memory store, served by the loop.
fn start_api(options: ServeOptions) -> Running {
    start_app(options, || {
        let f = apikeys::testing::Fixture::new(std::sync::Arc::new(apikeys::MemoryStore::new()), 1);
        apikeys_http::router(
            std::sync::Arc::new(f.keys),
            apikeys_http::AdminToken::from_chosen("an-admin-token-for-these-tests-only").unwrap(),
            apikeys_http::Config::default().body_limit(1024),
        )
    })
}

fn start_app(options: ServeOptions, app: fn() -> Router) -> Running {
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
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            serve(listener, app(), options, async {
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

#[test]
fn shutdown_with_stuck_clients_ends_within_the_grace() {
    let mut server = start(
        ServeOptions::default()
            .header_read_timeout(Duration::from_secs(60))
            .idle_timeout(Duration::from_secs(60))
            .shutdown_grace(Duration::from_millis(500)),
    );
    let stuck: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut s = TcpStream::connect(server.addr).unwrap();
            s.write_all(b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Le")
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
    eprintln!("shutdown with 200 stuck clients: {took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    drop(stuck);
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
    let server = start_api(ServeOptions::default());
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

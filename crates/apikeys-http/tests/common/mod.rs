//! Test support: the router served on a real socket in a background
//! runtime, and a tiny blocking HTTP/1.1 client.
//!
//! The client is hand-written over `std::net::TcpStream` (one request per
//! connection, `Connection: close`) rather than a crate: the tests need
//! nothing more, and it adds no dependency to the build.

// Test support: failing loudly is its job.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(feature = "server")]
pub mod binary;

use apikeys::testing::Fixture;
use apikeys::{ApiKeys, DynStore, ManualClock, MemoryStore, Policy};
use apikeys_http::{AdminToken, Config};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

/// The admin token every test server uses.
pub const TOKEN: &str = "test-admin-token-0123456789";

/// A server running on its own runtime, stopped on drop.
pub struct Server {
    pub addr: SocketAddr,
    pub clock: Arc<ManualClock>,
    /// The service it serves. Also keeps the store alive until the runtime
    /// is gone: a PostgreSQL store's connections cannot close inside it.
    pub keys: Arc<ApiKeys>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// On 127.0.0.1, default config, fast hashing, in-memory store.
    pub fn start() -> Self {
        Self::start_with("127.0.0.1:0", Config::default(), Policy::fast_for_tests())
    }

    /// On `bind`, with this config and policy.
    pub fn start_with(bind: &str, config: Config, policy: Policy) -> Self {
        Self::start_on(Arc::new(MemoryStore::new()), bind, config, policy)
    }

    /// Over `store`, on `bind`, with this config and policy.
    pub fn start_on(store: Arc<DynStore>, bind: &str, config: Config, policy: Policy) -> Self {
        Self::start_fixture(Fixture::with_policy(store, 7, policy), bind, config)
    }

    /// Serves `fixture`'s service on `bind`, with this config. (Servers
    /// sharing one store need fixtures of different seeds.)
    pub fn start_fixture(fixture: Fixture, bind: &str, config: Config) -> Self {
        let clock = fixture.clock.clone();
        let keys = Arc::new(fixture.keys);
        let app = apikeys_http::router(
            keys.clone(),
            AdminToken::from_chosen(TOKEN).unwrap(),
            config,
        );
        let bind: SocketAddr = bind.parse().unwrap();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind(bind).await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                apikeys_http::serve(listener, app, async {
                    let _ = shutdown_rx.await;
                })
                .await
                .unwrap();
            });
        });
        let addr = addr_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        Server {
            addr,
            clock,
            keys,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        }
    }

    pub fn request(&self, method: &str, path: &str) -> Req {
        Req::new(self.addr, method, path)
    }

    pub fn get(&self, path: &str) -> Req {
        self.request("GET", path)
    }

    pub fn post(&self, path: &str, body: Value) -> Req {
        self.request("POST", path).json(&body)
    }

    pub fn put(&self, path: &str, body: Value) -> Req {
        self.request("PUT", path).json(&body)
    }

    pub fn delete(&self, path: &str) -> Req {
        self.request("DELETE", path)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A request being built.
pub struct Req {
    addr: SocketAddr,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Req {
    pub fn new(addr: SocketAddr, method: &str, path: &str) -> Self {
        Req {
            addr,
            method: method.into(),
            path: path.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// With the admin token.
    pub fn admin(self) -> Self {
        self.header("Authorization", &format!("Bearer {TOKEN}"))
    }

    /// With the admin token, acting as `account`.
    pub fn acting(self, account: &str) -> Self {
        self.admin().header("X-Acting-Account", account)
    }

    pub fn json(self, body: &Value) -> Self {
        self.raw_body("application/json", serde_json::to_vec(body).unwrap())
    }

    pub fn raw_body(mut self, content_type: &str, body: Vec<u8>) -> Self {
        self.body = body;
        self.header("Content-Type", content_type)
    }

    pub fn send(self) -> Response {
        let mut stream = TcpStream::connect(self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.method,
            self.path,
            self.addr,
            self.body.len()
        );
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).unwrap();
        // The server may answer (413) and close before reading a large body.
        let _ = stream.write_all(&self.body);
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).unwrap();
        Response::parse(&raw)
    }
}

/// A response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    fn parse(raw: &[u8]) -> Self {
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a complete response head");
        let head = std::str::from_utf8(&raw[..split]).unwrap();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (n, v) = l.split_once(':').unwrap();
                (n.trim().to_ascii_lowercase(), v.trim().to_string())
            })
            .collect();
        let mut body = raw[split + 4..].to_vec();
        if headers
            .iter()
            .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"))
        {
            body = dechunk(&body);
        }
        Response {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts the status (showing the body if it differs) and returns the
    /// JSON body (`null` for an empty one).
    pub fn expect(&self, status: u16) -> Value {
        assert_eq!(
            self.status,
            status,
            "unexpected status; body: {}",
            self.text()
        );
        if self.body.is_empty() {
            Value::Null
        } else {
            self.json()
        }
    }

    /// Asserts an error response: status, code, and a message.
    pub fn expect_error(&self, status: u16, code: &str) -> String {
        let body = self.expect(status);
        assert_eq!(body["error"], code, "body: {body}");
        let message = body["message"].as_str().expect("a message").to_string();
        assert!(!message.is_empty());
        message
    }
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = body.windows(2).position(|w| w == b"\r\n").unwrap();
        let size_text = std::str::from_utf8(&body[..line_end]).unwrap();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        body = &body[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

/// `base64` for Basic auth, via the crate the workspace already has.
pub fn basic(identifier: &str, secret: &str) -> String {
    use base64ct::{Base64, Encoding};
    format!(
        "Basic {}",
        Base64::encode_string(format!("{identifier}:{secret}").as_bytes())
    )
}

/// A string field of a JSON value.
pub fn s(v: &Value, field: &str) -> String {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("no string `{field}` in {v}"))
        .to_string()
}

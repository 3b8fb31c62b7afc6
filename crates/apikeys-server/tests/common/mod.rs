//! Test support for the tests that need a real socket: the router served on
//! one in a background runtime, and requests through `ureq`, a blocking
//! HTTP/1.1 client.

// Test support: failing loudly is its job.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod binary;

use apikeys::testing::Fixture;
use apikeys::{ApiKeys, ManualClock};
#[allow(unused_imports)] // Each test file uses some of these.
pub use apikeys_http::testing::{Response, field as s};
use apikeys_http::{AdminToken, Config};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The admin token every test server uses.
pub const TOKEN: &str = "test-admin-token-0123456789-abcdefghij";

/// The router served on a loopback port by its own runtime, stopped on drop.
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
    /// Serves `fixture`'s service on 127.0.0.1, with this config. (Servers
    /// sharing one store need fixtures of different seeds.)
    pub fn start_fixture(fixture: Fixture, config: Config) -> Self {
        let clock = fixture.clock.clone();
        let keys = Arc::new(fixture.keys);
        let app = apikeys_http::router(
            keys.clone(),
            AdminToken::from_chosen(TOKEN).unwrap(),
            config,
        );
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                apikeys_http::serve(
                    listener,
                    app,
                    apikeys_http::ServeOptions::default(),
                    async {
                        let _ = shutdown_rx.await;
                    },
                )
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

/// One client for every test of the binary: it keeps connections alive
/// between requests, and answers every status as a response, not an error.
fn agent() -> &'static ureq::Agent {
    static AGENT: OnceLock<ureq::Agent> = OnceLock::new();
    AGENT.get_or_init(|| {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into()
    })
}

/// A request being built.
pub struct Req {
    request: ureq::http::request::Builder,
    body: Vec<u8>,
}

impl Req {
    pub fn new(addr: SocketAddr, method: &str, path: &str) -> Self {
        Req {
            request: ureq::http::Request::builder()
                .method(method)
                .uri(format!("http://{addr}{path}")),
            body: Vec::new(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.request = self.request.header(name, value);
        self
    }

    /// With the admin token.
    pub fn admin(self) -> Self {
        self.header("Authorization", &format!("Bearer {TOKEN}"))
    }

    pub fn json(mut self, body: &Value) -> Self {
        self.body = serde_json::to_vec(body).unwrap();
        self.header("Content-Type", "application/json")
    }

    pub fn send(self) -> Response {
        let request = self.request.body(self.body).unwrap();
        let mut response = agent().run(request).unwrap();
        Response {
            status: response.status().as_u16(),
            headers: response
                .headers()
                .iter()
                .map(|(n, v)| {
                    (
                        n.to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: response.body_mut().read_to_vec().unwrap(),
        }
    }
}

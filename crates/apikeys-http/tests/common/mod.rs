//! Test support: the router called in-process with
//! `tower::ServiceExt::oneshot`, on a runtime of its own, with the peer
//! address mocked (`MockConnectInfo`): no socket, no port.
//!
//! Each request is spawned onto the runtime's two workers, as a server would
//! run it, so that tests about what holds a worker (the argon2 flood) still
//! mean what they say.

// Test support: failing loudly is its job.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use apikeys::testing::Fixture;
use apikeys::{ApiKeys, DynStore, ManualClock, MemoryStore, Policy};
#[allow(unused_imports)] // Each test file uses some of these.
pub use apikeys_http::testing::{Response, basic, field as s};
use apikeys_http::{AdminToken, Config};
use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::Request;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use tower::ServiceExt;

/// The admin token every test router uses.
pub const TOKEN: &str = "test-admin-token-0123456789-abcdefghij";

/// The peer address of the tests' requests, unless a test picks another.
pub const PEER: &str = "127.0.0.1:50000";

/// The router over a service, and the runtime its requests run on.
pub struct Server {
    /// The peer address every request comes from.
    pub peer: SocketAddr,
    pub clock: Arc<ManualClock>,
    /// The service it serves.
    pub keys: Arc<ApiKeys>,
    app: Router,
    runtime: tokio::runtime::Runtime,
}

impl Server {
    /// From [`PEER`], default config, fast hashing, in-memory store.
    pub fn start() -> Self {
        Self::start_with(Config::default(), Policy::fast_for_tests())
    }

    /// From [`PEER`], with this config and policy.
    pub fn start_with(config: Config, policy: Policy) -> Self {
        Self::start_on(Arc::new(MemoryStore::new()), config, policy)
    }

    /// From [`PEER`], over `store`, with this config and policy.
    pub fn start_on(store: Arc<DynStore>, config: Config, policy: Policy) -> Self {
        Self::start_from(PEER, store, config, policy)
    }

    /// Requests from `peer` (e.g. `[::1]:50000`), over `store`.
    pub fn start_from(peer: &str, store: Arc<DynStore>, config: Config, policy: Policy) -> Self {
        let fixture = Fixture::with_policy(store, 7, policy);
        let peer: SocketAddr = peer.parse().unwrap();
        let keys = Arc::new(fixture.keys);
        let app = apikeys_http::router(
            keys.clone(),
            AdminToken::from_chosen(TOKEN).unwrap(),
            config,
        )
        .layer(MockConnectInfo(peer));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        Server {
            peer,
            clock: fixture.clock,
            keys,
            app,
            runtime,
        }
    }

    pub fn request(&self, method: &str, path: &str) -> Req<'_> {
        Req {
            server: self,
            method: method.into(),
            path: path.into(),
            headers: Vec::new(),
            body: Vec::new(),
            stalled: false,
        }
    }

    pub fn get(&self, path: &str) -> Req<'_> {
        self.request("GET", path)
    }

    pub fn post(&self, path: &str, body: Value) -> Req<'_> {
        self.request("POST", path).json(&body)
    }

    pub fn put(&self, path: &str, body: Value) -> Req<'_> {
        self.request("PUT", path).json(&body)
    }

    pub fn delete(&self, path: &str) -> Req<'_> {
        self.request("DELETE", path)
    }
}

/// A request being built.
pub struct Req<'a> {
    server: &'a Server,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    stalled: bool,
}

/// A request body whose data never comes.
struct Stalled;

impl axum::body::HttpBody for Stalled {
    type Data = axum::body::Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::task::Poll::Pending
    }
}

impl Req<'_> {
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

    /// A body that never arrives: the stream stays pending.
    pub fn stalled_body(mut self, content_type: &str) -> Self {
        self.stalled = true;
        self.header("Content-Type", content_type)
    }

    pub fn raw_body(mut self, content_type: &str, body: Vec<u8>) -> Self {
        self.body = body;
        self.header("Content-Type", content_type)
    }

    /// Runs the request through the router, on one of the runtime's
    /// workers, and reads the whole answer.
    pub fn send(self) -> Response {
        let mut request = Request::builder()
            .method(self.method.as_str())
            .uri(self.path.as_str());
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        let body = if self.stalled {
            Body::new(Stalled)
        } else {
            Body::from(self.body)
        };
        let request = request.body(body).unwrap();
        let app = self.server.app.clone();
        let runtime = &self.server.runtime;
        runtime
            .block_on(runtime.spawn(async move {
                let response = app.oneshot(request).await.unwrap();
                let status = response.status().as_u16();
                let headers = response
                    .headers()
                    .iter()
                    .map(|(n, v)| {
                        (
                            n.as_str().to_ascii_lowercase(),
                            v.to_str().unwrap().to_owned(),
                        )
                    })
                    .collect();
                let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                    .await
                    .unwrap()
                    .to_vec();
                Response {
                    status,
                    headers,
                    body,
                }
            }))
            .unwrap()
    }
}

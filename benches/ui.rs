//! The API Keys page (`GET /ui/`) of an account with 100 keys, through the
//! router in-process: the session lookup, the service's reads on the
//! in-memory store, and the HTML rendering with escaping. Target: a median
//! under 5 ms of server time.
//!
//! `cargo bench --bench ui`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use apikeys::testing::Fixture;
use apikeys::{Actor, Channel, MemoryStore, NewAccount, NewKey, Policy};
use apikeys_http::ui::UiConfig;
use apikeys_http::{AdminToken, Config, Lanes, StoreCalls};
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::Request;
use criterion::{Criterion, criterion_group, criterion_main};
use std::net::SocketAddr;
use std::sync::Arc;
use tower::ServiceExt;

const TOKEN: &str = "bench-admin-token-0123456789-abcdefghij";

fn page(c: &mut Criterion) {
    let fixture = Fixture::with_policy(
        Arc::new(MemoryStore::new()),
        5,
        Policy::fast_for_tests().max_rest_keys(100),
    );
    let keys = fixture.keys;
    let account = keys
        .open_account(Actor::Operator, NewAccount::master())
        .unwrap()
        .account
        .id;
    for channel in [
        Channel::Ftp,
        Channel::Http,
        Channel::WebService,
        Channel::Email,
    ] {
        keys.create_key(Actor::Operator, account, NewKey::generated(channel))
            .unwrap();
    }
    for i in 0..96 {
        let key = NewKey::generated(Channel::Rest).with_label(format!("service <{i}> & co"));
        keys.create_key(Actor::Operator, account, key).unwrap();
    }
    assert_eq!(keys.keys(Actor::Operator, account).unwrap().len(), 100);
    let config = Config::default()
        .lanes(Lanes::default().store_calls(StoreCalls::Inline))
        .ui(UiConfig::default().public_origin("http://bench.test"));
    let app = apikeys_http::router(
        Arc::new(keys),
        AdminToken::from_chosen(TOKEN).unwrap(),
        config,
    )
    .layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 50000))));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let send = |request: Request<Body>| {
        let app = app.clone();
        runtime.block_on(async move {
            let response = app.oneshot(request).await.unwrap();
            let status = response.status();
            let cookies: Vec<String> = response
                .headers()
                .get_all("set-cookie")
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect();
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            (status, cookies, body)
        })
    };
    let (_, _, link) = send(
        Request::post(format!("/v1/accounts/{account}/portal-sessions"))
            .header("Authorization", format!("Bearer {TOKEN}"))
            .body(Body::empty())
            .unwrap(),
    );
    let link: serde_json::Value = serde_json::from_slice(&link).unwrap();
    let path = link["url"]
        .as_str()
        .unwrap()
        .strip_prefix("http://bench.test")
        .unwrap()
        .to_owned();
    let (_, cookies, _) = send(Request::get(path).body(Body::empty()).unwrap());
    let cookie = cookies[0].split(';').next().unwrap().to_owned();
    let get = || {
        Request::get("/ui/")
            .header("Cookie", &cookie)
            .body(Body::empty())
            .unwrap()
    };
    let (status, _, body) = send(get());
    assert_eq!(status, 200);
    assert_eq!(
        String::from_utf8_lossy(&body)
            .matches("<tr data-key=")
            .count(),
        100
    );
    c.bench_function("ui/page_100_keys", |b| b.iter(|| send(get())));
}

criterion_group!(benches, page);
criterion_main!(benches);

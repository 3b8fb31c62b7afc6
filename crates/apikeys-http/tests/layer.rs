//! The layer and extractor an embedder puts on its own routes, in-process
//! (`oneshot`, `MockConnectInfo`): good and bad credentials of each style,
//! optional authentication, the whitelist, the throttle, and a form body
//! that still reaches the handler.

// Test code: failing loudly is its job.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use apikeys::testing::Fixture;
use apikeys::{Actor, Channel, MemoryStore, NewKey, Policy, ThrottlePolicy};
use apikeys_http::{ApiKey, ApiKeyLayer, AsyncApiKeys, Lanes};
use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Request, StatusCode};
use axum::routing::{get, post};
use base64ct::{Base64, Encoding};
use std::net::SocketAddr;
use std::sync::Arc;
use tower::ServiceExt;

struct App {
    router: Router,
    keys: AsyncApiKeys,
    rest_id: apikeys::KeyId,
    rest: (String, String),
    http: (String, String),
    runtime: tokio::runtime::Runtime,
}

async fn send_sms(ApiKey(who): ApiKey, body: String) -> String {
    format!("sent for {} ({}): {body}", who.account_id, who.channel)
}

async fn maybe(key: Option<ApiKey>) -> String {
    match key {
        Some(ApiKey(who)) => format!("hello {}", who.account_id),
        None => "hello stranger".into(),
    }
}

fn app(peer: &str, policy: Policy) -> App {
    let f = Fixture::with_policy(Arc::new(MemoryStore::new()), 5, policy);
    let a = f.master();
    let rest = f
        .keys
        .create_key(Actor::Operator, a.id, NewKey::generated(Channel::Rest))
        .unwrap();
    let http = f
        .keys
        .create_key(Actor::Operator, a.id, NewKey::generated(Channel::Http))
        .unwrap();
    let keys = AsyncApiKeys::new(Arc::new(f.keys), Lanes::default());
    let rest_id = rest.key.id;
    let router = Router::new()
        .route("/send-sms", post(send_sms))
        .route("/maybe", get(maybe))
        .layer(ApiKeyLayer::rest(keys.clone()))
        .merge(
            Router::new()
                .route("/http/send", post(send_sms).get(send_sms))
                .layer(ApiKeyLayer::http(keys.clone())),
        )
        .layer(MockConnectInfo(peer.parse::<SocketAddr>().unwrap()));
    App {
        router,
        keys,
        rest_id,
        rest: (
            rest.key.identifier,
            rest.secret.unwrap().expose_secret().to_owned(),
        ),
        http: (
            http.key.identifier,
            http.secret.unwrap().expose_secret().to_owned(),
        ),
        runtime: tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap(),
    }
}

impl App {
    fn send(&self, request: Request<Body>) -> (StatusCode, Option<String>, String) {
        let router = self.router.clone();
        self.runtime.block_on(async move {
            let response = router.oneshot(request).await.unwrap();
            let status = response.status();
            let challenge = response
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap().to_owned());
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            (status, challenge, String::from_utf8(body.to_vec()).unwrap())
        })
    }
}

fn basic(identifier: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        Base64::encode_string(format!("{identifier}:{secret}").as_bytes())
    )
}

fn sms(authorization: Option<&str>) -> Request<Body> {
    let mut r = Request::post("/send-sms");
    if let Some(a) = authorization {
        r = r.header("authorization", a);
    }
    r.body(Body::from("to=27820000000")).unwrap()
}

#[test]
fn rest_basic_good_bad_and_missing() {
    let app = app("192.0.2.1:4000", Policy::fast_for_tests());
    let (id, secret) = &app.rest;
    let (status, _, body) = app.send(sms(Some(&basic(id, secret))));
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("(rest): to=27820000000"), "{body}");
    let (status, challenge, body) = app.send(sms(Some(&basic(id, "wrong-secret-123"))));
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge.as_deref(),
        Some("Basic realm=\"apikeys\", Bearer realm=\"apikeys\"")
    );
    assert!(body.contains("\"error\":\"invalid_credentials\""), "{body}");
    // No credentials: the handler's extractor refuses, with a challenge.
    let (status, challenge, _) = app.send(sms(None));
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge.is_some());
    let (status, _, _) = app.send(sms(Some("Basic !!!not-base64")));
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Another channel's credentials do not open a REST route.
    let (hid, hsecret) = &app.http;
    assert_eq!(
        app.send(sms(Some(&basic(hid, hsecret)))).0,
        StatusCode::UNAUTHORIZED
    );
}

#[test]
fn optional_authentication() {
    let app = app("192.0.2.1:4000", Policy::fast_for_tests());
    let get = |auth: Option<String>| {
        let mut r = Request::get("/maybe");
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        app.send(r.body(Body::empty()).unwrap())
    };
    assert_eq!(get(None).2, "hello stranger");
    let (id, secret) = &app.rest;
    assert!(get(Some(basic(id, secret))).2.starts_with("hello acc_"));
    // Wrong credentials are refused, never taken as anonymous.
    assert_eq!(
        get(Some(basic(id, "wrong-secret-123"))).0,
        StatusCode::UNAUTHORIZED
    );
}

#[test]
fn http_style_in_the_query_or_a_form_body() {
    let app = app("192.0.2.1:4000", Policy::fast_for_tests());
    let (id, secret) = &app.http;
    let (status, _, body) = app.send(
        Request::get(format!("/http/send?username={id}&password={secret}&to=27"))
            .body(Body::empty())
            .unwrap(),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    let form = format!("username={id}&password={secret}&text=hello");
    let (status, _, body) = app.send(
        Request::post("/http/send")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(form.clone()))
            .unwrap(),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body.ends_with(&form),
        "the handler still reads the body: {body}"
    );
    let (status, challenge, _) = app.send(
        Request::get(format!("/http/send?username={id}&password=nope-nope-nope"))
            .body(Body::empty())
            .unwrap(),
    );
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(challenge.as_deref(), Some("ApiKey realm=\"apikeys\""));
}

#[test]
fn whitelist_and_throttle_answer_in_the_routers_style() {
    let policy = Policy::fast_for_tests().throttle(ThrottlePolicy::default());
    let app = app("198.51.100.9:4000", policy);
    let (id, secret) = &app.rest;
    app.keys
        .sync()
        .set_whitelist(
            Actor::Operator,
            app.rest_id,
            vec!["203.0.113.0/24".parse().unwrap()],
        )
        .unwrap();
    let (status, _, body) = app.send(sms(Some(&basic(id, secret))));
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("\"error\":\"address_not_allowed\""), "{body}");
    app.keys
        .sync()
        .set_whitelist(Actor::Operator, app.rest_id, Vec::new())
        .unwrap();
    for n in 0..5 {
        let (status, _, _) = app.send(sms(Some(&basic(id, &format!("guess-secret-{n:04}")))));
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, _, body) = app.send(sms(Some(&basic(id, secret))));
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(body.contains("\"error\":\"throttled\""), "{body}");
}

#[test]
fn rest_bearer_tokens_open_the_layer_too() {
    let app = app("192.0.2.1:4000", Policy::fast_for_tests());
    let (id, secret) = &app.rest;
    let who = app
        .keys
        .sync()
        .authenticate(Channel::Rest, id, secret, "192.0.2.1".parse().unwrap())
        .unwrap();
    let token = app.keys.sync().issue_token(&who).unwrap().token;
    let bearer = format!("Bearer {}", token.expose_secret());
    let (status, _, body) = app.send(sms(Some(&bearer)));
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, challenge, _) = app.send(sms(Some("Bearer aktok-not-a-real-token")));
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge.as_deref(),
        Some("Basic realm=\"apikeys\", Bearer realm=\"apikeys\"")
    );
}

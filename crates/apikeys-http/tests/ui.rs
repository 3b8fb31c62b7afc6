//! The portal sessions and the page, in-process: links, cookies, CSRF, the
//! page's security headers, escaping, idle expiry, `no-store`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use apikeys::Policy;
use apikeys_http::Config;
use apikeys_http::ui::UiConfig;
use common::{Response, Server, s};
use serde_json::json;
use std::sync::Arc;

const ORIGIN: &str = "http://portal.test";
const XSS: &str = "<img src=x onerror=alert(1)>";

fn server() -> Server {
    server_with(UiConfig::default().public_origin(ORIGIN))
}

fn server_with(ui: UiConfig) -> Server {
    Server::start_with(Config::default().ui(ui), Policy::fast_for_tests())
}

fn master(server: &Server, created_at: Option<&str>) -> String {
    let body = match created_at {
        Some(at) => json!({"kind": "master", "created_at": at}),
        None => json!({"kind": "master"}),
    };
    let opened = server.post("/v1/accounts", body).admin().send().expect(201);
    opened["account"]["id"].as_str().unwrap().to_owned()
}

fn sub(server: &Server, parent: &str) -> String {
    let opened = server
        .post("/v1/accounts", json!({"kind": "sub", "parent_id": parent}))
        .admin()
        .send()
        .expect(201);
    opened["account"]["id"].as_str().unwrap().to_owned()
}

/// The path of a fresh link for `account`.
fn link(server: &Server, account: &str) -> String {
    let answer = server
        .request("POST", &format!("/v1/accounts/{account}/portal-sessions"))
        .admin()
        .send();
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    let url = s(&answer.expect(201), "url");
    url.strip_prefix(ORIGIN).unwrap().to_owned()
}

fn set_cookies(r: &Response) -> Vec<&str> {
    r.headers
        .iter()
        .filter(|(n, _)| n == "set-cookie")
        .map(|(_, v)| v.as_str())
        .collect()
}

/// A signed-in browser: its cookie, and the page's CSRF token.
struct Session {
    cookie: String,
    csrf: String,
}

fn sign_in(server: &Server, account: &str) -> Session {
    let opened = server.get(&link(server, account)).send();
    assert_eq!(opened.status, 303, "{}", opened.text());
    let cookie = set_cookies(&opened)
        .into_iter()
        .find(|c| c.starts_with("apikeys_session="))
        .unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let page = server.get("/ui/").header("Cookie", &cookie).send();
    assert_eq!(page.status, 200, "{}", page.text());
    let csrf = attribute(&page.text(), "data-csrf");
    Session { cookie, csrf }
}

/// The first value of `name="…"` in an HTML text.
fn attribute(html: &str, name: &str) -> String {
    let start = html.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
    html[start..][..html[start..].find('"').unwrap()].to_owned()
}

#[test]
fn a_link_starts_a_session_once_with_a_strict_cookie() {
    let server = server();
    let account = master(&server, None);
    let path = link(&server, &account);
    assert!(path.starts_with("/ui/session/"), "{path}");
    let opened = server.get(&path).send();
    assert_eq!(opened.status, 303);
    assert_eq!(opened.header("location"), Some("../"));
    assert_eq!(opened.header("referrer-policy"), Some("no-referrer"));
    let cookie = set_cookies(&opened)
        .into_iter()
        .find(|c| c.starts_with("apikeys_session="))
        .unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    assert!(
        !cookie.contains(path.rsplit('/').next().unwrap()),
        "the cookie is not the link's token"
    );
    // Used once: the second time is refused with a page saying so.
    let again = server.get(&path).send();
    assert_eq!(again.status, 410);
    assert!(again.text().contains("This link cannot be used"));
    assert!(set_cookies(&again).is_empty());
    // A token never issued is answered alike.
    assert_eq!(server.get("/ui/session/ak_never_issued").send().status, 410);
}

#[test]
fn cookies_are_secure_when_configured_or_behind_https() {
    for ui in [
        UiConfig::default()
            .public_origin(ORIGIN)
            .secure_cookies(true),
        UiConfig::default().public_origin("https://portal.test"),
    ] {
        let https = ui.public_origin.as_deref() == Some("https://portal.test");
        let server = server_with(ui);
        let account = master(&server, None);
        let url = s(
            &server
                .request("POST", &format!("/v1/accounts/{account}/portal-sessions"))
                .admin()
                .send()
                .expect(201),
            "url",
        );
        let path = url.split_once(".test").unwrap().1.to_owned();
        assert_eq!(url.starts_with("https://"), https);
        let opened = server.get(&path).send();
        for cookie in set_cookies(&opened) {
            assert!(cookie.ends_with("; Secure"), "{cookie}");
        }
        // Secure, the session cookie has the `__Host-` prefix, and only
        // that name opens the session.
        let session = set_cookies(&opened)[0]
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        assert!(session.starts_with("__Host-apikeys_session="), "{session}");
        let page = server.get("/ui/").header("Cookie", &session).send();
        assert_eq!(page.status, 200);
        let unprefixed = session.strip_prefix("__Host-").unwrap();
        assert_eq!(
            server
                .get("/ui/")
                .header("Cookie", unprefixed)
                .send()
                .status,
            401
        );
        server
            .get(&format!("/v1/accounts/{account}/keys"))
            .header("Cookie", unprefixed)
            .send()
            .expect_error(401, "unauthorized");
    }
}

#[test]
fn a_link_expires_after_five_minutes() {
    let server = server();
    let account = master(&server, None);
    let path = link(&server, &account);
    server.clock.advance(time::Duration::minutes(5));
    assert_eq!(server.get(&path).send().status, 410);
}

#[test]
fn opening_links_needs_the_admin_token_and_a_manageable_account() {
    let server = server();
    let a = master(&server, None);
    let b = master(&server, None);
    let child = sub(&server, &a);
    let path = |id: &str| format!("/v1/accounts/{id}/portal-sessions");
    server
        .request("POST", &path(&a))
        .send()
        .expect_error(401, "unauthorized");
    // An acting master may open links for its sub-accounts, not for others.
    server
        .request("POST", &path(&child))
        .acting(&a)
        .send()
        .expect(201);
    server
        .request("POST", &path(&b))
        .acting(&a)
        .send()
        .expect_error(404, "account_not_found");
    // A session may not mint links.
    let session = sign_in(&server, &a);
    server
        .request("POST", &path(&a))
        .header("Cookie", &session.cookie)
        .header("X-CSRF-Token", &session.csrf)
        .send()
        .expect_error(403, "forbidden");
    // The return URL must be an absolute http(s) URL.
    let bad = server
        .post(&path(&a), json!({"return_url": "javascript:alert(1)"}))
        .admin()
        .send()
        .expect_error(400, "invalid_return_url");
    assert!(bad.contains("http"), "{bad}");
    server
        .post(
            &path(&a),
            json!({"return_url": "https://platform.example/settings"}),
        )
        .admin()
        .send()
        .expect(201);
    // A declared empty body, even typed as JSON, is no body.
    server
        .request("POST", &path(&a))
        .admin()
        .header("Content-Type", "application/json")
        .header("Content-Length", "0")
        .send()
        .expect(201);
    // `null`, which the document allows for the optional body, is no body.
    server
        .post(&path(&a), json!(null))
        .admin()
        .send()
        .expect(201);
    // The route is documented.
    let doc = server.get("/openapi.json").send().json();
    assert!(doc["paths"]["/v1/accounts/{account_id}/portal-sessions"]["post"].is_object());
}

#[test]
fn a_session_acts_as_its_account_and_no_more() {
    let server = server();
    let master_id = master(&server, None);
    let child = sub(&server, &master_id);
    let sibling = sub(&server, &master_id);
    let other = master(&server, None);
    let mine = sign_in(&server, &master_id);
    let get =
        |session: &Session, path: &str| server.get(path).header("Cookie", &session.cookie).send();
    let keys = |id: &str| format!("/v1/accounts/{id}/keys");
    let answer = get(&mine, &keys(&master_id));
    answer.expect(200);
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    get(&mine, &keys(&child)).expect(200);
    get(&mine, &keys(&other)).expect_error(404, "account_not_found");
    // A sub-account's session reaches neither its master nor its sibling.
    let child_session = sign_in(&server, &child);
    get(&child_session, &keys(&child)).expect(200);
    get(&child_session, &keys(&master_id)).expect_error(404, "account_not_found");
    get(&child_session, &keys(&sibling)).expect_error(404, "account_not_found");
    // The master's page lists both sub-accounts; theirs list none.
    let page = get(&mine, "/ui/").text();
    assert!(page.contains(&child) && page.contains(&sibling));
    let page = get(&child_session, "/ui/").text();
    assert!(!page.contains(&sibling) && !page.contains("id=\"subs\""));
    // Nor does the page.
    let page = get(&child_session, &format!("/ui/?account={master_id}"));
    assert_eq!(page.status, 404);
    assert!(
        !page.text().contains(&master_id),
        "the page names nothing it may not see"
    );
    // X-Acting-Account is refused beside a session.
    server
        .get(&keys(&child))
        .header("Cookie", &mine.cookie)
        .header("X-Acting-Account", &child)
        .send()
        .expect_error(400, "acting_account_with_session");
    // A dead cookie is a 401, never the operator.
    server
        .get(&keys(&master_id))
        .header("Cookie", "apikeys_session=forged")
        .send()
        .expect_error(401, "session_ended");
}

#[test]
fn changes_need_the_sessions_csrf_token() {
    let server = server();
    let account = master(&server, None);
    let session = sign_in(&server, &account);
    let create = || {
        server.post(
            &format!("/v1/accounts/{account}/keys"),
            json!({"channel": "ftp"}),
        )
    };
    create()
        .header("Cookie", &session.cookie)
        .send()
        .expect_error(403, "csrf_failed");
    create()
        .header("Cookie", &session.cookie)
        .header("X-CSRF-Token", "not-the-token")
        .send()
        .expect_error(403, "csrf_failed");
    // A form post, as another site would make it: refused before its body.
    server
        .request("POST", &format!("/v1/accounts/{account}/keys"))
        .header("Cookie", &session.cookie)
        .raw_body("application/x-www-form-urlencoded", b"channel=ftp".to_vec())
        .send()
        .expect_error(403, "csrf_failed");
    // Another session's token does not do either.
    let other = sign_in(&server, &account);
    create()
        .header("Cookie", &session.cookie)
        .header("X-CSRF-Token", &other.csrf)
        .send()
        .expect_error(403, "csrf_failed");
    assert!(
        server
            .keys
            .keys(apikeys::Actor::Operator, account.parse().unwrap())
            .unwrap()
            .is_empty()
    );
    let created = create()
        .header("Cookie", &session.cookie)
        .header("X-CSRF-Token", &session.csrf)
        .send();
    assert_eq!(
        created.header("cache-control"),
        Some("no-store"),
        "it shows a secret"
    );
    assert!(created.expect(201)["secret"].is_string());
}

#[test]
fn the_page_has_its_security_headers_and_no_inline_code() {
    let server = server_with(
        UiConfig::default()
            .public_origin(ORIGIN)
            .frame_ancestors("'self' https://platform.example"),
    );
    let account = master(&server, Some("2021-05-01T00:00:00Z"));
    let session = sign_in(&server, &account);
    let page = server.get("/ui/").header("Cookie", &session.cookie).send();
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-security-policy"),
        Some(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; base-uri 'none'; \
             frame-ancestors 'self' https://platform.example"
        )
    );
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(page.header("cache-control"), Some("no-store"));
    let html = page.text();
    assert!(html.contains(&account) && html.contains("Master account"));
    assert_eq!(
        html.matches("<tr data-key=").count(),
        4,
        "a legacy master's four keys"
    );
    assert_no_inline_code(&html);
    for asset in ["/ui/static/ui.js", "/ui/static/ui.css"] {
        let a = server.get(asset).send();
        assert_eq!(a.status, 200);
        assert_eq!(a.header("x-content-type-options"), Some("nosniff"));
        assert!(a.header("content-security-policy").is_some());
        assert_no_inline_code(&a.text());
    }
    // The default frames nobody.
    let plain = server_with(UiConfig::default().public_origin(ORIGIN));
    let page = plain.get("/ui/signed-out").send();
    assert!(
        page.header("content-security-policy")
            .unwrap()
            .ends_with("frame-ancestors 'none'")
    );
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
}

fn assert_no_inline_code(text: &str) {
    let lower = text.to_ascii_lowercase();
    assert!(!lower.contains("style="), "an inline style");
    assert!(!lower.contains("<style"), "an inline stylesheet");
    assert!(!lower.contains("javascript:"), "a javascript: URL");
    for (i, _) in lower.match_indices("<script") {
        assert!(lower[i..].starts_with("<script src="), "an inline script");
    }
    for handler in [
        " onclick=",
        " onload=",
        " onerror=",
        " onsubmit=",
        " onchange=",
    ] {
        assert!(!lower.contains(handler), "an inline handler {handler}");
    }
}

#[test]
fn user_text_is_escaped() {
    let server = server();
    let account = master(&server, None);
    server
        .post(
            &format!("/v1/accounts/{account}/keys"),
            json!({"channel": "rest", "label": XSS}),
        )
        .admin()
        .send()
        .expect(201);
    let session = sign_in(&server, &account);
    let html = server
        .get("/ui/")
        .header("Cookie", &session.cookie)
        .send()
        .text();
    assert!(!html.contains("<img"), "the label was not escaped");
    assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
}

#[test]
fn a_session_ends_after_thirty_idle_minutes() {
    let server = server();
    let account = master(&server, None);
    let session = sign_in(&server, &account);
    let keys = format!("/v1/accounts/{account}/keys");
    server.clock.advance(time::Duration::minutes(29));
    server
        .get(&keys)
        .header("Cookie", &session.cookie)
        .send()
        .expect(200);
    server.clock.advance(time::Duration::minutes(29));
    server
        .get(&keys)
        .header("Cookie", &session.cookie)
        .send()
        .expect(200);
    server.clock.advance(time::Duration::minutes(30));
    server
        .get(&keys)
        .header("Cookie", &session.cookie)
        .send()
        .expect_error(401, "session_ended");
    let page = server.get("/ui/").header("Cookie", &session.cookie).send();
    assert_eq!(page.status, 401);
    assert!(page.text().contains("Not signed in"));
}

#[test]
fn sign_out_needs_the_token_and_goes_back() {
    let server = server();
    let account = master(&server, None);
    let url = s(
        &server
            .post(
                &format!("/v1/accounts/{account}/portal-sessions"),
                json!({"return_url": "https://platform.example/settings"}),
            )
            .admin()
            .send()
            .expect(201),
        "url",
    );
    let opened = server.get(url.strip_prefix(ORIGIN).unwrap()).send();
    let cookie = set_cookies(&opened)[0]
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = server.get("/ui/").header("Cookie", &cookie).send().text();
    let csrf = attribute(&page, "data-csrf");
    let form = |body: &str| {
        server
            .request("POST", "/ui/session/end")
            .header("Cookie", &cookie)
            .raw_body(
                "application/x-www-form-urlencoded",
                body.as_bytes().to_vec(),
            )
            .send()
    };
    assert_eq!(form("csrf_token=wrong").status, 403);
    assert_eq!(form("").status, 403);
    let out = form(&format!("csrf_token={csrf}"));
    assert_eq!(out.status, 303);
    assert_eq!(
        out.header("location"),
        Some("https://platform.example/settings")
    );
    assert!(set_cookies(&out)[0].contains("Max-Age=0"));
    server
        .get(&format!("/v1/accounts/{account}/keys"))
        .header("Cookie", &cookie)
        .send()
        .expect_error(401, "session_ended");
    // Without a return URL: the signed-out page.
    let session = sign_in(&server, &account);
    let out = server
        .request("POST", "/ui/session/end")
        .header("Cookie", &session.cookie)
        .raw_body(
            "application/x-www-form-urlencoded",
            format!("csrf_token={}", session.csrf).into_bytes(),
        )
        .send();
    assert_eq!(out.header("location"), Some("../signed-out"));
    assert!(
        server
            .get("/ui/signed-out")
            .send()
            .text()
            .contains("signed out")
    );
}

#[test]
fn the_page_lists_keys_or_explains_that_none_is_active() {
    let server = server();
    let account = master(&server, None);
    let session = sign_in(&server, &account);
    let html = server
        .get("/ui/")
        .header("Cookie", &session.cookie)
        .send()
        .text();
    assert!(html.contains("No channel is active yet"));
    assert!(html.contains("Create the first key"));
    // Every channel is offered for a first key.
    assert_eq!(html.matches("name=\"channel\"").count(), 5);
    server
        .post(
            &format!("/v1/accounts/{account}/keys"),
            json!({"channel": "rest"}),
        )
        .admin()
        .send()
        .expect(201);
    server
        .post(
            &format!("/v1/accounts/{account}/keys"),
            json!({"channel": "ftp"}),
        )
        .admin()
        .send()
        .expect(201);
    let html = server
        .get("/ui/")
        .header("Cookie", &session.cookie)
        .send()
        .text();
    assert!(!html.contains("No channel is active yet"));
    // The audit trail, newest first.
    let audit = &html[html.find("id=\"audit\"").unwrap()..];
    let created = audit.find("key created").unwrap();
    let opened = audit.find("account opened").unwrap();
    assert!(created < opened, "newest first");
    assert_eq!(audit.matches("key created").count(), 2);
    assert_eq!(html.matches("<tr data-key=").count(), 2);
    // FTP is taken; REST is offered again, as another REST key.
    assert!(!html.contains("name=\"channel\" value=\"ftp\""));
    assert!(html.contains("Another REST key (1 of 10 used)"));
}

#[test]
fn the_rest_limit_is_said_when_reached() {
    let server = Server::start_with(
        Config::default().ui(UiConfig::default().public_origin(ORIGIN)),
        Policy::fast_for_tests().max_rest_keys(2),
    );
    let account = master(&server, None);
    for _ in 0..2 {
        server
            .post(
                &format!("/v1/accounts/{account}/keys"),
                json!({"channel": "rest"}),
            )
            .admin()
            .send()
            .expect(201);
    }
    let session = sign_in(&server, &account);
    let html = server
        .get("/ui/")
        .header("Cookie", &session.cookie)
        .send()
        .text();
    assert!(!html.contains("name=\"channel\" value=\"rest\""));
    assert!(html.contains("the most allowed (2)"));
}

#[test]
fn a_link_opened_from_another_site_reloads_once() {
    let server = server();
    // The marker alone (the browser held the Strict cookie back): a page
    // that reloads itself, and clears the marker.
    let page = server
        .get("/ui/")
        .header("Cookie", "apikeys_session_pending=1")
        .send();
    assert_eq!(page.status, 200);
    assert!(page.text().contains("http-equiv=\"refresh\""));
    assert!(set_cookies(&page)[0].contains("Max-Age=0"));
    // Without it: not signed in, and no reload loop.
    let page = server.get("/ui/").send();
    assert_eq!(page.status, 401);
    assert!(!page.text().contains("refresh"));
}

#[test]
fn the_page_can_live_under_another_path() {
    let server = server_with(
        UiConfig::default()
            .public_origin(ORIGIN)
            .path("/portal/keys"),
    );
    let account = master(&server, None);
    let path = link(&server, &account);
    assert!(path.starts_with("/portal/keys/session/"), "{path}");
    let opened = server.get(&path).send();
    let cookie = set_cookies(&opened)[0]
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = server.get("/portal/keys/").header("Cookie", &cookie).send();
    assert_eq!(page.status, 200);
    assert_eq!(attribute(&page.text(), "data-api-base"), "../..");
    assert_eq!(
        server.get("/portal/keys").send().header("location"),
        Some("keys/")
    );
    assert_eq!(server.get("/portal/keys/static/ui.js").send().status, 200);
}

/// An embedder nests the whole router under a prefix: links carry it, and
/// the page's relative links and API base stay right under it.
#[test]
fn the_router_can_be_nested_under_a_prefix() {
    use axum::body::Body;
    use axum::extract::connect_info::MockConnectInfo;
    use tower::ServiceExt;
    let fixture = apikeys::testing::Fixture::new(Arc::new(apikeys::MemoryStore::new()), 21);
    let inner = apikeys_http::router(
        Arc::new(fixture.keys),
        apikeys_http::AdminToken::from_chosen(common::TOKEN).unwrap(),
        Config::default().ui(UiConfig::default().public_origin(ORIGIN)),
    );
    let app = axum::Router::new()
        .nest("/apikeys", inner)
        .layer(MockConnectInfo(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            1,
        ))));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let send = |method: &str, path: &str, cookie: Option<&str>, admin: bool| {
        let mut request = axum::http::Request::builder().method(method).uri(path);
        if admin {
            request = request.header("Authorization", format!("Bearer {}", common::TOKEN));
        }
        if let Some(cookie) = cookie {
            request = request.header("Cookie", cookie);
        }
        let body = if path.ends_with("/accounts") {
            request = request.header("Content-Type", "application/json");
            Body::from(r#"{"kind":"master"}"#)
        } else {
            Body::empty()
        };
        let app = app.clone();
        runtime.block_on(async move {
            let response = app.oneshot(request.body(body).unwrap()).await.unwrap();
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            (status, headers, String::from_utf8_lossy(&body).into_owned())
        })
    };
    let (status, _, body) = send("POST", "/apikeys/v1/accounts", None, true);
    assert_eq!(status, 201, "{body}");
    let opened: serde_json::Value = serde_json::from_str(&body).unwrap();
    let account = s(&opened["account"], "id");
    let (status, _, body) = send(
        "POST",
        &format!("/apikeys/v1/accounts/{account}/portal-sessions"),
        None,
        true,
    );
    assert_eq!(status, 201, "{body}");
    let url = s(&serde_json::from_str(&body).unwrap(), "url");
    let path = url.strip_prefix(ORIGIN).unwrap();
    assert!(path.starts_with("/apikeys/ui/session/"), "{url}");
    let (status, headers, _) = send("GET", path, None, false);
    assert_eq!(status, 303);
    assert_eq!(headers["location"], "../");
    let cookie = headers["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let (status, _, page) = send("GET", "/apikeys/ui/", Some(&cookie), false);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(&account));
    // The script's API base, relative to /apikeys/ui/, is /apikeys.
    assert_eq!(attribute(&page, "data-api-base"), "..");
    let (status, _, _) = send(
        "GET",
        &format!("/apikeys/v1/accounts/{account}/keys"),
        Some(&cookie),
        false,
    );
    assert_eq!(status, 200);
}

/// The page shows each key's state, expiry and last use, a grace key's
/// old-secret line, the lifecycle actions, and a master's policy section;
/// a sub-account's page has no policy section.
#[test]
fn the_page_shows_the_lifecycle() {
    let server = server();
    let account = master(&server, None);
    let keys = format!("/v1/accounts/{account}/keys");
    let used = server
        .post(
            &keys,
            json!({"channel": "ftp", "expires_at": "2026-02-03T04:05:00Z"}),
        )
        .admin()
        .send()
        .expect(201);
    let off = server
        .post(&keys, json!({"channel": "http"}))
        .admin()
        .send()
        .expect(201);
    server
        .request("PATCH", &format!("/v1/keys/{}", s(&off, "id")))
        .json(&json!({"enabled": false}))
        .admin()
        .send()
        .expect(200);
    server
        .post(
            "/v1/authenticate",
            json!({"channel": "ftp", "identifier": s(&used, "identifier"), "secret": s(&used, "secret")}),
        )
        .send()
        .expect(200);
    server
        .post(
            &format!("/v1/keys/{}/credentials", s(&used, "id")),
            json!({"regenerate_secret": true, "grace_seconds": 3600}),
        )
        .admin()
        .send()
        .expect(200);
    server
        .put(
            &format!("/v1/accounts/{account}/policy"),
            json!({"whitelist": ["127.0.0.0/8"], "sub_account_channels": ["rest"], "max_key_lifetime_seconds": 86400 * 7}),
        )
        .admin()
        .send()
        .expect(200);
    let session = sign_in(&server, &account);
    let html = server
        .get("/ui/")
        .header("Cookie", &session.cookie)
        .send()
        .text();
    assert_no_inline_code(&html);
    for part in [
        r#"<span class="badge state-active">Active</span>"#,
        r#"<span class="badge state-disabled">Disabled</span>"#,
        "2026-02-03 04:05 UTC",
        r#"data-expires="2026-02-03T04:05""#,
        "2025-01-01 00:00 UTC<br><span class=\"muted\">from <code>127.0.0.1</code>",
        "old secret not used since the change",
        r#"data-action="disable">Disable"#,
        r#"data-action="enable">Enable"#,
        r#"data-action="expiry">Set expiry"#,
        r#"type="datetime-local""#,
        "Times are in UTC",
        r#"id="policy""#,
        r#"<li data-entry="127.0.0.0/8">"#,
        r#"value="rest" checked"#,
        r#"id="policy-lifetime" type="number" min="1" max="36525" step="any" inputmode="decimal" value="7""#,
    ] {
        assert!(html.contains(part), "{part} is not in the page");
    }
    assert!(
        !html.contains(r#"value="ftp" checked"#),
        "ftp is not allowed"
    );
    // The old secret used: its last use is shown.
    server
        .post(
            "/v1/authenticate",
            json!({"channel": "ftp", "identifier": s(&used, "identifier"), "secret": s(&used, "secret")}),
        )
        .send()
        .expect(200);
    let html = server
        .get("/ui/")
        .header("Cookie", &session.cookie)
        .send()
        .text();
    assert!(
        html.contains("old secret last used 2025-01-01 00:00 UTC"),
        "{html}"
    );
    // A sub-account's page: no policy section.
    let sub_account = sub(&server, &account);
    let session = sign_in(&server, &sub_account);
    let html = server
        .get("/ui/")
        .header("Cookie", &session.cookie)
        .send()
        .text();
    assert!(!html.contains(r#"id="policy""#));
}

//! The API Keys page in a real browser: Debian's Chromium, headless, driven
//! through chromedriver, against the router served on 127.0.0.1 over a
//! SQLite store. Without Chromium or its driver each test says SKIPPED;
//! `APIKEYS_REQUIRE_BROWSER=1` makes that a failure.
//!
//! `APIKEYS_UPDATE_SCREENSHOTS=1` writes the screenshots into `docs/`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/webdriver.rs"]
mod webdriver;

use apikeys::Policy;
use apikeys::testing::Fixture;
use apikeys_http::Config;
use common::{Server, s};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use webdriver::Browser;

const XSS: &str = "<img src=x onerror=alert(1)>";

/// A server on SQLite and a browser.
struct Env {
    server: Server,
    browser: Browser,
    _dir: tempfile::TempDir,
}

fn env(test: &str) -> Option<Env> {
    let browser = Browser::start(test)?;
    let dir = tempfile::tempdir().unwrap();
    let store = apikeys_sqlite::SqliteStore::open(dir.path().join("keys.sqlite3")).unwrap();
    let fixture = Fixture::with_policy(Arc::new(store), 11, Policy::fast_for_tests());
    let server = Server::start_fixture(fixture, Config::default());
    Some(Env {
        server,
        browser,
        _dir: dir,
    })
}

impl Env {
    fn open_account(&self, body: Value) -> Value {
        self.server
            .post("/v1/accounts", body)
            .admin()
            .send()
            .expect(201)
    }

    fn master(&self, created_at: Option<&str>) -> String {
        let body = match created_at {
            Some(at) => json!({"kind": "master", "created_at": at}),
            None => json!({"kind": "master"}),
        };
        s(&self.open_account(body)["account"], "id")
    }

    fn sub(&self, parent: &str) -> String {
        s(
            &self.open_account(json!({"kind": "sub", "parent_id": parent}))["account"],
            "id",
        )
    }

    /// A fresh one-time link for `account`.
    fn link(&self, account: &str) -> String {
        let answer = self
            .server
            .request("POST", &format!("/v1/accounts/{account}/portal-sessions"))
            .admin()
            .send()
            .expect(201);
        s(&answer, "url")
    }

    /// Signs the browser in as `account` and waits for the page.
    fn sign_in(&self, account: &str) {
        self.browser.goto(&self.link(account));
        self.browser.wait_text("#account-id", account);
    }

    fn page(&self, query: &str) -> String {
        format!("http://{}/ui/{query}", self.server.addr)
    }

    /// The key `POST /v1/authenticate` finds for these credentials, from
    /// 127.0.0.1: its status.
    fn authenticate(&self, channel: &str, identifier: &str, secret: &str) -> u16 {
        authenticate_from("127.0.0.1", self.server.addr, channel, identifier, secret)
    }

    fn keys(&self, account: &str) -> Vec<Value> {
        self.server
            .get(&format!("/v1/accounts/{account}/keys"))
            .admin()
            .send()
            .expect(200)["keys"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// Opens the "Actions" menu of the key in row `row` (from 1) and clicks
    /// `action`.
    fn action(&self, row: usize, action: &str) {
        let b = &self.browser;
        b.click(&format!("#keys tbody tr:nth-child({row}) [data-menu]"));
        b.click(&format!(
            "#keys tbody tr:nth-child({row}) [data-action=\"{action}\"]"
        ));
    }

    /// The row of the key whose identifier is `identifier`, from 1.
    fn row_of(&self, identifier: &str) -> usize {
        let found = self.browser.execute(
            "const rows = Array.from(document.querySelectorAll('#keys tbody tr'));\
             return rows.findIndex(r => r.dataset.identifier === arguments[0]) + 1;",
            json!([identifier]),
        );
        let row = usize::try_from(found.as_u64().unwrap()).unwrap();
        assert!(row > 0, "no row for {identifier}");
        row
    }
}

/// `POST /v1/authenticate` from `source` (an address of 127.0.0.0/8), over
/// a socket of its own: the answer's status.
fn authenticate_from(
    source: &str,
    server: SocketAddr,
    channel: &str,
    identifier: &str,
    secret: &str,
) -> u16 {
    let socket = socket_from(source);
    let mut stream = connect(socket, server);
    let body = json!({"channel": channel, "identifier": identifier, "secret": secret}).to_string();
    write!(
        stream,
        "POST /v1/authenticate HTTP/1.1\r\nHost: {server}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer}"))
}

fn socket_from(source: &str) -> std::net::SocketAddr {
    format!("{source}:0").parse().unwrap()
}

/// A blocking TCP connection from `from` to `to`.
fn connect(from: SocketAddr, to: SocketAddr) -> std::net::TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(from).unwrap();
        socket.connect(to).await.unwrap()
    });
    let stream = stream.into_std().unwrap();
    stream.set_nonblocking(false).unwrap();
    stream
}

/// Fills the create dialog (already open) and submits it.
fn create_key(b: &Browser, channel: &str, label: Option<&str>, chosen: Option<(&str, &str)>) {
    b.click(&format!(
        "#create-form input[name=channel][value={channel}]"
    ));
    if let Some(label) = label {
        b.type_into("#create-label", label);
    }
    if let Some((identifier, secret)) = chosen {
        b.click("#create-form input[name=identifier-mode][value=choose]");
        b.type_into("#create-identifier", identifier);
        b.click("#create-form input[name=secret-mode][value=choose]");
        b.type_into("#create-secret", secret);
    }
    b.click("#create-submit");
}

/// Reads the secret dialog's secret, confirms it was saved, closes it, and
/// waits for the page to reload.
fn take_secret(b: &Browser) -> (String, String) {
    b.wait_text("#secret-title", "Save this secret");
    let identifier = b.text("#secret-identifier");
    let secret = b.wait("the secret", || {
        let t = b.text("#secret-value");
        (!t.is_empty()).then_some(t)
    });
    // Closing needs the confirmation first.
    assert_eq!(
        b.execute(
            "return document.getElementById('secret-close').disabled",
            json!([])
        ),
        true
    );
    b.click("#secret-saved");
    b.click("#secret-close");
    b.wait("the reload", || {
        (!b.exists("#secret-dialog[open]")).then_some(())
    });
    (identifier, secret)
}

#[test]
fn a_legacy_master_sees_its_four_default_keys() {
    let Some(env) = env("a_legacy_master_sees_its_four_default_keys") else {
        return;
    };
    let b = &env.browser;
    let account = env.master(Some("2021-05-01T00:00:00Z"));
    env.sign_in(&account);
    assert_eq!(b.text("#account-kind"), "Master account");
    assert_eq!(b.text("#account-created"), "2021-05-01 00:00 UTC");
    let rows = b.execute(
        "return Array.from(document.querySelectorAll('#keys tbody tr td:first-child')).map(td => td.textContent)",
        json!([]),
    );
    assert_eq!(rows, json!(["FTP", "HTTP", "Web Service", "Email"]));
    assert!(!b.exists("#empty-state"));
    env.browser.screenshot("ui-key-list-legacy.png");
    // The Actions menu: opened by its button, each item reachable.
    b.click("#keys tbody tr:nth-child(2) [data-menu]");
    let items = b.text("#keys tbody tr:nth-child(2) .menu-items");
    for item in [
        "Change credentials",
        "Edit label",
        "Disable",
        "Set expiry",
        "IP Whitelist",
        "Delete",
    ] {
        assert!(items.contains(item), "{items}");
    }
    // Focus moved into the menu; Escape closes it and gives focus back.
    assert_eq!(
        b.execute("return document.activeElement.textContent", json!([])),
        "Change credentials"
    );
    env.browser.screenshot("ui-actions-menu.png");
    b.keys("\u{E00C}");
    assert_eq!(
        b.execute(
            "return document.activeElement.dataset.menu !== undefined",
            json!([])
        ),
        true
    );
    assert!(!b.exists("#keys tbody tr:nth-child(2) .menu-items:not([hidden])"));
}

#[test]
fn a_new_master_creates_keys_and_sees_each_secret_once() {
    let Some(env) = env("a_new_master_creates_keys_and_sees_each_secret_once") else {
        return;
    };
    let b = &env.browser;
    let account = env.master(None);
    env.sign_in(&account);
    b.wait_text("#empty-state", "No channel is active yet");
    // The first key: a generated REST key.
    b.click("#create-first");
    b.wait("the dialog", || {
        b.exists("#create-dialog[open]").then_some(())
    });
    // Focus moved into the dialog.
    assert_eq!(
        b.execute(
            "return document.getElementById('create-dialog').contains(document.activeElement)",
            json!([])
        ),
        true
    );
    b.click("#create-form input[name=channel][value=rest]");
    env.browser.screenshot("ui-create-modal.png");
    b.click("#create-submit");
    b.wait_text("#secret-title", "Save this secret");
    env.browser.screenshot("ui-secret-once.png");
    let (identifier, secret) = take_secret(b);
    assert_eq!(env.authenticate("rest", &identifier, &secret), 200);
    // Gone after a reload, and after Back: nowhere in the page.
    b.wait_text("#keys", &identifier);
    assert!(!b.source().contains(&secret));
    b.refresh();
    b.wait_text("#keys", &identifier);
    assert!(!b.source().contains(&secret));
    b.goto(&format!("http://{}/ui/signed-out", env.server.addr));
    b.back();
    b.wait_text("#keys", &identifier);
    assert!(!b.source().contains(&secret));
    assert!(!b.current_url().contains(&secret));

    // A second REST key, with a label.
    b.click("#create-open");
    b.wait_text("#create-form", "Another REST key (1 of 10 used)");
    create_key(b, "rest", Some("billing service"), None);
    let (_, second) = take_secret(b);
    assert_ne!(second, secret);
    b.wait_text("#keys", "billing service");

    // An FTP key with chosen credentials: the API's own message next to the
    // field first, then the key, and no secret shown.
    b.click("#create-open");
    create_key(b, "ftp", None, Some(("upload-robot", "short")));
    let message = b.wait_text("#create-secret-error", "secret is 5 characters long");
    assert!(message.contains("12 to 128"), "{message}");
    b.type_into("#create-secret", "a-long-chosen-ftp-secret-1");
    b.click("#create-submit");
    b.wait_text("#keys", "upload-robot");
    assert!(!b.exists("#secret-dialog[open]"));
    assert_eq!(
        env.authenticate("ftp", "upload-robot", "a-long-chosen-ftp-secret-1"),
        200
    );
    // FTP is active now: no longer offered.
    assert!(!b.exists("#create-form input[name=channel][value=ftp]"));
    assert_eq!(env.keys(&account).len(), 3);
}

#[test]
fn a_credential_change_ends_the_old_secret() {
    let Some(env) = env("a_credential_change_ends_the_old_secret") else {
        return;
    };
    let b = &env.browser;
    let account = env.master(None);
    env.server
        .post(
            &format!("/v1/accounts/{account}/keys"),
            json!({"channel": "http", "identifier": "shop-gateway", "secret": "the-old-http-secret-1"}),
        )
        .admin()
        .send()
        .expect(201);
    assert_eq!(
        env.authenticate("http", "shop-gateway", "the-old-http-secret-1"),
        200
    );
    env.sign_in(&account);
    env.action(1, "credentials");
    b.wait_text("#credentials-dialog", "will stop working");
    b.click("#credentials-form input[name=cred-secret][value=generate]");
    b.type_into("#credentials-identifier", "shop-gateway-2");
    b.click("#credentials-submit");
    let (identifier, secret) = take_secret(b);
    assert_eq!(identifier, "shop-gateway-2");
    b.wait_text("#keys", "shop-gateway-2");
    assert_eq!(
        env.authenticate("http", "shop-gateway", "the-old-http-secret-1"),
        401
    );
    assert_eq!(
        env.authenticate("http", "shop-gateway-2", "the-old-http-secret-1"),
        401
    );
    assert_eq!(env.authenticate("http", "shop-gateway-2", &secret), 200);
    // Leaving while the secret is shown, then Back: it is gone.
    env.action(1, "credentials");
    b.click("#credentials-form input[name=cred-secret][value=generate]");
    b.click("#credentials-submit");
    let shown = b.wait("the new secret", || {
        let t = b.text("#secret-value");
        (!t.is_empty()).then_some(t)
    });
    b.goto(&format!("http://{}/ui/signed-out", env.server.addr));
    b.back();
    b.wait_text("#keys", "shop-gateway-2");
    assert!(!b.source().contains(&shown));
    assert!(!b.exists("#secret-dialog[open]"));
    assert_eq!(env.authenticate("http", "shop-gateway-2", &shown), 200);
    // A change that keeps the old secret working for an hour.
    env.action(1, "credentials");
    b.click("#credentials-form input[name=cred-secret][value=generate]");
    b.execute(
        "document.getElementById('credentials-grace').value = '3600';",
        json!([]),
    );
    b.click("#credentials-submit");
    let (_, newest) = take_secret(b);
    assert_eq!(env.authenticate("http", "shop-gateway-2", &newest), 200);
    assert_eq!(
        env.authenticate("http", "shop-gateway-2", &shown),
        200,
        "the old secret, during its hour"
    );
    env.server.clock.advance(time::Duration::minutes(61));
    assert_eq!(env.authenticate("http", "shop-gateway-2", &shown), 401);
}

#[test]
fn a_key_is_deleted_after_confirmation() {
    let Some(env) = env("a_key_is_deleted_after_confirmation") else {
        return;
    };
    let b = &env.browser;
    let account = env.master(Some("2021-05-01T00:00:00Z"));
    env.sign_in(&account);
    let ftp = s(&env.keys(&account)[0], "identifier");
    let row = env.row_of(&ftp);
    env.action(row, "delete");
    b.wait_text("#delete-dialog", "cannot be undone");
    // Cancel keeps it, and focus returns to the menu's button.
    b.click("#delete-dialog [data-close]");
    b.wait("focus back on the Actions button", || {
        (b.execute(
            "return document.activeElement.dataset.menu !== undefined",
            json!([]),
        ) == true)
            .then_some(())
    });
    assert_eq!(env.keys(&account).len(), 4);
    env.action(row, "delete");
    b.click("#delete-submit");
    b.wait("the key to go", || {
        (!b.text("#keys").contains(&ftp)).then_some(())
    });
    assert_eq!(env.keys(&account).len(), 3);
}

#[test]
fn a_master_manages_its_sub_accounts_keys() {
    let Some(env) = env("a_master_manages_its_sub_accounts_keys") else {
        return;
    };
    let b = &env.browser;
    let master = env.master(None);
    env.sign_in(&master);
    // A new sub-account from the page, then its own (empty) key list.
    b.click("#sub-open");
    b.click("#sub-submit");
    let viewing = b.wait("the sub-account's page", || {
        let t = b.text("#viewing");
        (!t.is_empty()).then_some(t)
    });
    assert!(b.current_url().contains(&format!("?account={viewing}")));
    b.wait_text("#empty-state", "This sub-account has no API key");
    b.click("#create-first");
    create_key(b, "email", Some("newsletter"), None);
    let (identifier, secret) = take_secret(b);
    b.wait_text("#keys", "newsletter");
    assert_eq!(env.authenticate("email", &identifier, &secret), 200);
    let keys = env.keys(&viewing);
    assert_eq!(keys.len(), 1);
    assert_eq!(s(&keys[0], "account_id"), viewing);
    // The master's own header stays: it acts, the sub-account is shown.
    assert_eq!(b.text("#account-id"), master);
    env.browser.screenshot("ui-sub-account.png");
    // Back on the master's page, the sub-account is listed, and its link
    // leads to it again.
    b.click("nav.crumbs a");
    b.wait_text("#subs", &viewing);
    b.click("#subs a");
    b.wait_text("#viewing", &viewing);
    b.wait_text("#keys", "newsletter");
    // Same actions there: the credential change of the sub-account's key.
    env.action(1, "credentials");
    b.click("#credentials-form input[name=cred-secret][value=generate]");
    b.click("#credentials-submit");
    let (_, new_secret) = take_secret(b);
    assert_eq!(env.authenticate("email", &identifier, &secret), 401);
    assert_eq!(env.authenticate("email", &identifier, &new_secret), 200);
}

#[test]
fn a_sub_accounts_session_reaches_neither_its_master_nor_a_sibling() {
    let Some(env) = env("a_sub_accounts_session_reaches_neither_its_master_nor_a_sibling") else {
        return;
    };
    let b = &env.browser;
    let master = env.master(Some("2021-05-01T00:00:00Z"));
    let child = env.sub(&master);
    let sibling = env.sub(&master);
    env.sign_in(&child);
    assert_eq!(b.text("#account-kind"), "Sub-account");
    b.wait_text("#empty-state", "This sub-account has no API key");
    assert!(
        !b.exists("#sub-open"),
        "a sub-account opens no sub-accounts"
    );
    for other in [&master, &sibling] {
        b.goto(&env.page(&format!("?account={other}")));
        b.wait_text("h1", "Not found");
        assert!(!b.source().contains(other.as_str()));
        // And the API, with the same session, from the page.
        let status = b.execute_async(
            "const done = arguments[arguments.length - 1];\
             fetch('/v1/accounts/' + arguments[0] + '/keys').then(r => done(r.status));",
            json!([other]),
        );
        assert_eq!(status, 404);
    }
}

#[test]
fn a_forged_form_post_is_refused() {
    let Some(env) = env("a_forged_form_post_is_refused") else {
        return;
    };
    let b = &env.browser;
    let account = env.master(None);
    env.sign_in(&account);
    // A plain HTML form, as another page would post it: the cookie goes
    // along (same site here), the CSRF token does not.
    b.execute(
        "const f = document.createElement('form');\
         f.method = 'post'; f.action = '/v1/accounts/' + arguments[0] + '/keys';\
         f.enctype = 'text/plain';\
         const i = document.createElement('input');\
         i.name = '{\"channel\":\"ftp\",\"x\":\"'; i.value = '\"}';\
         f.appendChild(i); document.body.appendChild(f); f.submit();",
        json!([account]),
    );
    b.wait_text("body", "csrf_failed");
    // And a script's fetch without the header.
    b.goto(&env.page(""));
    b.wait_text("#account-id", &account);
    let status = b.execute_async(
        "const done = arguments[arguments.length - 1];\
         fetch('/v1/accounts/' + arguments[0] + '/keys', {method: 'POST',\
           headers: {'Content-Type': 'application/json'}, body: '{\"channel\":\"ftp\"}'})\
           .then(r => done(r.status));",
        json!([account]),
    );
    assert_eq!(status, 403);
    assert!(env.keys(&account).is_empty());
}

#[test]
fn an_expired_or_reused_link_is_refused() {
    let Some(env) = env("an_expired_or_reused_link_is_refused") else {
        return;
    };
    let b = &env.browser;
    let account = env.master(None);
    let link = env.link(&account);
    b.goto(&link);
    b.wait_text("#account-id", &account);
    // Signed out, the same link again: refused.
    b.click("#sign-out");
    b.wait_text("h1", "Signed out");
    b.goto(&link);
    b.wait_text("h1", "This link cannot be used");
    b.goto(&env.page(""));
    b.wait_text("h1", "Not signed in");
    // A link past its five minutes.
    let late = env.link(&account);
    env.server.clock.advance(time::Duration::minutes(6));
    b.goto(&late);
    b.wait_text("h1", "This link cannot be used");
    b.goto(&env.page(""));
    b.wait_text("h1", "Not signed in");
}

#[test]
fn a_label_with_markup_is_shown_inert() {
    let Some(env) = env("a_label_with_markup_is_shown_inert") else {
        return;
    };
    let b = &env.browser;
    let account = env.master(None);
    env.server
        .post(
            &format!("/v1/accounts/{account}/keys"),
            json!({"channel": "rest", "label": XSS}),
        )
        .admin()
        .send()
        .expect(201);
    env.sign_in(&account);
    assert_eq!(b.text("#keys tbody tr:nth-child(1) td.label"), XSS);
    assert_eq!(
        b.execute(
            "return document.querySelectorAll('#keys img').length",
            json!([])
        ),
        0
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(b.alert_text(), None, "no alert or dialog opened");
    // The audit trail names it too, as text.
    assert_eq!(
        b.execute("return document.querySelectorAll('img').length", json!([])),
        0
    );
}

#[test]
fn the_page_works_from_the_keyboard() {
    let Some(env) = env("the_page_works_from_the_keyboard") else {
        return;
    };
    let b = &env.browser;
    let account = env.master(Some("2021-05-01T00:00:00Z"));
    env.sign_in(&account);
    let active = || {
        b.execute(
            "const e = document.activeElement; return e.id || e.dataset.menu || e.textContent;",
            json!([]),
        )
        .as_str()
        .unwrap_or_default()
        .to_owned()
    };
    let tab_to = |target: &str| {
        for _ in 0..12 {
            b.keys("\u{E004}");
            if active() == target {
                return;
            }
        }
        panic!("Tab never reached {target}; stopped at {}", active());
    };
    // Tab reaches the create button; Enter opens the dialog with focus
    // inside; Escape closes it and gives focus back to the button.
    tab_to("create-open");
    b.keys("\u{E007}");
    b.wait("the dialog", || {
        b.exists("#create-dialog[open]").then_some(())
    });
    assert_eq!(
        b.execute(
            "return document.getElementById('create-dialog').contains(document.activeElement)",
            json!([])
        ),
        true
    );
    b.keys("\u{E00C}");
    b.wait("focus back on the create button", || {
        (active() == "create-open").then_some(())
    });
    // On to the first key's Actions menu: arrows move between its items,
    // Escape closes it.
    let first_menu = b
        .execute(
            "return document.querySelector('#keys [data-menu]').dataset.menu",
            json!([]),
        )
        .as_str()
        .unwrap()
        .to_owned();
    tab_to(&first_menu);
    b.keys("\u{E007}");
    b.wait("the menu's first item", || {
        (active() == "Change credentials").then_some(())
    });
    b.keys("\u{E015}");
    assert_eq!(active(), "Edit label");
    b.keys("\u{E00C}");
    assert_eq!(active(), first_menu);
    // Every control of the page and its dialogs has a name.
    let unnamed = b.execute(
        "return Array.from(document.querySelectorAll('button, input:not([type=hidden]), select, textarea'))\
           .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')\
                        && !e.textContent.trim())\
           .map(e => e.outerHTML);",
        json!([]),
    );
    assert_eq!(unnamed, json!([]), "controls without a label");
}

#[test]
fn the_whitelist_is_edited_and_tested_and_the_api_refuses_other_addresses() {
    let Some(env) = env("the_whitelist_is_edited_and_tested_and_the_api_refuses_other_addresses")
    else {
        return;
    };
    let b = &env.browser;
    let account = env.master(None);
    env.server
        .post(
            &format!("/v1/accounts/{account}/keys"),
            json!({"channel": "http", "identifier": "office-printer", "secret": "printer-secret-123"}),
        )
        .admin()
        .send()
        .expect(201);
    let from = |source: &str| {
        authenticate_from(
            source,
            env.server.addr,
            "http",
            "office-printer",
            "printer-secret-123",
        )
    };
    assert_eq!(from("127.0.0.3"), 200, "no whitelist: any address");
    env.sign_in(&account);
    env.action(1, "whitelist");
    b.wait_text("#whitelist-entries", "any address is accepted");
    // Add two entries, remove one.
    b.type_into("#whitelist-add", "127.0.0.2");
    b.click("#whitelist-add-form button[type=submit]");
    b.wait_text("#whitelist-entries", "127.0.0.2/32");
    b.type_into("#whitelist-add", "127.0.0.9/32");
    b.click("#whitelist-add-form button[type=submit]");
    b.wait_text("#whitelist-entries", "127.0.0.9/32");
    b.click("#whitelist-entries button[aria-label=\"Remove 127.0.0.9/32\"]");
    b.wait("the entry to go", || {
        (!b.text("#whitelist-entries").contains("127.0.0.9")).then_some(())
    });
    // A bad entry: the API's message, next to the field.
    b.type_into("#whitelist-add", "300.1.2.3");
    b.click("#whitelist-add-form button[type=submit]");
    let message = b.wait("the entry's error", || {
        let t = b.text("#whitelist-add-error");
        (!t.is_empty()).then_some(t)
    });
    assert!(message.contains("300.1.2.3"), "{message}");
    b.type_into("#whitelist-add", "");
    // Test an address, in and out.
    b.type_into("#whitelist-test", "127.0.0.2");
    b.click("#whitelist-test-form button[type=submit]");
    let allowed = b.wait_text("#whitelist-test-result", "Allowed");
    assert!(allowed.contains("127.0.0.2"), "{allowed}");
    b.type_into("#whitelist-test", "127.0.0.3");
    b.click("#whitelist-test-form button[type=submit]");
    let refused = b.wait_text("#whitelist-test-result", "Refused");
    assert!(refused.contains("127.0.0.3"), "{refused}");
    env.browser.screenshot("ui-ip-whitelist.png");
    b.click("#whitelist-dialog [data-close]");
    b.wait_text("#keys", "1 entry");
    // Over the API: refused from outside, accepted from inside.
    assert_eq!(from("127.0.0.3"), 403);
    assert_eq!(from("127.0.0.2"), 200);
}

#[test]
fn a_label_is_edited_and_a_stale_page_is_told_to_reload() {
    let Some(env) = env("a_label_is_edited_and_a_stale_page_is_told_to_reload") else {
        return;
    };
    let b = &env.browser;
    let account = env.master(None);
    let key = env
        .server
        .post(
            &format!("/v1/accounts/{account}/keys"),
            json!({"channel": "rest", "label": "old label"}),
        )
        .admin()
        .send()
        .expect(201);
    let key_id = s(&key, "id");
    env.sign_in(&account);
    env.action(1, "label");
    b.type_into("#label-input", XSS);
    b.click("#label-submit");
    b.wait_text("#keys tbody tr:nth-child(1) td.label", XSS);
    assert_eq!(b.alert_text(), None);
    assert_eq!(
        env.keys(&account)[0]["label"].as_str(),
        Some(XSS),
        "saved through the API"
    );
    // Someone else changes the key after the page showed it: the page's
    // change is refused with a clear message, and nothing is changed.
    env.action(1, "credentials");
    env.server
        .post(
            &format!("/v1/keys/{key_id}/credentials"),
            json!({"regenerate_secret": true}),
        )
        .admin()
        .send()
        .expect(200);
    let before = env.keys(&account)[0]["version"].clone();
    b.type_into("#credentials-identifier", "renamed-by-the-page");
    b.click("#credentials-submit");
    b.wait_text("#credentials-error", "changed by someone else");
    assert_eq!(env.keys(&account)[0]["version"], before);
    assert_ne!(
        s(&env.keys(&account)[0], "identifier"),
        "renamed-by-the-page"
    );
}

/// Marks the window, runs `act`, and waits for the page to have reloaded
/// (the mark gone).
fn reloaded(b: &Browser, act: impl FnOnce()) {
    b.execute("window.__before_reload = true; return null;", json!([]));
    act();
    b.wait("the reload", || {
        (b.execute(
            "return window.__before_reload === undefined && document.readyState === 'complete'",
            json!([]),
        ) == json!(true))
        .then_some(())
    });
}

/// The text of the cell `cell` (a class of `td`) of the key `identifier`.
fn cell(env: &Env, identifier: &str, cell: &str) -> String {
    let row = env.row_of(identifier);
    env.browser
        .text(&format!("#keys tbody tr:nth-child({row}) td.{cell}"))
}

#[test]
fn each_key_shows_its_state_expiry_and_last_use() {
    let Some(env) = env("each_key_shows_its_state_expiry_and_last_use") else {
        return;
    };
    let b = &env.browser;
    let account = env.master(None);
    let create = |account: &str, body: Value| {
        env.server
            .post(&format!("/v1/accounts/{account}/keys"), body)
            .admin()
            .send()
            .expect(201)
    };
    create(
        &account,
        json!({"channel": "ftp", "identifier": "soon-expired", "expires_at": "2025-01-01T06:00:00Z"}),
    );
    let off = create(
        &account,
        json!({"channel": "http", "identifier": "switched-off"}),
    );
    env.server
        .request("PATCH", &format!("/v1/keys/{}", s(&off, "id")))
        .json(&json!({"enabled": false}))
        .admin()
        .send()
        .expect(200);
    create(
        &account,
        json!({"channel": "rest", "identifier": "shop-backend", "secret": "correct-horse-42"}),
    );
    create(
        &account,
        json!({"channel": "email", "identifier": "mailer", "label": "Newsletter", "expires_at": "2030-06-01T12:30:00Z"}),
    );
    assert_eq!(
        env.authenticate("rest", "shop-backend", "correct-horse-42"),
        200
    );
    let sub = env.sub(&account);
    create(&sub, json!({"channel": "ftp", "identifier": "sub-uploads"}));
    env.server
        .request("PATCH", &format!("/v1/accounts/{sub}"))
        .json(&json!({"suspended": true}))
        .admin()
        .header("X-Acting-Account", &account)
        .send()
        .expect(200);
    // Seven hours on, the first key is past its expiry.
    env.server.clock.advance(time::Duration::hours(7));
    env.sign_in(&account);
    for (identifier, state, expires, last_used) in [
        ("soon-expired", "Expired", "2025-01-01 06:00 UTC", "never"),
        ("switched-off", "Disabled", "never", "never"),
        ("shop-backend", "Active", "never", "2025-01-01 00:00 UTC"),
        ("mailer", "Active", "2030-06-01 12:30 UTC", "never"),
    ] {
        assert_eq!(cell(&env, identifier, "state"), state, "{identifier}");
        assert_eq!(cell(&env, identifier, "expires"), expires, "{identifier}");
        assert!(
            cell(&env, identifier, "last-used").starts_with(last_used),
            "{identifier}: {}",
            cell(&env, identifier, "last-used")
        );
    }
    assert!(cell(&env, "shop-backend", "last-used").contains("from 127.0.0.1"));
    // The states are badges, each its own class.
    let classes = b.execute(
        "return Array.from(document.querySelectorAll('#keys td.state span')).map(s => s.className)",
        json!([]),
    );
    assert_eq!(
        classes,
        json!([
            "badge state-expired",
            "badge state-active",
            "badge state-disabled",
            "badge state-active"
        ])
    );
    env.browser.screenshot("ui-lifecycle.png");
    // The suspended sub-account's key, seen by its master.
    b.goto(&env.page(&format!("?account={sub}")));
    b.wait_text("#viewing", &sub);
    assert_eq!(cell(&env, "sub-uploads", "state"), "Suspended");
}

#[test]
fn a_key_is_disabled_enabled_and_given_an_expiry_from_its_menu() {
    let Some(env) = env("a_key_is_disabled_enabled_and_given_an_expiry_from_its_menu") else {
        return;
    };
    let b = &env.browser;
    let account = env.master(None);
    let key = env
        .server
        .post(
            &format!("/v1/accounts/{account}/keys"),
            json!({"channel": "http", "identifier": "office-printer", "secret": "printer-secret-123"}),
        )
        .admin()
        .send()
        .expect(201);
    let key_id = s(&key, "id");
    let auth = || env.authenticate("http", "office-printer", "printer-secret-123");
    env.sign_in(&account);
    // Disable: the credentials refuse; the menu offers Enable.
    reloaded(b, || env.action(1, "disable"));
    b.wait_text("#keys tbody tr:nth-child(1) td.state", "Disabled");
    assert_eq!(auth(), 401);
    assert!(!b.exists("#keys [data-action=\"disable\"]"));
    reloaded(b, || env.action(1, "enable"));
    b.wait_text("#keys tbody tr:nth-child(1) td.state", "Active");
    assert_eq!(auth(), 200);
    // Set an expiry: the dialog says the time is UTC; a past one is the
    // API's message beside the field, and nothing changes.
    env.action(1, "expiry");
    b.wait("the expiry dialog", || {
        b.exists("#expiry-dialog[open]").then_some(())
    });
    assert!(b.text("#expiry-dialog").contains("UTC"));
    let set_value = |value: &str| {
        b.execute(
            "document.getElementById('expiry-at').value = arguments[0]; return null;",
            json!([value]),
        );
    };
    set_value("2024-06-01T08:00");
    b.click("#expiry-submit");
    let message = b.wait("the expiry's error", || {
        let t = b.text("#expiry-at-error");
        (!t.is_empty()).then_some(t)
    });
    assert!(message.contains("not in the future"), "{message}");
    assert_eq!(env.keys(&account)[0]["expires_at"], Value::Null);
    set_value("2030-01-01T12:00");
    reloaded(b, || b.click("#expiry-submit"));
    b.wait_text(
        "#keys tbody tr:nth-child(1) td.expires",
        "2030-01-01 12:00 UTC",
    );
    assert_eq!(env.keys(&account)[0]["expires_at"], "2030-01-01T12:00:00Z");
    // Reopened, it starts from the expiry; "No expiry" clears it.
    env.action(1, "expiry");
    assert_eq!(
        b.execute(
            "return document.getElementById('expiry-at').value",
            json!([])
        ),
        "2030-01-01T12:00"
    );
    b.click("#expiry-form input[name=expiry-mode][value=never]");
    reloaded(b, || b.click("#expiry-submit"));
    b.wait_text("#keys tbody tr:nth-child(1) td.expires", "never");
    assert_eq!(env.keys(&account)[0]["expires_at"], Value::Null);
    // A change made elsewhere since the page loaded: told to reload, and
    // the key stays enabled.
    env.server
        .request("PATCH", &format!("/v1/keys/{key_id}"))
        .json(&json!({"label": "changed elsewhere"}))
        .admin()
        .send()
        .expect(200);
    env.action(1, "disable");
    b.wait_text("#status", "changed by someone else");
    assert_eq!(env.keys(&account)[0]["enabled"], true);
    assert_eq!(auth(), 200);
}

#[test]
fn a_masters_policy_is_saved_and_shown_again() {
    let Some(env) = env("a_masters_policy_is_saved_and_shown_again") else {
        return;
    };
    let b = &env.browser;
    let account = env.master(None);
    let sub = env.sub(&account);
    for (channel, identifier) in [("ftp", "sub-uploads"), ("http", "sub-printer")] {
        env.server
            .post(
                &format!("/v1/accounts/{sub}/keys"),
                json!({"channel": channel, "identifier": identifier, "secret": "sub-secret-12345"}),
            )
            .admin()
            .send()
            .expect(201);
    }
    let from = |source: &str, channel: &str, identifier: &str| {
        authenticate_from(
            source,
            env.server.addr,
            channel,
            identifier,
            "sub-secret-12345",
        )
    };
    assert_eq!(from("127.0.0.3", "http", "sub-printer"), 200);
    env.sign_in(&account);
    b.wait_text("#policy-heading", "Policy");
    b.wait_text("#policy-no-entries", "any address");
    // Entries added and removed in the page; a bad one is the API's
    // message beside the list, and nothing is saved.
    b.type_into("#policy-add", "127.0.0.2");
    b.click("#policy-add-button");
    b.wait_text("#policy-entries", "127.0.0.2");
    b.type_into("#policy-add", "300.1.2.3");
    b.keys("\u{E007}");
    b.wait_text("#policy-entries", "300.1.2.3");
    b.click("#policy-save");
    let message = b.wait("the whitelist's error", || {
        let t = b.text("#policy-whitelist-error");
        (!t.is_empty()).then_some(t)
    });
    assert!(message.contains("300.1.2.3"), "{message}");
    b.click("#policy-entries button[aria-label=\"Remove 300.1.2.3\"]");
    b.wait("the entry to go", || {
        (!b.text("#policy-entries").contains("300.1.2.3")).then_some(())
    });
    // FTP no longer for sub-accounts; their keys live at most 30 days.
    b.click("#policy-form input[name=policy-channel][value=ftp]");
    b.type_into("#policy-lifetime", "30");
    reloaded(b, || b.click("#policy-save"));
    // Shown again from the server.
    b.wait_text("#policy-entries", "127.0.0.2/32");
    let checked = b.execute(
        "return Array.from(document.querySelectorAll('input[name=policy-channel]:checked')).map(c => c.value)",
        json!([]),
    );
    assert_eq!(checked, json!(["rest", "http", "web_service", "email"]));
    assert_eq!(
        b.execute(
            "return document.getElementById('policy-lifetime').value",
            json!([])
        ),
        "30"
    );
    assert!(b.exists("#policy-no-entries[hidden]"));
    let policy = env
        .server
        .get(&format!("/v1/accounts/{account}/policy"))
        .admin()
        .send()
        .expect(200);
    assert_eq!(
        policy,
        json!({"whitelist": ["127.0.0.2/32"], "sub_account_channels": ["rest", "http", "web_service", "email"], "max_key_lifetime_seconds": 2_592_000})
    );
    // In force: the sub-account's FTP key refuses, its HTTP key only from
    // inside the list.
    assert_eq!(from("127.0.0.2", "ftp", "sub-uploads"), 401);
    assert_eq!(from("127.0.0.3", "http", "sub-printer"), 403);
    assert_eq!(from("127.0.0.2", "http", "sub-printer"), 200);
    // Cleared again: the lifetime emptied is no limit.
    b.click("#policy-entries button[aria-label=\"Remove 127.0.0.2/32\"]");
    b.type_into("#policy-lifetime", "");
    reloaded(b, || b.click("#policy-save"));
    b.wait_text("#policy-no-entries", "any address");
    let policy = env
        .server
        .get(&format!("/v1/accounts/{account}/policy"))
        .admin()
        .send()
        .expect(200);
    assert_eq!(
        (&policy["whitelist"], &policy["max_key_lifetime_seconds"]),
        (&json!([]), &Value::Null)
    );
}

#[test]
fn a_grace_key_says_whether_its_old_secret_is_still_used() {
    let Some(env) = env("a_grace_key_says_whether_its_old_secret_is_still_used") else {
        return;
    };
    let b = &env.browser;
    let account = env.master(None);
    let key = env
        .server
        .post(
            &format!("/v1/accounts/{account}/keys"),
            json!({"channel": "ftp", "identifier": "nightly-upload", "secret": "old-secret-12345"}),
        )
        .admin()
        .send()
        .expect(201);
    env.server
        .post(
            &format!("/v1/keys/{}/credentials", s(&key, "id")),
            json!({"secret": "new-secret-67890", "grace_seconds": 3600}),
        )
        .admin()
        .send()
        .expect(200);
    env.sign_in(&account);
    assert!(
        cell(&env, "nightly-upload", "last-used").contains("old secret not used since the change")
    );
    // The new secret's use does not count as the old one's.
    assert_eq!(
        env.authenticate("ftp", "nightly-upload", "new-secret-67890"),
        200
    );
    env.server.clock.advance(time::Duration::minutes(5));
    assert_eq!(
        env.authenticate("ftp", "nightly-upload", "old-secret-12345"),
        200
    );
    b.refresh();
    b.wait_text(
        "#keys td.last-used",
        "old secret last used 2025-01-01 00:05 UTC",
    );
    assert!(cell(&env, "nightly-upload", "last-used").starts_with("2025-01-01 00:05 UTC"));
    // Without a grace period there is no such line.
    let other = env
        .server
        .post(
            &format!("/v1/accounts/{account}/keys"),
            json!({"channel": "http", "identifier": "no-grace"}),
        )
        .admin()
        .send()
        .expect(201);
    assert!(other["grace_until"].is_null());
    b.refresh();
    b.wait_text("#keys", "no-grace");
    assert!(!cell(&env, "no-grace", "last-used").contains("old secret"));
}

//! A small W3C WebDriver client for the browser tests: chromedriver started
//! on a free port, headless Chromium, and the handful of commands the tests
//! use, over the `ureq` client the other tests already use.
//!
//! Decision: not a WebDriver crate. The tests need a dozen commands, each a
//! JSON request; `fantoccini`, the usual choice, would add some fifty crates
//! to the build (two versions of the ICU crates through `webdriver`, `url`,
//! `cookie`, a second `thiserror`), for what this file does in a few hundred
//! lines.

// Test support: failing loudly is its job.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{Value, json};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// One browser at a time: the machine has two cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A headless Chromium driven through chromedriver; both end on drop.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    agent: ureq::Agent,
    _turn: MutexGuard<'static, ()>,
}

/// A WebDriver error: its `error` code and message.
#[derive(Debug)]
pub struct WdError {
    pub error: String,
    pub message: String,
}

fn binary(env: &str, default: &str) -> PathBuf {
    std::env::var_os(env).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

impl Browser {
    /// A browser, or `None` (saying SKIPPED) when Chromium or its driver is
    /// missing; under `APIKEYS_REQUIRE_BROWSER=1` a missing browser fails.
    pub fn start(test: &str) -> Option<Browser> {
        let driver = binary("APIKEYS_CHROMEDRIVER", CHROMEDRIVER);
        let chromium = binary("APIKEYS_CHROMIUM", CHROMIUM);
        if !driver.exists() || !chromium.exists() {
            let what = format!(
                "{test}: SKIPPED: no browser ({} or {} is missing; install Debian's chromium and chromium-driver)",
                driver.display(),
                chromium.display()
            );
            if std::env::var("APIKEYS_REQUIRE_BROWSER").is_ok_and(|v| v == "1") {
                panic!("{what}, and APIKEYS_REQUIRE_BROWSER=1");
            }
            eprintln!("{what}");
            return None;
        }
        let turn = ONE_AT_A_TIME
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            let ready = agent
                .get(format!("{base}/status"))
                .call()
                .ok()
                .and_then(|mut r| r.body_mut().read_to_vec().ok())
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .is_some_and(|v| v["value"]["ready"] == true);
            if ready {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut browser = Browser {
            driver: child,
            base,
            session: String::new(),
            agent,
            _turn: turn,
        };
        let mut args = vec![
            "--headless=new",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1280,900",
            "--no-first-run",
            "--force-device-scale-factor=1",
        ];
        // Chromium's sandbox cannot run as root.
        if std::env::var("USER").is_ok_and(|u| u == "root") || is_root() {
            args.push("--no-sandbox");
        }
        let answer = browser
            .command(
                "POST",
                "/session",
                json!({"capabilities": {"alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {"binary": chromium, "args": args},
                }}}),
            )
            .unwrap();
        browser.session = answer["value"]["sessionId"].as_str().unwrap().to_owned();
        Some(browser)
    }

    fn command(&self, method: &str, path: &str, body: Value) -> Result<Value, WdError> {
        let url = format!("{}{path}", self.base);
        let mut response = match method {
            "GET" => self.agent.get(&url).call(),
            "DELETE" => self.agent.delete(&url).call(),
            _ => self
                .agent
                .post(&url)
                .header("Content-Type", "application/json")
                .send(body.to_string().as_bytes()),
        }
        .unwrap();
        let ok = response.status().is_success();
        let value: Value =
            serde_json::from_slice(&response.body_mut().read_to_vec().unwrap()).unwrap();
        if ok {
            Ok(value)
        } else {
            Err(WdError {
                error: value["value"]["error"].as_str().unwrap_or("").to_owned(),
                message: value["value"]["message"].as_str().unwrap_or("").to_owned(),
            })
        }
    }

    fn session_command(&self, method: &str, path: &str, body: Value) -> Result<Value, WdError> {
        let path = format!("/session/{}{path}", self.session);
        self.command(method, &path, body)
            .map(|v| v["value"].clone())
    }

    /// Opens `url` and waits for it to load.
    pub fn goto(&self, url: &str) {
        self.session_command("POST", "/url", json!({"url": url}))
            .unwrap();
    }

    pub fn back(&self) {
        self.session_command("POST", "/back", json!({})).unwrap();
    }

    pub fn refresh(&self) {
        self.session_command("POST", "/refresh", json!({})).unwrap();
    }

    pub fn current_url(&self) -> String {
        self.session_command("GET", "/url", Value::Null)
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The page's HTML as the browser now holds it.
    pub fn source(&self) -> String {
        self.session_command("GET", "/source", Value::Null)
            .unwrap()
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn find_now(&self, css: &str) -> Option<String> {
        self.session_command(
            "POST",
            "/element",
            json!({"using": "css selector", "value": css}),
        )
        .ok()
        .map(|v| v[ELEMENT].as_str().unwrap().to_owned())
    }

    /// Whether an element matches `css` now.
    pub fn exists(&self, css: &str) -> bool {
        self.find_now(css).is_some()
    }

    /// The element `css` selects, waiting up to 10 s for it.
    pub fn find(&self, css: &str) -> String {
        self.wait(&format!("an element {css}"), || self.find_now(css))
    }

    /// Waits up to 10 s for `f` to give something.
    pub fn wait<T>(&self, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let started = Instant::now();
        loop {
            if let Some(found) = f() {
                return found;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "waited 10 s for {what}; the page is at {}:\n{}",
                self.current_url(),
                self.text("body")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Clicks the element `css` selects, once it is displayed.
    pub fn click(&self, css: &str) {
        let started = Instant::now();
        loop {
            let id = self.find(css);
            match self.session_command("POST", &format!("/element/{id}/click"), json!({})) {
                Ok(_) => return,
                Err(e) if started.elapsed() < Duration::from_secs(10) => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("cannot click {css}: {} {}", e.error, e.message),
            }
        }
    }

    /// Types `text` into the element `css` selects, after clearing it.
    pub fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.session_command("POST", &format!("/element/{id}/clear"), json!({}))
            .unwrap();
        self.session_command(
            "POST",
            &format!("/element/{id}/value"),
            json!({"text": text}),
        )
        .unwrap();
    }

    /// Presses keys (WebDriver key codes, e.g. "\u{E00C}" for Escape) in the
    /// focused element.
    pub fn keys(&self, keys: &str) {
        let actions: Vec<Value> = keys
            .chars()
            .flat_map(|c| {
                [
                    json!({"type": "keyDown", "value": c.to_string()}),
                    json!({"type": "keyUp", "value": c.to_string()}),
                ]
            })
            .collect();
        self.session_command(
            "POST",
            "/actions",
            json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]}),
        )
        .unwrap();
    }

    /// The rendered text of the element `css` selects.
    pub fn text(&self, css: &str) -> String {
        let Some(id) = self.find_now(css) else {
            return String::new();
        };
        self.session_command("GET", &format!("/element/{id}/text"), Value::Null)
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .unwrap_or_default()
    }

    /// Waits until the element `css` selects shows a text containing `part`.
    pub fn wait_text(&self, css: &str, part: &str) -> String {
        self.wait(&format!("{css} to show {part:?}"), || {
            let t = self.text(css);
            t.contains(part).then_some(t)
        })
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns
    /// what it returns.
    pub fn execute(&self, script: &str, args: Value) -> Value {
        self.session_command(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": args}),
        )
        .unwrap_or_else(|e| panic!("script failed: {} {}", e.error, e.message))
    }

    /// Runs an async `script`: its last argument is the callback.
    pub fn execute_async(&self, script: &str, args: Value) -> Value {
        self.session_command(
            "POST",
            "/execute/async",
            json!({"script": script, "args": args}),
        )
        .unwrap_or_else(|e| panic!("script failed: {} {}", e.error, e.message))
    }

    /// The text of an open alert, confirm or prompt, if one is open.
    pub fn alert_text(&self) -> Option<String> {
        self.session_command("GET", "/alert/text", Value::Null)
            .ok()
            .map(|v| v.as_str().unwrap_or_default().to_owned())
    }

    /// Saves a PNG of the window as `name`: into `docs/` under
    /// `APIKEYS_UPDATE_SCREENSHOTS=1`, else into a temporary directory.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        use base64ct::{Base64, Encoding};
        let data = self
            .session_command("GET", "/screenshot", Value::Null)
            .unwrap();
        let png = Base64::decode_vec(data.as_str().unwrap()).unwrap();
        let dir = if std::env::var("APIKEYS_UPDATE_SCREENSHOTS").is_ok_and(|v| v == "1") {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs")
        } else {
            std::env::temp_dir().join("apikeys-ui-screenshots")
        };
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, png).unwrap();
        path
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .is_some_and(|l| l.split_whitespace().nth(1) == Some("0"))
    })
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.command("DELETE", &format!("/session/{}", self.session), Value::Null);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

//! The browser tests' WebDriver client: chromedriver started on a free
//! port, headless Chromium, and the handful of commands the tests use,
//! through `fantoccini` on a current-thread runtime the `Browser` owns, so
//! that the tests stay synchronous.
//!
//! Decision: `fantoccini` (0.22), the maintained W3C WebDriver client for
//! Rust, rather than a hand-written one: it knows the protocol's shapes
//! (sessions, element references, actions, errors) so these tests need not.
//! Its default features are off, and with them every TLS stack: chromedriver
//! listens on loopback, and plain HTTP through `hyper-util`'s connector is
//! all it takes. The price is some fifty crates in the tests' build (the
//! `webdriver` protocol types, `url` and its ICU crates, `cookie`, a second
//! `thiserror` and `http`); it is a dev-dependency only, so the server's own
//! build does not see them.

// Test support: failing loudly is its job.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::elements::Element;
use fantoccini::error::CmdError;
use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::future::Future;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
/// The longest one command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// One browser at a time: the machine has two cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A headless Chromium driven through chromedriver; both end on drop.
pub struct Browser {
    // Dropped in this order, after `Drop::drop` has ended the session: the
    // client, the runtime that drives it, chromedriver, then the turn.
    client: Client,
    runtime: tokio::runtime::Runtime,
    _driver: Driver,
    _turn: MutexGuard<'static, ()>,
}

/// The chromedriver process, killed on drop (also when `start` fails
/// half-way).
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn binary(env: &str, default: &str) -> PathBuf {
    std::env::var_os(env).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

/// A WebDriver error as its code and message, anything else as it prints.
fn describe(e: &CmdError) -> String {
    match e {
        CmdError::Standard(wd) => format!("{} {}", wd.error, wd.message),
        other => other.to_string(),
    }
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
        let mut child = Driver(
            Command::new(&driver)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        // chromedriver listens once it is ready.
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(child.0.try_wait().unwrap().is_none(), "chromedriver exited");
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
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
        let mut capabilities = Capabilities::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({"binary": chromium, "args": args}),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = runtime
            .block_on(async {
                tokio::time::timeout(
                    COMMAND_TIMEOUT,
                    ClientBuilder::new(connector)
                        .capabilities(capabilities)
                        .connect(&format!("http://127.0.0.1:{port}")),
                )
                .await
            })
            .expect("chromedriver did not open a session in time")
            .unwrap_or_else(|e| panic!("cannot open a session: {e}"));
        Some(Browser {
            client,
            runtime,
            _driver: child,
            _turn: turn,
        })
    }

    /// Runs one command to its end, or fails after a minute.
    fn run<T>(&self, command: impl Future<Output = Result<T, CmdError>>) -> Result<T, CmdError> {
        self.runtime
            .block_on(async { tokio::time::timeout(COMMAND_TIMEOUT, command).await })
            .unwrap_or_else(|_| panic!("a WebDriver command took over {COMMAND_TIMEOUT:?}"))
    }

    /// Opens `url` and waits for it to load.
    pub fn goto(&self, url: &str) {
        self.run(self.client.goto(url)).unwrap();
    }

    pub fn back(&self) {
        self.run(self.client.back()).unwrap();
    }

    pub fn refresh(&self) {
        self.run(self.client.refresh()).unwrap();
    }

    pub fn current_url(&self) -> String {
        self.run(self.client.current_url()).unwrap().into()
    }

    /// The page's HTML as the browser now holds it.
    pub fn source(&self) -> String {
        self.run(self.client.source()).unwrap()
    }

    fn find_now(&self, css: &str) -> Option<Element> {
        self.run(self.client.find(Locator::Css(css))).ok()
    }

    /// Whether an element matches `css` now.
    pub fn exists(&self, css: &str) -> bool {
        self.find_now(css).is_some()
    }

    /// The WebDriver reference of the element `css` selects, waiting up to
    /// 10 s for it.
    pub fn find(&self, css: &str) -> String {
        self.find_element(css).element_id().to_string()
    }

    fn find_element(&self, css: &str) -> Element {
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
            let element = self.find_element(css);
            match self.run(element.click()) {
                Ok(()) => return,
                Err(_) if started.elapsed() < Duration::from_secs(10) => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("cannot click {css}: {}", describe(&e)),
            }
        }
    }

    /// Types `text` into the element `css` selects, after clearing it.
    pub fn type_into(&self, css: &str, text: &str) {
        let element = self.find_element(css);
        self.run(element.clear()).unwrap();
        self.run(element.send_keys(text)).unwrap();
    }

    /// Presses keys (WebDriver key codes, e.g. "\u{E00C}" for Escape) in the
    /// focused element.
    pub fn keys(&self, keys: &str) {
        let actions = keys
            .chars()
            .fold(KeyActions::new("keyboard".into()), |a, c| {
                a.then(KeyAction::Down { value: c })
                    .then(KeyAction::Up { value: c })
            });
        self.run(self.client.perform_actions(actions)).unwrap();
    }

    /// The rendered text of the element `css` selects.
    pub fn text(&self, css: &str) -> String {
        let Some(element) = self.find_now(css) else {
            return String::new();
        };
        self.run(element.text()).unwrap_or_default()
    }

    /// Waits until the element `css` selects shows a text containing `part`.
    pub fn wait_text(&self, css: &str, part: &str) -> String {
        self.wait(&format!("{css} to show {part:?}"), || {
            let t = self.text(css);
            t.contains(part).then_some(t)
        })
    }

    /// Runs `script` (a function body; `arguments` holds `args`, a JSON
    /// array) and returns what it returns.
    pub fn execute(&self, script: &str, args: Value) -> Value {
        self.run(self.client.execute(script, arguments(args)))
            .unwrap_or_else(|e| panic!("script failed: {}", describe(&e)))
    }

    /// Runs an async `script`: its last argument is the callback.
    pub fn execute_async(&self, script: &str, args: Value) -> Value {
        self.run(self.client.execute_async(script, arguments(args)))
            .unwrap_or_else(|e| panic!("script failed: {}", describe(&e)))
    }

    /// The text of an open alert, confirm or prompt, if one is open.
    pub fn alert_text(&self) -> Option<String> {
        self.run(self.client.get_alert_text()).ok()
    }

    /// Saves a PNG of the window as `name`: into `docs/` under
    /// `APIKEYS_UPDATE_SCREENSHOTS=1`, else into a temporary directory.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.run(self.client.screenshot()).unwrap();
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

/// A script's arguments: `args` must be a JSON array (`null` is none).
fn arguments(args: Value) -> Vec<Value> {
    match args {
        Value::Array(args) => args,
        Value::Null => Vec::new(),
        other => panic!("a script's arguments are a JSON array, not {other}"),
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
        // Ends the session (and Chromium); chromedriver ends after, with
        // `Driver`.
        let client = self.client.clone();
        let _ = self
            .runtime
            .block_on(async { tokio::time::timeout(COMMAND_TIMEOUT, client.close()).await });
    }
}

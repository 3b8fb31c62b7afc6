//! Test support (feature `testing`): a throw-away schema per test, so that
//! tests run in parallel against one server and leave nothing behind.
//!
//! Which server, and what happens without one ([`availability`]):
//! - [`URL_VAR`] names the server. Unset or empty, the tests try
//!   [`DEFAULT_URL`], the server this project's machines run.
//! - If the server answers, the tests run on it.
//! - If the default server does not answer, the tests are skipped: the
//!   first of them prints one line on stderr saying so, naming the
//!   variables to set, and each returns early (`TestSchema::new` is `None`).
//! - If a server named by [`URL_VAR`] does not answer, or [`REQUIRE_VAR`]
//!   is `1` (as in CI), every PostgreSQL test fails with a message saying
//!   why, so that a skipped backend is never counted as a pass.
//!
//! ```no_run
//! use apikeys_postgres::testing::TestSchema;
//!
//! let Some(db) = TestSchema::new("my_test") else { return };
//! let store = db.store(4);
//! // ... use `store`; the schema is dropped with `db`.
//! ```
//!
//! For the conformance suite, [`test_store`] gives a store that drops its
//! schema when it is dropped:
//!
//! ```ignore
//! apikeys::store_conformance_tests!(apikeys_postgres::testing::test_store());
//! ```
#![allow(clippy::panic, clippy::expect_used)]

use crate::{Options, PostgresStore};
use apikeys::testing::Guarded;
use postgres::{Config, NoTls};
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::Write as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The environment variable naming the test server, e.g.
/// `postgres://postgres@127.0.0.1:5432/test`.
pub const URL_VAR: &str = "APIKEYS_TEST_POSTGRES_URL";

/// The environment variable that, set to `1`, makes a PostgreSQL test fail
/// instead of skipping when its server does not answer. CI sets it.
pub const REQUIRE_VAR: &str = "APIKEYS_REQUIRE_POSTGRES";

/// The server tried when [`URL_VAR`] is unset: the one this project's
/// machines run (trust authentication, database `test`).
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// How long the first test waits for the server to answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// What the PostgreSQL tests of this process do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Availability {
    /// Run on the server at this URL.
    Run(String),
    /// Skip, for this reason (a line for the developer).
    Skip(String),
    /// Fail, with this message.
    Fail(String),
}

/// Decides between running, skipping and failing, from the values of
/// [`URL_VAR`] and [`REQUIRE_VAR`] and from `probe`, which tries to connect
/// to a URL and says why it could not (see the module's docs for the rules).
/// Messages never show the URL's password.
pub fn availability(
    url: Option<&str>,
    require: Option<&str>,
    probe: impl FnOnce(&str) -> Result<(), String>,
) -> Availability {
    let named = url.map(str::trim).filter(|u| !u.is_empty());
    let required = require.map(str::trim) == Some("1");
    let url = named.unwrap_or(DEFAULT_URL);
    let Err(why) = probe(url) else {
        return Availability::Run(url.to_owned());
    };
    let shown = crate::redact_password(url, url);
    let why = crate::redact_password(&why, url);
    if required {
        Availability::Fail(format!(
            "the PostgreSQL tests are required ({REQUIRE_VAR}=1) but the server at {shown} \
             does not answer: {why}"
        ))
    } else if named.is_some() {
        Availability::Fail(format!(
            "{URL_VAR} names a PostgreSQL server at {shown} that does not answer: {why} \
             (unset it to skip the PostgreSQL tests when the default server is down)"
        ))
    } else {
        Availability::Skip(format!(
            "PostgreSQL tests skipped: no server at {shown} ({why}); set {URL_VAR} to a \
             server to run them, and {REQUIRE_VAR}=1 to make a missing server a failure"
        ))
    }
}

/// Connects once to `url`, within a few seconds.
fn probe(url: &str) -> Result<(), String> {
    let mut config: Config = url
        .parse()
        .map_err(|e| format!("not a PostgreSQL URL: {e}"))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(PROBE_TIMEOUT);
    }
    config
        .connect(NoTls)
        .map(drop)
        .map_err(|e| crate::error::full(&e).to_string())
}

/// This process's [`Availability`], decided by the first test that asks
/// (which prints the skip line, once per test binary).
fn decided() -> &'static Availability {
    static DECIDED: OnceLock<Availability> = OnceLock::new();
    DECIDED.get_or_init(|| {
        let url = std::env::var(URL_VAR).ok();
        let require = std::env::var(REQUIRE_VAR).ok();
        let decided = availability(url.as_deref(), require.as_deref(), probe);
        if let Availability::Skip(reason) = &decided {
            // Written to the process's stderr, not through `eprintln!`,
            // which the test harness captures and shows only for failing
            // tests; in one write, so that it does not mix with other lines.
            let line = format!("{reason}\n");
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        }
        decided
    })
}

/// The test server's URL, or `None` when the PostgreSQL tests are skipped
/// on this machine (see the module's docs).
///
/// # Panics
/// When they must run and cannot: a server named by [`URL_VAR`] that does
/// not answer, or any missing server under [`REQUIRE_VAR`]`=1`.
pub fn test_url() -> Option<String> {
    match decided() {
        Availability::Run(url) => Some(url.clone()),
        Availability::Skip(_) => None,
        Availability::Fail(message) => panic!("{message}"),
    }
}

/// A name no other test of any process uses at the same time: the tag, and
/// 64 bits from the standard library's randomly seeded hasher with the
/// process id and a counter.
pub fn unique_name(tag: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let tag: String = tag
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(32)
        .collect();
    format!("apikeys_t_{tag}_{:016x}", h.finish())
}

/// A schema of its own on the test server, dropped (with everything in it)
/// when this value is dropped. Connections made through [`TestSchema::url`]
/// report [`TestSchema::application_name`], so a test can find, and
/// terminate, exactly its own sessions.
#[derive(Debug)]
pub struct TestSchema {
    url: String,
    schema: String,
}

impl TestSchema {
    /// A fresh schema name for `test` (created by the first store that
    /// connects to it), or `None` when the PostgreSQL tests are skipped.
    ///
    /// # Panics
    /// When they must run and cannot (see [`test_url`]).
    pub fn new(test: &str) -> Option<Self> {
        let base = test_url()?;
        let schema = unique_name(test);
        let sep = if base.contains('?') { '&' } else { '?' };
        // The schema name doubles as the application name: unique, and a
        // valid value.
        let url = format!("{base}{sep}application_name={schema}");
        Some(TestSchema { url, schema })
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.schema
    }

    /// The application name this test's connections report.
    pub fn application_name(&self) -> &str {
        &self.schema
    }

    /// The server's URL with this test's application name.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A store in this schema with a pool of `pool_size` connections.
    ///
    /// # Panics
    /// If it cannot connect: this is for tests.
    pub fn store(&self, pool_size: u32) -> PostgresStore {
        self.store_with(Options::default().pool_size(pool_size))
    }

    /// A store in this schema with other options (the schema is set here).
    ///
    /// # Panics
    /// If it cannot connect: this is for tests.
    pub fn store_with(&self, options: Options) -> PostgresStore {
        PostgresStore::connect_with(&self.url, options.schema(self.schema.clone()))
            .unwrap_or_else(|e| panic!("cannot connect to the test database: {e}"))
    }

    /// A plain client on the test server (default schema), for a test's own
    /// SQL.
    ///
    /// # Panics
    /// If it cannot connect: this is for tests.
    pub fn client(&self) -> postgres::Client {
        let config: Config = self.url.parse().expect("the test URL parses");
        config
            .connect(NoTls)
            .unwrap_or_else(|e| panic!("cannot connect to the test database: {e}"))
    }

    /// A connection to the test server under an application name of its
    /// own (`apikeys-test-admin`), so that terminating the test's sessions
    /// spares it.
    pub fn admin_client(&self) -> postgres::Client {
        let mut config: Config = self.url.parse().expect("the test URL parses");
        config.application_name("apikeys-test-admin");
        config
            .connect(NoTls)
            .unwrap_or_else(|e| panic!("cannot connect to the test database: {e}"))
    }

    /// Terminates every session of the server whose application name is
    /// `app` (this schema's pools use [`TestSchema::application_name`]),
    /// from an [`admin connection`](TestSchema::admin_client), waits until
    /// those sessions are gone (new ones may have started meanwhile), and
    /// returns how many were terminated.
    pub fn terminate_sessions(&self, app: &str) -> usize {
        let mut admin = self.admin_client();
        let killed: Vec<i32> = admin
            .query(
                // Materialised first, so that pg_terminate_backend runs on
                // these sessions only, never on a row the filter has not
                // seen yet (it may be evaluated before the other filters).
                "WITH victims AS MATERIALIZED ( \
                     SELECT pid FROM pg_stat_activity \
                     WHERE datname = current_database() AND pid <> pg_backend_pid() \
                     AND application_name = $1) \
                 SELECT pid FROM victims WHERE pg_terminate_backend(pid)",
                &[&app],
            )
            .unwrap_or_else(|e| panic!("cannot terminate sessions: {e}"))
            .iter()
            .map(|r| r.get(0))
            .collect();
        for _ in 0..500 {
            let left: i64 = admin
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)",
                    &[&killed],
                )
                .unwrap_or_else(|e| panic!("cannot count sessions: {e}"))
                .get(0);
            if left == 0 {
                return killed.len();
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("sessions of {app} survived pg_terminate_backend");
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        // Best effort: a failure here must not hide the test's own result.
        let dropped = self.url.parse::<Config>().ok().and_then(|config| {
            let mut client = config.connect(NoTls).ok()?;
            client
                .batch_execute(&format!(
                    "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
                    self.schema
                ))
                .ok()
        });
        if dropped.is_none() {
            eprintln!("could not drop test schema {}", self.schema);
        }
    }
}

/// A [`PostgresStore`] in a [`TestSchema`] of its own, dropped with it (the
/// pool closes first, then the schema is dropped).
pub type TestStore = Guarded<PostgresStore, TestSchema>;

/// A store for one conformance test, in a schema of its own, with a pool of
/// 12 connections (the suite races 8 threads); `None` when the PostgreSQL
/// tests are skipped.
pub fn test_store() -> Option<TestStore> {
    let schema = TestSchema::new("conformance")?;
    let store = schema.store(12);
    Some(Guarded {
        store,
        guard: schema,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unreachable(_: &str) -> Result<(), String> {
        Err("connection refused".to_owned())
    }

    #[test]
    fn a_reachable_server_runs() {
        assert_eq!(
            availability(None, None, |_| Ok(())),
            Availability::Run(DEFAULT_URL.to_owned())
        );
        assert_eq!(
            availability(Some("postgres://u@db/x"), Some("1"), |_| Ok(())),
            Availability::Run("postgres://u@db/x".to_owned())
        );
    }

    #[test]
    fn the_default_server_missing_skips_unless_required() {
        for unset in [None, Some(""), Some("  ")] {
            let Availability::Skip(reason) = availability(unset, None, unreachable) else {
                panic!("not a skip");
            };
            assert!(reason.contains(URL_VAR) && reason.contains(REQUIRE_VAR));
            assert!(reason.contains("127.0.0.1:5432"), "{reason}");
            assert!(matches!(
                availability(unset, Some("0"), unreachable),
                Availability::Skip(_)
            ));
            let Availability::Fail(message) = availability(unset, Some("1"), unreachable) else {
                panic!("required, yet not a failure");
            };
            assert!(message.contains(REQUIRE_VAR), "{message}");
        }
    }

    #[test]
    fn a_named_server_missing_fails_without_showing_its_password() {
        let url = "postgres://app:Hunter2-pw@127.0.0.1:1/x";
        for require in [None, Some("1")] {
            let Availability::Fail(message) =
                availability(Some(url), require, |_| Err(format!("refused by {url}")))
            else {
                panic!("not a failure");
            };
            assert!(message.contains("127.0.0.1:1"), "{message}");
            assert!(!message.contains("Hunter2"), "{message}");
        }
    }

    /// The real probe, fed a port nothing listens on.
    #[test]
    fn the_probe_reports_an_unreachable_server() {
        let url = "postgres://postgres@127.0.0.1:1/test?connect_timeout=2";
        assert!(probe(url).is_err());
        assert!(matches!(
            availability(None, None, |_| probe(url)),
            Availability::Skip(_)
        ));
        assert!(matches!(
            availability(None, Some("1"), |_| probe(url)),
            Availability::Fail(_)
        ));
        assert!(probe("mysql://nope").is_err());
    }
}

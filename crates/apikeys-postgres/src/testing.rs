//! Test support (feature `testing`): a throw-away schema per test, so that
//! tests run in parallel against one server and leave nothing behind.
//!
//! The server is named by the environment variable [`URL_VAR`]; when it is
//! unset, [`TestSchema::new`] prints one line saying the test is skipped and
//! why, and returns `None`, so that a machine without PostgreSQL still
//! passes.
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
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable naming the test server, e.g.
/// `postgres://postgres@127.0.0.1:5432/test`.
pub const URL_VAR: &str = "APIKEYS_TEST_POSTGRES_URL";

/// The test server's URL, or `None` (after printing that `test` is skipped)
/// when [`URL_VAR`] is unset or empty.
pub fn test_url(test: &str) -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            // The harness names each test's thread after the test.
            let thread = std::thread::current();
            let test = thread.name().filter(|n| *n != "main").unwrap_or(test);
            // Written to the process's stderr, not through `eprintln!`, which
            // the test harness captures and shows only for failing tests.
            let line = format!(
                "skipped {test}: set {URL_VAR} (e.g. postgres://postgres@127.0.0.1:5432/test) to run the PostgreSQL tests\n"
            );
            // One write, so that lines of tests running at once do not mix.
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
            None
        }
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
    /// connects to it), or `None` if [`URL_VAR`] is unset.
    pub fn new(test: &str) -> Option<Self> {
        let base = test_url(test)?;
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
/// 12 connections (the suite races 8 threads); `None` if [`URL_VAR`] is
/// unset.
pub fn test_store() -> Option<TestStore> {
    let schema = TestSchema::new("conformance")?;
    let store = schema.store(12);
    Some(Guarded {
        store,
        guard: schema,
    })
}

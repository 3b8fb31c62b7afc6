//! Helpers shared by the integration tests.
#![allow(dead_code)] // Each test file uses some of these.

use apikeys::testing::Guarded;
use apikeys_sqlite::SqliteStore;
use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Stdio};
use tempfile::TempDir;

/// A store on a file in its own temporary directory, removed with it.
pub type TempStore = Guarded<SqliteStore, TempDir>;

/// A new [`TempStore`].
pub fn temp_store() -> TempStore {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("test.db")).unwrap();
    Guarded { store, guard: dir }
}

/// `PRAGMA integrity_check` on the file, through a connection of its own.
pub fn integrity_check(path: &Path) -> String {
    let conn = rusqlite::Connection::open(path).unwrap();
    let rows: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    rows.join("\n")
}

/// The environment variable telling a re-executed test binary which worker
/// it is.
pub const WORKER: &str = "APIKEYS_SQLITE_TEST_WORKER";

/// This test binary run again, running only the test `name` (a worker that
/// does nothing unless [`WORKER`] names it), with its output not captured.
pub fn worker(name: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([name, "--exact", "--nocapture", "--test-threads=1", "-q"])
        .env(WORKER, name)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    cmd
}

/// Whether this process is the worker `name`.
pub fn is_worker(name: &str) -> bool {
    std::env::var_os(WORKER).as_deref() == Some(OsStr::new(name))
}

/// The text after `marker` on a line of worker output (the test harness may
/// print its own text before it on the same line).
pub fn after<'l>(line: &'l str, marker: &str) -> Option<&'l str> {
    line.find(marker).map(|i| &line[i + marker.len()..])
}

/// A small random generator for test choices (not for secrets), seeded
/// differently in every run.
pub struct Dice(u64);

impl Dice {
    pub fn new() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        Dice(h.finish() | 1)
    }

    /// A number in `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        lo + self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % (hi - lo + 1)
    }
}

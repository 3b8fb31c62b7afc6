//! Helpers shared by the integration tests.
#![allow(dead_code)] // Each test file uses some of these.

use apikeys::{Account, AccountId, AuditEvent, KeyId, KeyRecord, Store, StoreError};
use apikeys_sqlite::SqliteStore;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use tempfile::TempDir;

/// A store on a file in its own temporary directory, removed with it.
pub struct TempStore {
    pub store: SqliteStore,
    pub dir: TempDir,
}

impl TempStore {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("test.db")).unwrap();
        TempStore { store, dir }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("test.db")
    }
}

impl Store for TempStore {
    fn create_account(
        &self,
        account: &Account,
        keys: &[KeyRecord],
        events: &[AuditEvent],
    ) -> Result<(), StoreError> {
        self.store.create_account(account, keys, events)
    }
    fn account(&self, id: AccountId) -> Result<Option<Account>, StoreError> {
        self.store.account(id)
    }
    fn insert_key(&self, key: &KeyRecord, max: u32, event: &AuditEvent) -> Result<(), StoreError> {
        self.store.insert_key(key, max, event)
    }
    fn key(&self, id: KeyId) -> Result<Option<KeyRecord>, StoreError> {
        self.store.key(id)
    }
    fn key_by_identifier(&self, identifier: &str) -> Result<Option<KeyRecord>, StoreError> {
        self.store.key_by_identifier(identifier)
    }
    fn keys_of_account(&self, account: AccountId) -> Result<Vec<KeyRecord>, StoreError> {
        self.store.keys_of_account(account)
    }
    fn update_key(
        &self,
        key: &KeyRecord,
        expected: u64,
        event: &AuditEvent,
    ) -> Result<(), StoreError> {
        self.store.update_key(key, expected, event)
    }
    fn upgrade_secret_hash(
        &self,
        id: KeyId,
        current: &str,
        upgraded: &str,
    ) -> Result<bool, StoreError> {
        self.store.upgrade_secret_hash(id, current, upgraded)
    }
    fn delete_key(&self, id: KeyId, event: &AuditEvent) -> Result<(), StoreError> {
        self.store.delete_key(id, event)
    }
    fn audit_events(
        &self,
        account: AccountId,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        self.store.audit_events(account, limit)
    }
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

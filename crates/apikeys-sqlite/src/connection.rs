//! Opening and setting up connections, and the per-thread read
//! connections.

use crate::error::OpenError;
use crate::read_lock::ReadLockKeeper;
use apikeys::StoreError;
use rusqlite::{Connection, ErrorCode, OpenFlags};
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::Duration;
use thread_local::ThreadLocal;

/// What an acknowledged write survives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Durability {
    /// `synchronous=FULL`: the write-ahead log is flushed to the disk
    /// (`fsync`) at every commit, so an acknowledged write survives a crash
    /// of the process, of the operating system, and a power loss.
    ///
    /// The default. Decision: a credential change that a power cut undid
    /// would bring a revoked secret back to life, and writes are rare next to
    /// authentications (which never wait for the disk), so the `fsync` per
    /// change is worth it. Bulk imports pay it once per batch.
    #[default]
    PowerLoss,
    /// `synchronous=NORMAL`: commits are written to the write-ahead log but
    /// flushed to the disk only at checkpoints. An acknowledged write still
    /// survives the process being killed (even with `SIGKILL`), since the
    /// operating system holds it; an operating-system crash or power loss may
    /// undo the last writes (never corrupting the file). Several times faster
    /// for single writes.
    ProcessCrash,
}

impl Durability {
    fn pragma(self) -> &'static str {
        match self {
            Durability::PowerLoss => "FULL",
            Durability::ProcessCrash => "NORMAL",
        }
    }
}

/// How to open a store. `Options::default()` is the production setting.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Options {
    /// What an acknowledged write survives (default [`Durability::PowerLoss`]).
    pub durability: Durability,
    /// How long a write waits for another process's write to finish before
    /// failing with a backend error (default 5 s). Reads never wait for
    /// writes.
    pub busy_timeout: Duration,
    /// Bytes of the file each connection maps into memory (`mmap_size`),
    /// letting reads skip a system call per page (default 1 GiB; 0 turns
    /// it off).
    pub mmap_size: u64,
    /// Keep SQLite's read lock held within the process while the store is
    /// being read, from a background thread with a connection of its own,
    /// so that lookups skip two system calls and a contended mutex each
    /// (default on). Lookups still see every committed write; checkpoints
    /// wait for it at most 50 ms. See the crate's README.
    pub read_lock_keeper: bool,
    /// KiB of the write connection's page cache (default 64 MiB). Writes
    /// touch index pages all over the file; a bulk import of a million
    /// keys runs faster with a cache that holds more of them.
    pub writer_cache_kib: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            durability: Durability::default(),
            busy_timeout: Duration::from_secs(5),
            mmap_size: 1024 * 1024 * 1024,
            read_lock_keeper: true,
            writer_cache_kib: WRITER_CACHE_KIB,
        }
    }
}

impl Options {
    /// These options with another durability.
    #[must_use]
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// These options with another busy timeout.
    #[must_use]
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// These options with the read-lock keeper on or off.
    #[must_use]
    pub fn read_lock_keeper(mut self, on: bool) -> Self {
        self.read_lock_keeper = on;
        self
    }

    /// These options with another write cache, in KiB.
    #[must_use]
    pub fn writer_cache_kib(mut self, kib: u32) -> Self {
        self.writer_cache_kib = kib;
        self
    }

    /// These options with another memory-map size (0: no memory map).
    #[must_use]
    pub fn mmap_size(mut self, bytes: u64) -> Self {
        self.mmap_size = bytes;
        self
    }
}

/// The writer's page cache by default, in KiB.
const WRITER_CACHE_KIB: u32 = 64 * 1024;

/// Bytes the WAL file is cut back to after a checkpoint.
const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// Prepared statements each connection keeps ready (the store uses fewer).
const STATEMENT_CACHE: usize = 64;

/// Sorts an error met while opening into what it means for the caller.
pub(crate) fn classify_open_error(path: &Path, source: rusqlite::Error) -> OpenError {
    let path = path.to_path_buf();
    match source.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            OpenError::NotADatabase { path, source }
        }
        Some(ErrorCode::ReadOnly) => OpenError::ReadOnly {
            path,
            source: Some(source),
        },
        Some(ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => {
            OpenError::Open { path, source }
        }
        _ => OpenError::Setup { path, source },
    }
}

/// Opens the write connection of a file database, creating the file if
/// needed, and turns WAL mode on.
/// Creates the database file, if it does not exist yet, readable and
/// writable by its owner only (0600, whatever the umask). SQLite gives the
/// `-wal` and `-shm` files it creates later the database file's mode, so
/// they are private too. An existing file is left as it is (see
/// [`crate::SqliteStore::readable_by_others`]).
fn create_private(path: &Path) -> Result<(), OpenError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            // The umask may have taken bits off, never added any; set the
            // mode anyway, so that it is exactly 0600.
            Ok(file) => file
                .set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(|e| OpenError::Create {
                    path: path.to_path_buf(),
                    source: e,
                }),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            // Let SQLite report a missing directory or a permission problem
            // in its own words, as for any other file.
            Err(_) => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}

pub(crate) fn open_writer(path: &Path, options: &Options) -> Result<Connection, OpenError> {
    create_private(path)?;
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|source| OpenError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    // SQLite falls back to read-only when the file cannot be written.
    if conn
        .is_readonly(rusqlite::MAIN_DB)
        .map_err(|e| classify_open_error(path, e))?
    {
        return Err(OpenError::ReadOnly {
            path: path.to_path_buf(),
            source: None,
        });
    }
    configure(&conn, options).map_err(|e| classify_open_error(path, e))?;
    // The first statement that reads the file: a file that is not a
    // database fails here.
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(|e| classify_open_error(path, e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(OpenError::ReadOnly {
            path: path.to_path_buf(),
            source: None,
        });
    }
    conn.pragma_update(None, "synchronous", options.durability.pragma())
        .map_err(|e| classify_open_error(path, e))?;
    // Writes touch index pages all over the file: keep more of them.
    // A negative cache_size counts KiB.
    conn.pragma_update(
        None,
        "cache_size",
        -i64::from(options.writer_cache_kib.max(1)),
    )
    .map_err(|e| classify_open_error(path, e))?;
    // A bulk creation gives each account a savepoint, whose statement
    // journal would otherwise be a temporary file written for every
    // account: keep it in memory (it holds one account's pages).
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(|e| classify_open_error(path, e))?;
    // A big import grows the WAL; give the space back after checkpoints.
    conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)
        .map_err(|e| classify_open_error(path, e))?;
    Ok(conn)
}

/// Opens a read connection to a file database the writer already set up.
pub(crate) fn open_reader(path: &Path, options: &Options) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    configure(&conn, options)?;
    // Read connections never write: a bug that tried would fail loudly.
    conn.pragma_update(None, "query_only", true)?;
    Ok(conn)
}

/// The single connection of an in-memory database.
pub(crate) fn open_memory() -> rusqlite::Result<Connection> {
    let conn = Connection::open_in_memory()?;
    configure(&conn, &Options::default())?;
    Ok(conn)
}

/// Settings every connection needs.
fn configure(conn: &Connection, options: &Options) -> rusqlite::Result<()> {
    conn.busy_timeout(options.busy_timeout)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.pragma_update(None, "foreign_keys", true)?;
    if options.mmap_size > 0 {
        // Returns the size in force; nothing to check (0 where unsupported).
        let bytes = i64::try_from(options.mmap_size).unwrap_or(i64::MAX);
        let _: Option<i64> = conn
            .pragma_update_and_check(None, "mmap_size", bytes, |r| r.get(0))
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })?;
    }
    Ok(())
}

/// Read connections to a file database: each thread that reads keeps its
/// own, so reads never queue behind each other (in WAL mode they do not wait
/// for the writer either), and a thread finds its connection's prepared
/// statements and page cache warm in its own CPU cache.
///
/// Decision: per thread rather than a shared free list. Under load a free
/// list hands each connection to whichever thread comes next, so a server's
/// few busy threads keep fetching a connection's statements and pages from
/// each other's CPU caches (in profiles of the HTTP server, SQLite's own
/// code ran up to twice as slow per lookup with two busy threads sharing a
/// list as with one thread). The number of connections is the number of
/// threads that have read, as it was the peak of concurrent reads before; a
/// slot whose thread ended is reused by the next new thread.
pub(crate) struct Readers {
    path: PathBuf,
    options: Options,
    own: ThreadLocal<RefCell<Option<Connection>>>,
    /// See [`Options::read_lock_keeper`].
    keeper: Option<ReadLockKeeper>,
}

impl Readers {
    pub(crate) fn new(path: PathBuf, options: Options) -> Self {
        let keeper = options
            .read_lock_keeper
            .then(|| ReadLockKeeper::start(path.clone(), options.clone()));
        Readers {
            path,
            options,
            own: ThreadLocal::new(),
            keeper,
        }
    }

    fn open(&self) -> Result<Connection, StoreError> {
        open_reader(&self.path, &self.options).map_err(StoreError::backend)
    }

    /// Runs `f` on this thread's read connection, opening it on first use.
    /// A read nested in another on the same thread (`f` reading again) gets
    /// a connection of its own for its duration.
    pub(crate) fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if let Some(keeper) = &self.keeper {
            keeper.note_read();
        }
        let cell = self.own.get_or(|| RefCell::new(None));
        let Ok(mut own) = cell.try_borrow_mut() else {
            return f(&self.open()?);
        };
        let conn = match &mut *own {
            Some(conn) => conn,
            None => own.insert(self.open()?),
        };
        // Statements are reset when their rows are dropped, so the
        // connection holds no read transaction (no stale snapshot) after
        // `f`.
        f(conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SqliteStore;

    fn readers() -> (tempfile::TempDir, Readers) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("readers.sqlite3");
        drop(SqliteStore::open(&path).unwrap());
        (dir, Readers::new(path, Options::default()))
    }

    /// The address of the connection a read ran on.
    fn used(readers: &Readers) -> usize {
        readers
            .with(|conn| Ok(std::ptr::from_ref(conn) as usize))
            .unwrap()
    }

    #[test]
    fn a_thread_keeps_its_connection_and_threads_do_not_share() {
        let (_dir, readers) = readers();
        let here = used(&readers);
        assert_eq!(used(&readers), here);
        let there = std::thread::scope(|s| s.spawn(|| (used(&readers), used(&readers))).join());
        let (first, second) = there.unwrap();
        assert_eq!(first, second);
        assert_ne!(first, here);
    }

    #[test]
    fn a_nested_read_gets_a_connection_of_its_own() {
        let (_dir, readers) = readers();
        let (outer, inner, count) = readers
            .with(|outer| {
                let (inner, count) = readers.with(|inner| {
                    let count: i64 = inner
                        .query_row("SELECT count(*) FROM keys", [], |r| r.get(0))
                        .map_err(StoreError::backend)?;
                    Ok((std::ptr::from_ref(inner) as usize, count))
                })?;
                Ok((std::ptr::from_ref(outer) as usize, inner, count))
            })
            .unwrap();
        assert_ne!(outer, inner);
        assert_eq!(count, 0);
        // The thread's own connection is still there afterwards.
        assert_eq!(used(&readers), outer);
    }
}

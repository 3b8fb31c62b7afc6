//! [`ReadLockKeeper`]: keeps SQLite's shared-memory read lock held inside
//! the process while the store is being read, so that each lookup does not
//! take and drop it at the operating-system level.
//!
//! Why: in WAL mode every read transaction locks a "read mark" of the
//! `-shm` file. SQLite counts the holders within a process and makes the
//! `fcntl` system call only when that count goes from 0 to 1 and back, and
//! it makes that call while holding a mutex that all of the process's
//! connections to the file share. With lookups
//! arriving back to back on two threads, the count kept dropping to 0: two
//! `fcntl` calls per lookup, and the other thread queued on the mutex (four
//! fifths of the server's futex calls under authentication load were that
//! queue). While this keeper holds a read transaction of its own, the count
//! never drops to 0, and a lookup's lock is a counter change under the
//! mutex.
//!
//! What it does not change: every lookup still runs in a read transaction
//! of its own, begun when the lookup starts, so it sees every write
//! committed before it, by this process or any other. The keeper never
//! serves a read.
//!
//! What it costs: its transaction pins a snapshot, and a checkpoint cannot
//! copy pages past it into the database file (nor restart the write-ahead
//! log). So it lets go and takes a fresh one every [`REFRESH`], and holds
//! nothing once the store has not been read for a whole period: an idle
//! store pins nothing, and a busy one delays checkpoints by one period at
//! most. After a write the lookups use a newer read mark than the keeper's
//! until its next refresh, and pay the system calls meanwhile, as without
//! it.

use crate::connection::{Options, open_reader};
use rusqlite::Connection;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long the keeper holds one read transaction before taking a fresh
/// one (or letting go, if nothing was read meanwhile).
pub(crate) const REFRESH: Duration = Duration::from_millis(50);

struct Shared {
    stop: Mutex<bool>,
    wake: Condvar,
    /// Set by reads, cleared by the keeper at each period.
    read: AtomicBool,
    /// Whether the keeper holds a read transaction, for the tests.
    #[cfg(test)]
    holding: AtomicBool,
}

/// A background thread with a read connection of its own; stopped and
/// joined on drop.
pub(crate) struct ReadLockKeeper {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl ReadLockKeeper {
    /// Starts the keeper for the database at `path`. It is only a speed-up:
    /// if its thread or connection cannot be had, reads work as without it.
    pub(crate) fn start(path: PathBuf, options: Options) -> Self {
        let shared = Arc::new(Shared {
            stop: Mutex::new(false),
            wake: Condvar::new(),
            read: AtomicBool::new(false),
            #[cfg(test)]
            holding: AtomicBool::new(false),
        });
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("apikeys-sqlite-read-lock".into())
                .spawn(move || {
                    if let Ok(conn) = open_reader(&path, &options) {
                        run(&conn, &shared);
                    }
                })
                .ok()
        };
        ReadLockKeeper { shared, thread }
    }

    /// Notes that the store is being read. Cheap: a load, and a store only
    /// for the first read of a period.
    pub(crate) fn note_read(&self) {
        if !self.shared.read.load(Ordering::Relaxed) {
            self.shared.read.store(true, Ordering::Relaxed);
        }
    }
}

impl Drop for ReadLockKeeper {
    fn drop(&mut self) {
        *self
            .shared
            .stop
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            // A panic in the keeper cannot have broken anything but itself.
            let _ = thread.join();
        }
    }
}

fn run(conn: &Connection, shared: &Shared) {
    let mut holding = false;
    loop {
        let stop = shared.stop.lock().unwrap_or_else(PoisonError::into_inner);
        let (stop, _) = shared
            .wake
            .wait_timeout_while(stop, REFRESH, |stop| !*stop)
            .unwrap_or_else(PoisonError::into_inner);
        let stopping = *stop;
        drop(stop);
        if holding {
            holding = false;
            if conn.execute_batch("COMMIT").is_err() {
                return;
            }
        }
        if stopping {
            return;
        }
        if shared.read.swap(false, Ordering::Relaxed) {
            holding = begin_read(conn).is_ok();
            if !holding && !conn.is_autocommit() && conn.execute_batch("ROLLBACK").is_err() {
                return;
            }
        }
        #[cfg(test)]
        shared.holding.store(holding, Ordering::SeqCst);
    }
}

/// Opens a read transaction and takes its read mark: a transaction begins
/// lazily, at its first read.
fn begin_read(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch("BEGIN")?;
    conn.query_row(
        "SELECT count(*) FROM apikeys_schema_migrations",
        [],
        |row| row.get::<_, i64>(0),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SqliteStore;
    use crate::connection::Readers;
    use apikeys::StoreError;
    use std::time::Instant;

    /// A database in WAL mode with a table `t`, and a write connection.
    fn database() -> (tempfile::TempDir, PathBuf, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keeper.sqlite3");
        drop(SqliteStore::open(&path).unwrap());
        let writer = Connection::open(&path).unwrap();
        writer
            .execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t (x INTEGER);")
            .unwrap();
        (dir, path, writer)
    }

    /// `(frames in the log, frames copied into the database)` after a
    /// passive checkpoint, which copies what no reader still needs.
    fn checkpoint(writer: &Connection) -> (i64, i64) {
        writer
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get(1)?, r.get(2)?))
            })
            .unwrap()
    }

    /// Waits up to 5 s for `done`.
    fn eventually(mut done: impl FnMut() -> bool) -> bool {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if done() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    #[test]
    fn holds_a_read_transaction_while_read_and_none_once_idle() {
        let (_dir, path, writer) = database();
        let keeper = ReadLockKeeper::start(path, Options::default());
        // While reads go on, the keeper's snapshot keeps a checkpoint from
        // copying a newer write into the database file.
        let held = eventually(|| {
            keeper.note_read();
            std::thread::sleep(REFRESH / 5);
            writer.execute("INSERT INTO t VALUES (1)", []).unwrap();
            let (log, copied) = checkpoint(&writer);
            copied < log
        });
        assert!(held, "the keeper never held a read transaction");
        // Without reads, it lets go within a period or two, and the
        // checkpoint then copies everything.
        let released = eventually(|| !keeper.shared.holding.load(Ordering::SeqCst));
        assert!(released, "the keeper kept its read transaction while idle");
        let (log, copied) = checkpoint(&writer);
        assert_eq!(copied, log);
        // Reads again: it holds again.
        assert!(eventually(|| {
            keeper.note_read();
            keeper.shared.holding.load(Ordering::SeqCst)
        }));
    }

    #[test]
    fn reads_see_every_write_at_once_while_the_keeper_holds() {
        let (_dir, path, writer) = database();
        let readers = Readers::new(path, Options::default());
        let count = || {
            readers
                .with(|conn| {
                    conn.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))
                        .map_err(StoreError::backend)
                })
                .unwrap()
        };
        let until = Instant::now() + REFRESH * 6;
        let mut written = 0;
        while Instant::now() < until {
            assert_eq!(count(), written);
            writer.execute("INSERT INTO t VALUES (1)", []).unwrap();
            written += 1;
            assert_eq!(count(), written, "a read missed the write just committed");
        }
        assert!(written > 10);
    }

    #[test]
    fn dropping_the_keeper_stops_it_at_once() {
        let (_dir, path, _writer) = database();
        let keeper = ReadLockKeeper::start(path, Options::default());
        keeper.note_read();
        std::thread::sleep(REFRESH * 2);
        let start = Instant::now();
        drop(keeper);
        assert!(start.elapsed() < REFRESH, "{:?}", start.elapsed());
    }
}

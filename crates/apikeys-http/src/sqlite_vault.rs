//! The server's admin-token vault: a table of its own in the SQLite file the
//! store uses, through its own connection (the domain's `Store` has no place
//! for server settings, and should not: they are not the domain's).
//!
//! ```sql
//! CREATE TABLE IF NOT EXISTS apikeys_http_settings (name TEXT PRIMARY KEY, value TEXT NOT NULL)
//! ```
//! The token's digest is the row named `admin_token`.

use crate::admin::{AdminTokenError, AdminTokenVault};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

const ROW: &str = "admin_token";

/// An [`AdminTokenVault`] in a SQLite file.
#[derive(Debug)]
pub struct SqliteVault {
    conn: Mutex<Connection>,
}

fn vault_error(e: rusqlite::Error) -> AdminTokenError {
    AdminTokenError::Vault(Box::new(e))
}

impl SqliteVault {
    /// Opens (creating if needed) the settings table in the file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, AdminTokenError> {
        let conn = Connection::open(path).map_err(vault_error)?;
        Self::init(conn)
    }

    /// A vault in a private in-memory database, for tests.
    pub fn open_in_memory() -> Result<Self, AdminTokenError> {
        Self::init(Connection::open_in_memory().map_err(vault_error)?)
    }

    fn init(conn: Connection) -> Result<Self, AdminTokenError> {
        // The store writes to the same file: wait for its locks rather than
        // failing at once.
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(vault_error)?;
        conn.execute(
            "CREATE TABLE IF NOT EXISTS apikeys_http_settings \
             (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
            [],
        )
        .map_err(vault_error)?;
        Ok(SqliteVault {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl AdminTokenVault for SqliteVault {
    fn load(&self) -> Result<Option<String>, AdminTokenError> {
        self.conn()
            .query_row(
                "SELECT value FROM apikeys_http_settings WHERE name = ?1",
                params![ROW],
                |row| row.get(0),
            )
            .optional()
            .map_err(vault_error)
    }

    fn store_if_absent(&self, stored: &str) -> Result<bool, AdminTokenError> {
        let inserted = self
            .conn()
            .execute(
                "INSERT INTO apikeys_http_settings (name, value) VALUES (?1, ?2) \
                 ON CONFLICT(name) DO NOTHING",
                params![ROW, stored],
            )
            .map_err(vault_error)?;
        Ok(inserted == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_if_absent_and_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault.sqlite3");
        let vault = SqliteVault::open(&path).unwrap();
        assert_eq!(vault.load().unwrap(), None);
        assert!(vault.store_if_absent("sha256$first").unwrap());
        assert!(!vault.store_if_absent("sha256$second").unwrap());
        drop(vault);
        let again = SqliteVault::open(&path).unwrap();
        assert_eq!(again.load().unwrap().as_deref(), Some("sha256$first"));
    }
}

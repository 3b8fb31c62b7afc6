//! The admin token kept in the SQLite file the key store uses, in a table of
//! its own, through a connection of its own:
//!
//! ```sql
//! CREATE TABLE IF NOT EXISTS apikeys_http_settings (name TEXT PRIMARY KEY, value TEXT NOT NULL)
//! ```
//! The token's digest is the row named `admin_token`.

use super::{AdminTokenStore, AdminTokenStoreError, ROW, TABLE};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// An [`AdminTokenStore`] in a SQLite file.
#[derive(Debug)]
pub struct SqliteAdminTokenStore {
    conn: Mutex<Connection>,
}

fn database_error(e: rusqlite::Error) -> AdminTokenStoreError {
    AdminTokenStoreError::Database(Box::new(e))
}

impl SqliteAdminTokenStore {
    /// Opens (creating if needed) the settings table in the file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, AdminTokenStoreError> {
        let conn = Connection::open(path).map_err(database_error)?;
        // The key store writes to the same file: wait for its locks rather
        // than failing at once.
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(database_error)?;
        conn.execute(
            &format!(
                "CREATE TABLE IF NOT EXISTS {TABLE} (name TEXT PRIMARY KEY, value TEXT NOT NULL)"
            ),
            [],
        )
        .map_err(database_error)?;
        Ok(SqliteAdminTokenStore {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl AdminTokenStore for SqliteAdminTokenStore {
    fn load(&self) -> Result<Option<String>, AdminTokenStoreError> {
        self.conn()
            .query_row(
                &format!("SELECT value FROM {TABLE} WHERE name = ?1"),
                params![ROW],
                |row| row.get(0),
            )
            .optional()
            .map_err(database_error)
    }

    fn store_if_absent(&self, stored: &str) -> Result<bool, AdminTokenStoreError> {
        let inserted = self
            .conn()
            .execute(
                &format!(
                    "INSERT INTO {TABLE} (name, value) VALUES (?1, ?2) ON CONFLICT(name) DO NOTHING"
                ),
                params![ROW, stored],
            )
            .map_err(database_error)?;
        Ok(inserted == 1)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::admin_token::resolve_admin_token;
    use apikeys_http::AdminToken;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn create_if_absent_and_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.sqlite3");
        let store = SqliteAdminTokenStore::open(&path).unwrap();
        assert_eq!(store.load().unwrap(), None);
        assert!(store.store_if_absent("sha256$first").unwrap());
        assert!(!store.store_if_absent("sha256$second").unwrap());
        drop(store);
        let again = SqliteAdminTokenStore::open(&path).unwrap();
        assert_eq!(again.load().unwrap().as_deref(), Some("sha256$first"));
    }

    /// A file whose token was stored by the release that kept it in the
    /// router's crate (its statements, verbatim) keeps that token.
    #[test]
    fn a_token_stored_by_the_previous_release_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.sqlite3");
        let (token, secret) = AdminToken::generate(&mut ChaCha20Rng::seed_from_u64(5));
        {
            let old = Connection::open(&path).unwrap();
            old.execute(
                "CREATE TABLE IF NOT EXISTS apikeys_http_settings \
                 (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
                [],
            )
            .unwrap();
            old.execute(
                "INSERT INTO apikeys_http_settings (name, value) VALUES (?1, ?2) \
                 ON CONFLICT(name) DO NOTHING",
                params!["admin_token", token.stored_form()],
            )
            .unwrap();
        }
        let store = SqliteAdminTokenStore::open(&path).unwrap();
        let resolved =
            resolve_admin_token(&store, None, &mut ChaCha20Rng::seed_from_u64(6)).unwrap();
        assert!(resolved.generated.is_none(), "no new token is generated");
        assert!(resolved.token.verify(secret.expose_secret()));
    }
}

//! The admin token kept in PostgreSQL: a table of its own in the schema the
//! key store uses, through one short-lived connection of its own. The server
//! uses it once, at start-up, then drops it.
//!
//! ```sql
//! CREATE TABLE IF NOT EXISTS apikeys_http_settings (name text PRIMARY KEY, value text NOT NULL)
//! ```
//! The token's digest is the row named `admin_token`; it is written with
//! `INSERT ... ON CONFLICT DO NOTHING`, so that of several servers starting
//! at once on one database, one wins and all use its token.
//!
//! Like the store, it is a synchronous client that runs its own small
//! runtime: open and use it outside any async context (before the server's
//! runtime starts, or on a blocking thread).

use super::{AdminTokenStore, AdminTokenStoreError, ROW, TABLE};
use postgres::{Client, Config, NoTls};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// Serialises creating the table across servers starting at once:
/// `CREATE TABLE IF NOT EXISTS` alone can still fail on a race in the
/// catalogue. (An arbitrary constant, apart from the store's own lock.)
const CREATE_LOCK: i64 = 0x6170_696b_6579_7368; // "apikeysh"

/// How long connecting may take when the URL sets no `connect_timeout`
/// (the store's default too).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// An [`AdminTokenStore`] in a PostgreSQL database.
pub struct PostgresAdminTokenStore {
    client: Mutex<Client>,
    /// `apikeys_http_settings`, qualified by the schema if one was given.
    table: String,
}

impl std::fmt::Debug for PostgresAdminTokenStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresAdminTokenStore")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

fn database_error(e: postgres::Error) -> AdminTokenStoreError {
    AdminTokenStoreError::Database(Box::new(e))
}

/// `name` as a quoted SQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl PostgresAdminTokenStore {
    /// Connects to the database at `url` and creates the settings table if
    /// needed, in `schema` (which must exist: the server connects the store
    /// first, which creates it) or, without one, in the connection's
    /// default schema, as the store does.
    ///
    /// Errors never repeat `url`, which may hold a password.
    pub fn connect(url: &str, schema: Option<&str>) -> Result<Self, AdminTokenStoreError> {
        let mut config: Config = url.parse().map_err(database_error)?;
        if config.get_application_name().is_none() {
            config.application_name(apikeys_postgres::DEFAULT_APPLICATION_NAME);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let mut client = config.connect(NoTls).map_err(database_error)?;
        let table = match schema {
            Some(s) => format!("{}.{TABLE}", quote_ident(s)),
            None => TABLE.to_owned(),
        };
        let mut tx = client.transaction().map_err(database_error)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CREATE_LOCK])
            .map_err(database_error)?;
        tx.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {table} (name text PRIMARY KEY, value text NOT NULL)"
        ))
        .map_err(database_error)?;
        tx.commit().map_err(database_error)?;
        Ok(PostgresAdminTokenStore {
            client: Mutex::new(client),
            table,
        })
    }

    fn client(&self) -> std::sync::MutexGuard<'_, Client> {
        self.client.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl AdminTokenStore for PostgresAdminTokenStore {
    fn load(&self) -> Result<Option<String>, AdminTokenStoreError> {
        let row = self
            .client()
            .query_opt(
                &format!("SELECT value FROM {} WHERE name = $1", self.table),
                &[&ROW],
            )
            .map_err(database_error)?;
        row.map(|r| r.try_get(0))
            .transpose()
            .map_err(database_error)
    }

    fn store_if_absent(&self, stored: &str) -> Result<bool, AdminTokenStoreError> {
        let inserted = self
            .client()
            .execute(
                &format!(
                    "INSERT INTO {} (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                    self.table
                ),
                &[&ROW, &stored],
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
    use apikeys_postgres::testing::TestSchema;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    /// The server connects its store first, which creates the schema.
    fn schema_with_store(test: &str) -> Option<(TestSchema, apikeys_postgres::PostgresStore)> {
        let db = TestSchema::new(test)?;
        let store = db.store(1);
        Some((db, store))
    }

    #[test]
    fn create_if_absent_and_persisted_in_the_schema() {
        let Some((db, _store)) = schema_with_store("token_store_persisted") else {
            return;
        };
        let store = PostgresAdminTokenStore::connect(db.url(), Some(db.name())).unwrap();
        assert_eq!(store.load().unwrap(), None);
        assert!(store.store_if_absent("sha256$first").unwrap());
        assert!(!store.store_if_absent("sha256$second").unwrap());
        drop(store);
        let again = PostgresAdminTokenStore::connect(db.url(), Some(db.name())).unwrap();
        assert_eq!(again.load().unwrap().as_deref(), Some("sha256$first"));
        // In the test's schema, not in the default one.
        let n: i64 = db
            .client()
            .query_one(
                "SELECT count(*) FROM information_schema.tables \
                 WHERE table_schema = $1 AND table_name = 'apikeys_http_settings'",
                &[&db.name()],
            )
            .unwrap()
            .get(0);
        assert_eq!(n, 1);
    }

    /// A schema whose token was stored by the release that kept it in the
    /// router's crate (its statements, verbatim) keeps that token.
    #[test]
    fn a_token_stored_by_the_previous_release_is_kept() {
        let Some((db, _store)) = schema_with_store("token_store_old") else {
            return;
        };
        let (token, secret) = AdminToken::generate(&mut ChaCha20Rng::seed_from_u64(5));
        let mut old = db.client();
        let table = format!("\"{}\".apikeys_http_settings", db.name());
        old.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {table} (name text PRIMARY KEY, value text NOT NULL)"
        ))
        .unwrap();
        old.execute(
            &format!(
                "INSERT INTO {table} (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING"
            ),
            &[&"admin_token", &token.stored_form()],
        )
        .unwrap();
        drop(old);
        let store = PostgresAdminTokenStore::connect(db.url(), Some(db.name())).unwrap();
        let resolved =
            resolve_admin_token(&store, None, &mut ChaCha20Rng::seed_from_u64(6)).unwrap();
        assert!(resolved.generated.is_none(), "no new token is generated");
        assert!(resolved.token.verify(secret.expose_secret()));
    }

    /// Servers starting at once on one database agree on one token: one
    /// generates and stores it, the others read it.
    #[test]
    fn servers_starting_at_once_agree_on_one_token() {
        let Some((db, _store)) = schema_with_store("token_store_race") else {
            return;
        };
        let resolved: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4u64)
                .map(|i| {
                    let db = &db;
                    s.spawn(move || {
                        let store =
                            PostgresAdminTokenStore::connect(db.url(), Some(db.name())).unwrap();
                        let mut rng = ChaCha20Rng::seed_from_u64(i);
                        resolve_admin_token(&store, None, &mut rng).unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let generated: Vec<_> = resolved
            .iter()
            .filter_map(|r| r.generated.as_ref())
            .collect();
        assert_eq!(generated.len(), 1, "exactly one server generates the token");
        for r in &resolved {
            assert!(r.token.verify(generated[0].expose_secret()));
        }
    }

    #[test]
    fn unreachable_server_is_a_database_error_without_the_password() {
        let err = PostgresAdminTokenStore::connect(
            "postgres://apikeys:hunter2-secret@127.0.0.1:1/nowhere?connect_timeout=2",
            None,
        )
        .unwrap_err();
        assert!(matches!(err, AdminTokenStoreError::Database(_)), "{err:?}");
        let mut text = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            text.push_str(&format!(": {s}"));
            source = s.source();
        }
        assert!(!text.contains("hunter2"), "{text}");
    }
}

//! The server's admin-token vault on PostgreSQL: a table of its own in the
//! schema the store uses, through one short-lived connection of its own (the
//! domain's `Store` has no place for server settings, and should not: they
//! are not the domain's). The server uses it once, at start-up, then drops
//! it.
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

use crate::admin::{AdminTokenError, AdminTokenVault};
use postgres::{Client, Config, NoTls};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

const ROW: &str = "admin_token";

/// Serialises creating the table across servers starting at once:
/// `CREATE TABLE IF NOT EXISTS` alone can still fail on a race in the
/// catalogue. (An arbitrary constant, apart from the store's own lock.)
const CREATE_LOCK: i64 = 0x6170_696b_6579_7368; // "apikeysh"

/// How long connecting may take when the URL sets no `connect_timeout`
/// (the store's default too).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// An [`AdminTokenVault`] in a PostgreSQL database.
pub struct PostgresVault {
    client: Mutex<Client>,
    /// `apikeys_http_settings`, qualified by the schema if one was given.
    table: String,
}

impl std::fmt::Debug for PostgresVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresVault")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

fn vault_error(e: postgres::Error) -> AdminTokenError {
    AdminTokenError::Vault(Box::new(e))
}

/// `name` as a quoted SQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl PostgresVault {
    /// Connects to the database at `url` and creates the settings table if
    /// needed, in `schema` (which must exist: the server connects the store
    /// first, which creates it) or, without one, in the connection's
    /// default schema, as the store does.
    ///
    /// Errors never repeat `url`, which may hold a password.
    pub fn connect(url: &str, schema: Option<&str>) -> Result<Self, AdminTokenError> {
        let mut config: Config = url.parse().map_err(vault_error)?;
        if config.get_application_name().is_none() {
            config.application_name(apikeys_postgres::DEFAULT_APPLICATION_NAME);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let mut client = config.connect(NoTls).map_err(vault_error)?;
        let table = match schema {
            Some(s) => format!("{}.apikeys_http_settings", quote_ident(s)),
            None => "apikeys_http_settings".to_owned(),
        };
        let mut tx = client.transaction().map_err(vault_error)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CREATE_LOCK])
            .map_err(vault_error)?;
        tx.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {table} (name text PRIMARY KEY, value text NOT NULL)"
        ))
        .map_err(vault_error)?;
        tx.commit().map_err(vault_error)?;
        Ok(PostgresVault {
            client: Mutex::new(client),
            table,
        })
    }

    fn client(&self) -> std::sync::MutexGuard<'_, Client> {
        self.client.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl AdminTokenVault for PostgresVault {
    fn load(&self) -> Result<Option<String>, AdminTokenError> {
        let row = self
            .client()
            .query_opt(
                &format!("SELECT value FROM {} WHERE name = $1", self.table),
                &[&ROW],
            )
            .map_err(vault_error)?;
        row.map(|r| r.try_get(0)).transpose().map_err(vault_error)
    }

    fn store_if_absent(&self, stored: &str) -> Result<bool, AdminTokenError> {
        let inserted = self
            .client()
            .execute(
                &format!(
                    "INSERT INTO {} (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                    self.table
                ),
                &[&ROW, &stored],
            )
            .map_err(vault_error)?;
        Ok(inserted == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::resolve_admin_token;
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
        let Some((db, _store)) = schema_with_store("vault_persisted") else {
            return;
        };
        let vault = PostgresVault::connect(db.url(), Some(db.name())).unwrap();
        assert_eq!(vault.load().unwrap(), None);
        assert!(vault.store_if_absent("sha256$first").unwrap());
        assert!(!vault.store_if_absent("sha256$second").unwrap());
        drop(vault);
        let again = PostgresVault::connect(db.url(), Some(db.name())).unwrap();
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

    /// Servers starting at once on one database agree on one token: one
    /// generates and stores it, the others read it.
    #[test]
    fn servers_starting_at_once_agree_on_one_token() {
        let Some((db, _store)) = schema_with_store("vault_race") else {
            return;
        };
        let resolved: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4u64)
                .map(|i| {
                    let db = &db;
                    s.spawn(move || {
                        let vault = PostgresVault::connect(db.url(), Some(db.name())).unwrap();
                        let mut rng = ChaCha20Rng::seed_from_u64(i);
                        resolve_admin_token(&vault, None, &mut rng).unwrap()
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
    fn unreachable_server_is_a_vault_error_without_the_password() {
        let err = PostgresVault::connect(
            "postgres://apikeys:hunter2-secret@127.0.0.1:1/nowhere?connect_timeout=2",
            None,
        )
        .unwrap_err();
        assert!(matches!(err, AdminTokenError::Vault(_)), "{err:?}");
        let mut text = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            text.push_str(&format!(": {s}"));
            source = s.source();
        }
        assert!(!text.contains("hunter2"), "{text}");
    }
}

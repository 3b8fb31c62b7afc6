//! Where the server keeps the admin token between starts, and how it
//! decides the token of a run.
//!
//! The token itself, its digest and its check are the router's
//! ([`apikeys_http::AdminToken`]); keeping it is the server's: the domain's
//! `Store` has no place for server settings, and should not, as they are not
//! the domain's.
//!
//! Decisions:
//! - A token given in `APIKEYS_ADMIN_TOKEN` may have little entropy, so its
//!   digest is never written anywhere: it lives in memory for that run only,
//!   and takes precedence over a stored token, which it leaves untouched.
//! - Without the variable, the first start generates a token, prints it once
//!   and stores its SHA-256 digest (create-if-absent, so that two servers
//!   starting at once on one database agree on one token); later starts use
//!   the stored digest and print nothing.
//! - The stores keep the digest in a table named `apikeys_http_settings`, in
//!   the SQLite file or the PostgreSQL schema of the key store, row
//!   `admin_token`. The name is that of the release that kept the token in
//!   the router's crate; it stays, so that a database from that release keeps
//!   its token.

pub mod postgres;
pub mod sqlite;

pub use self::postgres::PostgresAdminTokenStore;
pub use self::sqlite::SqliteAdminTokenStore;

use apikeys::Secret;
use apikeys_http::{AdminToken, AdminTokenError};
use rand_core::CryptoRng;

/// The table the stores keep the token's digest in (see the module's docs
/// for why it is named after the router's crate).
pub const TABLE: &str = "apikeys_http_settings";

/// The row of [`TABLE`] holding the digest.
pub const ROW: &str = "admin_token";

/// An admin token that cannot be used, or a store that failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminTokenStoreError {
    /// The token chosen in `APIKEYS_ADMIN_TOKEN` breaks the rules, or the
    /// stored one cannot be read.
    #[error(transparent)]
    Token(#[from] AdminTokenError),
    /// Another server stored its token first, and it was gone when this one
    /// read it back.
    #[error(
        "another server stored an admin token and it was deleted before this one read it: start again"
    )]
    Vanished,
    /// The database keeping the token failed.
    #[error("the admin token store failed")]
    Database(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Where the digest of a generated admin token is kept between starts.
pub trait AdminTokenStore: Send + Sync {
    /// The stored form of the token (see [`AdminToken::stored_form`]), or
    /// `None` if none was stored.
    fn load(&self) -> Result<Option<String>, AdminTokenStoreError>;

    /// Stores `stored` if no token is stored yet, and says whether it did
    /// (create-if-absent: of two servers starting at once, one wins).
    fn store_if_absent(&self, stored: &str) -> Result<bool, AdminTokenStoreError>;
}

/// An [`AdminTokenStore`] in memory, for tests.
#[cfg(test)]
#[derive(Debug, Default)]
pub struct MemoryAdminTokenStore(std::sync::Mutex<Option<String>>);

#[cfg(test)]
impl AdminTokenStore for MemoryAdminTokenStore {
    fn load(&self) -> Result<Option<String>, AdminTokenStoreError> {
        Ok(self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone())
    }

    fn store_if_absent(&self, stored: &str) -> Result<bool, AdminTokenStoreError> {
        let mut slot = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.is_some() {
            return Ok(false);
        }
        *slot = Some(stored.to_owned());
        Ok(true)
    }
}

/// The admin token of this run, and the token to print if it was just
/// generated.
#[derive(Debug)]
pub struct ResolvedToken {
    /// The token to check requests against.
    pub token: AdminToken,
    /// The newly generated token, to show the operator once; `None` when the
    /// token came from the environment or the store.
    pub generated: Option<Secret>,
}

/// Decides the admin token of this run: the chosen one if given, else the
/// stored one, else a new one generated and stored (see the module's docs).
pub fn resolve_admin_token(
    store: &dyn AdminTokenStore,
    chosen: Option<&str>,
    rng: &mut (impl CryptoRng + ?Sized),
) -> Result<ResolvedToken, AdminTokenStoreError> {
    if let Some(chosen) = chosen {
        return Ok(ResolvedToken {
            token: AdminToken::from_chosen(chosen)?,
            generated: None,
        });
    }
    if let Some(stored) = store.load()? {
        return Ok(ResolvedToken {
            token: AdminToken::from_stored(&stored)?,
            generated: None,
        });
    }
    let (token, secret) = AdminToken::generate(rng);
    if store.store_if_absent(&token.stored_form())? {
        return Ok(ResolvedToken {
            token,
            generated: Some(secret),
        });
    }
    // Another server stored its token first: use that one, print nothing.
    let stored = store.load()?.ok_or(AdminTokenStoreError::Vanished)?;
    Ok(ResolvedToken {
        token: AdminToken::from_stored(&stored)?,
        generated: None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn generated_once_then_loaded() {
        let store = MemoryAdminTokenStore::default();
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let first = resolve_admin_token(&store, None, &mut rng).unwrap();
        let secret = first.generated.expect("first start generates");
        let second = resolve_admin_token(&store, None, &mut rng).unwrap();
        assert!(second.generated.is_none());
        assert!(second.token.verify(secret.expose_secret()));
        // The environment's token wins, and leaves the stored one alone.
        let env = resolve_admin_token(
            &store,
            Some("from-the-environment-0123456789abcdef"),
            &mut rng,
        )
        .unwrap();
        assert!(env.generated.is_none());
        assert!(env.token.verify("from-the-environment-0123456789abcdef"));
        assert!(!env.token.verify(secret.expose_secret()));
        let third = resolve_admin_token(&store, None, &mut rng).unwrap();
        assert!(third.token.verify(secret.expose_secret()));
    }

    #[test]
    fn a_bad_chosen_or_stored_token_is_refused() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let store = MemoryAdminTokenStore::default();
        let err = resolve_admin_token(&store, Some("short"), &mut rng).unwrap_err();
        assert!(err.to_string().contains("32 to 256"), "{err}");
        assert!(store.store_if_absent("sha256$not-hex").unwrap());
        let err = resolve_admin_token(&store, None, &mut rng).unwrap_err();
        assert!(
            matches!(
                err,
                AdminTokenStoreError::Token(AdminTokenError::CorruptStored)
            ),
            "{err:?}"
        );
    }
}

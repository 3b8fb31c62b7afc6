//! The crate's own errors: connecting to a database, and the causes kept
//! inside [`apikeys::StoreError::Backend`].
//!
//! Once a store is connected, every failure reaches callers as an
//! [`apikeys::StoreError`]; the backend ones carry a [`DatabaseError`],
//! [`BadRow`](crate::BadRow) or [`Unstorable`](crate::Unstorable) as their
//! `source`, which callers can downcast to.

use std::fmt;
use std::time::Duration;

/// A `postgres::Error` with its cause: its own `Display` says only "db
/// error" or "error communicating with the server", the server's message is
/// in its source.
pub(crate) fn full(e: &postgres::Error) -> impl fmt::Display + '_ {
    struct Full<'e>(&'e postgres::Error);
    impl fmt::Display for Full<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{}", self.0)?;
            if let Some(cause) = std::error::Error::source(self.0) {
                write!(f, ": {cause}")?;
            }
            Ok(())
        }
    }
    Full(e)
}

/// Why [`crate::PostgresStore::connect`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The connection string is not a PostgreSQL URL or key=value string.
    /// (The string itself is not repeated: it may hold a password.)
    #[error(
        "the PostgreSQL connection string is invalid (expected e.g. postgres://user@host:5432/dbname): {reason}"
    )]
    InvalidUrl {
        /// The parser's message, with any password of the string hidden: the
        /// parser may quote a piece of the string, so its error is not kept
        /// as a source.
        reason: String,
    },
    /// The schema name is not one this crate accepts.
    #[error(
        "schema name `{schema}` is not allowed: use 1 to 63 lowercase ASCII letters, digits and underscores, starting with a letter or an underscore, and not starting with `pg_`"
    )]
    InvalidSchema {
        /// The name given, cut to 64 characters.
        schema: String,
    },
    /// A pool must hold at least one connection.
    #[error("the connection pool size must be at least 1, not {0}")]
    InvalidPoolSize(u32),
    /// The server could not be reached, or refused the login.
    #[error("cannot connect to PostgreSQL: {}", full(.source))]
    Connect {
        /// The client's error.
        #[source]
        source: postgres::Error,
    },
    /// The database was set up by a newer version of this crate: its schema
    /// is at a version this one does not know, so it refuses rather than
    /// guess.
    #[error(
        "the PostgreSQL database has apikeys schema version {found}, newer than version {supported}, the latest this version of apikeys-postgres knows: upgrade apikeys-postgres"
    )]
    NewerSchema {
        /// The schema version recorded in `apikeys_schema_migrations`.
        found: i32,
        /// The latest schema version this crate knows.
        supported: i32,
    },
    /// Creating or upgrading the schema failed; the database was left as it
    /// was (migrations run in one transaction).
    #[error(
        "cannot migrate the PostgreSQL database to apikeys schema version {version}: {}",
        full(.source)
    )]
    Migration {
        /// The version whose migration failed (0: the bookkeeping before any
        /// migration, such as taking the lock or creating the schema).
        version: i32,
        /// The server's error.
        #[source]
        source: postgres::Error,
    },
    /// The pool could not open its connections, or they could not prepare
    /// the store's statements.
    #[error("cannot open the PostgreSQL connection pool: {source}")]
    Pool {
        /// The pool's error (it names the last connection error).
        #[source]
        source: r2d2::Error,
    },
}

/// A failure talking to the database, found as the source of an
/// [`apikeys::StoreError::Backend`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DatabaseError {
    /// The connection to the database failed (the server went away, the
    /// network broke, the backend was terminated) before the operation could
    /// commit: nothing was changed.
    #[error("the database connection failed; nothing was changed: {}", full(.source))]
    ConnectionLost {
        /// The client's error.
        #[source]
        source: postgres::Error,
    },
    /// The connection to the database failed while committing, and the
    /// server refused to say afterwards what became of the transaction (a
    /// role not allowed `txid_status`, or a transaction id too old to know):
    /// the change may or may not have been applied. Read it back before
    /// retrying. An unreachable server never causes this: the store waits
    /// until it can ask.
    #[error(
        "the database connection failed while committing; the change may or may not have been applied: {}",
        full(.source)
    )]
    CommitUncertain {
        /// The client's error.
        #[source]
        source: postgres::Error,
    },
    /// No connection could be had from the pool in time: the database
    /// connection failed, or every connection stayed busy.
    #[error(
        "the database connection failed: no connection could be had within {timeout:?}: {source}"
    )]
    Unavailable {
        /// How long the pool waited.
        timeout: Duration,
        /// The pool's error (it names the last connection error).
        #[source]
        source: r2d2::Error,
    },
    /// The database refused a statement for a reason the store does not map
    /// onto a [`apikeys::StoreError`] kind (a missing table, a permission...).
    #[error("the database refused a statement: {}", full(.source))]
    Query {
        /// The server's error.
        #[source]
        source: postgres::Error,
    },
}

impl DatabaseError {
    /// Whether this error says the database connection failed (as opposed to
    /// a statement being refused).
    pub fn is_connection_failure(&self) -> bool {
        !matches!(self, DatabaseError::Query { .. })
    }
}

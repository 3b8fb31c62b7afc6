//! The crate's own errors: opening a database, and rows it cannot read.
//!
//! Once a store is open, every failure reaches callers as an
//! [`apikeys::StoreError`]; the errors here are either returned by
//! [`crate::SqliteStore::open`] or kept as the `source` of a
//! [`apikeys::StoreError::Backend`], where callers can downcast to them.

use std::path::PathBuf;

/// Why a database could not be opened. Every variant names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The file could not be opened or created: a missing directory, no
    /// permission, a path that is a directory...
    #[error("cannot open SQLite database `{path}`: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A new database file could not be made private (mode 0600).
    #[error("cannot create SQLite database `{path}` readable by its owner only: {source}")]
    Create {
        /// The database file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The file exists but is not a SQLite database, or is damaged.
    #[error("`{path}` is not a SQLite database or is corrupt: {source}")]
    NotADatabase {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The file, or the directory holding it, cannot be written: the store
    /// needs to write the database and, in WAL mode, its `-wal` and `-shm`
    /// files beside it.
    #[error(
        "SQLite database `{path}` is read-only: the store needs write access to the file and to its directory (for the -wal and -shm files)"
    )]
    ReadOnly {
        /// The database file.
        path: PathBuf,
        /// SQLite's error, when it gave one.
        #[source]
        source: Option<rusqlite::Error>,
    },
    /// The database was made by a newer version of this crate: its schema is
    /// at a version this one does not know, so it refuses rather than guess.
    #[error(
        "SQLite database `{path}` has schema version {found}, newer than version {supported}, the latest this version of apikeys-sqlite knows: upgrade apikeys-sqlite"
    )]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// The schema version recorded in the file.
        found: i64,
        /// The latest schema version this crate knows.
        supported: i64,
    },
    /// Upgrading the schema failed; the database was left at its previous
    /// version.
    #[error("cannot migrate SQLite database `{path}` to schema version {version}: {source}")]
    Migration {
        /// The database file.
        path: PathBuf,
        /// The version whose migration failed.
        version: i64,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// Setting the connection up failed (a pragma, WAL mode...).
    #[error("cannot set up SQLite database `{path}`: {source}")]
    Setup {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
}

impl OpenError {
    /// The database file the error is about.
    pub fn path(&self) -> &std::path::Path {
        match self {
            OpenError::Open { path, .. }
            | OpenError::Create { path, .. }
            | OpenError::NotADatabase { path, .. }
            | OpenError::ReadOnly { path, .. }
            | OpenError::NewerSchema { path, .. }
            | OpenError::Migration { path, .. }
            | OpenError::Setup { path, .. } => path,
        }
    }
}

//! The schema, as numbered migrations applied in order and recorded in
//! `apikeys_schema_migrations` (version, description, when applied), the
//! same table and columns as the PostgreSQL store's.
//!
//! Never edit a released migration: add a new one at the end. A database
//! whose recorded version is higher than [`MIGRATIONS`] knows was made by a
//! newer version of this crate, and opening it is refused.
//!
//! How values are kept:
//! - ids: their 16 bytes (`BLOB`);
//! - instants: signed nanoseconds since 1970-01-01T00:00:00Z (`INTEGER`),
//!   exact to the nanosecond, and ordered as integers;
//! - channels, audit kinds: their stable codes; actors: `operator` or an
//!   account id's text form;
//! - whitelists (a key's, and an account's policy's): the normalised entries
//!   in CIDR form, separated by spaces (`''` when empty);
//! - booleans (`enabled`, `legacy_default`, `suspended`): `INTEGER` 0 or 1;
//! - a policy's sub-account channels: their bits (0 to 31); its longest key
//!   lifetime: signed nanoseconds;
//! - a last use's client address: its canonical text.
//!
//! The rules that concurrent writers could break are held by the database
//! itself, so that they hold against other processes too:
//! - the primary key of `keys`: an identifier names one key, ignoring ASCII
//!   case (the column's `NOCASE` collation folds ASCII letters only, which
//!   is exactly the rule);
//! - `keys_one_per_channel`: one key per account and channel, except REST
//!   (whose limit is a policy value, counted inside the writing transaction).
//! - the foreign key of `tokens` to `keys`, `ON DELETE CASCADE`: a deleted
//!   key takes its tokens with it.

use crate::error::OpenError;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use std::path::Path;

/// A migration: its number, what it does, and its SQL.
pub(crate) struct Migration {
    pub(crate) version: i64,
    pub(crate) description: &'static str,
    pub(crate) sql: &'static str,
}

/// The migrations, in order; migration `version` brings the schema to that
/// version.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "accounts, keys, audit events",
        sql: "
    CREATE TABLE accounts (
        id          BLOB    NOT NULL PRIMARY KEY CHECK (length(id) = 16),
        kind        TEXT    NOT NULL CHECK (kind IN ('master', 'sub')),
        parent_id   BLOB    REFERENCES accounts (id),
        created_at  INTEGER NOT NULL,
        CHECK ((kind = 'sub') = (parent_id IS NOT NULL))
    ) WITHOUT ROWID;

    -- Clustered by identifier (WITHOUT ROWID, the identifier as primary
    -- key, NOCASE): authentication finds the whole row in one B-tree search.
    CREATE TABLE keys (
        identifier           TEXT    NOT NULL COLLATE NOCASE PRIMARY KEY,
        id                   BLOB    NOT NULL CHECK (length(id) = 16),
        account_id           BLOB    NOT NULL REFERENCES accounts (id),
        channel              TEXT    NOT NULL
            CHECK (channel IN ('ftp', 'rest', 'http', 'web_service', 'email')),
        label                TEXT,
        secret_hash          TEXT    NOT NULL,
        previous_hash        TEXT,
        previous_expires_at  INTEGER,
        whitelist            TEXT    NOT NULL,
        created_at           INTEGER NOT NULL,
        changed_at           INTEGER NOT NULL,
        version              INTEGER NOT NULL CHECK (version >= 1),
        CHECK ((previous_hash IS NULL) = (previous_expires_at IS NULL))
    ) WITHOUT ROWID;
    CREATE UNIQUE INDEX keys_id ON keys (id);
    CREATE UNIQUE INDEX keys_one_per_channel ON keys (account_id, channel)
        WHERE channel <> 'rest';
    CREATE INDEX keys_by_account ON keys (account_id, created_at, id);

    -- No foreign key to accounts: the trail outlives what it describes.
    CREATE TABLE audit_events (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        account_id  BLOB    NOT NULL,
        key_id      BLOB,
        channel     TEXT,
        at          INTEGER NOT NULL,
        kind        TEXT    NOT NULL,
        actor       TEXT    NOT NULL,
        detail      TEXT    NOT NULL
    );
    CREATE INDEX audit_by_account ON audit_events (account_id, at DESC, seq DESC);
    ",
    },
    Migration {
        version: 2,
        description: "REST tokens",
        sql: "
    -- Clustered by digest: a token check is one search here and one in
    -- `keys`, by the identifier the token keeps (a changed identifier
    -- deletes the key's tokens, so it is always the key's own).
    CREATE TABLE tokens (
        digest      BLOB    NOT NULL PRIMARY KEY CHECK (length(digest) = 32),
        key_id      BLOB    NOT NULL REFERENCES keys (id) ON DELETE CASCADE,
        identifier  TEXT    NOT NULL COLLATE NOCASE,
        issued_at   INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX tokens_by_key ON tokens (key_id, issued_at, digest);
    CREATE INDEX tokens_by_expiry ON tokens (expires_at);
    ",
    },
    Migration {
        version: 3,
        description: "sub-accounts listed by their master",
        sql: "
    -- A master's sub-accounts, in the order they are listed (creation
    -- instant, then id): one range of this index, no sort.
    CREATE INDEX accounts_by_parent ON accounts (parent_id, created_at, id);
    ",
    },
    Migration {
        version: 4,
        description: "key and account lifecycle, last use",
        sql: "
    -- Every column has the value an existing row had in the release before
    -- (a key that works, never expires and was never used; an account not
    -- suspended, with the default policy), so the upgrade changes nothing
    -- a client sees.
    ALTER TABLE keys ADD COLUMN expires_at INTEGER;
    ALTER TABLE keys ADD COLUMN enabled INTEGER NOT NULL DEFAULT 1
        CHECK (enabled IN (0, 1));
    ALTER TABLE keys ADD COLUMN legacy_default INTEGER NOT NULL DEFAULT 0
        CHECK (legacy_default IN (0, 1));
    ALTER TABLE keys ADD COLUMN last_used_at INTEGER;
    ALTER TABLE keys ADD COLUMN last_used_address TEXT;
    ALTER TABLE keys ADD COLUMN previous_secret_last_used_at INTEGER;
    ALTER TABLE accounts ADD COLUMN suspended INTEGER NOT NULL DEFAULT 0
        CHECK (suspended IN (0, 1));
    ALTER TABLE accounts ADD COLUMN policy_whitelist TEXT NOT NULL DEFAULT '';
    ALTER TABLE accounts ADD COLUMN sub_account_channels INTEGER NOT NULL DEFAULT 31
        CHECK (sub_account_channels BETWEEN 0 AND 31);
    ALTER TABLE accounts ADD COLUMN max_key_lifetime INTEGER;

    -- The releases before marked a legacy master's default keys only in the
    -- audit trail, with this exact detail on their `key_created` event.
    UPDATE keys SET legacy_default = 1
    WHERE id IN (SELECT key_id FROM audit_events
                 WHERE kind = 'key_created'
                   AND detail = 'default key of a legacy account'
                   AND key_id IS NOT NULL);

    -- Dormancy: scanned in id order (the listing's), the columns of the
    -- filter at hand in the index, so that a key that is not dormant costs
    -- no search of the table.
    CREATE INDEX keys_by_last_use ON keys (id, last_used_at, created_at, legacy_default);

    -- Grows by one with every change of an account's suspension or policy,
    -- in the change's transaction: a store may keep the accounts it read
    -- for as long as the epoch it read them at is still the one stored,
    -- so that a check reads one counter instead of two accounts.
    CREATE TABLE account_epoch (n INTEGER NOT NULL);
    INSERT INTO account_epoch (n) VALUES (0);
    ",
    },
    Migration {
        version: 5,
        description: "external ids of accounts",
        sql: "
    -- The platform's own id for an account: unique where given, compared
    -- byte for byte (the column's collation is BINARY, SQLite's default).
    -- An existing account has none.
    ALTER TABLE accounts ADD COLUMN external_id TEXT
        CHECK (external_id IS NULL
               OR length(CAST(external_id AS BLOB)) BETWEEN 1 AND 512);
    CREATE UNIQUE INDEX accounts_by_external_id ON accounts (external_id)
        WHERE external_id IS NOT NULL;
    ",
    },
];

/// The schema version this crate creates and understands.
pub(crate) const LATEST: i64 = MIGRATIONS.len() as i64;

/// Brings the database up to [`LATEST`], in one `IMMEDIATE` transaction so
/// that two processes opening a new file at once do not both migrate it.
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), OpenError> {
    let setup = |e| crate::connection::classify_open_error(path, e);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(setup)?;
    // Databases made before the table took the PostgreSQL store's name.
    let old_table: bool = tx
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'schema_migrations'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(setup)?
        == 1;
    if old_table {
        tx.execute_batch(
            "ALTER TABLE schema_migrations RENAME TO apikeys_schema_migrations;
             ALTER TABLE apikeys_schema_migrations ADD COLUMN description TEXT NOT NULL DEFAULT '';",
        )
        .map_err(setup)?;
        for m in MIGRATIONS {
            tx.execute(
                "UPDATE apikeys_schema_migrations SET description = ?2 WHERE version = ?1",
                rusqlite::params![m.version, m.description],
            )
            .map_err(setup)?;
        }
    }
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS apikeys_schema_migrations (
            version     INTEGER PRIMARY KEY,
            applied_at  TEXT    NOT NULL,
            description TEXT    NOT NULL
        );",
    )
    .map_err(setup)?;
    let found: i64 = tx
        .query_row(
            "SELECT max(version) FROM apikeys_schema_migrations",
            [],
            |r| r.get::<_, Option<i64>>(0),
        )
        .optional()
        .map_err(setup)?
        .flatten()
        .unwrap_or(0);
    if found > LATEST {
        return Err(OpenError::NewerSchema {
            path: path.to_path_buf(),
            found,
            supported: LATEST,
        });
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > found) {
        let migration_error = |source| OpenError::Migration {
            path: path.to_path_buf(),
            version: m.version,
            source,
        };
        tx.execute_batch(m.sql).map_err(migration_error)?;
        tx.execute(
            "INSERT INTO apikeys_schema_migrations (version, description, applied_at)
             VALUES (?1, ?2, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
            rusqlite::params![m.version, m.description],
        )
        .map_err(migration_error)?;
    }
    tx.commit().map_err(setup)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_in_order_up_to_latest() {
        for (i, m) in (1..).zip(MIGRATIONS) {
            assert_eq!(m.version, i);
        }
        assert_eq!(MIGRATIONS.last().map(|m| m.version), Some(LATEST));
    }
}

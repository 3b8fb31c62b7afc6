//! The schema, as numbered migrations embedded in the crate, and how they are
//! applied.
//!
//! Encodings:
//!
//! - ids: `bytea`, the 16 bytes of `AccountId::as_bytes` / `KeyId::as_bytes`;
//! - instants: `bigint` nanoseconds since 1970 in UTC (exact, sub-second
//!   included; `timestamptz` keeps only microseconds);
//! - channels, account kinds, audit kinds: their stable text codes;
//! - whitelists (a key's, and an account's policy's): `text[]` of
//!   normalised CIDR entries;
//! - actors: `operator` or the acting account's id in text form;
//! - booleans (`enabled`, `legacy_default`, `suspended`): `boolean`;
//! - a policy's sub-account channels: their bits, `bigint` 0 to 31; its
//!   longest key lifetime: `bigint` nanoseconds;
//! - a last use's client address: its canonical text;
//! - an account's external id: its text, `COLLATE "C"`, NULL when it has
//!   none.
//!
//! Rules held by the database itself, so that they hold against every
//! process writing to it:
//!
//! - `apikeys_keys_identifier_key`: a unique index on the identifier folded
//!   to lowercase, ASCII letters only (`translate(identifier, 'A..Z',
//!   'a..z')`, exactly `str::to_ascii_lowercase`). Not `lower()`: in a UTF-8
//!   database it also folds `É` to `é`, which the storage contract counts as
//!   different identifiers, and its result depends on the database's locale.
//! - `apikeys_keys_one_per_channel`: a partial unique index on
//!   `(account_id, channel) WHERE channel <> 'rest'`: one key per non-REST
//!   channel per account. The REST limit is a policy value, so it is counted
//!   in the writing transaction, under a lock on the account's row.
//! - `apikeys_accounts_external_id_key`: a unique constraint on the
//!   account's external id, a `text COLLATE "C"` column, so compared byte
//!   for byte whatever the database's locale; accounts without one (NULL)
//!   take part in no uniqueness.
//! - foreign keys from keys to their account, from a sub-account to its
//!   master, and from tokens to their key (`ON DELETE CASCADE`: a deleted
//!   key takes its tokens with it). None from audit events: the trail outlives what it describes
//!   (as in the SQLite store).
//!
//! The migrations run at connect in one transaction holding
//! `pg_advisory_xact_lock` on a key derived from the schema name, so that
//! processes connecting at once apply each migration exactly once, and a
//! database whose recorded version is newer than [`LATEST`] is refused.

use crate::error::ConnectError;
use postgres::Client;

/// A migration: its number, what it does, and its SQL.
struct Migration {
    version: i32,
    description: &'static str,
    sql: &'static str,
}

/// The SQL folding `expr` to lowercase, ASCII letters only, exactly as
/// `str::to_ascii_lowercase` does. Identifiers are compared by this; the
/// unique index is on `fold("identifier")`, and lookups use the very same
/// text so that the planner matches them to the index.
pub(crate) fn fold(expr: &str) -> String {
    format!("translate({expr}, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')")
}

/// Constraint and index names, which the store maps onto error kinds.
pub(crate) mod names {
    pub(crate) const ACCOUNTS_PKEY: &str = "apikeys_accounts_pkey";
    pub(crate) const ACCOUNTS_PARENT_FKEY: &str = "apikeys_accounts_parent_fkey";
    pub(crate) const ACCOUNTS_EXTERNAL_ID: &str = "apikeys_accounts_external_id_key";
    pub(crate) const KEYS_PKEY: &str = "apikeys_keys_pkey";
    pub(crate) const KEYS_IDENTIFIER: &str = "apikeys_keys_identifier_key";
    pub(crate) const KEYS_ONE_PER_CHANNEL: &str = "apikeys_keys_one_per_channel";
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "accounts, keys, audit events",
        sql: r#"
CREATE TABLE apikeys_accounts (
    id          bytea  NOT NULL,
    kind        text   NOT NULL,
    parent_id   bytea,
    created_at  bigint NOT NULL,
    CONSTRAINT apikeys_accounts_pkey PRIMARY KEY (id),
    CONSTRAINT apikeys_accounts_parent_fkey FOREIGN KEY (parent_id)
        REFERENCES apikeys_accounts (id),
    CONSTRAINT apikeys_accounts_id_check CHECK (octet_length(id) = 16),
    CONSTRAINT apikeys_accounts_kind_check CHECK (
        (kind = 'master' AND parent_id IS NULL) OR (kind = 'sub' AND parent_id IS NOT NULL))
);

CREATE TABLE apikeys_keys (
    id                   bytea  NOT NULL,
    account_id           bytea  NOT NULL,
    channel              text   NOT NULL,
    identifier           text   NOT NULL,
    label                text,
    secret_hash          text   NOT NULL,
    previous_hash        text,
    previous_expires_at  bigint,
    whitelist            text[] NOT NULL DEFAULT '{}',
    created_at           bigint NOT NULL,
    changed_at           bigint NOT NULL,
    version              bigint NOT NULL,
    CONSTRAINT apikeys_keys_pkey PRIMARY KEY (id),
    CONSTRAINT apikeys_keys_account_fkey FOREIGN KEY (account_id)
        REFERENCES apikeys_accounts (id),
    CONSTRAINT apikeys_keys_id_check CHECK (octet_length(id) = 16),
    CONSTRAINT apikeys_keys_channel_check CHECK (
        channel IN ('ftp', 'rest', 'http', 'web_service', 'email')),
    CONSTRAINT apikeys_keys_previous_check CHECK (
        (previous_hash IS NULL) = (previous_expires_at IS NULL)),
    CONSTRAINT apikeys_keys_version_check CHECK (version >= 1)
);

-- Created in this order on purpose: PostgreSQL checks unique indexes in the
-- order they were created, so a key breaking several rules is reported as
-- the in-memory store reports it (key id, then identifier, then channel).
CREATE UNIQUE INDEX apikeys_keys_identifier_key ON apikeys_keys
    (translate(identifier, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'));
CREATE UNIQUE INDEX apikeys_keys_one_per_channel ON apikeys_keys (account_id, channel)
    WHERE channel <> 'rest';
CREATE INDEX apikeys_keys_account ON apikeys_keys (account_id, created_at, id);

CREATE TABLE apikeys_audit_events (
    seq         bigserial NOT NULL,
    account_id  bytea     NOT NULL,
    key_id      bytea,
    channel     text,
    at          bigint    NOT NULL,
    kind        text      NOT NULL,
    actor       text      NOT NULL,
    detail      text      NOT NULL,
    CONSTRAINT apikeys_audit_events_pkey PRIMARY KEY (seq),
    CONSTRAINT apikeys_audit_events_account_fkey FOREIGN KEY (account_id)
        REFERENCES apikeys_accounts (id)
);
CREATE INDEX apikeys_audit_events_account ON apikeys_audit_events
    (account_id, at DESC, seq DESC);
"#,
    },
    Migration {
        version: 2,
        description: "the audit trail outlives what it describes: no foreign key to accounts",
        sql: "ALTER TABLE apikeys_audit_events DROP CONSTRAINT apikeys_audit_events_account_fkey;",
    },
    Migration {
        version: 3,
        description: "REST tokens",
        sql: r#"
CREATE TABLE apikeys_tokens (
    digest      bytea  NOT NULL,
    key_id      bytea  NOT NULL,
    issued_at   bigint NOT NULL,
    expires_at  bigint NOT NULL,
    CONSTRAINT apikeys_tokens_pkey PRIMARY KEY (digest),
    CONSTRAINT apikeys_tokens_key_fkey FOREIGN KEY (key_id)
        REFERENCES apikeys_keys (id) ON DELETE CASCADE,
    CONSTRAINT apikeys_tokens_digest_check CHECK (octet_length(digest) = 32)
);
CREATE INDEX apikeys_tokens_key ON apikeys_tokens (key_id, issued_at, digest);
CREATE INDEX apikeys_tokens_expiry ON apikeys_tokens (expires_at);
"#,
    },
    Migration {
        version: 4,
        description: "sub-accounts listed by their master",
        sql: "CREATE INDEX apikeys_accounts_parent ON apikeys_accounts (parent_id, created_at, id);",
    },
    Migration {
        version: 5,
        description: "key and account lifecycle, last use",
        sql: r#"
-- Every column has the value an existing row had in the release before (a
-- key that works, never expires and was never used; an account not
-- suspended, with the default policy), so the upgrade changes nothing a
-- client sees. Constant defaults: no table rewrite.
ALTER TABLE apikeys_keys
    ADD COLUMN expires_at                    bigint,
    ADD COLUMN enabled                       boolean NOT NULL DEFAULT true,
    ADD COLUMN legacy_default                boolean NOT NULL DEFAULT false,
    ADD COLUMN last_used_at                  bigint,
    ADD COLUMN last_used_address             text,
    ADD COLUMN previous_secret_last_used_at  bigint;
ALTER TABLE apikeys_accounts
    ADD COLUMN suspended             boolean NOT NULL DEFAULT false,
    ADD COLUMN policy_whitelist      text[]  NOT NULL DEFAULT '{}',
    ADD COLUMN sub_account_channels  bigint  NOT NULL DEFAULT 31,
    ADD COLUMN max_key_lifetime      bigint,
    ADD CONSTRAINT apikeys_accounts_sub_account_channels_check
        CHECK (sub_account_channels BETWEEN 0 AND 31);

-- The releases before marked a legacy master's default keys only in the
-- audit trail, with this exact detail on their `key_created` event.
UPDATE apikeys_keys SET legacy_default = true
WHERE id IN (SELECT key_id FROM apikeys_audit_events
             WHERE kind = 'key_created'
               AND detail = 'default key of a legacy account'
               AND key_id IS NOT NULL);

-- No index for dormancy, on purpose: one on `last_used_at` would make every
-- recorded use a non-HOT update touching every index of the table, on the
-- write that happens for every used key each flush interval, to speed up a
-- rare listing that the primary key already serves in its order.
"#,
    },
    Migration {
        version: 6,
        description: "accounts carry the platform's own id, unique among accounts",
        sql: r#"
-- NULL for every existing account: none had one, and NULLs take part in no
-- uniqueness. "C" compares bytes, whatever the database's collation, as the
-- storage contract compares external ids (no case folding, no
-- normalisation); the lookup by external id uses the unique index. It is
-- created after the primary key on purpose: PostgreSQL checks unique
-- indexes in the order they were created, so an account whose id and
-- external id are both taken is refused for its id, as the in-memory store
-- refuses it. The domain holds the id to at most 128 characters, 512 bytes;
-- the check says so to every other writer.
ALTER TABLE apikeys_accounts
    ADD COLUMN external_id text COLLATE "C",
    ADD CONSTRAINT apikeys_accounts_external_id_key UNIQUE (external_id),
    ADD CONSTRAINT apikeys_accounts_external_id_check
        CHECK (octet_length(external_id) BETWEEN 1 AND 512);
"#,
    },
];

/// The latest schema version this crate knows.
pub const LATEST: i32 = 6;

/// First half of the advisory lock key ("apks"); the second half is a hash
/// of the schema name, so that schemas migrate independently.
const LOCK_CLASS: i32 = 0x6170_6b73;

/// Creates the schema if asked, then applies the migrations the database
/// lacks, in one transaction under an advisory lock.
pub(crate) fn migrate(client: &mut Client, schema: Option<&str>) -> Result<(), ConnectError> {
    let setup = |source| ConnectError::Migration { version: 0, source };
    let mut tx = client.transaction().map_err(setup)?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext(coalesce($2::text, current_schema()::text, '')))",
        &[&LOCK_CLASS, &schema],
    )
    .map_err(setup)?;
    if let Some(schema) = schema {
        // The name was checked by `valid_schema_name`: no quoting issue.
        tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
            .map_err(setup)?;
    }
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS apikeys_schema_migrations (
             version     integer     NOT NULL PRIMARY KEY,
             description text        NOT NULL,
             applied_at  timestamptz NOT NULL DEFAULT now()
         )",
    )
    .map_err(setup)?;
    let found: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM apikeys_schema_migrations",
            &[],
        )
        .and_then(|row| row.try_get(0))
        .map_err(setup)?;
    if found > LATEST {
        return Err(ConnectError::NewerSchema {
            found,
            supported: LATEST,
        });
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > found) {
        let failed = |source| ConnectError::Migration {
            version: m.version,
            source,
        };
        tx.batch_execute(m.sql).map_err(failed)?;
        tx.execute(
            "INSERT INTO apikeys_schema_migrations (version, description) VALUES ($1, $2)",
            &[&m.version, &m.description],
        )
        .map_err(failed)?;
    }
    tx.commit().map_err(setup)
}

/// Whether `name` is a schema name this crate accepts: it goes into SQL and
/// into the connection's `search_path` unquoted.
pub(crate) fn valid_schema_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    (1..=63).contains(&name.len())
        && bytes
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.starts_with("pg_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_in_order_up_to_latest() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i32 + 1);
        }
        assert_eq!(MIGRATIONS.last().map(|m| m.version), Some(LATEST));
    }

    #[test]
    fn the_lookup_folds_as_the_index_does() {
        assert!(MIGRATIONS[0].sql.contains(&fold("identifier")));
    }

    #[test]
    fn schema_names() {
        for good in ["apikeys", "_x", "tenant_42", &"a".repeat(63)] {
            assert!(valid_schema_name(good), "{good}");
        }
        for bad in [
            "",
            "Apikeys",
            "4tenant",
            "a-b",
            "a b",
            "x\"; DROP",
            "pg_temp",
            "é",
            &"a".repeat(64),
        ] {
            assert!(!valid_schema_name(bad), "{bad}");
        }
    }
}

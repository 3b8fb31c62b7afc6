//! Connecting: migrations, refusals with clear errors, and what this backend
//! does beyond the conformance suite (rows it cannot read). ASCII-only case
//! folding, which `lower()` would break, is the suite's
//! `identifier_case_folding_is_ascii_only`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use apikeys::testing::records;
use apikeys::{Account, AccountId, AuditEvent, Channel, KeyId, KeyRecord, Store, StoreError};
use apikeys_postgres::testing::TestSchema;
use apikeys_postgres::{BadRow, ConnectError, Options, PostgresStore, schema};
use std::error::Error as _;

fn master(n: u8) -> Account {
    records::master(AccountId::from_bytes([n; 16]))
}

fn key(n: u8, account: AccountId, channel: Channel, identifier: &str) -> KeyRecord {
    records::key(KeyId::from_bytes([n; 16]), account, channel, identifier)
}

fn created(k: &KeyRecord) -> AuditEvent {
    records::created(k)
}

fn migrations(db: &TestSchema) -> Vec<i32> {
    db.client()
        .query(
            &format!(
                "SELECT version FROM {}.apikeys_schema_migrations ORDER BY version",
                db.name()
            ),
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[test]
fn connecting_again_migrates_nothing_and_keeps_the_data() {
    let Some(db) = TestSchema::new("schema_reconnect") else {
        return;
    };
    let a = master(1);
    db.store(2).create_account(&a, &[], &[]).unwrap();
    let store = db.store(2);
    assert_eq!(store.account(a.id).unwrap(), Some(a));
    assert_eq!(store.schema(), Some(db.name()));
    assert_eq!(store.pool_size(), 2);
    let expected: Vec<i32> = (1..=schema::LATEST).collect();
    assert_eq!(migrations(&db), expected);
}

/// Takes a schema of the current version back to version 4 (before the
/// external ids, and before the lifecycle columns), so that a test can make
/// an older schema from it.
const UNDO_MIGRATIONS_6_AND_5: &str = "
    ALTER TABLE apikeys_accounts DROP COLUMN external_id;
    ALTER TABLE apikeys_keys
        DROP COLUMN expires_at, DROP COLUMN enabled, DROP COLUMN legacy_default,
        DROP COLUMN last_used_at, DROP COLUMN last_used_address,
        DROP COLUMN previous_secret_last_used_at;
    ALTER TABLE apikeys_accounts
        DROP COLUMN suspended, DROP COLUMN policy_whitelist,
        DROP COLUMN sub_account_channels, DROP COLUMN max_key_lifetime;
    DELETE FROM apikeys_schema_migrations WHERE version > 4;";

/// A schema made by the first release (version 1, with a foreign key from
/// audit events to accounts) upgrades in place: its data stays, version 2 is
/// recorded, and the trail no longer depends on the accounts table.
#[test]
fn a_schema_of_the_first_release_upgrades_and_keeps_its_data() {
    let Some(db) = TestSchema::new("schema_first_release") else {
        return;
    };
    let a = master(9);
    let k = key(9, a.id, Channel::Ftp, "from-the-first-release");
    db.store(1)
        .create_account(&a, std::slice::from_ref(&k), &[created(&k)])
        .unwrap();
    // Put the schema back as the first release left it.
    db.client()
        .batch_execute(&format!(
            "SET search_path = {schema};
             {UNDO_MIGRATIONS_6_AND_5}
             DROP TABLE apikeys_tokens;
             DROP INDEX apikeys_accounts_parent;
             DELETE FROM apikeys_schema_migrations WHERE version > 1;
             ALTER TABLE apikeys_audit_events ADD CONSTRAINT apikeys_audit_events_account_fkey
                 FOREIGN KEY (account_id) REFERENCES apikeys_accounts (id);",
            schema = db.name()
        ))
        .unwrap();
    assert_eq!(migrations(&db), vec![1]);

    let store = db.store(1);
    assert_eq!(migrations(&db), (1..=schema::LATEST).collect::<Vec<_>>());
    assert_eq!(store.key(k.id).unwrap(), Some(k));
    assert_eq!(store.audit_events(a.id, 10).unwrap().len(), 1);
    let foreign_keys: i64 = db
        .client()
        .query_one(
            "SELECT count(*) FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
             JOIN pg_namespace n ON n.oid = t.relnamespace
             WHERE n.nspname = $1 AND t.relname = 'apikeys_audit_events' AND c.contype = 'f'",
            &[&db.name()],
        )
        .unwrap()
        .get(0);
    assert_eq!(foreign_keys, 0, "the audit trail has no foreign key");
    let parent_index: i64 = db
        .client()
        .query_one(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = $1 AND indexname = 'apikeys_accounts_parent'",
            &[&db.name()],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        parent_index, 1,
        "migration 4 made the index of sub-accounts by master"
    );
}

#[test]
fn a_newer_schema_is_refused_naming_both_versions() {
    let Some(db) = TestSchema::new("schema_newer") else {
        return;
    };
    drop(db.store(1));
    let newer = schema::LATEST + 1;
    db.client()
        .execute(
            &format!(
                "INSERT INTO {}.apikeys_schema_migrations (version, description) VALUES ($1, 'from the future')",
                db.name()
            ),
            &[&newer],
        )
        .unwrap();
    let err =
        PostgresStore::connect_with(db.url(), Options::default().pool_size(1).schema(db.name()))
            .unwrap_err();
    assert!(
        matches!(err, ConnectError::NewerSchema { found, supported } if found == newer && supported == schema::LATEST),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("schema version {newer}"))
            && msg.contains(&format!("version {}", schema::LATEST))
            && msg.contains("upgrade apikeys-postgres"),
        "{msg}"
    );
}

#[test]
fn bad_arguments_are_refused_before_connecting() {
    // No server needed for these.
    let err = PostgresStore::connect_with(
        "postgres://u@127.0.0.1:1/x",
        Options::default().pool_size(0),
    )
    .unwrap_err();
    assert!(matches!(err, ConnectError::InvalidPoolSize(0)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "the connection pool size must be at least 1, not 0"
    );
    let err = PostgresStore::connect_with(
        "postgres://u@127.0.0.1:1/x",
        Options::default().pool_size(1).schema("Bad-Name\""),
    )
    .unwrap_err();
    assert!(matches!(err, ConnectError::InvalidSchema { .. }), "{err:?}");
    assert!(err.to_string().contains("`Bad-Name\"`"));
    assert!(err.to_string().contains("lowercase ASCII letters"));
    let err = PostgresStore::connect_with(
        "postgres://secret-password@127.0.0.1:99999999/x",
        Options::default().pool_size(1),
    )
    .unwrap_err();
    assert!(matches!(err, ConnectError::InvalidUrl { .. }), "{err:?}");
    assert!(!err.to_string().contains("secret-password"));
    // A parser error that quotes the string: the password is hidden, in the
    // message and in Debug.
    for url in [
        "mysql://app:s3cret-pw@db/x?a=1",
        "postgres://app:s3cret-pw@db/x?bogus_option=1",
        "host=db password=s3cret-pw bogus=1",
    ] {
        let err = PostgresStore::connect_with(url, Options::default().pool_size(1)).unwrap_err();
        assert!(
            matches!(err, ConnectError::InvalidUrl { .. }),
            "{url}: {err:?}"
        );
        assert!(
            !format!("{err} {err:?}").contains("s3cret-pw"),
            "{url}: {err}"
        );
    }
}

#[test]
fn an_unreachable_server_is_a_connect_error() {
    // Port 1 on loopback: nothing listens there.
    let err = PostgresStore::connect_with(
        "postgres://u@127.0.0.1:1/x?connect_timeout=2",
        Options::default().pool_size(1),
    )
    .unwrap_err();
    assert!(matches!(err, ConnectError::Connect { .. }), "{err:?}");
    assert!(err.to_string().starts_with("cannot connect to PostgreSQL"));
    assert!(err.source().is_some(), "the client's error is kept");
}

#[test]
fn the_default_schema_works_too() {
    // Without a schema option, the tables go to the connection's default
    // schema; point it at a test schema through the URL's options.
    let Some(db) = TestSchema::new("schema_default") else {
        return;
    };
    db.client()
        .batch_execute(&format!("CREATE SCHEMA {}", db.name()))
        .unwrap();
    let url = format!("{}&options=-csearch_path%3D{}", db.url(), db.name());
    let store = PostgresStore::connect_with(&url, Options::default().pool_size(2)).unwrap();
    assert_eq!(store.schema(), None);
    let a = master(2);
    store.create_account(&a, &[], &[]).unwrap();
    assert_eq!(migrations(&db), (1..=schema::LATEST).collect::<Vec<_>>());
    assert_eq!(store.account(a.id).unwrap(), Some(a));
}

/// A row edited by hand into something the store cannot read is a backend
/// error naming the table and the column, not a panic.
#[test]
fn unreadable_rows_are_backend_errors() {
    let Some(db) = TestSchema::new("schema_bad_rows") else {
        return;
    };
    let store = db.store(1);
    let a = master(4);
    store.create_account(&a, &[], &[]).unwrap();
    let k = key(4, a.id, Channel::Ftp, "tampered");
    store.insert_key(&k, 1, &created(&k)).unwrap();

    let mut admin = db.client();
    let mut check = |sql: &str, column: &str| {
        let mut tx = admin.transaction().unwrap();
        tx.batch_execute(&format!("SET LOCAL search_path = {}; {sql}", db.name()))
            .unwrap();
        tx.commit().unwrap();
        let err = store.key(k.id).unwrap_err();
        let StoreError::Backend { source } = &err else {
            panic!("{err:?}")
        };
        let bad = source.downcast_ref::<BadRow>().unwrap();
        assert_eq!((bad.table, bad.column), ("apikeys_keys", column), "{err}");
        assert!(
            err.to_string().contains(&format!("column `{column}`")),
            "{err}"
        );
        // The lookup by identifier reads the same row the same way.
        assert!(store.key_by_identifier("tampered").is_err());
    };
    check(
        "UPDATE apikeys_keys SET whitelist = '{not-an-address}'",
        "whitelist",
    );
    check(
        "UPDATE apikeys_keys SET whitelist = '{}'; \
         ALTER TABLE apikeys_keys DROP CONSTRAINT apikeys_keys_previous_check; \
         UPDATE apikeys_keys SET previous_hash = '$sha256$old'",
        "previous_hash",
    );
    check(
        "UPDATE apikeys_keys SET previous_hash = NULL; \
         ALTER TABLE apikeys_keys DROP CONSTRAINT apikeys_keys_channel_check; \
         UPDATE apikeys_keys SET channel = 'sms'",
        "channel",
    );
    check(
        "UPDATE apikeys_keys SET channel = 'ftp'; \
         ALTER TABLE apikeys_keys DROP CONSTRAINT apikeys_keys_version_check; \
         UPDATE apikeys_keys SET version = 0",
        "version",
    );
}

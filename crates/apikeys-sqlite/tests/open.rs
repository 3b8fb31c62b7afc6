//! Opening databases: good and bad files, schema versions, unreadable rows.
//! (What any store must do with the values it is given, such as refusing
//! instants out of range, is the conformance suite's.)
// Tests may unwrap and panic (helpers outside `#[test]` functions too).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use apikeys::testing::START;
use apikeys::{
    Account, AccountId, AccountKind, Actor, AuditEvent, AuditKind, Channel, KeyId, KeyRecord,
    Store, StoreError, Whitelist,
};
use apikeys_sqlite::{BadRow, OpenError, SCHEMA_VERSION, SqliteStore};
use common::{after, is_worker, temp_store};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn master(seed: u64) -> Account {
    Account {
        id: AccountId::random(&mut ChaCha20Rng::seed_from_u64(seed)),
        kind: AccountKind::Master,
        created_at: START,
        suspended: false,
        policy: Default::default(),
        external_id: None,
    }
}

fn opened(a: &Account) -> AuditEvent {
    AuditEvent {
        account_id: a.id,
        key_id: None,
        channel: None,
        at: START,
        kind: AuditKind::AccountOpened,
        actor: Actor::Operator,
        detail: "opened".into(),
    }
}

/// The error of opening `path`, checking that its message names the path.
fn open_error(path: &Path) -> OpenError {
    let err = SqliteStore::open(path).expect_err("opening should fail");
    let shown = err.to_string();
    assert!(
        shown.contains(&path.display().to_string()),
        "the error names the file: {shown}"
    );
    assert_eq!(err.path(), path);
    err
}

#[test]
fn a_new_file_gets_the_schema_and_keeps_data_across_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    let a = master(1);
    {
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.path(), Some(path.as_path()));
        // Debug names the file (and nothing of the connections).
        let shown = format!("{store:?}");
        assert!(
            shown.starts_with("SqliteStore") && shown.contains(&format!("{path:?}")),
            "{shown}"
        );
        store.create_account(&a, &[], &[opened(&a)]).unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.account(a.id).unwrap(), Some(a.clone()));
    assert_eq!(store.audit_events(a.id, 10).unwrap().len(), 1);
    drop(store);

    let conn = rusqlite::Connection::open(&path).unwrap();
    let versions: Vec<(i64, String)> = conn
        .prepare("SELECT version, applied_at FROM apikeys_schema_migrations ORDER BY version")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        versions.iter().map(|v| v.0).collect::<Vec<_>>(),
        (1..=SCHEMA_VERSION).collect::<Vec<_>>(),
        "each migration recorded once, reopening ran none again"
    );
    assert!(versions[0].1.ends_with('Z'), "{}", versions[0].1);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn an_empty_file_is_a_new_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.db");
    std::fs::write(&path, b"").unwrap();
    let store = SqliteStore::open(&path).unwrap();
    let a = master(2);
    store.create_account(&a, &[], &[]).unwrap();
}

#[test]
fn a_file_that_is_not_a_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "not a database, just some notes\n".repeat(200)).unwrap();
    let err = open_error(&path);
    assert!(matches!(err, OpenError::NotADatabase { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("is not a SQLite database or is corrupt")
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        "not a database, just some notes\n".repeat(200).into_bytes(),
        "the file is left alone"
    );
}

fn database_with_data(path: &Path) {
    let store = SqliteStore::open(path).unwrap();
    for seed in 0..50 {
        let a = master(100 + seed);
        store.create_account(&a, &[], &[opened(&a)]).unwrap();
    }
}

#[test]
fn a_corrupt_header_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corrupt-header.db");
    database_with_data(&path);
    let mut bytes = std::fs::read(&path).unwrap();
    // The page size (bytes 16-17) must be a power of two.
    bytes[16] = 0x12;
    bytes[17] = 0x34;
    std::fs::write(&path, &bytes).unwrap();
    let err = open_error(&path);
    assert!(matches!(err, OpenError::NotADatabase { .. }), "{err:?}");
}

#[test]
fn a_corrupt_schema_page_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corrupt-schema.db");
    database_with_data(&path);
    let mut bytes = std::fs::read(&path).unwrap();
    // Page 1 after the 100-byte file header holds the schema table.
    for b in &mut bytes[100..4096] {
        *b = 0xA5;
    }
    std::fs::write(&path, &bytes).unwrap();
    let err = open_error(&path);
    assert!(matches!(err, OpenError::NotADatabase { .. }), "{err:?}");
}

#[test]
fn a_missing_directory_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dir").join("keys.db");
    let err = open_error(&path);
    assert!(matches!(err, OpenError::Open { .. }), "{err:?}");
    assert!(err.to_string().starts_with("cannot open SQLite database"));
}

#[test]
fn a_newer_schema_is_refused_not_guessed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("newer.db");
    database_with_data(&path);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "INSERT INTO apikeys_schema_migrations (version, description, applied_at) VALUES (?1, 'from the future', 'later')",
        [SCHEMA_VERSION + 41],
    )
    .unwrap();
    drop(conn);
    let err = open_error(&path);
    match &err {
        OpenError::NewerSchema {
            found, supported, ..
        } => assert_eq!((*found, *supported), (SCHEMA_VERSION + 41, SCHEMA_VERSION)),
        other => panic!("{other:?}"),
    }
    let shown = err.to_string();
    assert!(
        shown.contains(&format!("schema version {}", SCHEMA_VERSION + 41))
            && shown.contains(&format!("newer than version {SCHEMA_VERSION}")),
        "{shown}"
    );
    // Nothing was changed: the newer version is still recorded.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let max: i64 = conn
        .query_row(
            "SELECT max(version) FROM apikeys_schema_migrations",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(max, SCHEMA_VERSION + 41);
}

/// Takes a database of the current schema back to version 3 (before the
/// lifecycle columns), so that a test can make an older database from it.
const UNDO_MIGRATION_4: &str = "
    DROP INDEX accounts_by_external_id;
    ALTER TABLE accounts DROP COLUMN external_id;
    DROP INDEX keys_by_last_use;
    DROP TABLE account_epoch;
    ALTER TABLE keys DROP COLUMN expires_at;
    ALTER TABLE keys DROP COLUMN enabled;
    ALTER TABLE keys DROP COLUMN legacy_default;
    ALTER TABLE keys DROP COLUMN last_used_at;
    ALTER TABLE keys DROP COLUMN last_used_address;
    ALTER TABLE keys DROP COLUMN previous_secret_last_used_at;
    ALTER TABLE accounts DROP COLUMN suspended;
    ALTER TABLE accounts DROP COLUMN policy_whitelist;
    ALTER TABLE accounts DROP COLUMN sub_account_channels;
    ALTER TABLE accounts DROP COLUMN max_key_lifetime;
    DELETE FROM apikeys_schema_migrations WHERE version > 3;";

/// A database made before the migrations table took the PostgreSQL store's
/// name (`schema_migrations`, without descriptions) is upgraded in place,
/// keeping its data and its recorded versions.
#[test]
fn a_database_of_the_first_release_keeps_its_data_and_versions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("first-release.db");
    database_with_data(&path);
    // Put the table back as the first release made it.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(UNDO_MIGRATION_4).unwrap();
    conn.execute_batch(
        "DROP TABLE tokens;
         DROP INDEX accounts_by_parent;
         DELETE FROM apikeys_schema_migrations WHERE version > 1;
         ALTER TABLE apikeys_schema_migrations DROP COLUMN description;
         ALTER TABLE apikeys_schema_migrations RENAME TO schema_migrations;",
    )
    .unwrap();
    drop(conn);

    let store = SqliteStore::open(&path).unwrap();
    assert!(
        store.account(master(100).id).unwrap().is_some(),
        "data kept"
    );
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let rows: Vec<(i64, String)> = conn
        .prepare("SELECT version, description FROM apikeys_schema_migrations ORDER BY version")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows,
        vec![
            (1, "accounts, keys, audit events".to_string()),
            (2, "REST tokens".to_string()),
            (3, "sub-accounts listed by their master".to_string()),
            (4, "key and account lifecycle, last use".to_string()),
            (5, "external ids of accounts".to_string()),
        ],
        "the old versions are kept and the newer migrations applied"
    );
    let old: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name = 'schema_migrations'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(old, 0, "the old table is gone");
}

/// A database of the previous release (schema version 2, without the index
/// of sub-accounts by master) gains the index when opened, keeps its data,
/// and the listing reads it through that index.
#[test]
fn a_database_of_version_2_gains_the_sub_account_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("version-2.db");
    let m = master(7);
    let sub = Account {
        id: master(8).id,
        kind: AccountKind::Sub { parent: m.id },
        created_at: m.created_at,
        suspended: false,
        policy: Default::default(),
        external_id: None,
    };
    {
        let store = SqliteStore::open(&path).unwrap();
        store.create_account(&m, &[], &[opened(&m)]).unwrap();
        store.create_account(&sub, &[], &[opened(&sub)]).unwrap();
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(UNDO_MIGRATION_4).unwrap();
    conn.execute_batch(
        "DROP INDEX accounts_by_parent;
         DELETE FROM apikeys_schema_migrations WHERE version > 2;",
    )
    .unwrap();
    drop(conn);

    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.sub_accounts(m.id).unwrap(), vec![sub.clone()]);
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let versions: Vec<i64> = conn
        .prepare("SELECT version FROM apikeys_schema_migrations ORDER BY version")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(versions, (1..=SCHEMA_VERSION).collect::<Vec<_>>());
    let plan: String = conn
        .query_row(
            "EXPLAIN QUERY PLAN SELECT id FROM accounts WHERE parent_id = ?1 ORDER BY created_at, id",
            [sub.id.as_bytes().as_slice()],
            |r| r.get(3),
        )
        .unwrap();
    assert!(
        plan.contains("accounts_by_parent") && !plan.contains("TEMP B-TREE"),
        "the listing uses the index, unsorted: {plan}"
    );
}

// ----- files at rest ----------------------------------------------------------

/// Opens a new store at the path in `APIKEYS_SQLITE_TEST_PATH`, writes to it
/// (so that its -wal and -shm exist) and prints each file's mode.
#[test]
fn worker_private_files() {
    if !is_worker("worker_private_files") {
        return;
    }
    let path = std::path::PathBuf::from(std::env::var("APIKEYS_SQLITE_TEST_PATH").unwrap());
    let store = SqliteStore::open(&path).unwrap();
    let a = master(60);
    store.create_account(&a, &[], &[opened(&a)]).unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("{}{suffix}", path.display());
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        println!("MODE {suffix} {mode:o}");
    }
}

/// Whatever the umask (even 000, which makes files world-writable by
/// default), a database the store creates, and its -wal and -shm, are
/// readable and writable by their owner only.
#[test]
fn new_files_are_private_whatever_the_umask() {
    if is_worker("worker_private_files") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("private.db");
    let worker = common::worker("worker_private_files");
    let program = worker.get_program().to_owned();
    let args: Vec<_> = worker.get_args().map(ToOwned::to_owned).collect();
    for umask in ["000", "022"] {
        let _ = std::fs::remove_file(&path);
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
            .arg(&program)
            .args(&args)
            .env(common::WORKER, "worker_private_files")
            .env("APIKEYS_SQLITE_TEST_PATH", &path)
            .output()
            .unwrap();
        let printed = String::from_utf8_lossy(&out.stdout);
        let modes: Vec<&str> = printed.lines().filter_map(|l| after(l, "MODE ")).collect();
        assert_eq!(
            modes,
            [" 600", "-wal 600", "-shm 600"],
            "umask {umask}: {printed}"
        );
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
}

/// A database file that others may read is reported, so that the server can
/// warn about it.
#[test]
fn files_readable_by_others_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.readable_by_others(), vec![]);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(store.readable_by_others(), vec![(path.clone(), 0o644)]);
    assert_eq!(
        SqliteStore::open_in_memory().unwrap().readable_by_others(),
        vec![]
    );
}

// ----- read-only files -----------------------------------------------------

/// Opens the file named by the environment and prints the outcome (run as
/// another user by the read-only tests when they run as root).
#[test]
fn worker_open() {
    if !is_worker("worker_open") {
        return;
    }
    let path = std::env::var_os("APIKEYS_SQLITE_OPEN_PATH").unwrap();
    match SqliteStore::open(&path) {
        Ok(_) => println!("OPEN-RESULT: ok"),
        Err(e) => println!("OPEN-RESULT: {e:?} | {e}"),
    }
}

/// The outcome of opening `path` while unable to write what `probe` names:
/// in this process if permissions bind it, else as user `nobody` (root
/// ignores permissions). `None` if neither is possible here.
fn open_without_write_access(path: &Path, probe: &Path) -> Option<String> {
    let bound = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(probe)
        .is_err();
    if probe != path {
        let _ = std::fs::remove_file(probe);
    }
    if bound {
        return Some(match SqliteStore::open(path) {
            Ok(_) => "ok".into(),
            Err(e) => format!("{e:?} | {e}"),
        });
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(exe)
        .args([
            "worker_open",
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(common::WORKER, "worker_open")
        .env("APIKEYS_SQLITE_OPEN_PATH", path)
        .output()
        .ok()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let found = stdout
        .lines()
        .find_map(|l| after(l, "OPEN-RESULT: "))
        .map(str::to_owned);
    if found.is_none() {
        eprintln!(
            "skipped: cannot drop privileges to test read-only files here: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    found
}

fn make_readable_by_all(dir: &Path) {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_read_only_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    make_readable_by_all(dir.path());
    let path = dir.path().join("read-only.db");
    database_with_data(&path);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
    let Some(outcome) = open_without_write_access(&path, &path) else {
        return;
    };
    assert!(outcome.starts_with("ReadOnly"), "{outcome}");
    assert!(
        outcome.contains(&format!(
            "SQLite database `{}` is read-only",
            path.display()
        )),
        "{outcome}"
    );
}

#[test]
fn a_read_only_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("locked");
    std::fs::create_dir(&sub).unwrap();
    make_readable_by_all(dir.path());
    let path = sub.join("keys.db");
    database_with_data(&path);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o555)).unwrap();
    let outcome = open_without_write_access(&path, &sub.join("probe"));
    std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o755)).unwrap();
    let Some(outcome) = outcome else { return };
    assert!(
        outcome.contains(&format!("`{}`", path.display())),
        "the error names the file: {outcome}"
    );
    assert!(outcome.starts_with("ReadOnly"), "{outcome}");
}

// ----- values that cannot be stored or read back ----------------------------

#[test]
fn an_unreadable_row_is_a_backend_error_naming_the_column() {
    let damage = [
        ("whitelist", "'10.0.0.0/8 not-an-address'"),
        ("created_at", "'yesterday'"),
        ("account_id", "x'0102'"),
        ("version", "0"),
        ("channel", "'sms'"),
        ("previous_hash", "'orphan-hash'"),
        ("secret_hash", "'$md5$not-a-hash-we-read'"),
        ("enabled", "2"),
        ("last_used_address", "'not-an-address'"),
    ];
    for (seed, (column, value)) in (20..).zip(damage) {
        let t = temp_store();
        let a = master(seed);
        t.store.create_account(&a, &[], &[]).unwrap();
        let k = KeyRecord {
            id: KeyId::random(&mut ChaCha20Rng::seed_from_u64(seed)),
            account_id: a.id,
            channel: Channel::Rest,
            identifier: format!("damaged-{column}"),
            label: None,
            secret_hash: apikeys::testing::records::hash("x"),
            previous_secret: None,
            whitelist: Whitelist::default(),
            created_at: START,
            changed_at: START,
            version: 1,
            expires_at: None,
            enabled: true,
            legacy_default: false,
            usage: Default::default(),
        };
        t.store.insert_key(&k, 10, &opened(&a)).unwrap();

        // Damage the row behind the store's back, past the schema's checks.
        let conn = rusqlite::Connection::open(t.store.path().unwrap()).unwrap();
        conn.execute_batch("PRAGMA ignore_check_constraints = ON; PRAGMA foreign_keys = OFF;")
            .unwrap();
        conn.execute(&format!("UPDATE keys SET {column} = {value}"), [])
            .unwrap();

        let mut reads = vec![
            t.store.key(k.id).map(|_| ()),
            t.store.key_by_identifier(&k.identifier).map(|_| ()),
        ];
        if column != "account_id" {
            reads.push(t.store.keys_of_account(a.id).map(|_| ()));
        }
        for result in reads {
            let err = result.expect_err(column);
            let StoreError::Backend { source } = &err else {
                panic!("{column}: {err:?}")
            };
            let bad = source
                .downcast_ref::<BadRow>()
                .unwrap_or_else(|| panic!("{column}: {source:?}"));
            assert_eq!((bad.table, bad.column), ("keys", column));
            assert!(
                err.to_string().contains(&format!(
                    "unreadable value in column `{column}` of table `keys`"
                )),
                "{err}"
            );
        }
    }
}

/// The same for an account's lifecycle columns, through every read of an
/// account (the authentication read's too).
#[test]
fn an_unreadable_account_row_is_a_backend_error_naming_the_column() {
    let damage = [
        ("suspended", "7"),
        ("policy_whitelist", "'10.0.0.0/8 nonsense'"),
        ("sub_account_channels", "32"),
        ("max_key_lifetime", "'forever'"),
    ];
    for (seed, (column, value)) in (40..).zip(damage) {
        let t = temp_store();
        let a = master(seed);
        let mut k = apikeys::testing::records::key(
            KeyId::random(&mut ChaCha20Rng::seed_from_u64(seed)),
            a.id,
            Channel::Ftp,
            &format!("account-{column}"),
        );
        k.created_at = a.created_at;
        t.store
            .create_account(&a, &[k.clone()], &[opened(&a)])
            .unwrap();
        let conn = rusqlite::Connection::open(t.store.path().unwrap()).unwrap();
        conn.execute_batch("PRAGMA ignore_check_constraints = ON;")
            .unwrap();
        conn.execute(&format!("UPDATE accounts SET {column} = {value}"), [])
            .unwrap();
        let reads = [
            t.store.account(a.id).map(|_| ()),
            t.store.accounts(None, 10).map(|_| ()),
            t.store.holders(a.id).map(|_| ()),
            t.store.key_for_authentication(&k.identifier).map(|_| ()),
        ];
        for result in reads {
            let err = result.expect_err(column);
            let StoreError::Backend { source } = &err else {
                panic!("{column}: {err:?}")
            };
            let bad = source
                .downcast_ref::<BadRow>()
                .unwrap_or_else(|| panic!("{column}: {source:?}"));
            assert_eq!((bad.table, bad.column), ("accounts", column));
        }
    }
}

#[test]
fn in_memory_stores_are_separate() {
    let one = SqliteStore::open_in_memory().unwrap();
    let two = SqliteStore::open_in_memory().unwrap();
    assert_eq!(one.path(), None);
    let a = master(13);
    one.create_account(&a, &[], &[]).unwrap();
    assert_eq!(two.account(a.id).unwrap(), None);
}

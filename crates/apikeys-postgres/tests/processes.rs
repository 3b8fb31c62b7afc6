//! Races across processes, not just threads: this test binary runs itself
//! again as child processes (`--exact <test> --nocapture`, with
//! `APIKEYS_PG_CHILD` naming the child's role), each with its own store and
//! pool. The parent holds PostgreSQL advisory locks as a start line and
//! releases one only when every child waits on it, so the children really
//! start each round together.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use apikeys::store::Existing;
use apikeys::testing::START;
use apikeys::testing::records;
use apikeys::{
    Account, AccountId, AccountKind, AuditEvent, Channel, KeyId, KeyRecord, Store, StoreError,
};
use apikeys_postgres::testing::{TestSchema, URL_VAR, test_url};
use apikeys_postgres::{Options, PostgresStore, schema};
use postgres::{Client, NoTls};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHILDREN: u8 = 4;
const ROUNDS: u8 = 8;

const ROLE: &str = "APIKEYS_PG_CHILD";
const SCHEMA: &str = "APIKEYS_PG_CHILD_SCHEMA";
const INDEX: &str = "APIKEYS_PG_CHILD_INDEX";
const LOCK: &str = "APIKEYS_PG_CHILD_LOCK";

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

/// The test server: the parent decides it (`test_url`) and hands it to its
/// children in [`URL_VAR`].
fn url() -> String {
    if std::env::var(ROLE).is_ok() {
        env(URL_VAR)
    } else {
        test_url().expect("the parent runs only when the server answers")
    }
}

fn client() -> Client {
    let mut config: postgres::Config = url().parse().unwrap();
    config.application_name("apikeys-test-processes");
    config.connect(NoTls).unwrap()
}

/// The advisory lock class of one test run: from the schema name, so that
/// tests running at once do not share start lines.
fn lock_class(schema: &str) -> i32 {
    let h = schema
        .bytes()
        .fold(17u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    i32::try_from(h % (1 << 30)).unwrap() + 1
}

/// Waits at the start line `line`: until the parent releases it.
fn wait_at(barrier: &mut Client, class: i32, line: i32) {
    barrier
        .execute("SELECT pg_advisory_lock_shared($1, $2)", &[&class, &line])
        .unwrap();
    barrier
        .execute("SELECT pg_advisory_unlock_shared($1, $2)", &[&class, &line])
        .unwrap();
}

/// The parent's side of the start lines: holds them all, then releases each
/// once `waiters` sessions wait on it.
struct StartLines {
    client: Client,
    class: i32,
}

impl StartLines {
    fn hold(class: i32, lines: i32) -> Self {
        let mut client = client();
        for line in 0..lines {
            client
                .execute("SELECT pg_advisory_lock($1, $2)", &[&class, &line])
                .unwrap();
        }
        StartLines { client, class }
    }

    fn release_when_waited(&mut self, line: i32, waiters: i64, children: &mut [Child]) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let waiting: i64 = self
                .client
                .query_one(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
                     AND classid = $1::int::oid AND objid = $2::int::oid AND objsubid = 2",
                    &[&self.class, &line],
                )
                .unwrap()
                .get(0);
            if waiting >= waiters {
                break;
            }
            for c in children.iter_mut() {
                if let Some(status) = c.try_wait().unwrap() {
                    panic!("a child exited early ({status}) before start line {line}");
                }
            }
            assert!(
                Instant::now() < deadline,
                "start line {line}: only {waiting} of {waiters} children came"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        self.client
            .execute("SELECT pg_advisory_unlock($1, $2)", &[&self.class, &line])
            .unwrap();
    }
}

fn spawn_children(test: &str, role: &str, schema: &str) -> Vec<Child> {
    (0..CHILDREN)
        .map(|i| {
            Command::new(std::env::current_exe().unwrap())
                .args([test, "--exact", "--nocapture", "--test-threads=1"])
                .env(ROLE, role)
                .env(URL_VAR, url())
                .env(SCHEMA, schema)
                .env(INDEX, i.to_string())
                .env(LOCK, lock_class(schema).to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap()
        })
        .collect()
}

/// Waits for the children and returns their `RESULT` lines.
fn results(children: Vec<Child>) -> Vec<String> {
    let mut lines = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "a child failed: {stdout}");
        lines.extend(
            stdout
                .lines()
                // The harness may have started the line ("test x ... ").
                .filter_map(|l| l.split_once("RESULT "))
                .map(|(_, result)| result.to_owned()),
        );
    }
    lines
}

// ----- processes opening a new schema at once ---------------------------------

#[test]
fn processes_migrate_a_new_schema_at_once() {
    const TEST: &str = "processes_migrate_a_new_schema_at_once";
    if std::env::var(ROLE).as_deref() == Ok("open") {
        let schema = env(SCHEMA);
        let mut barrier = client();
        wait_at(&mut barrier, env(LOCK).parse().unwrap(), 0);
        match PostgresStore::connect_with(&url(), Options::default().pool_size(1).schema(&schema)) {
            Ok(_) => println!("RESULT open ok"),
            Err(e) => println!("RESULT open failed: {e}"),
        }
        return;
    }
    let Some(db) = TestSchema::new("processes_open") else {
        return;
    };
    let mut lines = StartLines::hold(lock_class(db.name()), 1);
    let mut children = spawn_children(TEST, "open", db.name());
    lines.release_when_waited(0, i64::from(CHILDREN), &mut children);
    let results = results(children);
    assert_eq!(results, vec!["open ok"; usize::from(CHILDREN)]);
    let versions: Vec<i32> = db
        .client()
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
        .collect();
    assert_eq!(versions, (1..=schema::LATEST).collect::<Vec<_>>());
}

// ----- processes racing for one identifier and one channel --------------------

fn child_account(i: u8) -> AccountId {
    AccountId::from_bytes([0xa0 + i; 16])
}

fn shared_account(round: u8) -> AccountId {
    AccountId::from_bytes([0xc0 + round; 16])
}

fn record(id: KeyId, account: AccountId, channel: Channel, identifier: String) -> KeyRecord {
    records::key(id, account, channel, &identifier)
}

fn created(k: &KeyRecord) -> AuditEvent {
    records::created(k)
}

fn outcome(r: Result<(), StoreError>) -> String {
    match r {
        Ok(()) => "won".into(),
        Err(StoreError::AlreadyExists(Existing::Identifier)) => "identifier-taken".into(),
        Err(StoreError::AlreadyExists(Existing::ChannelFull(c))) => format!("{c}-full"),
        Err(e) => format!("unexpected: {e}"),
    }
}

fn race_child() {
    let schema = env(SCHEMA);
    let i: u8 = env(INDEX).parse().unwrap();
    let class: i32 = env(LOCK).parse().unwrap();
    let store =
        PostgresStore::connect_with(&url(), Options::default().pool_size(2).schema(&schema))
            .unwrap();
    let mut barrier = client();
    for round in 0..ROUNDS {
        // Every child wants the same identifier, in its own case, for its
        // own account.
        let name = format!("proc-race-{round}");
        let name = if i.is_multiple_of(2) {
            name.to_uppercase()
        } else {
            name
        };
        let k = record(
            KeyId::from_bytes([i, round, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            child_account(i),
            Channel::Rest,
            name,
        );
        wait_at(&mut barrier, class, i32::from(round) * 2);
        println!(
            "RESULT identifier {round} {}",
            outcome(store.insert_key(&k, 10, &created(&k)))
        );

        // Every child wants the one FTP key of a shared account.
        let k = record(
            KeyId::from_bytes([i, round, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            shared_account(round),
            Channel::Ftp,
            format!("proc-ftp-{round}-{i}"),
        );
        wait_at(&mut barrier, class, i32::from(round) * 2 + 1);
        println!(
            "RESULT channel {round} {}",
            outcome(store.insert_key(&k, 1, &created(&k)))
        );
    }
}

#[test]
fn processes_race_for_identifier_and_channel() {
    const TEST: &str = "processes_race_for_identifier_and_channel";
    if std::env::var(ROLE).as_deref() == Ok("race") {
        race_child();
        return;
    }
    let Some(db) = TestSchema::new("processes_race") else {
        return;
    };
    let store = db.store(2);
    let accounts = (0..CHILDREN)
        .map(child_account)
        .chain((0..ROUNDS).map(shared_account));
    for id in accounts {
        let a = Account {
            id,
            kind: AccountKind::Master,
            created_at: START,
            suspended: false,
            policy: Default::default(),
            external_id: None,
        };
        store.create_account(&a, &[], &[]).unwrap();
    }
    let mut lines = StartLines::hold(lock_class(db.name()), i32::from(ROUNDS) * 2);
    let mut children = spawn_children(TEST, "race", db.name());
    for line in 0..i32::from(ROUNDS) * 2 {
        lines.release_when_waited(line, i64::from(CHILDREN), &mut children);
    }
    let results = results(children);
    assert_eq!(
        results.len(),
        usize::from(CHILDREN) * usize::from(ROUNDS) * 2
    );

    for round in 0..ROUNDS {
        for (race, loser) in [("identifier", "identifier-taken"), ("channel", "ftp-full")] {
            let prefix = format!("{race} {round} ");
            let outcomes: Vec<&str> = results
                .iter()
                .filter_map(|l| l.strip_prefix(&prefix))
                .collect();
            assert_eq!(
                outcomes.len(),
                usize::from(CHILDREN),
                "{prefix}: {outcomes:?}"
            );
            assert_eq!(
                outcomes.iter().filter(|o| **o == "won").count(),
                1,
                "{prefix}: exactly one process wins: {outcomes:?}"
            );
            assert!(
                outcomes.iter().all(|o| *o == "won" || *o == loser),
                "{prefix}: {outcomes:?}"
            );
        }
        assert!(
            store
                .key_by_identifier(&format!("proc-race-{round}"))
                .unwrap()
                .is_some()
        );
        assert_eq!(
            store.keys_of_account(shared_account(round)).unwrap().len(),
            1
        );
        // One audit event per winning key, none for the losers.
        assert_eq!(
            store
                .audit_events(shared_account(round), 100)
                .unwrap()
                .len(),
            1
        );
    }
}

//! Several stores, threads and processes on one file: races, crashes, and
//! what one store's commit means to another's readers.
//!
//! Other processes are this test binary run again (see `common::worker`):
//! each `worker_*` test does nothing unless the environment names it.
// Tests may unwrap and panic (helpers outside `#[test]` functions too).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use apikeys::Grace;
use apikeys::NewAccount;
use apikeys::store::Existing;
use apikeys::testing::records;
use apikeys::testing::{Fixture, START};
use apikeys::{
    Account, AccountId, Actor, AuditEvent, AuthError, Channel, CredentialChange, KeyId, KeyRecord,
    NewKey, Refusal, Secret, Store, StoreError,
};
use apikeys_sqlite::{Durability, Options, SqliteStore};
use common::{Dice, after, integrity_check, is_worker, worker};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Barrier};

const ROUNDS: usize = 12;

fn any_ip() -> std::net::IpAddr {
    "198.51.100.1".parse().unwrap()
}

fn master(rng: &mut ChaCha20Rng) -> Account {
    records::master(AccountId::random(rng))
}

fn record(id: KeyId, account: AccountId, channel: Channel, identifier: &str) -> KeyRecord {
    records::key(id, account, channel, identifier)
}

fn created(key: &KeyRecord) -> AuditEvent {
    records::created(key)
}

/// How a racing insert ended, as one word.
fn outcome(r: Result<(), StoreError>) -> String {
    match r {
        Ok(()) => "ok".into(),
        Err(StoreError::AlreadyExists(Existing::Identifier)) => "identifier".into(),
        Err(StoreError::AlreadyExists(Existing::ChannelFull(Channel::Ftp))) => {
            "channel_full".into()
        }
        Err(e) => format!("unexpected:{e:?}").replace(' ', "_"),
    }
}

/// The accounts the racers use: one per racer for the identifier race (each
/// racer adds a REST key with the round's identifier to its own account),
/// and one per round for the channel race (every racer adds an FTP key).
struct RaceAccounts {
    per_racer: Vec<AccountId>,
    per_round: Vec<AccountId>,
}

impl RaceAccounts {
    fn create(store: &dyn Store, racers: usize) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(99);
        let mut make = || {
            let a = master(&mut rng);
            store.create_account(&a, &[], &[]).unwrap();
            a.id
        };
        RaceAccounts {
            per_racer: (0..racers).map(|_| make()).collect(),
            per_round: (0..ROUNDS).map(|_| make()).collect(),
        }
    }

    fn to_env(&self) -> String {
        let ids: Vec<String> = self
            .per_racer
            .iter()
            .chain(&self.per_round)
            .map(|id| id.to_string())
            .collect();
        ids.join(",")
    }

    fn from_env(text: &str, racers: usize) -> Self {
        let ids: Vec<AccountId> = text.split(',').map(|s| s.parse().unwrap()).collect();
        RaceAccounts {
            per_racer: ids[..racers].to_vec(),
            per_round: ids[racers..].to_vec(),
        }
    }

    /// Racer `racer` tries both races of `round` on `store`; returns the
    /// outcomes of the identifier race and of the channel race.
    fn race(&self, store: &SqliteStore, round: usize, racer: usize) -> (String, String) {
        let mut rng = ChaCha20Rng::seed_from_u64((round * 1000 + racer) as u64);
        let name = format!("race-{round}");
        let name = if racer.is_multiple_of(2) {
            name.to_uppercase()
        } else {
            name
        };
        let key = record(
            KeyId::random(&mut rng),
            self.per_racer[racer],
            Channel::Rest,
            &name,
        );
        let by_identifier = outcome(store.insert_key(&key, 100, &created(&key)));
        let key = record(
            KeyId::random(&mut rng),
            self.per_round[round],
            Channel::Ftp,
            &format!("ftp-{round}-{racer}"),
        );
        let by_channel = outcome(store.insert_key(&key, 1, &created(&key)));
        (by_identifier, by_channel)
    }
}

/// Checks a round's outcomes: exactly one winner of each race, and every
/// loser refused for the right reason.
fn check_round(round: usize, outcomes: &[(String, String)]) {
    let wins = |pick: fn(&(String, String)) -> &String| {
        outcomes.iter().filter(|o| pick(o) == "ok").count()
    };
    assert_eq!(wins(|o| &o.0), 1, "round {round}: {outcomes:?}");
    assert_eq!(wins(|o| &o.1), 1, "round {round}: {outcomes:?}");
    for (by_identifier, by_channel) in outcomes {
        assert!(
            by_identifier == "ok" || by_identifier == "identifier",
            "round {round}: {outcomes:?}"
        );
        assert!(
            by_channel == "ok" || by_channel == "channel_full",
            "round {round}: {outcomes:?}"
        );
    }
}

fn check_after_races(path: &Path, accounts: &RaceAccounts) {
    let store = SqliteStore::open(path).unwrap();
    for round in 0..ROUNDS {
        assert!(
            store
                .key_by_identifier(&format!("race-{round}"))
                .unwrap()
                .is_some()
        );
        assert_eq!(
            store
                .keys_of_account(accounts.per_round[round])
                .unwrap()
                .len(),
            1
        );
    }
    assert_eq!(integrity_check(path), "ok");
}

#[test]
fn threads_with_their_own_stores_race_on_one_file() {
    const RACERS: usize = 6;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("race.db");
    let accounts = RaceAccounts::create(&SqliteStore::open(&path).unwrap(), RACERS);
    let stores: Vec<SqliteStore> = (0..RACERS)
        .map(|_| SqliteStore::open(&path).unwrap())
        .collect();
    for round in 0..ROUNDS {
        let barrier = Barrier::new(RACERS);
        let outcomes: Vec<(String, String)> = std::thread::scope(|s| {
            let handles: Vec<_> = stores
                .iter()
                .enumerate()
                .map(|(racer, store)| {
                    let (barrier, accounts) = (&barrier, &accounts);
                    s.spawn(move || {
                        barrier.wait();
                        accounts.race(store, round, racer)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        check_round(round, &outcomes);
    }
    check_after_races(&path, &accounts);
}

const PROCESSES: usize = 2;
const THREADS_PER_PROCESS: usize = 3;

/// A racing process: on each line `go <round>` from its standard input, its
/// threads, each with its own store, run both races of that round at once;
/// it prints one `RESULT` line per thread, then `DONE <round>`.
#[test]
fn worker_racer() {
    if !is_worker("worker_racer") {
        return;
    }
    let path = std::env::var_os("APIKEYS_SQLITE_DB").unwrap();
    let process: usize = std::env::var("APIKEYS_SQLITE_PROCESS")
        .unwrap()
        .parse()
        .unwrap();
    let accounts = RaceAccounts::from_env(
        &std::env::var("APIKEYS_SQLITE_ACCOUNTS").unwrap(),
        PROCESSES * THREADS_PER_PROCESS,
    );
    let stores: Vec<SqliteStore> = (0..THREADS_PER_PROCESS)
        .map(|_| SqliteStore::open(&path).unwrap())
        .collect();
    println!("READY");
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        let Some(round) = line.strip_prefix("go ") else {
            break;
        };
        let round: usize = round.parse().unwrap();
        let barrier = Barrier::new(THREADS_PER_PROCESS);
        let lines: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = stores
                .iter()
                .enumerate()
                .map(|(thread, store)| {
                    let (barrier, accounts) = (&barrier, &accounts);
                    s.spawn(move || {
                        let racer = process * THREADS_PER_PROCESS + thread;
                        barrier.wait();
                        let (a, b) = accounts.race(store, round, racer);
                        format!("RESULT {round} {racer} {a} {b}")
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut out = std::io::stdout().lock();
        for l in lines {
            writeln!(out, "{l}").unwrap();
        }
        writeln!(out, "DONE {round}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn processes_race_on_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("race.db");
    let accounts = RaceAccounts::create(
        &SqliteStore::open(&path).unwrap(),
        PROCESSES * THREADS_PER_PROCESS,
    );
    let mut children: Vec<_> = (0..PROCESSES)
        .map(|process| {
            let mut child = worker("worker_racer")
                .env("APIKEYS_SQLITE_DB", &path)
                .env("APIKEYS_SQLITE_PROCESS", process.to_string())
                .env("APIKEYS_SQLITE_ACCOUNTS", accounts.to_env())
                .stdin(Stdio::piped())
                .spawn()
                .unwrap();
            let stdin = child.stdin.take().unwrap();
            let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
            // Wait until the worker has opened its stores.
            stdout
                .by_ref()
                .map(|l| l.unwrap())
                .find(|l| l.contains("READY"))
                .expect("worker ready");
            (child, stdin, stdout)
        })
        .collect();
    for round in 0..ROUNDS {
        // Both processes get the word at (nearly) the same instant.
        for (_, stdin, _) in &mut children {
            writeln!(stdin, "go {round}").unwrap();
            stdin.flush().unwrap();
        }
        let mut outcomes = Vec::new();
        for (_, _, stdout) in &mut children {
            for line in stdout.by_ref() {
                let line = line.unwrap();
                if after(&line, "DONE ").is_some() {
                    break;
                }
                if let Some(rest) = after(&line, "RESULT ") {
                    let parts: Vec<&str> = rest.split(' ').collect();
                    assert_eq!(parts[0], round.to_string());
                    outcomes.push((parts[2].to_string(), parts[3].to_string()));
                }
            }
        }
        assert_eq!(outcomes.len(), PROCESSES * THREADS_PER_PROCESS);
        check_round(round, &outcomes);
    }
    for (mut child, stdin, _) in children {
        drop(stdin);
        assert!(child.wait().unwrap().success());
    }
    check_after_races(&path, &accounts);
}

// ----- crashes -------------------------------------------------------------

/// A writer that is killed: opens accounts, creates keys and changes their
/// secrets in a loop, printing a line after each commit (`ACK`), until it is
/// killed.
#[test]
fn worker_crash_writer() {
    if !is_worker("worker_crash_writer") {
        return;
    }
    let path = std::env::var_os("APIKEYS_SQLITE_DB").unwrap();
    let seed: u64 = std::env::var("APIKEYS_SQLITE_SEED")
        .unwrap()
        .parse()
        .unwrap();
    let durability = match std::env::var("APIKEYS_SQLITE_DURABILITY").unwrap().as_str() {
        "power" => Durability::PowerLoss,
        _ => Durability::ProcessCrash,
    };
    let store = SqliteStore::open_with(&path, Options::default().durability(durability)).unwrap();
    let f = Fixture::new(Arc::new(store), seed);
    let mut out = std::io::stdout().lock();
    // Bounded, in case the parent dies without killing it.
    for _ in 0..10_000 {
        let account = f
            .keys
            .open_account(Actor::Operator, NewAccount::master().created_at(START))
            .unwrap()
            .account;
        writeln!(out, "ACK account {}", account.id).unwrap();
        out.flush().unwrap();
        let issued = f
            .keys
            .create_key(
                Actor::Operator,
                account.id,
                NewKey::generated(Channel::Http),
            )
            .unwrap();
        let secret = issued.secret.unwrap();
        writeln!(
            out,
            "ACK key {} {} {} {}",
            issued.key.id,
            issued.key.version,
            issued.key.identifier,
            secret.expose_secret()
        )
        .unwrap();
        out.flush().unwrap();
        for _ in 0..3 {
            let changed = f
                .keys
                .change_credentials(
                    Actor::Operator,
                    issued.key.id,
                    CredentialChange::regenerate_secret(),
                )
                .unwrap();
            writeln!(
                out,
                "ACK key {} {} {} {}",
                changed.key.id,
                changed.key.version,
                changed.key.identifier,
                changed.secret.unwrap().expose_secret()
            )
            .unwrap();
            out.flush().unwrap();
        }
    }
}

/// What the killed writers acknowledged.
#[derive(Default)]
struct Acknowledged {
    accounts: Vec<AccountId>,
    /// Per key: its latest acknowledged version, identifier and secret.
    keys: HashMap<KeyId, (u64, String, String)>,
}

impl Acknowledged {
    fn read(&mut self, line: &str) {
        let Some(rest) = after(line, "ACK ") else {
            return;
        };
        let parts: Vec<&str> = rest.split(' ').collect();
        match parts[0] {
            "account" => self.accounts.push(parts[1].parse().unwrap()),
            "key" => {
                let version: u64 = parts[2].parse().unwrap();
                let entry = self.keys.entry(parts[1].parse().unwrap()).or_default();
                if version > entry.0 {
                    *entry = (version, parts[3].to_string(), parts[4].to_string());
                }
            }
            other => panic!("unknown ACK {other}"),
        }
    }
}

/// Every acknowledged write is there; every change is whole (a key and its
/// audit events, both or neither); the file is sound.
fn check_after_crashes(path: &Path, acked: &Acknowledged) {
    assert_eq!(integrity_check(path), "ok");
    let store = Arc::new(SqliteStore::open(path).unwrap());
    for id in &acked.accounts {
        assert!(store.account(*id).unwrap().is_some(), "account {id} lost");
    }
    let checker = Fixture::new(store.clone(), 10_000);
    for (id, (version, identifier, secret)) in &acked.keys {
        let stored = store.key(*id).unwrap().expect("acknowledged key lost");
        assert!(
            stored.version >= *version,
            "key {id}: acknowledged version {version}, found {}",
            stored.version
        );
        if stored.version == *version {
            checker
                .keys
                .authenticate(Channel::Http, identifier, secret, any_ip())
                .unwrap();
        }
    }
    // Whole changes: per key, one creation event and one event per version
    // after the first; no event of a key that is not there; one opening
    // event per account.
    let conn = rusqlite::Connection::open(path).unwrap();
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(
        count(
            "SELECT count(*) FROM keys k WHERE
               (SELECT count(*) FROM audit_events e
                  WHERE e.key_id = k.id AND e.kind = 'key_created') <> 1
            OR (SELECT count(*) FROM audit_events e
                  WHERE e.key_id = k.id AND e.kind = 'credentials_changed') <> k.version - 1"
        ),
        0,
        "a key without its events"
    );
    assert_eq!(
        count(
            "SELECT count(*) FROM audit_events e WHERE e.key_id IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM keys k WHERE k.id = e.key_id)"
        ),
        0,
        "an event without its key"
    );
    assert_eq!(
        count(
            "SELECT count(*) FROM accounts a WHERE
               (SELECT count(*) FROM audit_events e
                  WHERE e.account_id = a.id AND e.kind = 'account_opened') <> 1"
        ),
        0,
        "an account without its event"
    );
    assert_eq!(
        count(
            "SELECT count(*) FROM audit_events e WHERE e.kind = 'account_opened'
               AND NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = e.account_id)"
        ),
        0,
        "an event without its account"
    );
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("crash.db");
    let mut dice = Dice::new();
    let mut acked = Acknowledged::default();
    for round in 0..ROUNDS {
        let durability = if round.is_multiple_of(2) {
            "power"
        } else {
            "process"
        };
        let mut child = worker("worker_crash_writer")
            .env("APIKEYS_SQLITE_DB", &path)
            .env("APIKEYS_SQLITE_SEED", (round + 1).to_string())
            .env("APIKEYS_SQLITE_DURABILITY", durability)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Kill at a random point: after a random number of acknowledgements
        // (the writer goes on writing meanwhile).
        let wait_for = dice.between(1, 60);
        let mut seen = 0;
        for line in lines.by_ref() {
            let line = line.unwrap();
            acked.read(&line);
            if after(&line, "ACK ").is_some() {
                seen += 1;
                if seen == wait_for {
                    break;
                }
            }
        }
        child.kill().unwrap(); // SIGKILL on Unix.
        // What it printed before dying was acknowledged too.
        for line in lines {
            acked.read(&line.unwrap());
        }
        assert!(!child.wait().unwrap().success());
        check_after_crashes(&path, &acked);
    }
    assert!(acked.keys.len() >= ROUNDS / 2, "the writers got to write");
}

// ----- one store's commit, another store's reads -----------------------------

#[test]
fn a_change_through_one_store_stops_the_old_secret_through_another_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("two.db");
    let writer = Fixture::new(Arc::new(SqliteStore::open(&path).unwrap()), 1);
    let reader = Fixture::new(Arc::new(SqliteStore::open(&path).unwrap()), 2);
    let a = writer
        .keys
        .open_account(Actor::Operator, NewAccount::master().created_at(START))
        .unwrap()
        .account;
    let issued = writer
        .keys
        .create_key(Actor::Operator, a.id, NewKey::generated(Channel::Rest))
        .unwrap();
    let mut identifier = issued.key.identifier.clone();
    let mut secret = issued.secret.unwrap();
    let auth = |identifier: &str, secret: &Secret| {
        reader
            .keys
            .authenticate(Channel::Rest, identifier, secret.expose_secret(), any_ip())
    };
    for round in 0..20_u32 {
        // The reader's connections and statements are warm.
        auth(&identifier, &secret).unwrap();
        let changed = if round.is_multiple_of(2) {
            writer
                .keys
                .change_credentials(
                    Actor::Operator,
                    issued.key.id,
                    CredentialChange::regenerate_secret(),
                )
                .unwrap()
        } else {
            writer
                .keys
                .change_credentials(
                    Actor::Operator,
                    issued.key.id,
                    CredentialChange {
                        identifier: Some(apikeys::IdentifierChoice::Generate),
                        ..Default::default()
                    },
                )
                .unwrap()
        };
        let refusal = match auth(&identifier, &secret) {
            Err(AuthError::InvalidCredentials(reason)) => reason,
            other => panic!("round {round}: the old credentials still work: {other:?}"),
        };
        if round.is_multiple_of(2) {
            assert_eq!(refusal, Refusal::WrongSecret);
            secret = changed.secret.unwrap();
        } else {
            assert_eq!(refusal, Refusal::UnknownIdentifier);
            identifier = changed.key.identifier.clone();
        }
        auth(&identifier, &secret).unwrap();
    }
}

// ----- secrets on disk ---------------------------------------------------------

/// All bytes of the database's files: the database, its WAL, its shared
/// memory index.
fn file_bytes(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        all.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn no_plain_secret_reaches_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secrets.db");
    let f = Fixture::new(Arc::new(SqliteStore::open(&path).unwrap()), 3);
    let opened = f
        .keys
        .open_account(
            Actor::Operator,
            NewAccount::master()
                .created_at(apikeys::ActivationPolicy::DEFAULT_CUTOVER - time::Duration::days(1)),
        )
        .unwrap();
    let mut secrets: Vec<String> = opened
        .issued
        .iter()
        .map(|k| k.secret.as_ref().unwrap().expose_secret().to_owned())
        .collect();
    let chosen = "Needle-Chosen-Secret-7f3a9c";
    let k = f
        .keys
        .create_key(
            Actor::Operator,
            opened.account.id,
            NewKey::chosen(Channel::Rest, "needle-client", Secret::new(chosen)),
        )
        .unwrap();
    secrets.push(chosen.to_owned());
    let rotated = f
        .keys
        .change_credentials(
            Actor::Operator,
            k.key.id,
            CredentialChange::regenerate_secret()
                .with_grace(Grace::Until(START + time::Duration::hours(1))),
        )
        .unwrap();
    secrets.push(rotated.secret.unwrap().expose_secret().to_owned());
    assert_eq!(secrets.len(), 6);

    // While open (the changes are in the WAL) and after closing (checkpointed
    // into the database file).
    let open_bytes = file_bytes(dir.path());
    assert!(
        contains(&open_bytes, "needle-client"),
        "the files were read"
    );
    drop(f);
    let closed_bytes = file_bytes(dir.path());
    assert!(contains(&closed_bytes, "needle-client"));
    for s in &secrets {
        assert!(!contains(&open_bytes, s), "a secret is in the open files");
        assert!(
            !contains(&closed_bytes, s),
            "a secret is in the closed file"
        );
    }
}

// ----- tokens across processes ---------------------------------------------------

/// A process that checks REST tokens: on each line `check <token>` from its
/// standard input it prints `OK <key id>` or `REFUSED <reason>`.
#[test]
fn worker_token_checker() {
    if !is_worker("worker_token_checker") {
        return;
    }
    let path = std::env::var_os("APIKEYS_SQLITE_DB").unwrap();
    let checker = Fixture::new(Arc::new(SqliteStore::open(&path).unwrap()), 3);
    println!("READY");
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        let Some(token) = line.strip_prefix("check ") else {
            break;
        };
        let answer = match checker.keys.authenticate_token(token, any_ip()) {
            Ok(who) => format!("OK {}", who.key_id),
            Err(AuthError::InvalidCredentials(reason)) => format!("REFUSED {reason:?}"),
            Err(e) => format!("ERROR {e:?}").replace('\n', " "),
        };
        let mut out = std::io::stdout().lock();
        writeln!(out, "{answer}").unwrap();
        out.flush().unwrap();
    }
}

/// One process issues tokens and changes the key; another process, whose
/// store is warm, checks each token: it is refused on the very next check
/// after the change committed, whatever the change was.
#[test]
fn a_token_is_refused_in_another_process_on_its_next_check_after_a_change() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.db");
    let owner = Fixture::new(Arc::new(SqliteStore::open(&path).unwrap()), 1);
    let a = owner
        .keys
        .open_account(Actor::Operator, NewAccount::master().created_at(START))
        .unwrap()
        .account;
    let mut child = worker("worker_token_checker")
        .env("APIKEYS_SQLITE_DB", &path)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    stdout
        .by_ref()
        .map(|l| l.unwrap())
        .find(|l| l.contains("READY"))
        .expect("worker ready");
    let mut check = |token: &Secret| -> String {
        writeln!(stdin, "check {}", token.expose_secret()).unwrap();
        stdin.flush().unwrap();
        stdout
            .by_ref()
            .map(|l| l.unwrap())
            .find_map(|l| {
                ["OK ", "REFUSED ", "ERROR "]
                    .iter()
                    .find_map(|m| after(&l, m).map(|rest| format!("{m}{rest}")))
            })
            .expect("an answer")
    };
    // What happens to the key: a credential change, or (`None`) deletion.
    type Change = fn() -> Option<CredentialChange>;
    let changes: [(&str, Change); 3] = [
        ("secret", || Some(CredentialChange::regenerate_secret())),
        ("identifier", || {
            Some(CredentialChange {
                identifier: Some(apikeys::IdentifierChoice::Generate),
                ..Default::default()
            })
        }),
        ("delete", || None),
    ];
    for round in 0..6 {
        let (what, change) = changes[round % changes.len()];
        let issued = owner
            .keys
            .create_key(Actor::Operator, a.id, NewKey::generated(Channel::Rest))
            .unwrap();
        let who = owner
            .keys
            .authenticate(
                Channel::Rest,
                &issued.key.identifier,
                issued.secret.as_ref().unwrap().expose_secret(),
                any_ip(),
            )
            .unwrap();
        let token = owner.keys.issue_token(&who).unwrap().token;
        // Warm: the other process accepts it, twice.
        for _ in 0..2 {
            assert_eq!(
                check(&token),
                format!("OK {}", issued.key.id),
                "round {round}"
            );
        }
        match change() {
            Some(change) => {
                owner
                    .keys
                    .change_credentials(Actor::Operator, issued.key.id, change)
                    .unwrap();
            }
            None => owner
                .keys
                .delete_key(Actor::Operator, issued.key.id)
                .unwrap(),
        }
        assert_eq!(
            check(&token),
            "REFUSED UnknownToken",
            "round {round}: after the {what} change the other process still took the token"
        );
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

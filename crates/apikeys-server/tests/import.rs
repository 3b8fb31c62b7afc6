//! `apikeys-server import` and `export`, run as the operator runs them:
//! every supported credential format works over HTTP from the first
//! request and is argon2id after it; every kind of bad line is refused with
//! its line and reason, copied to the rejects file, and imports once fixed;
//! a SIGKILL mid-run and a rerun import every line exactly once; legacy
//! defaults only on request, their secrets in an owner-only file; the same
//! on PostgreSQL.

// Test code: failing loudly is its job.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use apikeys::Store;
use apikeys::testing::foreign;
use apikeys_postgres::testing::TestSchema;
use apikeys_sqlite::SqliteStore;
use common::Req;
use common::binary::{command, start};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Output;

const TOKEN: &str = "import-test-admin-token-0123456789-abcdef";
const SECRET: &str = "Correct-Horse-Battery-9";

/// Runs `import` with `args` on `db` (or the extra flags given).
fn import(file: &Path, store: &[String], extra: &[&str]) -> Output {
    command()
        .arg("import")
        .arg(file)
        .args(store)
        .args(["--progress", "none"])
        .args(extra)
        .output()
        .unwrap()
}

fn sqlite(db: &Path) -> Vec<String> {
    vec!["--db".into(), db.display().to_string()]
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

fn master(external: &str, keys: Value) -> Value {
    json!({"external_id": external, "kind": "master", "created_at": "2024-02-03T04:05:06Z", "keys": keys})
}

fn sub(external: &str, parent: &str, keys: Value) -> Value {
    json!({"external_id": external, "kind": "sub", "parent_external_id": parent,
           "created_at": "2024-03-03T00:00:00Z", "keys": keys})
}

fn authenticate(addr: std::net::SocketAddr, channel: &str, identifier: &str, secret: &str) -> u16 {
    Req::new(addr, "POST", "/v1/authenticate")
        .json(&json!({"channel": channel, "identifier": identifier, "secret": secret}))
        .send()
        .status
}

#[test]
fn every_format_works_over_http_becomes_argon2id_and_exports_reimport() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("keys.sqlite3");
    let file = dir.path().join("accounts.jsonl");
    let hashes = foreign::hashes_of(SECRET);
    // One master per format; the sub-account comes before its master.
    let mut lines = vec![
        sub(
            "SUB-1",
            "PLAIN",
            json!([{"channel": "email", "identifier": "sub-mail", "secret": SECRET}]),
        )
        .to_string(),
    ];
    let mut creds = vec![("email".to_string(), "sub-mail".to_string())];
    for (i, (format, hash)) in hashes.iter().enumerate() {
        let identifier = format!("fmt-{i}");
        lines.push(
            master(
                &format!("M-{format}-{i}"),
                json!([{"channel": "ftp", "identifier": identifier, "secret_hash": hash,
                        "label": format!("from {format}"), "whitelist": ["127.0.0.0/8"]}]),
            )
            .to_string(),
        );
        creds.push(("ftp".into(), identifier));
    }
    lines.push(
        master(
            "PLAIN",
            json!([{"channel": "rest", "identifier": "plain-rest", "secret": SECRET}]),
        )
        .to_string(),
    );
    creds.push(("rest".into(), "plain-rest".into()));
    write_lines(&file, &lines);

    let out = import(&file, &sqlite(&db), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(
        said.contains(&format!(
            "{} accounts imported with {} keys",
            lines.len(),
            lines.len()
        )),
        "{said}"
    );
    assert!(!said.contains(SECRET));

    let store = SqliteStore::open(&db).unwrap();
    let before: HashMap<String, String> = creds
        .iter()
        .map(|(_, id)| {
            let k = store.key_by_identifier(id).unwrap().unwrap();
            (id.clone(), k.secret_hash.scheme().to_string())
        })
        .collect();
    assert!(before.values().any(|s| s == "bcrypt") && before.values().any(|s| s == "scrypt"));
    drop(store);

    let mut server = start(&sqlite(&db), Some(TOKEN));
    for (channel, identifier) in &creds {
        assert_eq!(
            authenticate(server.addr, channel, identifier, "Wrong-Horse-Battery-9"),
            401
        );
        assert_eq!(
            authenticate(server.addr, channel, identifier, SECRET),
            200,
            "{identifier} ({})",
            before[identifier]
        );
    }
    let found = Req::new(server.addr, "GET", "/v1/accounts/by-external-id/SUB-1")
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .send()
        .expect(200);
    assert_eq!(found["external_id"], "SUB-1");
    server.stop();
    let store = SqliteStore::open(&db).unwrap();
    for (_, identifier) in &creds {
        let k = store.key_by_identifier(identifier).unwrap().unwrap();
        assert!(
            k.secret_hash
                .as_str()
                .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{identifier}: the old format is gone after the first use"
        );
    }
    drop(store);

    // Export: no hashes unless asked; with them, the file imports into a
    // new store and every credential still works.
    let plain = dir.path().join("export.jsonl");
    let o = command()
        .args(["export", "--output"])
        .arg(&plain)
        .args(sqlite(&db))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&plain).unwrap();
    assert_eq!(text.lines().count(), lines.len());
    assert!(!text.contains("secret"), "no secret nor hash: {text}");
    assert!(text.contains("\"label\":\"from bcrypt"), "{text}");
    let hashed = dir.path().join("export-hashes.jsonl");
    let o = command()
        .args(["export", "--with-hashes", "--output"])
        .arg(&hashed)
        .args(sqlite(&db))
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(stderr(&o).contains("THE EXPORT HOLDS EVERY KEY'S HASH"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&hashed).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let copy = dir.path().join("copy.sqlite3");
    let o = import(&hashed, &sqlite(&copy), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut server = start(&sqlite(&copy), Some(TOKEN));
    for (channel, identifier) in &creds {
        assert_eq!(
            authenticate(server.addr, channel, identifier, SECRET),
            200,
            "{identifier}"
        );
    }
    server.stop();
    // A rerun of the export's import skips everything.
    let o = import(&hashed, &sqlite(&copy), &[]);
    assert!(o.status.success());
    assert!(
        stderr(&o).contains(&format!("{} skipped", lines.len())),
        "{}",
        stderr(&o)
    );
}

/// Each bad line, the reason it must be refused with, and the line fixed.
fn bad_lines() -> Vec<(String, &'static str, String)> {
    let key = |id: &str| json!([{"channel": "ftp", "identifier": id, "secret": SECRET}]);
    let good = |x: &str, id: &str| master(x, key(id)).to_string();
    let bcrypt = foreign::hashes_of(SECRET)
        .into_iter()
        .find(|(f, _)| f.starts_with("bcrypt"))
        .unwrap()
        .1;
    let long = "x".repeat(129);
    let with = |x: &str, keys: Value| master(x, keys).to_string();
    vec![
        (r#"{"external_id": "B01", "kind": "master""#.into(), "bad JSON", good("B01", "b01")),
        ("[1, 2, 3]".into(), "bad field", good("B02", "b02")),
        (
            json!({"external_id": "B03", "kind": "master", "created_at": "2024-01-01T00:00:00Z", "colour": "red"}).to_string(),
            "unknown field `colour`",
            good("B03", "b03"),
        ),
        (
            with("B04", json!([{"channel": "ftp", "identifier": "b04", "secret_hsh": "x"}])),
            "unknown field `secret_hsh`",
            good("B04", "b04"),
        ),
        (
            json!({"kind": "master", "created_at": "2024-01-01T00:00:00Z"}).to_string(),
            "missing field `external_id`",
            good("B05", "b05"),
        ),
        (good("", "b06"), "external_id is empty", good("B06", "b06")),
        (good("B07\u{7}", "b07"), "external_id holds a control character", good("B07", "b07")),
        (good(&long, "b08"), "external_id has 129 characters", good("B08", "b08")),
        (
            json!({"external_id": "B09", "kind": "reseller", "created_at": "2024-01-01T00:00:00Z"}).to_string(),
            "kind `reseller` is neither",
            good("B09", "b09"),
        ),
        (
            json!({"external_id": "B10", "kind": "master", "parent_external_id": "GOOD-1", "created_at": "2024-01-01T00:00:00Z"}).to_string(),
            "a master names no parent_external_id",
            good("B10", "b10"),
        ),
        (
            json!({"external_id": "B11", "kind": "sub", "created_at": "2024-01-01T00:00:00Z"}).to_string(),
            "a sub-account needs parent_external_id",
            sub("B11", "GOOD-1", json!([])).to_string(),
        ),
        (
            sub("B12", "NOWHERE", json!([])).to_string(),
            "master `NOWHERE` is in no line of the file",
            sub("B12", "GOOD-1", json!([])).to_string(),
        ),
        (
            sub("B13", "GOOD-SUB", json!([])).to_string(),
            "master `GOOD-SUB` is a sub-account",
            sub("B13", "GOOD-1", json!([])).to_string(),
        ),
        (
            sub("B14", "B14", json!([])).to_string(),
            "its own master",
            sub("B14", "GOOD-1", json!([])).to_string(),
        ),
        (
            json!({"external_id": "B15", "kind": "master", "created_at": "yesterday"}).to_string(),
            "created_at `yesterday` is not an RFC 3339 instant",
            good("B15", "b15"),
        ),
        (
            json!({"external_id": "B16", "kind": "master", "created_at": "1960-01-01T00:00:00Z"}).to_string(),
            "1960",
            good("B16", "b16"),
        ),
        (
            with("B17", json!([{"channel": "fax", "identifier": "b17", "secret": SECRET}])),
            "channel `fax` is unknown",
            good("B17", "b17"),
        ),
        (good("B18", "GOOD-1-FTP"), "identifier `GOOD-1-FTP` is taken", good("B18", "b18")),
        (
            with("B19", json!([
                {"channel": "rest", "identifier": "b19", "secret": SECRET},
                {"channel": "rest", "identifier": "B19", "secret": SECRET}])),
            "same identifier",
            good("B19", "b19"),
        ),
        (
            with("B20", json!([
                {"channel": "ftp", "identifier": "b20-1", "secret": SECRET},
                {"channel": "ftp", "identifier": "b20-2", "secret": SECRET}])),
            "same channel",
            good("B20", "b20"),
        ),
        (
            with("B21", json!([{"channel": "ftp", "identifier": "b21", "secret": "short"}])),
            "key 1 (ftp, identifier `b21`): secret",
            good("B21", "b21"),
        ),
        (
            with("B22", json!([{"channel": "ftp", "identifier": "b22", "secret_hash": "$1$saltsalt$qjXMvbEw8oaL.CzflDugX."}])),
            "not in a supported format; supported: argon2",
            good("B22", "b22"),
        ),
        (
            with("B23", json!([{"channel": "ftp", "identifier": "b23", "secret_hash": "$2y$10$tooshort"}])),
            "not in a supported format",
            good("B23", "b23"),
        ),
        (
            with("B24", json!([{"channel": "ftp", "identifier": "b24", "secret_hash": bcrypt.replacen("$04$", "$31$", 1)}])),
            "bcrypt",
            good("B24", "b24"),
        ),
        (
            with("B25", json!([{"channel": "ftp", "identifier": "b25", "secret": SECRET, "secret_hash": bcrypt}])),
            "not both",
            good("B25", "b25"),
        ),
        (
            with("B26", json!([{"channel": "ftp", "identifier": "b26"}])),
            "no credential",
            good("B26", "b26"),
        ),
        (
            with("B27", json!([{"channel": "ftp", "identifier": "b27", "secret": SECRET, "whitelist": ["300.1.2.3"]}])),
            "whitelist entry `300.1.2.3`",
            good("B27", "b27"),
        ),
        (good("B28", "b 28"), "identifier", good("B28", "b28")),
        (
            with("B29", json!([{"channel": "ftp", "identifier": "b29", "secret": SECRET, "label": "bell\u{7}"}])),
            "label",
            good("B29", "b29"),
        ),
        (
            with("B30", json!([{"channel": "ftp", "identifier": "b30", "secret": SECRET, "expires_at": "2001-01-01T00:00:00Z"}])),
            "expiry",
            good("B30", "b30"),
        ),
        (good("GOOD-1", "b31"), "external_id `GOOD-1` is repeated: line 1 has it first", good("B31", "b31")),
        (
            with("B32", json!((0..11).map(|i| json!({"channel": "rest", "identifier": format!("b32-{i}"), "secret": SECRET})).collect::<Vec<_>>())),
            "more than 10 REST keys",
            good("B32", "b32"),
        ),
    ]
}

#[test]
fn every_kind_of_bad_line_is_refused_with_its_reason_and_the_rejects_reimport_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("keys.sqlite3");
    let file = dir.path().join("accounts.jsonl");
    let cases = bad_lines();
    assert!(cases.len() >= 30);
    let mut lines = vec![
        master(
            "GOOD-1",
            json!([{"channel": "ftp", "identifier": "GOOD-1-FTP", "secret": SECRET}]),
        )
        .to_string(),
        sub("GOOD-SUB", "GOOD-1", json!([])).to_string(),
    ];
    // Bad lines between good ones; each bad line's number is known.
    let mut numbers = Vec::new();
    for (i, (bad, _, _)) in cases.iter().enumerate() {
        lines.push(bad.clone());
        numbers.push(lines.len());
        lines.push(master(&format!("GOOD-{}", i + 2), json!([])).to_string());
    }
    write_lines(&file, &lines);
    let out = import(&file, &sqlite(&db), &[]);
    let said = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "some refused: exit 1\n{said}");
    for ((bad, reason, _), number) in cases.iter().zip(&numbers) {
        let line = said
            .lines()
            .find(|l| l.starts_with(&format!("line {number}: ")))
            .unwrap_or_else(|| panic!("line {number} ({bad}) not reported:\n{said}"));
        assert!(
            line.contains(reason),
            "line {number}: {line:?} should say {reason:?}"
        );
    }
    assert!(!said.contains(SECRET), "no secret in the report");
    let good = lines.len() - cases.len();
    assert!(
        said.contains(&format!("{good} accounts imported"))
            && said.contains(&format!("{} refused", cases.len())),
        "{said}"
    );
    // The rejects file holds exactly the bad lines, as they were.
    let rejects_path = PathBuf::from(format!("{}.rejects", file.display()));
    let rejects = std::fs::read_to_string(&rejects_path).unwrap();
    let got: BTreeSet<&str> = rejects.lines().collect();
    let want: BTreeSet<&str> = cases.iter().map(|(b, _, _)| b.as_str()).collect();
    assert_eq!(got, want);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&rejects_path)
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "rejects may hold plaintext secrets");
    }
    // Fixed, the rejects import, and nothing else is written twice.
    let fixed: HashMap<&str, &str> = cases
        .iter()
        .map(|(b, _, f)| (b.as_str(), f.as_str()))
        .collect();
    let fixed_file = dir.path().join("fixed.jsonl");
    write_lines(
        &fixed_file,
        &rejects
            .lines()
            .map(|l| fixed[l].to_string())
            .collect::<Vec<_>>(),
    );
    let out = import(&fixed_file, &sqlite(&db), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("{} accounts imported", cases.len())),
        "{}",
        stderr(&out)
    );
    let store = SqliteStore::open(&db).unwrap();
    assert_eq!(
        store.accounts(None, 10_000).unwrap().len(),
        good + cases.len()
    );
    drop(store);
    // The original file again: the good lines are skipped, the bad ones
    // refused again (their fixed versions hold their external ids now, or
    // their reason stands).
    let out = import(&file, &sqlite(&db), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("0 accounts imported"),
        "{}",
        stderr(&out)
    );
    let store = SqliteStore::open(&db).unwrap();
    assert_eq!(
        store.accounts(None, 10_000).unwrap().len(),
        good + cases.len(),
        "the rerun writes nothing"
    );
}

/// A file of `accounts` masters of one key each, with one hash for all
/// (the import reads hashes, it does not run them).
fn big_file(path: &Path, accounts: usize) {
    let hash = foreign::hashes_of(SECRET)
        .into_iter()
        .find(|(f, _)| f.starts_with("bcrypt"))
        .unwrap()
        .1;
    let mut text = String::with_capacity(accounts * 200);
    for i in 0..accounts {
        text.push_str(&format!(
            r#"{{"external_id":"big-{i}","kind":"master","created_at":"2024-01-01T00:00:00Z","keys":[{{"channel":"ftp","identifier":"big-{i}-ftp","secret_hash":"{hash}"}}]}}"#
        ));
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
}

fn count(db: &Path, table: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap_or(0)
}

#[test]
fn a_sigkill_mid_import_then_a_rerun_imports_every_line_exactly_once() {
    const ACCOUNTS: usize = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("keys.sqlite3");
    let file = dir.path().join("big.jsonl");
    big_file(&file, ACCOUNTS);
    // Killed twice, once early and once later on, each after some batches
    // committed.
    for _ in 0..2 {
        let before = if db.exists() {
            count(&db, "accounts")
        } else {
            0
        };
        let mut child = command()
            .arg("import")
            .arg(&file)
            .args(sqlite(&db))
            .args(["--progress", "none", "--batch", "2000"])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        loop {
            std::thread::sleep(std::time::Duration::from_millis(50));
            if db.exists() && count(&db, "accounts") > before + 4000 {
                break;
            }
            assert!(
                started.elapsed().as_secs() < 120,
                "the import made no progress"
            );
            assert!(
                child.try_wait().unwrap().is_none(),
                "finished before the kill"
            );
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    let written = count(&db, "accounts");
    assert!(
        written > 0 && written < ACCOUNTS as i64,
        "killed mid-run: {written}"
    );
    // Whole accounts only: every stored account has its key and its events.
    assert_eq!(count(&db, "keys"), written);
    let out = import(&file, &sqlite(&db), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(
        said.contains(&format!("{} accounts imported", ACCOUNTS as i64 - written))
            && said.contains(&format!("{written} skipped")),
        "{said}"
    );
    assert_eq!(count(&db, "accounts"), ACCOUNTS as i64);
    assert_eq!(count(&db, "keys"), ACCOUNTS as i64);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let distinct: i64 = conn
        .query_row(
            "SELECT count(DISTINCT external_id) FROM accounts",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(distinct, ACCOUNTS as i64, "no duplicates");
}

#[test]
fn legacy_defaults_only_on_request_with_their_secrets_in_an_owner_only_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("keys.sqlite3");
    let file = dir.path().join("legacy.jsonl");
    let legacy = |x: &str| {
        json!({"external_id": x, "kind": "master", "created_at": "2019-01-01T00:00:00Z",
               "keys": [{"channel": "ftp", "identifier": format!("{x}-ftp"), "secret": SECRET}]})
        .to_string()
    };
    write_lines(&file, &[legacy("L1")]);
    let out = import(&file, &sqlite(&db), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(count(&db, "keys"), 1, "no defaults unless asked");

    write_lines(&file, &[legacy("L1"), legacy("L2")]);
    let secrets = dir.path().join("defaults.jsonl");
    let out = import(
        &file,
        &sqlite(&db),
        &["--issue-legacy-defaults", secrets.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("3 legacy default keys issued"),
        "{}",
        stderr(&out)
    );
    assert_eq!(count(&db, "keys"), 1 + 4, "L2's own key and three defaults");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secrets).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let issued: Vec<Value> = std::fs::read_to_string(&secrets)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(issued.len(), 3);
    let mut server = start(&sqlite(&db), Some(TOKEN));
    for k in &issued {
        assert_eq!(k["external_id"], "L2");
        assert_ne!(k["channel"], "ftp");
        let status = authenticate(
            server.addr,
            k["channel"].as_str().unwrap(),
            k["identifier"].as_str().unwrap(),
            k["secret"].as_str().unwrap(),
        );
        assert_eq!(status, 200, "{k}");
    }
    server.stop();
    // The secrets file is never overwritten.
    let out = import(
        &file,
        &sqlite(&db),
        &["--issue-legacy-defaults", secrets.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("exists"), "{}", stderr(&out));
}

#[test]
fn postgres_imports_in_bulk_with_bad_lines_among_good_ones() {
    let Some(schema) = TestSchema::new("server_import") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("accounts.jsonl");
    let mut lines = Vec::new();
    for i in 0..3000 {
        lines.push(
            master(
                &format!("PG-{i}"),
                json!([{"channel": "http", "identifier": format!("pg-{i}"), "secret_hash": foreign::hashes_of(SECRET)[0].1}]),
            )
            .to_string(),
        );
        if i % 500 == 7 {
            // A duplicate identifier the store finds, mid-batch.
            lines.push(master(&format!("PG-dup-{i}"), json!([{"channel": "ftp", "identifier": format!("PG-{}", i), "secret": SECRET}])).to_string());
        }
    }
    lines.push(sub("PG-SUB", "PG-0", json!([])).to_string());
    write_lines(&file, &lines);
    let flags = vec![
        "--postgres".to_string(),
        schema.url().to_string(),
        "--postgres-schema".to_string(),
        schema.name().to_string(),
    ];
    let out = import(&file, &flags, &["--batch", "1000"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(
        said.contains("3001 accounts imported with 3000 keys"),
        "{said}"
    );
    assert!(said.contains("6 refused"), "{said}");
    let store = schema.store(2);
    assert_eq!(store.accounts(None, 10_000).unwrap().len(), 3001);
    let sub_account = store
        .account_by_external_id(&"PG-SUB".parse().unwrap())
        .unwrap()
        .unwrap();
    let master = store
        .account_by_external_id(&"PG-0".parse().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(sub_account.kind.parent(), Some(master.id));
    let again = import(&file, &flags, &[]);
    assert!(
        stderr(&again).contains("3001 skipped"),
        "{}",
        stderr(&again)
    );
}

/// The documented example imports, and its documented secrets work (the
/// disabled key and the whitelisted one refuse, as they should).
#[test]
fn the_example_file_imports_and_its_secrets_work() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("keys.sqlite3");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/import.jsonl");
    let out = import(&example, &sqlite(&db), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("4 accounts imported with 6 keys"),
        "{}",
        stderr(&out)
    );
    let mut server = start(&sqlite(&db), Some(TOKEN));
    for (channel, identifier, secret, status) in [
        // Right credentials, but its whitelist (203.0.113.0/24) refuses
        // loopback.
        ("ftp", "acme-ftp", "Acme-Ftp-Secret-2019", 403),
        ("rest", "acme-rest", "Acme-Rest-Secret-2020", 200),
        ("rest", "acme-rest-2", "Acme-Rest-Plain-2022", 200),
        ("email", "acme-eu-mail", "Initech-Mail-2021", 200),
        ("http", "globex-http", "Globex-Http-2018!", 200),
        ("web_service", "globex-ws", "Initech-WS-Secret-7", 401),
    ] {
        assert_eq!(
            authenticate(server.addr, channel, identifier, secret),
            status,
            "{identifier}"
        );
    }
    server.stop();
}

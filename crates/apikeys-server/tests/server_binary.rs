//! The real binary, on a SQLite file and on PostgreSQL: it listens, answers,
//! prints a generated admin token on the first start only, and exits cleanly
//! on SIGTERM; at start, a bad configuration is a clear message and a
//! failure exit, never showing the database password.

// Test code: failing loudly is its job.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use apikeys_postgres::testing::TestSchema;
use common::Req;
use common::binary::{command, start, start_with};
use serde_json::json;
use std::ffi::OsString;

/// Starts the server twice on the same database (`args`): the first start
/// generates a token, prints it once and serves with it; the second prints
/// nothing and serves the same data with the same token. Returns the token.
fn token_printed_once_then_kept(args: &[OsString]) -> String {
    // First start: a token is generated and printed once.
    let mut first = start(args, None);
    let token = first
        .generated_token()
        .expect("the first start prints the generated token");
    assert!(token.starts_with("akey"), "{:?}", first.printed);
    Req::new(first.addr, "GET", "/healthz").send().expect(200);
    let opened = Req::new(first.addr, "POST", "/v1/accounts")
        .header("Authorization", &format!("Bearer {token}"))
        .json(&json!({"kind": "master", "created_at": "2020-01-01T00:00:00Z"}))
        .send()
        .expect(201);
    assert_eq!(opened["issued"].as_array().unwrap().len(), 4);
    let account = opened["account"]["id"].as_str().unwrap().to_string();
    let ftp = &opened["issued"][0];
    Req::new(first.addr, "GET", &format!("/v1/accounts/{account}"))
        .header("Authorization", "Bearer wrong-token-wrong-token")
        .send()
        .expect_error(401, "unauthorized");
    first.stop();
    assert!(
        !first.log().contains(&token),
        "the token is printed on stdout only"
    );

    // Second start on the same database: nothing printed, same token, same data.
    let mut second = start(args, None);
    assert!(
        second.printed.iter().all(|l| !l.contains("admin token")),
        "printed again: {:?}",
        second.printed
    );
    let got = Req::new(second.addr, "GET", &format!("/v1/accounts/{account}"))
        .header("Authorization", &format!("Bearer {token}"))
        .send()
        .expect(200);
    assert_eq!(got["id"], account.as_str());
    Req::new(second.addr, "POST", "/v1/authenticate")
        .json(&json!({"channel": "ftp", "identifier": ftp["identifier"], "secret": ftp["secret"]}))
        .send()
        .expect(200);
    second.stop();

    // With APIKEYS_ADMIN_TOKEN: that token, nothing printed.
    let mut third = start(args, Some("operator-chosen-token-0123456789-abc"));
    assert!(third.printed.is_empty(), "{:?}", third.printed);
    Req::new(third.addr, "GET", &format!("/v1/accounts/{account}"))
        .header(
            "Authorization",
            "Bearer operator-chosen-token-0123456789-abc",
        )
        .send()
        .expect(200);
    Req::new(third.addr, "GET", &format!("/v1/accounts/{account}"))
        .header("Authorization", &format!("Bearer {token}"))
        .send()
        .expect_error(401, "unauthorized");
    third.stop();
    token
}

#[test]
fn binary_serves_sqlite_prints_the_token_once_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("apikeys.sqlite3");
    let token = token_printed_once_then_kept(&["--db".into(), db.clone().into()]);
    // The file holds the digest, never the token.
    let bytes = std::fs::read(&db).unwrap();
    assert!(!bytes.windows(token.len()).any(|w| w == token.as_bytes()));
}

/// A SQLite file whose admin token was stored by the release that kept it
/// in the router's crate keeps that token: the binary starts on it, prints
/// nothing and accepts that token only.
#[test]
fn binary_keeps_a_token_stored_by_the_previous_release() {
    use rand_core::SeedableRng;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("apikeys.sqlite3");
    // The key store's tables, as that release's first start made them.
    drop(apikeys_sqlite::SqliteStore::open(&db).unwrap());
    // Its token: generated, and kept with that release's statements, verbatim.
    let (token, secret) =
        apikeys_http::AdminToken::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(9));
    let old = rusqlite::Connection::open(&db).unwrap();
    old.execute(
        "CREATE TABLE IF NOT EXISTS apikeys_http_settings \
         (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
        [],
    )
    .unwrap();
    old.execute(
        "INSERT INTO apikeys_http_settings (name, value) VALUES (?1, ?2) \
         ON CONFLICT(name) DO NOTHING",
        rusqlite::params!["admin_token", token.stored_form()],
    )
    .unwrap();
    drop(old);

    let mut server = start(&["--db".into(), db.into_os_string()], None);
    assert!(
        server.printed.is_empty(),
        "no new token is generated: {:?}",
        server.printed
    );
    let unknown = "/v1/accounts/acc_0123456789abcdef0123456789abcdef";
    Req::new(server.addr, "GET", unknown)
        .header(
            "Authorization",
            &format!("Bearer {}", secret.expose_secret()),
        )
        .send()
        .expect_error(404, "account_not_found");
    Req::new(server.addr, "GET", unknown)
        .header("Authorization", "Bearer wrong-token-wrong-token")
        .send()
        .expect_error(401, "unauthorized");
    server.stop();
}

#[test]
fn binary_serves_postgres_prints_the_token_once_and_stops_on_sigterm() {
    let Some(db) = TestSchema::new("binary_postgres") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sqlite = dir.path().join("ignored.sqlite3");
    let args: Vec<OsString> = vec![
        "--postgres".into(),
        db.url().into(),
        "--postgres-schema".into(),
        db.name().into(),
        "--postgres-pool".into(),
        "4".into(),
        // Ignored with --postgres.
        "--db".into(),
        sqlite.clone().into(),
    ];
    let token = token_printed_once_then_kept(&args);
    assert!(!sqlite.exists(), "--db is ignored with --postgres");
    // The digest is in the test's schema, never the token.
    let stored: String = db
        .client()
        .query_one(
            &format!(
                "SELECT value FROM \"{}\".apikeys_http_settings WHERE name = 'admin_token'",
                db.name()
            ),
            &[],
        )
        .unwrap()
        .get(0);
    assert!(stored.starts_with("sha256$"), "{stored}");
    assert!(!stored.contains(&token));

    // The same through the variables; the log names the database, never
    // the URL.
    let mut by_env = start_with(
        &[] as &[&str],
        &[
            ("APIKEYS_POSTGRES_URL", db.url()),
            ("APIKEYS_POSTGRES_SCHEMA", db.name()),
            ("APIKEYS_POSTGRES_POOL", "2"),
        ],
    );
    assert!(by_env.printed.is_empty(), "{:?}", by_env.printed);
    Req::new(
        by_env.addr,
        "GET",
        "/v1/accounts/acc_0123456789abcdef0123456789abcdef",
    )
    .header("Authorization", &format!("Bearer {token}"))
    .send()
    .expect_error(404, "account_not_found");
    by_env.stop();
    let log = by_env.log();
    assert!(log.contains(&format!("schema={}", db.name())), "{log}");
    assert!(log.contains("pool=2"), "{log}");
}

/// Runs the binary with `args`, expecting it to refuse to start; returns
/// its log.
fn refuses_to_start(args: &[&str]) -> String {
    let output = command()
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "{args:?} started: {stderr}");
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains("listening"),
        "{args:?}"
    );
    stderr
}

/// PostgreSQL that cannot be used: a clear message, a failure exit, and the
/// password never shown, whichever part of the start failed.
#[test]
fn binary_refuses_unusable_postgres_without_showing_the_password() {
    let cases: &[(&[&str], &str)] = &[
        // Nothing listens on port 1.
        (
            &[
                "--postgres",
                "postgres://app:Hunter2-pw@127.0.0.1:1/platform",
            ],
            "cannot connect to PostgreSQL",
        ),
        (
            &[
                "--postgres",
                "postgres://app:Hunter2-pw@127.0.0.1:notaport/platform",
            ],
            "connection string is invalid",
        ),
        // The parser quotes an unknown option: here, most of the string.
        (
            &[
                "--postgres",
                "mysql://app:Hunter2-pw@127.0.0.1/platform?a=1",
            ],
            "connection string is invalid",
        ),
        (
            &[
                "--postgres",
                "host=127.0.0.1 port=1 password=Hunter2-pw user=app",
            ],
            "cannot connect to PostgreSQL",
        ),
        (
            &[
                "--postgres",
                "postgres://app:Hunter2-pw@127.0.0.1:1/platform",
                "--postgres-schema",
                "Bad-Schema",
            ],
            "schema name `Bad-Schema` is not allowed",
        ),
    ];
    for (args, expected) in cases {
        let log = refuses_to_start(args);
        assert!(log.contains(expected), "{args:?}: {log}");
        assert!(
            !log.contains("Hunter2"),
            "{args:?} leaked the password: {log}"
        );
    }
    // Flags clap checks itself.
    let log = refuses_to_start(&[
        "--postgres",
        "postgres://x@127.0.0.1:1/p",
        "--postgres-pool",
        "0",
    ]);
    assert!(log.contains("--postgres-pool"), "{log}");
    let log = refuses_to_start(&["--postgres-schema", "apikeys"]);
    assert!(log.contains("--postgres"), "{log}");
    // --help says that --db is ignored with --postgres, and never shows the
    // URL from the environment.
    let help = command()
        .arg("--help")
        .env(
            "APIKEYS_POSTGRES_URL",
            "postgres://app:Hunter2-pw@db/platform",
        )
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("Ignored with --postgres"), "{help}");
    assert!(help.contains("APIKEYS_POSTGRES_URL"), "{help}");
    assert!(!help.contains("Hunter2"), "{help}");
}

#[test]
fn binary_refuses_a_short_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let output = command()
        .args(["--listen", "127.0.0.1:0", "--db"])
        .arg(dir.path().join("db.sqlite3"))
        .env("APIKEYS_ADMIN_TOKEN", "short")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("32 to 256"), "{stderr}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("listening"));
}

/// A first start on a taken port fails before generating or storing a
/// token: the next start, on a free port, generates the token and shows it,
/// so the operator never loses it.
#[test]
fn a_taken_port_loses_no_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.sqlite3");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let output = command()
        .args(["--listen", &port, "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on {port}")),
        "{stderr}"
    );
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains("admin token"),
        "a token was printed by a start that could not serve"
    );
    assert!(!db.exists(), "the failed start created the database");
    drop(taken);
    let mut first = start(&["--db".as_ref(), db.as_os_str()], None);
    let token = first
        .generated_token()
        .expect("the first start that serves generates and shows the token");
    Req::new(
        first.addr,
        "GET",
        "/v1/accounts/acc_0123456789abcdef0123456789abcdef",
    )
    .header("Authorization", &format!("Bearer {token}"))
    .send()
    .expect_error(404, "account_not_found");
    first.stop();
}

/// The database, its -wal and -shm and the directory the server creates for
/// them are private whatever the umask; a database others can read is
/// warned about at every start.
#[test]
fn files_at_rest_are_private_and_exposure_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("new-dir").join("db.sqlite3");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    // umask 000 would make everything world-readable by default.
    let mut running =
        common::binary::start_via_shell("umask 000", &["--db".as_ref(), db.as_os_str()]);
    Req::new(running.addr, "GET", "/healthz").send().expect(200);
    running.stop();
    assert_eq!(mode(db.parent().unwrap()), 0o700);
    for suffix in ["", "-wal", "-shm"] {
        let file = std::path::PathBuf::from(format!("{}{suffix}", db.display()));
        if file.exists() {
            assert_eq!(mode(&file), 0o600, "{}", file.display());
        }
    }
    assert_eq!(mode(&db), 0o600);
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut again = start(&["--db".as_ref(), db.as_os_str()], None);
    again.stop();
    assert!(
        again
            .log()
            .contains("THE KEY DATABASE IS READABLE BY OTHER USERS"),
        "{}",
        again.log()
    );
}

/// The page's flags: links under the public origin, a `Secure` cookie
/// behind https, the framing sources in the page's CSP; a value that would
/// add a CSP directive stops the start.
#[test]
fn binary_serves_the_page_with_its_flags() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db.sqlite3");
    let token = "binary-admin-token-0123456789-abcdefghij";
    let mut server = start_with(
        &[
            "--db".into(),
            db.clone().into_os_string(),
            OsString::from("--public-origin"),
            OsString::from("https://keys.example.com/"),
            OsString::from("--frame-ancestors"),
            OsString::from("'self' https://platform.example"),
        ],
        &[("APIKEYS_ADMIN_TOKEN", token)],
    );
    let admin = format!("Bearer {token}");
    let opened = Req::new(server.addr, "POST", "/v1/accounts")
        .header("Authorization", &admin)
        .json(&json!({"kind": "master"}))
        .send()
        .expect(201);
    let account = opened["account"]["id"].as_str().unwrap().to_owned();
    let link = Req::new(
        server.addr,
        "POST",
        &format!("/v1/accounts/{account}/portal-sessions"),
    )
    .header("Authorization", &admin)
    .send()
    .expect(201);
    let url = link["url"].as_str().unwrap();
    let path = url
        .strip_prefix("https://keys.example.com")
        .unwrap_or_else(|| panic!("{url}"));
    // The link's answer itself, not where it leads.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .build()
        .into();
    let opened = agent
        .get(format!("http://{}{path}", server.addr))
        .call()
        .unwrap();
    assert_eq!(opened.status().as_u16(), 303);
    let cookie = opened.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("; Secure"), "{cookie}");
    let page = Req::new(server.addr, "GET", "/ui/")
        .header("Cookie", cookie.split(';').next().unwrap())
        .send();
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-security-policy")
            .unwrap()
            .ends_with("frame-ancestors 'self' https://platform.example")
    );
    server.stop();
    assert!(
        !server.log().contains(path.rsplit('/').next().unwrap()),
        "the link's token is not logged"
    );

    let output = command()
        .args(["--listen", "127.0.0.1:0", "--db"])
        .arg(&db)
        .args(["--frame-ancestors", "'none'; script-src *"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("frame-ancestors"), "{stderr}");
}

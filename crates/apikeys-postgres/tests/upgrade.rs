//! Upgrading a schema the previous release (0.1, schema version 4) really
//! wrote: `tests/fixtures/release-0.1.sql`, a `pg_dump` (plain INSERTs) of
//! the schema `release_0_1` made by `examples/make_release_fixture.rs`, with
//! the credentials it issued in `release-0.1.credentials.jsonl`. The dump is
//! loaded into a fresh schema of the test's own; connecting migrates it;
//! then nothing a client sees may have changed, every credential still
//! works, and the new fields (the lifecycle's, external ids) are written
//! and read back.
// Tests may unwrap and panic (helpers outside `#[test]` functions too).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use apikeys::time::macros::datetime;
use apikeys::{
    AccountPolicy, Actor, ApiKeys, AuditEvent, AuditKind, Channel, ChannelSet, ManualClock, Policy,
    SecretSlot, Store, Whitelist,
};
use apikeys_postgres::testing::TestSchema;
use apikeys_postgres::{PostgresStore, SCHEMA_VERSION};
use rand_core::SeedableRng;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

const FIXTURE: &str = "tests/fixtures/release-0.1.sql";
/// The schema the dump was taken of.
const DUMPED_SCHEMA: &str = "release_0_1";
const CREDENTIALS: &str = "tests/fixtures/release-0.1.credentials.jsonl";
/// Shortly after the fixture was made (2026-12-02T04:27Z): its token is
/// still live, its grace period (ten years) still running.
const NOW: apikeys::time::OffsetDateTime = datetime!(2026-12-02 05:00 UTC);

/// One credential the fixture's release issued.
struct Credential {
    channel: Channel,
    identifier: String,
    secret: String,
    slot: SecretSlot,
}

/// The value of `"name":"..."` in a line of the credentials file (its
/// values hold no quotes nor backslashes: checked).
fn field(line: &str, name: &str) -> String {
    assert!(!line.contains('\\'), "no escapes in the fixture: {line}");
    let start = format!("\"{name}\":\"");
    let at = line
        .find(&start)
        .unwrap_or_else(|| panic!("{name} in {line}"))
        + start.len();
    let len = line[at..].find('"').unwrap();
    line[at..at + len].to_owned()
}

fn credentials() -> Vec<Credential> {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(CREDENTIALS)).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| Credential {
            channel: field(l, "channel").parse().unwrap(),
            identifier: field(l, "identifier"),
            secret: field(l, "secret"),
            slot: match field(l, "slot").as_str() {
                "current" => SecretSlot::Current,
                "previous" => SecretSlot::Previous,
                other => panic!("slot {other}"),
            },
        })
        .collect()
}

/// A fresh schema holding the fixture's tables and rows, as the previous
/// release left them: the dump with its schema's name replaced.
fn schema_with_fixture(test: &str) -> Option<TestSchema> {
    let db = TestSchema::new(test)?;
    let dump =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE)).unwrap();
    assert!(dump.contains(&format!("CREATE SCHEMA {DUMPED_SCHEMA};")));
    db.client()
        .batch_execute(&dump.replace(DUMPED_SCHEMA, db.name()))
        .unwrap();
    Some(db)
}

fn count(db: &TestSchema, table: &str) -> i64 {
    db.client()
        .query_one(&format!("SELECT count(*) FROM {}.{table}", db.name()), &[])
        .unwrap()
        .get(0)
}

fn schema_version(db: &TestSchema) -> i32 {
    db.client()
        .query_one(
            &format!(
                "SELECT max(version) FROM {}.apikeys_schema_migrations",
                db.name()
            ),
            &[],
        )
        .unwrap()
        .get(0)
}

const TABLES: [&str; 4] = [
    "apikeys_accounts",
    "apikeys_keys",
    "apikeys_audit_events",
    "apikeys_tokens",
];

fn service(store: Arc<PostgresStore>) -> ApiKeys {
    ApiKeys::new(
        store,
        Policy::fast_for_tests().max_grace(apikeys::time::Duration::days(3650)),
        Arc::new(ManualClock::new(NOW)),
        rand_chacha::ChaCha20Rng::seed_from_u64(1),
    )
    .unwrap()
}

#[test]
fn the_previous_release_database_upgrades_and_every_credential_still_works() {
    let Some(db) = schema_with_fixture("upgrade_release_0_1") else {
        return;
    };
    assert_eq!(
        schema_version(&db),
        4,
        "the fixture is of the previous schema"
    );
    let before: Vec<i64> = TABLES.iter().map(|t| count(&db, t)).collect();
    assert_eq!(before, [3, 8, 14, 1], "the fixture as made");

    let store = Arc::new(db.store(2));
    let after: Vec<i64> = TABLES.iter().map(|t| count(&db, t)).collect();
    assert_eq!(after, before, "no row gained or lost");
    assert_eq!(schema_version(&db), SCHEMA_VERSION);

    // Every account unsuspended with the default policy; every key enabled,
    // never expiring, never used; the legacy master's four default keys
    // marked, and only those.
    let accounts = store.accounts(None, 100).unwrap();
    assert_eq!(accounts.len(), 3);
    let legacy = accounts
        .iter()
        .find(|a| a.created_at == datetime!(2021-03-04 05:06:07.123456789 UTC))
        .expect("the legacy master");
    let mut keys = Vec::new();
    for a in &accounts {
        assert!(!a.suspended, "{a:?}");
        assert!(a.policy.is_default(), "{a:?}");
        keys.extend(store.keys_of_account(a.id).unwrap());
    }
    assert_eq!(keys.len(), 8);
    for k in &keys {
        assert!(k.enabled, "{k:?}");
        assert_eq!(k.expires_at, None, "{k:?}");
        assert_eq!(k.usage, Default::default(), "{k:?}");
        assert_eq!(k.legacy_default, k.account_id == legacy.id, "{k:?}");
    }
    assert_eq!(keys.iter().filter(|k| k.legacy_default).count(), 4);

    // Every credential authenticates over the upgraded store, from an
    // address every whitelist of the fixture allows.
    let svc = service(Arc::clone(&store));
    let client: IpAddr = "127.0.0.1".parse().unwrap();
    let creds = credentials();
    assert_eq!(creds.len(), 9);
    for c in &creds {
        let who = svc
            .authenticate(c.channel, &c.identifier, &c.secret, client)
            .unwrap_or_else(|e| panic!("{} {}: {e:?}", c.channel, c.identifier));
        assert_eq!(who.matched, c.slot, "{}", c.identifier);
        let held = store
            .key_for_authentication(&c.identifier)
            .unwrap()
            .unwrap();
        assert_eq!(held.key.id, who.key_id);
        assert_eq!(held.holders.account.id, who.account_id);
    }

    // Last use is recorded on the upgraded rows.
    svc.flush_usage().unwrap();
    for c in &creds {
        let k = store.key_by_identifier(&c.identifier).unwrap().unwrap();
        assert_eq!(k.usage.last_used_at, Some(NOW), "{}", c.identifier);
        assert_eq!(k.usage.last_used_address, Some(client));
        if c.slot == SecretSlot::Previous {
            assert_eq!(k.usage.previous_secret_last_used_at, Some(NOW));
        }
    }
    let dormant = store
        .dormant_keys(&apikeys::DormantQuery {
            account: None,
            unused_since: NOW,
            legacy_defaults_only: true,
            after: None,
            limit: usize::MAX,
        })
        .unwrap();
    assert_eq!(dormant, vec![], "every legacy default was just used");

    // The upgraded accounts have no external id; new ones carry theirs, and
    // the upgraded table holds them unique.
    for a in &accounts {
        assert_eq!(a.external_id, None, "{a:?}");
    }
    let platform_id: apikeys::ExternalId = "CUST-after-upgrade".parse().unwrap();
    let opened = apikeys::testing::records::master(apikeys::AccountId::from_bytes([0x6e; 16]))
        .with_external_id(platform_id.clone());
    store.create_account(&opened, &[], &[]).unwrap();
    assert_eq!(
        store.account_by_external_id(&platform_id).unwrap(),
        Some(opened.clone())
    );
    let twin = apikeys::testing::records::master(apikeys::AccountId::from_bytes([0x6f; 16]))
        .with_external_id(platform_id);
    assert!(matches!(
        store.create_account(&twin, &[], &[]),
        Err(apikeys::StoreError::AlreadyExists(
            apikeys::store::Existing::ExternalId
        ))
    ));
}

#[test]
fn a_suspension_and_a_policy_written_after_the_upgrade_read_back() {
    let Some(db) = schema_with_fixture("upgrade_then_lifecycle") else {
        return;
    };
    let store = db.store(2);
    let accounts = store.accounts(None, 100).unwrap();
    let master = accounts
        .iter()
        .find(|a| a.created_at == datetime!(2024-01-02 03:04:05 UTC))
        .unwrap();
    let sub = accounts
        .iter()
        .find(|a| a.kind.parent() == Some(master.id))
        .unwrap();
    let event = |account: &apikeys::Account, kind| AuditEvent {
        account_id: account.id,
        key_id: None,
        channel: None,
        at: NOW,
        kind,
        actor: Actor::Operator,
        detail: "after the upgrade".into(),
    };
    let policy = AccountPolicy {
        whitelist: Whitelist::parse(&["10.0.0.0/8", "2001:db8::/32"], 100).unwrap(),
        sub_account_channels: ChannelSet::of(&[Channel::Ftp, Channel::Rest]),
        max_key_lifetime: Some(apikeys::time::Duration::days(90)),
    };
    store
        .set_account_policy(master.id, &policy, &event(master, AuditKind::PolicyChanged))
        .unwrap();
    store
        .set_account_suspended(sub.id, true, &event(sub, AuditKind::AccountSuspended))
        .unwrap();
    drop(store);

    // Read back through a new pool: from the database, not a connection's
    // state.
    let store = db.store(2);
    let sub_keys = store.keys_of_account(sub.id).unwrap();
    let m = store.account(master.id).unwrap().unwrap();
    assert_eq!(m.policy, policy);
    assert!(!m.suspended);
    let s = store.account(sub.id).unwrap().unwrap();
    assert!(s.suspended);
    assert!(s.policy.is_default());
    let holders = store.holders(sub.id).unwrap().unwrap();
    assert_eq!(holders.account, s);
    assert_eq!(holders.master, Some(m.clone()));

    // The sub-account's FTP key now refuses: its account is suspended.
    let svc = service(Arc::new(store));
    let ftp = credentials()
        .into_iter()
        .find(|c| sub_keys.iter().any(|k| k.identifier == c.identifier))
        .unwrap();
    let refused = svc
        .authenticate(
            ftp.channel,
            &ftp.identifier,
            &ftp.secret,
            "127.0.0.1".parse().unwrap(),
        )
        .unwrap_err();
    assert!(
        matches!(
            refused,
            apikeys::AuthError::InvalidCredentials(apikeys::Refusal::AccountSuspended)
        ),
        "{refused:?}"
    );
}

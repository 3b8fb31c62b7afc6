//! Importing a platform's existing accounts: every supported credential
//! works from the first request and is replaced by the policy's argon2id
//! after it; every bad account is refused with its reason and leaves
//! nothing; a rerun skips what is there; legacy defaults only when asked.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use apikeys::service::{
    ImportAccount, ImportError, ImportKey, ImportKind, ImportOptions, ImportOutcome, ImportSecret,
};
use apikeys::testing::{Fixture, START, foreign};
use apikeys::{AccountPolicy, Actor, Channel, ChannelSet, Error, ExternalId, Secret};
use common::{any_ip, memory, op};
use time::Duration;
use time::macros::datetime;

const LEGACY: time::OffsetDateTime = datetime!(2019-05-06 07:08:09 UTC);
const SECRET: &str = "Correct-Horse-Battery-9";

fn x(text: &str) -> ExternalId {
    text.parse().unwrap()
}

fn key(channel: Channel, identifier: &str, secret: ImportSecret) -> ImportKey {
    ImportKey {
        channel,
        identifier: identifier.into(),
        secret,
        label: None,
        whitelist: Vec::new(),
        enabled: true,
        expires_at: None,
    }
}

fn plain(secret: &str) -> ImportSecret {
    ImportSecret::Plaintext(Secret::new(secret))
}

fn master(external: &str, keys: Vec<ImportKey>) -> ImportAccount {
    ImportAccount {
        external_id: x(external),
        kind: ImportKind::Master,
        created_at: datetime!(2024-02-03 04:05:06 UTC),
        keys,
    }
}

fn sub(external: &str, parent: &str, keys: Vec<ImportKey>) -> ImportAccount {
    ImportAccount {
        kind: ImportKind::Sub { parent: x(parent) },
        ..master(external, keys)
    }
}

/// Prepares and commits, one batch: each account's outcome, or the
/// preparation's refusal.
fn import(
    f: &Fixture,
    accounts: Vec<ImportAccount>,
    options: ImportOptions,
) -> Vec<Result<ImportOutcome, ImportError>> {
    let mut prepared = Vec::new();
    let mut slots = Vec::new();
    for a in accounts {
        match f.keys.prepare_import(a, options) {
            Ok(p) => {
                slots.push(None);
                prepared.push(p);
            }
            Err(e) => slots.push(Some(e)),
        }
    }
    let mut committed = f.keys.commit_imports(prepared).unwrap().into_iter();
    slots
        .into_iter()
        .map(|s| match s {
            Some(e) => Err(e),
            None => Ok(committed.next().unwrap()),
        })
        .collect()
}

fn imported(r: &Result<ImportOutcome, ImportError>) -> apikeys::AccountId {
    match r {
        Ok(ImportOutcome::Imported { account, .. }) => *account,
        other => panic!("expected imported, got {other:?}"),
    }
}

fn refused(r: Result<ImportOutcome, ImportError>) -> String {
    match r {
        Err(e) | Ok(ImportOutcome::Refused(e)) => e.to_string(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn every_supported_credential_works_at_once_and_becomes_argon2id() {
    let f = Fixture::new(memory(), 1);
    let hashes = foreign::hashes_of(SECRET);
    assert!(hashes.len() >= 9, "{hashes:?}");
    // One account per format (one key per channel), plus plaintext.
    let mut accounts: Vec<ImportAccount> = hashes
        .iter()
        .enumerate()
        .map(|(i, (format, hash))| {
            master(
                &format!("acct-{format}-{i}"),
                vec![key(
                    Channel::Ftp,
                    &format!("ftp-{i}"),
                    ImportSecret::Hash(hash.clone()),
                )],
            )
        })
        .collect();
    accounts.push(master(
        "acct-plain",
        vec![key(Channel::Rest, "rest-plain", plain(SECRET))],
    ));
    let outcomes = import(&f, accounts, ImportOptions::default());
    for o in &outcomes {
        imported(o);
    }
    let mut identifiers: Vec<(Channel, String)> = (0..hashes.len())
        .map(|i| (Channel::Ftp, format!("ftp-{i}")))
        .collect();
    identifiers.push((Channel::Rest, "rest-plain".into()));
    for (channel, identifier) in &identifiers {
        let before = f.store.key_by_identifier(identifier).unwrap().unwrap();
        assert!(
            f.keys
                .authenticate(*channel, identifier, "wrong secret entirely", any_ip())
                .is_err(),
            "{identifier}: a wrong secret is refused"
        );
        f.keys
            .authenticate(*channel, identifier, SECRET, any_ip())
            .unwrap_or_else(|e| panic!("{identifier} ({:?}): {e:?}", before.secret_hash));
        let after = f.store.key_by_identifier(identifier).unwrap().unwrap();
        assert_eq!(after.secret_hash.scheme(), "argon2", "{identifier}");
        assert!(
            after.secret_hash.as_str().starts_with("$argon2id$v=19$"),
            "{identifier}: the old format is gone"
        );
        if before.secret_hash.scheme() != "argon2" {
            assert_ne!(before.secret_hash, after.secret_hash, "{identifier}");
        }
        // And again, from the new hash.
        f.keys
            .authenticate(*channel, identifier, SECRET, any_ip())
            .unwrap();
    }
}

#[test]
fn accounts_keep_their_history_and_sub_accounts_find_their_masters() {
    let f = Fixture::new(memory(), 2);
    let mut labelled = key(Channel::Http, "acme-http", plain(SECRET));
    labelled.label = Some("billing".into());
    labelled.whitelist = common::wl(&["203.0.113.0/24"]);
    labelled.enabled = false;
    labelled.expires_at = Some(START + Duration::days(10));
    let outcomes = import(
        &f,
        vec![
            master("ACME", vec![labelled]),
            sub(
                "ACME-1",
                "ACME",
                vec![key(Channel::Email, "acme-1-mail", plain(SECRET))],
            ),
        ],
        ImportOptions::default(),
    );
    let m = imported(&outcomes[0]);
    let s = imported(&outcomes[1]);
    let account = f.keys.account_by_external_id(op(), &x("ACME")).unwrap();
    assert_eq!(account.id, m);
    assert_eq!(account.created_at, datetime!(2024-02-03 04:05:06 UTC));
    let sub_account = f.keys.account(op(), s).unwrap();
    assert_eq!(sub_account.kind.parent(), Some(m));
    let k = f.store.key_by_identifier("acme-http").unwrap().unwrap();
    assert_eq!(k.label.as_deref(), Some("billing"));
    assert_eq!(k.whitelist.entries().len(), 1);
    assert!(!k.enabled);
    assert_eq!(k.expires_at, Some(START + Duration::days(10)));
    assert_eq!(
        k.created_at, START,
        "imported keys are created at the import"
    );
    // A later batch's sub-account finds its master in the store.
    let later = import(
        &f,
        vec![sub("ACME-2", "ACME", vec![])],
        ImportOptions::default(),
    );
    let s2 = imported(&later[0]);
    assert_eq!(f.keys.account(op(), s2).unwrap().kind.parent(), Some(m));
    // The trail says what happened, without secrets.
    let trail = f.keys.audit(op(), m, 10).unwrap();
    assert!(
        trail
            .iter()
            .any(|e| e.detail.contains("imported (external id ACME)")),
        "{trail:?}"
    );
    assert!(trail.iter().all(|e| !e.detail.contains(SECRET)));
    // Who may see an account by its external id: as by its id.
    assert!(
        f.keys
            .account_by_external_id(Actor::Account(m), &x("ACME-1"))
            .is_ok()
    );
    assert!(matches!(
        f.keys.account_by_external_id(Actor::Account(s), &x("ACME")),
        Err(Error::ExternalIdNotFound(_))
    ));
    assert!(matches!(
        f.keys.account_by_external_id(op(), &x("nobody")),
        Err(Error::ExternalIdNotFound(_))
    ));
}

#[test]
fn a_rerun_skips_every_account_and_writes_nothing() {
    let f = Fixture::new(memory(), 3);
    let file = || {
        vec![
            master("M1", vec![key(Channel::Ftp, "m1-ftp", plain(SECRET))]),
            sub(
                "S1",
                "M1",
                vec![key(Channel::Rest, "s1-rest", plain(SECRET))],
            ),
        ]
    };
    let first = import(&f, file(), ImportOptions::default());
    let ids: Vec<_> = first.iter().map(imported).collect();
    let trail = f.keys.audit(op(), ids[0], 100).unwrap().len();
    let again = import(&f, file(), ImportOptions::default());
    for (o, id) in again.iter().zip(&ids) {
        match o {
            Ok(ImportOutcome::Skipped { account }) => assert_eq!(account, id),
            other => panic!("expected skipped, got {other:?}"),
        }
    }
    assert_eq!(f.keys.audit(op(), ids[0], 100).unwrap().len(), trail);
    let (all, _) = f.keys.accounts(op(), None, 100).unwrap();
    assert_eq!(all.len(), 2);
}

#[test]
fn a_legacy_master_gets_defaults_only_when_asked_and_only_for_what_it_lacks() {
    let f = Fixture::new(memory(), 4);
    let legacy = |external: &str| ImportAccount {
        created_at: LEGACY,
        ..master(
            external,
            vec![key(Channel::Ftp, &format!("{external}-ftp"), plain(SECRET))],
        )
    };
    let plain_run = import(&f, vec![legacy("L1")], ImportOptions::default());
    let id = imported(&plain_run[0]);
    let keys = f.keys.keys(op(), id).unwrap();
    assert_eq!(keys.len(), 1, "no defaults unless asked: {keys:?}");
    assert!(!keys[0].legacy_default);

    let asked = import(
        &f,
        vec![legacy("L2")],
        ImportOptions {
            issue_legacy_defaults: true,
        },
    );
    let Ok(ImportOutcome::Imported {
        account,
        issued,
        keys,
    }) = &asked[0]
    else {
        panic!("{asked:?}")
    };
    assert_eq!(*keys, 4, "its own FTP key and three defaults");
    let channels: ChannelSet = issued.iter().map(|k| k.key.channel).collect();
    let legacy_channels = f.keys.policy().activation.legacy_channels;
    assert_eq!(
        channels,
        legacy_channels.difference(ChannelSet::of(&[Channel::Ftp])),
        "defaults for the legacy channels it does not bring"
    );
    for issued in issued {
        let secret = issued.secret.as_ref().unwrap();
        let k = f.store.key(issued.key.id).unwrap().unwrap();
        assert!(k.legacy_default);
        f.keys
            .authenticate(
                issued.key.channel,
                &issued.key.identifier,
                secret.expose_secret(),
                any_ip(),
            )
            .unwrap();
    }
    let own = f.store.key_by_identifier("L2-ftp").unwrap().unwrap();
    assert!(!own.legacy_default, "its own key is no default");
    assert_eq!(own.account_id, *account);
    // A new master (after the cutover) gets none either way.
    let new = import(
        &f,
        vec![master("N1", vec![])],
        ImportOptions {
            issue_legacy_defaults: true,
        },
    );
    let Ok(ImportOutcome::Imported { issued, .. }) = &new[0] else {
        panic!("{new:?}")
    };
    assert!(issued.is_empty());
}

#[test]
fn every_bad_account_is_refused_with_its_reason_and_leaves_nothing() {
    let f = Fixture::new(memory(), 5);
    // Something to collide with, and a master whose policy limits its
    // sub-accounts.
    let setup = import(
        &f,
        vec![
            master("TAKEN", vec![key(Channel::Ftp, "taken-ftp", plain(SECRET))]),
            master("STRICT", vec![]),
            sub("A-SUB", "TAKEN", vec![]),
        ],
        ImportOptions::default(),
    );
    let strict = imported(&setup[1]);
    f.keys
        .set_account_policy(
            op(),
            strict,
            AccountPolicy {
                sub_account_channels: ChannelSet::of(&[Channel::Rest]),
                max_key_lifetime: Some(Duration::days(30)),
                ..Default::default()
            },
        )
        .unwrap();
    let hash = foreign::hashes_of(SECRET)
        .into_iter()
        .find(|(f, _)| f.starts_with("bcrypt"))
        .unwrap()
        .1;
    let cases: Vec<(ImportAccount, &str)> = vec![
        (
            master("weak", vec![key(Channel::Ftp, "weak-ftp", plain("short"))]),
            "key 1 (ftp, identifier `weak-ftp`): secret",
        ),
        (
            master(
                "secret-is-identifier",
                vec![key(
                    Channel::Ftp,
                    "same-as-secret-1",
                    plain("same-as-secret-1"),
                )],
            ),
            "identifier",
        ),
        (
            master(
                "md5",
                vec![key(
                    Channel::Ftp,
                    "md5-ftp",
                    ImportSecret::Hash("$1$saltsalt$abcdefghijklmnopqrstuv".into()),
                )],
            ),
            "not in a supported format; supported: argon2",
        ),
        (
            master(
                "costly",
                vec![key(
                    Channel::Ftp,
                    "costly-ftp",
                    ImportSecret::Hash(hash.replacen("$04$", "$20$", 1)),
                )],
            ),
            "bcrypt",
        ),
        (
            master(
                "two-ftp",
                vec![
                    key(Channel::Ftp, "two-ftp-1", plain(SECRET)),
                    key(Channel::Ftp, "two-ftp-2", plain(SECRET)),
                ],
            ),
            "key 2 (ftp, identifier `two-ftp-2`): another key of this account is of the same channel",
        ),
        (
            master(
                "same-id",
                vec![
                    key(Channel::Rest, "same-id-rest", plain(SECRET)),
                    key(Channel::Rest, "SAME-ID-REST", plain(SECRET)),
                ],
            ),
            "same identifier",
        ),
        (
            master(
                "many-rest",
                (0..11)
                    .map(|i| key(Channel::Rest, &format!("many-rest-{i}"), plain(SECRET)))
                    .collect(),
            ),
            "key 11 (rest, identifier `many-rest-10`): more than 10 REST keys",
        ),
        (
            master(
                "taken-id",
                vec![key(Channel::Ftp, "TAKEN-FTP", plain(SECRET))],
            ),
            "identifier `TAKEN-FTP` is taken",
        ),
        (
            master(
                "bad-identifier",
                vec![key(Channel::Ftp, "a b", plain(SECRET))],
            ),
            "key 1 (ftp, identifier `a b`): identifier",
        ),
        (
            master(
                "bad-label",
                vec![ImportKey {
                    label: Some("\u{7}".into()),
                    ..key(Channel::Ftp, "label-ftp", plain(SECRET))
                }],
            ),
            "label",
        ),
        (
            master(
                "past-expiry",
                vec![ImportKey {
                    expires_at: Some(START - Duration::days(1)),
                    ..key(Channel::Ftp, "past-ftp", plain(SECRET))
                }],
            ),
            "expiry",
        ),
        (
            ImportAccount {
                created_at: datetime!(1960-01-01 0:00 UTC),
                ..master("ancient", vec![])
            },
            "1960",
        ),
        (
            sub("orphan", "NO-SUCH-MASTER", vec![]),
            "master `NO-SUCH-MASTER` is not imported",
        ),
        (
            sub("sub-of-sub", "A-SUB", vec![]),
            "`A-SUB` is a sub-account, not a master",
        ),
        (
            sub(
                "strict-sub",
                "STRICT",
                vec![key(Channel::Ftp, "strict-ftp", plain(SECRET))],
            ),
            "ftp",
        ),
        (
            sub(
                "strict-sub-2",
                "STRICT",
                vec![ImportKey {
                    expires_at: Some(START + Duration::days(31)),
                    ..key(Channel::Rest, "strict-rest", plain(SECRET))
                }],
            ),
            "master's policy",
        ),
    ];
    let before = f.keys.accounts(op(), None, 1000).unwrap().0.len();
    let (accounts, wanted): (Vec<_>, Vec<_>) = cases.into_iter().unzip();
    let mut batch = accounts;
    // A good account among the bad ones goes in.
    batch.push(master(
        "good",
        vec![key(Channel::Ftp, "good-ftp", plain(SECRET))],
    ));
    let mut outcomes = import(&f, batch, ImportOptions::default());
    imported(&outcomes.pop().unwrap());
    for (o, want) in outcomes.into_iter().zip(wanted) {
        let message = refused(o);
        assert!(message.contains(want), "{message:?} should name {want:?}");
        assert!(
            !message.contains(SECRET)
                && !message.contains(&hash[7..])
                && !message.contains("saltsalt"),
            "no secret or hash in {message}"
        );
    }
    assert_eq!(
        f.keys.accounts(op(), None, 1000).unwrap().0.len(),
        before + 1,
        "refused accounts leave nothing"
    );
    for gone in [
        "weak-ftp",
        "two-ftp-1",
        "same-id-rest",
        "strict-rest",
        "md5-ftp",
    ] {
        assert!(f.store.key_by_identifier(gone).unwrap().is_none(), "{gone}");
    }
}

#[test]
fn what_a_prepared_account_says_and_hides() {
    let f = Fixture::new(memory(), 6);
    let secret = plain(SECRET);
    assert_eq!(format!("{secret:?}"), "Plaintext([hidden])");
    let k = key(Channel::Ftp, "hidden-ftp", secret);
    assert!(!format!("{k:?}").contains(SECRET), "{k:?}");
    let hashed = ImportSecret::Hash("$2y$04$whatever".into());
    assert_eq!(format!("{hashed:?}"), "Hash([hidden])");
    let p = f
        .keys
        .prepare_import(
            sub(
                "P-SUB",
                "P-MASTER",
                vec![
                    key(Channel::Ftp, "p-ftp", plain(SECRET)),
                    key(Channel::Rest, "p-rest", plain(SECRET)),
                ],
            ),
            ImportOptions::default(),
        )
        .unwrap();
    assert_eq!(p.external_id(), &x("P-SUB"));
    assert_eq!(p.parent(), Some(&x("P-MASTER")));
    assert_eq!(p.key_count(), 2);
    let m = f
        .keys
        .prepare_import(master("P-MASTER", vec![]), ImportOptions::default())
        .unwrap();
    assert_eq!((m.parent(), m.key_count()), (None, 0));
}

#[test]
fn a_sub_account_of_a_master_refused_in_its_batch_names_that_master() {
    let f = Fixture::new(memory(), 7);
    let setup = import(
        &f,
        vec![master(
            "HOLDER",
            vec![key(Channel::Ftp, "held-ftp", plain(SECRET))],
        )],
        ImportOptions::default(),
    );
    imported(&setup[0]);
    // The master's identifier is another account's: the store refuses it,
    // and its sub-account, later in the batch, says which master is missing.
    let outcomes = import(
        &f,
        vec![
            master("DOOMED", vec![key(Channel::Ftp, "HELD-FTP", plain(SECRET))]),
            sub("ORPHANED", "DOOMED", vec![]),
        ],
        ImportOptions::default(),
    );
    let mut outcomes = outcomes.into_iter();
    assert!(refused(outcomes.next().unwrap()).contains("identifier `HELD-FTP` is taken"));
    let message = refused(outcomes.next().unwrap());
    assert!(
        message.contains("master `DOOMED` is not imported"),
        "{message}"
    );
}

#[test]
fn a_stored_masters_policy_names_the_key_it_refuses() {
    let f = Fixture::new(memory(), 8);
    let m = imported(
        &import(
            &f,
            vec![master("STRICT-2", vec![])],
            ImportOptions::default(),
        )[0],
    );
    f.keys
        .set_account_policy(
            op(),
            m,
            AccountPolicy {
                sub_account_channels: ChannelSet::of(&[Channel::Rest]),
                ..Default::default()
            },
        )
        .unwrap();
    let outcome = import(
        &f,
        vec![sub(
            "STRICT-2-SUB",
            "STRICT-2",
            vec![
                key(Channel::Rest, "strict-2-rest", plain(SECRET)),
                key(Channel::Ftp, "strict-2-ftp", plain(SECRET)),
            ],
        )],
        ImportOptions::default(),
    );
    let message = refused(outcome.into_iter().next().unwrap());
    assert!(
        message.starts_with("key 2 (ftp, identifier `strict-2-ftp`)"),
        "{message}"
    );
}

#[test]
fn a_stored_masters_lifetime_gives_a_sub_accounts_key_its_expiry() {
    let f = Fixture::new(memory(), 9);
    let m = imported(&import(&f, vec![master("CAPPED", vec![])], ImportOptions::default())[0]);
    f.keys
        .set_account_policy(
            op(),
            m,
            AccountPolicy {
                max_key_lifetime: Some(Duration::days(30)),
                ..Default::default()
            },
        )
        .unwrap();
    let outcome = import(
        &f,
        vec![sub(
            "CAPPED-SUB",
            "CAPPED",
            vec![
                key(Channel::Rest, "capped-none", plain(SECRET)),
                ImportKey {
                    expires_at: Some(START + Duration::days(7)),
                    ..key(Channel::Ftp, "capped-week", plain(SECRET))
                },
            ],
        )],
        ImportOptions::default(),
    );
    imported(&outcome[0]);
    let none = f.store.key_by_identifier("capped-none").unwrap().unwrap();
    assert_eq!(
        none.expires_at,
        Some(START + Duration::days(30)),
        "a key that asked for no expiry gets the master's cap, as one created by hand"
    );
    let week = f.store.key_by_identifier("capped-week").unwrap().unwrap();
    assert_eq!(week.expires_at, Some(START + Duration::days(7)));
}

//! The lifecycle parts of the store contract (expiry, enabled state, legacy
//! defaults, last use, suspension, policy, and the one-query reads), checked
//! against the in-memory store, the reference: the same writes on both, and
//! every answer the same. (The same scenario as the SQLite store's test.)
// Tests may unwrap and panic (helpers outside `#[test]` functions too).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use apikeys::key::{PreviousSecret, Usage};
use apikeys::testing::START;
use apikeys::testing::records::{created, event, hash, key, master, opened};
use apikeys::time::Duration;
use apikeys::token::{TokenDigest, TokenRecord};
use apikeys::{
    Account, AccountId, AccountKind, AccountPolicy, AuditKind, Channel, ChannelSet, DormantQuery,
    KeyId, KeyUse, MemoryStore, Store, StoreError, Whitelist,
};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::net::IpAddr;

/// Runs the same scenario on `store`, returning every answer in order, as
/// text (errors by kind only: backends word them differently).
fn transcript(store: &dyn Store) -> Vec<String> {
    let mut out = Vec::new();
    let mut note = |what: &str, answer: String| out.push(format!("{what}: {answer}"));
    fn err_kind(e: &StoreError) -> String {
        match e {
            StoreError::Backend { source } => {
                match source.downcast_ref::<apikeys_postgres::Unstorable>() {
                    Some(u) => format!("Unstorable({u:?})"),
                    None => format!("Backend({source})"),
                }
            }
            other => format!("{other:?}"),
        }
    }
    fn show<T: std::fmt::Debug>(r: Result<T, StoreError>) -> String {
        match r {
            Ok(v) => format!("{v:?}"),
            Err(e) => format!("Err({})", err_kind(&e)),
        }
    }

    let mut rng = ChaCha20Rng::seed_from_u64(77);
    let legacy = Account {
        policy: AccountPolicy {
            whitelist: Whitelist::parse(&["192.0.2.0/24", "2001:db8::1"], 10).unwrap(),
            sub_account_channels: ChannelSet::of(&[Channel::Ftp, Channel::Email]),
            max_key_lifetime: Some(Duration::days(30) + Duration::nanoseconds(7)),
        },
        ..master(AccountId::random(&mut rng))
    };
    let sub = Account {
        id: AccountId::random(&mut rng),
        kind: AccountKind::Sub { parent: legacy.id },
        created_at: START + Duration::seconds(1),
        suspended: true,
        policy: AccountPolicy {
            whitelist: Whitelist::parse(&["10.0.0.0/8"], 10).unwrap(),
            ..AccountPolicy::default()
        },
        external_id: Some("legacy-sub-1".parse().unwrap()),
    };
    let other = master(AccountId::random(&mut rng));

    let mut default_ftp = key(
        KeyId::random(&mut rng),
        legacy.id,
        Channel::Ftp,
        "legacy-ftp",
    );
    default_ftp.legacy_default = true;
    let mut default_http = key(
        KeyId::random(&mut rng),
        legacy.id,
        Channel::Http,
        "legacy-http",
    );
    default_http.legacy_default = true;
    default_http.expires_at = Some(START + Duration::days(400) + Duration::nanoseconds(3));
    default_http.enabled = false;
    default_http.usage = Usage {
        last_used_at: Some(START - Duration::days(3)),
        last_used_address: Some("::ffff:192.0.2.9".parse().unwrap()),
        previous_secret_last_used_at: None,
    };
    note(
        "create legacy",
        show(store.create_account(
            &legacy,
            &[default_ftp.clone(), default_http.clone()],
            &[
                opened(&legacy),
                created(&default_ftp),
                created(&default_http),
            ],
        )),
    );
    note(
        "create sub",
        show(store.create_account(&sub, &[], &[opened(&sub)])),
    );
    note(
        "create other",
        show(store.create_account(&other, &[], &[opened(&other)])),
    );

    let mut rest = key(KeyId::random(&mut rng), sub.id, Channel::Rest, "sub-rest");
    rest.created_at = START - Duration::days(10);
    rest.changed_at = rest.created_at;
    rest.previous_secret = Some(PreviousSecret {
        hash: hash("sub-rest old"),
        expires_at: START + Duration::days(1),
    });
    note(
        "insert rest",
        show(store.insert_key(&rest, 5, &created(&rest))),
    );
    let other_key = key(
        KeyId::random(&mut rng),
        other.id,
        Channel::Email,
        "other-email",
    );
    note(
        "insert other",
        show(store.insert_key(&other_key, 5, &created(&other_key))),
    );

    let ids = [default_ftp.id, default_http.id, rest.id, other_key.id];
    let identifiers = [
        "legacy-ftp",
        "LEGACY-HTTP",
        "sub-rest",
        "other-email",
        "nobody",
    ];
    let accounts = [legacy.id, sub.id, other.id, AccountId::random(&mut rng)];
    let read_all = |store: &dyn Store, note: &mut dyn FnMut(&str, String)| {
        for id in ids {
            note("key", show(store.key(id)));
        }
        for i in identifiers {
            note("by identifier", show(store.key_by_identifier(i)));
            note("for authentication", show(store.key_for_authentication(i)));
        }
        for a in accounts {
            note("account", show(store.account(a)));
            note("holders", show(store.holders(a)));
            note("keys of", show(store.keys_of_account(a)));
            note("subs of", show(store.sub_accounts(a)));
        }
        note("accounts", show(store.accounts(None, 100)));
        let mut query = DormantQuery {
            account: None,
            unused_since: START,
            legacy_defaults_only: false,
            after: None,
            limit: usize::MAX,
        };
        for account in [
            None,
            Some(legacy.id),
            Some(sub.id),
            Some(other.id),
            Some(accounts[3]),
        ] {
            for since in [
                START - Duration::days(20),
                START - Duration::days(3),
                START,
                START + Duration::days(9),
            ] {
                for legacy_only in [false, true] {
                    query.account = account;
                    query.unused_since = since;
                    query.legacy_defaults_only = legacy_only;
                    query.after = None;
                    query.limit = usize::MAX;
                    note("dormant", show(store.dormant_keys(&query)));
                    // Page by page, one key to a page.
                    let mut pages = Vec::new();
                    query.limit = 1;
                    loop {
                        let page = store.dormant_keys(&query).unwrap();
                        let Some(last) = page.last() else { break };
                        query.after = Some(last.id);
                        pages.push(last.id);
                    }
                    note("dormant pages", format!("{pages:?}"));
                    query.limit = 0;
                    query.after = None;
                    note("dormant none", show(store.dormant_keys(&query)));
                }
            }
        }
    };
    read_all(store, &mut note);

    // Last use: newest wins, unknown keys skipped, a previous use only for
    // the stored previous hash, addresses canonical.
    let at = |s: i64| START + Duration::seconds(s) + Duration::nanoseconds(s);
    let addr = |a: &str| a.parse::<IpAddr>().unwrap();
    let uses = vec![
        KeyUse {
            key_id: default_ftp.id,
            at: at(5),
            address: addr("192.0.2.1"),
            previous: None,
        },
        KeyUse {
            key_id: default_http.id,
            at: at(-10_000_000),
            address: addr("192.0.2.2"),
            previous: None,
        },
        KeyUse {
            key_id: KeyId::random(&mut rng),
            at: at(6),
            address: addr("192.0.2.3"),
            previous: None,
        },
        KeyUse {
            key_id: rest.id,
            at: at(7),
            address: addr("::ffff:10.1.2.3"),
            previous: Some((at(6), hash("sub-rest old"))),
        },
        KeyUse {
            key_id: other_key.id,
            at: at(8),
            address: addr("2001:db8::8"),
            previous: Some((at(8), hash("not its previous"))),
        },
    ];
    note("record", show(store.record_uses(&uses)));
    note("record none", show(store.record_uses(&[])));
    let older = vec![
        KeyUse {
            key_id: default_ftp.id,
            at: at(4),
            address: addr("192.0.2.99"),
            previous: None,
        },
        KeyUse {
            key_id: rest.id,
            at: at(7),
            address: addr("10.9.9.9"),
            previous: Some((at(5), hash("sub-rest old"))),
        },
    ];
    note("record older", show(store.record_uses(&older)));
    let out_of_range = vec![
        KeyUse {
            key_id: other_key.id,
            at: at(9),
            address: addr("192.0.2.4"),
            previous: None,
        },
        KeyUse {
            key_id: default_ftp.id,
            at: apikeys::time::macros::datetime!(2262-04-12 0:00 UTC),
            address: addr("192.0.2.5"),
            previous: None,
        },
    ];
    note(
        "record out of range",
        show(store.record_uses(&out_of_range)),
    );
    read_all(store, &mut note);

    // update_key writes expiry and enabled, keeps legacy_default and usage,
    // and clears the previous secret's last use only when its hash changes.
    let mut changed = store.key(rest.id).unwrap().unwrap();
    changed.expires_at = Some(START + Duration::days(2));
    changed.enabled = false;
    changed.legacy_default = true;
    changed.usage = Usage::default();
    changed.label = Some("same previous".into());
    changed.version += 1;
    note(
        "update same previous",
        show(store.update_key(&changed, changed.version - 1, &created(&changed))),
    );
    note("after same previous", show(store.key(rest.id)));
    changed.previous_secret = Some(PreviousSecret {
        hash: hash("sub-rest older"),
        expires_at: START + Duration::days(1),
    });
    changed.expires_at = None;
    changed.enabled = true;
    changed.version += 1;
    note(
        "update new previous",
        show(store.update_key(&changed, changed.version - 1, &created(&changed))),
    );
    note("after new previous", show(store.key(rest.id)));
    let again = vec![KeyUse {
        key_id: rest.id,
        at: at(10),
        address: addr("10.0.0.1"),
        previous: Some((at(10), hash("sub-rest older"))),
    }];
    note("record again", show(store.record_uses(&again)));
    changed.previous_secret = None;
    changed.version += 1;
    note(
        "update no previous",
        show(store.update_key(&changed, changed.version - 1, &created(&changed))),
    );
    note("after no previous", show(store.key(rest.id)));

    // Suspension and policy: each its own field, NotFound when absent.
    let e = |a: AccountId, kind| event(a, None, kind, "lifecycle");
    note(
        "suspend",
        show(store.set_account_suspended(
            legacy.id,
            true,
            &e(legacy.id, AuditKind::AccountSuspended),
        )),
    );
    note(
        "resume sub",
        show(store.set_account_suspended(sub.id, false, &e(sub.id, AuditKind::AccountResumed))),
    );
    note(
        "resume sub again",
        show(store.set_account_suspended(sub.id, false, &e(sub.id, AuditKind::AccountResumed))),
    );
    note(
        "suspend nobody",
        show(store.set_account_suspended(
            accounts[3],
            true,
            &e(accounts[3], AuditKind::AccountSuspended),
        )),
    );
    let policy = AccountPolicy {
        whitelist: Whitelist::default(),
        sub_account_channels: ChannelSet::EMPTY,
        max_key_lifetime: Some(Duration::nanoseconds(1)),
    };
    note(
        "policy",
        show(store.set_account_policy(legacy.id, &policy, &e(legacy.id, AuditKind::PolicyChanged))),
    );
    note(
        "policy nobody",
        show(store.set_account_policy(
            accounts[3],
            &policy,
            &e(accounts[3], AuditKind::PolicyChanged),
        )),
    );
    for a in accounts {
        note(
            "audit",
            show(store.audit_events(a, 100).map(|es| {
                es.into_iter()
                    .map(|e| (e.kind, e.detail))
                    .collect::<Vec<_>>()
            })),
        );
    }

    // Tokens: read with their key and holders.
    let token = TokenRecord {
        digest: TokenDigest([7; 32]),
        key_id: rest.id,
        issued_at: at(11),
        expires_at: at(3600),
    };
    note(
        "token",
        show(store.insert_token(&token, changed.version, 3, at(11), &created(&changed))),
    );
    note("token read", show(store.token(&token.digest)));
    note(
        "token for authentication",
        show(store.token_for_authentication(&token.digest)),
    );
    note(
        "no token",
        show(store.token_for_authentication(&TokenDigest([8; 32]))),
    );
    read_all(store, &mut note);
    out
}

fn compare(store: &dyn Store) {
    let expected = transcript(&MemoryStore::new());
    let found = transcript(store);
    assert_eq!(expected.len(), found.len());
    for (e, f) in expected.iter().zip(&found) {
        assert_eq!(f, e, "the store differs from the in-memory store");
    }
}

#[test]
fn the_database_answers_as_the_reference() {
    let Some(t) = apikeys_postgres::testing::test_store() else {
        return;
    };
    compare(&t);
}

#[test]
fn a_policy_lifetime_it_cannot_keep_is_refused_and_nothing_written() {
    let Some(t) = apikeys_postgres::testing::test_store() else {
        return;
    };
    let a = master(AccountId::random(&mut ChaCha20Rng::seed_from_u64(3)));
    t.store.create_account(&a, &[], &[opened(&a)]).unwrap();
    let huge = AccountPolicy {
        max_key_lifetime: Some(Duration::MAX),
        ..AccountPolicy::default()
    };
    let err = t
        .store
        .set_account_policy(
            a.id,
            &huge,
            &event(a.id, None, AuditKind::PolicyChanged, "x"),
        )
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Backend { source } if source.is::<apikeys_postgres::Unstorable>()),
        "{err:?}"
    );
    assert_eq!(t.store.account(a.id).unwrap(), Some(a.clone()));
    assert_eq!(t.store.audit_events(a.id, 10).unwrap().len(), 1);
    let b = Account {
        policy: huge,
        ..master(AccountId::random(&mut ChaCha20Rng::seed_from_u64(4)))
    };
    assert!(t.store.create_account(&b, &[], &[opened(&b)]).is_err());
    assert_eq!(t.store.account(b.id).unwrap(), None);
}

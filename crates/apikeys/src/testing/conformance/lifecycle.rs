//! Lifecycle in the store: a key's expiry, enabled state, legacy-default
//! mark and last use; an account's suspension and policy; the
//! authentication reads that bring a key with its account and master; and
//! the dormancy listing. Each kept exactly, written only by the write the
//! contract names, and seen by the next read.

use super::super::records::{event, hash, master};
use super::support::*;
use crate::account::{Account, AccountPolicy};
use crate::audit::AuditKind;
use crate::channel::{Channel, ChannelSet};
use crate::id::{AccountId, KeyId};
use crate::key::{KeyRecord, PreviousSecret, Usage};
use crate::lifecycle::{HeldKey, Holders};
use crate::store::{DormantQuery, DynStore};
use crate::testing::START;
use crate::token::{TokenDigest, TokenRecord};
use crate::usage::KeyUse;
use crate::whitelist::Whitelist;
use std::net::IpAddr;
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

/// An instant with every nanosecond digit in use.
const AT: OffsetDateTime = time::macros::datetime!(2025-05-06 7:08:09.123456789 UTC);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn policy() -> AccountPolicy {
    AccountPolicy {
        whitelist: Whitelist::parse(&["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"], 100).unwrap(),
        sub_account_channels: ChannelSet::of(&[Channel::Ftp, Channel::Email]),
        max_key_lifetime: Some(Duration::new(86_400 * 90, 123_456_789)),
    }
}

/// A key with every lifecycle field away from its default.
fn full_key(id: KeyId, account: AccountId, identifier: &str) -> KeyRecord {
    KeyRecord {
        previous_secret: Some(PreviousSecret {
            hash: hash("previous"),
            expires_at: AT + Duration::days(2),
        }),
        expires_at: Some(AT + Duration::days(30)),
        enabled: false,
        legacy_default: true,
        usage: Usage {
            last_used_at: Some(AT - Duration::nanoseconds(1)),
            last_used_address: Some(ip("2001:db8::42")),
            previous_secret_last_used_at: Some(AT - Duration::seconds(5)),
        },
        ..super::super::records::key(id, account, Channel::Rest, identifier)
    }
}

fn uses(key: KeyId, at: OffsetDateTime, address: &str) -> KeyUse {
    KeyUse {
        key_id: key,
        at,
        address: ip(address),
        previous: None,
    }
}

#[track_caller]
fn stored(store: &DynStore, id: KeyId) -> KeyRecord {
    present(
        ok(store.key(id), "a key read succeeds"),
        "the key is stored",
    )
}

#[track_caller]
fn stored_account(store: &DynStore, id: AccountId) -> Account {
    present(
        ok(store.account(id), "an account read succeeds"),
        "the account is stored",
    )
}

#[track_caller]
fn trail(store: &DynStore, id: AccountId) -> Vec<crate::AuditEvent> {
    ok(store.audit_events(id, 1000), "audit reads succeed")
}

/// Every lifecycle field of a key and an account comes back exactly, from
/// every read that answers it, including a suspended account's and a
/// policy's whole value.
pub fn lifecycle_fields_round_trip(store: Arc<DynStore>) {
    let mut ids = Ids::new(141);
    let m = Account {
        suspended: true,
        policy: policy(),
        ..master(ids.account())
    };
    let s = Account {
        policy: AccountPolicy {
            whitelist: Whitelist::parse(&["203.0.113.0/24"], 100).unwrap(),
            ..AccountPolicy::default()
        },
        ..sub(ids.account(), m.id)
    };
    open(&*store, &m);
    open(&*store, &s);
    same(
        stored_account(&*store, m.id),
        m.clone(),
        "account() keeps suspension and policy",
    );
    same(
        stored_account(&*store, s.id),
        s.clone(),
        "account() keeps a sub-account's policy",
    );
    same(
        ok(store.sub_accounts(m.id), "sub_accounts succeeds"),
        vec![s.clone()],
        "sub_accounts() keeps the policy",
    );
    let page = ok(store.accounts(None, 10), "accounts succeeds");
    holds(
        page.contains(&m) && page.contains(&s),
        "accounts() keeps suspension and policy",
        &page,
        "both accounts as written",
    );
    let k = full_key(ids.key(), s.id, "lifecycle-full");
    put(&*store, &k, limit(Channel::Rest));
    let plain = super::super::records::key(ids.key(), m.id, Channel::Ftp, "lifecycle-plain");
    let initial = KeyRecord {
        expires_at: Some(AT),
        ..super::super::records::key(ids.key(), m.id, Channel::Email, "lifecycle-initial")
    };
    put(&*store, &plain, 1);
    same(
        stored(&*store, k.id),
        k.clone(),
        "key() keeps every lifecycle field",
    );
    same(
        ok(store.key_by_identifier("LIFECYCLE-FULL"), "lookup succeeds"),
        Some(k.clone()),
        "key_by_identifier() keeps every lifecycle field",
    );
    same(
        ok(store.keys_of_account(s.id), "listing succeeds"),
        vec![k.clone()],
        "keys_of_account() keeps every lifecycle field",
    );
    same(
        stored(&*store, plain.id),
        plain.clone(),
        "the defaults come back as written",
    );
    // An account's initial keys keep theirs too.
    let legacy = master(ids.account());
    let initial = KeyRecord {
        account_id: legacy.id,
        legacy_default: true,
        ..initial
    };
    ok(
        store.create_account(
            &legacy,
            std::slice::from_ref(&initial),
            &[super::super::records::opened(&legacy)],
        ),
        "an account with an initial key is stored",
    );
    same(
        stored(&*store, initial.id),
        initial.clone(),
        "an initial key keeps expiry and mark",
    );
    // The authentication reads bring the holders as stored.
    let held = ok(
        store.key_for_authentication("lifecycle-FULL"),
        "lookup succeeds",
    );
    same(
        held,
        Some(HeldKey {
            key: k.clone(),
            holders: Holders {
                account: s.clone(),
                master: Some(m.clone()),
            },
        }),
        "key_for_authentication() answers the key, its sub-account and its master",
    );
    same(
        ok(
            store.key_for_authentication("lifecycle-plain"),
            "lookup succeeds",
        ),
        Some(HeldKey {
            key: plain.clone(),
            holders: Holders {
                account: m.clone(),
                master: None,
            },
        }),
        "a master's key has no master",
    );
    same(
        ok(
            store.key_for_authentication("lifecycle-ful"),
            "lookup succeeds",
        ),
        None,
        "key_for_authentication() matches the whole identifier",
    );
    same(
        ok(store.holders(s.id), "holders succeeds"),
        Some(Holders {
            account: s.clone(),
            master: Some(m.clone()),
        }),
        "holders() of a sub-account",
    );
    same(
        ok(store.holders(ids.account()), "holders succeeds"),
        None,
        "holders() of no account",
    );
    let t = TokenRecord {
        digest: TokenDigest::of("lifecycle token"),
        key_id: k.id,
        issued_at: START,
        expires_at: START + Duration::days(1),
    };
    ok(
        store.insert_token(
            &t,
            k.version,
            10,
            START,
            &event(s.id, Some(&k), AuditKind::TokenIssued, "token"),
        ),
        "a token is stored",
    );
    same(
        ok(store.token_for_authentication(&t.digest), "lookup succeeds"),
        Some((
            t.clone(),
            HeldKey {
                key: k.clone(),
                holders: Holders {
                    account: s.clone(),
                    master: Some(m.clone()),
                },
            },
        )),
        "token_for_authentication() answers the token, its key and the holders",
    );
    same(
        ok(
            store.token_for_authentication(&TokenDigest::of("no such token")),
            "lookup succeeds",
        ),
        None,
        "an unknown token is none",
    );
}

/// `update_key` writes expiry and enabled state, keeps the legacy mark and
/// the recorded usage whatever the record says, and forgets the previous
/// secret's last use exactly when the previous secret changes.
pub fn update_writes_lifecycle_and_keeps_usage(store: Arc<DynStore>) {
    let mut ids = Ids::new(142);
    let m = add_master(&*store, &mut ids);
    let k = full_key(ids.key(), m.id, "lifecycle-update");
    put(&*store, &k, limit(Channel::Rest));
    let mut next = KeyRecord {
        version: 2,
        expires_at: None,
        enabled: true,
        legacy_default: false,
        usage: Usage::default(),
        ..k.clone()
    };
    update(&*store, &next, "enable, clear expiry");
    let got = stored(&*store, k.id);
    same(
        (got.expires_at, got.enabled),
        (None, true),
        "update_key writes expiry and enabled state",
    );
    same(got.legacy_default, true, "update_key keeps the legacy mark");
    same(
        got.usage,
        k.usage,
        "update_key keeps the recorded usage (same previous secret)",
    );
    next = KeyRecord {
        version: 3,
        expires_at: Some(AT + Duration::nanoseconds(7)),
        enabled: false,
        ..next
    };
    update(&*store, &next, "disable, expire");
    let got = stored(&*store, k.id);
    same(
        (got.expires_at, got.enabled),
        (Some(AT + Duration::nanoseconds(7)), false),
        "update_key writes an expiry to the nanosecond, and disabling",
    );
    // A new previous secret: its last use is not the old one's.
    next = KeyRecord {
        version: 4,
        previous_secret: Some(PreviousSecret {
            hash: hash("another previous"),
            expires_at: AT + Duration::days(3),
        }),
        ..next
    };
    update(&*store, &next, "rotate");
    let got = stored(&*store, k.id);
    same(
        got.usage,
        Usage {
            previous_secret_last_used_at: None,
            ..k.usage
        },
        "a new previous secret clears the previous secret's last use, and only that",
    );
}

/// Suspension and policy are each written by their own write with its
/// event, atomically, leave everything else of the account alone, are
/// refused for an absent account without a trace, and are seen by the
/// next authentication read of the account's and its sub-accounts' keys.
pub fn suspension_and_policy_are_written_alone(store: Arc<DynStore>) {
    let mut ids = Ids::new(143);
    let m = add_master(&*store, &mut ids);
    let s = add_sub(&*store, &mut ids, m.id);
    let k = add_key(&*store, &mut ids, s.id, Channel::Http, "lifecycle-sub-key");
    let before = trail(&*store, m.id).len();
    // Read once before the change: a store that keeps what it read must
    // still answer the change from the next read.
    let warm = present(
        ok(
            store.key_for_authentication("lifecycle-sub-key"),
            "lookup succeeds",
        ),
        "the key is found",
    );
    same(
        warm.holders.master.as_ref().map(|x| x.suspended),
        Some(false),
        "not suspended yet",
    );
    let ev = event(m.id, None, AuditKind::AccountSuspended, "suspended");
    ok(
        store.set_account_suspended(m.id, true, &ev),
        "suspending a stored account succeeds",
    );
    same(
        stored_account(&*store, m.id),
        Account {
            suspended: true,
            ..m.clone()
        },
        "suspension writes only the suspended flag",
    );
    same(
        trail(&*store, m.id).len(),
        before + 1,
        "suspension records its event",
    );
    let held = present(
        ok(
            store.key_for_authentication("lifecycle-sub-key"),
            "lookup succeeds",
        ),
        "the key is found",
    );
    holds(
        held.holders.master.as_ref().is_some_and(|x| x.suspended)
            && !held.holders.account.suspended,
        "the next read of a sub-account's key sees its master suspended",
        &held.holders,
        "master suspended, sub-account not",
    );
    let p = policy();
    ok(
        store.set_account_policy(
            m.id,
            &p,
            &event(m.id, None, AuditKind::PolicyChanged, "policy"),
        ),
        "setting a stored account's policy succeeds",
    );
    same(
        stored_account(&*store, m.id),
        Account {
            suspended: true,
            policy: p.clone(),
            ..m.clone()
        },
        "the policy write keeps the suspension and writes the whole policy",
    );
    ok(
        store.set_account_suspended(
            m.id,
            false,
            &event(m.id, None, AuditKind::AccountResumed, "r"),
        ),
        "resuming succeeds",
    );
    same(
        stored_account(&*store, m.id).policy,
        p.clone(),
        "resuming keeps the policy",
    );
    let held = present(
        ok(
            store.key_for_authentication("lifecycle-sub-key"),
            "lookup succeeds",
        ),
        "the key is found",
    );
    same(
        held.holders.master,
        Some(Account {
            policy: p.clone(),
            ..m.clone()
        }),
        "the next read sees the master resumed, with its policy",
    );
    same(held.key, k, "the key itself is untouched");
    same(
        trail(&*store, m.id).len(),
        before + 3,
        "each write records its event",
    );
    // Absent accounts: refused, nothing recorded anywhere.
    let ghost = ids.account();
    refused(
        store.set_account_suspended(
            ghost,
            true,
            &event(ghost, None, AuditKind::AccountSuspended, "x"),
        ),
        Want::AccountNotFound(ghost),
        "suspending an absent account is NotFound",
    );
    refused(
        store.set_account_policy(
            ghost,
            &p,
            &event(ghost, None, AuditKind::PolicyChanged, "x"),
        ),
        Want::AccountNotFound(ghost),
        "setting an absent account's policy is NotFound",
    );
    same(
        trail(&*store, ghost).len(),
        0,
        "a refused account write records no event",
    );
}

/// `record_uses` keeps the newest instant (an address goes with its
/// instant), records a previous secret's use only for the previous secret
/// it matched, skips keys that are gone, writes a whole batch, and changes
/// nothing else of a key.
pub fn record_uses_keeps_the_newest(store: Arc<DynStore>) {
    let mut ids = Ids::new(144);
    let m = add_master(&*store, &mut ids);
    let k = KeyRecord {
        previous_secret: Some(PreviousSecret {
            hash: hash("old"),
            expires_at: AT + Duration::days(1),
        }),
        ..super::super::records::key(ids.key(), m.id, Channel::Rest, "lifecycle-uses")
    };
    put(&*store, &k, limit(Channel::Rest));
    let trail_before = trail(&*store, m.id);
    ok(
        store.record_uses(&[uses(k.id, AT, "192.0.2.1")]),
        "recording succeeds",
    );
    ok(
        store.record_uses(&[uses(k.id, AT - Duration::nanoseconds(1), "192.0.2.2")]),
        "recording an older use succeeds",
    );
    let got = stored(&*store, k.id);
    same(
        (got.usage.last_used_at, got.usage.last_used_address),
        (Some(AT), Some(ip("192.0.2.1"))),
        "an older use changes nothing: the newest instant and its address stay",
    );
    ok(
        store.record_uses(&[uses(
            k.id,
            AT + Duration::nanoseconds(1),
            "::ffff:192.0.2.3",
        )]),
        "recording a newer use succeeds",
    );
    let got = stored(&*store, k.id);
    same(
        (got.usage.last_used_at, got.usage.last_used_address),
        (Some(AT + Duration::nanoseconds(1)), Some(ip("192.0.2.3"))),
        "a newer use wins, to the nanosecond, its address in canonical form",
    );
    same(
        KeyRecord {
            usage: Usage::default(),
            ..got.clone()
        },
        k.clone(),
        "recording a use changes nothing else: no version, no changed_at",
    );
    same(
        trail(&*store, m.id),
        trail_before,
        "recording a use records no event",
    );
    // The previous secret: only the one it matched.
    let wrong = KeyUse {
        previous: Some((AT, hash("not the previous"))),
        ..uses(k.id, AT, "192.0.2.1")
    };
    ok(store.record_uses(&[wrong]), "recording succeeds");
    same(
        stored(&*store, k.id).usage.previous_secret_last_used_at,
        None,
        "a previous use of another hash is not recorded",
    );
    let right = KeyUse {
        previous: Some((AT - Duration::seconds(1), hash("old"))),
        ..uses(k.id, AT - Duration::seconds(1), "192.0.2.1")
    };
    ok(store.record_uses(&[right]), "recording succeeds");
    let older = KeyUse {
        previous: Some((AT - Duration::seconds(2), hash("old"))),
        ..uses(k.id, AT - Duration::seconds(2), "192.0.2.1")
    };
    ok(store.record_uses(&[older]), "recording succeeds");
    same(
        stored(&*store, k.id).usage.previous_secret_last_used_at,
        Some(AT - Duration::seconds(1)),
        "the previous secret's newest use wins",
    );
    // A batch: many keys at once, one gone.
    let mut batch = Vec::new();
    let mut keys = Vec::new();
    for i in 0..300 {
        let other =
            super::super::records::key(ids.key(), m.id, Channel::Rest, &format!("batch-{i}"));
        put(&*store, &other, limit(Channel::Rest));
        batch.push(uses(other.id, AT + Duration::seconds(i), "198.51.100.9"));
        keys.push(other);
    }
    batch.insert(150, uses(ids.key(), AT, "198.51.100.10"));
    ok(
        store.record_uses(&batch),
        "a batch with a key that is gone succeeds",
    );
    for (i, other) in keys.iter().enumerate() {
        same(
            stored(&*store, other.id).usage.last_used_at,
            Some(AT + Duration::seconds(i as i64)),
            "every use of a batch is recorded",
        );
    }
    ok(store.record_uses(&[]), "an empty batch succeeds");
}

/// Instants of the lifecycle outside the stores' range are refused as
/// `Unstorable`, and nothing of the write is kept.
pub fn lifecycle_instants_outside_the_range_are_unstorable(store: Arc<DynStore>) {
    let mut ids = Ids::new(145);
    let m = add_master(&*store, &mut ids);
    let far = LATEST + Duration::nanoseconds(1);
    let k = KeyRecord {
        expires_at: Some(far),
        ..super::super::records::key(ids.key(), m.id, Channel::Ftp, "lifecycle-far")
    };
    refused(
        insert(&*store, &k, 1),
        Want::UnstorableInstant(far),
        "an expiry beyond 2262 is unstorable",
    );
    same(
        ok(store.key(k.id), "read succeeds"),
        None,
        "a refused insert keeps nothing",
    );
    let k = add_key(&*store, &mut ids, m.id, Channel::Ftp, "lifecycle-near");
    let batch = [uses(k.id, AT, "192.0.2.1"), uses(k.id, far, "192.0.2.2")];
    holds(
        store.record_uses(&batch).is_err(),
        "a use beyond 2262 is refused",
        "Ok",
        "an Unstorable error",
    );
    same(
        stored(&*store, k.id).usage,
        Usage::default(),
        "a refused batch records nothing, not even its good uses",
    );
}

/// The dormancy listing: exactly the keys whose last use, or creation if
/// never used, is at or before the instant; scoped to an account and, for
/// a master, its sub-accounts; legacy defaults never used when asked;
/// ascending by id, in keyset pages.
pub fn dormant_keys_are_listed_exactly(store: Arc<DynStore>) {
    let mut ids = Ids::new(146);
    let id = |n: u8| {
        let mut b = [0x5a; 16];
        b[15] = n;
        KeyId::from_bytes(b)
    };
    let m = add_master(&*store, &mut ids);
    let s = add_sub(&*store, &mut ids, m.id);
    let other = add_master(&*store, &mut ids);
    let cut = AT;
    let mk = |n: u8,
              account: AccountId,
              created: OffsetDateTime,
              used: Option<OffsetDateTime>,
              legacy: bool| {
        let k = KeyRecord {
            created_at: created,
            changed_at: created,
            legacy_default: legacy,
            ..super::super::records::key(id(n), account, Channel::Rest, &format!("dormant-{n}"))
        };
        put(&*store, &k, limit(Channel::Rest));
        if let Some(at) = used {
            ok(
                store.record_uses(&[uses(k.id, at, "192.0.2.1")]),
                "recording succeeds",
            );
        }
        k.id
    };
    // Dormant: created or last used at or before the cut.
    let a = mk(9, m.id, cut, None, true); // created exactly at the cut, never used
    let b = mk(3, s.id, cut - Duration::days(9), Some(cut), false); // used exactly at the cut
    let c = mk(7, other.id, cut - Duration::days(9), None, true);
    let d = mk(
        1,
        m.id,
        cut - Duration::days(9),
        Some(cut - Duration::days(1)),
        true,
    ); // legacy but used
    // Not dormant.
    let _e = mk(2, m.id, cut + Duration::nanoseconds(1), None, true);
    let _f = mk(
        4,
        s.id,
        cut - Duration::days(9),
        Some(cut + Duration::nanoseconds(1)),
        false,
    );
    let q = |account: Option<AccountId>, legacy: bool, after: Option<KeyId>, limit: usize| {
        DormantQuery {
            account,
            unused_since: cut,
            legacy_defaults_only: legacy,
            after,
            limit,
        }
    };
    let listed = |query: DormantQuery| -> Vec<KeyId> {
        ok(store.dormant_keys(&query), "the dormancy listing succeeds")
            .into_iter()
            .map(|k| k.id)
            .collect()
    };
    same(
        listed(q(None, false, None, 100)),
        vec![d, b, c, a],
        "every account's dormant keys, by id, bounds included",
    );
    same(
        listed(q(Some(m.id), false, None, 100)),
        vec![d, b, a],
        "a master's dormant keys include its sub-accounts'",
    );
    same(
        listed(q(Some(s.id), false, None, 100)),
        vec![b],
        "a sub-account's are its own",
    );
    same(
        listed(q(Some(other.id), false, None, 100)),
        vec![c],
        "another master's are its own",
    );
    same(
        listed(q(None, true, None, 100)),
        vec![c, a],
        "legacy defaults never used",
    );
    same(
        listed(q(None, false, None, 2)),
        vec![d, b],
        "a page holds at most the limit",
    );
    same(
        listed(q(None, false, Some(b), 2)),
        vec![c, a],
        "the next page starts after the cursor",
    );
    same(
        listed(q(None, false, Some(a), 2)),
        Vec::<KeyId>::new(),
        "after the last, nothing",
    );
    same(
        listed(q(None, false, None, 0)),
        Vec::<KeyId>::new(),
        "a limit of 0 is an empty page",
    );
    same(
        listed(q(Some(ids.account()), false, None, 100)),
        Vec::<KeyId>::new(),
        "no account, no keys",
    );
    let full = present(
        ok(
            store.dormant_keys(&q(Some(s.id), false, None, 10)),
            "listing succeeds",
        )
        .into_iter()
        .next(),
        "one key",
    );
    same(
        full,
        stored(&*store, b),
        "the listing answers whole records",
    );
}

/// Racing uses of one key from many threads (as from many processes):
/// the newest instant is what stays.
pub fn race_uses_keep_the_newest(store: Arc<DynStore>) {
    let mut ids = Ids::new(147);
    let m = add_master(&*store, &mut ids);
    let k = add_key(&*store, &mut ids, m.id, Channel::Ftp, "lifecycle-race-uses");
    let (answers, _) = race(8, 10, |round, t| {
        let at = AT + Duration::seconds((round * 8 + (7 - t)) as i64);
        store.record_uses(&[uses(k.id, at, &format!("192.0.2.{}", t + 1))])
    });
    for round in &answers {
        only_ok_or(
            round,
            |_| Want::KeyNotFound(k.id),
            "racing uses all succeed",
        );
        same(wins(round), round.len(), "racing uses all succeed");
    }
    let got = stored(&*store, k.id).usage;
    same(
        (got.last_used_at, got.last_used_address),
        (Some(AT + Duration::seconds(79)), Some(ip("192.0.2.1"))),
        "the newest of all racing uses stays, with its address",
    );
}

/// A suspension and a policy change racing on one account both land: a
/// store that rewrote the whole account from a stale read would lose one.
pub fn race_suspension_and_policy_both_land(store: Arc<DynStore>) {
    let mut ids = Ids::new(148);
    let accounts: Vec<Account> = (0..20).map(|_| add_master(&*store, &mut ids)).collect();
    let p = policy();
    let (answers, _) = race(2, accounts.len(), |round, t| {
        let a = &accounts[round];
        if t == 0 {
            store.set_account_suspended(
                a.id,
                true,
                &event(a.id, None, AuditKind::AccountSuspended, "s"),
            )
        } else {
            store.set_account_policy(a.id, &p, &event(a.id, None, AuditKind::PolicyChanged, "p"))
        }
    });
    for (round, a) in answers.iter().zip(&accounts) {
        same(wins(round), 2, "both racing account writes succeed");
        same(
            stored_account(&*store, a.id),
            Account {
                suspended: true,
                policy: p.clone(),
                ..a.clone()
            },
            "a racing suspension and policy change both land",
        );
    }
}

/// A policy's lifetime is kept to the nanosecond up to 2^63 − 1 ns, and
/// refused as `Unstorable` beyond, at creation and at a policy write, with
/// nothing written.
pub fn policy_lifetimes_beyond_the_range_are_unstorable(store: Arc<DynStore>) {
    let mut ids = Ids::new(149);
    let longest = Duration::nanoseconds(i64::MAX);
    let kept = Account {
        policy: AccountPolicy {
            max_key_lifetime: Some(longest),
            ..AccountPolicy::default()
        },
        ..master(ids.account())
    };
    open(&*store, &kept);
    same(
        stored_account(&*store, kept.id),
        kept.clone(),
        "the longest lifetime is kept exactly",
    );
    let huge = AccountPolicy {
        max_key_lifetime: Some(longest + Duration::nanoseconds(1)),
        ..AccountPolicy::default()
    };
    let unstorable = |r: &Result<(), crate::StoreError>| {
        matches!(r, Err(crate::StoreError::Backend { source })
            if source.downcast_ref::<crate::store::Unstorable>().is_some())
    };
    let r = store.set_account_policy(
        kept.id,
        &huge,
        &event(kept.id, None, AuditKind::PolicyChanged, "x"),
    );
    holds(
        unstorable(&r),
        "a lifetime beyond 2^63 - 1 ns is unstorable",
        show(&r),
        "Err(Backend(Unstorable))",
    );
    same(
        stored_account(&*store, kept.id),
        kept.clone(),
        "a refused policy write changes nothing",
    );
    same(
        trail(&*store, kept.id).len(),
        1,
        "a refused policy write records nothing",
    );
    let b = Account {
        policy: huge,
        ..master(ids.account())
    };
    let r = store.create_account(&b, &[], &[super::super::records::opened(&b)]);
    holds(
        unstorable(&r),
        "an account with an unstorable lifetime is refused",
        show(&r),
        "Err(Backend(Unstorable))",
    );
    same(
        ok(store.account(b.id), "read succeeds"),
        None,
        "and not stored",
    );
}

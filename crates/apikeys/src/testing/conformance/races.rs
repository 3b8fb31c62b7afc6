//! Races: every kind of write racing with itself. Threads start each round
//! together (see [`StartLine`]); of writes that would together break a
//! rule, exactly as many succeed as the rule allows, the others fail with
//! the rule's error, and only the winners' audit events are kept.
//!
//! A store whose check and write are separate critical sections loses these
//! races only in the rounds where two writers pass the check before either
//! writes, which on two cores may be one round in ten. So a race runs
//! rounds until it has spent [`BUDGET`] (and at least [`MIN_ROUNDS`]): a
//! fast store races many rounds, a slow one the minimum, and each test
//! stays short.

use super::support::*;
use crate::account::Account;
use crate::audit::AuditKind;
use crate::channel::Channel;
use crate::key::KeyRecord;
use crate::store::{DynStore, Existing, StoreError};
use crate::testing::START;
use crate::testing::records::{hash, key as record, master, opened};
use std::sync::Arc;
use std::time::{Duration as Elapsed, Instant};
use time::Duration;

/// Threads racing in each round.
pub(crate) const THREADS: usize = 8;
/// Rounds in which calls really overlapped that each race runs at least.
pub(crate) const MIN_ROUNDS: usize = 24;
/// Rounds each race runs at most.
pub(crate) const MAX_ROUNDS: usize = 3000;
/// How long a race goes on adding rounds once it has the minimum.
pub(crate) const BUDGET: Elapsed = Elapsed::from_millis(150);
/// How long a race may go on to reach the minimum, on a machine so loaded
/// that the threads of a round rarely run at once.
pub(crate) const PATIENCE: Elapsed = Elapsed::from_secs(5);
/// Rounds set up, then raced, at a time.
const BATCH: usize = 8;

/// Runs rounds of a race: `setup(round)` prepares each round (outside the
/// race), then `op(plan, thread)` is every thread's call in it. Returns
/// each round's plan with the threads' answers.
///
/// It runs until at least [`MIN_ROUNDS`] rounds really overlapped (two
/// calls in flight at once), and then on while it has spent less than
/// [`BUDGET`]: a fast store races many rounds, a slow one few, a loaded
/// machine as many as it takes.
#[track_caller]
fn rounds<P: Sync, T: Send>(
    mut setup: impl FnMut(usize) -> P,
    op: impl Fn(&P, usize) -> T + Sync,
) -> Vec<(P, Vec<T>)> {
    let started = Instant::now();
    let mut out: Vec<(P, Vec<T>)> = Vec::new();
    let mut overlapped = 0;
    loop {
        let spent = started.elapsed();
        let enough = overlapped >= MIN_ROUNDS || spent >= PATIENCE;
        if out.len() >= MAX_ROUNDS || (enough && spent >= BUDGET) {
            break;
        }
        let first = out.len();
        let plans: Vec<P> = (first..first + BATCH).map(&mut setup).collect();
        let (answers, raced) = race(THREADS, BATCH, |i, t| op(&plans[i], t));
        overlapped += raced.iter().filter(|r| **r).count();
        out.extend(plans.into_iter().zip(answers));
    }
    out
}

/// Case variants of `name`, one per thread: racing identifiers differ in
/// ASCII case only.
fn spelling(name: &str, thread: usize) -> String {
    match thread % 3 {
        0 => name.to_ascii_uppercase(),
        1 => name.to_string(),
        _ => name
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if i % 2 == 0 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect(),
    }
}

#[track_caller]
fn exactly(answers: &[Result<(), StoreError>], allowed: usize, round: usize, rule: &str) {
    if wins(answers) != allowed {
        fail(
            &format!("{rule} (round {round}: {allowed} may succeed)"),
            shown_all(answers),
            Shown(format!("exactly {allowed} Ok")),
        );
    }
}

/// Many threads open one account id at once (each with its own creation
/// instant, initial key and event): exactly one wins each round, the
/// others get `AlreadyExists(Account)`, and only the winner's account, key
/// and event are kept.
pub fn race_create_same_account(store: Arc<DynStore>) {
    let mut ids = Ids::new(81);
    let raced = rounds(
        |round| {
            let id = ids.account();
            let accounts: Vec<Account> = (0..THREADS)
                .map(|t| Account {
                    created_at: START + Duration::seconds(t as i64),
                    ..master(id)
                })
                .collect();
            let keys: Vec<KeyRecord> = (0..THREADS)
                .map(|t| record(ids.key(), id, Channel::Ftp, &format!("acct-{round}-{t}")))
                .collect();
            (accounts, keys)
        },
        |(accounts, keys), t| {
            let a = &accounts[t];
            store.create_account(a, std::slice::from_ref(&keys[t]), &[opened(a)])
        },
    );
    let rule = "concurrent creations of one account id: exactly one succeeds";
    for (round, ((accounts, keys), answers)) in raced.iter().enumerate() {
        exactly(answers, 1, round, rule);
        only_ok_or(
            answers,
            |_| Want::Taken(Existing::Account),
            "the losers of an account race get AlreadyExists(Account)",
        );
        let winner = answers.iter().position(Result::is_ok).unwrap_or(0);
        let id = accounts[0].id;
        same(
            ok(store.account(id), "account succeeds"),
            Some(accounts[winner].clone()),
            "the stored account is the winner's",
        );
        same(
            ok(store.keys_of_account(id), "keys_of_account succeeds"),
            vec![keys[winner].clone()],
            "only the winner's initial key is kept",
        );
        same(
            ok(store.audit_events(id, 100), "audit_events succeeds").len(),
            1,
            "only the winner's opening event is kept",
        );
    }
}

/// Many threads open different accounts at once, each with an initial key
/// of one identifier (in various cases): exactly one wins each round, and
/// the losers keep nothing: no account, no key, no event.
pub fn race_initial_keys_same_identifier(store: Arc<DynStore>) {
    let mut ids = Ids::new(82);
    let raced = rounds(
        |round| {
            (0..THREADS)
                .map(|t| {
                    let a = master(ids.account());
                    let name = spelling(&format!("initial-{round}"), t);
                    let k = record(ids.key(), a.id, Channel::Http, &name);
                    (a, k)
                })
                .collect::<Vec<_>>()
        },
        |plan, t| {
            let (a, k) = &plan[t];
            store.create_account(a, std::slice::from_ref(k), &[opened(a)])
        },
    );
    let rule = "concurrent initial keys with one identifier: exactly one account succeeds";
    for (round, (plan, answers)) in raced.iter().enumerate() {
        exactly(answers, 1, round, rule);
        only_ok_or(
            answers,
            |_| Want::Taken(Existing::Identifier),
            "the losers get AlreadyExists(Identifier)",
        );
        for ((a, k), answer) in plan.iter().zip(answers) {
            let kept = ok(store.account(a.id), "account succeeds").is_some();
            same(
                kept,
                answer.is_ok(),
                "an account is kept exactly if its creation succeeded",
            );
            if answer.is_err() {
                same(
                    ok(store.key(k.id), "key succeeds"),
                    None,
                    "a refused creation keeps no key",
                );
                same(
                    ok(store.audit_events(a.id, 10), "audit_events succeeds").len(),
                    0,
                    "a refused creation keeps no event",
                );
            }
        }
    }
}

/// Many threads insert keys with one identifier (in various cases) for
/// different accounts at once: exactly one wins each round, the others get
/// `AlreadyExists(Identifier)`, and only the winner's event is kept.
pub fn race_same_identifier(store: Arc<DynStore>) {
    let mut ids = Ids::new(83);
    let accounts: Vec<Account> = (0..THREADS)
        .map(|_| add_master(&*store, &mut ids))
        .collect();
    let raced = rounds(
        |round| {
            accounts
                .iter()
                .enumerate()
                .map(|(t, a)| {
                    let name = spelling(&format!("race-{round}"), t);
                    record(ids.key(), a.id, Channel::Rest, &name)
                })
                .collect::<Vec<_>>()
        },
        |keys, t| insert(&*store, &keys[t], 100_000),
    );
    let rule = "concurrent inserts of one identifier: exactly one succeeds";
    for (round, (keys, answers)) in raced.iter().enumerate() {
        exactly(answers, 1, round, rule);
        only_ok_or(
            answers,
            |_| Want::Taken(Existing::Identifier),
            "the losers get AlreadyExists(Identifier)",
        );
        let winner = answers.iter().position(Result::is_ok).unwrap_or(0);
        same(
            ok(
                store.key_by_identifier(&format!("race-{round}")),
                "lookup succeeds",
            ),
            Some(keys[winner].clone()),
            "the identifier names the winner's key",
        );
    }
    let events: usize = accounts
        .iter()
        .map(|a| {
            ok(
                store.audit_events(a.id, usize::MAX),
                "audit_events succeeds",
            )
            .len()
        })
        .sum();
    same(
        events,
        THREADS + raced.len(),
        "only the winners' events are kept (one per round)",
    );
}

/// Many threads insert a key of one non-REST channel for one account at
/// once: exactly one wins each round.
pub fn race_same_channel(store: Arc<DynStore>) {
    let mut ids = Ids::new(84);
    let raced = rounds(
        |round| {
            let a = add_master(&*store, &mut ids);
            let channel = [
                Channel::Ftp,
                Channel::Http,
                Channel::WebService,
                Channel::Email,
            ][round % 4];
            let keys: Vec<KeyRecord> = (0..THREADS)
                .map(|t| record(ids.key(), a.id, channel, &format!("chan-{round}-{t}")))
                .collect();
            (a, keys)
        },
        |(_, keys), t| insert(&*store, &keys[t], 1),
    );
    let rule = "concurrent inserts on one channel of one account: exactly one succeeds";
    for (round, ((a, keys), answers)) in raced.iter().enumerate() {
        exactly(answers, 1, round, rule);
        only_ok_or(
            answers,
            |_| Want::Taken(Existing::ChannelFull(keys[0].channel)),
            "the losers get AlreadyExists(ChannelFull)",
        );
        same(
            ok(store.keys_of_account(a.id), "keys_of_account succeeds").len(),
            1,
            "the account holds one key of the channel",
        );
        same(
            ok(store.audit_events(a.id, 100), "audit_events succeeds").len(),
            2,
            "only the winner's event is kept",
        );
    }
}

/// Many threads insert REST keys for one account at once under a limit of
/// three: exactly three win each round.
pub fn race_rest_limit(store: Arc<DynStore>) {
    let mut ids = Ids::new(85);
    let raced = rounds(
        |round| {
            let a = add_master(&*store, &mut ids);
            let keys: Vec<KeyRecord> = (0..THREADS)
                .map(|t| record(ids.key(), a.id, Channel::Rest, &format!("rest-{round}-{t}")))
                .collect();
            (a, keys)
        },
        |(_, keys), t| insert(&*store, &keys[t], 3),
    );
    let rule = "concurrent REST inserts under a limit of 3: exactly 3 succeed";
    for (round, ((a, _), answers)) in raced.iter().enumerate() {
        exactly(answers, 3, round, rule);
        only_ok_or(
            answers,
            |_| Want::Taken(Existing::ChannelFull(Channel::Rest)),
            "the losers get AlreadyExists(ChannelFull(Rest))",
        );
        same(
            ok(store.keys_of_account(a.id), "keys_of_account succeeds").len(),
            3,
            "the account holds exactly the limit",
        );
        same(
            ok(store.audit_events(a.id, 100), "audit_events succeeds").len(),
            4,
            "only the winners' events are kept",
        );
    }
}

/// Many threads rename their own keys onto one identifier (in various
/// cases) while one inserts a new key with it: exactly one of them wins
/// each round, and the losers' keys are unchanged.
pub fn race_rename_onto_one_identifier(store: Arc<DynStore>) {
    let mut ids = Ids::new(86);
    let a = add_master(&*store, &mut ids);
    let inserter = THREADS - 1;
    let owned: Vec<KeyRecord> = (0..inserter)
        .map(|t| add_key(&*store, &mut ids, a.id, Channel::Rest, &format!("own-{t}")))
        .collect();
    let raced = rounds(
        |round| {
            let name = |t| spelling(&format!("target-{round}"), t);
            let new = record(ids.key(), a.id, Channel::Rest, &name(inserter));
            let names: Vec<String> = (0..THREADS).map(name).collect();
            (new, names)
        },
        |(new, names), t| {
            if t == inserter {
                return insert(&*store, new, 100_000);
            }
            // Each thread alone changes its key: it renames it from the
            // version it reads.
            let current = match store.key(owned[t].id) {
                Ok(Some(k)) => k,
                Ok(None) => {
                    return Err(StoreError::NotFound(crate::store::Entity::Key(owned[t].id)));
                }
                Err(e) => return Err(e),
            };
            let renamed = KeyRecord {
                identifier: names[t].clone(),
                version: current.version + 1,
                ..current.clone()
            };
            let e = about(&renamed, AuditKind::CredentialsChanged, "renamed");
            store.update_key(&renamed, current.version, &e)
        },
    );
    let rule = "concurrent writes moving onto one identifier: exactly one succeeds";
    for (round, ((new, _), answers)) in raced.iter().enumerate() {
        exactly(answers, 1, round, rule);
        only_ok_or(
            answers,
            |_| Want::Taken(Existing::Identifier),
            "the losers get AlreadyExists(Identifier)",
        );
        // The winner's key keeps the identifier unless it won a later
        // round too (and moved on).
        let winner = answers.iter().position(Result::is_ok).unwrap_or(0);
        let moved_on = winner != inserter
            && raced[round + 1..]
                .iter()
                .any(|(_, later)| later[winner].is_ok());
        let winner_id = if winner == inserter {
            new.id
        } else {
            owned[winner].id
        };
        same(
            ok(
                store.key_by_identifier(&format!("target-{round}")),
                "lookup succeeds",
            )
            .map(|k| k.id),
            (!moved_on).then_some(winner_id),
            "the identifier names the winner's key (unless it moved on in a later round)",
        );
    }
    for (t, k) in owned.iter().enumerate() {
        let won = raced.iter().filter(|(_, r)| r[t].is_ok()).count() as u64;
        same(
            ok(store.key(k.id), "key succeeds").map(|k| k.version),
            Some(1 + won),
            "a key is changed exactly by the renames that succeeded",
        );
    }
    let trail = ok(
        store.audit_events(a.id, usize::MAX),
        "audit_events succeeds",
    );
    same(
        trail.len(),
        1 + inserter + raced.len(),
        "only the winners' events are kept",
    );
}

/// Many threads update one key from the same version at once: exactly one
/// wins each round, the others get `Conflict` naming the version now
/// stored, and one event per round is kept.
pub fn race_compare_and_swap(store: Arc<DynStore>) {
    let mut ids = Ids::new(87);
    let a = add_master(&*store, &mut ids);
    let k = add_key(&*store, &mut ids, a.id, Channel::Http, "contended");
    let raced = rounds(
        |round| {
            (0..THREADS)
                .map(|t| KeyRecord {
                    version: round as u64 + 2,
                    secret_hash: hash(&format!("round-{round}-thread-{t}")),
                    ..k.clone()
                })
                .collect::<Vec<_>>()
        },
        |plan, t| {
            let next = &plan[t];
            let e = about(next, AuditKind::CredentialsChanged, &format!("thread {t}"));
            store.update_key(next, next.version - 1, &e)
        },
    );
    let rule = "concurrent updates from one version: exactly one succeeds";
    for (round, (_, answers)) in raced.iter().enumerate() {
        exactly(answers, 1, round, rule);
        let v = round as u64 + 1;
        only_ok_or(
            answers,
            |_| Want::Conflict {
                key: k.id,
                expected: v,
                found: v + 1,
            },
            "the losers get Conflict naming the version the winner wrote",
        );
    }
    let (last, answers) = &raced[raced.len() - 1];
    let winner = answers.iter().position(Result::is_ok).unwrap_or(0);
    same(
        ok(store.key(k.id), "key succeeds"),
        Some(last[winner].clone()),
        "the key is the last winner's",
    );
    same(
        ok(
            store.audit_events(a.id, usize::MAX),
            "audit_events succeeds",
        )
        .len(),
        2 + raced.len(),
        "only the winners' events are kept (one per round)",
    );
}

/// Many threads upgrade one key's hash from its current hash at once:
/// exactly one answers `true` each round, its hash is kept, and nothing else
/// changes.
pub fn race_upgrade_secret_hash(store: Arc<DynStore>) {
    let mut ids = Ids::new(88);
    let a = add_master(&*store, &mut ids);
    let raced = rounds(
        |round| {
            let k = add_key(
                &*store,
                &mut ids,
                a.id,
                Channel::Rest,
                &format!("upgraded-{round}"),
            );
            let hashes: Vec<crate::SecretHash> = (0..THREADS)
                .map(|t| hash(&format!("up-{round}-{t}")))
                .collect();
            (k, hashes)
        },
        |(k, hashes), t| store.upgrade_secret_hash(k.id, &k.secret_hash, &hashes[t]),
    );
    for (round, ((k, hashes), answers)) in raced.iter().enumerate() {
        let trues: Vec<usize> = (0..THREADS)
            .filter(|t| matches!(answers[*t], Ok(true)))
            .collect();
        holds(
            trues.len() == 1 && answers.iter().all(Result::is_ok),
            &format!(
                "concurrent upgrades from one current hash: exactly one answers true (round {round})"
            ),
            answers.iter().map(show).collect::<Vec<_>>(),
            "exactly one Ok(true), the others Ok(false)",
        );
        let winner = trues.first().copied().unwrap_or(0);
        same(
            ok(store.key(k.id), "key succeeds"),
            Some(KeyRecord {
                secret_hash: hashes[winner].clone(),
                ..k.clone()
            }),
            "the winner's hash is kept, and nothing else changes",
        );
    }
}

/// Many threads delete one key at once: exactly one succeeds each round,
/// the others get `NotFound`, and exactly one deletion event is kept.
pub fn race_delete_same_key(store: Arc<DynStore>) {
    let mut ids = Ids::new(89);
    let a = add_master(&*store, &mut ids);
    let raced = rounds(
        |round| {
            add_key(
                &*store,
                &mut ids,
                a.id,
                Channel::Rest,
                &format!("doomed-{round}"),
            )
        },
        |k, t| {
            store.delete_key(
                k.id,
                None,
                &about(k, AuditKind::KeyDeleted, &format!("by {t}")),
            )
        },
    );
    let rule = "concurrent deletes of one key: exactly one succeeds";
    for (round, (k, answers)) in raced.iter().enumerate() {
        exactly(answers, 1, round, rule);
        only_ok_or(
            answers,
            |_| Want::KeyNotFound(k.id),
            "the losers get NotFound",
        );
        same(ok(store.key(k.id), "key succeeds"), None, "the key is gone");
    }
    let deletions = ok(
        store.audit_events(a.id, usize::MAX),
        "audit_events succeeds",
    )
    .into_iter()
    .filter(|e| e.kind == AuditKind::KeyDeleted)
    .count();
    same(
        deletions,
        raced.len(),
        "exactly one deletion event per deleted key",
    );
}

/// Each round, a fresh key at version 1: half the threads update it from
/// version 1, the other half delete it at version 1, all at once. Exactly
/// one call wins: a deletion at a version never removes a key that moved
/// on, and an update never lands on a deleted key. The losers get
/// `Conflict` (a deletion after the update) or `NotFound` (anything after
/// the deletion).
pub fn race_delete_at_version_with_update(store: Arc<DynStore>) {
    let mut ids = Ids::new(90);
    let a = add_master(&*store, &mut ids);
    let raced = rounds(
        |round| {
            add_key(
                &*store,
                &mut ids,
                a.id,
                Channel::Rest,
                &format!("edited-or-deleted-{round}"),
            )
        },
        |k, t| {
            if t % 2 == 0 {
                let e = about(k, AuditKind::KeyDeleted, &format!("by {t}"));
                store.delete_key(k.id, Some(1), &e)
            } else {
                let v2 = next(k, &format!("thread {t}"));
                let e = about(&v2, AuditKind::CredentialsChanged, &format!("by {t}"));
                store.update_key(&v2, 1, &e)
            }
        },
    );
    let rule = "a deletion at a version and updates from it, at once: exactly one succeeds";
    for (round, (k, answers)) in raced.iter().enumerate() {
        exactly(answers, 1, round, rule);
        let winner = answers.iter().position(Result::is_ok).unwrap_or(0);
        let stored = ok(store.key(k.id), "key succeeds");
        if winner % 2 == 0 {
            same(stored, None, "the deletion won: the key is gone");
        } else {
            holds(
                stored.as_ref().is_some_and(|s| s.version == 2),
                "an update won: the key is kept, at the winner's version",
                &stored,
                "Some(key at version 2)",
            );
        }
        for (t, answer) in answers.iter().enumerate() {
            let fine = match answer {
                Ok(()) => true,
                Err(StoreError::NotFound(_)) => true,
                Err(StoreError::Conflict {
                    key,
                    expected: 1,
                    found: 2,
                }) => *key == k.id,
                Err(_) => false,
            };
            holds(
                fine,
                "the losers get NotFound or Conflict naming the versions",
                (t, show(answer)),
                "Ok, NotFound or Conflict { expected: 1, found: 2 }",
            );
        }
    }
    let kept = ok(
        store.audit_events(a.id, usize::MAX),
        "audit_events succeeds",
    )
    .len();
    same(
        kept,
        1 + 2 * raced.len(),
        "one event per key created and one per winner: none for a loser",
    );
}

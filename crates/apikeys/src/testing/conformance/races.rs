//! Races: every kind of write racing with itself. Threads start each round
//! together (see [`StartLine`]); of writes that would together break a
//! rule, exactly as many succeed as the rule allows, the others fail with
//! the rule's error, and only the winners' audit events are kept.
//!
//! A store whose check and write are separate critical sections loses these
//! races: the rounds are many and short so that, even on two cores, some
//! round lets two writers pass the check before either writes.

use super::support::*;
use crate::account::Account;
use crate::audit::AuditKind;
use crate::channel::Channel;
use crate::key::KeyRecord;
use crate::store::{DynStore, Existing, StoreError};
use crate::testing::START;
use crate::testing::records::{hash, key as record, master, opened};
use std::sync::Arc;
use time::Duration;

/// Threads racing in each round.
pub(crate) const THREADS: usize = 8;
/// Rounds of each race.
pub(crate) const ROUNDS: usize = 24;

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
    let plans: Vec<(Vec<Account>, Vec<KeyRecord>)> = (0..ROUNDS)
        .map(|round| {
            let id = ids.account();
            let accounts: Vec<Account> = (0..THREADS)
                .map(|t| Account {
                    created_at: START + Duration::seconds(t as i64),
                    ..master(id)
                })
                .collect();
            let keys = (0..THREADS)
                .map(|t| record(ids.key(), id, Channel::Ftp, &format!("acct-{round}-{t}")))
                .collect();
            (accounts, keys)
        })
        .collect();
    let answers = race(THREADS, ROUNDS, |round, t| {
        let (accounts, keys) = &plans[round];
        let a = &accounts[t];
        store.create_account(a, std::slice::from_ref(&keys[t]), &[opened(a)])
    });
    let rule = "concurrent creations of one account id: exactly one succeeds";
    for (round, answers) in answers.iter().enumerate() {
        exactly(answers, 1, round, rule);
        only_ok_or(
            answers,
            |_| Want::Taken(Existing::Account),
            "the losers of an account race get AlreadyExists(Account)",
        );
        let winner = answers.iter().position(Result::is_ok).unwrap_or(0);
        let (accounts, keys) = &plans[round];
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
    let plans: Vec<Vec<(Account, KeyRecord)>> = (0..ROUNDS)
        .map(|round| {
            (0..THREADS)
                .map(|t| {
                    let a = master(ids.account());
                    let k = record(
                        ids.key(),
                        a.id,
                        Channel::Http,
                        &spelling(&format!("initial-{round}"), t),
                    );
                    (a, k)
                })
                .collect()
        })
        .collect();
    let answers = race(THREADS, ROUNDS, |round, t| {
        let (a, k) = &plans[round][t];
        store.create_account(a, std::slice::from_ref(k), &[opened(a)])
    });
    let rule = "concurrent initial keys with one identifier: exactly one account succeeds";
    for (round, answers) in answers.iter().enumerate() {
        exactly(answers, 1, round, rule);
        only_ok_or(
            answers,
            |_| Want::Taken(Existing::Identifier),
            "the losers get AlreadyExists(Identifier)",
        );
        for (t, answer) in answers.iter().enumerate() {
            let (a, k) = &plans[round][t];
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
    let plans: Vec<Vec<KeyRecord>> = (0..ROUNDS)
        .map(|round| {
            accounts
                .iter()
                .enumerate()
                .map(|(t, a)| {
                    record(
                        ids.key(),
                        a.id,
                        Channel::Rest,
                        &spelling(&format!("race-{round}"), t),
                    )
                })
                .collect()
        })
        .collect();
    let answers = race(THREADS, ROUNDS, |round, t| {
        insert(&*store, &plans[round][t], 1000)
    });
    let rule = "concurrent inserts of one identifier: exactly one succeeds";
    for (round, answers) in answers.iter().enumerate() {
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
            Some(plans[round][winner].clone()),
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
        THREADS + ROUNDS,
        "only the winners' events are kept (one per round)",
    );
}

/// Many threads insert a key of one non-REST channel for one account at
/// once: exactly one wins each round.
pub fn race_same_channel(store: Arc<DynStore>) {
    let mut ids = Ids::new(84);
    let plans: Vec<(Account, Vec<KeyRecord>)> = (0..ROUNDS)
        .map(|round| {
            let a = add_master(&*store, &mut ids);
            let channel = [
                Channel::Ftp,
                Channel::Http,
                Channel::WebService,
                Channel::Email,
            ][round % 4];
            let keys = (0..THREADS)
                .map(|t| record(ids.key(), a.id, channel, &format!("chan-{round}-{t}")))
                .collect();
            (a, keys)
        })
        .collect();
    let answers = race(THREADS, ROUNDS, |round, t| {
        insert(&*store, &plans[round].1[t], 1)
    });
    let rule = "concurrent inserts on one channel of one account: exactly one succeeds";
    for (round, answers) in answers.iter().enumerate() {
        exactly(answers, 1, round, rule);
        let (a, keys) = &plans[round];
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
    let plans: Vec<(Account, Vec<KeyRecord>)> = (0..ROUNDS)
        .map(|round| {
            let a = add_master(&*store, &mut ids);
            let keys = (0..THREADS)
                .map(|t| record(ids.key(), a.id, Channel::Rest, &format!("rest-{round}-{t}")))
                .collect();
            (a, keys)
        })
        .collect();
    let answers = race(THREADS, ROUNDS, |round, t| {
        insert(&*store, &plans[round].1[t], 3)
    });
    let rule = "concurrent REST inserts under a limit of 3: exactly 3 succeed";
    for (round, answers) in answers.iter().enumerate() {
        exactly(answers, 3, round, rule);
        only_ok_or(
            answers,
            |_| Want::Taken(Existing::ChannelFull(Channel::Rest)),
            "the losers get AlreadyExists(ChannelFull(Rest))",
        );
        let a = &plans[round].0;
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
    let owned: Vec<KeyRecord> = (0..THREADS)
        .map(|t| add_key(&*store, &mut ids, a.id, Channel::Rest, &format!("own-{t}")))
        .collect();
    let plans: Vec<Vec<KeyRecord>> = (0..ROUNDS)
        .map(|round| {
            (0..THREADS)
                .map(|t| {
                    let target = spelling(&format!("target-{round}"), t);
                    if t == THREADS - 1 {
                        record(ids.key(), a.id, Channel::Rest, &target)
                    } else {
                        // Version `round + 1` if the thread lost every
                        // earlier round; corrected below from the store.
                        KeyRecord {
                            identifier: target,
                            ..owned[t].clone()
                        }
                    }
                })
                .collect()
        })
        .collect();
    let answers = race(THREADS, ROUNDS, |round, t| {
        let planned = &plans[round][t];
        if t == THREADS - 1 {
            return insert(&*store, planned, 1000);
        }
        // Renames start from the key as it is now (this thread alone
        // changes it).
        let current = match store.key(planned.id) {
            Ok(Some(k)) => k,
            Ok(None) => return Err(StoreError::NotFound(crate::store::Entity::Key(planned.id))),
            Err(e) => return Err(e),
        };
        let renamed = KeyRecord {
            identifier: planned.identifier.clone(),
            version: current.version + 1,
            ..current.clone()
        };
        store.update_key(
            &renamed,
            current.version,
            &about(&renamed, AuditKind::CredentialsChanged, "renamed"),
        )
    });
    let rule = "concurrent writes moving onto one identifier: exactly one succeeds";
    let all = &answers;
    for (round, answers) in answers.iter().enumerate() {
        exactly(answers, 1, round, rule);
        only_ok_or(
            answers,
            |_| Want::Taken(Existing::Identifier),
            "the losers get AlreadyExists(Identifier)",
        );
        // The winner's key keeps the identifier unless it won a later
        // round too (and moved on).
        let winner = answers.iter().position(Result::is_ok).unwrap_or(0);
        let moved_on =
            winner != THREADS - 1 && all[round + 1..].iter().any(|later| later[winner].is_ok());
        same(
            ok(
                store.key_by_identifier(&format!("target-{round}")),
                "lookup succeeds",
            )
            .map(|k| k.id),
            (!moved_on).then_some(plans[round][winner].id),
            "the identifier names the winner's key (unless it moved on in a later round)",
        );
    }
    // Each key was renamed once per round it won, and only then.
    for (t, k) in owned.iter().enumerate().take(THREADS - 1) {
        let won = answers.iter().filter(|r| r[t].is_ok()).count() as u64;
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
        1 + THREADS + ROUNDS,
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
    let plans: Vec<Vec<KeyRecord>> = (0..ROUNDS)
        .map(|round| {
            (0..THREADS)
                .map(|t| KeyRecord {
                    version: round as u64 + 2,
                    secret_hash: hash(&format!("round-{round}-thread-{t}")),
                    ..k.clone()
                })
                .collect()
        })
        .collect();
    let answers = race(THREADS, ROUNDS, |round, t| {
        let next = &plans[round][t];
        store.update_key(
            next,
            round as u64 + 1,
            &about(
                next,
                AuditKind::CredentialsChanged,
                &format!("r{round}t{t}"),
            ),
        )
    });
    let rule = "concurrent updates from one version: exactly one succeeds";
    for (round, answers) in answers.iter().enumerate() {
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
    let winner = answers[ROUNDS - 1]
        .iter()
        .position(Result::is_ok)
        .unwrap_or(0);
    same(
        ok(store.key(k.id), "key succeeds"),
        Some(plans[ROUNDS - 1][winner].clone()),
        "the key is the last winner's",
    );
    same(
        ok(
            store.audit_events(a.id, usize::MAX),
            "audit_events succeeds",
        )
        .len(),
        2 + ROUNDS,
        "only the winners' events are kept (one per round)",
    );
}

/// Many threads upgrade one key's hash from its current hash at once:
/// exactly one answers `true` each round, its hash is kept, and the
/// version stays.
pub fn race_upgrade_secret_hash(store: Arc<DynStore>) {
    let mut ids = Ids::new(88);
    let a = add_master(&*store, &mut ids);
    let keys: Vec<KeyRecord> = (0..ROUNDS)
        .map(|round| {
            add_key(
                &*store,
                &mut ids,
                a.id,
                Channel::Rest,
                &format!("upgraded-{round}"),
            )
        })
        .collect();
    let hashes: Vec<Vec<crate::SecretHash>> = (0..ROUNDS)
        .map(|round| {
            (0..THREADS)
                .map(|t| hash(&format!("up-{round}-{t}")))
                .collect()
        })
        .collect();
    let answers = race(THREADS, ROUNDS, |round, t| {
        let k = &keys[round];
        store.upgrade_secret_hash(k.id, &k.secret_hash, &hashes[round][t])
    });
    for (round, answers) in answers.iter().enumerate() {
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
            ok(store.key(keys[round].id), "key succeeds"),
            Some(KeyRecord {
                secret_hash: hashes[round][winner].clone(),
                ..keys[round].clone()
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
    let doomed: Vec<KeyRecord> = (0..ROUNDS)
        .map(|round| {
            add_key(
                &*store,
                &mut ids,
                a.id,
                Channel::Rest,
                &format!("doomed-{round}"),
            )
        })
        .collect();
    let answers = race(THREADS, ROUNDS, |round, t| {
        let k = &doomed[round];
        store.delete_key(
            k.id,
            &about(k, AuditKind::KeyDeleted, &format!("deleted {round} by {t}")),
        )
    });
    let rule = "concurrent deletes of one key: exactly one succeeds";
    for (round, answers) in answers.iter().enumerate() {
        exactly(answers, 1, round, rule);
        only_ok_or(
            answers,
            |_| Want::KeyNotFound(doomed[round].id),
            "the losers get NotFound",
        );
        same(
            ok(store.key(doomed[round].id), "key succeeds"),
            None,
            "the key is gone",
        );
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
        ROUNDS,
        "exactly one deletion event per deleted key",
    );
}

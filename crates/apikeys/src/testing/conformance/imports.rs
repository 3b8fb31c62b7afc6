//! External ids and bulk creation: what an import relies on. An external
//! id names at most one account and is compared exactly; a bulk creation
//! writes each account whole or not at all, whatever happens to the others.

use super::races::THREADS;
use super::support::*;
use crate::account::{Account, ExternalId, MAX_EXTERNAL_ID_CHARS};
use crate::channel::Channel;
use crate::key::KeyRecord;
use crate::store::{AccountRecords, DynStore, Existing};
use crate::testing::records::{key as record, master, opened};
use std::sync::Arc;

fn external(text: &str) -> ExternalId {
    ExternalId::new(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

fn with_external(account: Account, text: &str) -> Account {
    account.with_external_id(external(text))
}

/// The records of an account with its opening event and these keys.
fn records(account: &Account, keys: Vec<KeyRecord>) -> AccountRecords {
    AccountRecords {
        account: account.clone(),
        keys,
        events: vec![opened(account)],
    }
}

/// Nothing of `account` is stored: no account, no keys, no events.
#[track_caller]
fn absent(store: &DynStore, account: &Account, keys: &[KeyRecord], rule: &str) {
    same(ok(store.account(account.id), rule), None, rule);
    same(ok(store.keys_of_account(account.id), rule), vec![], rule);
    same(ok(store.audit_events(account.id, 100), rule), vec![], rule);
    for k in keys {
        same(ok(store.key(k.id), rule), None, rule);
    }
}

/// An external id reads back as written and finds its account, byte for
/// byte: ids differing in ASCII case, in Unicode normalisation, or by a
/// character a `LIKE` would take as a wildcard are different ids; the
/// longest id and one of multi-byte characters round-trip; an account
/// without one is found by none; suspension and a policy change keep it.
pub fn external_ids_round_trip_and_are_found_exactly(store: Arc<DynStore>) {
    let mut ids = Ids::new(301);
    let texts = [
        "CUST-0001",
        "cust-0001",
        "Cust-0001",
        "caf\u{e9}",
        "cafe\u{301}",
        "a%b",
        "a_b",
        "a\\b",
        "x'); DROP TABLE accounts; --",
        "名前 with spaces inside",
    ];
    // The longest: 128 four-byte characters, 512 bytes.
    let longest = "\u{1f511}".repeat(MAX_EXTERNAL_ID_CHARS);
    let mut accounts = Vec::new();
    for text in texts.iter().copied().chain([longest.as_str()]) {
        let a = with_external(master(ids.account()), text);
        open(&*store, &a);
        accounts.push(a);
    }
    let sub_account = with_external(sub(ids.account(), accounts[0].id), "sub of CUST-0001");
    open(&*store, &sub_account);
    accounts.push(sub_account);
    let plain = add_master(&*store, &mut ids);
    let rule = "an account reads back with its external id";
    for a in &accounts {
        same(ok(store.account(a.id), rule), Some(a.clone()), rule);
    }
    same(ok(store.account(plain.id), rule), Some(plain.clone()), rule);
    let rule = "an external id finds exactly its account, compared byte for byte";
    for a in &accounts {
        let e = a.external_id.clone().unwrap_or_else(|| external("?"));
        same(
            ok(store.account_by_external_id(&e), rule).map(|found| found.id),
            Some(a.id),
            &format!("{rule}: {e:?}"),
        );
    }
    let rule = "an external id nobody carries finds nothing (no folding, no pattern, no prefix)";
    for text in [
        "CUST-000",
        "CUST-00011",
        "cUST-0001",
        "CAF\u{c9}",
        "a%",
        "a_",
        "%",
        "_",
        "a\\\\b",
        "sub of cust-0001",
    ] {
        same(
            ok(store.account_by_external_id(&external(text)), rule),
            None,
            &format!("{rule}: {text:?}"),
        );
    }
    let rule = "suspension and a policy change keep the external id";
    let first = accounts[0].clone();
    ok(
        store.set_account_suspended(first.id, true, &opened(&first)),
        rule,
    );
    let found = present(
        ok(store.account_by_external_id(&external("CUST-0001")), rule),
        rule,
    );
    same(
        (found.suspended, found.external_id),
        (true, first.external_id),
        rule,
    );
}

/// Two accounts never carry one external id: the second creation is
/// `AlreadyExists(ExternalId)` and keeps nothing of itself. A taken
/// account id wins over a taken external id, which wins over a missing
/// parent and the initial keys' errors.
pub fn external_id_is_unique(store: Arc<DynStore>) {
    let mut ids = Ids::new(302);
    let first = with_external(master(ids.account()), "ACME");
    let key = record(ids.key(), first.id, Channel::Ftp, "acme-ftp");
    ok(
        store.create_account(&first, std::slice::from_ref(&key), &[opened(&first)]),
        "an account with an external id is stored",
    );
    let second = with_external(master(ids.account()), "ACME");
    let second_key = record(ids.key(), second.id, Channel::Rest, "acme-rest");
    refused(
        store.create_account(
            &second,
            std::slice::from_ref(&second_key),
            &[opened(&second)],
        ),
        Want::Taken(Existing::ExternalId),
        "an external id names one account: a taken one is AlreadyExists(ExternalId)",
    );
    absent(
        &*store,
        &second,
        &[second_key],
        "a creation refused for its external id keeps nothing",
    );
    let rule = "the account that has the external id keeps it";
    same(
        ok(store.account_by_external_id(&external("ACME")), rule).map(|a| a.id),
        Some(first.id),
        rule,
    );
    // Which error wins.
    let same_id = with_external(first.clone(), "ACME");
    refused(
        store.create_account(&same_id, &[], &[]),
        Want::Taken(Existing::Account),
        "a taken account id wins over a taken external id",
    );
    let ghost = ids.account();
    let orphan = with_external(sub(ids.account(), ghost), "ACME");
    refused(
        store.create_account(&orphan, &[], &[]),
        Want::Taken(Existing::ExternalId),
        "a taken external id wins over a missing parent",
    );
    let clashing_key = record(ids.key(), ids.account(), Channel::Ftp, "acme-ftp");
    let with_bad_key = with_external(master(clashing_key.account_id), "ACME");
    refused(
        store.create_account(&with_bad_key, &[clashing_key], &[]),
        Want::Taken(Existing::ExternalId),
        "a taken external id wins over the initial keys' errors",
    );
    // Case and accounts without one.
    let other_case = with_external(master(ids.account()), "acme");
    open(&*store, &other_case);
    add_master(&*store, &mut ids);
    add_master(&*store, &mut ids);
}

/// Threads create different accounts carrying one external id at once:
/// exactly one wins each round, the others get `AlreadyExists(ExternalId)`
/// and keep nothing.
pub fn race_same_external_id(store: Arc<DynStore>) {
    let mut ids = Ids::new(303);
    for round in 0..24 {
        let text = format!("raced-{round}");
        let accounts: Vec<Account> = (0..THREADS)
            .map(|_| with_external(master(ids.account()), &text))
            .collect();
        let keys: Vec<KeyRecord> = accounts
            .iter()
            .enumerate()
            .map(|(t, a)| record(ids.key(), a.id, Channel::Ftp, &format!("rx-{round}-{t}")))
            .collect();
        let (answers, _) = race(THREADS, 1, |_, t| {
            store.create_account(
                &accounts[t],
                std::slice::from_ref(&keys[t]),
                &[opened(&accounts[t])],
            )
        });
        let answers = &answers[0];
        let rule = "concurrent creations carrying one external id: exactly one succeeds";
        holds(
            wins(answers) == 1,
            rule,
            shown_all(answers),
            "exactly one Ok",
        );
        only_ok_or(
            answers,
            |_| Want::Taken(Existing::ExternalId),
            "the losers of an external-id race get AlreadyExists(ExternalId)",
        );
        let winner = answers.iter().position(Result::is_ok).unwrap_or(0);
        same(
            ok(store.account_by_external_id(&external(&text)), rule).map(|a| a.id),
            Some(accounts[winner].id),
            "the external id finds the winner",
        );
        for (t, a) in accounts.iter().enumerate() {
            if t != winner {
                absent(
                    &*store,
                    a,
                    std::slice::from_ref(&keys[t]),
                    "a loser of an external-id race keeps nothing",
                );
            }
        }
    }
}

/// A bulk creation answers one result per account, in order, each as
/// `create_account` would; each account is written whole or not at all;
/// the others go in whatever one of them breaks; a sub-account may name a
/// master created earlier in the same call. Large batches behave like
/// small ones, and an empty one writes nothing.
pub fn create_accounts_is_all_or_nothing_per_account(store: Arc<DynStore>) {
    let mut ids = Ids::new(304);
    same(
        ok(store.create_accounts(&[]), "an empty batch succeeds").len(),
        0,
        "an empty batch answers nothing",
    );
    let taken = with_external(master(ids.account()), "bulk-taken");
    open(&*store, &taken);
    let answers = ok(
        store.create_accounts(&[records(&taken, vec![])]),
        "a batch whose only account is taken still answers",
    );
    same(answers.len(), 1, "one answer per account");
    for r in answers {
        refused(
            r,
            Want::Taken(Existing::Account),
            "a batch answers a taken account id as create_account would",
        );
    }
    let stored_before = ok(store.accounts(None, 10_000), "accounts succeeds").len();

    let mut batch: Vec<AccountRecords> = Vec::new();
    let mut expected: Vec<Option<Want>> = Vec::new();
    // A master with keys, and its sub-account right after it.
    let m = with_external(master(ids.account()), "bulk-master");
    batch.push(records(
        &m,
        vec![
            record(ids.key(), m.id, Channel::Ftp, "bulk-ftp"),
            record(ids.key(), m.id, Channel::Rest, "bulk-rest-1"),
            record(ids.key(), m.id, Channel::Rest, "bulk-rest-2"),
        ],
    ));
    expected.push(None);
    let s = with_external(sub(ids.account(), m.id), "bulk-sub");
    batch.push(records(
        &s,
        vec![record(ids.key(), s.id, Channel::Email, "bulk-sub-email")],
    ));
    expected.push(None);
    // An identifier another account of the batch took earlier.
    let dup = master(ids.account());
    batch.push(records(
        &dup,
        vec![
            record(ids.key(), dup.id, Channel::Http, "bulk-fresh"),
            record(ids.key(), dup.id, Channel::Ftp, "BULK-FTP"),
        ],
    ));
    expected.push(Some(Want::Taken(Existing::Identifier)));
    // An external id stored before the call.
    let clash = with_external(master(ids.account()), "bulk-taken");
    batch.push(records(&clash, vec![]));
    expected.push(Some(Want::Taken(Existing::ExternalId)));
    // An external id another account of the batch carries.
    let twin = with_external(master(ids.account()), "bulk-master");
    batch.push(records(&twin, vec![]));
    expected.push(Some(Want::Taken(Existing::ExternalId)));
    // A parent in no line.
    let ghost = ids.account();
    let orphan = sub(ids.account(), ghost);
    batch.push(records(&orphan, vec![]));
    expected.push(Some(Want::AccountNotFound(ghost)));
    // Two keys of one channel.
    let full = master(ids.account());
    batch.push(records(
        &full,
        vec![
            record(ids.key(), full.id, Channel::WebService, "bulk-ws-1"),
            record(ids.key(), full.id, Channel::WebService, "bulk-ws-2"),
        ],
    ));
    expected.push(Some(Want::Taken(Existing::ChannelFull(
        Channel::WebService,
    ))));
    // Enough good accounts after the bad ones that a store writing many
    // rows per statement has several statements to write.
    for i in 0..300 {
        let a = with_external(master(ids.account()), &format!("bulk-{i:04}"));
        let keys = vec![
            record(ids.key(), a.id, Channel::Ftp, &format!("bulk-{i}-ftp")),
            record(ids.key(), a.id, Channel::Http, &format!("bulk-{i}-http")),
        ];
        batch.push(records(&a, keys));
        expected.push(None);
    }
    // The sub-account of a master refused in this batch is refused too.
    let sub_of_refused = sub(ids.account(), twin.id);
    batch.push(records(&sub_of_refused, vec![]));
    expected.push(Some(Want::AccountNotFound(twin.id)));

    let answers = ok(store.create_accounts(&batch), "a bulk creation answers");
    same(answers.len(), batch.len(), "one answer per account");
    let mut written = 0;
    for ((r, want), a) in answers.into_iter().zip(&expected).zip(&batch) {
        let rule = format!(
            "a bulk creation answers each account as create_account would ({:?})",
            a.account.external_id
        );
        match want {
            None => {
                ok(r, &rule);
                written += 1;
                same(
                    ok(store.account(a.account.id), &rule),
                    Some(a.account.clone()),
                    "each account of a batch is written whole",
                );
                same(
                    ok(store.keys_of_account(a.account.id), &rule).len(),
                    a.keys.len(),
                    "each account of a batch is written with all its keys",
                );
                same(
                    ok(store.audit_events(a.account.id, 100), &rule).len(),
                    a.events.len(),
                    "each account of a batch is written with its events",
                );
            }
            Some(want) => {
                refused(r, *want, &rule);
                absent(
                    &*store,
                    &a.account,
                    &a.keys,
                    "a refused account of a batch keeps nothing",
                );
            }
        }
    }
    same(
        ok(store.accounts(None, 10_000), "accounts succeeds").len(),
        stored_before + written,
        "a batch writes exactly its accepted accounts",
    );
    let rule = "a batch's accounts are found by their external ids";
    same(
        ok(store.account_by_external_id(&external("bulk-0299")), rule).map(|a| a.id),
        Some(batch[batch.len() - 2].account.id),
        rule,
    );
    // Rerunning the batch refuses every account, and writes nothing.
    let again = ok(store.create_accounts(&batch), "a rerun answers");
    holds(
        again.iter().all(Result::is_err),
        "a rerun of a written batch refuses every account",
        again.iter().map(show).collect::<Vec<_>>(),
        "every answer Err",
    );
    same(
        ok(store.accounts(None, 10_000), "accounts succeeds").len(),
        stored_before + written,
        "a rerun writes nothing",
    );
}

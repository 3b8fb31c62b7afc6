//! The service's account listings, on the in-memory store: a master's
//! sub-accounts (who may ask, in which order), and the operator's pages of
//! every account (the cursor, the limit, who may not ask).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use apikeys::testing::{Fixture, START};
use apikeys::{Account, AccountId, Actor, Error, NewAccount};
use common::{memory, op};
use proptest::prelude::*;
use std::collections::BTreeSet;
use time::Duration;

fn not_found(r: Result<Vec<Account>, Error>, id: AccountId) {
    match r {
        Err(Error::AccountNotFound(got)) => assert_eq!(got, id),
        other => panic!("expected AccountNotFound({id}), got {other:?}"),
    }
}

/// A master's sub-accounts, oldest first whatever the order they were
/// opened in, to the operator and to the master; another master (or a
/// sibling, or the sub-account itself asking about its master) gets "not
/// found", exactly as for an account that does not exist; a sub-account's
/// own listing is empty.
#[test]
fn sub_accounts_oldest_first_to_whoever_may_see_the_master() {
    let f = Fixture::new(memory(), 401);
    let m = f.master();
    let other = f.master();
    let open_sub = |parent: AccountId, at| {
        f.keys
            .open_account(op(), NewAccount::sub(parent).created_at(at))
            .unwrap()
            .account
    };
    let newest = open_sub(m.id, START + Duration::days(2));
    let oldest = open_sub(m.id, START - Duration::days(3));
    let middle = open_sub(m.id, START);
    let others = open_sub(other.id, START - Duration::days(9));
    let expected = vec![oldest.clone(), middle.clone(), newest.clone()];

    assert_eq!(f.keys.sub_accounts(op(), m.id).unwrap(), expected);
    assert_eq!(
        f.keys.sub_accounts(Actor::Account(m.id), m.id).unwrap(),
        expected
    );
    assert_eq!(
        f.keys.sub_accounts(op(), other.id).unwrap(),
        vec![others.clone()]
    );
    // Nobody else learns anything: the answer for an absent account.
    for stranger in [other.id, others.id, oldest.id, middle.id] {
        not_found(f.keys.sub_accounts(Actor::Account(stranger), m.id), m.id);
    }
    let absent: AccountId = "acc_0123456789abcdef0123456789abcdef".parse().unwrap();
    not_found(f.keys.sub_accounts(op(), absent), absent);
    // A sub-account has none, whoever asks (among those who may see it).
    for asker in [op(), Actor::Account(m.id), Actor::Account(middle.id)] {
        assert_eq!(f.keys.sub_accounts(asker, middle.id).unwrap(), vec![]);
    }
    // A sibling may not see it either.
    not_found(
        f.keys.sub_accounts(Actor::Account(oldest.id), middle.id),
        middle.id,
    );
    // A master without sub-accounts.
    let lonely = f.master();
    assert_eq!(f.keys.sub_accounts(op(), lonely.id).unwrap(), vec![]);
}

/// Only the operator pages through every account: an account, master or
/// sub, is `Forbidden`, and nothing about the store is read first.
#[test]
fn only_the_operator_lists_every_account() {
    let f = Fixture::new(memory(), 402);
    let m = f.master();
    let s = f.sub(m.id);
    for me in [m.id, s.id] {
        match f.keys.accounts(Actor::Account(me), None, 10) {
            Err(Error::Forbidden { actor, .. }) => assert_eq!(actor, Actor::Account(me)),
            other => panic!("expected Forbidden, got {other:?}"),
        }
    }
    let (page, next) = f.keys.accounts(op(), None, 10).unwrap();
    let mut ids = vec![m.id, s.id];
    ids.sort();
    assert_eq!(page.iter().map(|a| a.id).collect::<Vec<_>>(), ids);
    assert_eq!(next, None, "the last page has no next cursor");
}

/// The cursor: a full page names its last id as the next cursor only when
/// more accounts follow; limit 0 is an empty page without a cursor; an
/// empty store is one empty page.
#[test]
fn pages_and_their_cursor() {
    let f = Fixture::new(memory(), 403);
    assert_eq!(f.keys.accounts(op(), None, 5).unwrap(), (vec![], None));
    let mut ids: Vec<AccountId> = (0..5).map(|_| f.master().id).collect();
    ids.sort();
    let (page, next) = f.keys.accounts(op(), None, 2).unwrap();
    assert_eq!(page.iter().map(|a| a.id).collect::<Vec<_>>(), ids[..2]);
    assert_eq!(next, Some(ids[1]));
    let (page, next) = f.keys.accounts(op(), Some(ids[1]), 3).unwrap();
    assert_eq!(page.iter().map(|a| a.id).collect::<Vec<_>>(), ids[2..]);
    assert_eq!(next, None, "exactly the rest: no cursor to an empty page");
    let (page, next) = f.keys.accounts(op(), Some(ids[1]), 2).unwrap();
    assert_eq!(page.len(), 2);
    assert_eq!(next, Some(ids[3]));
    assert_eq!(f.keys.accounts(op(), None, 0).unwrap(), (vec![], None));
    assert_eq!(
        f.keys.accounts(op(), Some(ids[4]), 10).unwrap(),
        (vec![], None)
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// For every set of accounts and every limit, following the cursors
    /// from the first page walks every account exactly once, in id order,
    /// each page holding at most the limit; accounts opened while walking
    /// never make a page repeat an account.
    #[test]
    fn walking_the_pages_gives_every_account_once(
        masters in 0usize..12,
        subs in proptest::collection::vec(0usize..12, 0..8),
        limit in 1usize..6,
        seed in any::<u64>(),
        opened_meanwhile in 0usize..4,
    ) {
        let f = Fixture::new(memory(), seed);
        let mut ms: Vec<AccountId> = (0..masters).map(|_| f.master().id).collect();
        let mut expected: BTreeSet<AccountId> = ms.iter().copied().collect();
        if !ms.is_empty() {
            for i in &subs {
                expected.insert(f.sub(ms[i % ms.len()]).id);
            }
        }
        let mut walked: Vec<AccountId> = Vec::new();
        let mut after = None;
        for pages in 0..100 {
            if pages < opened_meanwhile {
                let id = f.master().id;
                ms.push(id);
                // Ahead of the cursor it is walked too; behind, it is not.
                if after.is_none_or(|c| id > c) {
                    expected.insert(id);
                }
            }
            let (page, next) = f.keys.accounts(op(), after, limit).unwrap();
            prop_assert!(page.len() <= limit);
            walked.extend(page.iter().map(|a| a.id));
            match next {
                Some(n) => {
                    prop_assert_eq!(Some(n), page.last().map(|a| a.id));
                    after = Some(n);
                }
                None => break,
            }
        }
        let mut sorted = walked.clone();
        sorted.sort();
        sorted.dedup();
        prop_assert_eq!(&sorted, &walked, "in id order, each once");
        prop_assert_eq!(walked.into_iter().collect::<BTreeSet<_>>(), expected);
    }
}

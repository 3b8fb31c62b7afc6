//! What every test of the suite builds on: assertions that say which rule
//! broke and how, records, snapshots of what a store holds, and a start
//! line for racing threads.
//!
//! Every helper is `#[track_caller]`: a failure points at the line of the
//! test that found it, and its message names the rule of the contract, what
//! the store answered and what the contract expected.

use super::super::records::{event, hash, key as record, master};
use crate::account::{Account, AccountKind};
use crate::audit::{AuditEvent, AuditKind};
use crate::channel::Channel;
use crate::id::{AccountId, KeyId};
use crate::key::KeyRecord;
use crate::store::{DynStore, Entity, Existing, StoreError, Unstorable};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::fmt::Debug;
use std::sync::atomic::{AtomicUsize, Ordering};
use time::{OffsetDateTime, UtcOffset};

/// The earliest instant every store keeps: `i64::MIN` nanoseconds.
pub(crate) const EARLIEST: OffsetDateTime =
    time::macros::datetime!(1677-09-21 0:12:43.145224192 UTC);
/// The latest instant every store keeps: `i64::MAX` nanoseconds.
pub(crate) const LATEST: OffsetDateTime =
    time::macros::datetime!(2262-04-11 23:47:16.854775807 UTC);
/// The largest version every store keeps.
pub(crate) const MAX_VERSION: u64 = i64::MAX as u64;

// ----- failing well ----------------------------------------------------

/// Fails the test: the rule broken, what came back, what was expected.
#[track_caller]
pub(crate) fn fail(rule: &str, got: impl Debug, expected: impl Debug) -> ! {
    panic!("store contract broken: {rule}\n     got: {got:#?}\nexpected: {expected:#?}")
}

/// `got` equals `expected`, or the test fails naming `rule`.
#[track_caller]
pub(crate) fn same<T: PartialEq + Debug>(got: T, expected: T, rule: &str) {
    if got != expected {
        fail(rule, got, expected);
    }
}

/// `condition` holds, or the test fails naming `rule` and showing `got`.
#[track_caller]
pub(crate) fn holds(condition: bool, rule: &str, got: impl Debug, expected: &str) {
    if !condition {
        fail(rule, got, Shown(expected.to_owned()));
    }
}

/// The value of an `Ok`, or the test fails naming `rule` and showing the
/// error.
#[track_caller]
pub(crate) fn ok<T: Debug>(result: Result<T, StoreError>, rule: &str) -> T {
    match result {
        Ok(v) => v,
        Err(e) => fail(rule, Shown(describe(&e)), Shown("Ok(_)".into())),
    }
}

/// The value in `found`, or the test fails naming `rule`: something the
/// store was given is missing.
#[track_caller]
pub(crate) fn present<T: Debug>(found: Option<T>, rule: &str) -> T {
    match found {
        Some(v) => v,
        None => fail(rule, Shown("None".into()), Shown("Some(_)".into())),
    }
}

/// Text shown as is in a failure message.
pub(crate) struct Shown(pub(crate) String);

impl Debug for Shown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An error as a failure message shows it: its kind and its message, with
/// the source of a backend error.
pub(crate) fn describe(e: &StoreError) -> String {
    let mut text = format!("Err({e:?}): {e}");
    if let StoreError::Backend { source } = e {
        text.push_str(&format!(" (source: {source:?})"));
    }
    text
}

/// A result as a failure message shows it.
pub(crate) fn show<T: Debug>(r: &Result<T, StoreError>) -> Shown {
    Shown(match r {
        Ok(v) => format!("Ok({v:?})"),
        Err(e) => describe(e),
    })
}

/// The error a write should be refused with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Want {
    /// `NotFound` naming this account.
    AccountNotFound(AccountId),
    /// `NotFound` naming this key.
    KeyNotFound(KeyId),
    /// `AlreadyExists` of this kind.
    Taken(Existing),
    /// `Conflict` with exactly these values.
    Conflict {
        key: KeyId,
        expected: u64,
        found: u64,
    },
    /// A backend error whose source is `Unstorable::Instant` of this instant.
    UnstorableInstant(OffsetDateTime),
    /// A backend error whose source is `Unstorable::Version` of this version.
    UnstorableVersion(u64),
}

impl Want {
    /// Whether `e` is this error.
    pub(crate) fn matches(&self, e: &StoreError) -> bool {
        match (self, e) {
            (Want::AccountNotFound(a), StoreError::NotFound(Entity::Account(b))) => a == b,
            (Want::KeyNotFound(a), StoreError::NotFound(Entity::Key(b))) => a == b,
            (Want::Taken(a), StoreError::AlreadyExists(b)) => a == b,
            (
                Want::Conflict {
                    key,
                    expected,
                    found,
                },
                StoreError::Conflict {
                    key: k,
                    expected: x,
                    found: f,
                },
            ) => (key, expected, found) == (k, x, f),
            (Want::UnstorableInstant(t), StoreError::Backend { source }) => {
                source.downcast_ref::<Unstorable>() == Some(&Unstorable::Instant(*t))
            }
            (Want::UnstorableVersion(v), StoreError::Backend { source }) => {
                source.downcast_ref::<Unstorable>() == Some(&Unstorable::Version(*v))
            }
            _ => false,
        }
    }
}

/// `result` is the error `want`, or the test fails naming `rule`.
#[track_caller]
pub(crate) fn refused<T: Debug>(result: Result<T, StoreError>, want: Want, rule: &str) {
    match &result {
        Err(e) if want.matches(e) => {}
        _ => fail(rule, show(&result), Err::<(), _>(want)),
    }
}

// ----- records ---------------------------------------------------------

/// Ids from a seeded generator: the same in every run of a test.
pub(crate) struct Ids(ChaCha20Rng);

impl Ids {
    pub(crate) fn new(seed: u64) -> Self {
        Ids(ChaCha20Rng::seed_from_u64(seed))
    }
    pub(crate) fn account(&mut self) -> AccountId {
        AccountId::random(&mut self.0)
    }
    pub(crate) fn key(&mut self) -> KeyId {
        KeyId::random(&mut self.0)
    }
}

/// A sub-account of `parent` created at the fixtures' start.
pub(crate) fn sub(id: AccountId, parent: AccountId) -> Account {
    Account {
        kind: AccountKind::Sub { parent },
        ..master(id)
    }
}

/// Stores `account` with its `account_opened` event, which must succeed.
#[track_caller]
pub(crate) fn open(store: &DynStore, account: &Account) {
    ok(
        store.create_account(account, &[], &[super::super::records::opened(account)]),
        "a valid new account is stored",
    );
}

/// A new master account, stored.
#[track_caller]
pub(crate) fn add_master(store: &DynStore, ids: &mut Ids) -> Account {
    let a = master(ids.account());
    open(store, &a);
    a
}

/// A new sub-account of `parent`, stored.
#[track_caller]
pub(crate) fn add_sub(store: &DynStore, ids: &mut Ids, parent: AccountId) -> Account {
    let a = sub(ids.account(), parent);
    open(store, &a);
    a
}

/// `insert_key` with the key's `key_created` event.
pub(crate) fn insert(store: &DynStore, key: &KeyRecord, max: u32) -> Result<(), StoreError> {
    store.insert_key(key, max, &created_event(key))
}

/// The `key_created` event of `key`, detail "created".
pub(crate) fn created_event(key: &KeyRecord) -> AuditEvent {
    event(key.account_id, Some(key), AuditKind::KeyCreated, "created")
}

/// Inserts `key`, which must succeed.
#[track_caller]
pub(crate) fn put(store: &DynStore, key: &KeyRecord, max: u32) {
    ok(insert(store, key, max), "a valid new key is stored");
}

/// A new key of `account`, stored (the channel's limit is 1, REST's as
/// high as it goes).
#[track_caller]
pub(crate) fn add_key(
    store: &DynStore,
    ids: &mut Ids,
    account: AccountId,
    channel: Channel,
    identifier: &str,
) -> KeyRecord {
    let k = record(ids.key(), account, channel, identifier);
    put(store, &k, limit(channel));
    k
}

/// A limit for a channel: 1, or for REST the highest there is.
pub(crate) fn limit(channel: Channel) -> u32 {
    if channel.allows_several_keys() {
        u32::MAX
    } else {
        1
    }
}

/// `key` at its next version, with a new hash made from `seed`.
pub(crate) fn next(key: &KeyRecord, seed: &str) -> KeyRecord {
    KeyRecord {
        secret_hash: hash(seed),
        version: key.version + 1,
        changed_at: key.changed_at + time::Duration::seconds(1),
        ..key.clone()
    }
}

/// An event about `key` of this kind and detail.
pub(crate) fn about(key: &KeyRecord, kind: AuditKind, detail: &str) -> AuditEvent {
    event(key.account_id, Some(key), kind, detail)
}

/// Updates `key` (from its version minus one), which must succeed.
#[track_caller]
pub(crate) fn update(store: &DynStore, key: &KeyRecord, detail: &str) {
    ok(
        store.update_key(
            key,
            key.version - 1,
            &about(key, AuditKind::CredentialsChanged, detail),
        ),
        "an update from the stored version is applied",
    );
}

/// Whether every instant of `key` is in UTC.
pub(crate) fn key_in_utc(k: &KeyRecord) -> bool {
    k.created_at.offset() == UtcOffset::UTC
        && k.changed_at.offset() == UtcOffset::UTC
        && k.previous_secret
            .as_ref()
            .is_none_or(|p| p.expires_at.offset() == UtcOffset::UTC)
}

// ----- what a store holds ---------------------------------------------

/// Everything a store answers about some accounts, keys and identifiers:
/// taken before and after a refused write, it shows whether the write left
/// a trace.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Snapshot {
    pub(crate) accounts: Vec<(AccountId, Option<Account>)>,
    pub(crate) keys: Vec<(KeyId, Option<KeyRecord>)>,
    pub(crate) identifiers: Vec<(String, Option<KeyRecord>)>,
    pub(crate) listings: Vec<(AccountId, Vec<KeyRecord>)>,
    pub(crate) trails: Vec<(AccountId, Vec<AuditEvent>)>,
}

/// The accounts, keys and identifiers a [`Snapshot`] looks at.
#[derive(Clone, Debug, Default)]
pub(crate) struct Watch {
    pub(crate) accounts: Vec<AccountId>,
    pub(crate) keys: Vec<KeyId>,
    pub(crate) identifiers: Vec<String>,
}

impl Watch {
    /// Watches an account.
    pub(crate) fn account(&mut self, a: &Account) -> &mut Self {
        self.accounts.push(a.id);
        self
    }
    /// Watches a key, its identifier and its account.
    pub(crate) fn key(&mut self, k: &KeyRecord) -> &mut Self {
        self.keys.push(k.id);
        self.identifiers.push(k.identifier.clone());
        self.accounts.push(k.account_id);
        self
    }
}

impl Snapshot {
    /// What `store` answers now about everything `watch` names.
    #[track_caller]
    pub(crate) fn take(store: &DynStore, watch: &Watch) -> Snapshot {
        let read = "reads of a healthy store succeed";
        Snapshot {
            accounts: watch
                .accounts
                .iter()
                .map(|a| (*a, ok(store.account(*a), read)))
                .collect(),
            keys: watch
                .keys
                .iter()
                .map(|k| (*k, ok(store.key(*k), read)))
                .collect(),
            identifiers: watch
                .identifiers
                .iter()
                .map(|i| (i.clone(), ok(store.key_by_identifier(i), read)))
                .collect(),
            listings: watch
                .accounts
                .iter()
                .map(|a| (*a, ok(store.keys_of_account(*a), read)))
                .collect(),
            trails: watch
                .accounts
                .iter()
                .map(|a| (*a, ok(store.audit_events(*a, usize::MAX), read)))
                .collect(),
        }
    }

    /// The store answers exactly as when `self` was taken, or the test
    /// fails naming `rule` and the first answer that changed.
    #[track_caller]
    pub(crate) fn unchanged(&self, store: &DynStore, watch: &Watch, rule: &str) {
        let now = Snapshot::take(store, watch);
        fn first<T: PartialEq + Debug, U: PartialEq + Debug>(
            what: &str,
            now: &[(T, U)],
            before: &[(T, U)],
        ) -> Option<(String, String)> {
            now.iter().zip(before).find(|(n, b)| n != b).map(|(n, b)| {
                (
                    format!("{what} {:?} now answers {:#?}", n.0, n.1),
                    format!("{what} {:?} answering as before: {:#?}", b.0, b.1),
                )
            })
        }
        let diff = first("account", &now.accounts, &self.accounts)
            .or_else(|| first("key", &now.keys, &self.keys))
            .or_else(|| first("identifier", &now.identifiers, &self.identifiers))
            .or_else(|| first("keys of account", &now.listings, &self.listings))
            .or_else(|| first("audit events of account", &now.trails, &self.trails));
        if let Some((got, expected)) = diff {
            fail(rule, Shown(got), Shown(expected));
        }
    }
}

// ----- racing threads ----------------------------------------------------

/// A start line that releases every waiting thread at once (they spin, so
/// none waits for a wake-up), reusable round after round.
pub(crate) struct StartLine {
    threads: usize,
    waiting: AtomicUsize,
    round: AtomicUsize,
}

impl StartLine {
    pub(crate) fn new(threads: usize) -> Self {
        StartLine {
            threads,
            waiting: AtomicUsize::new(0),
            round: AtomicUsize::new(0),
        }
    }

    /// Waits until all threads are here.
    pub(crate) fn wait(&self) {
        let round = self.round.load(Ordering::SeqCst);
        if self.waiting.fetch_add(1, Ordering::SeqCst) + 1 == self.threads {
            self.waiting.store(0, Ordering::SeqCst);
            self.round.fetch_add(1, Ordering::SeqCst);
            return;
        }
        let mut spins = 0u32;
        while self.round.load(Ordering::SeqCst) == round {
            spins += 1;
            if spins.is_multiple_of(64) {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }
}

/// Runs `rounds` rounds of `threads` threads: in each round every thread
/// waits at a start line, then makes its call `f(round, thread)`. Returns
/// the answers, by round then thread, and for each round whether two calls
/// were in flight at once (on a loaded machine the threads of a round may
/// well run one after the other). The calls must not panic (a thread that
/// panics leaves the others waiting): they only call the store, and the
/// caller checks the answers afterwards.
#[track_caller]
pub(crate) fn race<T: Send>(
    threads: usize,
    rounds: usize,
    f: impl Fn(usize, usize) -> T + Sync,
) -> (Vec<Vec<T>>, Vec<bool>) {
    let start = StartLine::new(threads);
    let in_flight: Vec<AtomicUsize> = (0..rounds).map(|_| AtomicUsize::new(0)).collect();
    let most: Vec<AtomicUsize> = (0..rounds).map(|_| AtomicUsize::new(0)).collect();
    let answers: Vec<Vec<T>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (start, f, in_flight, most) = (&start, &f, &in_flight, &most);
                s.spawn(move || {
                    (0..rounds)
                        .map(|round| {
                            start.wait();
                            let now = in_flight[round].fetch_add(1, Ordering::SeqCst) + 1;
                            most[round].fetch_max(now, Ordering::SeqCst);
                            let answer = f(round, t);
                            in_flight[round].fetch_sub(1, Ordering::SeqCst);
                            answer
                        })
                        .collect::<Vec<T>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a racing thread panicked"))
            .collect()
    });
    // By thread then round, turned into by round then thread.
    let mut by_round: Vec<Vec<T>> = (0..rounds).map(|_| Vec::with_capacity(threads)).collect();
    for per_thread in answers {
        for (round, answer) in per_thread.into_iter().enumerate() {
            by_round[round].push(answer);
        }
    }
    let overlapped = most.iter().map(|m| m.load(Ordering::SeqCst) > 1).collect();
    (by_round, overlapped)
}

/// How many answers are `Ok`.
pub(crate) fn wins<T>(answers: &[Result<T, StoreError>]) -> usize {
    answers.iter().filter(|r| r.is_ok()).count()
}

/// Every answer is `Ok` or the error `want`, or the test fails naming
/// `rule`.
#[track_caller]
pub(crate) fn only_ok_or<T: Debug>(
    answers: &[Result<T, StoreError>],
    want: impl Fn(usize) -> Want,
    rule: &str,
) {
    for (i, a) in answers.iter().enumerate() {
        if let Err(e) = a
            && !want(i).matches(e)
        {
            fail(rule, show(a), Shown(format!("Ok(_) or Err({:?})", want(i))));
        }
    }
}

/// Shows racing answers.
pub(crate) fn shown_all<T: Debug>(answers: &[Result<T, StoreError>]) -> Vec<Shown> {
    answers.iter().map(show).collect()
}

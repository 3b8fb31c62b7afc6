//! Model-based tests: random sequences of store operations, run against the
//! store and against a plain model of the contract written here, comparing
//! every answer and the final state; and random operations from several
//! threads at once, whose outcome is checked against what the contract
//! allows of any order.
//!
//! Each proptest case works in a namespace of its own (its own account and
//! key ids, identifiers with a prefix of its own), so the cases share the
//! one store they are given without meeting.

use super::support::*;
use crate::account::{Account, AccountKind, Actor};
use crate::audit::{AuditEvent, AuditKind};
use crate::channel::Channel;
use crate::hashing::SecretHash;
use crate::id::{AccountId, KeyId};
use crate::key::{KeyRecord, PreviousSecret};
use crate::store::{DynStore, Existing, StoreError};
use crate::testing::START;
use crate::testing::records::hash;
use crate::whitelist::Whitelist;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use time::{Duration, OffsetDateTime};

/// Sequences run per call of [`model_based_sequences`].
const CASES: u32 = 12;
/// Rounds of threads per call of [`model_based_concurrent`].
const CONCURRENT_CASES: u32 = 4;
/// Accounts and keys in a sequence's universe.
const ACCOUNTS: usize = 4;
const KEYS: usize = 6;
/// Identifiers of a universe, before the namespace's prefix and a case
/// variant: some with the characters `LIKE` and `GLOB` treat specially,
/// some equal to others but for those characters.
const NAMES: [&str; 7] = ["abc", "a_c", "abd", "a%", "ab", "a.c", "ünï"];

/// A namespace per case, in every process: ids and prefixes never repeat.
fn namespace() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    // The standard library's randomly seeded hasher, so that two processes
    // on one database differ too.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u64(NEXT.fetch_add(1, Ordering::SeqCst));
    h.finish()
}

/// The ids and names of one case.
#[derive(Clone, Debug)]
struct Universe {
    ns: u64,
    prefix: String,
}

impl Universe {
    fn new() -> Self {
        let ns = namespace();
        Universe {
            ns,
            prefix: format!("m{:x}-", ns & 0xffff_ffff_ffff),
        }
    }
    fn id_bytes(&self, tag: u8, n: usize) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0] = tag;
        b[1..9].copy_from_slice(&self.ns.to_be_bytes());
        b[9..13].copy_from_slice(&(n as u32).to_be_bytes());
        b
    }
    fn account(&self, n: usize) -> AccountId {
        AccountId::from_bytes(self.id_bytes(0xa0, n))
    }
    fn key(&self, n: usize) -> KeyId {
        KeyId::from_bytes(self.id_bytes(0xb0 + (n % 7) as u8, n))
    }
    fn identifier(&self, name: Name) -> String {
        let base = format!("{}{}", self.prefix, NAMES[name.0 % NAMES.len()]);
        base.chars()
            .enumerate()
            .map(|(i, c)| {
                if name.1 >> (i % 8) & 1 == 1 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect()
    }
}

/// An identifier: which name, and which letters upper-case.
#[derive(Clone, Copy, Debug)]
struct Name(usize, u8);

/// The instants operations use: ties, neighbours, both ends of the range,
/// and one outside it.
fn instant(n: usize) -> OffsetDateTime {
    match n {
        0 | 1 => START,
        2 => START + Duration::nanoseconds(1),
        3 => START - Duration::seconds(1),
        4 => EARLIEST,
        5 => LATEST,
        _ => LATEST + Duration::nanoseconds(1),
    }
}

fn in_range(t: OffsetDateTime) -> bool {
    (EARLIEST..=LATEST).contains(&t)
}

fn hashes(n: u8) -> SecretHash {
    hash(&format!("model hash {}", n % 4))
}

/// A new key in an operation.
#[derive(Clone, Debug)]
struct KeySpec {
    key: usize,
    account: usize,
    channel: Channel,
    name: Name,
    at: usize,
    label: bool,
}

/// How an update's expected version relates to the stored one.
#[derive(Clone, Copy, Debug)]
enum Version {
    Current,
    Stale,
    Future,
}

/// One store operation.
#[derive(Clone, Debug)]
enum Op {
    Create {
        account: usize,
        parent: Option<usize>,
        keys: Vec<KeySpec>,
        at: usize,
        event_at: usize,
    },
    Insert {
        key: KeySpec,
        max: u32,
        event_at: usize,
    },
    Update {
        key: usize,
        name: Option<Name>,
        hash: u8,
        version: Version,
        changed_at: usize,
        grace: Option<usize>,
        whitelist: bool,
        sneak: bool,
    },
    Upgrade {
        key: usize,
        from_current: bool,
        hash: u8,
    },
    Delete {
        key: usize,
        event_at: usize,
        /// `None`: whatever the version.
        version: Option<Version>,
    },
    ReadAccount(usize),
    ReadSubAccounts(usize),
    ReadKey(usize),
    ReadIdentifier(Name),
    ReadKeys(usize),
    ReadAudit(usize, usize),
}

fn name() -> impl Strategy<Value = Name> {
    (0..NAMES.len(), any::<u8>()).prop_map(|(n, c)| Name(n, c))
}

fn at() -> impl Strategy<Value = usize> {
    prop_oneof![12 => 0..4usize, 1 => 4..6usize, 1 => Just(6usize)]
}

fn channel() -> impl Strategy<Value = Channel> {
    prop_oneof![3 => Just(Channel::Rest), 1 => Just(Channel::Ftp), 1 => Just(Channel::Http), 1 => Just(Channel::Email)]
}

fn key_spec() -> impl Strategy<Value = KeySpec> {
    (0..KEYS, 0..ACCOUNTS, channel(), name(), at(), any::<bool>()).prop_map(
        |(key, account, channel, name, at, label)| KeySpec {
            key,
            account,
            channel,
            name,
            at,
            label,
        },
    )
}

fn op() -> impl Strategy<Value = Op> {
    let version = prop_oneof![6 => Just(Version::Current), 1 => Just(Version::Stale), 1 => Just(Version::Future)];
    let delete_version = version.clone();
    prop_oneof![
        3 => (0..ACCOUNTS, proptest::option::weighted(0.3, 0..ACCOUNTS), proptest::collection::vec(key_spec(), 0..3), at(), at())
            .prop_map(|(account, parent, keys, at, event_at)| Op::Create { account, parent, keys, at, event_at }),
        5 => (key_spec(), prop_oneof![Just(0u32), Just(1), Just(2), Just(3)], at())
            .prop_map(|(key, max, event_at)| Op::Insert { key, max, event_at }),
        5 => (0..KEYS, proptest::option::of(name()), any::<u8>(), version, at(), proptest::option::of(at()), any::<bool>(), any::<bool>())
            .prop_map(|(key, name, hash, version, changed_at, grace, whitelist, sneak)| Op::Update {
                key, name, hash, version, changed_at, grace, whitelist, sneak,
            }),
        1 => (0..KEYS, any::<bool>(), any::<u8>()).prop_map(|(key, from_current, hash)| Op::Upgrade { key, from_current, hash }),
        2 => (0..KEYS, at(), proptest::option::of(delete_version))
            .prop_map(|(key, event_at, version)| Op::Delete { key, event_at, version }),
        1 => (0..ACCOUNTS + 1).prop_map(Op::ReadAccount),
        1 => (0..ACCOUNTS + 1).prop_map(Op::ReadSubAccounts),
        1 => (0..KEYS + 1).prop_map(Op::ReadKey),
        2 => name().prop_map(Op::ReadIdentifier),
        1 => (0..ACCOUNTS + 1).prop_map(Op::ReadKeys),
        1 => (0..ACCOUNTS + 1, 0..8usize).prop_map(|(a, l)| Op::ReadAudit(a, l)),
    ]
}

// ----- the model ---------------------------------------------------------

/// ASCII folding, as the contract defines it.
fn fold(s: &str) -> Vec<u8> {
    s.bytes()
        .map(|b| if b.is_ascii_uppercase() { b + 32 } else { b })
        .collect()
}

/// The contract, as plainly as it can be written: maps and a list.
#[derive(Clone, Debug, Default)]
struct Model {
    accounts: BTreeMap<AccountId, Account>,
    keys: BTreeMap<KeyId, KeyRecord>,
    /// In recording order.
    events: Vec<AuditEvent>,
}

impl Model {
    fn identifier_taken(&self, identifier: &str, other_than: Option<KeyId>) -> bool {
        self.keys
            .values()
            .any(|k| Some(k.id) != other_than && fold(&k.identifier) == fold(identifier))
    }

    fn held(&self, account: AccountId, channel: Channel) -> usize {
        self.keys
            .values()
            .filter(|k| k.account_id == account && k.channel == channel)
            .count()
    }

    fn create_account(
        &mut self,
        a: &Account,
        keys: &[KeyRecord],
        events: &[AuditEvent],
    ) -> Result<(), Want> {
        if self.accounts.contains_key(&a.id) {
            return Err(Want::Taken(Existing::Account));
        }
        if let AccountKind::Sub { parent } = a.kind
            && !self.accounts.contains_key(&parent)
        {
            return Err(Want::AccountNotFound(parent));
        }
        for (i, k) in keys.iter().enumerate() {
            let earlier = &keys[..i];
            if k.account_id != a.id {
                return Err(Want::AccountNotFound(k.account_id));
            }
            if self.keys.contains_key(&k.id) || earlier.iter().any(|e| e.id == k.id) {
                return Err(Want::Taken(Existing::Key));
            }
            if self.identifier_taken(&k.identifier, None)
                || earlier
                    .iter()
                    .any(|e| fold(&e.identifier) == fold(&k.identifier))
            {
                return Err(Want::Taken(Existing::Identifier));
            }
            if !k.channel.allows_several_keys() && earlier.iter().any(|e| e.channel == k.channel) {
                return Err(Want::Taken(Existing::ChannelFull(k.channel)));
            }
        }
        self.accounts.insert(a.id, a.clone());
        for k in keys {
            self.keys.insert(k.id, k.clone());
        }
        self.events.extend_from_slice(events);
        Ok(())
    }

    fn insert_key(&mut self, k: &KeyRecord, max: u32, e: &AuditEvent) -> Result<(), Want> {
        if !self.accounts.contains_key(&k.account_id) {
            return Err(Want::AccountNotFound(k.account_id));
        }
        if self.keys.contains_key(&k.id) {
            return Err(Want::Taken(Existing::Key));
        }
        if self.identifier_taken(&k.identifier, None) {
            return Err(Want::Taken(Existing::Identifier));
        }
        if self.held(k.account_id, k.channel) >= max as usize {
            return Err(Want::Taken(Existing::ChannelFull(k.channel)));
        }
        self.keys.insert(k.id, k.clone());
        self.events.push(e.clone());
        Ok(())
    }

    fn update_key(&mut self, k: &KeyRecord, expected: u64, e: &AuditEvent) -> Result<(), Want> {
        let Some(stored) = self.keys.get(&k.id) else {
            return Err(Want::KeyNotFound(k.id));
        };
        if stored.version != expected {
            return Err(Want::Conflict {
                key: k.id,
                expected,
                found: stored.version,
            });
        }
        if self.identifier_taken(&k.identifier, Some(k.id)) {
            return Err(Want::Taken(Existing::Identifier));
        }
        let next = KeyRecord {
            id: stored.id,
            account_id: stored.account_id,
            channel: stored.channel,
            created_at: stored.created_at,
            ..k.clone()
        };
        self.keys.insert(k.id, next);
        self.events.push(e.clone());
        Ok(())
    }

    fn upgrade(&mut self, id: KeyId, current: &SecretHash, upgraded: &SecretHash) -> bool {
        match self.keys.get_mut(&id) {
            Some(k) if k.secret_hash.as_str() == current.as_str() => {
                k.secret_hash = upgraded.clone();
                true
            }
            _ => false,
        }
    }

    fn delete_key(&mut self, id: KeyId, expected: Option<u64>, e: &AuditEvent) -> Result<(), Want> {
        let Some(stored) = self.keys.get(&id) else {
            return Err(Want::KeyNotFound(id));
        };
        if let Some(expected) = expected
            && stored.version != expected
        {
            return Err(Want::Conflict {
                key: id,
                expected,
                found: stored.version,
            });
        }
        self.keys.remove(&id);
        self.events.push(e.clone());
        Ok(())
    }

    fn sub_accounts_of(&self, master: AccountId) -> Vec<Account> {
        let mut subs: Vec<Account> = self
            .accounts
            .values()
            .filter(|a| a.kind.parent() == Some(master))
            .cloned()
            .collect();
        subs.sort_by_key(|a| (a.created_at, *a.id.as_bytes()));
        subs
    }

    fn by_identifier(&self, identifier: &str) -> Option<KeyRecord> {
        self.keys
            .values()
            .find(|k| fold(&k.identifier) == fold(identifier))
            .cloned()
    }

    fn keys_of(&self, a: AccountId) -> Vec<KeyRecord> {
        let mut keys: Vec<KeyRecord> = self
            .keys
            .values()
            .filter(|k| k.account_id == a)
            .cloned()
            .collect();
        keys.sort_by(|x, y| (x.created_at, x.id.as_bytes()).cmp(&(y.created_at, y.id.as_bytes())));
        keys
    }

    fn audit(&self, a: AccountId, limit: usize) -> Vec<AuditEvent> {
        // Newest recorded first, then by instant, descending, keeping that
        // order among ties.
        let mut events: Vec<AuditEvent> = self
            .events
            .iter()
            .rev()
            .filter(|e| e.account_id == a)
            .cloned()
            .collect();
        events.sort_by_key(|e| std::cmp::Reverse(e.at));
        events.truncate(limit);
        events
    }
}

// ----- running a sequence --------------------------------------------------

fn event_of(
    account: AccountId,
    key: Option<&KeyRecord>,
    kind: AuditKind,
    at: OffsetDateTime,
    detail: String,
) -> AuditEvent {
    AuditEvent {
        account_id: account,
        key_id: key.map(|k| k.id),
        channel: key.map(|k| k.channel),
        at,
        kind,
        actor: Actor::Operator,
        detail,
    }
}

fn build_key(u: &Universe, spec: &KeySpec, account: Option<AccountId>) -> KeyRecord {
    let t = instant(spec.at);
    KeyRecord {
        id: u.key(spec.key),
        account_id: account.unwrap_or_else(|| u.account(spec.account)),
        channel: spec.channel,
        identifier: u.identifier(spec.name),
        label: spec.label.then(|| format!("label {}", spec.key)),
        secret_hash: hashes(spec.key as u8),
        previous_secret: None,
        whitelist: Whitelist::default(),
        created_at: t,
        changed_at: t,
        version: 1,
        expires_at: None,
        enabled: true,
        legacy_default: false,
        usage: Default::default(),
    }
}

/// Compares a write's answer with the model's. A write holding an instant
/// outside the range must fail, with `Unstorable` or with a rule's error
/// (the contract does not say which comes first), and is not applied.
fn judge_write(
    got: &Result<(), StoreError>,
    model: Result<(), Want>,
    unstorable: bool,
) -> Result<bool, String> {
    match (got, model, unstorable) {
        (Err(e), model, true) => {
            let is_unstorable = matches!(e, StoreError::Backend { source } if source.downcast_ref::<crate::store::Unstorable>().is_some());
            if is_unstorable || model.is_err_and(|want| want.matches(e)) {
                Ok(false)
            } else {
                Err(format!(
                    "store answered {:?} for a write holding an instant outside the range; expected Unstorable or {model:?}",
                    show(got)
                ))
            }
        }
        (Ok(()), _, true) => Err(
            "Ok for a write holding an instant outside the range; expected Err(Unstorable)".into(),
        ),
        (Ok(()), Ok(()), false) => Ok(true),
        (Err(e), Err(want), false) if want.matches(e) => Ok(false),
        (got, model, false) => Err(format!(
            "store answered {:?}, the contract says {model:?}",
            show(got)
        )),
    }
}

/// Runs one sequence against `store` and a fresh model, or says where the
/// two first disagree.
fn run_sequence(store: &DynStore, ops: &[Op]) -> Result<(), String> {
    let u = Universe::new();
    let mut model = Model::default();
    let mut log = String::new();
    for (i, op) in ops.iter().enumerate() {
        let _ = writeln!(log, "  {i}: {op:?}");
        let detail = format!("op {i}");
        let outcome: Result<(), String> = match op {
            Op::Create {
                account,
                parent,
                keys,
                at,
                event_at,
            } => {
                let a = Account {
                    id: u.account(*account),
                    kind: match parent {
                        Some(p) => AccountKind::Sub {
                            parent: u.account(*p),
                        },
                        None => AccountKind::Master,
                    },
                    created_at: instant(*at),
                    suspended: false,
                    policy: Default::default(),
                    external_id: None,
                };
                // Initial keys of the account, and now and then of another.
                let records: Vec<KeyRecord> = keys
                    .iter()
                    .map(|k| {
                        build_key(
                            &u,
                            k,
                            (k.account == *account || k.key % 3 != 0).then_some(a.id),
                        )
                    })
                    .collect();
                let mut events = vec![event_of(
                    a.id,
                    None,
                    AuditKind::AccountOpened,
                    instant(*event_at),
                    detail.clone(),
                )];
                for (j, k) in records.iter().enumerate() {
                    events.push(event_of(
                        a.id,
                        Some(k),
                        AuditKind::KeyCreated,
                        instant(*event_at),
                        format!("{detail}.{j}"),
                    ));
                }
                let unstorable = !in_range(a.created_at)
                    || records.iter().any(|k| !in_range(k.created_at))
                    || !in_range(instant(*event_at));
                let got = store.create_account(&a, &records, &events);
                let mut trial = model.clone();
                let want = trial.create_account(&a, &records, &events);
                judge_write(&got, want, unstorable).map(|applied| {
                    if applied {
                        model = trial;
                    }
                })
            }
            Op::Insert { key, max, event_at } => {
                // The contract's limit for channels other than REST is 1.
                let max = &if key.channel.allows_several_keys() {
                    *max
                } else {
                    1
                };
                let k = build_key(&u, key, None);
                let e = event_of(
                    k.account_id,
                    Some(&k),
                    AuditKind::KeyCreated,
                    instant(*event_at),
                    detail.clone(),
                );
                let unstorable = !in_range(k.created_at) || !in_range(instant(*event_at));
                let got = store.insert_key(&k, *max, &e);
                let mut trial = model.clone();
                let want = trial.insert_key(&k, *max, &e);
                judge_write(&got, want, unstorable).map(|applied| {
                    if applied {
                        model = trial;
                    }
                })
            }
            Op::Update {
                key,
                name,
                hash,
                version,
                changed_at,
                grace,
                whitelist,
                sneak,
            } => {
                let id = u.key(*key);
                let base = model.keys.get(&id).cloned().unwrap_or_else(|| KeyRecord {
                    id,
                    ..build_key(
                        &u,
                        &KeySpec {
                            key: *key,
                            account: 0,
                            channel: Channel::Rest,
                            name: Name(*key, 0),
                            at: 0,
                            label: false,
                        },
                        None,
                    )
                });
                let stored = base.version;
                let expected = match version {
                    Version::Current => stored,
                    Version::Stale => stored.saturating_sub(1),
                    Version::Future => stored + 1,
                };
                let mut k = KeyRecord {
                    identifier: name.map_or(base.identifier.clone(), |n| u.identifier(n)),
                    secret_hash: hashes(*hash),
                    previous_secret: grace.map(|g| PreviousSecret {
                        hash: base.secret_hash.clone(),
                        expires_at: instant(g),
                    }),
                    whitelist: if *whitelist {
                        Whitelist::parse(&[format!("10.{}.0.0/16", i % 250)], 10)
                            .unwrap_or_default()
                    } else {
                        Whitelist::default()
                    },
                    label: Some(format!("label {i}")),
                    changed_at: instant(*changed_at),
                    version: expected + 1,
                    ..base.clone()
                };
                if *sneak {
                    k.account_id = u.account((*key + 1) % ACCOUNTS);
                    k.channel = Channel::Email;
                    k.created_at = instant(6);
                }
                let e = event_of(
                    base.account_id,
                    Some(&k),
                    AuditKind::CredentialsChanged,
                    START,
                    detail.clone(),
                );
                let unstorable = !in_range(k.changed_at)
                    || k.previous_secret
                        .as_ref()
                        .is_some_and(|p| !in_range(p.expires_at));
                let got = store.update_key(&k, expected, &e);
                let mut trial = model.clone();
                let want = trial.update_key(&k, expected, &e);
                judge_write(&got, want, unstorable).map(|applied| {
                    if applied {
                        model = trial;
                    }
                })
            }
            Op::Upgrade {
                key,
                from_current,
                hash,
            } => {
                let id = u.key(*key);
                let current = match model.keys.get(&id) {
                    Some(k) if *from_current => k.secret_hash.clone(),
                    _ => hashes(hash.wrapping_add(1)),
                };
                let upgraded = hash_for_upgrade(*hash, i);
                let got = store.upgrade_secret_hash(id, &current, &upgraded);
                let want = model.upgrade(id, &current, &upgraded);
                match got {
                    Ok(g) if g == want => Ok(()),
                    other => Err(format!(
                        "store answered {:?}, the contract says Ok({want})",
                        show(&other)
                    )),
                }
            }
            Op::Delete {
                key,
                event_at,
                version,
            } => {
                let id = u.key(*key);
                let owner = model.keys.get(&id).map_or(u.account(0), |k| k.account_id);
                let e = AuditEvent {
                    key_id: Some(id),
                    ..event_of(
                        owner,
                        None,
                        AuditKind::KeyDeleted,
                        instant(*event_at),
                        detail.clone(),
                    )
                };
                let unstorable = !in_range(e.at);
                let stored = model.keys.get(&id).map_or(1, |k| k.version);
                let expected = version.map(|v| match v {
                    Version::Current => stored,
                    Version::Stale => stored.saturating_sub(1),
                    Version::Future => stored + 1,
                });
                let got = store.delete_key(id, expected, &e);
                let mut trial = model.clone();
                let want = trial.delete_key(id, expected, &e);
                judge_write(&got, want, unstorable).map(|applied| {
                    if applied {
                        model = trial;
                    }
                })
            }
            Op::ReadAccount(a) => compare(
                store.account(u.account(*a)),
                model.accounts.get(&u.account(*a)).cloned(),
            ),
            Op::ReadSubAccounts(a) => compare(
                store.sub_accounts(u.account(*a)),
                model.sub_accounts_of(u.account(*a)),
            ),
            Op::ReadKey(k) => compare(store.key(u.key(*k)), model.keys.get(&u.key(*k)).cloned()),
            Op::ReadIdentifier(n) => {
                let identifier = u.identifier(*n);
                compare(
                    store.key_by_identifier(&identifier),
                    model.by_identifier(&identifier),
                )
            }
            Op::ReadKeys(a) => compare(
                store.keys_of_account(u.account(*a)),
                model.keys_of(u.account(*a)),
            ),
            Op::ReadAudit(a, limit) => compare(
                store.audit_events(u.account(*a), *limit),
                model.audit(u.account(*a), *limit),
            ),
        };
        if let Err(what) = outcome {
            return Err(format!(
                "operation {i} disagrees with the model: {what}\nthe sequence:\n{log}"
            ));
        }
    }
    final_state(store, &u, &model).map_err(|what| {
        format!("the final state disagrees with the model: {what}\nthe sequence:\n{log}")
    })
}

fn hash_for_upgrade(seed: u8, i: usize) -> SecretHash {
    hash(&format!("upgraded {seed} {i}"))
}

fn compare<T: PartialEq + std::fmt::Debug>(
    got: Result<T, StoreError>,
    want: T,
) -> Result<(), String> {
    match got {
        Ok(g) if g == want => Ok(()),
        other => Err(format!(
            "store answered {:?}, the contract says Ok({want:?})",
            show(&other)
        )),
    }
}

/// Every read of the universe answers as the model does.
fn final_state(store: &DynStore, u: &Universe, model: &Model) -> Result<(), String> {
    for a in (0..=ACCOUNTS).map(|n| u.account(n)) {
        compare(store.account(a), model.accounts.get(&a).cloned())
            .map_err(|e| format!("account {a}: {e}"))?;
        compare(store.keys_of_account(a), model.keys_of(a))
            .map_err(|e| format!("keys of {a}: {e}"))?;
        compare(
            store.audit_events(a, usize::MAX),
            model.audit(a, usize::MAX),
        )
        .map_err(|e| format!("audit of {a}: {e}"))?;
    }
    for k in (0..=KEYS).map(|n| u.key(n)) {
        compare(store.key(k), model.keys.get(&k).cloned()).map_err(|e| format!("key {k}: {e}"))?;
    }
    for n in 0..NAMES.len() {
        for case in [0u8, 0xff, 0x55] {
            let identifier = u.identifier(Name(n, case));
            compare(
                store.key_by_identifier(&identifier),
                model.by_identifier(&identifier),
            )
            .map_err(|e| format!("identifier {identifier:?}: {e}"))?;
        }
    }
    Ok(())
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 256,
        ..Config::default()
    })
}

#[track_caller]
fn report<T: std::fmt::Debug>(rule: &str, result: Result<(), TestError<T>>) {
    match result {
        Ok(()) => {}
        Err(TestError::Fail(why, value)) => fail(
            rule,
            Shown(why.to_string()),
            Shown(format!(
                "agreement with the model (smallest failing input: {value:?})"
            )),
        ),
        Err(TestError::Abort(why)) => fail(
            rule,
            Shown(why.to_string()),
            Shown("the test to run".into()),
        ),
    }
}

/// Random sequences of every store operation (writes that succeed and that
/// break each rule, reads of everything), against a plain model of the
/// contract: every answer and the final state agree with it.
pub fn model_based_sequences(store: Arc<DynStore>) {
    let mut runner = runner(CASES);
    let result = runner.run(&proptest::collection::vec(op(), 1..40), |ops| {
        run_sequence(&*store, &ops).map_err(TestCaseError::fail)
    });
    report(
        "every answer of the store is the contract's (a model-based test)",
        result,
    );
}

// ----- several threads at once -----------------------------------------------

/// An operation of a thread; new keys get ids of their own (the thread and
/// the operation's place), so that each key has one insert.
#[derive(Clone, Debug)]
enum ThreadOp {
    Create {
        account: usize,
        key: Option<(Channel, Name)>,
    },
    Insert {
        account: usize,
        channel: Channel,
        name: Name,
    },
    Update {
        target: (usize, usize),
        name: Option<Name>,
        hash: u8,
    },
    Delete {
        target: (usize, usize),
    },
}

const THREADS: usize = 4;
const THREAD_OPS: usize = 12;
const REST_LIMIT: u32 = 2;

fn thread_op() -> impl Strategy<Value = ThreadOp> {
    let target = (0..THREADS, 0..THREAD_OPS);
    prop_oneof![
        1 => (0..ACCOUNTS, proptest::option::of((channel(), name()))).prop_map(|(account, key)| ThreadOp::Create { account, key }),
        4 => (0..ACCOUNTS, channel(), name()).prop_map(|(account, channel, name)| ThreadOp::Insert { account, channel, name }),
        3 => (target.clone(), proptest::option::of(name()), any::<u8>()).prop_map(|(target, name, hash)| ThreadOp::Update { target, name, hash }),
        1 => target.prop_map(|target| ThreadOp::Delete { target }),
    ]
}

/// What one write of a thread did.
#[derive(Debug)]
struct Done {
    thread: usize,
    place: usize,
    /// The account or key records written, and the events.
    account: Option<Account>,
    keys: Vec<KeyRecord>,
    events: Vec<AuditEvent>,
    /// For an update: the key and the version it was computed from.
    updated: Option<(KeyId, u64)>,
    deleted: Option<KeyId>,
    result: Result<(), StoreError>,
}

fn new_key_id(u: &Universe, thread: usize, place: usize) -> KeyId {
    KeyId::from_bytes(u.id_bytes(0xc0 + thread as u8, place))
}

fn run_thread(store: &DynStore, u: &Universe, thread: usize, ops: &[ThreadOp]) -> Vec<Done> {
    let mut done = Vec::new();
    for (place, op) in ops.iter().enumerate() {
        let detail = format!("t{thread} op {place}");
        let blank = |result| Done {
            thread,
            place,
            account: None,
            keys: Vec::new(),
            events: Vec::new(),
            updated: None,
            deleted: None,
            result,
        };
        match op {
            ThreadOp::Create { account, key } => {
                let a = Account {
                    created_at: START + Duration::nanoseconds(thread as i64),
                    ..crate::testing::records::master(u.account(*account))
                };
                let keys: Vec<KeyRecord> = key
                    .iter()
                    .map(|(channel, name)| KeyRecord {
                        id: new_key_id(u, thread, place),
                        account_id: a.id,
                        channel: *channel,
                        identifier: u.identifier(*name),
                        label: None,
                        secret_hash: hashes(place as u8),
                        previous_secret: None,
                        whitelist: Whitelist::default(),
                        created_at: START,
                        changed_at: START,
                        version: 1,
                        expires_at: None,
                        enabled: true,
                        legacy_default: false,
                        usage: Default::default(),
                    })
                    .collect();
                let mut events = vec![event_of(
                    a.id,
                    None,
                    AuditKind::AccountOpened,
                    START,
                    detail.clone(),
                )];
                events.extend(keys.iter().map(|k| {
                    event_of(
                        a.id,
                        Some(k),
                        AuditKind::KeyCreated,
                        START,
                        format!("{detail}.k"),
                    )
                }));
                let result = store.create_account(&a, &keys, &events);
                done.push(Done {
                    account: Some(a),
                    keys,
                    events,
                    ..blank(result)
                });
            }
            ThreadOp::Insert {
                account,
                channel,
                name,
            } => {
                let k = KeyRecord {
                    id: new_key_id(u, thread, place),
                    account_id: u.account(*account),
                    channel: *channel,
                    identifier: u.identifier(*name),
                    label: None,
                    secret_hash: hashes(place as u8),
                    previous_secret: None,
                    whitelist: Whitelist::default(),
                    created_at: START + Duration::nanoseconds(place as i64),
                    changed_at: START,
                    version: 1,
                    expires_at: None,
                    enabled: true,
                    legacy_default: false,
                    usage: Default::default(),
                };
                let e = event_of(k.account_id, Some(&k), AuditKind::KeyCreated, START, detail);
                let limit = if channel.allows_several_keys() {
                    REST_LIMIT
                } else {
                    1
                };
                let result = store.insert_key(&k, limit, &e);
                done.push(Done {
                    keys: vec![k],
                    events: vec![e],
                    ..blank(result)
                });
            }
            ThreadOp::Update { target, name, hash } => {
                let id = new_key_id(u, target.0, target.1);
                let current = match store.key(id) {
                    Ok(Some(k)) => k,
                    Ok(None) => continue,
                    Err(e) => {
                        done.push(blank(Err(e)));
                        continue;
                    }
                };
                let k = KeyRecord {
                    identifier: name.map_or(current.identifier.clone(), |n| u.identifier(n)),
                    secret_hash: hashes(*hash),
                    version: current.version + 1,
                    label: Some(detail.clone()),
                    ..current.clone()
                };
                let e = event_of(
                    k.account_id,
                    Some(&k),
                    AuditKind::CredentialsChanged,
                    START,
                    detail,
                );
                let result = store.update_key(&k, current.version, &e);
                done.push(Done {
                    keys: vec![k],
                    events: vec![e],
                    updated: Some((id, current.version)),
                    ..blank(result)
                });
            }
            ThreadOp::Delete { target } => {
                let id = new_key_id(u, target.0, target.1);
                let e = AuditEvent {
                    key_id: Some(id),
                    ..event_of(u.account(0), None, AuditKind::KeyDeleted, START, detail)
                };
                let owner = match store.key(id) {
                    Ok(Some(k)) => k.account_id,
                    _ => u.account(0),
                };
                let e = AuditEvent {
                    account_id: owner,
                    ..e
                };
                let result = store.delete_key(id, None, &e);
                done.push(Done {
                    events: vec![e],
                    deleted: Some(id),
                    ..blank(result)
                });
            }
        }
    }
    done
}

/// Checks the outcome of the threads' writes against what the contract
/// allows whatever their order.
fn check_concurrent(store: &DynStore, u: &Universe, done: &[Done]) -> Result<(), String> {
    let wins: Vec<&Done> = done.iter().filter(|d| d.result.is_ok()).collect();
    let read = |what: &str, e: StoreError| format!("{what} failed: {}", describe(&e));
    // Accounts: at most one creation of each id won, and it is what is stored.
    for n in 0..ACCOUNTS {
        let id = u.account(n);
        let created: Vec<&&Done> = wins
            .iter()
            .filter(|d| d.account.as_ref().is_some_and(|a| a.id == id))
            .collect();
        if created.len() > 1 {
            return Err(format!(
                "{} creations of account {id} succeeded; one may",
                created.len()
            ));
        }
        let stored = store.account(id).map_err(|e| read("account", e))?;
        let expected = created.first().and_then(|d| d.account.clone());
        if stored != expected {
            return Err(format!(
                "account {id} reads {stored:?}; the creation that succeeded wrote {expected:?}"
            ));
        }
    }
    // Events: exactly those of the writes that succeeded, each thread's in
    // its order (newest recorded first among equal instants).
    let mut stored_events = Vec::new();
    for n in 0..ACCOUNTS {
        stored_events.extend(
            store
                .audit_events(u.account(n), usize::MAX)
                .map_err(|e| read("audit_events", e))?,
        );
    }
    let mut expected_events: Vec<AuditEvent> = wins
        .iter()
        .flat_map(|d| d.events.iter().cloned())
        .filter(|e| (0..ACCOUNTS).any(|n| u.account(n) == e.account_id))
        .collect();
    let key = |e: &AuditEvent| e.detail.clone();
    let mut got_sorted = stored_events.clone();
    got_sorted.sort_by_key(key);
    expected_events.sort_by_key(key);
    if got_sorted != expected_events {
        let got: Vec<String> = got_sorted.iter().map(|e| e.detail.clone()).collect();
        let want: Vec<String> = expected_events.iter().map(|e| e.detail.clone()).collect();
        return Err(format!(
            "the audit trail holds events {got:?}; the writes that succeeded recorded {want:?}"
        ));
    }
    for n in 0..ACCOUNTS {
        let trail = store
            .audit_events(u.account(n), usize::MAX)
            .map_err(|e| read("audit_events", e))?;
        for t in 0..THREADS {
            let places: Vec<String> = trail
                .iter()
                .filter(|e| e.detail.starts_with(&format!("t{t} ")))
                .map(|e| e.detail.clone())
                .collect();
            let mut newest_first = places.clone();
            newest_first.sort_by_key(|d| std::cmp::Reverse(place_of(d)));
            if places != newest_first {
                return Err(format!(
                    "thread {t}'s events are listed {places:?}; recorded later means listed first: {newest_first:?}"
                ));
            }
        }
    }
    // Compare-and-swap: no two updates from one version of a key both won.
    let mut from: Vec<(KeyId, u64)> = wins.iter().filter_map(|d| d.updated).collect();
    from.sort();
    if let Some(w) = from.windows(2).find(|w| w[0] == w[1]) {
        return Err(format!(
            "two updates of key {} from version {} both succeeded",
            w[0].0, w[0].1
        ));
    }
    // Keys: present unless deleted, as the last write that won made them.
    let mut present: Vec<KeyRecord> = Vec::new();
    for t in 0..THREADS {
        for place in 0..THREAD_OPS {
            let id = new_key_id(u, t, place);
            let inserted = wins
                .iter()
                .any(|d| d.updated.is_none() && d.keys.iter().any(|k| k.id == id));
            let deleted = wins.iter().filter(|d| d.deleted == Some(id)).count();
            if deleted > 1 {
                return Err(format!("{deleted} deletes of key {id} succeeded; one may"));
            }
            let last = wins
                .iter()
                .flat_map(|d| d.keys.iter())
                .filter(|k| k.id == id)
                .max_by_key(|k| k.version)
                .cloned();
            let stored = store.key(id).map_err(|e| read("key", e))?;
            let expected = if inserted && deleted == 0 { last } else { None };
            if stored != expected {
                return Err(format!(
                    "key {id} reads {stored:?}; the writes that succeeded leave {expected:?}"
                ));
            }
            present.extend(stored);
        }
    }
    // Identifiers: each names at most one key, and finds it.
    for k in &present {
        let clash = present
            .iter()
            .filter(|o| fold(&o.identifier) == fold(&k.identifier))
            .count();
        if clash > 1 {
            return Err(format!("{clash} keys hold identifier {:?}", k.identifier));
        }
        let found = store
            .key_by_identifier(&k.identifier.to_ascii_uppercase())
            .map_err(|e| read("key_by_identifier", e))?;
        if found.as_ref() != Some(k) {
            return Err(format!(
                "identifier {:?} finds {found:?}, not its key {k:?}",
                k.identifier
            ));
        }
    }
    // Channels: the limits hold, and listings are what is present.
    for n in 0..ACCOUNTS {
        let a = u.account(n);
        for channel in Channel::ALL {
            let held = present
                .iter()
                .filter(|k| k.account_id == a && k.channel == channel)
                .count();
            let limit = if channel.allows_several_keys() {
                REST_LIMIT as usize
            } else {
                1
            };
            if held > limit {
                return Err(format!(
                    "account {a} holds {held} {channel} keys; at most {limit} may be"
                ));
            }
        }
        let mut expected: Vec<KeyRecord> = present
            .iter()
            .filter(|k| k.account_id == a)
            .cloned()
            .collect();
        expected
            .sort_by(|x, y| (x.created_at, x.id.as_bytes()).cmp(&(y.created_at, y.id.as_bytes())));
        let listed = store
            .keys_of_account(a)
            .map_err(|e| read("keys_of_account", e))?;
        if listed != expected {
            return Err(format!(
                "keys of {a} are {listed:?}; the keys present are {expected:?}"
            ));
        }
    }
    // Refusals are the rules' errors, never a backend failure.
    for d in done {
        if let Err(e @ StoreError::Backend { .. }) = &d.result {
            return Err(format!(
                "thread {} operation {} failed: {}",
                d.thread,
                d.place,
                describe(e)
            ));
        }
    }
    Ok(())
}

fn place_of(detail: &str) -> usize {
    detail
        .split("op ")
        .nth(1)
        .and_then(|rest| rest.split('.').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Random writes from several threads at once (account creations, inserts,
/// renames and re-keyings, deletions, all contending for a few accounts,
/// channels and identifiers): whatever the order they ran in, the outcome is
/// one the contract allows: one creation per account, only the winners'
/// events, each thread's events in its order, no update lost or doubled,
/// identifiers unique, channel limits held.
pub fn model_based_concurrent(store: Arc<DynStore>) {
    let mut runner = runner(CONCURRENT_CASES);
    let strategy = proptest::collection::vec(
        proptest::collection::vec(thread_op(), 1..=THREAD_OPS),
        THREADS,
    );
    let result = runner.run(&strategy, |plans| {
        let u = Universe::new();
        let start = StartLine::new(THREADS);
        let done: Vec<Done> = std::thread::scope(|s| {
            let handles: Vec<_> = plans
                .iter()
                .enumerate()
                .map(|(t, ops)| {
                    let (start, u, store) = (&start, &u, &*store);
                    s.spawn(move || {
                        start.wait();
                        run_thread(store, u, t, ops)
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        });
        check_concurrent(&*store, &u, &done).map_err(TestCaseError::fail)
    });
    report(
        "concurrent writes leave a state the contract allows (a model-based test)",
        result,
    );
}

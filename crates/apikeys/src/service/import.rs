//! Bringing in a platform's existing accounts and their credentials.
//!
//! Rules:
//! - An imported account carries the platform's own id ([`ExternalId`]),
//!   its historic creation instant, and its keys with the credentials its
//!   integrations use today: a plaintext secret (hashed here under the
//!   policy, so it must pass the chosen-secret rules) or a hash from the
//!   old system in a format verification reads ([`crate::hashing`]), within
//!   the bounds that keep a check cheap
//!   ([`SecretHash::check_importable`]), or this system's own `$sha256$`
//!   hash of a generated secret (what an export with hashes holds; it
//!   matches only a presented secret of the generated shape). A hash this
//!   crate does not read is refused here, never stored: it cannot reach
//!   authentication.
//! - Channel, identifier, label, whitelist and expiry rules are the
//!   domain's, as for a key created by hand: one key per channel but REST,
//!   at most the policy's REST keys, identifiers unique ignoring ASCII case
//!   (within the account here, across accounts by the store).
//! - A legacy master (created before the policy's cutover) gets no
//!   generated default key for a channel it brings. For the legacy channels
//!   it does not bring, it gets none either, unless the import asks
//!   ([`ImportOptions::issue_legacy_defaults`]): its old system never gave
//!   it those credentials, so no integration uses them, and credentials
//!   nobody asked for are only something to leak. Asked for, they are
//!   issued as at opening, marked as legacy defaults, and their secrets
//!   returned this once.
//! - Each account is written with its keys and audit events all or
//!   nothing. An account whose external id is stored already is skipped,
//!   so that rerunning an import writes each account once.
//! - A sub-account names its master by external id: a master written
//!   before (by this import or an earlier one) or earlier in the same
//!   batch.
//! - Imported keys are created at the import's instant (the account keeps
//!   its historic one): their age, for lifetimes and dormancy, counts from
//!   the day they came into this system.
//!
//! The work is split for throughput: [`ApiKeys::prepare_import`] checks an
//! account and hashes its plaintext secrets without touching the store (so
//! a caller runs it on every core), and [`ApiKeys::commit_imports`] writes
//! prepared accounts in one [`Store::create_accounts`](crate::store::Store::create_accounts)
//! call per batch.

use super::{ApiKeys, account_event, channel_list, key_event, map_store, rfc3339};
use crate::account::{Account, AccountKind, Actor, EARLIEST_CREATION, ExternalId, LATEST_CREATION};
use crate::audit::{AuditEvent, AuditKind};
use crate::channel::{Channel, ChannelSet};
use crate::credentials::{Secret, validate_identifier, validate_label, validate_secret};
use crate::error::Error;
use crate::hashing::{SUPPORTED_FORMATS, SecretHash, SecretOrigin, hash_secret, random_salt};
use crate::id::{AccountId, KeyId};
use crate::key::{IssuedKey, KeyRecord};
use crate::store::{AccountRecords, Existing, StoreError};
use crate::whitelist::Whitelist;
use ipnet::IpNet;
use std::collections::{HashMap, HashSet};
use time::{OffsetDateTime, UtcOffset};

/// One account to import, as the platform's old system knows it.
#[derive(Clone, Debug)]
pub struct ImportAccount {
    /// The platform's id for it: what a rerun matches it by.
    pub external_id: ExternalId,
    /// Master, or sub-account of the master with that external id.
    pub kind: ImportKind,
    /// When the old system created it.
    pub created_at: OffsetDateTime,
    /// Its keys, in the order given.
    pub keys: Vec<ImportKey>,
}

/// Whether an imported account is a master or a sub-account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImportKind {
    /// A master account.
    Master,
    /// A sub-account of the master with this external id.
    Sub {
        /// The master's external id.
        parent: ExternalId,
    },
}

/// One key of an imported account.
#[derive(Clone, Debug)]
pub struct ImportKey {
    /// Its channel.
    pub channel: Channel,
    /// Its identifier, as the integration sends it.
    pub identifier: String,
    /// Its secret, as the old system kept it.
    pub secret: ImportSecret,
    /// Its label, if any.
    pub label: Option<String>,
    /// Its IP whitelist (empty: any address).
    pub whitelist: Vec<IpNet>,
    /// Whether it works (a disabled key is imported disabled).
    pub enabled: bool,
    /// When it stops working, if it does: in the future, within the
    /// policy's longest lifetime, as for a new key.
    pub expires_at: Option<OffsetDateTime>,
}

/// An imported key's secret.
#[derive(Clone)]
pub enum ImportSecret {
    /// The secret itself: hashed under the policy (argon2id), so it must
    /// pass the chosen-secret rules.
    Plaintext(Secret),
    /// The old system's hash of it, in a format verification reads; it is
    /// replaced by the policy's argon2id after its first successful check.
    Hash(String),
}

impl std::fmt::Debug for ImportSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImportSecret::Plaintext(_) => f.write_str("Plaintext([hidden])"),
            ImportSecret::Hash(_) => f.write_str("Hash([hidden])"),
        }
    }
}

/// How an import treats what the file does not say.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportOptions {
    /// Issue a legacy master the default keys of the legacy channels it
    /// does not bring (generated credentials, returned once). Off by
    /// default: see the module's rules.
    pub issue_legacy_defaults: bool,
}

/// An account checked and hashed, ready for [`ApiKeys::commit_imports`].
#[derive(Debug)]
pub struct PreparedAccount {
    external_id: ExternalId,
    parent: Option<ExternalId>,
    /// The account, with a placeholder parent until committed.
    account: Account,
    keys: Vec<KeyRecord>,
    /// The expiry each imported key asked for (its record holds what the
    /// service's cap made of it): a stored master's cap is applied at
    /// commit, to what was asked.
    requested_expiries: Vec<Option<OffsetDateTime>>,
    events: Vec<AuditEvent>,
    issued: Vec<IssuedKey>,
}

impl PreparedAccount {
    /// The platform's id for it.
    pub fn external_id(&self) -> &ExternalId {
        &self.external_id
    }

    /// Its master's external id, for a sub-account.
    pub fn parent(&self) -> Option<&ExternalId> {
        self.parent.as_ref()
    }

    /// How many keys it brings (issued defaults included).
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }
}

/// What became of one account of [`ApiKeys::commit_imports`].
#[derive(Debug)]
pub enum ImportOutcome {
    /// Written, with its keys; `issued` holds the legacy default keys
    /// issued to it (with their secrets, shown this once).
    Imported {
        /// Its id here.
        account: AccountId,
        /// How many keys it brought.
        keys: usize,
        /// The default keys issued to it.
        issued: Vec<IssuedKey>,
    },
    /// An account with its external id was stored already: nothing written.
    Skipped {
        /// The stored account's id.
        account: AccountId,
    },
    /// Refused: nothing of it written.
    Refused(ImportError),
}

/// The masters a batch's sub-accounts name: those earlier in the batch,
/// and those read from the store (or found absent).
#[derive(Default)]
struct Masters {
    in_batch: HashMap<ExternalId, AccountId>,
    stored: HashMap<ExternalId, Option<Account>>,
}

/// Why an account cannot be imported. Never holds a secret or a hash.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The account itself breaks a rule.
    #[error("{0}")]
    Account(Error),
    /// A sub-account's master is neither stored nor earlier in the batch.
    #[error(
        "master `{0}` is not imported: a sub-account's master must be a master account in the file or imported before"
    )]
    MasterMissing(ExternalId),
    /// The named master is a sub-account.
    #[error("`{0}` is a sub-account, not a master: a sub-account's parent must be a master")]
    ParentNotMaster(ExternalId),
    /// One of its keys breaks a rule.
    #[error("key {index} ({channel}, identifier `{identifier}`): {problem}")]
    Key {
        /// The key's position in the account's list, from 1.
        index: usize,
        /// Its channel.
        channel: Channel,
        /// Its identifier (cut to 64 characters).
        identifier: String,
        /// What is wrong with it.
        problem: KeyProblem,
    },
}

/// What is wrong with an imported key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyProblem {
    /// A rule of the domain (identifier, secret, label, whitelist,
    /// expiry, channel) refuses it.
    #[error("{0}")]
    Rule(Error),
    /// Its stored hash is in no format verification reads.
    #[error("secret_hash is not in a supported format; supported: {SUPPORTED_FORMATS}")]
    UnsupportedHash,
    /// Its stored hash is readable, but outside the bounds an import takes.
    #[error("{0}")]
    HashOutOfBounds(crate::hashing::ImportableHashError),
    /// Another key of the account has the same identifier (ignoring ASCII
    /// case).
    #[error("another key of this account has the same identifier")]
    DuplicateIdentifier,
    /// A second key of a channel that holds one.
    #[error("another key of this account is of the same channel, which holds one key")]
    ChannelRepeated,
    /// More REST keys than the policy allows.
    #[error("more than {0} REST keys: the policy's limit")]
    TooManyRestKeys(u32),
}

impl ApiKeys {
    /// Checks an account to import and hashes its plaintext secrets under
    /// the policy (argon2: the costly part, which needs no store, so a
    /// caller runs many at once). Nothing is written.
    pub fn prepare_import(
        &self,
        import: ImportAccount,
        options: ImportOptions,
    ) -> Result<PreparedAccount, ImportError> {
        let now = self.now();
        let created_at = import.created_at.to_offset(UtcOffset::UTC);
        if !(EARLIEST_CREATION..LATEST_CREATION).contains(&created_at) {
            return Err(ImportError::Account(Error::CreationOutOfRange(created_at)));
        }
        let (kind, parent) = match import.kind {
            ImportKind::Master => (AccountKind::Master, None),
            // The master's id is known at commit.
            ImportKind::Sub { parent } => (
                AccountKind::Sub {
                    parent: AccountId::from_bytes([0; 16]),
                },
                Some(parent),
            ),
        };
        let account = Account::new(self.with_rng(|r| AccountId::random(r)), kind, created_at)
            .with_external_id(import.external_id.clone());
        let mut keys = Vec::with_capacity(import.keys.len());
        let requested_expiries: Vec<_> = import.keys.iter().map(|k| k.expires_at).collect();
        let mut brought = ChannelSet::EMPTY;
        let mut rest_keys = 0u32;
        let mut identifiers: HashSet<String> = HashSet::new();
        for (i, key) in import.keys.into_iter().enumerate() {
            let refuse = |problem: KeyProblem| ImportError::Key {
                index: i + 1,
                channel: key.channel,
                identifier: key.identifier.chars().take(64).collect(),
                problem,
            };
            if key.channel.allows_several_keys() {
                rest_keys += 1;
                if rest_keys > self.policy.max_rest_keys {
                    return Err(refuse(KeyProblem::TooManyRestKeys(
                        self.policy.max_rest_keys,
                    )));
                }
            } else if brought.contains(key.channel) {
                return Err(refuse(KeyProblem::ChannelRepeated));
            }
            brought = brought.with(key.channel);
            if !identifiers.insert(key.identifier.to_ascii_lowercase()) {
                return Err(refuse(KeyProblem::DuplicateIdentifier));
            }
            let record = self.imported_key(&account, &key, now).map_err(refuse)?;
            keys.push(record);
        }
        let legacy = self.policy.activation.default_channels(&kind, created_at);
        let defaults = if options.issue_legacy_defaults {
            legacy.difference(brought)
        } else {
            ChannelSet::EMPTY
        };
        let detail = format!(
            "{} account imported (external id {}), created at {}; {} keys imported; default channels issued: {}",
            kind.code(),
            import.external_id,
            rfc3339(created_at),
            keys.len(),
            channel_list(defaults)
        );
        let mut events = vec![account_event(
            account.id,
            AuditKind::AccountOpened,
            Actor::Operator,
            now,
            detail,
        )];
        for k in &keys {
            events.push(key_event(
                k,
                AuditKind::KeyCreated,
                Actor::Operator,
                now,
                format!("imported key, identifier {}", k.identifier),
            ));
        }
        let mut issued = Vec::new();
        self.issue_defaults(
            &account,
            defaults,
            Actor::Operator,
            now,
            (&mut keys, &mut events, &mut issued),
        )
        .map_err(ImportError::Account)?;
        Ok(PreparedAccount {
            external_id: import.external_id,
            parent,
            account,
            keys,
            requested_expiries,
            events,
            issued,
        })
    }

    /// The record of one imported key: every rule checked, the plaintext
    /// hashed.
    fn imported_key(
        &self,
        account: &Account,
        key: &ImportKey,
        now: OffsetDateTime,
    ) -> Result<KeyRecord, KeyProblem> {
        let rule = |e: Error| KeyProblem::Rule(e);
        validate_identifier(&key.identifier).map_err(|e| rule(e.into()))?;
        if let Some(label) = &key.label {
            validate_label(label).map_err(|e| rule(e.into()))?;
        }
        let whitelist = Whitelist::new(
            key.whitelist.iter().copied(),
            self.policy.max_whitelist_entries,
        )
        .map_err(|e| rule(e.into()))?;
        // A new master's policy caps nothing; a sub-account's master's caps
        // are checked at commit, when the master is known.
        let expires_at = super::lifecycle::expiry_within(
            self.policy.max_key_lifetime,
            None,
            now,
            now,
            key.expires_at,
        )
        .map_err(rule)?;
        let secret_hash = match &key.secret {
            ImportSecret::Plaintext(secret) => {
                validate_secret(secret, &key.identifier).map_err(|e| rule(e.into()))?;
                let salt = self.with_rng(|r| random_salt(r));
                hash_secret(&self.policy.hashing, secret, SecretOrigin::Chosen, &salt)
                    .map_err(|e| rule(e.into()))?
            }
            ImportSecret::Hash(text) => {
                let hash = SecretHash::parse(text).map_err(|_| KeyProblem::UnsupportedHash)?;
                hash.check_importable()
                    .map_err(KeyProblem::HashOutOfBounds)?;
                hash
            }
        };
        Ok(KeyRecord {
            id: self.with_rng(|r| KeyId::random(r)),
            account_id: account.id,
            channel: key.channel,
            identifier: key.identifier.clone(),
            label: key.label.clone(),
            secret_hash,
            previous_secret: None,
            whitelist,
            created_at: now,
            changed_at: now,
            version: 1,
            expires_at,
            enabled: key.enabled,
            legacy_default: false,
            usage: crate::key::Usage::default(),
        })
    }

    /// Writes prepared accounts, each with its keys and events all or
    /// nothing, in one store call: one outcome per account, in order.
    ///
    /// An account whose external id is stored is skipped. A sub-account's
    /// master is found earlier in the batch, else in the store by external
    /// id; put masters before their sub-accounts. `Err` only when the store
    /// failed as a whole: then each account of the batch is written whole
    /// or not at all, and a rerun finds out which.
    pub fn commit_imports(&self, batch: Vec<PreparedAccount>) -> Result<Vec<ImportOutcome>, Error> {
        let mut outcomes: Vec<Option<ImportOutcome>> = Vec::with_capacity(batch.len());
        let mut to_write: Vec<AccountRecords> = Vec::new();
        // For each account handed to the store: its outcome's slot, its key
        // count, its issued keys, and its master's external id.
        let mut written: Vec<(usize, usize, Vec<IssuedKey>, Option<ExternalId>)> = Vec::new();
        let mut masters = Masters::default();
        // An account stored already is found by the store's refusal of its
        // external id (then skipped), not by a lookup per account: a batch
        // is written at the speed of its inserts.
        for prepared in batch {
            let PreparedAccount {
                external_id,
                parent,
                mut account,
                mut keys,
                requested_expiries,
                events,
                issued,
            } = prepared;
            match &parent {
                Some(parent) => {
                    match self.master_for(parent, &mut masters, &mut keys, &requested_expiries)? {
                        Ok(id) => account.kind = AccountKind::Sub { parent: id },
                        Err(e) => {
                            outcomes.push(Some(ImportOutcome::Refused(e)));
                            continue;
                        }
                    }
                }
                None => {
                    masters.in_batch.insert(external_id, account.id);
                }
            }
            keys.iter_mut().for_each(|k| k.account_id = account.id);
            written.push((outcomes.len(), keys.len(), issued, parent));
            outcomes.push(None);
            to_write.push(AccountRecords {
                account,
                keys,
                events,
            });
        }
        let results = self.store.create_accounts(&to_write)?;
        for ((slot, keys, issued, parent), (result, records)) in
            written.into_iter().zip(results.into_iter().zip(&to_write))
        {
            let id = records.account.id;
            outcomes[slot] = Some(match result {
                Ok(()) => ImportOutcome::Imported {
                    account: id,
                    keys,
                    issued,
                },
                Err(StoreError::AlreadyExists(Existing::ExternalId)) => {
                    // Imported before (a rerun), or meanwhile by another
                    // import: skipped.
                    let external = records.account.external_id.as_ref();
                    match external.map(|e| self.store.account_by_external_id(e)) {
                        Some(Ok(Some(stored))) => ImportOutcome::Skipped { account: stored.id },
                        _ => ImportOutcome::Refused(ImportError::Account(Error::Store(
                            StoreError::AlreadyExists(Existing::ExternalId),
                        ))),
                    }
                }
                Err(e) => {
                    let key = match &e {
                        StoreError::AlreadyExists(Existing::Identifier) => {
                            self.taken_identifier(&records.keys)
                        }
                        _ => None,
                    };
                    let error = map_store(e, &id, key);
                    ImportOutcome::Refused(match (error, parent) {
                        // Its master, earlier in the batch, was refused.
                        (Error::AccountNotFound(_), Some(p)) => ImportError::MasterMissing(p),
                        (error, _) => ImportError::Account(error),
                    })
                }
            });
        }
        Ok(outcomes.into_iter().flatten().collect())
    }

    /// The id of a sub-account's master, named by external id: a master
    /// earlier in the batch, else a stored master (read once per batch),
    /// whose policy the sub-account's keys must then obey (`keys` get the
    /// expiries its cap gives). The outer `Err` is the store's failure.
    fn master_for(
        &self,
        parent: &ExternalId,
        masters: &mut Masters,
        keys: &mut [KeyRecord],
        requested_expiries: &[Option<OffsetDateTime>],
    ) -> Result<Result<AccountId, ImportError>, Error> {
        if let Some(id) = masters.in_batch.get(parent) {
            return Ok(Ok(*id));
        }
        let found = match masters.stored.get(parent) {
            Some(found) => found.clone(),
            None => {
                let found = self.store.account_by_external_id(parent)?;
                masters.stored.insert(parent.clone(), found.clone());
                found
            }
        };
        Ok(match found {
            None => Err(ImportError::MasterMissing(parent.clone())),
            Some(m) if !matches!(m.kind, AccountKind::Master) => {
                Err(ImportError::ParentNotMaster(parent.clone()))
            }
            Some(m) => self
                .within_master_policy(&m, keys, requested_expiries)
                .map(|()| m.id),
        })
    }

    /// The first key whose identifier another account holds.
    fn taken_identifier<'a>(&self, keys: &'a [KeyRecord]) -> Option<&'a KeyRecord> {
        keys.iter().find(|k| {
            self.store
                .key_by_identifier(&k.identifier)
                .ok()
                .flatten()
                .is_some_and(|stored| stored.account_id != k.account_id)
        })
    }

    /// A sub-account's keys obey its stored master's policy: channels the
    /// master allows, and each key's expiry, as asked, within the master's
    /// longest lifetime as well as the service's (a key that asked for none
    /// gets the earlier cap's end, as a key created by hand does).
    fn within_master_policy(
        &self,
        master: &Account,
        keys: &mut [KeyRecord],
        requested_expiries: &[Option<OffsetDateTime>],
    ) -> Result<(), ImportError> {
        for (i, k) in keys.iter_mut().enumerate() {
            let refuse = |k: &KeyRecord, problem| ImportError::Key {
                index: i + 1,
                channel: k.channel,
                identifier: k.identifier.chars().take(64).collect(),
                problem,
            };
            if !master.policy.sub_account_channels.contains(k.channel) {
                let problem = KeyProblem::Rule(Error::ChannelNotAllowed {
                    account: k.account_id,
                    channel: k.channel,
                });
                return Err(refuse(k, problem));
            }
            k.expires_at = super::lifecycle::expiry_within(
                self.policy.max_key_lifetime,
                master.policy.max_key_lifetime,
                k.created_at,
                k.created_at,
                requested_expiries.get(i).copied().flatten(),
            )
            .map_err(|e| refuse(k, KeyProblem::Rule(e)))?;
        }
        Ok(())
    }

    /// The account carrying this external id, if the actor may see it:
    /// another's account looks exactly like one that does not exist.
    pub fn account_by_external_id(
        &self,
        actor: Actor,
        external_id: &ExternalId,
    ) -> Result<Account, Error> {
        match self.store.account_by_external_id(external_id)? {
            Some(a) if actor.may_manage(&a) => Ok(a),
            _ => Err(Error::ExternalIdNotFound(external_id.clone())),
        }
    }
}

//! Keys: creating them, changing their credentials, deleting them.
//!
//! Rules:
//! - An account holds at most one key per channel, except REST, which
//!   allows several, up to the policy's limit (default 10). "Active" means
//!   the account holds a key for that channel.
//! - An identifier is unique across all keys, ignoring ASCII case, and names
//!   exactly one key; presenting it on another channel fails.
//! - The secret is shown once: only the call that generates it returns it;
//!   a chosen secret is never echoed back.
//! - Credentials may change at any time: a new generated or chosen secret, a
//!   new identifier, or both. When the change commits the old credentials
//!   stop working at once.
//! - Optionally, and never by default, the previous secret keeps working
//!   for a grace period the caller sets (at most the policy's `max_grace`,
//!   default 30 days). Grace covers a secret change only; a changed
//!   identifier takes effect at once, and a later change ends any grace
//!   still running.
//! - A deleted key's credentials stop working at once, and its channel is
//!   inactive again; a default key deleted stays deleted.
//! - A label may be set, changed or removed at any time, under the rules
//!   of a new key's label.
//! - No lost updates: every change of a key (credentials, whitelist, label,
//!   deletion) may name the versions it was decided on (a [`Precondition`]);
//!   if the key is at another version when the change is written, it is
//!   refused with [`Error::StaleVersion`] and nothing is written. The check
//!   and the write are one compare-and-swap in the store, so a change
//!   never lands on a version it was not asked for; a deletion, with or
//!   without a precondition, deletes exactly the version it was decided on.

use super::{ApiKeys, key_event, map_store, rfc3339};
use crate::account::{Account, Actor};
use crate::audit::AuditKind;
use crate::channel::{Channel, ChannelSet};
use crate::credentials::{
    IdentifierChoice, Secret, SecretChoice, generate_identifier, generate_secret,
    validate_identifier, validate_label, validate_secret,
};
use crate::error::{Error, GraceError};
use crate::hashing::{Cost, SALT_LEN, SecretHash, SecretOrigin, hash_secret, random_salt};
use crate::id::{AccountId, KeyId};
use crate::key::{ApiKey, IssuedKey, KeyRecord, PreviousSecret};
use crate::store::{StoreError, StoreExt};
use crate::whitelist::Whitelist;
use time::{Duration, OffsetDateTime};

/// How many times a read-modify-write is retried when another writer changed
/// the key in between.
pub(super) const MAX_ATTEMPTS: usize = 5;

/// What a change of a key requires of its current version: the guard
/// against lost updates (two people editing one key from the same read).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Precondition {
    /// Whatever the version: the change applies to the key as it is.
    #[default]
    Any,
    /// The key is at one of these versions (an empty list matches none).
    OneOf(Vec<u64>),
}

impl Precondition {
    /// The key is at exactly `version`.
    pub fn version(version: u64) -> Self {
        Precondition::OneOf(vec![version])
    }

    /// Whether a key at `version` meets this precondition.
    pub fn allows(&self, version: u64) -> bool {
        match self {
            Precondition::Any => true,
            Precondition::OneOf(versions) => versions.contains(&version),
        }
    }

    /// `Ok`, or the [`Error::StaleVersion`] of `key` at `current`.
    pub(super) fn check(&self, key: KeyId, current: u64) -> Result<(), Error> {
        match self {
            _ if self.allows(current) => Ok(()),
            Precondition::Any => Ok(()),
            Precondition::OneOf(versions) => Err(Error::StaleVersion {
                key,
                expected: versions.clone(),
                current,
            }),
        }
    }
}

impl From<u64> for Precondition {
    fn from(version: u64) -> Self {
        Precondition::version(version)
    }
}

impl From<Option<u64>> for Precondition {
    fn from(version: Option<u64>) -> Self {
        version.map_or(Precondition::Any, Precondition::version)
    }
}

/// What a new key should be.
#[derive(Clone, Debug)]
pub struct NewKey {
    /// Its channel.
    pub channel: Channel,
    /// Chosen or generated identifier.
    pub identifier: IdentifierChoice,
    /// Chosen or generated secret.
    pub secret: SecretChoice,
    /// Optional label.
    pub label: Option<String>,
    /// When it should stop working, if it should (see
    /// [`ApiKeys::set_expiry`] for the rules).
    pub expires_at: Option<OffsetDateTime>,
}

impl NewKey {
    /// A key for `channel` with generated identifier and secret, no label.
    pub fn generated(channel: Channel) -> Self {
        NewKey {
            channel,
            identifier: IdentifierChoice::Generate,
            secret: SecretChoice::Generate,
            label: None,
            expires_at: None,
        }
    }

    /// This key, expiring at `at`.
    #[must_use]
    pub fn with_expiry(mut self, at: OffsetDateTime) -> Self {
        self.expires_at = Some(at);
        self
    }

    /// A key for `channel` with a chosen identifier and a chosen secret.
    pub fn chosen(channel: Channel, identifier: impl Into<String>, secret: Secret) -> Self {
        NewKey {
            channel,
            identifier: IdentifierChoice::Chosen(identifier.into()),
            secret: SecretChoice::Chosen(secret),
            label: None,
            expires_at: None,
        }
    }

    /// This key with a label.
    #[must_use]
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// What creating this key costs: argon2 for a chosen secret. An adapter
    /// decides from this where to run the call.
    pub fn cost(&self) -> Cost {
        self.secret.cost()
    }
}

/// How long the previous secret keeps working after a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grace {
    /// For this long from the service's "now".
    For(Duration),
    /// Until this instant.
    Until(OffsetDateTime),
}

/// A change of credentials: any of identifier and secret, optionally with a
/// grace period for the previous secret.
#[derive(Clone, Debug, Default)]
pub struct CredentialChange {
    /// A new identifier, if it changes.
    pub identifier: Option<IdentifierChoice>,
    /// A new secret, if it changes.
    pub secret: Option<SecretChoice>,
    /// Keep the previous secret working a while (off by default). Only with
    /// a secret change; never longer than the policy's `max_grace`.
    pub grace: Option<Grace>,
}

impl CredentialChange {
    /// A new generated secret, nothing else.
    pub fn regenerate_secret() -> Self {
        CredentialChange {
            secret: Some(SecretChoice::Generate),
            ..Default::default()
        }
    }

    /// This change, keeping the previous secret working as `grace` says.
    #[must_use]
    pub fn with_grace(mut self, grace: Grace) -> Self {
        self.grace = Some(grace);
        self
    }

    /// What this change costs: argon2 for a chosen secret.
    pub fn cost(&self) -> Cost {
        self.secret.as_ref().map_or(Cost::Fast, SecretChoice::cost)
    }
}

impl SecretChoice {
    /// What hashing this secret costs: argon2 for a chosen one.
    pub fn cost(&self) -> Cost {
        match self {
            SecretChoice::Generate => Cost::Fast,
            SecretChoice::Chosen(_) => Cost::Argon2,
        }
    }
}

impl ApiKeys {
    pub(super) fn build_key(
        &self,
        account: &Account,
        new: NewKey,
        now: OffsetDateTime,
    ) -> Result<(KeyRecord, Option<Secret>), Error> {
        if let Some(label) = &new.label {
            validate_label(label)?;
        }
        let identifier = self.resolve_identifier(new.identifier)?;
        let (secret_hash, shown) = self.resolve_secret(new.secret, &identifier)?;
        let expires_at = self.resolve_expiry(account, now, now, new.expires_at, true)?;
        let record = KeyRecord {
            id: self.with_rng(|r| KeyId::random(r)),
            account_id: account.id,
            channel: new.channel,
            identifier,
            label: new.label,
            secret_hash,
            previous_secret: None,
            whitelist: Whitelist::default(),
            created_at: now,
            changed_at: now,
            version: 1,
            expires_at,
            enabled: true,
            legacy_default: false,
            usage: crate::key::Usage::default(),
        };
        Ok((record, shown))
    }

    fn resolve_identifier(&self, choice: IdentifierChoice) -> Result<String, Error> {
        match choice {
            IdentifierChoice::Generate => Ok(self.with_rng(|r| generate_identifier(r))),
            IdentifierChoice::Chosen(id) => {
                validate_identifier(&id)?;
                Ok(id)
            }
        }
    }

    /// The stored hash of the new secret, and the secret itself if it was
    /// generated (to be shown once).
    fn resolve_secret(
        &self,
        choice: SecretChoice,
        identifier: &str,
    ) -> Result<(SecretHash, Option<Secret>), Error> {
        let hashing = &self.policy.hashing;
        match choice {
            SecretChoice::Generate => {
                let secret = self.with_rng(|r| generate_secret(r));
                let hash = hash_secret(hashing, &secret, SecretOrigin::Generated, &[0; SALT_LEN])?;
                Ok((hash, Some(secret)))
            }
            SecretChoice::Chosen(secret) => {
                validate_secret(&secret, identifier)?;
                // Salt drawn under the lock; argon2 itself runs outside it.
                let salt = self.with_rng(|r| random_salt(r));
                let hash = hash_secret(hashing, &secret, SecretOrigin::Chosen, &salt)?;
                Ok((hash, None))
            }
        }
    }

    /// Creates a key for an account. The secret comes back once, in the
    /// result, if it was generated.
    pub fn create_key(
        &self,
        actor: Actor,
        account_id: AccountId,
        new: NewKey,
    ) -> Result<IssuedKey, Error> {
        let account = self.authorized_account(actor, account_id)?;
        let holders = self.holders_of(&account)?;
        if let Some(master) = &holders.master
            && !master.policy.sub_account_channels.contains(new.channel)
        {
            return Err(Error::ChannelNotAllowed {
                account: account_id,
                channel: new.channel,
            });
        }
        let now = self.now();
        let (record, secret) = self.build_key(&account, new, now)?;
        let detail = match &record.label {
            Some(l) => format!("identifier {}, label {l:?}", record.identifier),
            None => format!("identifier {}", record.identifier),
        };
        let event = key_event(&record, AuditKind::KeyCreated, actor, now, detail);
        self.store
            .insert_key(&record, self.policy.max_keys(record.channel), &event)
            .map_err(|e| match map_store(e, &account_id, Some(&record)) {
                Error::ChannelAlreadyActive {
                    account,
                    channel: Channel::Rest,
                } => Error::RestKeyLimit {
                    account,
                    limit: self.policy.max_rest_keys,
                },
                e => e,
            })?;
        Ok(IssuedKey {
            key: self.view(&record, &holders),
            secret,
        })
    }

    /// The key, if the actor may see it.
    pub fn key(&self, actor: Actor, id: KeyId) -> Result<ApiKey, Error> {
        let key = self.authorized_key(actor, id)?;
        self.view_of(&key)
    }

    /// The keys of an account, oldest first.
    pub fn keys(&self, actor: Actor, account_id: AccountId) -> Result<Vec<ApiKey>, Error> {
        let account = self.authorized_account(actor, account_id)?;
        let holders = self.holders_of(&account)?;
        Ok(self
            .store
            .keys_of_account(account_id)?
            .iter()
            .map(|k| self.view(k, &holders))
            .collect())
    }

    /// The channels for which the account holds a key ("active" channels).
    pub fn active_channels(
        &self,
        actor: Actor,
        account_id: AccountId,
    ) -> Result<ChannelSet, Error> {
        self.authorized_account(actor, account_id)?;
        Ok(self.store.active_channels(account_id)?)
    }

    /// Deletes a key: its credentials stop working at once, and a default key
    /// deleted stays deleted.
    pub fn delete_key(&self, actor: Actor, id: KeyId) -> Result<(), Error> {
        self.delete_key_if(actor, id, Precondition::Any)
    }

    /// Deletes a key if it meets `precondition`, else
    /// [`Error::StaleVersion`] and nothing is deleted. The store deletes
    /// only the version read here (compare-and-swap): a change landing in
    /// between is re-read and decided on again.
    pub fn delete_key_if(
        &self,
        actor: Actor,
        id: KeyId,
        precondition: impl Into<Precondition>,
    ) -> Result<(), Error> {
        let precondition = precondition.into();
        for _ in 0..MAX_ATTEMPTS {
            let key = self.authorized_key(actor, id)?;
            precondition.check(id, key.version)?;
            let event = key_event(
                &key,
                AuditKind::KeyDeleted,
                actor,
                self.now(),
                format!("identifier {}", key.identifier),
            );
            match self.store.delete_key(id, Some(key.version), &event) {
                Ok(()) => return Ok(()),
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(map_store(e, &key.account_id, Some(&key))),
            }
        }
        Err(Error::ConcurrentChange(id))
    }

    /// Sets (`Some`) or removes (`None`) a key's label, if the key meets
    /// `precondition`. The label follows a new key's rules (1 to 64
    /// characters, no control or invisible characters).
    pub fn set_label(
        &self,
        actor: Actor,
        id: KeyId,
        label: Option<String>,
        precondition: impl Into<Precondition>,
    ) -> Result<ApiKey, Error> {
        if let Some(label) = &label {
            validate_label(label)?;
        }
        let precondition = precondition.into();
        let record = self.modify_key(
            actor,
            id,
            AuditKind::LabelChanged,
            &precondition,
            |current| {
                let mut next = current.clone();
                next.label = label.clone();
                let detail = match (&current.label, &label) {
                    (_, Some(l)) => format!("label set to {l:?}"),
                    (Some(_), None) => "label removed".to_string(),
                    (None, None) => "label removed (there was none)".to_string(),
                };
                Ok((next, detail))
            },
        )?;
        self.view_of(&record)
    }

    /// Applies `change` to the key's current record and writes it with a
    /// compare-and-swap, retrying from a fresh read if another writer got
    /// there first.
    /// A key that does not meet `precondition` is refused with
    /// [`Error::StaleVersion`], and the compare-and-swap makes sure the
    /// version checked is the version replaced.
    pub(super) fn modify_key(
        &self,
        actor: Actor,
        id: KeyId,
        kind: AuditKind,
        precondition: &Precondition,
        mut change: impl FnMut(&KeyRecord) -> Result<(KeyRecord, String), Error>,
    ) -> Result<KeyRecord, Error> {
        for _ in 0..MAX_ATTEMPTS {
            let current = self.authorized_key(actor, id)?;
            precondition.check(id, current.version)?;
            let now = self.now();
            let (mut next, detail) = change(&current)?;
            next.version = current.version + 1;
            next.changed_at = now;
            let event = key_event(&next, kind, actor, now, detail);
            match self.store.update_key(&next, current.version, &event) {
                Ok(()) => return Ok(next),
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(map_store(e, &current.account_id, Some(&next))),
            }
        }
        Err(Error::ConcurrentChange(id))
    }

    /// The instant a grace period ends, checked against the policy.
    fn grace_until(&self, grace: Grace) -> Result<OffsetDateTime, GraceError> {
        let now = self.now();
        let until = match grace {
            Grace::Until(until) => until,
            Grace::For(duration) => now.checked_add(duration).ok_or(GraceError::OutOfRange)?,
        };
        if until <= now {
            return Err(GraceError::NotInFuture { until, now });
        }
        if until - now > self.policy.max_grace {
            return Err(GraceError::TooLong {
                until,
                max_seconds: self.policy.max_grace.whole_seconds(),
            });
        }
        Ok(until)
    }

    /// Changes a key's credentials. From the moment this returns, the old
    /// identifier and secret fail (unless a grace period was asked for the
    /// secret); a change also ends any grace still running from an earlier
    /// one. A generated secret comes back once, in the result.
    pub fn change_credentials(
        &self,
        actor: Actor,
        id: KeyId,
        change: CredentialChange,
    ) -> Result<IssuedKey, Error> {
        self.change_credentials_if(actor, id, change, Precondition::Any)
    }

    /// As [`ApiKeys::change_credentials`], if the key meets `precondition`
    /// (checked before any argon2 runs, and again by the write's
    /// compare-and-swap), else [`Error::StaleVersion`] and nothing changes.
    pub fn change_credentials_if(
        &self,
        actor: Actor,
        id: KeyId,
        change: CredentialChange,
        precondition: impl Into<Precondition>,
    ) -> Result<IssuedKey, Error> {
        let precondition = precondition.into();
        if change.identifier.is_none() && change.secret.is_none() {
            return Err(Error::NothingToChange);
        }
        let grace_until = match change.grace {
            Some(_) if change.secret.is_none() => return Err(GraceError::NoSecretChange.into()),
            Some(grace) => Some(self.grace_until(grace)?),
            None => None,
        };
        // Who may act is settled before any argon2 runs.
        let current = self.authorized_key(actor, id)?;
        precondition.check(id, current.version)?;
        let new_identifier = change
            .identifier
            .map(|c| self.resolve_identifier(c))
            .transpose()?;
        // The secret is hashed once, outside the retry loop (argon2 is slow);
        // it is checked against the identifier it will live with.
        let mut new_secret = None;
        let mut shown = None;
        // A chosen secret kept with the identifier it was checked against,
        // when that identifier is the key's current one: a rename by another
        // writer before the write lands makes the check run again.
        let mut checked = None;
        if let Some(choice) = change.secret {
            let identifier = new_identifier.as_deref().unwrap_or(&current.identifier);
            if let (SecretChoice::Chosen(secret), None) = (&choice, &new_identifier) {
                checked = Some((secret.clone(), current.identifier.clone()));
            }
            let (hash, secret) = self.resolve_secret(choice, identifier)?;
            new_secret = Some(hash);
            shown = secret;
        }
        let record = self.modify_key(
            actor,
            id,
            AuditKind::CredentialsChanged,
            &precondition,
            |current| {
                if let Some((secret, against)) = &checked
                    && current.identifier != *against
                {
                    validate_secret(secret, &current.identifier)?;
                }
                let mut next = current.clone();
                let mut detail = Vec::new();
                if let Some(identifier) = &new_identifier {
                    next.identifier = identifier.clone();
                    detail.push(format!(
                        "identifier changed from {} to {}",
                        current.identifier, identifier
                    ));
                }
                next.previous_secret = None;
                if let Some(hash) = &new_secret {
                    next.secret_hash = hash.clone();
                    detail.push(if shown.is_some() {
                        "secret regenerated".into()
                    } else {
                        "secret set".into()
                    });
                    if let Some(until) = grace_until {
                        next.previous_secret = Some(PreviousSecret {
                            hash: current.secret_hash.clone(),
                            expires_at: until,
                        });
                        next.usage.previous_secret_last_used_at = None;
                        detail.push(format!("previous secret valid until {}", rfc3339(until)));
                    }
                }
                if current.previous_secret.is_some() {
                    detail.push("earlier grace period ended".into());
                }
                Ok((next, detail.join("; ")))
            },
        )?;
        Ok(IssuedKey {
            key: self.view_of(&record)?,
            secret: shown,
        })
    }
}

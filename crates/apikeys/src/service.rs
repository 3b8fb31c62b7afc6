//! The service: every operation of the API Keys page, over any store.

use crate::account::{Account, AccountKind, Actor, EARLIEST_CREATION, LATEST_CREATION};
use crate::audit::{AuditEvent, AuditKind};
use crate::auth::{AuthError, Authenticated, Refusal};
use crate::cache::{Slot, VerifiedCache};
use crate::channel::{Channel, ChannelSet};
use crate::clock::Clock;
use crate::credentials::{
    GENERATED_SECRET_LEN, GeneratedShape, IdentifierChoice, Secret, SecretChoice,
    generate_identifier, generate_secret, generated_shape, validate_identifier, validate_label,
    validate_secret,
};
use crate::error::{Error, GraceError};
use crate::hashing::{
    SALT_LEN, SecretOrigin, Verification, hash_secret, is_fast_hash, random_salt, verify_secret,
};
use crate::id::{AccountId, KeyId};
use crate::key::{ApiKey, IssuedKey, KeyRecord, PreviousSecret};
use crate::policy::Policy;
use crate::store::{DynStore, Entity, Existing, StoreError, StoreExt};
use crate::whitelist::{Explanation, Whitelist};
use ipnet::IpNet;
use rand_core::CryptoRng;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use time::{OffsetDateTime, UtcOffset};

/// How many times a read-modify-write is retried when another writer changed
/// the key in between.
const MAX_ATTEMPTS: usize = 5;

/// A random generator the service can share between threads.
pub type SharedRng = Box<dyn CryptoRng + Send>;

/// A new account opened, and the default keys issued to it (with their
/// secrets, shown this once).
#[derive(Debug)]
pub struct OpenedAccount {
    /// The account.
    pub account: Account,
    /// The default keys of a legacy master (none otherwise), in channel order.
    pub issued: Vec<IssuedKey>,
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
}

impl NewKey {
    /// A key for `channel` with generated identifier and secret, no label.
    pub fn generated(channel: Channel) -> Self {
        NewKey {
            channel,
            identifier: IdentifierChoice::Generate,
            secret: SecretChoice::Generate,
            label: None,
        }
    }

    /// A key for `channel` with a chosen identifier and a chosen secret.
    pub fn chosen(channel: Channel, identifier: impl Into<String>, secret: Secret) -> Self {
        NewKey {
            channel,
            identifier: IdentifierChoice::Chosen(identifier.into()),
            secret: SecretChoice::Chosen(secret),
            label: None,
        }
    }

    /// This key with a label.
    #[must_use]
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }
}

/// A change of credentials: any of identifier and secret, optionally with a
/// grace period for the previous secret.
#[derive(Clone, Debug, Default)]
pub struct CredentialChange {
    /// A new identifier, if it changes.
    pub identifier: Option<IdentifierChoice>,
    /// A new secret, if it changes.
    pub secret: Option<SecretChoice>,
    /// Keep the previous secret working until this instant (off by default).
    /// Only with a secret change; never longer than the policy's `max_grace`.
    pub grace_until: Option<OffsetDateTime>,
}

impl CredentialChange {
    /// A new generated secret, nothing else.
    pub fn regenerate_secret() -> Self {
        CredentialChange {
            secret: Some(SecretChoice::Generate),
            ..Default::default()
        }
    }

    /// This change, keeping the previous secret working until `until`.
    #[must_use]
    pub fn with_grace_until(mut self, until: OffsetDateTime) -> Self {
        self.grace_until = Some(until);
        self
    }
}

/// API-key management over a store: the library's entry point.
pub struct ApiKeys {
    store: Arc<DynStore>,
    policy: Policy,
    clock: Arc<dyn Clock>,
    rng: Mutex<SharedRng>,
    /// Verified against when the identifier is unknown, so that an unknown
    /// identifier costs what a wrong secret costs (no user enumeration by
    /// timing).
    dummy_hash: String,
    /// `None` when the policy turns the cache off.
    cache: Option<VerifiedCache>,
    slow_checks: AtomicU64,
    cached_checks: AtomicU64,
}

/// Counters of the secret checks a service made, for metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckStats {
    /// Checks against an argon2 hash that ran argon2.
    pub slow: u64,
    /// Checks against an argon2 hash answered by the verified-secret cache.
    pub cached: u64,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeys")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl ApiKeys {
    /// A service over `store`, with a policy, a clock and a CSPRNG.
    ///
    /// In production pass `OffsetDateTime::now_utc` as the clock and
    /// `rand_core::UnwrapErr(getrandom::SysRng)` as the generator.
    ///
    /// Errors: [`Error::Hashing`] if argon2 refuses the policy's parameters.
    pub fn new(
        store: Arc<DynStore>,
        policy: Policy,
        clock: Arc<dyn Clock>,
        rng: impl CryptoRng + Send + 'static,
    ) -> Result<Self, Error> {
        let mut rng: SharedRng = Box::new(rng);
        let dummy = generate_secret(&mut *rng);
        let dummy_hash = hash_secret(
            &policy.hashing,
            &dummy,
            SecretOrigin::Chosen,
            &random_salt(&mut *rng),
        )?;
        let mut cache_key = zeroize::Zeroizing::new([0u8; 32]);
        rng.fill_bytes(cache_key.as_mut());
        let cache = match policy.verified_cache_capacity {
            0 => None,
            capacity => VerifiedCache::new(&cache_key, capacity),
        };
        Ok(ApiKeys {
            store,
            policy,
            clock,
            rng: Mutex::new(rng),
            dummy_hash,
            cache,
            slow_checks: AtomicU64::new(0),
            cached_checks: AtomicU64::new(0),
        })
    }

    /// The store.
    pub fn store(&self) -> &Arc<DynStore> {
        &self.store
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// How many argon2 checks this service ran, and how many the
    /// verified-secret cache answered instead.
    pub fn check_stats(&self) -> CheckStats {
        CheckStats {
            slow: self.slow_checks.load(Ordering::Relaxed),
            cached: self.cached_checks.load(Ordering::Relaxed),
        }
    }

    /// The clock, so that an adapter turning "in 60 seconds" or "now" into
    /// an instant uses the same time as the service.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    fn now(&self) -> OffsetDateTime {
        self.clock.now().to_offset(UtcOffset::UTC)
    }

    fn with_rng<T>(&self, f: impl FnOnce(&mut (dyn CryptoRng + Send)) -> T) -> T {
        // A generator is usable after a panic elsewhere: recover from poison.
        let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut **rng)
    }

    // ----- accounts -------------------------------------------------------

    /// Opens an account created at `created_at` (an input: imported accounts
    /// keep their dates), issuing the policy's default keys to a legacy
    /// master, all in one transaction.
    ///
    /// Who may: the operator, any account; a master, its own sub-accounts.
    pub fn open_account(
        &self,
        actor: Actor,
        kind: AccountKind,
        created_at: OffsetDateTime,
    ) -> Result<OpenedAccount, Error> {
        if !(EARLIEST_CREATION..LATEST_CREATION).contains(&created_at) {
            return Err(Error::CreationOutOfRange(created_at));
        }
        if let AccountKind::Sub { parent } = kind {
            let parent_account = self
                .store
                .account(parent)?
                .ok_or(Error::AccountNotFound(parent))?;
            if !matches!(parent_account.kind, AccountKind::Master) {
                return Err(Error::ParentNotMaster { parent });
            }
            if !matches!(actor, Actor::Operator) && actor != Actor::Account(parent) {
                return Err(Error::Forbidden {
                    actor,
                    account: parent,
                });
            }
        } else if let Actor::Account(me) = actor {
            return Err(Error::Forbidden { actor, account: me });
        }
        let now = self.now();
        let account = Account {
            id: self.with_rng(|r| AccountId::random(r)),
            kind,
            created_at: created_at.to_offset(UtcOffset::UTC),
        };
        let defaults = self
            .policy
            .activation
            .default_channels(&kind, account.created_at);
        let mut records = Vec::with_capacity(defaults.len());
        let mut issued = Vec::with_capacity(defaults.len());
        let mut events = vec![AuditEvent {
            account_id: account.id,
            key_id: None,
            channel: None,
            at: now,
            kind: AuditKind::AccountOpened,
            actor,
            detail: format!(
                "{} account created at {}; default channels: {}",
                kind.code(),
                rfc3339(account.created_at),
                channel_list(defaults)
            ),
        }];
        for channel in defaults.iter() {
            let (record, secret) = self.build_key(&account, NewKey::generated(channel), now)?;
            events.push(key_event(
                &record,
                AuditKind::KeyCreated,
                actor,
                now,
                "default key of a legacy account".into(),
            ));
            issued.push(IssuedKey {
                key: ApiKey::from(&record),
                secret,
            });
            records.push(record);
        }
        self.store
            .create_account(&account, &records, &events)
            .map_err(|e| map_store(e, &account.id, None))?;
        Ok(OpenedAccount { account, issued })
    }

    /// The account, if the actor may see it.
    pub fn account(&self, actor: Actor, id: AccountId) -> Result<Account, Error> {
        self.authorized_account(actor, id)
    }

    fn authorized_account(&self, actor: Actor, id: AccountId) -> Result<Account, Error> {
        let account = self.store.account(id)?.ok_or(Error::AccountNotFound(id))?;
        if actor.may_manage(&account) {
            Ok(account)
        } else {
            Err(Error::Forbidden { actor, account: id })
        }
    }

    fn authorized_key(&self, actor: Actor, id: KeyId) -> Result<KeyRecord, Error> {
        let key = self.store.key(id)?.ok_or(Error::KeyNotFound(id))?;
        match actor {
            Actor::Operator => {}
            Actor::Account(me) if me == key.account_id => {}
            Actor::Account(_) => {
                self.authorized_account(actor, key.account_id)?;
            }
        }
        Ok(key)
    }

    // ----- keys -----------------------------------------------------------

    fn build_key(
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
    ) -> Result<(String, Option<Secret>), Error> {
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
        let now = self.now();
        let (record, secret) = self.build_key(&account, new, now)?;
        let event = key_event(
            &record,
            AuditKind::KeyCreated,
            actor,
            now,
            label_detail(&record),
        );
        self.store
            .insert_key(&record, self.policy.max_keys(record.channel), &event)
            .map_err(|e| map_store(e, &account_id, Some(&record)))
            .map_err(|e| match e {
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
            key: ApiKey::from(&record),
            secret,
        })
    }

    /// The key, if the actor may see it.
    pub fn key(&self, actor: Actor, id: KeyId) -> Result<ApiKey, Error> {
        self.authorized_key(actor, id).map(|k| ApiKey::from(&k))
    }

    /// The keys of an account, oldest first.
    pub fn keys(&self, actor: Actor, account_id: AccountId) -> Result<Vec<ApiKey>, Error> {
        self.authorized_account(actor, account_id)?;
        Ok(self
            .store
            .keys_of_account(account_id)?
            .iter()
            .map(ApiKey::from)
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
        let key = self.authorized_key(actor, id)?;
        let event = key_event(
            &key,
            AuditKind::KeyDeleted,
            actor,
            self.now(),
            format!("identifier {}", key.identifier),
        );
        self.store
            .delete_key(id, &event)
            .map_err(|e| map_store(e, &key.account_id, Some(&key)))
    }

    /// Applies `change` to the key's current record and writes it with a
    /// compare-and-swap, retrying from a fresh read if another writer got
    /// there first.
    fn modify_key(
        &self,
        actor: Actor,
        id: KeyId,
        kind: AuditKind,
        mut change: impl FnMut(&KeyRecord, OffsetDateTime) -> Result<(KeyRecord, String), Error>,
    ) -> Result<KeyRecord, Error> {
        for _ in 0..MAX_ATTEMPTS {
            let current = self.authorized_key(actor, id)?;
            let now = self.now();
            let (mut next, detail) = change(&current, now)?;
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
        if change.identifier.is_none() && change.secret.is_none() {
            return Err(Error::NothingToChange);
        }
        if let Some(until) = change.grace_until {
            if change.secret.is_none() {
                return Err(GraceError::NoSecretChange.into());
            }
            let now = self.now();
            if until <= now {
                return Err(GraceError::NotInFuture { until, now }.into());
            }
            if until - now > self.policy.max_grace {
                return Err(GraceError::TooLong {
                    until,
                    max_seconds: self.policy.max_grace.whole_seconds(),
                }
                .into());
            }
        }
        let new_identifier = change
            .identifier
            .map(|c| self.resolve_identifier(c))
            .transpose()?;
        // The secret is hashed once, outside the retry loop (argon2 is slow);
        // it is checked against the identifier it will live with.
        let mut new_secret = None;
        let mut shown = None;
        if let Some(choice) = change.secret {
            let identifier = match &new_identifier {
                Some(i) => i.clone(),
                None => self.authorized_key(actor, id)?.identifier,
            };
            let (hash, secret) = self.resolve_secret(choice, &identifier)?;
            new_secret = Some(hash);
            shown = secret;
        }
        let grace_until = change.grace_until;
        let record =
            self.modify_key(actor, id, AuditKind::CredentialsChanged, |current, _now| {
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
                        detail.push(format!("previous secret valid until {}", rfc3339(until)));
                    }
                }
                if current.previous_secret.is_some() {
                    detail.push("earlier grace period ended".into());
                }
                Ok((next, detail.join("; ")))
            })?;
        Ok(IssuedKey {
            key: ApiKey::from(&record),
            secret: shown,
        })
    }

    // ----- whitelist ------------------------------------------------------

    /// The key's whitelist.
    pub fn whitelist(&self, actor: Actor, id: KeyId) -> Result<Whitelist, Error> {
        Ok(self.authorized_key(actor, id)?.whitelist)
    }

    /// Replaces the whole whitelist atomically; returns the normalised list.
    pub fn set_whitelist(
        &self,
        actor: Actor,
        id: KeyId,
        entries: Vec<IpNet>,
    ) -> Result<Whitelist, Error> {
        let wl = Whitelist::new(entries, self.policy.max_whitelist_entries)?;
        self.change_whitelist(actor, id, |_| Ok(wl.clone()))
    }

    /// Adds entries to the whitelist; returns the normalised list.
    pub fn add_to_whitelist(
        &self,
        actor: Actor,
        id: KeyId,
        entries: Vec<IpNet>,
    ) -> Result<Whitelist, Error> {
        let limit = self.policy.max_whitelist_entries;
        self.change_whitelist(actor, id, |wl| {
            Ok(wl.with_added(entries.iter().copied(), limit)?)
        })
    }

    /// Removes entries from the whitelist (absent ones are ignored); returns
    /// the normalised list.
    pub fn remove_from_whitelist(
        &self,
        actor: Actor,
        id: KeyId,
        entries: Vec<IpNet>,
    ) -> Result<Whitelist, Error> {
        self.change_whitelist(actor, id, |wl| Ok(wl.without(entries.iter().copied())))
    }

    fn change_whitelist(
        &self,
        actor: Actor,
        id: KeyId,
        mut f: impl FnMut(&Whitelist) -> Result<Whitelist, Error>,
    ) -> Result<Whitelist, Error> {
        let record = self.modify_key(actor, id, AuditKind::WhitelistChanged, |current, _| {
            let mut next = current.clone();
            next.whitelist = f(&current.whitelist)?;
            let detail = format!(
                "{} entries: {:?}",
                next.whitelist.entries().len(),
                next.whitelist
            );
            Ok((next, detail))
        })?;
        Ok(record.whitelist)
    }

    /// Whether `ip` would pass the key's whitelist, and which entry lets it.
    pub fn explain_address(
        &self,
        actor: Actor,
        id: KeyId,
        ip: IpAddr,
    ) -> Result<Explanation, Error> {
        Ok(self.authorized_key(actor, id)?.whitelist.explain(ip))
    }

    // ----- audit ----------------------------------------------------------

    /// The account's audit trail, newest first, at most `limit` events.
    pub fn audit(
        &self,
        actor: Actor,
        account_id: AccountId,
        limit: usize,
    ) -> Result<Vec<AuditEvent>, Error> {
        self.authorized_account(actor, account_id)?;
        Ok(self.store.audit_events(account_id, limit)?)
    }

    // ----- authentication -------------------------------------------------

    /// Checks credentials presented on `channel` from `client`.
    ///
    /// One uniform refusal for an unknown identifier, a wrong secret, a
    /// deleted key, another channel's key or an expired grace secret
    /// ([`AuthError::InvalidCredentials`], whose [`AuthError::reason`] tells
    /// the embedder which); [`AuthError::AddressNotAllowed`] only when the
    /// credentials are right. A generated-looking secret with a bad checksum
    /// is refused before any store lookup. A hash weaker than the policy is
    /// upgraded after a successful check.
    pub fn authenticate(
        &self,
        channel: Channel,
        identifier: &str,
        secret: &str,
        client: IpAddr,
    ) -> Result<Authenticated, AuthError> {
        // With argon2 allowed, every check reaches a verdict.
        self.check(channel, identifier, secret, client, true)
            .unwrap_or(Err(AuthError::InvalidCredentials(Refusal::WrongSecret)))
    }

    /// As [`ApiKeys::authenticate`], but never runs argon2: `None` when the
    /// verdict would need it (a chosen secret that the verified-secret cache
    /// does not vouch for, or an unknown identifier with a secret not of the
    /// generated shape, which costs a dummy argon2).
    ///
    /// For async adapters: this costs one store lookup and a SHA-256 (or a
    /// keyed hash), so it may run on the event loop of a fast local store;
    /// on `None`, call [`ApiKeys::authenticate`] where blocking for tens of
    /// milliseconds is acceptable, with a bound on how many run at once.
    /// Deciding by the secret's shape alone is not enough: a secret of the
    /// generated shape presented for a key with a chosen secret meets
    /// argon2.
    pub fn authenticate_without_argon2(
        &self,
        channel: Channel,
        identifier: &str,
        secret: &str,
        client: IpAddr,
    ) -> Option<Result<Authenticated, AuthError>> {
        self.check(channel, identifier, secret, client, false)
    }

    /// The check behind both: `None` only when `allow_argon2` is false and
    /// the verdict needs argon2.
    fn check(
        &self,
        channel: Channel,
        identifier: &str,
        secret: &str,
        client: IpAddr,
        allow_argon2: bool,
    ) -> Option<Result<Authenticated, AuthError>> {
        let shape = generated_shape(secret);
        if shape == GeneratedShape::BadChecksum {
            return Some(Err(AuthError::InvalidCredentials(Refusal::MalformedSecret)));
        }
        // Nothing longer than the rules allow can match: refuse without a
        // lookup, and without feeding argon2 a huge input.
        if identifier.len() > 64 {
            return Some(Err(AuthError::InvalidCredentials(
                Refusal::UnknownIdentifier,
            )));
        }
        if secret.len() > 128.max(GENERATED_SECRET_LEN) {
            return Some(Err(AuthError::InvalidCredentials(Refusal::MalformedSecret)));
        }
        let hashing = &self.policy.hashing;
        let key = match self.store.key_by_identifier(identifier) {
            Ok(key) => key,
            Err(e) => return Some(Err(AuthError::Unavailable(e))),
        };
        let Some(key) = key else {
            if shape == GeneratedShape::Other {
                if !allow_argon2 {
                    return None;
                }
                // Same cost as a wrong chosen secret.
                let _ = verify_secret(hashing, secret, &self.dummy_hash);
            }
            return Some(Err(AuthError::InvalidCredentials(
                Refusal::UnknownIdentifier,
            )));
        };
        let mut via_grace = false;
        let verdict =
            match self.verify(&key, Slot::Current, &key.secret_hash, secret, allow_argon2)? {
                Verification::Match { needs_rehash } => Ok(needs_rehash),
                Verification::UnknownFormat => Err(Refusal::UnreadableHash),
                Verification::Mismatch => match &key.previous_secret {
                    Some(prev) => {
                        match self.verify(&key, Slot::Previous, &prev.hash, secret, allow_argon2)? {
                            // The clock is read only here, where the
                            // answer depends on it.
                            Verification::Match { .. } if self.now() < prev.expires_at => {
                                via_grace = true;
                                Ok(false)
                            }
                            Verification::Match { .. } => Err(Refusal::GraceExpired),
                            _ => Err(Refusal::WrongSecret),
                        }
                    }
                    None => Err(Refusal::WrongSecret),
                },
            };
        // The channel is checked after the secret, so that another channel's
        // key costs the same as a wrong secret.
        if key.channel != channel {
            return Some(Err(AuthError::InvalidCredentials(Refusal::WrongChannel {
                key_channel: key.channel,
            })));
        }
        let needs_rehash = match verdict {
            Ok(needs_rehash) => needs_rehash,
            Err(refusal) => return Some(Err(AuthError::InvalidCredentials(refusal))),
        };
        if !key.whitelist.allows(client) {
            return Some(Err(AuthError::AddressNotAllowed {
                key_id: key.id,
                client,
            }));
        }
        // Only an argon2 match asks for a rehash, and rehashing is argon2.
        if needs_rehash && allow_argon2 {
            self.upgrade_hash(&key, secret);
        }
        Some(Ok(Authenticated {
            account_id: key.account_id,
            key_id: key.id,
            channel,
            via_grace,
        }))
    }

    /// Checks `secret` against one of the key's stored hashes, through the
    /// verified-secret cache when the hash is a slow (argon2) one.
    /// `None` if that needs argon2 and `allow_argon2` is false.
    fn verify(
        &self,
        key: &KeyRecord,
        slot: Slot,
        stored: &str,
        secret: &str,
        allow_argon2: bool,
    ) -> Option<Verification> {
        let slow = !is_fast_hash(stored);
        let cache = self.cache.as_ref().filter(|_| slow);
        if let Some(cache) = cache
            && cache.vouches(key.id, slot, key.version, stored, secret)
        {
            self.cached_checks.fetch_add(1, Ordering::Relaxed);
            return Some(Verification::Match {
                needs_rehash: false,
            });
        }
        if slow {
            if !allow_argon2 {
                return None;
            }
            self.slow_checks.fetch_add(1, Ordering::Relaxed);
        }
        let verdict = verify_secret(&self.policy.hashing, secret, stored);
        if let Some(cache) = cache
            && verdict
                == (Verification::Match {
                    needs_rehash: false,
                })
        {
            cache.remember(key.id, slot, key.version, stored, secret);
        }
        Some(verdict)
    }

    /// Best effort: a failed upgrade leaves the old, still valid hash, and is
    /// tried again at the next successful check.
    fn upgrade_hash(&self, key: &KeyRecord, secret: &str) {
        let secret = Secret::new(secret);
        let salt = self.with_rng(|r| random_salt(r));
        if let Ok(upgraded) =
            hash_secret(&self.policy.hashing, &secret, SecretOrigin::Chosen, &salt)
        {
            let _ = self
                .store
                .upgrade_secret_hash(key.id, &key.secret_hash, &upgraded);
        }
    }
}

fn key_event(
    key: &KeyRecord,
    kind: AuditKind,
    actor: Actor,
    at: OffsetDateTime,
    detail: String,
) -> AuditEvent {
    AuditEvent {
        account_id: key.account_id,
        key_id: Some(key.id),
        channel: Some(key.channel),
        at,
        kind,
        actor,
        detail,
    }
}

fn label_detail(key: &KeyRecord) -> String {
    match &key.label {
        Some(l) => format!("identifier {}, label {l:?}", key.identifier),
        None => format!("identifier {}", key.identifier),
    }
}

/// An instant as RFC 3339 text, for audit details.
pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

fn channel_list(set: ChannelSet) -> String {
    if set.is_empty() {
        return "none".into();
    }
    set.iter()
        .map(Channel::label)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Maps a store error onto the caller's error, naming what it concerns.
fn map_store(e: StoreError, account: &AccountId, key: Option<&KeyRecord>) -> Error {
    match (e, key) {
        (StoreError::NotFound(Entity::Account(id)), _) => Error::AccountNotFound(id),
        (StoreError::NotFound(Entity::Key(id)), _) => Error::KeyNotFound(id),
        (StoreError::AlreadyExists(Existing::Identifier), Some(k)) => {
            Error::IdentifierTaken(k.identifier.clone())
        }
        (StoreError::AlreadyExists(Existing::ChannelFull(channel)), _) => {
            Error::ChannelAlreadyActive {
                account: *account,
                channel,
            }
        }
        (e, _) => Error::Store(e),
    }
}

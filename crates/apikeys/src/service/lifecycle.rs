//! Lifecycle: expiry, disabling, suspension, an account's policy over its
//! keys, last use and dormancy. The rules authentication applies are in
//! [`crate::lifecycle`]; the recording of last use in [`crate::usage`].
//!
//! Rules of the operations here:
//! - A key's expiry may be set at creation or later, changed or cleared.
//!   It must be in the future; when a lifetime cap applies (the policy's
//!   `max_key_lifetime`, and for a sub-account's key its master's), it may
//!   be no later than the key's creation plus the cap, and cannot be
//!   cleared. A new key under a cap, created without an expiry, expires at
//!   the cap.
//! - A key may be disabled and enabled again: nothing else about it
//!   changes. Both are changes of the key (new version, audited).
//! - An account is suspended and resumed by the operator, or, for a
//!   sub-account, by its master. A master cannot suspend itself.
//! - An account's policy is set by the operator, or by the master (its own
//!   and its sub-accounts'). A sub-account may read its policy, not change
//!   it. A sub-account's policy holds only a whitelist.
//! - Dormant keys: unused for N days (1 to 36,500), a never-used key
//!   counting from its creation. Last use still waiting for a flush counts.
//! - The dormancy action (off unless the policy sets
//!   `disable_dormant_legacy_defaults_after`) disables every enabled legacy
//!   default key never used and older than that; its dry run lists them and
//!   changes nothing. The operator only. Each key it disables is audited.

use super::keys::{MAX_ATTEMPTS, Precondition};
use super::{ApiKeys, account_event, key_event, map_store, rfc3339};
use crate::account::{Account, AccountKind, AccountPolicy, Actor};
use crate::audit::AuditKind;
use crate::auth::SecretSlot;
use crate::channel::ChannelSet;
use crate::error::{AccountPolicyError, Error, ExpiryError};
use crate::id::{AccountId, KeyId};
use crate::key::{ApiKey, KeyRecord};
use crate::lifecycle::{self, AccessExplanation, Holders};
use crate::policy::MAX_KEY_LIFETIME;
use crate::store::{DormantQuery, StoreError};
use crate::usage::KeyUse;
use crate::whitelist::Whitelist;
use std::net::IpAddr;
use time::{Duration, OffsetDateTime};

/// The first instant too late for an expiry: 2200-01-01T00:00:00Z, as for
/// an account's creation (well inside what every store keeps).
pub const LATEST_EXPIRY: OffsetDateTime = crate::account::LATEST_CREATION;

/// The most days a dormancy query may name (100 years).
pub const MAX_DORMANT_DAYS: u32 = 36_500;

/// A change of a key's label, expiry and enabled state, in one write. Each
/// field left `None` stays as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyUpdate {
    /// `Some(Some(label))` sets the label, `Some(None)` removes it.
    pub label: Option<Option<String>>,
    /// `Some(Some(at))` sets the expiry, `Some(None)` clears it.
    pub expires_at: Option<Option<OffsetDateTime>>,
    /// `Some(false)` disables the key, `Some(true)` enables it.
    pub enabled: Option<bool>,
}

/// What the last-use recorder holds, for metrics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UsageStats {
    /// Keys whose last use waits for a flush.
    pub waiting: u64,
    /// Uses dropped because the recorder was full.
    pub dropped: u64,
}

impl ApiKeys {
    /// The holders of a key of `account`: the account and its master.
    pub(super) fn holders_of(&self, account: &Account) -> Result<Holders, Error> {
        let master = match account.kind.parent() {
            Some(parent) => self.store.account(parent)?,
            None => None,
        };
        Ok(Holders {
            account: account.clone(),
            master,
        })
    }

    /// The view of `record` with its state at the service's now, and the
    /// last use still waiting for a flush merged in.
    pub(super) fn view(&self, record: &KeyRecord, holders: &Holders) -> ApiKey {
        let mut key = ApiKey::with_state(record, lifecycle::state(record, holders, self.now()));
        if let Some(waiting) = self.usage.pending(record.id) {
            key.usage = key.usage.merged(waiting.as_usage());
        }
        key
    }

    /// [`ApiKeys::view`], reading the holders.
    pub(super) fn view_of(&self, record: &KeyRecord) -> Result<ApiKey, Error> {
        match self.store.holders(record.account_id)? {
            Some(holders) => Ok(self.view(record, &holders)),
            None => Err(Error::AccountNotFound(record.account_id)),
        }
    }

    /// The expiry a key of `account` created at `created_at` gets, when
    /// `requested` (or nothing) is asked for at `now`: checked against the
    /// future and every lifetime cap that applies.
    pub(super) fn resolve_expiry(
        &self,
        account: &Account,
        created_at: OffsetDateTime,
        now: OffsetDateTime,
        requested: Option<OffsetDateTime>,
        new_key: bool,
    ) -> Result<Option<OffsetDateTime>, Error> {
        let master_cap = match account.kind.parent() {
            Some(parent) => self
                .store
                .account(parent)?
                .and_then(|m| m.policy.max_key_lifetime),
            None => None,
        };
        let requested = match (requested, new_key) {
            (r, true) => r,
            (None, false) => {
                return match lifetime_end(self.policy.max_key_lifetime, master_cap, created_at) {
                    None => Ok(None),
                    Some((latest, by)) => Err(ExpiryError::Required { latest, by }.into()),
                };
            }
            (r, false) => r,
        };
        expiry_within(
            self.policy.max_key_lifetime,
            master_cap,
            created_at,
            now,
            requested,
        )
    }

    /// Changes a key's label, expiry and enabled state in one write (one
    /// version), if the key meets `precondition`. Audited as one event:
    /// `key_disabled`/`key_enabled` when the state changes, else
    /// `expiry_changed` when the expiry does, else `label_changed`; its
    /// detail names every change.
    pub fn update_key(
        &self,
        actor: Actor,
        id: KeyId,
        update: KeyUpdate,
        precondition: impl Into<Precondition>,
    ) -> Result<ApiKey, Error> {
        if update == KeyUpdate::default() {
            return Err(Error::NothingToChange);
        }
        if let Some(Some(label)) = &update.label {
            crate::credentials::validate_label(label)?;
        }
        let precondition = precondition.into();
        let kind = match (update.enabled, update.expires_at) {
            (Some(false), _) => AuditKind::KeyDisabled,
            (Some(true), _) => AuditKind::KeyEnabled,
            (None, Some(_)) => AuditKind::ExpiryChanged,
            (None, None) => AuditKind::LabelChanged,
        };
        let record = self.modify_key(actor, id, kind, &precondition, |current| {
            let mut next = current.clone();
            let mut detail = Vec::new();
            if let Some(enabled) = update.enabled {
                next.enabled = enabled;
                detail.push(match (current.enabled, enabled) {
                    (true, false) => "disabled".to_string(),
                    (false, true) => "enabled".to_string(),
                    (_, true) => "enabled (it was)".to_string(),
                    (_, false) => "disabled (it was)".to_string(),
                });
            }
            if let Some(expiry) = update.expires_at {
                let account = self
                    .store
                    .account(current.account_id)?
                    .ok_or(Error::AccountNotFound(current.account_id))?;
                next.expires_at =
                    self.resolve_expiry(&account, current.created_at, self.now(), expiry, false)?;
                detail.push(match next.expires_at {
                    Some(at) => format!("expiry set to {}", rfc3339(at)),
                    None => "expiry cleared".to_string(),
                });
            }
            if let Some(label) = &update.label {
                next.label = label.clone();
                detail.push(match label {
                    Some(l) => format!("label set to {l:?}"),
                    None => "label removed".to_string(),
                });
            }
            Ok((next, detail.join("; ")))
        })?;
        self.view_of(&record)
    }

    /// Sets (`Some`) or clears (`None`) a key's expiry, if the key meets
    /// `precondition` (see the module's rules).
    pub fn set_expiry(
        &self,
        actor: Actor,
        id: KeyId,
        expires_at: Option<OffsetDateTime>,
        precondition: impl Into<Precondition>,
    ) -> Result<ApiKey, Error> {
        let update = KeyUpdate {
            expires_at: Some(expires_at),
            ..KeyUpdate::default()
        };
        self.update_key(actor, id, update, precondition)
    }

    /// Enables or disables a key, if it meets `precondition`.
    pub fn set_enabled(
        &self,
        actor: Actor,
        id: KeyId,
        enabled: bool,
        precondition: impl Into<Precondition>,
    ) -> Result<ApiKey, Error> {
        let update = KeyUpdate {
            enabled: Some(enabled),
            ..KeyUpdate::default()
        };
        self.update_key(actor, id, update, precondition)
    }

    /// Suspends or resumes an account: from the next request on, in every
    /// process, its keys and REST tokens refuse (for a master, its
    /// sub-accounts' too), or work again. Audited on the account.
    pub fn set_suspended(
        &self,
        actor: Actor,
        id: AccountId,
        suspended: bool,
    ) -> Result<Account, Error> {
        let account = self.authorized_account(actor, id)?;
        if let Actor::Account(me) = actor
            && account.kind.parent() != Some(me)
        {
            return Err(Error::Forbidden { actor, account: id });
        }
        let (kind, what) = if suspended {
            (AuditKind::AccountSuspended, "suspended")
        } else {
            (AuditKind::AccountResumed, "resumed")
        };
        let detail = match (account.kind, account.suspended == suspended) {
            (_, true) => format!("{what} (it was already)"),
            (AccountKind::Master, _) => format!("{what}, with its sub-accounts' keys"),
            (AccountKind::Sub { .. }, _) => what.to_string(),
        };
        let event = account_event(id, kind, actor, self.now(), detail);
        self.store
            .set_account_suspended(id, suspended, &event)
            .map_err(|e| map_store(e, &id, None))?;
        Ok(Account {
            suspended,
            ..account
        })
    }

    /// The account's policy.
    pub fn account_policy(&self, actor: Actor, id: AccountId) -> Result<AccountPolicy, Error> {
        Ok(self.authorized_account(actor, id)?.policy)
    }

    /// Replaces an account's policy (see the module's rules); applies to
    /// existing keys from the next request on. Audited on the account.
    pub fn set_account_policy(
        &self,
        actor: Actor,
        id: AccountId,
        policy: AccountPolicy,
    ) -> Result<Account, Error> {
        let account = self.authorized_account(actor, id)?;
        if let (Actor::Account(me), AccountKind::Sub { .. }) = (actor, account.kind)
            && me == id
        {
            return Err(AccountPolicyError::SetBySubAccount(id).into());
        }
        if matches!(account.kind, AccountKind::Sub { .. })
            && (policy.sub_account_channels != ChannelSet::ALL || policy.max_key_lifetime.is_some())
        {
            return Err(AccountPolicyError::SubAccountRules.into());
        }
        if policy
            .max_key_lifetime
            .is_some_and(|l| !l.is_positive() || l > MAX_KEY_LIFETIME)
        {
            return Err(AccountPolicyError::Lifetime.into());
        }
        let whitelist = Whitelist::new(
            policy.whitelist.entries().to_vec(),
            self.policy.max_whitelist_entries,
        )?;
        let policy = AccountPolicy {
            whitelist,
            ..policy
        };
        let detail = policy_detail(&policy);
        let event = account_event(id, AuditKind::PolicyChanged, actor, self.now(), detail);
        self.store
            .set_account_policy(id, &policy, &event)
            .map_err(|e| map_store(e, &id, None))?;
        Ok(Account { policy, ..account })
    }

    /// How the key's whitelist, its account's and its master's judge `ip`,
    /// and which refuses it first.
    pub fn explain_access(
        &self,
        actor: Actor,
        id: KeyId,
        ip: IpAddr,
    ) -> Result<AccessExplanation, Error> {
        let key = self.authorized_key(actor, id)?;
        let holders = self
            .store
            .holders(key.account_id)?
            .ok_or(Error::AccountNotFound(key.account_id))?;
        Ok(lifecycle::explain(&key, &holders, ip))
    }

    /// The keys of `account` (and, for a master, of its sub-accounts)
    /// unused for `days` days, ascending by id.
    pub fn dormant_keys(
        &self,
        actor: Actor,
        account: AccountId,
        days: u32,
    ) -> Result<Vec<ApiKey>, Error> {
        let account = self.authorized_account(actor, account)?;
        let since = self.dormant_since(days)?;
        let query = DormantQuery {
            account: Some(account.id),
            unused_since: since,
            legacy_defaults_only: false,
            after: None,
            limit: usize::MAX,
        };
        let found = self.store.dormant_keys(&query)?;
        self.dormant_views(found, since)
    }

    /// Every account's keys unused for `days` days (only never-used legacy
    /// default keys when `legacy_defaults_only`), ascending by id: at most
    /// `limit` after `after`, and the cursor of the next page. The operator
    /// only.
    pub fn all_dormant_keys(
        &self,
        actor: Actor,
        days: u32,
        legacy_defaults_only: bool,
        after: Option<KeyId>,
        limit: usize,
    ) -> Result<(Vec<ApiKey>, Option<KeyId>), Error> {
        if let Actor::Account(me) = actor {
            return Err(Error::Forbidden { actor, account: me });
        }
        let since = self.dormant_since(days)?;
        if limit == 0 {
            return Ok((Vec::new(), None));
        }
        let query = DormantQuery {
            account: None,
            unused_since: since,
            legacy_defaults_only,
            after,
            limit: limit.saturating_add(1),
        };
        let mut found = self.store.dormant_keys(&query)?;
        let next = if found.len() > limit {
            found.truncate(limit);
            found.last().map(|k| k.id)
        } else {
            None
        };
        Ok((self.dormant_views(found, since)?, next))
    }

    /// The dormancy action: disables every enabled legacy default key never
    /// used and older than the policy's `disable_dormant_legacy_defaults_after`,
    /// or, with `dry_run`, only lists them. Returns the keys it disabled (or
    /// would). The operator only; [`Error::DormancyActionOff`] when the
    /// policy does not set the action.
    pub fn disable_dormant_legacy_defaults(
        &self,
        actor: Actor,
        dry_run: bool,
    ) -> Result<Vec<ApiKey>, Error> {
        if let Actor::Account(me) = actor {
            return Err(Error::Forbidden { actor, account: me });
        }
        let after_period = self
            .policy
            .disable_dormant_legacy_defaults_after
            .ok_or(Error::DormancyActionOff)?;
        let since = self
            .now()
            .checked_sub(after_period)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let mut done = Vec::new();
        let mut after = None;
        loop {
            let query = DormantQuery {
                account: None,
                unused_since: since,
                legacy_defaults_only: true,
                after,
                limit: 1000,
            };
            let page = self.store.dormant_keys(&query)?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            for key in page {
                if !key.enabled || self.usage.pending(key.id).is_some() {
                    continue;
                }
                if dry_run {
                    done.push(self.view_of(&key)?);
                    continue;
                }
                if let Some(disabled) = self.disable_if_dormant(&key, &query, after_period)? {
                    done.push(self.view_of(&disabled)?);
                }
            }
        }
        Ok(done)
    }

    /// Disables `key` if it is still a dormant legacy default, re-checked
    /// on the version written (compare-and-swap): a key used, changed or
    /// disabled meanwhile is left alone.
    fn disable_if_dormant(
        &self,
        key: &KeyRecord,
        query: &DormantQuery,
        period: Duration,
    ) -> Result<Option<KeyRecord>, Error> {
        let mut current = key.clone();
        for _ in 0..MAX_ATTEMPTS {
            if !current.enabled || !query.matches(&current) {
                return Ok(None);
            }
            let now = self.now();
            let mut next = current.clone();
            next.enabled = false;
            next.version = current.version + 1;
            next.changed_at = now;
            let detail = format!(
                "disabled as a dormant legacy default key: never used in the {} days since it was issued",
                period.whole_days()
            );
            let event = key_event(&next, AuditKind::KeyDisabled, Actor::Operator, now, detail);
            match self.store.update_key(&next, current.version, &event) {
                Ok(()) => return Ok(Some(next)),
                Err(StoreError::Conflict { .. }) => match self.store.key(key.id)? {
                    Some(k) => current = k,
                    None => return Ok(None),
                },
                Err(StoreError::NotFound(_)) => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::ConcurrentChange(key.id))
    }

    fn dormant_since(&self, days: u32) -> Result<OffsetDateTime, Error> {
        if !(1..=MAX_DORMANT_DAYS).contains(&days) {
            return Err(Error::InvalidDormancy(days));
        }
        Ok(self
            .now()
            .checked_sub(Duration::days(i64::from(days)))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH))
    }

    /// The views of dormant keys, without those whose use waits for a flush.
    fn dormant_views(
        &self,
        found: Vec<KeyRecord>,
        since: OffsetDateTime,
    ) -> Result<Vec<ApiKey>, Error> {
        let mut out = Vec::with_capacity(found.len());
        for k in found {
            if self.usage.pending(k.id).is_some_and(|u| u.at > since) {
                continue;
            }
            out.push(self.view_of(&k)?);
        }
        Ok(out)
    }

    /// Notes a successful authentication for the write-behind recorder.
    pub(super) fn note_use(
        &self,
        key: &KeyRecord,
        matched: SecretSlot,
        client: IpAddr,
        at: OffsetDateTime,
    ) {
        let previous = match (matched, &key.previous_secret) {
            (SecretSlot::Previous, Some(p)) => Some((at, p.hash.clone())),
            _ => None,
        };
        self.usage.note(KeyUse {
            key_id: key.id,
            at,
            address: client.to_canonical(),
            previous,
        });
    }

    /// Writes every last use noted since the last flush, in one store
    /// write; returns how many keys it wrote. On failure the uses are kept
    /// for the next flush (within the recorder's bound).
    pub fn flush_usage(&self) -> Result<usize, Error> {
        let uses = self.usage.take();
        if uses.is_empty() {
            return Ok(0);
        }
        match self.store.record_uses(&uses) {
            Ok(()) => Ok(uses.len()),
            Err(e) => {
                self.usage.put_back(uses);
                Err(e.into())
            }
        }
    }

    /// What the last-use recorder holds now.
    pub fn usage_stats(&self) -> UsageStats {
        UsageStats {
            waiting: self.usage.waiting(),
            dropped: self.usage.dropped(),
        }
    }
}

/// When a key created at `created_at` must stop working under the
/// service's and the master's caps, and which cap says so (the earlier).
fn lifetime_end(
    policy_cap: Option<time::Duration>,
    master_cap: Option<time::Duration>,
    created_at: OffsetDateTime,
) -> Option<(OffsetDateTime, &'static str)> {
    [(policy_cap, "policy"), (master_cap, "master's policy")]
        .iter()
        .filter_map(|(cap, by)| {
            cap.and_then(|c| created_at.checked_add(c))
                .map(|l| (l, *by))
        })
        .min_by_key(|(l, _)| *l)
}

/// The expiry of a new key created at `created_at`, when `requested` (or
/// nothing) is asked for at `now`: in the future, before the latest expiry
/// any store keeps, and within the caps (a key asking for none gets the
/// earliest cap's end).
pub(super) fn expiry_within(
    policy_cap: Option<time::Duration>,
    master_cap: Option<time::Duration>,
    created_at: OffsetDateTime,
    now: OffsetDateTime,
    requested: Option<OffsetDateTime>,
) -> Result<Option<OffsetDateTime>, Error> {
    let latest = lifetime_end(policy_cap, master_cap, created_at);
    match (requested, latest) {
        (None, None) => Ok(None),
        (None, Some((latest, _))) => Ok(Some(latest)),
        (Some(at), _) if at <= now => Err(ExpiryError::NotInFuture { at, now }.into()),
        (Some(at), Some((latest, by))) if at > latest => {
            Err(ExpiryError::BeyondLifetime { at, latest, by }.into())
        }
        (Some(at), _) if at >= LATEST_EXPIRY => Err(ExpiryError::OutOfRange { at }.into()),
        (Some(at), _) => Ok(Some(at.to_offset(time::UtcOffset::UTC))),
    }
}

fn policy_detail(p: &AccountPolicy) -> String {
    let lifetime = match p.max_key_lifetime {
        Some(l) => format!("{} s", l.whole_seconds()),
        None => "none".into(),
    };
    format!(
        "whitelist {} entries: {:?}; sub-account channels: {}; longest key lifetime: {lifetime}",
        p.whitelist.entries().len(),
        p.whitelist,
        super::channel_list(p.sub_account_channels),
    )
}

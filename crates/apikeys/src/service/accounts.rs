//! Opening accounts, who may act on what, and the audit trail.
//!
//! Rules:
//! - An account is a master or a sub-account of a master; a sub-account has
//!   no sub-accounts of its own.
//! - Its creation instant is an input (imported accounts keep their dates;
//!   by default it is the service's "now") and must fall from 1970 to before
//!   2200, a range every store keeps.
//! - The operator may open any account; a master may open its own
//!   sub-accounts; nobody else may open anything.
//! - An account asking about an account or a key it may not manage gets
//!   exactly the answer for one that does not exist ("not found"), decided
//!   before anything else is looked at or any secret hashed: it learns
//!   nothing about what others hold.
//! - A master's sub-accounts are listed oldest first (ties by id) to whoever
//!   may see the master; a sub-account has none, so its listing is empty
//!   (decided: not an error, since the question has an answer).
//! - Only the operator lists every account, in pages by id (a keyset
//!   cursor: the last id of a page starts the next, so accounts opened
//!   meanwhile neither shift nor repeat a page); an account asking is
//!   refused (`Forbidden`).
//! - Opening a master created before the policy's cutover issues its default
//!   keys, with generated credentials, in the same transaction; their
//!   secrets are returned this once. Defaults apply once: a default key
//!   deleted later stays deleted.

use super::keys::NewKey;
use super::{ApiKeys, account_event, channel_list, key_event, map_store, rfc3339};
use crate::account::{Account, AccountKind, Actor, EARLIEST_CREATION, ExternalId, LATEST_CREATION};
use crate::audit::{AuditEvent, AuditKind};
use crate::error::Error;
use crate::id::{AccountId, KeyId};
use crate::key::{ApiKey, IssuedKey, KeyRecord};
use crate::store::{Existing, StoreError};
use time::{OffsetDateTime, UtcOffset};

/// What a new account should be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAccount {
    /// Master, or sub-account of a master.
    pub kind: AccountKind,
    /// When it was created; `None` means the service's "now".
    pub created_at: Option<OffsetDateTime>,
    /// The platform's own id for it, if any: unique among accounts.
    pub external_id: Option<ExternalId>,
}

impl NewAccount {
    /// An account of this kind, created now.
    pub fn new(kind: AccountKind) -> Self {
        NewAccount {
            kind,
            created_at: None,
            external_id: None,
        }
    }

    /// A master account, created now.
    pub fn master() -> Self {
        NewAccount {
            kind: AccountKind::Master,
            created_at: None,
            external_id: None,
        }
    }

    /// A sub-account of `parent`, created now.
    pub fn sub(parent: AccountId) -> Self {
        NewAccount {
            kind: AccountKind::Sub { parent },
            created_at: None,
            external_id: None,
        }
    }

    /// This account with a given creation instant (an imported account's).
    #[must_use]
    pub fn created_at(mut self, at: OffsetDateTime) -> Self {
        self.created_at = Some(at);
        self
    }

    /// This account carrying the platform's own id for it.
    #[must_use]
    pub fn external_id(mut self, external_id: ExternalId) -> Self {
        self.external_id = Some(external_id);
        self
    }
}

/// A new account opened, and the default keys issued to it (with their
/// secrets, shown this once).
#[derive(Debug)]
pub struct OpenedAccount {
    /// The account.
    pub account: Account,
    /// The default keys of a legacy master (none otherwise), in channel order.
    pub issued: Vec<IssuedKey>,
}

impl ApiKeys {
    /// Opens an account, issuing the policy's default keys to a legacy
    /// master, all in one transaction.
    ///
    /// Who may: the operator, any account; a master, its own sub-accounts.
    /// Who may act is decided before anything about the parent is looked at.
    pub fn open_account(&self, actor: Actor, new: NewAccount) -> Result<OpenedAccount, Error> {
        let NewAccount {
            kind,
            created_at,
            external_id,
        } = new;
        match (actor, kind) {
            // Another's master looks exactly like one that does not exist.
            (Actor::Account(me), AccountKind::Sub { parent }) if me != parent => {
                return Err(Error::AccountNotFound(parent));
            }
            (Actor::Account(me), AccountKind::Master) => {
                return Err(Error::Forbidden { actor, account: me });
            }
            _ => {}
        }
        let now = self.now();
        let created_at = created_at.unwrap_or(now).to_offset(UtcOffset::UTC);
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
        }
        let account = Account {
            external_id: external_id.clone(),
            ..Account::new(self.with_rng(|r| AccountId::random(r)), kind, created_at)
        };
        let defaults = self
            .policy
            .activation
            .default_channels(&kind, account.created_at);
        let mut records = Vec::with_capacity(defaults.len());
        let mut issued = Vec::with_capacity(defaults.len());
        let detail = format!(
            "{} account created at {}; default channels: {}",
            kind.code(),
            rfc3339(account.created_at),
            channel_list(defaults)
        );
        let mut events = vec![account_event(
            account.id,
            AuditKind::AccountOpened,
            actor,
            now,
            detail,
        )];
        self.issue_defaults(
            &account,
            defaults,
            actor,
            now,
            (&mut records, &mut events, &mut issued),
        )?;
        self.store
            .create_account(&account, &records, &events)
            .map_err(|e| match (e, external_id) {
                (StoreError::AlreadyExists(Existing::ExternalId), Some(x)) => {
                    Error::ExternalIdTaken(x)
                }
                (e, _) => map_store(e, &account.id, None),
            })?;
        Ok(OpenedAccount { account, issued })
    }

    /// Issues the default keys of `channels` to `account` (generated
    /// credentials, marked as legacy defaults), adding each record, its
    /// `key_created` event and the key with its secret to `into`.
    pub(super) fn issue_defaults(
        &self,
        account: &Account,
        channels: crate::channel::ChannelSet,
        actor: Actor,
        now: OffsetDateTime,
        into: (
            &mut Vec<KeyRecord>,
            &mut Vec<AuditEvent>,
            &mut Vec<IssuedKey>,
        ),
    ) -> Result<(), Error> {
        let (records, events, issued) = into;
        for channel in channels.iter() {
            let (mut record, secret) = self.build_key(account, NewKey::generated(channel), now)?;
            record.legacy_default = true;
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
        Ok(())
    }

    /// The account, if the actor may see it.
    pub fn account(&self, actor: Actor, id: AccountId) -> Result<Account, Error> {
        self.authorized_account(actor, id)
    }

    /// The sub-accounts of `master`, oldest first (ties by id), if the actor
    /// may see it: the operator, the master itself. Another's master is
    /// "not found", as for [`ApiKeys::account`]; a sub-account (asked by
    /// itself, its master or the operator) has none: an empty list.
    pub fn sub_accounts(&self, actor: Actor, master: AccountId) -> Result<Vec<Account>, Error> {
        let account = self.authorized_account(actor, master)?;
        if !matches!(account.kind, AccountKind::Master) {
            return Ok(Vec::new());
        }
        Ok(self.store.sub_accounts(master)?)
    }

    /// A page of every account, masters and sub-accounts, ascending by id:
    /// at most `limit` accounts whose id is after `after` (from the first
    /// when `None`), and the cursor of the next page, `None` on the last.
    /// The operator only: an account is [`Error::Forbidden`].
    pub fn accounts(
        &self,
        actor: Actor,
        after: Option<AccountId>,
        limit: usize,
    ) -> Result<(Vec<Account>, Option<AccountId>), Error> {
        if let Actor::Account(me) = actor {
            return Err(Error::Forbidden { actor, account: me });
        }
        if limit == 0 {
            return Ok((Vec::new(), None));
        }
        // One more than asked tells whether a next page exists, so the last
        // page says so instead of sending the caller to an empty one.
        let mut page = self.store.accounts(after, limit.saturating_add(1))?;
        let next = if page.len() > limit {
            page.truncate(limit);
            page.last().map(|a| a.id)
        } else {
            None
        };
        Ok((page, next))
    }

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

    /// The account, if the actor may manage it. One the actor may not see
    /// is answered exactly as one that does not exist: an account learns
    /// nothing about the others.
    pub(super) fn authorized_account(&self, actor: Actor, id: AccountId) -> Result<Account, Error> {
        match self.store.account(id)? {
            Some(account) if actor.may_manage(&account) => Ok(account),
            _ => Err(Error::AccountNotFound(id)),
        }
    }

    /// The key, if the actor may manage its account; like
    /// [`ApiKeys::authorized_account`], another's key is "not found".
    pub(super) fn authorized_key(&self, actor: Actor, id: KeyId) -> Result<KeyRecord, Error> {
        let key = self.store.key(id)?.ok_or(Error::KeyNotFound(id))?;
        match actor {
            Actor::Operator => {}
            Actor::Account(me) if me == key.account_id => {}
            Actor::Account(_) => {
                self.authorized_account(actor, key.account_id)
                    .map_err(|_| Error::KeyNotFound(id))?;
            }
        }
        Ok(key)
    }
}

//! The audit trail.
//!
//! Rules:
//! - Every change (an account opened, a key created, credentials changed, a
//!   whitelist changed, a label changed, a key deleted, a REST token issued) is recorded with the account, the key
//!   and its channel when there is one, the instant, the actor and the kind
//!   of change, and a detail in words.
//! - It never holds a secret.
//! - The store writes it in the same transaction as the change: both or
//!   neither.
//! - It is listed per account, newest first.

use crate::account::Actor;
use crate::channel::Channel;
use crate::id::{AccountId, KeyId, ParseIdError};
use std::fmt;
use std::str::FromStr;
use time::OffsetDateTime;

/// The longest detail, in bytes, the service ever writes (a whitelist change
/// lists every entry): the bound a store's schema must hold.
pub const MAX_DETAIL_LEN: usize = 65_536;

/// What kind of change an event records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuditKind {
    /// An account was opened.
    AccountOpened,
    /// A key was created.
    KeyCreated,
    /// A key's identifier or secret changed.
    CredentialsChanged,
    /// A key's IP whitelist changed.
    WhitelistChanged,
    /// A key was deleted.
    KeyDeleted,
    /// A REST token was issued for a key.
    TokenIssued,
    /// A key's label was set, changed or removed.
    LabelChanged,
    /// A key was disabled.
    KeyDisabled,
    /// A key was enabled again.
    KeyEnabled,
    /// A key's expiry was set, changed or cleared.
    ExpiryChanged,
    /// An account was suspended.
    AccountSuspended,
    /// An account was resumed.
    AccountResumed,
    /// An account's policy (account-wide whitelist, sub-accounts' channels
    /// and key lifetime) changed.
    PolicyChanged,
}

impl AuditKind {
    /// Every kind.
    pub const ALL: [AuditKind; 13] = [
        AuditKind::AccountOpened,
        AuditKind::KeyCreated,
        AuditKind::CredentialsChanged,
        AuditKind::WhitelistChanged,
        AuditKind::KeyDeleted,
        AuditKind::TokenIssued,
        AuditKind::LabelChanged,
        AuditKind::KeyDisabled,
        AuditKind::KeyEnabled,
        AuditKind::ExpiryChanged,
        AuditKind::AccountSuspended,
        AuditKind::AccountResumed,
        AuditKind::PolicyChanged,
    ];

    /// The stable code, as stores keep it.
    pub const fn code(self) -> &'static str {
        match self {
            AuditKind::AccountOpened => "account_opened",
            AuditKind::KeyCreated => "key_created",
            AuditKind::CredentialsChanged => "credentials_changed",
            AuditKind::WhitelistChanged => "whitelist_changed",
            AuditKind::KeyDeleted => "key_deleted",
            AuditKind::TokenIssued => "token_issued",
            AuditKind::LabelChanged => "label_changed",
            AuditKind::KeyDisabled => "key_disabled",
            AuditKind::KeyEnabled => "key_enabled",
            AuditKind::ExpiryChanged => "expiry_changed",
            AuditKind::AccountSuspended => "account_suspended",
            AuditKind::AccountResumed => "account_resumed",
            AuditKind::PolicyChanged => "policy_changed",
        }
    }
}

impl fmt::Display for AuditKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.code())
    }
}

/// A code that is not an audit kind (a store read a row it cannot understand).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not an audit kind: expected one of account_opened, key_created, credentials_changed, whitelist_changed, key_deleted, token_issued, label_changed, key_disabled, key_enabled, expiry_changed, account_suspended, account_resumed, policy_changed"
)]
pub struct ParseAuditKindError(pub String);

impl FromStr for AuditKind {
    type Err = ParseAuditKindError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AuditKind::ALL
            .into_iter()
            .find(|k| k.code() == s)
            .ok_or_else(|| ParseAuditKindError(s.chars().take(64).collect()))
    }
}

impl fmt::Display for Actor {
    /// `operator`, or the acting account's id.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Operator => f.write_str("operator"),
            Actor::Account(id) => fmt::Display::fmt(id, f),
        }
    }
}

impl FromStr for Actor {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "operator" {
            Ok(Actor::Operator)
        } else {
            s.parse().map(Actor::Account)
        }
    }
}

/// One recorded change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    /// The account the change belongs to (a key's holder).
    pub account_id: AccountId,
    /// The key concerned, if any.
    pub key_id: Option<KeyId>,
    /// The key's channel, if any.
    pub channel: Option<Channel>,
    /// When the change was made (the service's clock).
    pub at: OffsetDateTime,
    /// What kind of change.
    pub kind: AuditKind,
    /// Who made it.
    pub actor: Actor,
    /// What changed, in words, without any secret (e.g. "secret regenerated;
    /// previous secret valid until 2024-01-01T00:00:00Z").
    pub detail: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_actors_roundtrip() {
        for k in AuditKind::ALL {
            assert_eq!(k.code().parse::<AuditKind>(), Ok(k));
        }
        assert!(
            "nope"
                .parse::<AuditKind>()
                .unwrap_err()
                .to_string()
                .contains("account_opened")
        );
        assert_eq!("operator".parse::<Actor>(), Ok(Actor::Operator));
        let id: AccountId = "acc_0123456789abcdef0123456789abcdef".parse().unwrap();
        assert_eq!(
            Actor::Account(id).to_string().parse::<Actor>(),
            Ok(Actor::Account(id))
        );
        assert!("root".parse::<Actor>().is_err());
    }
}

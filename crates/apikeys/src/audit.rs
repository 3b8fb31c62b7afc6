//! The audit trail (SPEC.md section 7): one event per change, written by the
//! store in the same transaction as the change. Never holds a secret.

use crate::account::Actor;
use crate::channel::Channel;
use crate::id::{AccountId, KeyId, ParseIdError};
use std::fmt;
use std::str::FromStr;
use time::OffsetDateTime;

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
}

impl AuditKind {
    /// Every kind.
    pub const ALL: [AuditKind; 5] = [
        AuditKind::AccountOpened,
        AuditKind::KeyCreated,
        AuditKind::CredentialsChanged,
        AuditKind::WhitelistChanged,
        AuditKind::KeyDeleted,
    ];

    /// The stable code, as stores keep it.
    pub const fn code(self) -> &'static str {
        match self {
            AuditKind::AccountOpened => "account_opened",
            AuditKind::KeyCreated => "key_created",
            AuditKind::CredentialsChanged => "credentials_changed",
            AuditKind::WhitelistChanged => "whitelist_changed",
            AuditKind::KeyDeleted => "key_deleted",
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
    "`{0}` is not an audit kind: expected one of account_opened, key_created, credentials_changed, whitelist_changed, key_deleted"
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

//! The error of every management operation. Messages say what was wrong and
//! what is allowed, and never hold a secret.

use crate::account::Actor;
use crate::channel::Channel;
use crate::credentials::CredentialError;
use crate::hashing::HashError;
use crate::id::{AccountId, KeyId};
use crate::store::StoreError;
use crate::whitelist::WhitelistError;
use time::OffsetDateTime;

/// Why a management operation was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An identifier, secret or label broke a rule.
    #[error(transparent)]
    InvalidCredential(#[from] CredentialError),
    /// A whitelist entry is bad, or there are too many.
    #[error(transparent)]
    InvalidWhitelist(#[from] WhitelistError),
    /// A grace period was asked for that cannot be granted.
    #[error(transparent)]
    InvalidGrace(#[from] GraceError),
    /// A sub-account was asked for under a parent that is itself a sub-account.
    #[error("account {parent} is a sub-account: only a master account can have sub-accounts")]
    ParentNotMaster {
        /// The would-be parent.
        parent: AccountId,
    },
    /// An account's creation instant is outside the range stores keep.
    #[error(
        "created_at {} is outside the allowed range: from 1970-01-01T00:00:00Z to before 2200-01-01T00:00:00Z",
        crate::service::rfc3339(*.0)
    )]
    CreationOutOfRange(OffsetDateTime),
    /// A credential change named nothing to change.
    #[error("nothing to change: give a new identifier, a new secret, or both")]
    NothingToChange,
    /// The actor may not act on this account.
    #[error(
        "{actor} may not act on account {account}: an account may act on its own keys, and a master on its sub-accounts' keys"
    )]
    Forbidden {
        /// Who asked.
        actor: Actor,
        /// The account concerned.
        account: AccountId,
    },
    /// No such account.
    #[error("account {0} not found")]
    AccountNotFound(AccountId),
    /// No such key.
    #[error("key {0} not found")]
    KeyNotFound(KeyId),
    /// No account carries this external id (or the actor may not see it).
    #[error("no account has external id `{0}`")]
    ExternalIdNotFound(crate::account::ExternalId),
    /// Another account carries this external id.
    #[error("external id `{0}` is taken: an external id names one account")]
    ExternalIdTaken(crate::account::ExternalId),
    /// Not a valid external id.
    #[error(transparent)]
    InvalidExternalId(#[from] crate::account::InvalidExternalId),
    /// Another key already has this identifier.
    #[error("identifier `{0}` is taken: identifiers are unique across all keys, ignoring case")]
    IdentifierTaken(String),
    /// The account already holds a key for this channel.
    #[error(
        "channel {channel} is already active for account {account}: only REST allows several keys per account"
    )]
    ChannelAlreadyActive {
        /// The account.
        account: AccountId,
        /// The channel.
        channel: Channel,
    },
    /// The account already holds as many REST keys as the policy allows.
    #[error("account {account} already holds {limit} REST keys, the most the policy allows")]
    RestKeyLimit {
        /// The account.
        account: AccountId,
        /// The policy's limit.
        limit: u32,
    },
    /// Tokens are issued for REST keys only.
    #[error("tokens are issued for REST keys only: this key is for {0}")]
    TokenChannel(Channel),
    /// The change was asked for at a version of the key it is no longer at
    /// (someone else changed it since it was read): nothing was written.
    #[error(
        "key {key} is at version {current}, not {}: it changed since it was read; read it again and redo the change",
        crate::service::version_list(expected)
    )]
    StaleVersion {
        /// The key.
        key: KeyId,
        /// The versions the change was asked for at.
        expected: Vec<u64>,
        /// The version the key is at.
        current: u64,
    },
    /// The key kept changing under a read-modify-write; the caller may retry.
    #[error("key {0} was changed by someone else at the same time, several times over: try again")]
    ConcurrentChange(KeyId),
    /// The hashing policy is unusable.
    #[error(transparent)]
    Hashing(#[from] HashError),
    /// A policy value is out of its bounds.
    #[error(transparent)]
    InvalidPolicy(#[from] crate::policy::PolicyError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An expiry that cannot be set.
    #[error(transparent)]
    InvalidExpiry(#[from] ExpiryError),
    /// An account policy that cannot be set.
    #[error(transparent)]
    InvalidAccountPolicy(#[from] AccountPolicyError),
    /// The sub-account's master does not allow its sub-accounts this channel.
    #[error(
        "channel {channel} is not allowed for account {account}: its master's policy does not let its sub-accounts hold {channel} keys"
    )]
    ChannelNotAllowed {
        /// The sub-account.
        account: AccountId,
        /// The channel.
        channel: Channel,
    },
    /// The policy does not disable dormant legacy default keys.
    #[error(
        "the policy does not disable dormant legacy default keys: set disable_dormant_legacy_defaults_after to turn the action on"
    )]
    DormancyActionOff,
    /// A dormancy period out of range.
    #[error("days must be from 1 to 36500, not {0}")]
    InvalidDormancy(u32),
}

/// An expiry that cannot be set on a key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExpiryError {
    /// The expiry is not after now.
    #[error("expiry {at} is not in the future (now is {now}): to stop a key now, disable it")]
    NotInFuture {
        /// The expiry asked for.
        at: OffsetDateTime,
        /// The service's now.
        now: OffsetDateTime,
    },
    /// The expiry is later than the longest lifetime allowed.
    #[error(
        "expiry {at} is later than {latest}, the end of the longest lifetime the {by} allows this key"
    )]
    BeyondLifetime {
        /// The expiry asked for.
        at: OffsetDateTime,
        /// The latest allowed.
        latest: OffsetDateTime,
        /// Whose rule: "policy" or "master's policy".
        by: &'static str,
    },
    /// The expiry is at or after 2200-01-01T00:00:00Z.
    #[error("expiry {at} is too far: it must be before 2200-01-01T00:00:00Z")]
    OutOfRange {
        /// The expiry asked for.
        at: OffsetDateTime,
    },
    /// The key must expire (a lifetime cap applies): it cannot be cleared.
    #[error(
        "this key must expire by {latest} (the {by} caps key lifetimes): its expiry cannot be cleared"
    )]
    Required {
        /// The latest allowed.
        latest: OffsetDateTime,
        /// Whose rule.
        by: &'static str,
    },
}

/// An account policy that cannot be set.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccountPolicyError {
    /// A sub-account's policy holds only its whitelist.
    #[error(
        "a sub-account's policy holds only a whitelist: sub_account_channels and max_key_lifetime are its master's to set"
    )]
    SubAccountRules,
    /// A lifetime that is not positive or is over 100 years.
    #[error("max_key_lifetime must be positive and at most 100 years (3155760000 seconds)")]
    Lifetime,
    /// A sub-account may read its policy but not change it.
    #[error(
        "account {0} may not change its own policy: a sub-account's policy is set by its master or the operator"
    )]
    SetBySubAccount(AccountId),
}

/// A grace period that cannot be granted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GraceError {
    /// Grace keeps a previous secret alive; without a new secret there is none.
    #[error("a grace period applies to a secret change only: this change keeps the secret")]
    NoSecretChange,
    /// The expiry is not after now.
    #[error(
        "grace expiry {} is not in the future (now is {})",
        crate::service::rfc3339(*.until),
        crate::service::rfc3339(*.now)
    )]
    NotInFuture {
        /// The requested expiry.
        until: OffsetDateTime,
        /// The service's current instant.
        now: OffsetDateTime,
    },
    /// The grace period ends past the last instant that can be represented.
    #[error("grace period ends too far in the future to be represented")]
    OutOfRange,
    /// The expiry is further away than the policy allows.
    #[error(
        "grace expiry {} is more than {max_seconds} seconds away: that is the longest the policy allows",
        crate::service::rfc3339(*.until)
    )]
    TooLong {
        /// The requested expiry.
        until: OffsetDateTime,
        /// The policy's limit, in seconds.
        max_seconds: i64,
    },
}

//! What authentication answers: the hot path's types.
//!
//! Rules:
//! - `authenticate(channel, identifier, secret, client address)` answers
//!   "this account, this key", or refuses.
//! - An unknown identifier, a wrong secret, a deleted key, credentials of
//!   another channel and an expired grace secret all get one uniform
//!   refusal, "invalid credentials"; the precise reason ([`Refusal`]) is for
//!   the embedder's logs, never for the caller.
//! - Right credentials from an address outside the key's whitelist get
//!   "address not allowed".
//! - A sub-account's key authenticates as the sub-account, not its master.
//! - Too many failures from one address are throttled (see
//!   [`crate::throttle`]): such attempts get "throttled", with how long to
//!   wait, and are not checked at all.
//!
//! The checks themselves are in [`crate::service`] (`ApiKeys::authenticate`).

use crate::channel::Channel;
use crate::id::{AccountId, KeyId};
use crate::store::StoreError;
use std::net::IpAddr;

/// A successful authentication: this account, this key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Authenticated {
    /// The account the key belongs to (a sub-account's key authenticates as
    /// the sub-account, not its master).
    pub account_id: AccountId,
    /// The key that matched.
    pub key_id: KeyId,
    /// The channel.
    pub channel: Channel,
    /// What matched: the current secret, the previous one during a grace
    /// period, or a REST token.
    pub matched: SecretSlot,
    /// The key's version when it matched: what a token issued now is bound
    /// to (see [`crate::Store::insert_token`]).
    pub key_version: u64,
}

/// Which of a key's secrets a presented secret matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SecretSlot {
    /// The current secret.
    Current,
    /// The previous secret, still accepted during a grace period.
    Previous,
    /// A REST token issued for the key.
    Token,
}

/// The precise reason behind an "invalid credentials" refusal: for the
/// embedder's logs, never for the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// No key has this identifier (or it was deleted).
    UnknownIdentifier,
    /// The secret has the generated shape but a wrong checksum, or is longer
    /// than any secret can be: refused before any lookup.
    MalformedSecret,
    /// The secret does not match.
    WrongSecret,
    /// The previous secret matched, but its grace period is over.
    GraceExpired,
    /// The credentials belong to a key of another channel.
    WrongChannel {
        /// The channel the key is for.
        key_channel: Channel,
    },
    /// The secret matched, but the key was changed or deleted while argon2
    /// was checking it: the check answers for the key as it is now.
    ChangedDuringCheck,
    /// No live token has this digest (never issued, revoked with its key's
    /// credentials, or purged).
    UnknownToken,
    /// The token has expired.
    TokenExpired,
    /// The credentials are right, but the key is disabled.
    KeyDisabled,
    /// The credentials are right, but the key has expired (its own expiry,
    /// or the lifetime its master allows).
    KeyExpired,
    /// The credentials are right, but the key's account, or its master, is
    /// suspended.
    AccountSuspended,
    /// The credentials are right, but the key's master no longer allows its
    /// sub-accounts this channel.
    ChannelNotAllowed,
}

/// Why authentication did not succeed.
///
/// `Display` gives only what the caller may learn; [`AuthError::reason`]
/// gives the embedder the precise reason.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Unknown identifier, wrong secret, deleted key, other channel, expired
    /// grace: one uniform refusal.
    #[error("invalid credentials")]
    InvalidCredentials(Refusal),
    /// The credentials are right but the client address is outside a
    /// whitelist that applies: the key's, its account's or its master's.
    #[error("address not allowed")]
    AddressNotAllowed {
        /// The key.
        key_id: KeyId,
        /// The refused address.
        client: IpAddr,
        /// The first whitelist that refused it.
        list: crate::lifecycle::WhitelistScope,
    },
    /// Too many failed attempts from this address (for this identifier, or
    /// for all): refused before any lookup or argon2, whatever the
    /// credentials. Try again after `retry_after`.
    #[error("too many failed attempts: try again later")]
    Throttled {
        /// How long until the next attempt may be checked.
        retry_after: time::Duration,
    },
    /// The store failed: neither a yes nor a no (answer 503, not 401).
    #[error("authentication unavailable: the key store failed")]
    Unavailable(#[source] StoreError),
}

impl AuthError {
    /// The precise reason of an invalid-credentials refusal.
    pub fn reason(&self) -> Option<Refusal> {
        match self {
            AuthError::InvalidCredentials(r) => Some(*r),
            _ => None,
        }
    }

    /// A stable code for the caller: `invalid_credentials`,
    /// `address_not_allowed`, `throttled` or `unavailable`.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::InvalidCredentials(_) => "invalid_credentials",
            AuthError::AddressNotAllowed { .. } => "address_not_allowed",
            AuthError::Throttled { .. } => "throttled",
            AuthError::Unavailable(_) => "unavailable",
        }
    }
}

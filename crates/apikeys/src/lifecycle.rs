//! A key's lifecycle, and the rules its account and master set over it:
//! whether a key whose credentials are right may be used now.
//!
//! Rules, checked in this order once the credentials are right:
//! 1. a disabled key refuses ([`Refusal::KeyDisabled`]);
//! 2. a key whose account, or whose account's master, is suspended refuses
//!    ([`Refusal::AccountSuspended`]);
//! 3. a key past its expiry, or older than the lifetime its master allows
//!    its sub-accounts' keys, refuses ([`Refusal::KeyExpired`]);
//! 4. a sub-account's key of a channel its master no longer allows refuses
//!    ([`Refusal::ChannelNotAllowed`]);
//! 5. the client address must pass every non-empty whitelist that applies:
//!    the key's, its account's, and its master's, in that order; the first
//!    that refuses is named ([`WhitelistScope`]).
//!
//! Refusals 1 to 4 are "invalid credentials" to the caller, with their own
//! [`Refusal`] for the embedder; 5 is "address not allowed". Every rule is
//! read from the store on each request (see
//! [`crate::Store::key_for_authentication`]): a change applies from the next
//! request on, in every process.

use crate::account::Account;
use crate::auth::Refusal;
use crate::key::{KeyRecord, KeyState};
use crate::whitelist::{Explanation, Whitelist};
use std::fmt;
use std::net::IpAddr;
use time::OffsetDateTime;

/// The accounts a key's use depends on: the account holding it and, for a
/// sub-account, its master.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holders {
    /// The account holding the key.
    pub account: Account,
    /// Its master, when the account is a sub-account.
    pub master: Option<Account>,
}

/// A key with its holders: what authentication reads in one lookup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldKey {
    /// The key.
    pub key: KeyRecord,
    /// Its account and master.
    pub holders: Holders,
}

/// Which whitelist refused an address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WhitelistScope {
    /// The key's own.
    Key,
    /// The account-wide list of the key's account.
    Account,
    /// The account-wide list of the account's master.
    Master,
}

impl WhitelistScope {
    /// The stable code: `key`, `account` or `master`.
    pub const fn code(self) -> &'static str {
        match self {
            WhitelistScope::Key => "key",
            WhitelistScope::Account => "account",
            WhitelistScope::Master => "master",
        }
    }
}

impl fmt::Display for WhitelistScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.code())
    }
}

/// Why a key with right credentials may not be used now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denial {
    /// Rules 1 to 4: an "invalid credentials" refusal with this reason.
    Refused(Refusal),
    /// Rule 5: the address is outside this whitelist.
    Address(WhitelistScope),
}

impl Holders {
    /// Whether the account or its master is suspended.
    pub fn suspended(&self) -> bool {
        self.account.suspended || self.master.as_ref().is_some_and(|m| m.suspended)
    }

    /// The lifetime cap over the key's account's keys: its master's, for a
    /// sub-account.
    pub fn max_lifetime(&self) -> Option<time::Duration> {
        self.master.as_ref().and_then(|m| m.policy.max_key_lifetime)
    }

    /// The whitelists that apply to a key of this account, after the key's
    /// own: the account's, then its master's.
    pub fn whitelists(&self) -> impl Iterator<Item = (WhitelistScope, &Whitelist)> {
        std::iter::once((WhitelistScope::Account, &self.account.policy.whitelist)).chain(
            self.master
                .as_ref()
                .map(|m| (WhitelistScope::Master, &m.policy.whitelist)),
        )
    }
}

/// What `key` does at `now`, its holders considered (the whitelists aside).
/// When several rules stop it, suspension is named first, then disabling,
/// then expiry.
pub fn state(key: &KeyRecord, holders: &Holders, now: OffsetDateTime) -> KeyState {
    if holders.suspended() {
        KeyState::Suspended
    } else if !key.enabled {
        KeyState::Disabled
    } else if key
        .effective_expiry(holders.max_lifetime())
        .is_some_and(|e| e <= now)
    {
        KeyState::Expired
    } else {
        KeyState::Active
    }
}

/// Whether a key whose credentials are right may be used at `now` from
/// `client`: the rules of this module, in their order.
pub fn admit(
    key: &KeyRecord,
    holders: &Holders,
    now: OffsetDateTime,
    client: IpAddr,
) -> Result<(), Denial> {
    if !key.enabled {
        return Err(Denial::Refused(Refusal::KeyDisabled));
    }
    if holders.suspended() {
        return Err(Denial::Refused(Refusal::AccountSuspended));
    }
    if key
        .effective_expiry(holders.max_lifetime())
        .is_some_and(|e| e <= now)
    {
        return Err(Denial::Refused(Refusal::KeyExpired));
    }
    if let Some(master) = &holders.master
        && !master.policy.sub_account_channels.contains(key.channel)
    {
        return Err(Denial::Refused(Refusal::ChannelNotAllowed));
    }
    // The lists in their order, without building the explanation: this
    // runs on every check.
    match chain(key, holders).find(|(_, list)| !list.allows(client)) {
        Some((scope, _)) => Err(Denial::Address(scope)),
        None => Ok(()),
    }
}

/// The whitelists that apply to `key`, in order: its own, its account's,
/// its master's.
fn chain<'a>(
    key: &'a KeyRecord,
    holders: &'a Holders,
) -> impl Iterator<Item = (WhitelistScope, &'a Whitelist)> {
    std::iter::once((WhitelistScope::Key, &key.whitelist)).chain(holders.whitelists())
}

/// How every whitelist that applies to a key judges an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessExplanation {
    /// Whether the address passes every list.
    pub allowed: bool,
    /// The first list that refuses it, if any.
    pub refused_by: Option<WhitelistScope>,
    /// Each list that applies, in order (key, account, master), with what
    /// it says; an empty list allows everything.
    pub lists: Vec<(WhitelistScope, Explanation)>,
}

/// How the key's whitelist, its account's and its master's judge `client`.
pub fn explain(key: &KeyRecord, holders: &Holders, client: IpAddr) -> AccessExplanation {
    let lists: Vec<(WhitelistScope, Explanation)> = chain(key, holders)
        .map(|(scope, list)| (scope, list.explain(client)))
        .collect();
    let refused_by = lists.iter().find(|(_, e)| !e.allowed).map(|(s, _)| *s);
    AccessExplanation {
        allowed: refused_by.is_none(),
        refused_by,
        lists,
    }
}

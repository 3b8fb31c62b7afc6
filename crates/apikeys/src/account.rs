//! Accounts, and who may act on them.
//!
//! Rules:
//! - There are two kinds of account: masters, and sub-accounts, each of
//!   which belongs to exactly one master. A sub-account never has
//!   sub-accounts of its own.
//! - Every account has a creation instant, kept in UTC. It is an input, not
//!   always "now": platforms import accounts with their historic dates.
//! - Ids are opaque, random and typed (see [`crate::id`]).
//! - The operator may act on any account; an account on its own keys; a
//!   master on its sub-accounts' keys too. Nobody else: siblings never act on
//!   each other, and a sub-account never on its master.

use crate::channel::ChannelSet;
use crate::id::AccountId;
use crate::whitelist::Whitelist;
use time::{Duration, OffsetDateTime};

/// Whether an account is a master or a sub-account of one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AccountKind {
    /// A master account; it may have sub-accounts.
    Master,
    /// A sub-account of the given master. Sub-accounts have no sub-accounts.
    Sub {
        /// The master this sub-account belongs to.
        parent: AccountId,
    },
}

impl AccountKind {
    /// The stable code: `master` or `sub`.
    pub const fn code(&self) -> &'static str {
        match self {
            AccountKind::Master => "master",
            AccountKind::Sub { .. } => "sub",
        }
    }

    /// The master of a sub-account; `None` for a master.
    pub const fn parent(&self) -> Option<AccountId> {
        match self {
            AccountKind::Master => None,
            AccountKind::Sub { parent } => Some(*parent),
        }
    }
}

/// An account of the platform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// Its id.
    pub id: AccountId,
    /// Master or sub-account.
    pub kind: AccountKind,
    /// When the account was created, in UTC. An input, not "now": imported
    /// accounts keep their historic dates, and the default channels depend on it.
    pub created_at: OffsetDateTime,
    /// Whether the account is suspended: while it is, every key it holds
    /// refuses, with its REST tokens, and for a master every key of its
    /// sub-accounts too. A new account is not.
    pub suspended: bool,
    /// The rules this account sets over its keys (and, for a master, over
    /// its sub-accounts' keys).
    pub policy: AccountPolicy,
}

impl Account {
    /// A new, unsuspended account with the default (unrestricting) policy.
    pub fn new(id: AccountId, kind: AccountKind, created_at: OffsetDateTime) -> Self {
        Account {
            id,
            kind,
            created_at,
            suspended: false,
            policy: AccountPolicy::default(),
        }
    }
}

/// The rules an account sets over keys: set by the operator, or by the
/// master (over itself and its sub-accounts).
///
/// Rules:
/// - `whitelist` applies to every key of the account and, for a master, to
///   every key of its sub-accounts. A request must pass each non-empty list
///   that applies: the key's, its account's, and its master's.
/// - `sub_account_channels` (a master's only; all five by default) are the
///   channels its sub-accounts may hold keys for. A sub-account's key of
///   another channel refuses from the next request on, and no new one is
///   created.
/// - `max_key_lifetime` (a master's only; none by default) is the longest
///   its sub-accounts' keys may live, counted from each key's creation: a
///   key older than that refuses as expired from the next request on, and a
///   new key's expiry may not be later.
///
/// A sub-account's own policy holds only a whitelist: the other two are
/// its master's to set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountPolicy {
    /// The account-wide whitelist (empty: it restricts nothing).
    pub whitelist: Whitelist,
    /// The channels sub-accounts may hold keys for.
    pub sub_account_channels: ChannelSet,
    /// The longest lifetime of a sub-account's key, from its creation.
    pub max_key_lifetime: Option<Duration>,
}

impl Default for AccountPolicy {
    fn default() -> Self {
        AccountPolicy {
            whitelist: Whitelist::default(),
            sub_account_channels: ChannelSet::ALL,
            max_key_lifetime: None,
        }
    }
}

impl AccountPolicy {
    /// Whether this is the default policy: it restricts nothing.
    pub fn is_default(&self) -> bool {
        *self == AccountPolicy::default()
    }
}

/// The earliest creation instant an account may have: 1970-01-01T00:00:00Z.
///
/// Decision: the product bounds no date, but every store must keep what the
/// domain accepts (SQLite keeps nanoseconds in an `i64`, good for 1677 to
/// 2262), and no customer account predates the Unix epoch.
pub const EARLIEST_CREATION: OffsetDateTime = time::macros::datetime!(1970-01-01 0:00 UTC);
/// The first instant too late for an account's creation: 2200-01-01T00:00:00Z.
pub const LATEST_CREATION: OffsetDateTime = time::macros::datetime!(2200-01-01 0:00 UTC);

/// Who is asking for an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Actor {
    /// The platform's operator: may do anything.
    Operator,
    /// A customer's account (as a portal acts for a logged-in customer): may
    /// act on its own keys and, for a master, on those of its sub-accounts.
    Account(AccountId),
}

impl Actor {
    /// Whether this actor may manage (read or change) the keys of `target`.
    ///
    /// The operator may manage any account; an account its own; a master its
    /// own sub-accounts'. Siblings never each other's, and a sub-account never
    /// its master's.
    pub fn may_manage(&self, target: &Account) -> bool {
        match self {
            Actor::Operator => true,
            Actor::Account(me) => *me == target.id || target.kind.parent() == Some(*me),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;
    use time::macros::datetime;

    #[test]
    fn who_may_manage_whom() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let at = datetime!(2024-01-01 0:00 UTC);
        let master = Account::new(AccountId::random(&mut rng), AccountKind::Master, at);
        let other = Account::new(AccountId::random(&mut rng), AccountKind::Master, at);
        let sub = |rng: &mut ChaCha20Rng| {
            Account::new(
                AccountId::random(rng),
                AccountKind::Sub { parent: master.id },
                at,
            )
        };
        let (sub1, sub2) = (sub(&mut rng), sub(&mut rng));

        assert!(Actor::Operator.may_manage(&master) && Actor::Operator.may_manage(&sub1));
        let m = Actor::Account(master.id);
        assert!(m.may_manage(&master) && m.may_manage(&sub1) && m.may_manage(&sub2));
        assert!(!m.may_manage(&other));
        let s1 = Actor::Account(sub1.id);
        assert!(s1.may_manage(&sub1));
        assert!(!s1.may_manage(&sub2), "siblings are strangers");
        assert!(
            !s1.may_manage(&master),
            "a sub-account never manages its master"
        );
        assert!(!Actor::Account(other.id).may_manage(&sub1));
    }
}

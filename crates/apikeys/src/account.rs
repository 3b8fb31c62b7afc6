//! Accounts, and who may act on them.
//!
//! Rules:
//! - There are two kinds of account: masters, and sub-accounts, each of
//!   which belongs to exactly one master. A sub-account never has
//!   sub-accounts of its own.
//! - Every account has a creation instant, kept in UTC. It is an input, not
//!   always "now": platforms import accounts with their historic dates.
//! - Ids are opaque, random and typed (see [`crate::id`]).
//! - An account may also carry the platform's own id for it, an
//!   [`ExternalId`]: unique among accounts, compared exactly (byte for byte,
//!   case counts), and set when the account is opened (an import matches
//!   accounts by it).
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
    /// The platform's own id for this account, if it gave one: unique among
    /// accounts.
    pub external_id: Option<ExternalId>,
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
            external_id: None,
        }
    }

    /// The same account carrying the platform's own id.
    pub fn with_external_id(self, external_id: ExternalId) -> Self {
        Account {
            external_id: Some(external_id),
            ..self
        }
    }
}

/// The longest external id, in characters (Unicode scalar values, as a JSON
/// Schema's `maxLength` counts them).
pub const MAX_EXTERNAL_ID_CHARS: usize = 128;

/// The longest external id in bytes of UTF-8 (4 per character at most):
/// what a store's column must hold.
pub const MAX_EXTERNAL_ID_BYTES: usize = 4 * MAX_EXTERNAL_ID_CHARS;

/// The platform's own id for an account (its customer number, the id in
/// its old system): what an import matches accounts by.
///
/// Rules: 1 to [`MAX_EXTERNAL_ID_CHARS`] characters, no control character
/// (Unicode's `Cc`: tabs, newlines, NUL, DEL, C1), no whitespace at either
/// end. Otherwise any text: compared exactly, byte for byte, so `A1` and
/// `a1` are two ids. It is no secret, so `Debug` shows it. Shared, so that
/// an account is cloned (as authentication's cached holders are) without
/// copying it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExternalId(std::sync::Arc<str>);

/// Why a text is not an [`ExternalId`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidExternalId {
    /// Empty.
    #[error("external_id is empty: give 1 to {MAX_EXTERNAL_ID_CHARS} characters")]
    Empty,
    /// Longer than [`MAX_EXTERNAL_ID_CHARS`] characters.
    #[error("external_id has {0} characters: at most {MAX_EXTERNAL_ID_CHARS} are allowed")]
    TooLong(usize),
    /// Holds a control character.
    #[error("external_id holds a control character: only printable characters are allowed")]
    ControlCharacter,
    /// Starts or ends with whitespace.
    #[error("external_id starts or ends with whitespace")]
    SurroundingWhitespace,
}

impl ExternalId {
    /// Checks and wraps `text` (see the type's rules).
    pub fn new(text: &str) -> Result<Self, InvalidExternalId> {
        if text.is_empty() {
            return Err(InvalidExternalId::Empty);
        }
        let chars = text.chars().count();
        if chars > MAX_EXTERNAL_ID_CHARS {
            return Err(InvalidExternalId::TooLong(chars));
        }
        if text.chars().any(char::is_control) {
            return Err(InvalidExternalId::ControlCharacter);
        }
        if text.starts_with(char::is_whitespace) || text.ends_with(char::is_whitespace) {
            return Err(InvalidExternalId::SurroundingWhitespace);
        }
        Ok(ExternalId(text.into()))
    }

    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ExternalId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for ExternalId {
    type Err = InvalidExternalId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ExternalId::new(s)
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

    #[test]
    fn external_ids() {
        for ok in [
            "c",
            "CUST-00017",
            "ü 名 x",
            &"x".repeat(MAX_EXTERNAL_ID_CHARS),
            // 128 four-byte characters: 512 bytes, the longest.
            &"𝄞".repeat(MAX_EXTERNAL_ID_CHARS),
            "a b",
        ] {
            assert_eq!(
                ExternalId::new(ok).map(|e| e.to_string()),
                Ok(ok.to_string())
            );
        }
        assert_ne!(ExternalId::new("A1"), ExternalId::new("a1"), "case counts");
        for (bad, e) in [
            ("", InvalidExternalId::Empty),
            (
                &*"x".repeat(MAX_EXTERNAL_ID_CHARS + 1),
                InvalidExternalId::TooLong(129),
            ),
            // 43 four-byte characters: 172 bytes, though only 43 characters.
            (&*"𝄞".repeat(129), InvalidExternalId::TooLong(129)),
            ("a\nb", InvalidExternalId::ControlCharacter),
            ("a\u{0}", InvalidExternalId::ControlCharacter),
            ("a\u{7f}", InvalidExternalId::ControlCharacter),
            ("a\u{9c}", InvalidExternalId::ControlCharacter),
            ("\ta", InvalidExternalId::ControlCharacter),
            (" a", InvalidExternalId::SurroundingWhitespace),
            ("a ", InvalidExternalId::SurroundingWhitespace),
            ("a\u{3000}", InvalidExternalId::SurroundingWhitespace),
        ] {
            assert_eq!(ExternalId::new(bad), Err(e.clone()), "{bad:?}");
            assert!(e.to_string().starts_with("external_id "), "{e}");
        }
    }
}

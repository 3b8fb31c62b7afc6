//! Backend-neutral encodings: how a store turns the domain's values into
//! integers, bytes and text its database keeps, and back.
//!
//! Every store of the workspace uses these, so that they agree to the bit;
//! a platform writing its own store may use them too. Decoding a value that
//! does not read back is a [`super::BadRow`] (see [`StoreError::bad_row`]);
//! encoding a value a store cannot keep exactly is an [`Unstorable`], which
//! the store returns without writing anything.
//!
//! | value | encoding |
//! |---|---|
//! | ids ([`AccountId`], [`KeyId`]) | their 16 bytes (`as_bytes` / `from_bytes`) |
//! | instants | signed 64-bit nanoseconds since 1970-01-01T00:00:00Z ([`instant_to_nanos`]): exact, and ordered as integers |
//! | versions | signed 64-bit integers, at least 1 ([`version_to_i64`]) |
//! | channels, audit kinds, account kinds | their stable codes (`code()`, parsed back with `FromStr`) |
//! | actors | `operator`, or the acting account's id in text form |
//! | stored hashes | [`SecretHash::as_str`](crate::hashing::SecretHash::as_str), read back with [`SecretHash::parse`](crate::hashing::SecretHash::parse) |
//! | whitelists | the normalised entries in CIDR form ([`whitelist_entries`]), or joined by single spaces ([`whitelist_to_text`]) |
//! | booleans (`enabled`, `legacy_default`, `suspended`) | the database's boolean, or an integer 0 / 1 |
//! | channel sets (a policy's `sub_account_channels`) | [`ChannelSet::bits`](crate::ChannelSet::bits), an integer from 0 to 31 |
//! | durations (a policy's `max_key_lifetime`) | signed 64-bit nanoseconds ([`duration_to_nanos`]) |
//! | client addresses (last use) | the address's canonical text (`IpAddr`'s `Display`, IPv4-mapped IPv6 as IPv4) |

use super::StoreError;
use crate::account::{Account, AccountKind, AccountPolicy, Actor, ExternalId};
use crate::audit::{AuditEvent, AuditKind};
use crate::channel::Channel;
use crate::channel::ChannelSet;
use crate::hashing::SecretHash;
use crate::id::{AccountId, KeyId};
use crate::key::{KeyRecord, PreviousSecret, Usage};
use crate::whitelist::{Whitelist, WhitelistError, parse_entry};
use std::fmt::Write as _;
use std::net::IpAddr;
use time::OffsetDateTime;

/// A value a store refuses to write because it could not keep it exactly.
/// Found as the source of a [`StoreError::Backend`]; nothing was written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unstorable {
    /// Instants are kept as signed 64-bit nanoseconds since 1970, which
    /// covers 1677-09-21 to 2262-04-11 (UTC).
    #[error(
        "instant {0} cannot be stored: stores keep instants from 1677-09-21 to 2262-04-11 (UTC), to the nanosecond"
    )]
    Instant(OffsetDateTime),
    /// Versions are kept as signed 64-bit integers.
    #[error("version {0} cannot be stored: stores keep versions from 1 to 2^63 - 1")]
    Version(u64),
    /// Durations are kept as signed 64-bit nanoseconds (about 292 years).
    #[error("duration {0} cannot be stored: stores keep durations up to about 292 years")]
    Duration(time::Duration),
}

impl From<Unstorable> for StoreError {
    fn from(e: Unstorable) -> Self {
        StoreError::backend(e)
    }
}

/// An instant as nanoseconds since 1970 (UTC), exactly.
pub fn instant_to_nanos(t: OffsetDateTime) -> Result<i64, Unstorable> {
    i64::try_from(t.unix_timestamp_nanos()).map_err(|_| Unstorable::Instant(t))
}

/// The instant [`instant_to_nanos`] encoded, in UTC. Every `i64` is a valid
/// instant, so this cannot fail.
pub fn instant_from_nanos(nanos: i64) -> OffsetDateTime {
    // i64 nanoseconds span 1677 to 2262, well inside `time`'s range.
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// A duration as signed 64-bit nanoseconds, exactly.
pub fn duration_to_nanos(d: time::Duration) -> Result<i64, Unstorable> {
    i64::try_from(d.whole_nanoseconds()).map_err(|_| Unstorable::Duration(d))
}

/// The duration [`duration_to_nanos`] encoded.
pub fn duration_from_nanos(nanos: i64) -> time::Duration {
    time::Duration::nanoseconds(nanos)
}

/// A client address as stores keep it: canonical text.
pub fn address_to_text(a: IpAddr) -> String {
    a.to_canonical().to_string()
}

/// A version as a signed 64-bit integer.
pub fn version_to_i64(v: u64) -> Result<i64, Unstorable> {
    i64::try_from(v).map_err(|_| Unstorable::Version(v))
}

/// A stored version that is not at least 1.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("version {0} is below 1: versions start at 1")]
pub struct BadVersion(pub i64);

/// The version [`version_to_i64`] encoded.
pub fn version_from_i64(v: i64) -> Result<u64, BadVersion> {
    u64::try_from(v)
        .ok()
        .filter(|v| *v >= 1)
        .ok_or(BadVersion(v))
}

/// The whitelist's normalised entries in CIDR form, in order.
pub fn whitelist_entries(w: &Whitelist) -> Vec<String> {
    w.entries().iter().map(ToString::to_string).collect()
}

/// A whitelist read back from [`whitelist_entries`].
pub fn whitelist_from_entries<'a>(
    entries: impl IntoIterator<Item = &'a str>,
) -> Result<Whitelist, WhitelistError> {
    let nets = entries
        .into_iter()
        .map(parse_entry)
        .collect::<Result<Vec<_>, _>>()?;
    Whitelist::new(nets, usize::MAX)
}

/// The whitelist's normalised entries in CIDR form, joined by single spaces
/// (`""` when empty).
pub fn whitelist_to_text(w: &Whitelist) -> String {
    let mut out = String::new();
    for (i, entry) in w.entries().iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        // Writing to a String cannot fail.
        let _ = write!(out, "{entry}");
    }
    out
}

/// A whitelist read back from [`whitelist_to_text`].
pub fn whitelist_from_text(text: &str) -> Result<Whitelist, WhitelistError> {
    if text.is_empty() {
        return Ok(Whitelist::default());
    }
    whitelist_from_entries(text.split(' '))
}

/// Where a store's whitelist column came from: one text (see
/// [`whitelist_to_text`]) or a list of entries (see [`whitelist_entries`]).
#[derive(Debug)]
pub enum RawWhitelist<'a> {
    /// Entries joined by single spaces.
    Text(&'a str),
    /// One entry per element.
    Entries(Vec<&'a str>),
}

/// A key's columns as a store read them, before decoding: the store's own
/// typed getters have checked the types and nullness; [`RawKey::decode`]
/// checks the values and names the column of anything wrong.
#[derive(Debug)]
pub struct RawKey<'a> {
    /// The key's id.
    pub id: &'a [u8],
    /// Its account's id.
    pub account_id: &'a [u8],
    /// Its channel's code.
    pub channel: &'a str,
    /// Its identifier.
    pub identifier: &'a str,
    /// Its label.
    pub label: Option<&'a str>,
    /// Its current secret's hash.
    pub secret_hash: &'a str,
    /// Its previous secret's hash, during a grace period.
    pub previous_hash: Option<&'a str>,
    /// When the previous secret stops working, in nanoseconds.
    pub previous_expires_at: Option<i64>,
    /// Its whitelist.
    pub whitelist: RawWhitelist<'a>,
    /// When it was created, in nanoseconds.
    pub created_at: i64,
    /// When it last changed, in nanoseconds.
    pub changed_at: i64,
    /// Its version.
    pub version: i64,
    /// When it expires, in nanoseconds, if it does.
    pub expires_at: Option<i64>,
    /// Whether it is enabled.
    pub enabled: bool,
    /// Whether it was a legacy master's default key.
    pub legacy_default: bool,
    /// Its last use, in nanoseconds.
    pub last_used_at: Option<i64>,
    /// The client address of its last use.
    pub last_used_address: Option<&'a str>,
    /// The last use of its previous secret, in nanoseconds.
    pub previous_secret_last_used_at: Option<i64>,
}

impl RawKey<'_> {
    /// The key, or a [`super::BadRow`] naming `table` and the column.
    pub fn decode(self, table: &'static str) -> Result<KeyRecord, StoreError> {
        let previous_secret = match (self.previous_hash, self.previous_expires_at) {
            (None, None) => None,
            (Some(hash), Some(nanos)) => Some(PreviousSecret {
                hash: SecretHash::parse(hash)
                    .map_err(|e| StoreError::bad_row(table, "previous_hash", e))?,
                expires_at: instant_from_nanos(nanos),
            }),
            _ => {
                return Err(StoreError::bad_row(
                    table,
                    "previous_hash",
                    "previous_hash and previous_expires_at must be both set or both NULL",
                ));
            }
        };
        let whitelist = match self.whitelist {
            RawWhitelist::Text(text) => whitelist_from_text(text),
            RawWhitelist::Entries(entries) => whitelist_from_entries(entries),
        }
        .map_err(|e| StoreError::bad_row(table, "whitelist", e))?;
        Ok(KeyRecord {
            id: KeyId::from_bytes(id_bytes(table, "id", self.id)?),
            account_id: AccountId::from_bytes(id_bytes(table, "account_id", self.account_id)?),
            channel: self
                .channel
                .parse()
                .map_err(|e| StoreError::bad_row(table, "channel", e))?,
            identifier: self.identifier.to_owned(),
            label: self.label.map(str::to_owned),
            secret_hash: SecretHash::parse(self.secret_hash)
                .map_err(|e| StoreError::bad_row(table, "secret_hash", e))?,
            previous_secret,
            whitelist,
            created_at: instant_from_nanos(self.created_at),
            changed_at: instant_from_nanos(self.changed_at),
            version: version_from_i64(self.version)
                .map_err(|e| StoreError::bad_row(table, "version", e))?,
            expires_at: self.expires_at.map(instant_from_nanos),
            enabled: self.enabled,
            legacy_default: self.legacy_default,
            usage: Usage {
                last_used_at: self.last_used_at.map(instant_from_nanos),
                last_used_address: self
                    .last_used_address
                    .map(|a| {
                        a.parse::<IpAddr>()
                            .map_err(|e| StoreError::bad_row(table, "last_used_address", e))
                    })
                    .transpose()?,
                previous_secret_last_used_at: self
                    .previous_secret_last_used_at
                    .map(instant_from_nanos),
            },
        })
    }
}

/// An account's columns as a store read them, before decoding.
#[derive(Debug)]
pub struct RawAccount<'a> {
    /// Its id.
    pub id: &'a [u8],
    /// Its kind's code (`master` or `sub`).
    pub kind: &'a str,
    /// Its master's id, for a sub-account.
    pub parent_id: Option<&'a [u8]>,
    /// When it was created, in nanoseconds.
    pub created_at: i64,
    /// Whether it is suspended.
    pub suspended: bool,
    /// Its policy's account-wide whitelist.
    pub policy_whitelist: RawWhitelist<'a>,
    /// Its policy's sub-account channels, as [`ChannelSet::bits`].
    pub sub_account_channels: i64,
    /// Its policy's longest key lifetime, in nanoseconds.
    pub max_key_lifetime: Option<i64>,
    /// The platform's own id for it, if any.
    pub external_id: Option<&'a str>,
}

impl RawAccount<'_> {
    /// The account, or a [`super::BadRow`] naming `table` and the column.
    pub fn decode(self, table: &'static str) -> Result<Account, StoreError> {
        let parent = self
            .parent_id
            .map(|p| id_bytes(table, "parent_id", p).map(AccountId::from_bytes))
            .transpose()?;
        let kind = match (self.kind, parent) {
            ("master", None) => AccountKind::Master,
            ("sub", Some(parent)) => AccountKind::Sub { parent },
            (kind, _) => {
                return Err(StoreError::bad_row(
                    table,
                    "kind",
                    format!(
                        "kind `{}` does not match parent_id: a master has none, a sub-account has one",
                        kind.chars().take(64).collect::<String>()
                    ),
                ));
            }
        };
        let whitelist = match self.policy_whitelist {
            RawWhitelist::Text(text) => whitelist_from_text(text),
            RawWhitelist::Entries(entries) => whitelist_from_entries(entries),
        }
        .map_err(|e| StoreError::bad_row(table, "policy_whitelist", e))?;
        let sub_account_channels = u8::try_from(self.sub_account_channels)
            .ok()
            .and_then(ChannelSet::from_bits)
            .ok_or_else(|| {
                StoreError::bad_row(
                    table,
                    "sub_account_channels",
                    format!(
                        "{} is not a set of channels: expected 0 to 31",
                        self.sub_account_channels
                    ),
                )
            })?;
        let external_id = self
            .external_id
            .map(ExternalId::new)
            .transpose()
            .map_err(|e| StoreError::bad_row(table, "external_id", e))?;
        Ok(Account {
            external_id,
            id: AccountId::from_bytes(id_bytes(table, "id", self.id)?),
            kind,
            created_at: instant_from_nanos(self.created_at),
            suspended: self.suspended,
            policy: AccountPolicy {
                whitelist,
                sub_account_channels,
                max_key_lifetime: self.max_key_lifetime.map(duration_from_nanos),
            },
        })
    }
}

/// An audit event's columns as a store read them, before decoding.
#[derive(Debug)]
pub struct RawEvent<'a> {
    /// Its account's id.
    pub account_id: &'a [u8],
    /// Its key's id, if any.
    pub key_id: Option<&'a [u8]>,
    /// Its key's channel code, if any.
    pub channel: Option<&'a str>,
    /// When it happened, in nanoseconds.
    pub at: i64,
    /// Its kind's code.
    pub kind: &'a str,
    /// Who acted: `operator` or an account id.
    pub actor: &'a str,
    /// What changed, in words.
    pub detail: &'a str,
}

impl RawEvent<'_> {
    /// The event, or a [`super::BadRow`] naming `table` and the column.
    pub fn decode(self, table: &'static str) -> Result<AuditEvent, StoreError> {
        Ok(AuditEvent {
            account_id: AccountId::from_bytes(id_bytes(table, "account_id", self.account_id)?),
            key_id: self
                .key_id
                .map(|k| id_bytes(table, "key_id", k).map(KeyId::from_bytes))
                .transpose()?,
            channel: self
                .channel
                .map(|c| {
                    c.parse::<Channel>()
                        .map_err(|e| StoreError::bad_row(table, "channel", e))
                })
                .transpose()?,
            at: instant_from_nanos(self.at),
            kind: self
                .kind
                .parse::<AuditKind>()
                .map_err(|e| StoreError::bad_row(table, "kind", e))?,
            actor: self
                .actor
                .parse::<Actor>()
                .map_err(|e| StoreError::bad_row(table, "actor", e))?,
            detail: self.detail.to_owned(),
        })
    }
}

fn id_bytes(table: &'static str, column: &'static str, b: &[u8]) -> Result<[u8; 16], StoreError> {
    <[u8; 16]>::try_from(b).map_err(|_| {
        StoreError::bad_row(
            table,
            column,
            format!("an id must be 16 bytes, found {}", b.len()),
        )
    })
}

/// A key's values as a store writes them: the instants and the version
/// encoded (and checked) once.
#[derive(Debug)]
pub struct KeyValues<'k> {
    /// The record.
    pub key: &'k KeyRecord,
    /// When the previous secret stops working, in nanoseconds.
    pub previous_expires_at: Option<i64>,
    /// When it was created, in nanoseconds.
    pub created_at: i64,
    /// When it last changed, in nanoseconds.
    pub changed_at: i64,
    /// Its version.
    pub version: i64,
    /// When it expires, in nanoseconds.
    pub expires_at: Option<i64>,
    /// Its last use, in nanoseconds.
    pub last_used_at: Option<i64>,
    /// Its last use's address, as text.
    pub last_used_address: Option<String>,
    /// Its previous secret's last use, in nanoseconds.
    pub previous_secret_last_used_at: Option<i64>,
}

impl<'k> KeyValues<'k> {
    /// Encodes `key`'s instants and version, or says which cannot be stored.
    pub fn new(key: &'k KeyRecord) -> Result<Self, Unstorable> {
        Ok(KeyValues {
            key,
            previous_expires_at: key
                .previous_secret
                .as_ref()
                .map(|p| instant_to_nanos(p.expires_at))
                .transpose()?,
            created_at: instant_to_nanos(key.created_at)?,
            changed_at: instant_to_nanos(key.changed_at)?,
            version: version_to_i64(key.version)?,
            expires_at: key.expires_at.map(instant_to_nanos).transpose()?,
            last_used_at: key.usage.last_used_at.map(instant_to_nanos).transpose()?,
            last_used_address: key.usage.last_used_address.map(address_to_text),
            previous_secret_last_used_at: key
                .usage
                .previous_secret_last_used_at
                .map(instant_to_nanos)
                .transpose()?,
        })
    }

    /// The previous secret's hash, during a grace period.
    pub fn previous_hash(&self) -> Option<&'k str> {
        self.key.previous_secret.as_ref().map(|p| p.hash.as_str())
    }
}

/// An account's policy as a store writes it: the whitelist as text, the
/// channels as bits, the lifetime as nanoseconds.
#[derive(Debug)]
pub struct PolicyValues {
    /// The whitelist as [`whitelist_to_text`].
    pub whitelist_text: String,
    /// The whitelist as [`whitelist_entries`].
    pub whitelist_entries: Vec<String>,
    /// The channels as [`ChannelSet::bits`].
    pub sub_account_channels: i64,
    /// The lifetime in nanoseconds.
    pub max_key_lifetime: Option<i64>,
}

impl PolicyValues {
    /// Encodes `policy`, or says what cannot be stored.
    pub fn new(policy: &AccountPolicy) -> Result<Self, Unstorable> {
        Ok(PolicyValues {
            whitelist_text: whitelist_to_text(&policy.whitelist),
            whitelist_entries: whitelist_entries(&policy.whitelist),
            sub_account_channels: i64::from(policy.sub_account_channels.bits()),
            max_key_lifetime: policy.max_key_lifetime.map(duration_to_nanos).transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn instants_roundtrip_to_the_nanosecond_and_refuse_the_far_future() {
        for t in [
            datetime!(1970-01-01 0:00 UTC),
            datetime!(2025-06-01 12:34:56.123456789 UTC),
            datetime!(1677-09-21 0:12:43.145224192 UTC),
            datetime!(2262-04-11 23:47:16.854775807 UTC),
        ] {
            assert_eq!(instant_from_nanos(instant_to_nanos(t).unwrap()), t);
        }
        let far = datetime!(2262-04-12 0:00 UTC);
        let e = instant_to_nanos(far).unwrap_err();
        assert_eq!(e, Unstorable::Instant(far));
        assert!(e.to_string().contains("1677-09-21 to 2262-04-11"));
        assert!(instant_to_nanos(datetime!(1677-09-21 0:00 UTC)).is_err());
    }

    #[test]
    fn versions_roundtrip_and_refuse_what_does_not_fit() {
        for v in [1, 2, i64::MAX as u64] {
            assert_eq!(version_from_i64(version_to_i64(v).unwrap()), Ok(v));
        }
        assert_eq!(version_to_i64(u64::MAX), Err(Unstorable::Version(u64::MAX)));
        assert_eq!(version_from_i64(0), Err(BadVersion(0)));
        assert_eq!(version_from_i64(-5), Err(BadVersion(-5)));
    }

    #[test]
    fn whitelists_roundtrip_both_ways() {
        let w = Whitelist::parse(&["10.1.2.3/8", "2001:db8::1", "203.0.113.7"], 10).unwrap();
        let text = whitelist_to_text(&w);
        assert_eq!(text, "10.0.0.0/8 203.0.113.7/32 2001:db8::1/128");
        assert_eq!(whitelist_from_text(&text).unwrap(), w);
        let entries = whitelist_entries(&w);
        assert_eq!(
            whitelist_from_entries(entries.iter().map(String::as_str)).unwrap(),
            w
        );
        assert_eq!(whitelist_to_text(&Whitelist::default()), "");
        assert_eq!(whitelist_from_text("").unwrap(), Whitelist::default());
        assert!(whitelist_from_text("10.0.0.0/8  192.0.2.1").is_err());
        assert!(whitelist_from_text("nonsense").is_err());
    }
}

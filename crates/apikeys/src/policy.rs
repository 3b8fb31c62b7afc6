//! Policy values the embedder may change: default activation, limits and
//! hashing cost.
//!
//! Rules of default activation:
//! - A master account created strictly before the cutover starts with four
//!   active channels: FTP, HTTP, Web Service and Email (not REST).
//! - A master created at or after the cutover, and every sub-account
//!   whatever its date, starts with none.
//! - The default cutover is 2023-06-06 00:00 South African time (UTC+02:00),
//!   that is 2023-06-05T22:00:00Z. Both the cutover and the legacy set are
//!   policy values.
//!
//! Every policy type is an options struct: `Default` is the production
//! setting, and chainable setters named after the fields change one value
//! (`Policy::default().max_rest_keys(5)`). The same style is used by every
//! options type of the workspace.

use crate::account::AccountKind;
use crate::channel::{Channel, ChannelSet};
use crate::hashing::HashingPolicy;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

/// Which channels an account starts with.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ActivationPolicy {
    /// Masters created strictly before this instant are legacy accounts.
    pub cutover: OffsetDateTime,
    /// The channels a legacy master starts with.
    pub legacy_channels: ChannelSet,
}

impl ActivationPolicy {
    /// The default cutover: 2023-06-06 00:00 in South Africa (UTC+02:00), that
    /// is 2023-06-05T22:00:00Z.
    ///
    /// Decision: the provider is South African and its help page names no
    /// zone, so the date is read in South African Standard Time.
    pub const DEFAULT_CUTOVER: OffsetDateTime = datetime!(2023-06-06 00:00 +02:00);

    /// The default legacy set: FTP, HTTP, Email and Web Service (not REST).
    pub const DEFAULT_LEGACY_CHANNELS: ChannelSet = ChannelSet::of(&[
        Channel::Ftp,
        Channel::Http,
        Channel::WebService,
        Channel::Email,
    ]);

    /// The channels an account of this kind, created at this instant, starts
    /// with: the legacy set for a master created strictly before the cutover,
    /// nothing otherwise (and nothing, ever, for a sub-account).
    pub fn default_channels(&self, kind: &AccountKind, created_at: OffsetDateTime) -> ChannelSet {
        match kind {
            AccountKind::Master if created_at < self.cutover => self.legacy_channels,
            AccountKind::Master | AccountKind::Sub { .. } => ChannelSet::EMPTY,
        }
    }
}

impl ActivationPolicy {
    /// This policy with another cutover.
    #[must_use]
    pub fn cutover(mut self, cutover: OffsetDateTime) -> Self {
        self.cutover = cutover;
        self
    }

    /// This policy with another legacy channel set.
    #[must_use]
    pub fn legacy_channels(mut self, channels: ChannelSet) -> Self {
        self.legacy_channels = channels;
        self
    }
}

impl Default for ActivationPolicy {
    fn default() -> Self {
        ActivationPolicy {
            cutover: Self::DEFAULT_CUTOVER,
            legacy_channels: Self::DEFAULT_LEGACY_CHANNELS,
        }
    }
}

/// All policy values. `Policy::default()` is the production policy.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Policy {
    /// Default activation.
    pub activation: ActivationPolicy,
    /// How many REST keys one account may hold (default 10).
    pub max_rest_keys: u32,
    /// How many entries one key's IP whitelist may hold (default 100, at
    /// most [`crate::whitelist::MAX_ENTRIES`]).
    pub max_whitelist_entries: usize,
    /// The longest grace period a credential change may grant the previous
    /// secret (default 30 days). Decision: the spec leaves the bound open; an
    /// unbounded grace would keep a leaked secret alive forever.
    pub max_grace: Duration,
    /// Hashing cost.
    pub hashing: HashingPolicy,
    /// How failed authentications are throttled.
    pub throttle: crate::throttle::ThrottlePolicy,
    /// How long a REST token works (default 1440 minutes, as the provider's
    /// REST API issues them).
    pub token_lifetime: Duration,
    /// How many live REST tokens one key may hold (default 10; at least 1):
    /// issuing one more removes the oldest.
    pub max_tokens_per_key: u32,
    /// How many verified chosen secrets each service remembers, so that
    /// their next checks skip argon2 (see [`crate::service::ApiKeys::authenticate`]);
    /// 0 turns the cache off. Default 10,000 entries, about 2 MB.
    pub verified_cache_capacity: usize,
    /// The longest lifetime a new key may have, from its creation (default
    /// none: keys live until deleted). When set, a key created without an
    /// expiry gets one at that distance, and an expiry set later may not go
    /// beyond it.
    pub max_key_lifetime: Option<Duration>,
    /// How last use is recorded (see [`crate::usage`]).
    pub usage: crate::usage::UsagePolicy,
    /// When set, legacy default keys never used and older than this are
    /// disabled by [`crate::ApiKeys::disable_dormant_legacy_defaults`]
    /// (default none: the action refuses to run).
    pub disable_dormant_legacy_defaults_after: Option<Duration>,
}

/// The longest key lifetime any policy may set: 100 years (far inside what
/// every store keeps).
pub const MAX_KEY_LIFETIME: Duration = Duration::days(36_525);

impl Default for Policy {
    fn default() -> Self {
        Policy {
            activation: ActivationPolicy::default(),
            max_rest_keys: 10,
            max_whitelist_entries: 100,
            max_grace: Duration::days(30),
            hashing: HashingPolicy::default(),
            throttle: crate::throttle::ThrottlePolicy::default(),
            token_lifetime: Duration::minutes(1440),
            max_tokens_per_key: 10,
            verified_cache_capacity: 10_000,
            max_key_lifetime: None,
            usage: crate::usage::UsagePolicy::default(),
            disable_dormant_legacy_defaults_after: None,
        }
    }
}

/// A policy value out of its bounds.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// More whitelist entries than any store is asked to keep.
    #[error(
        "max_whitelist_entries is {0}: it must be at most {max}",
        max = crate::whitelist::MAX_ENTRIES
    )]
    WhitelistEntries(usize),
    /// A negative grace period.
    #[error("max_grace is negative: it must be zero (no grace) or more")]
    NegativeGrace,
    /// A token lifetime that is not positive.
    #[error("token_lifetime must be positive")]
    TokenLifetime,
    /// No token could be held.
    #[error("max_tokens_per_key is 0: it must be at least 1")]
    NoTokens,
    /// A key lifetime that is not positive or is over 100 years.
    #[error("max_key_lifetime must be positive and at most 100 years")]
    KeyLifetime,
    /// A last-use interval under a millisecond.
    #[error("usage.interval must be at least 1 ms")]
    UsageInterval,
    /// A dormancy period that is not positive.
    #[error("disable_dormant_legacy_defaults_after must be positive")]
    DormancyPeriod,
}

impl Policy {
    /// The production policy with the fast hashing preset, for tests only:
    /// hashes made with it are upgraded at the next check under the
    /// production policy.
    pub fn fast_for_tests() -> Self {
        Policy::default().hashing(HashingPolicy::fast_for_tests())
    }

    /// This policy with another activation policy.
    #[must_use]
    pub fn activation(mut self, activation: ActivationPolicy) -> Self {
        self.activation = activation;
        self
    }

    /// This policy with another REST key limit.
    #[must_use]
    pub fn max_rest_keys(mut self, limit: u32) -> Self {
        self.max_rest_keys = limit;
        self
    }

    /// This policy with another whitelist limit.
    #[must_use]
    pub fn max_whitelist_entries(mut self, limit: usize) -> Self {
        self.max_whitelist_entries = limit;
        self
    }

    /// This policy with another longest grace period.
    #[must_use]
    pub fn max_grace(mut self, max: Duration) -> Self {
        self.max_grace = max;
        self
    }

    /// This policy with another hashing cost.
    #[must_use]
    pub fn hashing(mut self, hashing: HashingPolicy) -> Self {
        self.hashing = hashing;
        self
    }

    /// This policy with another throttle.
    #[must_use]
    pub fn throttle(mut self, throttle: crate::throttle::ThrottlePolicy) -> Self {
        self.throttle = throttle;
        self
    }

    /// This policy with another REST token lifetime.
    #[must_use]
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = lifetime;
        self
    }

    /// This policy with another bound on live tokens per key.
    #[must_use]
    pub fn max_tokens_per_key(mut self, max: u32) -> Self {
        self.max_tokens_per_key = max;
        self
    }

    /// This policy with another verified-secret cache capacity (0: off).
    #[must_use]
    pub fn verified_cache_capacity(mut self, capacity: usize) -> Self {
        self.verified_cache_capacity = capacity;
        self
    }

    /// This policy with a cap on new keys' lifetime (`None`: no cap).
    #[must_use]
    pub fn max_key_lifetime(mut self, max: Option<Duration>) -> Self {
        self.max_key_lifetime = max;
        self
    }

    /// This policy with another way of recording last use.
    #[must_use]
    pub fn usage(mut self, usage: crate::usage::UsagePolicy) -> Self {
        self.usage = usage;
        self
    }

    /// This policy disabling dormant legacy default keys after `after`
    /// (`None`: never).
    #[must_use]
    pub fn disable_dormant_legacy_defaults_after(mut self, after: Option<Duration>) -> Self {
        self.disable_dormant_legacy_defaults_after = after;
        self
    }

    /// Checks every value against its bounds (argon2's parameters included).
    pub fn validate(&self) -> Result<(), crate::Error> {
        if self.max_whitelist_entries > crate::whitelist::MAX_ENTRIES {
            return Err(PolicyError::WhitelistEntries(self.max_whitelist_entries).into());
        }
        if self.max_grace.is_negative() {
            return Err(PolicyError::NegativeGrace.into());
        }
        if !self.token_lifetime.is_positive() {
            return Err(PolicyError::TokenLifetime.into());
        }
        if self.max_tokens_per_key == 0 {
            return Err(PolicyError::NoTokens.into());
        }
        if self
            .max_key_lifetime
            .is_some_and(|l| !l.is_positive() || l > MAX_KEY_LIFETIME)
        {
            return Err(PolicyError::KeyLifetime.into());
        }
        if self.usage.interval < Duration::milliseconds(1) {
            return Err(PolicyError::UsageInterval.into());
        }
        if self
            .disable_dormant_legacy_defaults_after
            .is_some_and(|d| !d.is_positive())
        {
            return Err(PolicyError::DormancyPeriod.into());
        }
        self.hashing.validate()?;
        Ok(())
    }

    /// How many keys of `channel` one account may hold.
    pub fn max_keys(&self, channel: Channel) -> u32 {
        if channel.allows_several_keys() {
            self.max_rest_keys
        } else {
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value out of range is refused with the error naming it; the
    /// edges of the ranges are accepted.
    #[test]
    fn out_of_range_values_are_refused_by_name() {
        let base = Policy::fast_for_tests();
        base.clone().validate().unwrap();
        let limit = crate::whitelist::MAX_ENTRIES;
        let refused = |p: Policy| match p.validate() {
            Err(crate::Error::InvalidPolicy(e)) => e,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            refused(base.clone().max_whitelist_entries(limit + 1)),
            PolicyError::WhitelistEntries(limit + 1)
        );
        assert_eq!(
            refused(base.clone().max_grace(Duration::seconds(-1))),
            PolicyError::NegativeGrace
        );
        assert_eq!(
            refused(base.clone().token_lifetime(Duration::ZERO)),
            PolicyError::TokenLifetime
        );
        assert_eq!(
            refused(base.clone().max_tokens_per_key(0)),
            PolicyError::NoTokens
        );
        for edge in [
            base.clone().max_whitelist_entries(limit),
            base.clone().max_grace(Duration::ZERO),
            base.clone().token_lifetime(Duration::nanoseconds(1)),
            base.clone().max_tokens_per_key(1),
        ] {
            edge.validate().unwrap();
        }
    }

    #[test]
    fn default_cutover_is_south_african_midnight() {
        assert_eq!(
            ActivationPolicy::DEFAULT_CUTOVER,
            datetime!(2023-06-05 22:00 UTC)
        );
    }

    #[test]
    fn default_legacy_set_is_four_without_rest() {
        let set = ActivationPolicy::DEFAULT_LEGACY_CHANNELS;
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            [
                Channel::Ftp,
                Channel::Http,
                Channel::WebService,
                Channel::Email
            ]
        );
        assert!(!set.contains(Channel::Rest));
    }

    #[test]
    fn limits() {
        let p = Policy::default();
        assert_eq!(p.max_keys(Channel::Rest), 10);
        assert_eq!(p.max_keys(Channel::Ftp), 1);
        assert_eq!(p.max_whitelist_entries, 100);
    }
}

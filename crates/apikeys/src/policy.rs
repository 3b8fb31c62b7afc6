//! Policy values the embedder may change: default activation (SPEC.md
//! section 3), limits (sections 4 and 5) and hashing cost (section 4).

use crate::account::AccountKind;
use crate::channel::{Channel, ChannelSet};
use crate::hashing::HashingPolicy;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

/// Which channels an account starts with.
#[derive(Clone, Debug, PartialEq, Eq)]
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
pub struct Policy {
    /// Default activation.
    pub activation: ActivationPolicy,
    /// How many REST keys one account may hold (default 10).
    pub max_rest_keys: u32,
    /// How many entries one key's IP whitelist may hold (default 100).
    pub max_whitelist_entries: usize,
    /// The longest grace period a credential change may grant the previous
    /// secret (default 30 days). Decision: the spec leaves the bound open; an
    /// unbounded grace would keep a leaked secret alive forever.
    pub max_grace: Duration,
    /// Hashing cost.
    pub hashing: HashingPolicy,
    /// How many verified chosen secrets each service remembers, so that
    /// their next checks skip argon2 (see [`crate::service::ApiKeys::authenticate`]);
    /// 0 turns the cache off. Default 10,000 entries, about 2 MB.
    pub verified_cache_capacity: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            activation: ActivationPolicy::default(),
            max_rest_keys: 10,
            max_whitelist_entries: 100,
            max_grace: Duration::days(30),
            hashing: HashingPolicy::default(),
            verified_cache_capacity: 10_000,
        }
    }
}

impl Policy {
    /// The production policy with the fast hashing preset, for tests only.
    pub fn fast_for_tests() -> Self {
        Policy {
            hashing: HashingPolicy::fast_for_tests(),
            ..Policy::default()
        }
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

//! Throttling failed authentications: online guessing slows to a crawl,
//! and nobody is locked out.
//!
//! Rules:
//! - Failures are counted per identifier and client address, and per client
//!   address across identifiers. Past an allowance (by default 5 per
//!   identifier and address, 50 per address), each further failure blocks
//!   that pair (or that address) for a backoff that doubles, from 1 second
//!   up to 15 minutes. A count is forgotten after 15 minutes without a
//!   failure.
//! - A blocked attempt is refused before any lookup and runs no argon2: it
//!   gets its own answer (`Throttled`, with how long to wait), not a verdict
//!   on the credentials.
//! - No lockout: a block holds only for the address that earned it. Another
//!   address presenting the right secret for the same identifier is never
//!   refused because of someone else's guessing. A success clears its own
//!   pair's count, but never the address's: an attacker's valid key of his
//!   own does not buy him more guesses at others'.
//! - IPv6 addresses are counted by their /64 network, which one subscriber
//!   gets whole; IPv4-mapped addresses as the IPv4 address they map.
//! - Memory is bounded: each table keeps at most `capacity` entries; when
//!   one is full, entries that no longer block and were forgotten anyway go
//!   first, then arbitrary ones.
//!
//! The clock is a parameter of every call (the service passes its own), so
//! tests move time by hand.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use time::{Duration, OffsetDateTime};

/// How failed authentications are throttled. `ThrottlePolicy::default()` is
/// the production setting.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ThrottlePolicy {
    /// Failures one identifier may have from one address before backoff
    /// starts (default 5).
    pub per_identifier_allowance: u32,
    /// Failures one address may have across all identifiers before backoff
    /// starts (default 50).
    pub per_address_allowance: u32,
    /// The first backoff past an allowance (default 1 second); each further
    /// failure doubles it.
    pub backoff: Duration,
    /// The longest backoff (default 15 minutes).
    pub max_backoff: Duration,
    /// How long a count lasts without a new failure (default 15 minutes).
    pub forget_after: Duration,
    /// The most entries each table keeps (default 100,000 pairs and as many
    /// addresses, about 10 MB at most). 0 turns throttling off.
    pub capacity: usize,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        ThrottlePolicy {
            per_identifier_allowance: 5,
            per_address_allowance: 50,
            backoff: Duration::seconds(1),
            max_backoff: Duration::minutes(15),
            forget_after: Duration::minutes(15),
            capacity: 100_000,
        }
    }
}

impl ThrottlePolicy {
    /// No throttling at all.
    pub fn off() -> Self {
        ThrottlePolicy::default().capacity(0)
    }

    /// This policy with another per-identifier allowance.
    #[must_use]
    pub fn per_identifier_allowance(mut self, failures: u32) -> Self {
        self.per_identifier_allowance = failures;
        self
    }

    /// This policy with another per-address allowance.
    #[must_use]
    pub fn per_address_allowance(mut self, failures: u32) -> Self {
        self.per_address_allowance = failures;
        self
    }

    /// This policy with another first backoff.
    #[must_use]
    pub fn backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    /// This policy with another longest backoff.
    #[must_use]
    pub fn max_backoff(mut self, max: Duration) -> Self {
        self.max_backoff = max;
        self
    }

    /// This policy with another memory of failures.
    #[must_use]
    pub fn forget_after(mut self, after: Duration) -> Self {
        self.forget_after = after;
        self
    }

    /// This policy with another table capacity (0: off).
    #[must_use]
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// The block after `failures` failures, or `None` within the allowance.
    fn block_for(&self, failures: u32, allowance: u32) -> Option<Duration> {
        let beyond = failures.checked_sub(allowance)?.checked_sub(1)?;
        // 2^beyond seconds, saturating well before any overflow.
        let factor = 1i32.checked_shl(beyond.min(30)).unwrap_or(i32::MAX);
        Some(
            self.backoff
                .checked_mul(factor)
                .unwrap_or(self.max_backoff)
                .min(self.max_backoff),
        )
    }
}

/// What addresses are counted by: an IPv4 address, or an IPv6 /64.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum AddressKey {
    V4(u32),
    V6Prefix(u64),
}

impl AddressKey {
    fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(a) => AddressKey::V4(u32::from(a)),
            // The upper 64 bits: the network a subscriber gets whole.
            IpAddr::V6(a) => AddressKey::V6Prefix((u128::from(a) >> 64) as u64),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Count {
    failures: u32,
    last_failure: OffsetDateTime,
    blocked_until: Option<OffsetDateTime>,
}

/// How many independently locked shards a table has, so that concurrent
/// checks seldom wait for each other.
const SHARDS: usize = 16;

/// One bounded table of counts, in shards.
struct Table<K> {
    shards: [Mutex<HashMap<K, Count>>; SHARDS],
    hasher: RandomState,
    /// Entries in all shards, kept beside them so the hot path can skip
    /// every lock when the table is empty (no failure anywhere lately: the
    /// common case).
    len: AtomicUsize,
}

impl<K: Copy + Eq + std::hash::Hash> Table<K> {
    fn new() -> Self {
        Table {
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            hasher: RandomState::new(),
            len: AtomicUsize::new(0),
        }
    }

    fn shard(&self, key: &K) -> std::sync::MutexGuard<'_, HashMap<K, Count>> {
        let i = (self.hasher.hash_one(key) as usize) % SHARDS;
        // Every change is one insert or remove: poisoning cannot leave a
        // shard half-written.
        self.shards[i]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn is_empty(&self) -> bool {
        self.len.load(Ordering::Relaxed) == 0
    }

    fn blocked_until(&self, key: &K, now: OffsetDateTime) -> Option<OffsetDateTime> {
        if self.is_empty() {
            return None;
        }
        self.shard(key)
            .get(key)
            .and_then(|c| c.blocked_until)
            .filter(|until| *until > now)
    }

    fn fail(&self, key: K, now: OffsetDateTime, allowance: u32, policy: &ThrottlePolicy) {
        let mut shard = self.shard(&key);
        let per_shard = policy.capacity.div_ceil(SHARDS).max(1);
        let before = shard.len();
        if !shard.contains_key(&key) && shard.len() >= per_shard {
            Self::make_room(&mut shard, now, policy, per_shard);
        }
        let count = shard.entry(key).or_insert(Count {
            failures: 0,
            last_failure: now,
            blocked_until: None,
        });
        if now - count.last_failure > policy.forget_after {
            count.failures = 0;
            count.blocked_until = None;
        }
        count.failures = count.failures.saturating_add(1);
        count.last_failure = now;
        if let Some(block) = policy.block_for(count.failures, allowance) {
            count.blocked_until = Some(now + block);
        }
        self.adjust_len(before, shard.len());
    }

    fn clear(&self, key: &K) {
        if self.is_empty() {
            return;
        }
        let mut shard = self.shard(key);
        let before = shard.len();
        shard.remove(key);
        self.adjust_len(before, shard.len());
    }

    fn adjust_len(&self, before: usize, after: usize) {
        if after > before {
            self.len.fetch_add(after - before, Ordering::Relaxed);
        } else if before > after {
            self.len.fetch_sub(before - after, Ordering::Relaxed);
        }
    }

    /// Frees entries that neither block nor are remembered any longer;
    /// if that is not enough, one arbitrary entry.
    fn make_room(
        shard: &mut HashMap<K, Count>,
        now: OffsetDateTime,
        policy: &ThrottlePolicy,
        per_shard: usize,
    ) {
        shard.retain(|_, c| {
            c.blocked_until.is_some_and(|u| u > now) || now - c.last_failure <= policy.forget_after
        });
        if shard.len() >= per_shard
            && let Some(victim) = shard.keys().next().copied()
        {
            shard.remove(&victim);
        }
    }

    #[cfg(test)]
    fn entries(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }
}

/// The throttle of one service: its tables of failures.
pub(crate) struct Throttle {
    policy: ThrottlePolicy,
    /// Hashes identifiers, so entries hold no identifier text.
    hasher: RandomState,
    pairs: Table<(u64, AddressKey)>,
    addresses: Table<AddressKey>,
}

impl Throttle {
    pub(crate) fn new(policy: ThrottlePolicy) -> Self {
        Throttle {
            policy,
            hasher: RandomState::new(),
            pairs: Table::new(),
            addresses: Table::new(),
        }
    }

    fn is_off(&self) -> bool {
        self.policy.capacity == 0
    }

    fn pair(&self, identifier: &str, client: IpAddr) -> (u64, AddressKey) {
        // Identifiers compare ignoring ASCII case: so do their counts.
        let mut h = self.hasher.build_hasher();
        for b in identifier.bytes() {
            std::hash::Hasher::write_u8(&mut h, b.to_ascii_lowercase());
        }
        (std::hash::Hasher::finish(&h), AddressKey::of(client))
    }

    /// Whether nothing is counted at all, so that [`Throttle::retry_after`]
    /// would answer `None` whatever the time: the hot path then skips
    /// reading the clock.
    pub(crate) fn is_idle(&self) -> bool {
        self.is_off() || (self.pairs.is_empty() && self.addresses.is_empty())
    }

    /// How long `client` must wait before presenting `identifier` again, if
    /// it is blocked.
    pub(crate) fn retry_after(
        &self,
        identifier: &str,
        client: IpAddr,
        now: OffsetDateTime,
    ) -> Option<Duration> {
        if self.is_idle() {
            return None;
        }
        let pair = self
            .pairs
            .blocked_until(&self.pair(identifier, client), now);
        let address = self.addresses.blocked_until(&AddressKey::of(client), now);
        pair.max(address).map(|until| until - now)
    }

    /// Counts a failed authentication.
    pub(crate) fn failed(&self, identifier: &str, client: IpAddr, now: OffsetDateTime) {
        if self.is_off() {
            return;
        }
        let policy = &self.policy;
        self.pairs.fail(
            self.pair(identifier, client),
            now,
            policy.per_identifier_allowance,
            policy,
        );
        self.addresses.fail(
            AddressKey::of(client),
            now,
            policy.per_address_allowance,
            policy,
        );
    }

    /// Clears the count of this identifier from this address (not the
    /// address's own count).
    pub(crate) fn succeeded(&self, identifier: &str, client: IpAddr) {
        if self.is_off() || self.pairs.is_empty() {
            return;
        }
        self.pairs.clear(&self.pair(identifier, client));
    }

    #[cfg(test)]
    fn sizes(&self) -> (usize, usize) {
        (self.pairs.entries(), self.addresses.entries())
    }
}

/// Throttles attempts by address alone: for credentials that are not an
/// identifier and a secret (an adapter's admin token, say). The same rules
/// as the per-address count of authentication.
pub struct AddressThrottle {
    policy: ThrottlePolicy,
    table: Table<AddressKey>,
}

impl std::fmt::Debug for AddressThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddressThrottle")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl AddressThrottle {
    /// A throttle allowing `policy.per_address_allowance` failures per
    /// address before backoff.
    pub fn new(policy: ThrottlePolicy) -> Self {
        AddressThrottle {
            policy,
            table: Table::new(),
        }
    }

    /// How long `client` must wait before trying again, if it is blocked.
    pub fn retry_after(&self, client: IpAddr, now: OffsetDateTime) -> Option<Duration> {
        if self.policy.capacity == 0 {
            return None;
        }
        self.table
            .blocked_until(&AddressKey::of(client), now)
            .map(|until| until - now)
    }

    /// Counts a failed attempt from `client`.
    pub fn failed(&self, client: IpAddr, now: OffsetDateTime) {
        if self.policy.capacity == 0 {
            return;
        }
        self.table.fail(
            AddressKey::of(client),
            now,
            self.policy.per_address_allowance,
            &self.policy,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2025-01-01 0:00 UTC);

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn fail_n(t: &Throttle, n: u32, id: &str, client: IpAddr, at: OffsetDateTime) {
        for _ in 0..n {
            t.failed(id, client, at);
        }
    }

    #[test]
    fn backoff_starts_past_the_allowance_and_doubles_up_to_the_cap() {
        let p = ThrottlePolicy::default();
        assert_eq!(p.block_for(5, 5), None);
        assert_eq!(p.block_for(6, 5), Some(Duration::seconds(1)));
        assert_eq!(p.block_for(7, 5), Some(Duration::seconds(2)));
        assert_eq!(p.block_for(10, 5), Some(Duration::seconds(16)));
        assert_eq!(p.block_for(20, 5), Some(Duration::minutes(15)));
        assert_eq!(p.block_for(u32::MAX, 5), Some(Duration::minutes(15)));
    }

    #[test]
    fn a_pair_is_blocked_past_its_allowance_and_only_that_pair() {
        let t = Throttle::new(ThrottlePolicy::default());
        let attacker = ip("203.0.113.9");
        fail_n(&t, 5, "victim", attacker, T0);
        assert_eq!(
            t.retry_after("victim", attacker, T0),
            None,
            "within allowance"
        );
        t.failed("victim", attacker, T0);
        assert_eq!(
            t.retry_after("VICTIM", attacker, T0),
            Some(Duration::seconds(1)),
            "identifiers ignore ASCII case"
        );
        // No lockout: the owner, from elsewhere, is not blocked.
        assert_eq!(t.retry_after("victim", ip("198.51.100.4"), T0), None);
        // The attacker's other identifiers are not blocked (yet).
        assert_eq!(t.retry_after("someone-else", attacker, T0), None);
        // The block ends.
        assert_eq!(
            t.retry_after("victim", attacker, T0 + Duration::seconds(1)),
            None
        );
    }

    #[test]
    fn an_address_is_blocked_across_identifiers() {
        let t = Throttle::new(ThrottlePolicy::default());
        let attacker = ip("203.0.113.9");
        for i in 0..51 {
            t.failed(&format!("guess-{i}"), attacker, T0);
        }
        assert!(t.retry_after("anyone-at-all", attacker, T0).is_some());
        assert_eq!(t.retry_after("anyone-at-all", ip("203.0.113.10"), T0), None);
    }

    #[test]
    fn ipv6_counts_by_slash_64_and_mapped_addresses_as_ipv4() {
        let t = Throttle::new(ThrottlePolicy::default());
        for i in 0..6u16 {
            t.failed("victim", ip(&format!("2001:db8:1:2::{i:x}")), T0);
        }
        assert!(
            t.retry_after("victim", ip("2001:db8:1:2:ffff::1"), T0)
                .is_some()
        );
        assert_eq!(t.retry_after("victim", ip("2001:db8:1:3::1"), T0), None);
        fail_n(&t, 6, "victim", ip("::ffff:192.0.2.1"), T0);
        assert!(t.retry_after("victim", ip("192.0.2.1"), T0).is_some());
    }

    #[test]
    fn counts_are_forgotten_and_success_clears_only_the_pair() {
        let t = Throttle::new(ThrottlePolicy::default());
        let client = ip("192.0.2.7");
        fail_n(&t, 5, "k", client, T0);
        // Long after, a new failure starts from zero.
        let later = T0 + Duration::minutes(16);
        t.failed("k", client, later);
        assert_eq!(t.retry_after("k", client, later), None);
        fail_n(&t, 5, "k", client, later);
        assert!(t.retry_after("k", client, later).is_some());
        t.succeeded("k", client);
        assert_eq!(t.retry_after("k", client, later), None);
        // The address's own count stays: 11 failures of its 50.
        let (_, addresses) = t.sizes();
        assert_eq!(addresses, 1);
    }

    #[test]
    fn memory_is_bounded() {
        let t = Throttle::new(ThrottlePolicy::default().capacity(100));
        for i in 0..10_000u32 {
            t.failed("x", IpAddr::from(i.to_be_bytes()), T0);
        }
        let (pairs, addresses) = t.sizes();
        // Each of the 16 shards keeps at most ceil(100 / 16) entries.
        assert!(pairs <= 112 && addresses <= 112, "{pairs} {addresses}");
        assert_eq!(t.pairs.len.load(Ordering::Relaxed), pairs);
        // Stale entries go first: the newest blocking entry survives.
        let t = Throttle::new(ThrottlePolicy::default().capacity(10));
        for i in 0..9u32 {
            t.failed("old", IpAddr::from(i.to_be_bytes()), T0);
        }
        let fresh = T0 + Duration::hours(1);
        fail_n(&t, 6, "target", ip("203.0.113.1"), fresh);
        for i in 100..200u32 {
            t.failed("spray", IpAddr::from(i.to_be_bytes()), fresh);
        }
        assert!(t.sizes().0 <= 16);
    }

    #[test]
    fn off_counts_nothing() {
        let t = Throttle::new(ThrottlePolicy::off());
        fail_n(&t, 100, "k", ip("192.0.2.1"), T0);
        assert!(t.is_idle());
        assert_eq!(t.retry_after("k", ip("192.0.2.1"), T0), None);
    }

    #[test]
    fn the_address_throttle_blocks_past_its_allowance() {
        let t = AddressThrottle::new(ThrottlePolicy::default().per_address_allowance(3));
        let client = ip("203.0.113.5");
        for _ in 0..3 {
            t.failed(client, T0);
        }
        assert_eq!(t.retry_after(client, T0), None);
        t.failed(client, T0);
        assert_eq!(t.retry_after(client, T0), Some(Duration::seconds(1)));
        assert_eq!(t.retry_after(ip("203.0.113.6"), T0), None);
    }
}

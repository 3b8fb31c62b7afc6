//! Per-key IP whitelists.
//!
//! Rules:
//! - Each key has a list of entries, each an IPv4 or IPv6 address or network.
//!   An address is kept as a /32 or /128 network. Entries are normalised
//!   (host bits cleared), de-duplicated exactly (a network inside another is
//!   kept) and sorted; callers get the normalised list back.
//! - An empty list lets any address use the key. Otherwise a request from an
//!   address outside every entry is refused, even with the right
//!   credentials.
//! - IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are IPv4: an entry in
//!   `::ffff:0:0/96` is kept as the IPv4 network it maps, and a client
//!   address in it is checked as the IPv4 address it maps. So the answer is
//!   the same whether the server listens on IPv4 or on a dual-stack `[::]`
//!   socket. An IPv4 client never matches an IPv6 entry, not even `::/0`.
//! - The list is replaced whole, atomically, or entries are added and
//!   removed; removing an absent entry is not an error. The policy bounds the
//!   entries per key (default 100, never more than [`MAX_ENTRIES`]). A bad
//!   entry is refused with an error naming it.
//!
//! Entries are kept twice: as the normalised list people see, and as sorted,
//! merged integer ranges per address family, so that a check is a binary
//! search, about as cheap against 1,000 entries as against 10.

use ipnet::{IpNet, Ipv4Net};
use std::net::IpAddr;
use std::sync::Arc;

/// The most entries any policy may allow on one key: the bound a store's
/// schema must hold.
pub const MAX_ENTRIES: usize = 1000;

/// A bad whitelist: an entry that does not parse, or too many entries.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WhitelistError {
    /// An entry is not an address or network.
    #[error(
        "whitelist entry `{entry}` is not an IPv4 or IPv6 address or network (examples: 203.0.113.7, 203.0.113.0/24, 2001:db8::/32)"
    )]
    BadEntry {
        /// The entry as given, cut to 64 characters.
        entry: String,
    },
    /// More entries than the policy allows.
    #[error("whitelist has {count} entries after normalisation: at most {limit} are allowed")]
    TooMany {
        /// Entries after normalisation and de-duplication.
        count: usize,
        /// The policy's limit.
        limit: usize,
    },
    /// A request lists more entries than the policy allows, before any
    /// normalisation: an API bounds what one request may carry.
    #[error("the request lists {count} whitelist entries: at most {limit} are accepted")]
    TooManyListed {
        /// Entries as listed.
        count: usize,
        /// The policy's limit.
        limit: usize,
    },
}

/// An IP whitelist: empty allows every address; otherwise only addresses
/// inside one of its entries. Cheap to clone (shared).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Whitelist(Arc<Inner>);

#[derive(Default, PartialEq, Eq)]
struct Inner {
    entries: Vec<IpNet>,
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl std::fmt::Debug for Whitelist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.entries()).finish()
    }
}

/// Why an address passes or not, for people debugging a refusal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Explanation {
    /// Whether the address may use the key.
    pub allowed: bool,
    /// The most specific entry containing the address, if any. `None` with
    /// `allowed` means the whitelist is empty.
    pub matched: Option<IpNet>,
}

/// Parses one entry: an address (taken as /32 or /128) or a network in CIDR
/// notation; host bits are cleared.
pub fn parse_entry(entry: &str) -> Result<IpNet, WhitelistError> {
    let net = entry
        .parse::<IpNet>()
        .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| WhitelistError::BadEntry {
            entry: entry.chars().take(64).collect(),
        })?;
    Ok(canonical_net(net))
}

impl Whitelist {
    /// A whitelist of `entries`, normalised (host bits cleared), de-duplicated
    /// and sorted; refused if more than `limit` remain.
    pub fn new(
        entries: impl IntoIterator<Item = IpNet>,
        limit: usize,
    ) -> Result<Self, WhitelistError> {
        let mut entries: Vec<IpNet> = entries.into_iter().map(canonical_net).collect();
        entries.sort_unstable();
        entries.dedup();
        if entries.len() > limit {
            return Err(WhitelistError::TooMany {
                count: entries.len(),
                limit,
            });
        }
        Ok(Self::from_normalised(entries))
    }

    /// Builds the lookup ranges of entries already truncated, sorted and
    /// de-duplicated.
    fn from_normalised(entries: Vec<IpNet>) -> Self {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for net in &entries {
            match net {
                IpNet::V4(n) => v4.push((u32::from(n.network()), u32::from(n.broadcast()))),
                IpNet::V6(n) => v6.push((u128::from(n.network()), u128::from(n.broadcast()))),
            }
        }
        Whitelist(Arc::new(Inner {
            entries,
            v4: merge(v4),
            v6: merge(v6),
        }))
    }

    /// Parses textual entries (see [`parse_entry`]); the error names the first
    /// bad entry.
    pub fn parse<S: AsRef<str>>(entries: &[S], limit: usize) -> Result<Self, WhitelistError> {
        let nets = entries
            .iter()
            .map(|e| parse_entry(e.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(nets, limit)
    }

    /// The normalised entries, sorted.
    pub fn entries(&self) -> &[IpNet] {
        &self.0.entries
    }

    /// Whether there is no entry (every address allowed).
    pub fn is_empty(&self) -> bool {
        self.0.entries.is_empty()
    }

    /// This whitelist with `more` entries added.
    pub fn with_added(
        &self,
        more: impl IntoIterator<Item = IpNet>,
        limit: usize,
    ) -> Result<Self, WhitelistError> {
        Self::new(self.entries().iter().copied().chain(more), limit)
    }

    /// This whitelist without `gone` (after normalisation). Removing an entry
    /// that is not there is not an error: removal is idempotent, so a retried
    /// request does no harm; the returned list shows what remains.
    pub fn without(&self, gone: impl IntoIterator<Item = IpNet>) -> Self {
        let gone: Vec<IpNet> = gone.into_iter().map(canonical_net).collect();
        // A subset of a normalised list is normalised, and within any limit
        // the list was within.
        let kept = self
            .entries()
            .iter()
            .copied()
            .filter(|e| !gone.contains(e))
            .collect();
        Self::from_normalised(kept)
    }

    /// Whether `ip` may use the key. An IPv4-mapped IPv6 address
    /// (`::ffff:a.b.c.d`) is checked as the IPv4 address it maps, and only
    /// against the IPv4 entries.
    #[inline]
    pub fn allows(&self, ip: IpAddr) -> bool {
        if self.0.entries.is_empty() {
            return true;
        }
        match ip.to_canonical() {
            IpAddr::V4(a) => contains(&self.0.v4, u32::from(a)),
            IpAddr::V6(a) => contains(&self.0.v6, u128::from(a)),
        }
    }

    /// Whether `ip` passes, and the most specific entry that lets it (a linear
    /// scan: this is for explaining, not for the hot path).
    pub fn explain(&self, ip: IpAddr) -> Explanation {
        let ip = ip.to_canonical();
        let matched = self
            .entries()
            .iter()
            .filter(|e| e.contains(&ip))
            .max_by_key(|e| e.prefix_len())
            .copied();
        Explanation {
            allowed: self.is_empty() || matched.is_some(),
            matched,
        }
    }
}

/// `net` with its host bits cleared, and, if it lies inside the IPv4-mapped
/// range `::ffff:0:0/96`, as the IPv4 network it maps.
fn canonical_net(net: IpNet) -> IpNet {
    let net = net.trunc();
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.network().to_ipv4_mapped() {
            Some(v4) => Ipv4Net::new(v4, v6.prefix_len() - 96)
                .map(IpNet::V4)
                .unwrap_or(net),
            None => net,
        },
        _ => net,
    }
}

/// Sorts ranges and merges those that overlap, leaving disjoint ranges in
/// order, as [`contains`] needs.
fn merge<T: Copy + Ord>(mut ranges: Vec<(T, T)>) -> Vec<(T, T)> {
    ranges.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match out.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => out.push((start, end)),
        }
    }
    out
}

#[inline]
fn contains<T: Copy + Ord>(ranges: &[(T, T)], x: T) -> bool {
    // Index of the first range starting after x; the one before may hold x.
    let i = ranges.partition_point(|r| r.0 <= x);
    i > 0 && ranges.get(i - 1).is_some_and(|r| x <= r.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wl(entries: &[&str]) -> Whitelist {
        Whitelist::parse(entries, 100).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn empty_allows_everything() {
        let w = Whitelist::default();
        assert!(w.allows(ip("203.0.113.9")) && w.allows(ip("2001:db8::1")));
        assert_eq!(
            w.explain(ip("1.2.3.4")),
            Explanation {
                allowed: true,
                matched: None
            }
        );
    }

    #[test]
    fn normalises_and_deduplicates() {
        let w = wl(&[
            "10.1.2.3/8",
            "10.0.0.0/8",
            "203.0.113.7",
            "2001:db8::1",
            "2001:db8:0:0:0:0:0:1/128",
            "2001:db8::ffff/32",
        ]);
        let shown: Vec<String> = w.entries().iter().map(|e| e.to_string()).collect();
        assert_eq!(
            shown,
            [
                "10.0.0.0/8",
                "203.0.113.7/32",
                "2001:db8::/32",
                "2001:db8::1/128"
            ]
        );
    }

    #[test]
    fn matching_v4_v6_and_mapped() {
        let w = wl(&["203.0.113.0/24", "2001:db8::/32"]);
        assert!(w.allows(ip("203.0.113.255")));
        assert!(!w.allows(ip("203.0.114.0")));
        assert!(w.allows(ip("2001:db8:ffff::1")));
        assert!(!w.allows(ip("2001:db9::")));
        assert!(
            w.allows(ip("::ffff:203.0.113.5")),
            "mapped address matches the IPv4 entry"
        );
        assert!(!w.allows(ip("::ffff:203.0.114.5")));
        let e = w.explain(ip("::ffff:203.0.113.5"));
        assert_eq!(
            e,
            Explanation {
                allowed: true,
                matched: Some("203.0.113.0/24".parse().unwrap())
            }
        );
        assert_eq!(
            w.explain(ip("198.51.100.1")),
            Explanation {
                allowed: false,
                matched: None
            }
        );
    }

    #[test]
    fn mapped_entries_are_kept_as_ipv4() {
        let w = wl(&["::ffff:203.0.113.7", "::ffff:10.0.0.0/104", "::ffff:0:0/96"]);
        let shown: Vec<String> = w.entries().iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["0.0.0.0/0", "10.0.0.0/8", "203.0.113.7/32"]);
        // Written either way, they are the same entry.
        assert_eq!(wl(&["::ffff:203.0.113.7/128"]), wl(&["203.0.113.7"]));
        assert!(w.allows(ip("10.9.9.9")) && w.allows(ip("::ffff:10.9.9.9")));
        assert!(
            !w.allows(ip("2001:db8::1")),
            "0.0.0.0/0 admits no IPv6 client"
        );
    }

    #[test]
    fn an_ipv4_client_never_matches_an_ipv6_range() {
        // `::/0` holds `::ffff:a.b.c.d`; a mapped client must still not pass
        // as IPv6, or a dual-stack listener would admit what an IPv4 one
        // refuses.
        for entries in [&["::/0"][..], &["::/1"], &["::ffff:0:0/95"], &["::/80"]] {
            let w = wl(entries);
            for client in ["203.0.113.5", "::ffff:203.0.113.5"] {
                assert!(!w.allows(ip(client)), "{entries:?} admitted {client}");
                assert!(!w.explain(ip(client)).allowed, "{entries:?} {client}");
            }
        }
        assert!(wl(&["::/0"]).allows(ip("2001:db8::1")));
    }

    #[test]
    fn explain_picks_the_most_specific_entry() {
        let w = wl(&["10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24"]);
        assert_eq!(
            w.explain(ip("10.1.2.3")).matched,
            Some("10.1.2.0/24".parse().unwrap())
        );
        assert_eq!(
            w.explain(ip("10.2.0.0")).matched,
            Some("10.0.0.0/8".parse().unwrap())
        );
    }

    #[test]
    fn extremes_of_the_address_space() {
        let w = wl(&["0.0.0.0/0"]);
        assert!(w.allows(ip("255.255.255.255")) && w.allows(ip("0.0.0.0")));
        assert!(!w.allows(ip("::1")));
        let w = wl(&["::/0", "255.255.255.255"]);
        assert!(w.allows(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
        assert!(w.allows(ip("255.255.255.255")) && !w.allows(ip("255.255.255.254")));
    }

    #[test]
    fn bad_entries_are_named() {
        for bad in [
            "",
            "10.0.0.0/33",
            "300.1.1.1",
            "fe80::1%eth0",
            "10.0.0.0/",
            "host.example",
            " 10.0.0.1",
        ] {
            let e = Whitelist::parse(&["10.0.0.1", bad], 100).unwrap_err();
            assert_eq!(
                e,
                WhitelistError::BadEntry {
                    entry: bad.to_string()
                }
            );
            assert!(e.to_string().contains(&format!("`{bad}`")));
        }
    }

    #[test]
    fn limit_counts_after_normalisation() {
        let e = Whitelist::parse(&["10.0.0.1", "10.0.0.2", "10.0.0.3"], 2).unwrap_err();
        assert_eq!(e, WhitelistError::TooMany { count: 3, limit: 2 });
        assert_eq!(
            e.to_string(),
            "whitelist has 3 entries after normalisation: at most 2 are allowed"
        );
        assert!(Whitelist::parse(&["10.0.0.1", "10.0.0.1/32", "10.0.0.1"], 1).is_ok());
    }

    #[test]
    fn add_and_remove() {
        let w = wl(&["10.0.0.0/8"]);
        let w2 = w
            .with_added(
                [
                    "192.0.2.1/32".parse().unwrap(),
                    "10.9.9.9/8".parse().unwrap(),
                ],
                100,
            )
            .unwrap();
        assert_eq!(w2.entries().len(), 2);
        assert!(w2.with_added(["192.0.2.2/32".parse().unwrap()], 2).is_err());
        let w3 = w2.without([
            "10.200.0.0/8".parse().unwrap(),
            "198.51.100.0/24".parse().unwrap(),
        ]);
        assert_eq!(w3.entries(), ["192.0.2.1/32".parse::<IpNet>().unwrap()]);
        assert!(!w3.allows(ip("10.0.0.1")));
    }
}

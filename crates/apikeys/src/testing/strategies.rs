//! proptest strategies for the domain types.

use crate::account::AccountKind;
use crate::channel::Channel;
use crate::credentials::Secret;
use crate::id::AccountId;
use crate::policy::ActivationPolicy;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use time::{Duration, OffsetDateTime};

/// Any of the five channels.
pub fn channel() -> impl Strategy<Value = Channel> {
    prop::sample::select(Channel::ALL.to_vec())
}

/// Any account id.
pub fn account_id() -> impl Strategy<Value = AccountId> {
    any::<[u8; 16]>().prop_map(AccountId::from_bytes)
}

/// A master, or a sub-account of some master.
pub fn account_kind() -> impl Strategy<Value = AccountKind> {
    prop_oneof![
        Just(AccountKind::Master),
        account_id().prop_map(|parent| AccountKind::Sub { parent })
    ]
}

/// Any instant from 1970 to 2100 in any whole-minute UTC offset, with a
/// quarter of the draws within a day of the default cutover and some exactly
/// on it or one nanosecond either side.
pub fn instant() -> impl Strategy<Value = OffsetDateTime> {
    let cutover = ActivationPolicy::DEFAULT_CUTOVER;
    let offset = (-14 * 60..=14 * 60i32)
        .prop_map(|m| time::UtcOffset::from_whole_seconds(m * 60).unwrap_or(time::UtcOffset::UTC));
    let anywhere = (0i64..4_102_444_800, 0i64..1_000_000_000).prop_map(|(s, ns)| {
        OffsetDateTime::UNIX_EPOCH + Duration::seconds(s) + Duration::nanoseconds(ns)
    });
    let near = (-86_400_000_000_000i64..86_400_000_000_000)
        .prop_map(move |ns| cutover + Duration::nanoseconds(ns));
    let edges = prop::sample::select(vec![
        cutover - Duration::nanoseconds(1),
        cutover,
        cutover + Duration::nanoseconds(1),
    ]);
    (prop_oneof![2 => anywhere, 1 => near, 1 => edges], offset).prop_map(|(t, o)| t.to_offset(o))
}

/// A valid chosen identifier: 3 to 64 of `[A-Za-z0-9._-]`, starting with a
/// letter or digit.
pub fn identifier() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9._-]{2,63}"
}

/// A valid chosen secret for `identifier`-free use: 12 to 128 printable ASCII
/// characters, never with the generated prefix.
pub fn chosen_secret() -> impl Strategy<Value = Secret> {
    "[!-~]{12,128}"
        .prop_filter("not shaped like a generated secret", |s| {
            crate::credentials::generated_shape(s) == crate::credentials::GeneratedShape::Other
        })
        .prop_map(Secret::new)
}

/// Any IPv4 or IPv6 address, with IPv4-mapped IPv6 addresses well represented.
pub fn ip_addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<u32>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
        any::<u128>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
        any::<u32>().prop_map(|a| IpAddr::V6(Ipv4Addr::from(a).to_ipv6_mapped())),
        // Addresses in a few small ranges, so that entries and clients meet.
        (0u32..512).prop_map(|a| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + a))),
        (0u32..512).prop_map(|a| IpAddr::V6(Ipv4Addr::from(0x0a00_0000 + a).to_ipv6_mapped())),
        (0u128..512).prop_map(|a| IpAddr::V6(Ipv6Addr::from(0x2001_0db8_u128 << 96 | a))),
    ]
}

/// Any network, host bits possibly set (a whitelist clears them).
pub fn ip_net() -> impl Strategy<Value = IpNet> {
    prop_oneof![
        (ip_addr(), 0u8..=128).prop_map(|(a, len)| match a {
            IpAddr::V4(v4) => IpNet::V4(Ipv4Net::new(v4, len % 33).unwrap_or_default()),
            IpAddr::V6(v6) => IpNet::V6(Ipv6Net::new(v6, len).unwrap_or_default()),
        }),
        (0u32..512, 23u8..=32).prop_map(|(a, len)| IpNet::V4(
            Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + a), len).unwrap_or_default()
        )),
    ]
}

/// Whitelist entries: up to `max` networks.
pub fn whitelist_entries(max: usize) -> impl Strategy<Value = Vec<IpNet>> {
    prop::collection::vec(ip_net(), 0..=max)
}

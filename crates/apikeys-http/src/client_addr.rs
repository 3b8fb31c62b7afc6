//! The client's address, as the IP whitelists and the throttles see it.
//!
//! Rules:
//! - By default it is the TCP peer's address.
//! - Forwarding headers are believed only when the TCP peer is one of the
//!   configured trusted proxies; anyone else could write any address into
//!   them.
//! - Behind trusted proxies, the client is the right-most address of the
//!   forwarding chain that is not itself a trusted proxy, reading every line
//!   of the header in order. Proxies (nginx, HAProxy, cloud load balancers)
//!   append the address they saw to whatever the client sent, so entries to
//!   the left of that one are the client's own words. If every entry is a
//!   trusted proxy, the left-most one is the client.
//! - One header is read, the one the proxies write: `X-Forwarded-For` by
//!   default, or RFC 7239 `Forwarded` (its `for=` parameters). The other is
//!   ignored: a proxy that writes one passes the other through untouched,
//!   so a client could fill it with anything.
//! - An entry that is not an address (`unknown`, an obfuscated name,
//!   garbage) where the client's address should be is refused (400): it
//!   cannot be checked against a whitelist.
//! - Addresses are canonical: an IPv4-mapped IPv6 address is the IPv4
//!   address it maps, whether it came from the socket or a header.

use axum::http::HeaderMap;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

/// Which forwarding header the trusted proxies write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (the default).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for=proxy1`.
    Forwarded,
}

impl ForwardedHeader {
    fn name(self) -> &'static str {
        match self {
            ForwardedHeader::XForwardedFor => "X-Forwarded-For",
            ForwardedHeader::Forwarded => "Forwarded",
        }
    }
}

/// A forwarding header whose client entry is not an address.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "{header} entry `{entry}` is not an IP address: the client's address must be an IPv4 or IPv6 address (optionally with a port)"
)]
pub struct ForwardedError {
    /// The header.
    pub header: &'static str,
    /// The entry, cut to 64 characters.
    pub entry: String,
}

/// The trusted proxies, and the header they write.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    /// The networks of the proxies whose forwarding headers are believed.
    pub networks: Vec<IpNet>,
    /// The header they write.
    pub header: ForwardedHeader,
}

impl TrustedProxies {
    fn trusts(&self, ip: IpAddr) -> bool {
        self.networks.iter().any(|n| n.contains(&ip))
    }

    /// The client's address for a request from `peer` carrying `headers`.
    pub fn client_address(
        &self,
        peer: IpAddr,
        headers: &HeaderMap,
    ) -> Result<IpAddr, ForwardedError> {
        let peer = peer.to_canonical();
        if self.networks.is_empty() || !self.trusts(peer) {
            return Ok(peer);
        }
        let name = self.header.name();
        let entries: Vec<&str> = match self.header {
            ForwardedHeader::XForwardedFor => headers
                .get_all("x-forwarded-for")
                .iter()
                .flat_map(|v| v.to_str().unwrap_or("\u{fffd}").split(','))
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .collect(),
            ForwardedHeader::Forwarded => headers
                .get_all("forwarded")
                .iter()
                .flat_map(|v| v.to_str().unwrap_or("for=\u{fffd}").split(','))
                .filter_map(forwarded_for)
                .collect(),
        };
        let bad = |entry: &str| ForwardedError {
            header: name,
            entry: entry.chars().take(64).collect(),
        };
        let mut leftmost = None;
        for entry in entries.iter().rev() {
            let ip = parse_entry(entry).ok_or_else(|| bad(entry))?.to_canonical();
            if !self.trusts(ip) {
                return Ok(ip);
            }
            leftmost = Some(ip);
        }
        Ok(leftmost.unwrap_or(peer))
    }
}

/// The `for=` value of one element of a `Forwarded` header, unquoted.
fn forwarded_for(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("for")
            .then(|| value.trim().trim_matches('"'))
    })
}

/// `192.0.2.1`, `192.0.2.1:443`, `2001:db8::1`, `[2001:db8::1]` or
/// `[2001:db8::1]:443`.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| {
            entry
                .strip_prefix('[')
                .and_then(|e| e.strip_suffix(']'))
                .and_then(|e| e.parse().ok())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn headers(name: &str, lines: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(l).unwrap(),
            );
        }
        h
    }

    fn proxies(nets: &[&str]) -> TrustedProxies {
        TrustedProxies {
            networks: nets.iter().map(|n| n.parse().unwrap()).collect(),
            header: ForwardedHeader::XForwardedFor,
        }
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let p = proxies(&["10.0.0.0/8"]);
        let h = headers("x-forwarded-for", &["203.0.113.1"]);
        assert_eq!(
            p.client_address(ip("198.51.100.7"), &h),
            Ok(ip("198.51.100.7"))
        );
        assert_eq!(
            TrustedProxies::default().client_address(ip("10.0.0.1"), &h),
            Ok(ip("10.0.0.1")),
            "no trusted proxy: headers are never read"
        );
    }

    #[test]
    fn the_right_most_untrusted_entry_wins_across_lines() {
        let p = proxies(&["10.0.0.0/8"]);
        // The client claimed 1.2.3.4; the edge proxy appended what it saw,
        // the inner proxy appended the edge proxy.
        let h = headers("x-forwarded-for", &["1.2.3.4, 203.0.113.9", "10.1.1.1"]);
        assert_eq!(p.client_address(ip("10.2.2.2"), &h), Ok(ip("203.0.113.9")));
        // Every entry a proxy: the left-most is the client.
        let h = headers("x-forwarded-for", &["10.9.9.9, 10.1.1.1"]);
        assert_eq!(p.client_address(ip("10.2.2.2"), &h), Ok(ip("10.9.9.9")));
        // No header: the proxy itself.
        assert_eq!(
            p.client_address(ip("10.2.2.2"), &HeaderMap::new()),
            Ok(ip("10.2.2.2"))
        );
    }

    #[test]
    fn forged_garbage_left_of_the_client_is_never_read() {
        let p = proxies(&["10.0.0.0/8"]);
        let h = headers("x-forwarded-for", &["not-an-ip, 203.0.113.9"]);
        assert_eq!(p.client_address(ip("10.2.2.2"), &h), Ok(ip("203.0.113.9")));
        let h = headers("x-forwarded-for", &["203.0.113.9, unknown"]);
        assert_eq!(
            p.client_address(ip("10.2.2.2"), &h),
            Err(ForwardedError {
                header: "X-Forwarded-For",
                entry: "unknown".into()
            })
        );
    }

    #[test]
    fn ports_brackets_and_mapped_addresses() {
        let p = proxies(&["10.0.0.0/8", "::ffff:10.0.0.0/104"]);
        for (entry, expected) in [
            ("203.0.113.9:5555", "203.0.113.9"),
            ("[2001:db8::1]:443", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("2001:db8::1", "2001:db8::1"),
            ("::ffff:203.0.113.9", "203.0.113.9"),
        ] {
            let h = headers("x-forwarded-for", &[entry]);
            assert_eq!(
                p.client_address(ip("::ffff:10.2.2.2"), &h),
                Ok(ip(expected)),
                "{entry}"
            );
        }
    }

    #[test]
    fn rfc_7239_forwarded_is_read_the_same_way_when_chosen() {
        let mut p = proxies(&["10.0.0.0/8"]);
        p.header = ForwardedHeader::Forwarded;
        let h = headers(
            "forwarded",
            &[
                "for=1.2.3.4;proto=https, for=\"[2001:db8:cafe::17]:4711\";by=10.0.0.5",
                "For=10.1.1.1",
            ],
        );
        assert_eq!(
            p.client_address(ip("10.2.2.2"), &h),
            Ok(ip("2001:db8:cafe::17"))
        );
        // The header not chosen is ignored.
        let xff = headers("x-forwarded-for", &["203.0.113.50"]);
        assert_eq!(p.client_address(ip("10.2.2.2"), &xff), Ok(ip("10.2.2.2")));
        let h = headers("forwarded", &["for=_hidden"]);
        assert!(p.client_address(ip("10.2.2.2"), &h).is_err());
    }
}

//! The service's whitelist rules, on the in-memory store: enforcement for
//! IPv4, IPv6 and IPv4-mapped clients, normalisation, the policy's bound.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use apikeys::testing::Fixture;
use apikeys::{AuthError, Channel, NewKey};
use common::{ip, memory, op, wl};
use std::net::IpAddr;

/// A whitelist refuses right credentials from outside its entries (IPv4,
/// IPv6, IPv4-mapped IPv6), is returned normalised, and can be replaced,
/// extended and shrunk.
#[test]
fn whitelist_enforced() {
    let store = memory();
    let f = Fixture::new(store, 108);
    let a = f.master();
    let k = f
        .keys
        .create_key(op(), a.id, NewKey::generated(Channel::Rest))
        .unwrap();
    let s = k.secret.unwrap();
    let auth = |addr: &str| {
        f.keys.authenticate(
            Channel::Rest,
            &k.key.identifier,
            s.expose_secret(),
            ip(addr),
        )
    };

    let got = f
        .keys
        .set_whitelist(op(), k.key.id, wl(&["203.0.113.9/24", "2001:db8::1"]))
        .unwrap();
    let shown: Vec<String> = got.entries().iter().map(|e| e.to_string()).collect();
    assert_eq!(shown, ["203.0.113.0/24", "2001:db8::1/128"]);
    assert_eq!(f.keys.whitelist(op(), k.key.id).unwrap(), got);
    auth("203.0.113.200").unwrap();
    auth("::ffff:203.0.113.200").unwrap();
    auth("2001:db8::1").unwrap();
    for outside in ["198.51.100.1", "2001:db8::2", "::ffff:198.51.100.1"] {
        let err = auth(outside).unwrap_err();
        assert!(
            matches!(err, AuthError::AddressNotAllowed { client, .. } if client == ip(outside)),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "address not allowed");
    }
    // Wrong credentials from outside are still "invalid credentials".
    let err = f
        .keys
        .authenticate(
            Channel::Rest,
            &k.key.identifier,
            "wrong-secret-1",
            ip("198.51.100.1"),
        )
        .unwrap_err();
    assert_eq!(err.code(), "invalid_credentials");

    f.keys
        .add_to_whitelist(op(), k.key.id, wl(&["198.51.100.0/24"]))
        .unwrap();
    auth("198.51.100.1").unwrap();
    f.keys
        .remove_from_whitelist(op(), k.key.id, wl(&["203.0.113.0/24"]))
        .unwrap();
    assert!(auth("203.0.113.200").is_err());
    let e = f
        .keys
        .explain_address(op(), k.key.id, ip("198.51.100.77"))
        .unwrap();
    assert!(e.allowed && e.matched == Some("198.51.100.0/24".parse().unwrap()));

    let too_many: Vec<ipnet::IpNet> = (0..101u32)
        .map(|i| ipnet::IpNet::from(IpAddr::from(std::net::Ipv4Addr::from(i))))
        .collect();
    let err = f.keys.set_whitelist(op(), k.key.id, too_many).unwrap_err();
    assert_eq!(
        err.to_string(),
        "whitelist has 101 entries after normalisation: at most 100 are allowed"
    );
    assert_eq!(
        f.keys.whitelist(op(), k.key.id).unwrap().entries().len(),
        2,
        "a refused change changes nothing"
    );

    f.keys.set_whitelist(op(), k.key.id, Vec::new()).unwrap();
    auth("192.0.2.1").unwrap();
}

//! Property tests for every rule of the product that says "for all".
#![allow(clippy::unwrap_used)]

use apikeys::credentials::{
    CredentialError, GENERATED_SECRET_LEN, GeneratedShape, generate_secret, generated_shape,
    validate_identifier, validate_label, validate_secret,
};
use apikeys::testing::{Fixture, strategies};
use apikeys::whitelist::{Whitelist, parse_entry};
use apikeys::{
    AccountKind, ActivationPolicy, Actor, Channel, ChannelSet, MemoryStore, NewAccount, Refusal,
    Secret, WhitelistScope,
};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use std::net::IpAddr;
use std::sync::Arc;

fn identifier_model(s: &str) -> bool {
    let n = s.chars().count();
    (3..=64).contains(&n)
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
}

fn secret_model(s: &str, identifier: &str) -> bool {
    let n = s.chars().count();
    (12..=128).contains(&n)
        && s.chars().all(|c| ('!'..='~').contains(&c))
        && !s
            .to_ascii_lowercase()
            .contains(&identifier.to_ascii_lowercase())
        && generated_shape(s) == GeneratedShape::Other
}

/// The whitelist rule, naively: IPv4-mapped addresses and networks are IPv4,
/// and an address only ever matches a network of its own family.
fn whitelist_model(entries: &[ipnet::IpNet], ip: IpAddr) -> bool {
    fn as_v4(net: &ipnet::IpNet) -> ipnet::IpNet {
        match net.trunc() {
            ipnet::IpNet::V6(n) if n.prefix_len() >= 96 => match n.network().to_ipv4_mapped() {
                Some(a) => ipnet::Ipv4Net::new(a, n.prefix_len() - 96)
                    .map_or(net.trunc(), ipnet::IpNet::V4),
                None => ipnet::IpNet::V6(n),
            },
            other => other,
        }
    }
    let ip = match ip {
        IpAddr::V6(a) => a.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    entries.is_empty() || entries.iter().any(|e| as_v4(e).contains(&ip))
}

/// Strings mixing allowed and disallowed characters, around the length limits.
fn near_identifier() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9._-]{0,70}",
        "[A-Za-z0-9._ \\-@/é\u{0}]{0,70}",
        any::<String>(),
    ]
}

fn near_secret() -> impl Strategy<Value = String> {
    prop_oneof!["[!-~]{0,140}", "[ -~\t\u{7f}é]{0,140}", any::<String>(),]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// For every kind and instant: a master strictly before the cutover gets
    /// the legacy set, anything else nothing.
    #[test]
    fn activation_rule(kind in strategies::account_kind(), at in strategies::instant()) {
        let policy = ActivationPolicy::default();
        let expected = match kind {
            AccountKind::Master if at < ActivationPolicy::DEFAULT_CUTOVER => ActivationPolicy::DEFAULT_LEGACY_CHANNELS,
            _ => ChannelSet::EMPTY,
        };
        prop_assert_eq!(policy.default_channels(&kind, at), expected);
    }

    /// The same rule through the service: what is issued and what is active.
    #[test]
    fn activation_through_the_service(sub in any::<bool>(), at in strategies::instant()) {
        let f = Fixture::new(Arc::new(MemoryStore::new()), 1);
        let kind = if sub {
            let parent = f.keys.open_account(Actor::Operator, NewAccount::master().created_at(at)).unwrap().account.id;
            AccountKind::Sub { parent }
        } else {
            AccountKind::Master
        };
        let opened = f.keys.open_account(Actor::Operator, NewAccount::new(kind).created_at(at)).unwrap();
        let expected = ActivationPolicy::default().default_channels(&kind, at);
        let issued: ChannelSet = opened.issued.iter().map(|k| k.key.channel).collect();
        prop_assert_eq!(issued, expected);
        prop_assert_eq!(f.keys.active_channels(Actor::Operator, opened.account.id).unwrap(), expected);
        prop_assert!(opened.issued.iter().all(|k| k.secret.is_some()));
    }

    /// The cutover and the legacy set are the embedder's: for any of them,
    /// any kind and any instant, what is issued follows the policy.
    #[test]
    fn activation_follows_a_custom_policy(
        cutover in strategies::instant(),
        legacy in prop::collection::vec(strategies::channel(), 0..5),
        sub in any::<bool>(),
        at in strategies::instant(),
    ) {
        let legacy: ChannelSet = legacy.into_iter().collect();
        let policy = apikeys::Policy::fast_for_tests()
            .activation(ActivationPolicy::default().cutover(cutover).legacy_channels(legacy));
        let f = Fixture::with_policy(Arc::new(MemoryStore::new()), 3, policy);
        let kind = if sub {
            let parent = f.keys.open_account(Actor::Operator, NewAccount::master().created_at(at)).unwrap().account.id;
            AccountKind::Sub { parent }
        } else {
            AccountKind::Master
        };
        let opened = f.keys.open_account(Actor::Operator, NewAccount::new(kind).created_at(at)).unwrap();
        let expected = if !sub && at < cutover { legacy } else { ChannelSet::EMPTY };
        let issued: ChannelSet = opened.issued.iter().map(|k| k.key.channel).collect();
        prop_assert_eq!(issued, expected);
        prop_assert_eq!(opened.issued.len(), expected.len());
    }

    /// Identifier validation accepts exactly the allowed alphabet and lengths.
    #[test]
    fn identifier_validation_is_exact(s in near_identifier()) {
        prop_assert_eq!(validate_identifier(&s).is_ok(), identifier_model(&s));
    }

    /// Secret validation accepts exactly the allowed alphabet and lengths, and
    /// no error message ever contains the secret.
    #[test]
    fn secret_validation_is_exact(s in near_secret(), id in strategies::identifier()) {
        let result = validate_secret(&Secret::new(s.clone()), &id);
        prop_assert_eq!(result.is_ok(), secret_model(&s, &id));
        if let Err(e) = result
            && s.len() >= 4
        {
            prop_assert!(!e.to_string().contains(&s));
        }
    }

    /// Labels: 1 to 64 characters, none of Unicode's control (Cc), format
    /// (Cf), line separator (Zl) or paragraph separator (Zp) categories.
    #[test]
    fn label_validation_is_exact(s in prop_oneof![any::<String>(), "[a-z \u{200b}-\u{200f}\u{2028}-\u{202e}\u{ad}\u{feff}]{0,70}"]) {
        use unicode_properties::{GeneralCategory as G, UnicodeGeneralCategory};
        let n = s.chars().count();
        let invisible = s.chars().any(|c| matches!(
            c.general_category(),
            G::Control | G::Format | G::LineSeparator | G::ParagraphSeparator
        ));
        prop_assert_eq!(validate_label(&s).is_ok(), (1..=64).contains(&n) && !invisible);
    }

    /// Valid identifiers from the strategy are accepted.
    #[test]
    fn strategy_identifiers_are_valid(s in strategies::identifier()) {
        prop_assert_eq!(validate_identifier(&s), Ok(()));
    }

    /// Whitelist matching equals the naive model, for any entries and address.
    #[test]
    fn whitelist_matches_naive_model(entries in strategies::whitelist_entries(40), ip in strategies::ip_addr()) {
        let wl = Whitelist::new(entries.clone(), 1000).unwrap();
        prop_assert_eq!(wl.allows(ip), whitelist_model(&entries, ip));
        let explained = wl.explain(ip);
        prop_assert_eq!(explained.allowed, wl.allows(ip));
        if let Some(m) = explained.matched {
            prop_assert!(wl.entries().contains(&m));
        }
        // Normalised: host bits clear, sorted, no duplicates.
        prop_assert!(wl.entries().iter().all(|e| e.trunc() == *e));
        prop_assert!(wl.entries().windows(2).all(|w| w[0] < w[1]));
    }

    /// A whitelist parsed back from its own text form is the same whitelist.
    #[test]
    fn whitelist_text_roundtrip(entries in strategies::whitelist_entries(20)) {
        let wl = Whitelist::new(entries, 1000).unwrap();
        let text: Vec<String> = wl.entries().iter().map(|e| e.to_string()).collect();
        prop_assert_eq!(Whitelist::parse(&text, 1000).unwrap(), wl);
    }

    /// Generated secrets always have the shape, pass their checksum, pass
    /// validation, and any one-character change is caught by the checksum.
    #[test]
    fn generated_secrets_check_out(seed in any::<u64>(), pos in 4usize..GENERATED_SECRET_LEN, c in "[0-9A-Za-z]") {
        let s = generate_secret(&mut ChaCha20Rng::seed_from_u64(seed));
        let t = s.expose_secret();
        prop_assert_eq!(t.len(), GENERATED_SECRET_LEN);
        prop_assert!(t.starts_with("akey") && t.bytes().all(|b| b.is_ascii_alphanumeric()));
        prop_assert_eq!(generated_shape(t), GeneratedShape::Valid);
        // Never accepted as a chosen secret: it would pass for a generated one.
        prop_assert_eq!(validate_secret(&s, "some-identifier"), Err(CredentialError::SecretLooksGenerated));
        let mut typo = t.as_bytes().to_vec();
        let new = c.as_bytes()[0];
        prop_assume!(typo[pos] != new);
        typo[pos] = new;
        let typo = String::from_utf8(typo).unwrap();
        prop_assert_eq!(generated_shape(&typo), GeneratedShape::BadChecksum);
        prop_assert_eq!(validate_secret(&Secret::new(typo), "some-identifier"), Err(CredentialError::SecretBadChecksum));
    }

    /// No parser panics, whatever it is given.
    #[test]
    fn parsers_never_panic(s in any::<String>()) {
        let _ = s.parse::<Channel>();
        let _ = s.parse::<apikeys::AccountId>();
        let _ = s.parse::<apikeys::KeyId>();
        let _ = s.parse::<apikeys::Actor>();
        let _ = s.parse::<apikeys::AuditKind>();
        let _ = parse_entry(&s);
        let _ = Whitelist::parse(&[s.as_str(), "10.0.0.0/8"], 10);
        let _ = validate_identifier(&s);
        let _ = validate_label(&s);
        let _ = validate_secret(&Secret::new(s.clone()), &s);
        let _ = generated_shape(&s);
        if let Ok(h) = apikeys::SecretHash::parse(&s) {
            let _ = apikeys::hashing::verify_secret(&apikeys::HashingPolicy::fast_for_tests(), "x", &h);
        }
    }

    /// Authentication never panics and refuses anything it does not know.
    #[test]
    fn authenticate_never_panics(ch in strategies::channel(), id in any::<String>(), secret in any::<String>(), ip in strategies::ip_addr()) {
        let f = Fixture::new(Arc::new(MemoryStore::new()), 2);
        let err = f.keys.authenticate(ch, &id, &secret, ip).unwrap_err();
        prop_assert!(matches!(err.reason(), Some(Refusal::UnknownIdentifier | Refusal::MalformedSecret)));
    }

    /// Channel codes: parsing ignores ASCII case and round-trips.
    #[test]
    fn channel_codes_roundtrip(c in strategies::channel(), upper in prop::collection::vec(any::<bool>(), 11)) {
        let code: String = c.code().chars().zip(upper.iter().cycle()).map(|(ch, u)| if *u { ch.to_ascii_uppercase() } else { ch }).collect();
        prop_assert_eq!(code.parse::<Channel>(), Ok(c));
    }
}

/// A small world of addresses and networks, so that random lists and
/// addresses meet often.
fn near_net() -> impl Strategy<Value = apikeys::ipnet::IpNet> {
    (
        0u8..4,
        0u8..4,
        prop_oneof![Just(8u8), Just(16), Just(24), Just(32)],
    )
        .prop_map(|(a, b, len)| {
            apikeys::ipnet::IpNet::V4(
                apikeys::ipnet::Ipv4Net::new(std::net::Ipv4Addr::new(10, a, b, 1), len)
                    .unwrap()
                    .trunc(),
            )
        })
}

fn near_addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        (0u8..4, 0u8..4).prop_map(|(a, b)| IpAddr::from([10, a, b, 1])),
        (0u8..4, 0u8..4).prop_map(|(a, b)| IpAddr::from(std::net::Ipv6Addr::from([
            0,
            0,
            0,
            0,
            0,
            0xffff,
            0x0a00 | u16::from(a),
            (u16::from(b) << 8) | 1
        ]))),
        Just(IpAddr::from([192, 0, 2, 1])),
    ]
}

fn list() -> impl Strategy<Value = Whitelist> {
    prop::collection::vec(near_net(), 0..4).prop_map(|nets| Whitelist::new(nets, 100).unwrap())
}

/// Whether `list` lets `addr` in, by the definition: empty, or an entry
/// contains it (an IPv4-mapped IPv6 address as its IPv4 address).
fn oracle(list: &Whitelist, addr: IpAddr) -> bool {
    let addr = addr.to_canonical();
    list.is_empty() || list.entries().iter().any(|n| n.contains(&addr))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    /// For every chain of master policy, account whitelist and key
    /// whitelist, and every address: allowed exactly when every non-empty
    /// list allows it, and the list named is the first (key, account,
    /// master) that refuses.
    #[test]
    fn the_whitelist_chain_allows_exactly_what_every_list_allows(
        key_list in list(), account_list in list(), master_list in list(),
        sub in any::<bool>(), addr in near_addr(),
    ) {
        use apikeys::lifecycle::{admit, explain, Denial, Holders};
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let master = apikeys::Account {
            policy: apikeys::AccountPolicy { whitelist: master_list.clone(), ..Default::default() },
            ..apikeys::Account::new(apikeys::AccountId::random(&mut rng), apikeys::AccountKind::Master, apikeys::testing::START)
        };
        let (account, master) = if sub {
            let a = apikeys::Account {
                policy: apikeys::AccountPolicy { whitelist: account_list.clone(), ..Default::default() },
                ..apikeys::Account::new(apikeys::AccountId::random(&mut rng), apikeys::AccountKind::Sub { parent: master.id }, apikeys::testing::START)
            };
            (a, Some(master))
        } else {
            let m = apikeys::Account {
                policy: apikeys::AccountPolicy { whitelist: account_list.clone(), ..Default::default() },
                ..master
            };
            (m, None)
        };
        let holders = Holders { account, master };
        let key = apikeys::KeyRecord {
            whitelist: key_list.clone(),
            ..apikeys::testing::records::key(apikeys::KeyId::random(&mut rng), holders.account.id, Channel::Rest, "chain")
        };
        let mut chain = vec![(WhitelistScope::Key, &key_list), (WhitelistScope::Account, &account_list)];
        if sub {
            chain.push((WhitelistScope::Master, &master_list));
        }
        let first_refusing = chain.iter().find(|(_, l)| !oracle(l, addr)).map(|(s, _)| *s);
        let verdict = admit(&key, &holders, apikeys::testing::START, addr);
        prop_assert_eq!(verdict, first_refusing.map_or(Ok(()), |s| Err(Denial::Address(s))));
        let explained = explain(&key, &holders, addr);
        prop_assert_eq!(explained.allowed, first_refusing.is_none());
        prop_assert_eq!(explained.refused_by, first_refusing);
        prop_assert_eq!(explained.lists.len(), chain.len());
    }

    /// For every key, account, master and instant: a key with right
    /// credentials is admitted exactly when it is enabled, neither its
    /// account nor its master is suspended, the instant is before both its
    /// expiry and its creation plus its master's lifetime, and its master
    /// allows its channel; and its state says which rule stops it.
    #[test]
    fn a_key_is_admitted_exactly_when_every_lifecycle_rule_allows(
        enabled in any::<bool>(), own_suspended in any::<bool>(), master_suspended in any::<bool>(),
        sub in any::<bool>(), expiry in prop::option::of(0i64..100), lifetime in prop::option::of(1i64..100),
        now in 0i64..120, channel in apikeys::testing::strategies::channel(),
        allowed in prop::collection::vec(apikeys::testing::strategies::channel(), 0..5),
    ) {
        use apikeys::lifecycle::{admit, state, Denial, Holders};
        let t0 = apikeys::testing::START;
        let mut rng = ChaCha20Rng::seed_from_u64(8);
        let allowed = ChannelSet::of(&allowed);
        let master = apikeys::Account {
            suspended: master_suspended,
            policy: apikeys::AccountPolicy {
                sub_account_channels: allowed,
                max_key_lifetime: lifetime.map(time::Duration::hours),
                ..Default::default()
            },
            ..apikeys::Account::new(apikeys::AccountId::random(&mut rng), apikeys::AccountKind::Master, t0)
        };
        let holders = if sub {
            let a = apikeys::Account {
                suspended: own_suspended,
                ..apikeys::Account::new(apikeys::AccountId::random(&mut rng), apikeys::AccountKind::Sub { parent: master.id }, t0)
            };
            Holders { account: a, master: Some(master) }
        } else {
            Holders { account: apikeys::Account { suspended: own_suspended || master_suspended, ..master }, master: None }
        };
        let key = apikeys::KeyRecord {
            enabled,
            expires_at: expiry.map(|h| t0 + time::Duration::hours(h)),
            ..apikeys::testing::records::key(apikeys::KeyId::random(&mut rng), holders.account.id, channel, "rules")
        };
        let at = t0 + time::Duration::hours(now);
        let suspended = own_suspended || master_suspended;
        let expired = expiry.is_some_and(|h| now >= h) || (sub && lifetime.is_some_and(|l| now >= l));
        let channel_ok = !sub || allowed.contains(channel);
        let expected = if !enabled {
            Err(Denial::Refused(Refusal::KeyDisabled))
        } else if suspended {
            Err(Denial::Refused(Refusal::AccountSuspended))
        } else if expired {
            Err(Denial::Refused(Refusal::KeyExpired))
        } else if !channel_ok {
            Err(Denial::Refused(Refusal::ChannelNotAllowed))
        } else {
            Ok(())
        };
        prop_assert_eq!(admit(&key, &holders, at, IpAddr::from([192, 0, 2, 1])), expected);
        let expected_state = if suspended {
            apikeys::KeyState::Suspended
        } else if !enabled {
            apikeys::KeyState::Disabled
        } else if expired {
            apikeys::KeyState::Expired
        } else {
            apikeys::KeyState::Active
        };
        prop_assert_eq!(state(&key, &holders, at), expected_state);
    }
}

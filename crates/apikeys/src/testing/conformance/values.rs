//! The longest value of every field the contract sizes comes back whole:
//! nothing cut to a column's length, nothing refused.

use super::support::*;
use crate::account::Actor;
use crate::audit::{AuditEvent, AuditKind, MAX_DETAIL_LEN};
use crate::channel::Channel;
use crate::credentials::{MAX_IDENTIFIER_LEN, MAX_LABEL_CHARS, Secret};
use crate::hashing::SecretHash;
use crate::id::AccountId;
use crate::key::{KeyRecord, PreviousSecret};
use crate::policy::Policy;
use crate::service::{CredentialChange, Grace, NewKey};
use crate::store::DynStore;
use crate::testing::records::{event, key as record, master, opened};
use crate::testing::{Fixture, START};
use crate::whitelist::{MAX_ENTRIES, Whitelist};
use ipnet::{IpNet, Ipv6Net};
use std::net::Ipv6Addr;
use std::sync::Arc;
use time::Duration;

/// Fails the test with a service error naming `rule`.
#[track_caller]
fn failed<T>(e: impl std::fmt::Debug + std::fmt::Display, rule: &str) -> T {
    fail(
        rule,
        Shown(format!("Err({e:?}): {e}")),
        Shown("Ok(_)".into()),
    )
}

/// The longest readable stored hash (`seed` makes it distinct): an argon2
/// PHC string with the largest parameters, key id, data, salt and output
/// its format allows. No readable hash is longer, although stores size for
/// [`MAX_HASH_LEN`](crate::hashing::MAX_HASH_LEN).
#[track_caller]
pub(crate) fn longest_hash(seed: u8) -> SecretHash {
    use base64ct::{Base64Unpadded, Encoding};
    let b64 = |n: usize, byte: u8| Base64Unpadded::encode_string(&vec![byte; n]);
    let text = format!(
        "$argon2id$v=4294967295$m=4294967295,t=4294967295,p=16777215,keyid={},data={}${}${}",
        b64(8, seed),
        b64(32, seed),
        b64(48, seed),
        b64(64, seed),
    );
    SecretHash::parse(&text).expect("the longest PHC string parses")
}

/// A whitelist of the most entries any policy allows, each an IPv6 host
/// written with all eight groups of four digits: 43 bytes of text each, the
/// longest an entry is.
#[track_caller]
pub(crate) fn longest_whitelist() -> Whitelist {
    let entries: Vec<IpNet> = (0..MAX_ENTRIES as u16)
        .map(|i| {
            let addr = Ipv6Addr::new(
                0xfedc,
                0xba98,
                0x7654,
                0x3210,
                0xabcd,
                0xef01,
                0x2345,
                0x1000 + i,
            );
            IpNet::V6(Ipv6Net::new(addr, 128).expect("a /128 is a network"))
        })
        .collect();
    let w = Whitelist::new(entries, MAX_ENTRIES).expect("MAX_ENTRIES entries are allowed");
    debug_assert!(w.entries().iter().all(|e| e.to_string().len() == 43));
    w
}

/// The longest label: `MAX_LABEL_CHARS` characters of four bytes each.
pub(crate) fn longest_label() -> String {
    "🔑".repeat(MAX_LABEL_CHARS)
}

/// The longest identifier: `MAX_IDENTIFIER_LEN` bytes, of every character
/// a chosen identifier may hold, `seed` first.
pub(crate) fn longest_identifier(seed: char) -> String {
    let alphabet = "aZ09._-";
    let mut s = String::from(seed);
    while s.len() < MAX_IDENTIFIER_LEN {
        s.push(alphabet.as_bytes()[s.len() % alphabet.len()] as char);
    }
    s
}

/// The longest detail: `MAX_DETAIL_LEN` bytes of UTF-8, with characters of
/// one to four bytes, ending with a four-byte one.
pub(crate) fn longest_detail() -> String {
    let mut s = String::with_capacity(MAX_DETAIL_LEN);
    // 1 + 2 + 3 + 4 bytes a round.
    while s.len() + 10 <= MAX_DETAIL_LEN - 4 {
        s.push_str("aé€🔑");
    }
    while s.len() < MAX_DETAIL_LEN - 4 {
        s.push('a');
    }
    s.push('🔑');
    s
}

/// A key whose every field is as long as it can be.
fn longest_key(ids: &mut Ids, account: AccountId, channel: Channel, seed: char) -> KeyRecord {
    KeyRecord {
        label: Some(longest_label()),
        secret_hash: longest_hash(seed as u8),
        previous_secret: Some(PreviousSecret {
            hash: longest_hash(seed as u8 ^ 0x55),
            expires_at: START + Duration::days(1),
        }),
        whitelist: longest_whitelist(),
        ..record(ids.key(), account, channel, &longest_identifier(seed))
    }
}

/// The longest identifier (64 bytes), label (64 four-byte characters),
/// current and previous hash, whitelist (`MAX_ENTRIES` IPv6 entries of 43
/// bytes), audit detail (`MAX_DETAIL_LEN` bytes of UTF-8) and actor (an
/// account id) come back whole, through every write that stores them.
pub fn longest_values_round_trip(store: Arc<DynStore>) {
    let mut ids = Ids::new(51);
    let a = master(ids.account());
    let actor = Actor::Account(ids.account());
    let detail = longest_detail();
    let long_event = |e: AuditEvent| AuditEvent {
        actor,
        detail: detail.clone(),
        ..e
    };
    let initial = longest_key(&mut ids, a.id, Channel::Ftp, 'i');
    let opening = [
        long_event(opened(&a)),
        long_event(event(a.id, Some(&initial), AuditKind::KeyCreated, "")),
    ];
    ok(
        store.create_account(&a, std::slice::from_ref(&initial), &opening),
        "an account with the longest values is stored",
    );
    let rule = |what: &str| format!("the longest value of every field comes back whole ({what})");
    same(
        ok(store.key(initial.id), "key succeeds"),
        Some(initial.clone()),
        &rule("an initial key"),
    );
    let inserted = longest_key(&mut ids, a.id, Channel::Rest, 'r');
    let e = long_event(created_event(&inserted));
    ok(
        store.insert_key(&inserted, 10, &e),
        "a key with the longest values is stored",
    );
    same(
        ok(
            store.key_by_identifier(&inserted.identifier.to_ascii_uppercase()),
            "key_by_identifier succeeds",
        ),
        Some(inserted.clone()),
        &rule("insert_key, read by identifier"),
    );
    // An update to the longest values, from a short key.
    let short = add_key(&*store, &mut ids, a.id, Channel::Http, "short");
    let mut long = longest_key(&mut ids, a.id, Channel::Http, 'u');
    long.id = short.id;
    long.version = 2;
    let e = long_event(about(&long, AuditKind::WhitelistChanged, ""));
    ok(
        store.update_key(&long, 1, &e),
        "an update to the longest values is applied",
    );
    same(
        ok(store.key(long.id), "key succeeds"),
        Some(long.clone()),
        &rule("update_key"),
    );
    // And the longest hash through an upgrade.
    let upgraded = longest_hash(b'z');
    same(
        ok(
            store.upgrade_secret_hash(long.id, &long.secret_hash, &upgraded),
            "upgrade succeeds",
        ),
        true,
        "an upgrade from the current hash answers true",
    );
    same(
        ok(store.key(long.id), "key succeeds").map(|k| k.secret_hash),
        Some(upgraded),
        &rule("upgrade_secret_hash"),
    );
    let e = long_event(about(&inserted, AuditKind::KeyDeleted, ""));
    ok(
        store.delete_key(inserted.id, None, &e),
        "a stored key can be deleted",
    );
    let mut held = vec![
        initial,
        KeyRecord {
            secret_hash: longest_hash(b'z'),
            ..long
        },
    ];
    held.sort_by_key(|k| (k.created_at, *k.id.as_bytes()));
    same(
        ok(store.keys_of_account(a.id), "keys_of_account succeeds"),
        held,
        &rule("keys_of_account"),
    );
    let trail = ok(store.audit_events(a.id, 100), "audit_events succeeds");
    same(trail.len(), 6, "every write's event is recorded");
    for e in trail.iter().filter(|e| e.detail.len() > 100) {
        same(
            e.detail.len(),
            MAX_DETAIL_LEN,
            &rule("an audit event's detail, its length"),
        );
        same(&e.detail, &detail, &rule("an audit event's detail"));
        same(e.actor, actor, &rule("an audit event's actor"));
    }
    same(
        trail.iter().filter(|e| e.detail.len() > 100).count(),
        5,
        "every event with the longest detail keeps it",
    );
}

/// What the service writes at its longest (a chosen identifier of 64
/// characters, a label of 64 four-byte characters, an argon2 hash and the
/// previous one during a grace period, a whitelist of `MAX_ENTRIES` IPv6
/// entries and the audit detail listing them) is read back by the service
/// exactly as it wrote it.
pub fn longest_values_the_service_writes_round_trip(store: Arc<DynStore>) {
    let policy = Policy::fast_for_tests().max_whitelist_entries(MAX_ENTRIES);
    let f = Fixture::with_policy(store.clone(), 52, policy);
    let a = f.master();
    let identifier = longest_identifier('s');
    let new = NewKey::chosen(
        Channel::Rest,
        identifier.clone(),
        Secret::new("a-chosen-secret-1"),
    )
    .with_label(longest_label());
    let op = Actor::Operator;
    let created = f.keys.create_key(op, a.id, new).unwrap_or_else(|e| {
        failed(
            e,
            "the service creates a key with the longest values on this store",
        )
    });
    let changed = f
        .keys
        .change_credentials(
            op,
            created.key.id,
            CredentialChange {
                secret: Some(crate::credentials::SecretChoice::Chosen(Secret::new(
                    "a-chosen-secret-2",
                ))),
                ..Default::default()
            }
            .with_grace(Grace::For(Duration::hours(1))),
        )
        .unwrap_or_else(|e| failed(e, "the service changes the secret of that key"));
    let entries = longest_whitelist().entries().to_vec();
    let listed = f
        .keys
        .set_whitelist(op, created.key.id, entries)
        .unwrap_or_else(|e| failed(e, "the service sets the longest whitelist"));
    let rule = "what the service writes at its longest comes back whole";
    let got = f
        .keys
        .key(op, created.key.id)
        .unwrap_or_else(|e| failed(e, "the key reads back through the service"));
    same(&got.identifier, &identifier, rule);
    same(got.label.as_deref(), Some(longest_label().as_str()), rule);
    same(&got.whitelist, &listed, rule);
    same(got.grace_until, changed.key.grace_until, rule);
    let stored = present(
        ok(store.key(created.key.id), "key succeeds"),
        "the key is stored",
    );
    holds(
        stored.previous_secret.is_some(),
        rule,
        &stored,
        "a key keeping its previous hash",
    );
    f.keys
        .authenticate(
            Channel::Rest,
            &identifier,
            "a-chosen-secret-2",
            "fedc:ba98:7654:3210:abcd:ef01:2345:1000"
                .parse()
                .expect("an address"),
        )
        .unwrap_or_else(|e| {
            failed(
                e,
                "the longest values read back work: the current secret from a whitelisted address",
            )
        });
    f.keys
        .authenticate(
            Channel::Rest,
            &identifier,
            "a-chosen-secret-1",
            "fedc:ba98:7654:3210:abcd:ef01:2345:13e7"
                .parse()
                .expect("an address"),
        )
        .unwrap_or_else(|e| {
            failed(
                e,
                "the longest values read back work: the previous secret during its grace",
            )
        });
    let trail = f
        .keys
        .audit(op, a.id, 10)
        .unwrap_or_else(|e| failed(e, "the trail reads back through the service"));
    let whitelist_event = trail.iter().find(|e| e.kind == AuditKind::WhitelistChanged);
    let whitelist_event = present(whitelist_event, "the whitelist change is recorded");
    let last = longest_whitelist()
        .entries()
        .last()
        .expect("entries")
        .to_string();
    holds(
        whitelist_event.detail.len() > MAX_ENTRIES * 43
            && whitelist_event.detail.ends_with(&format!("{last}]")),
        rule,
        whitelist_event.detail.len(),
        "the whole detail, listing all entries up to the last",
    );
}

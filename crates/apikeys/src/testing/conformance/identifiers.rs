//! Identifiers compare exactly: byte for byte after folding `A`–`Z` to
//! `a`–`z`, and nothing else. No character is a wildcard or an escape (as
//! in SQL's `LIKE` or `GLOB`), no other character is folded (not `É`, not
//! the neighbours of the ASCII letters), no padding or prefix matches.

use super::support::*;
use crate::channel::Channel;
use crate::key::KeyRecord;
use crate::store::{DynStore, Existing};
use crate::testing::records::key as record;
use std::sync::Arc;

/// Identifiers with the characters `LIKE`, `GLOB` and their escapes treat
/// specially are ordinary characters: each stored one is found by itself
/// (and its ASCII case variants) only, patterns that would match them find
/// nothing, and none blocks another from being stored or renamed to.
pub fn identifiers_are_not_patterns(store: Arc<DynStore>) {
    let mut ids = Ids::new(31);
    let a = add_master(&*store, &mut ids);
    // Stored first, so that a pattern matching it would find it.
    let stored = [
        "abc", "abcd", "xbc", "a_c", "a%", "a%c", "a*", "a?c", "[ab]c", "a\\_c", "a\\", "a.c",
        "a..", "a-c", "a'c", "a\"c", "a c", "%", "_", "*",
    ];
    let mut keys: Vec<KeyRecord> = Vec::new();
    for identifier in stored {
        let k = record(ids.key(), a.id, Channel::Rest, identifier);
        ok(
            insert(&*store, &k, 1000),
            "no character of an identifier is special: a key whose identifier a pattern of another would match is stored",
        );
        keys.push(k);
    }
    let find = |q: &str| {
        ok(
            store.key_by_identifier(q),
            "a lookup of any string succeeds",
        )
    };
    for k in &keys {
        let upper = k.identifier.to_ascii_uppercase();
        for q in [k.identifier.as_str(), upper.as_str()] {
            same(
                find(q).map(|f| f.identifier),
                Some(k.identifier.clone()),
                &format!(
                    "key_by_identifier({q:?}) finds exactly the key named {:?}",
                    k.identifier
                ),
            );
        }
    }
    for q in [
        "ab_",
        "ab%",
        "a_cd",
        "_bc",
        "%c",
        "a%d",
        "ab*",
        "a?",
        "?bc",
        "ab?",
        "[a]bc",
        "[!x]bc",
        "[^x]bc",
        "a\\bc",
        "abc\\",
        "abc%",
        "abc_",
        "abc*",
        "ab",
        "abcde",
        "abc ",
        " abc",
        "abc\t",
        "ABC\0",
        "abc\0d",
        "a",
        "",
        "__",
        "%%",
        "**",
        "x' OR '1'='1",
        "abc'--",
        "a''c",
        "A\\%",
        "a%%",
        "a%_c",
        "a\\\\_c",
    ] {
        same(
            find(q).map(|k| k.identifier),
            None,
            &format!("no character is special: key_by_identifier({q:?}) finds nothing here"),
        );
    }
    // Renames onto pattern-like identifiers neither clash nor are blocked.
    let mut renamed = next(&keys[2], "renamed");
    renamed.identifier = "_b_".into();
    update(&*store, &renamed, "renamed to a pattern");
    same(
        find("xbc").map(|k| k.id),
        None,
        "a renamed key is not found by its old identifier",
    );
    same(
        find("_B_").map(|k| k.id),
        Some(renamed.id),
        "a key renamed to a pattern-like identifier is found by it",
    );
    same(
        find("abc").map(|k| k.id),
        Some(keys[0].id),
        "a pattern-like identifier does not capture the identifiers it would match",
    );
    let rule = "an identifier is taken only by itself, ignoring ASCII case";
    refused(
        insert(
            &*store,
            &record(ids.key(), a.id, Channel::Rest, "A_C"),
            1000,
        ),
        Want::Taken(Existing::Identifier),
        rule,
    );
    refused(
        insert(
            &*store,
            &record(ids.key(), a.id, Channel::Rest, "[AB]C"),
            1000,
        ),
        Want::Taken(Existing::Identifier),
        rule,
    );
}

/// Case folding is ASCII only, and exact: every letter `A`–`Z` folds to its
/// `a`–`z` (and only those: `@[\]^_` and DEL are not `` `{|}~ `` and `_`),
/// while `É` and `é`, `ß` and `SS`, the Kelvin sign and `k`, `İ` and `i`
/// are different identifiers.
pub fn identifier_case_folding_is_ascii_only(store: Arc<DynStore>) {
    let mut ids = Ids::new(32);
    let a = add_master(&*store, &mut ids);
    let find = |q: &str| {
        ok(
            store.key_by_identifier(q),
            "a lookup of any string succeeds",
        )
        .map(|k| k.identifier)
    };
    let all = "the-quick-brown-fox-jumps-over-a-lazy-dog.abcdefghijklmnopqrstuvwxyz";
    let k = record(ids.key(), a.id, Channel::Rest, all);
    put(&*store, &k, 1000);
    same(
        find(&all.to_ascii_uppercase()),
        Some(all.to_string()),
        "every ASCII letter folds: the all-uppercase spelling finds the key",
    );
    refused(
        insert(
            &*store,
            &record(ids.key(), a.id, Channel::Rest, &all.to_ascii_uppercase()),
            1000,
        ),
        Want::Taken(Existing::Identifier),
        "every ASCII letter folds: the all-uppercase spelling is taken",
    );
    // Pairs that a looser fold would merge: each side is its own identifier.
    let pairs = [
        ("École", "école"),
        ("STRASSE", "straße"),
        ("\u{212A}elvin", "kelvin"),
        ("\u{130}stanbul", "istanbul"),
        ("ﬁle", "file"),
        ("x@", "x`"),
        ("x[", "x{"),
        ("x\\", "x|"),
        ("x]", "x}"),
        ("x^", "x~"),
        ("x_", "x\u{7f}"),
        ("ΣΊΣΥΦΟΣ", "σίσυφος"),
    ];
    for (left, right) in pairs {
        let l = record(ids.key(), a.id, Channel::Rest, left);
        let r = record(ids.key(), a.id, Channel::Rest, right);
        ok(
            insert(&*store, &l, 1000),
            "identifiers differing by more than ASCII case are different",
        );
        ok(
            insert(&*store, &r, 1000),
            &format!("only ASCII letters fold: {right:?} is not {left:?}"),
        );
        same(
            find(left),
            Some(left.to_string()),
            &format!("only ASCII letters fold: {left:?} finds itself, not {right:?}"),
        );
        same(
            find(right),
            Some(right.to_string()),
            &format!("only ASCII letters fold: {right:?} finds itself, not {left:?}"),
        );
    }
    // Non-ASCII letters stay as they are while the ASCII ones fold.
    same(
        find("ÉCOLE"),
        Some("École".to_string()),
        "ÉCOLE is École with its ASCII letters folded",
    );
    same(
        find("éCOLE"),
        Some("école".to_string()),
        "éCOLE is école with its ASCII letters folded",
    );
    refused(
        insert(
            &*store,
            &record(ids.key(), a.id, Channel::Rest, "ÉCOLE"),
            1000,
        ),
        Want::Taken(Existing::Identifier),
        "ÉCOLE is taken by École (their ASCII letters fold)",
    );
    same(
        find("STRAßE"),
        Some("straße".to_string()),
        "STRAßE is straße with its ASCII letters folded",
    );
    same(
        find("strasse"),
        Some("STRASSE".to_string()),
        "strasse is STRASSE folded",
    );
}

/// A lookup finds a key by its whole identifier only: a longer or shorter
/// string, one with spaces around it, a very long one, one with a NUL in
/// it, finds nothing (and is no error).
pub fn identifiers_match_whole(store: Arc<DynStore>) {
    let mut ids = Ids::new(33);
    let a = add_master(&*store, &mut ids);
    let longest = "L".repeat(crate::credentials::MAX_IDENTIFIER_LEN);
    for identifier in ["key", "key-2", longest.as_str()] {
        put(
            &*store,
            &record(ids.key(), a.id, Channel::Rest, identifier),
            100,
        );
    }
    let find = |q: &str| {
        ok(
            store.key_by_identifier(q),
            "a lookup of any string succeeds",
        )
        .map(|k| k.identifier)
    };
    let very_long = "k".repeat(10_000);
    let longer = format!("{longest}L");
    let shorter = &longest[1..];
    for q in [
        "ke",
        "keyy",
        "key-",
        "key ",
        " key",
        "key\n",
        "key\0",
        "key\0-2",
        "\0",
        very_long.as_str(),
        longer.as_str(),
        shorter,
    ] {
        same(
            find(q),
            None,
            &format!(
                "only the whole identifier matches: {:?} finds nothing",
                q.chars().take(80).collect::<String>()
            ),
        );
    }
    same(
        find("KEY"),
        Some("key".to_string()),
        "the whole identifier in any ASCII case matches",
    );
    same(
        find(&longest.to_ascii_lowercase()),
        Some(longest.clone()),
        "the longest identifier matches whole, in any ASCII case",
    );
}

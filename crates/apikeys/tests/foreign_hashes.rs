//! Hashes imported from other systems: published vectors verify, damaged
//! ones are refused without a panic, and the import bounds hold.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use apikeys::hashing::{
    self, HashingPolicy, ImportableHashError, Rehash, SecretHash, Verification, verify_secret,
};
use apikeys::testing::foreign::hashes_of;
use base64ct::{Base64Unpadded, Encoding};
use proptest::prelude::*;

const NEEDED: Verification = Verification::Match(Rehash::Needed);

fn check(stored: &str, secret: &str) -> Verification {
    let h = SecretHash::parse(stored).unwrap_or_else(|e| panic!("{stored}: {e}"));
    verify_secret(&HashingPolicy::default(), secret, &h)
}

/// Hashes written by other systems, with their secrets.
const VECTORS: &[(&str, &str)] = &[
    // bcrypt: PHP's manual (password_verify), python's bcrypt, node's,
    // and OpenBSD's test set as jBCrypt carries it.
    (
        "$2y$07$BCryptRequires22Chrcte/VlQH0piJtjXl.0t1XkA8pw9dMXTpOq",
        "rasmuslerdorf",
    ),
    (
        "$2b$04$EGdrhbKUv8Oc9vGiXX0HQOxSg445d458Muh7DAHskb6QbtCvdxcie",
        "correctbatteryhorsestapler",
    ),
    (
        "$2a$04$n4Uy0eSnMfvnESYL.bLwuuj0U/ETSsoTpRT9GVk5bektyVVa5xnIi",
        "correctbatteryhorsestapler",
    ),
    (
        "$2a$06$DCq7YPn5Rq63x1Lad4cll.TV4S6ytwfsfvkgY8jIucDrjc8deX1s.",
        "",
    ),
    (
        "$2a$06$m0CrhHm10qJ3lXRY.5zDGO3rS2KdeeWLuGmsfGlMfOxih58VYVfxe",
        "a",
    ),
    (
        "$2a$06$If6bvum7DFjUnE9p2uDeDu0YHzrHM6tf.iqN8.yx.jNN1ILEf7h0i",
        "abc",
    ),
    // SHA-512 crypt: the specification's own examples (a salt past 16
    // characters is cut to 16 in the output).
    (
        "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
        "Hello world!",
    ),
    (
        "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.",
        "Hello world!",
    ),
    // scrypt: passlib's example.
    (
        "$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E",
        "password",
    ),
    // argon2i: the reference implementation's test.
    (
        "$argon2i$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$wWKIMhR9lyDFvRz9YTZweHKfbftvj+qf+YFY4NeBbtA",
        "password",
    ),
];

#[test]
fn published_vectors_match_and_ask_for_rehash() {
    for (stored, secret) in VECTORS {
        assert_eq!(check(stored, secret), NEEDED, "{stored}");
        assert_eq!(check(stored, "wrong"), Verification::Mismatch, "{stored}");
        assert_eq!(
            SecretHash::parse(stored).unwrap().check_importable(),
            Ok(()),
            "{stored}"
        );
    }
}

/// PBKDF2-HMAC-SHA256 of "passwordPASSWORDpassword" with salt
/// "saltSALTsaltSALTsaltSALTsaltSALTsalt", 4096 iterations: the published
/// 40-byte output, whose first 32 bytes are the 32-byte output.
const PBKDF2_OUTPUT_40: [u8; 40] = [
    0x34, 0x8c, 0x89, 0xdb, 0xcb, 0xd3, 0x2b, 0x2f, 0x32, 0xd8, 0x14, 0xb8, 0x11, 0x6e, 0x84, 0xcf,
    0x2b, 0x17, 0x34, 0x7e, 0xbc, 0x18, 0x00, 0x18, 0x1c, 0x4e, 0x2a, 0x1f, 0xb8, 0xdd, 0x53, 0xe1,
    0xc6, 0x35, 0x51, 0x8c, 0x7d, 0xac, 0x47, 0xe9,
];

fn pbkdf2_vector(len: usize) -> String {
    format!(
        "$pbkdf2-sha256$i=4096,l={len}${}${}",
        Base64Unpadded::encode_string(b"saltSALTsaltSALTsaltSALTsaltSALTsalt"),
        Base64Unpadded::encode_string(&PBKDF2_OUTPUT_40[..len])
    )
}

#[test]
fn published_pbkdf2_vector_matches() {
    let stored = pbkdf2_vector(32);
    assert_eq!(check(&stored, "passwordPASSWORDpassword"), NEEDED);
    assert_eq!(
        check(&stored, "passwordPASSWORDpassworD"),
        Verification::Mismatch
    );
    // The 40-byte form reads, but is not importable, so it never runs.
    let long = SecretHash::parse(&pbkdf2_vector(40)).unwrap();
    let e = long.check_importable().unwrap_err();
    assert_eq!(e, ImportableHashError::Pbkdf2OutputLen { len: 40 });
    assert!(e.to_string().contains("must be 32 bytes"), "{e}");
    assert_eq!(
        verify_secret(&HashingPolicy::default(), "passwordPASSWORDpassword", &long),
        Verification::Mismatch
    );
}

#[test]
fn bcrypt_truncates_at_72_bytes_as_the_python_library_does() {
    // Made by python's bcrypt from 100 times "x".
    let stored = "$2a$05$......................YgIDy4hFBdVlc/6LHnD9mX488r9cLd2";
    assert_eq!(check(stored, &"x".repeat(100)), NEEDED);
    assert_eq!(check(stored, &"x".repeat(72)), NEEDED);
    assert_eq!(check(stored, &"x".repeat(71)), Verification::Mismatch);
}

#[test]
fn bcrypt_agrees_with_the_bcrypt_crate_except_on_nul() {
    let salt = [7u8; 16];
    for len in (0..=80).step_by(7).chain([71, 72, 73]) {
        let secret: String = (0..len)
            .map(|i| char::from(b'!' + (i % 90) as u8))
            .collect();
        for version in [
            bcrypt::Version::TwoA,
            bcrypt::Version::TwoB,
            bcrypt::Version::TwoY,
        ] {
            let stored = bcrypt::hash_with_salt(&secret, 4, salt)
                .unwrap()
                .format_for_version(version);
            assert_eq!(check(&stored, &secret), NEEDED, "{len}");
            for other in [format!("{secret}!"), secret.chars().skip(1).collect()] {
                let theirs = bcrypt::verify(&other, &stored).unwrap();
                let ours = check(&stored, &other) == NEEDED;
                assert_eq!(ours, theirs, "{len}: {other}");
            }
        }
    }
    // The crate hashes a NUL as a byte; the C systems that write these
    // hashes stop at it, so no secret holding one is ever matched here.
    for secret in ["a\0", "a\0b", "\0"] {
        let stored = bcrypt::hash_with_salt(secret, 4, salt).unwrap().to_string();
        assert!(bcrypt::verify(secret, &stored).unwrap());
        assert_eq!(check(&stored, secret), Verification::Mismatch, "{secret:?}");
    }
}

/// Every prefix of a real hash, and the hash with any one character
/// dropped, is refused, or never matches the right secret.
#[test]
fn damaged_hashes_are_refused_or_never_match() {
    let secret = "correct horse battery";
    let p = HashingPolicy::fast_for_tests();
    for (name, text) in hashes_of(secret) {
        let cut = (0..text.len()).map(|i| text[..i].to_string());
        let dropped = (0..text.len()).map(|i| format!("{}{}", &text[..i], &text[i + 1..]));
        for damaged in cut.chain(dropped) {
            if damaged == text {
                continue;
            }
            if let Ok(h) = SecretHash::parse(&damaged) {
                assert_ne!(
                    verify_secret(&p, secret, &h),
                    NEEDED,
                    "{name}: {damaged} matches"
                );
            }
        }
    }
}

fn refused(text: &str) -> ImportableHashError {
    SecretHash::parse(text)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .check_importable()
        .unwrap_err()
}

fn accepted(text: &str) {
    let h = SecretHash::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    assert_eq!(h.check_importable(), Ok(()), "{text}");
}

fn b64(n: usize) -> String {
    Base64Unpadded::encode_string(&vec![0x5a; n])
}

/// A bound's refusal says which format, and what is allowed.
fn names(e: &ImportableHashError, words: &[&str]) {
    let message = e.to_string();
    for word in words {
        assert!(message.contains(word), "{message} lacks {word}");
    }
}

#[test]
fn bcrypt_cost_bounds() {
    let body = "$......................YgIDy4hFBdVlc/6LHnD9mX488r9cLd2";
    accepted(&format!("$2b${:02}{body}", hashing::BCRYPT_MIN_COST));
    accepted(&format!("$2b${:02}{body}", hashing::BCRYPT_MAX_COST));
    let e = refused(&format!("$2b${:02}{body}", hashing::BCRYPT_MAX_COST + 1));
    names(&e, &["bcrypt", "cost 15", "4 to 14"]);
    // Beyond the bounds it is never computed: cost 31 would take days.
    let h = SecretHash::parse(&format!("$2y$31{body}")).unwrap();
    assert_eq!(
        verify_secret(&HashingPolicy::default(), "x", &h),
        Verification::Mismatch
    );
    assert!(SecretHash::parse(&format!("$2b$03{body}")).is_err());
    assert!(SecretHash::parse(&format!("$2b$32{body}")).is_err());
    assert!(SecretHash::parse(&format!("$2x$05{body}")).is_err());
}

#[test]
fn pbkdf2_bounds() {
    let pbkdf2 = |i: u32, l: usize| format!("$pbkdf2-sha256$i={i},l={l}${}${}", b64(16), b64(l));
    accepted(&pbkdf2(hashing::PBKDF2_MIN_ROUNDS, 32));
    accepted(&pbkdf2(hashing::PBKDF2_MAX_ROUNDS, 32));
    let e = refused(&pbkdf2(hashing::PBKDF2_MAX_ROUNDS + 1, 32));
    names(&e, &["PBKDF2-SHA256", "i=2000001", "1000 to 2000000"]);
    names(
        &refused(&pbkdf2(1_000, 31)),
        &["PBKDF2-SHA256", "l=31", "32"],
    );
    // Fewer than 1000 iterations, or unnamed ones, do not even read.
    assert!(SecretHash::parse(&pbkdf2(999, 32)).is_err());
    assert!(SecretHash::parse(&format!("$pbkdf2-sha256$l=32${}${}", b64(16), b64(32))).is_err());
}

#[test]
fn scrypt_bounds() {
    let scrypt =
        |ln: u32, r: u32, p: u32| format!("$scrypt$ln={ln},r={r},p={p}${}${}", b64(16), b64(32));
    accepted(&scrypt(1, 8, 1));
    accepted(&scrypt(20, 1, 1));
    accepted(&scrypt(18, 8, 2)); // 256 MiB held, 512 MiB of work
    accepted(&scrypt(1, 16, 1));
    names(&refused(&scrypt(0, 8, 1)), &["scrypt", "ln=0", "1 to 20"]);
    names(&refused(&scrypt(21, 1, 1)), &["scrypt", "ln=21", "1 to 20"]);
    names(
        &refused(&scrypt(1, 17, 1)),
        &["scrypt", "r=17, p=1", "at most 16"],
    );
    names(
        &refused(&scrypt(18, 9, 1)),
        &["scrypt", "ln=18, r=9", "268435456"],
    );
    names(
        &refused(&scrypt(20, 2, 3)),
        &["scrypt", "ln=20, r=2, p=3", "536870912"],
    );
    accepted(&scrypt(20, 2, 2));
    assert!(SecretHash::parse(&format!("$scrypt$ln=4,r=8${}${}", b64(16), b64(32))).is_err());
    let short = format!("$scrypt$ln=4,r=8,p=1${}${}", b64(16), b64(31));
    names(&refused(&short), &["scrypt", "31-byte", "32 bytes"]);
}

#[test]
fn sha512_crypt_bounds() {
    let hash =
        "svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1";
    let sha = |rounds: u32| format!("$6$rounds={rounds}$saltstring${hash}");
    accepted(&sha(hashing::SHA512_CRYPT_MIN_ROUNDS));
    accepted(&sha(hashing::SHA512_CRYPT_MAX_ROUNDS));
    accepted(&format!("$6$saltstring${hash}"));
    let e = refused(&sha(hashing::SHA512_CRYPT_MAX_ROUNDS + 1));
    names(&e, &["SHA-512 crypt", "rounds=1000001", "1000 to 1000000"]);
    assert!(SecretHash::parse(&sha(999)).is_err());
    // The rounds named, even the default's, are what is checked: 5000
    // named is the hash without rounds.
    assert_eq!(check(&sha(5_000), "Hello world!"), NEEDED);
}

#[test]
fn argon2_bounds() {
    let argon2 = |m: u32, t: u32, p: u32| {
        format!("$argon2id$v=19$m={m},t={t},p={p}${}${}", b64(16), b64(32))
    };
    accepted(&argon2(hashing::ARGON2_MAX_M_KIB, 2, 1));
    accepted(&argon2(209_715, hashing::ARGON2_MAX_T, 1));
    accepted(&argon2(19_456, 2, hashing::ARGON2_MAX_P));
    names(
        &refused(&argon2(hashing::ARGON2_MAX_M_KIB + 1, 1, 1)),
        &["argon2", "m=1048577", "1048576 KiB"],
    );
    names(
        &refused(&argon2(19_456, 11, 1)),
        &["argon2", "t=11", "at most 10"],
    );
    names(
        &refused(&argon2(19_456, 2, 17)),
        &["argon2", "p=17", "at most 16"],
    );
    names(
        &refused(&argon2(hashing::ARGON2_MAX_M_KIB, 3, 1)),
        &["argon2", "m=1048576, t=3", "2097152 KiB"],
    );
}

#[test]
fn refusals_never_hold_the_hash() {
    for (_, text) in hashes_of("correct horse battery") {
        let _ = SecretHash::parse(&text).unwrap();
    }
    let h = "$2b$15$......................YgIDy4hFBdVlc/6LHnD9mX488r9cLd2";
    assert!(!refused(h).to_string().contains("YgIDy4hF"));
    let e = SecretHash::parse("$2b$05$garbage").unwrap_err().to_string();
    assert!(!e.contains("garbage"), "{e}");
    assert!(e.contains(hashing::SUPPORTED_FORMATS), "{e}");
}

/// Texts shaped like each format, to reach past the first checks.
fn near_hash() -> impl Strategy<Value = String> {
    let prefix = prop::sample::select(vec![
        "$2a$",
        "$2b$04$",
        "$2y$",
        "$6$",
        "$6$rounds=",
        "$scrypt$ln=",
        "$scrypt$ln=4,r=8,p=1$",
        "$pbkdf2-sha256$i=",
        "$pbkdf2-sha256$i=1000,l=32$",
        "$argon2id$v=19$m=",
        "$sha256$",
    ]);
    (prefix, "[./A-Za-z0-9$=,+-]{0,100}").prop_map(|(p, tail)| format!("{p}{tail}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Reading any text never panics; checking against what was read
    /// neither.
    #[test]
    fn parse_never_panics(text in prop_oneof![any::<String>(), near_hash()]) {
        if let Ok(h) = SecretHash::parse(&text)
            && h.check_importable().is_ok()
        {
            let _ = verify_secret(&HashingPolicy::fast_for_tests(), "x", &h);
        }
    }
}

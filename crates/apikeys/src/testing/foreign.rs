//! Hashes in the formats imported from other systems, for tests only.
//!
//! Each is made by the crate that implements the format (bcrypt's raw
//! function, encoded as the C systems write it), with fixed salts and the
//! cheapest parameters [`SecretHash::check_importable`] accepts (or close),
//! so that tests are fast and repeatable. Never a way to hash for storage:
//! this system stores only its own formats.
//!
//! [`SecretHash::check_importable`]: crate::hashing::SecretHash::check_importable

#![allow(clippy::expect_used)]

use crate::hashing::bcrypt_output;
use argon2::password_hash::{CustomizedPasswordHasher, PasswordHasher};
use argon2::{Algorithm, Argon2, Params, Version};
use base64ct::{Base64Bcrypt, Encoding};

/// The bcrypt cost of [`hashes_of`]'s bcrypt hashes (the least there is).
pub const BCRYPT_COST: u32 = 4;

/// One hash of `secret` in each imported format, by a name for messages:
/// argon2i, argon2d, argon2id under other parameters than any policy's,
/// bcrypt as `$2a$`, `$2b$` and `$2y$`, PBKDF2-SHA256, scrypt, and SHA-512
/// crypt with and without `rounds=`. A secret holding a NUL gets no bcrypt
/// hashes (no system that writes them could hash it).
pub fn hashes_of(secret: &str) -> Vec<(&'static str, String)> {
    let bytes = secret.as_bytes();
    let salt: [u8; 16] = core::array::from_fn(|i| 0xa0 ^ (i as u8));
    let mut out = Vec::new();
    for (name, algorithm, m, t, p) in [
        ("argon2i", Algorithm::Argon2i, 64, 1, 1),
        ("argon2d", Algorithm::Argon2d, 64, 1, 1),
        ("argon2id m=128,t=2,p=2", Algorithm::Argon2id, 128, 2, 2),
    ] {
        let params = Params::new(m, t, p, None).expect("valid argon2 parameters");
        let hash = Argon2::new(algorithm, Version::V0x13, params)
            .hash_password_with_salt(bytes, &salt)
            .expect("argon2 hashes");
        out.push((name, hash.to_string()));
    }
    if let Some(hash) = bcrypt_output(BCRYPT_COST, salt, bytes) {
        let body = format!(
            "{BCRYPT_COST:02}${}{}",
            Base64Bcrypt::encode_string(&salt),
            Base64Bcrypt::encode_string(&hash)
        );
        for (name, version) in [
            ("bcrypt $2a$", "2a"),
            ("bcrypt $2b$", "2b"),
            ("bcrypt $2y$", "2y"),
        ] {
            out.push((name, format!("${version}${body}")));
        }
    }
    let pbkdf2_params = pbkdf2::Params::new_with_output_len(
        crate::hashing::PBKDF2_MIN_ROUNDS,
        crate::hashing::PBKDF2_OUTPUT_LEN,
    )
    .expect("valid PBKDF2 parameters");
    let pbkdf2 = pbkdf2::Pbkdf2::default()
        .hash_password_customized(bytes, &salt, None, None, pbkdf2_params)
        .expect("PBKDF2 hashes");
    out.push(("pbkdf2-sha256", pbkdf2.to_string()));
    let scrypt_params = scrypt::Params::new(4, 8, 1).expect("valid scrypt parameters");
    let scrypt = scrypt::Scrypt::new_with_params(scrypt_params)
        .hash_password_with_salt(bytes, &salt)
        .expect("scrypt hashes");
    out.push(("scrypt", scrypt.to_string()));
    let sha512 = |rounds| {
        let params = sha_crypt::Params::new(rounds).expect("valid SHA-512 crypt rounds");
        sha_crypt::ShaCrypt::new(sha_crypt::Algorithm::Sha512Crypt, params)
            .hash_password_with_salt(bytes, &salt[..12])
            .expect("SHA-512 crypt hashes")
            .to_string()
    };
    out.push(("sha512-crypt rounds=1000", sha512(1_000)));
    // The crate always names the rounds; without them they are the default,
    // which does not enter the hash.
    let default = sha512(crate::hashing::SHA512_CRYPT_DEFAULT_ROUNDS);
    out.push((
        "sha512-crypt without rounds",
        default.replacen("$rounds=5000$", "$", 1),
    ));
    out
}

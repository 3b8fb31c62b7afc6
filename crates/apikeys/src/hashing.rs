//! How secrets are stored, and checked.
//!
//! Rules:
//! - A chosen secret (picked by a person, so of low entropy) is hashed with
//!   argon2id under the policy's parameters (production default: OWASP's
//!   m=19456 KiB, t=2, p=1), with a random salt, as a PHC string.
//! - A generated secret (at least 160 random bits) is hashed with SHA-256:
//!   brute force is hopeless against it, and a check costs well under a
//!   microsecond instead of argon2's tens of milliseconds.
//! - Stored hashes describe themselves; verification dispatches on the
//!   stored scheme, and [`SecretHash`] is read (and refused if unreadable)
//!   when a store decodes a row.
//! - A stored argon2 hash with weaker parameters than the policy (or another
//!   argon2 variant) is replaced after the next successful check.
//! - Hashes brought over from other systems are read as well (the list is
//!   [`SUPPORTED_FORMATS`]): argon2 of any variant, bcrypt, PBKDF2-SHA256,
//!   scrypt and SHA-512 crypt. All are slow and salted, so they take the
//!   same slow path as argon2 ([`Cost::Argon2`]).
//! - This system never writes those formats: the first check an imported
//!   hash passes replaces it with the policy's argon2id.
//! - bcrypt and SHA-512 crypt come from C systems, which read a secret up
//!   to its first NUL byte: a presented secret holding a NUL never matches
//!   them. bcrypt reads only a secret's first 72 bytes, as those systems
//!   do. (Secrets here are UTF-8 and at most 128 bytes, where `$2a$`, `$2b$`
//!   and `$2y$` all compute the same.)
//! - An import file is checked with [`SecretHash::check_importable`]:
//!   parameters that would make one check cost seconds or gigabytes are
//!   refused (the bounds are the `*_MIN_*` and `*_MAX_*` constants), as
//!   are PBKDF2 and scrypt outputs of other than 32 bytes. This system's
//!   own `$sha256$` (what an export with hashes holds) is importable: it
//!   only ever matches a presented secret of the generated shape (160
//!   random bits), so its speed gives a thief nothing to work on. A stored
//!   imported hash beyond those bounds is never computed: it matches
//!   nothing.
//! - Reading any text never panics, nor does checking any secret against a
//!   hash that was read.

use crate::credentials::Secret;
use argon2::password_hash::PasswordHasher;
use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordVerifier, Version};
use base64ct::{Base64Bcrypt, Base64ShaCrypt, Base64Unpadded, Encoding};
use rand_core::CryptoRng;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};
use zeroize::Zeroizing;

/// Argon2id cost for chosen secrets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashingPolicy {
    /// Memory in KiB (production default 19456, OWASP's recommendation).
    pub m_kib: u32,
    /// Iterations (default 2).
    pub t: u32,
    /// Lanes (default 1).
    pub p: u32,
}

impl Default for HashingPolicy {
    /// OWASP's argon2id recommendation: m=19456 KiB, t=2, p=1.
    fn default() -> Self {
        HashingPolicy {
            m_kib: 19_456,
            t: 2,
            p: 1,
        }
    }
}

impl HashingPolicy {
    /// A cheap preset for tests: m=64 KiB, t=1, p=1. Never for production:
    /// hashes made with it are upgraded at the next check under the default.
    pub const fn fast_for_tests() -> Self {
        HashingPolicy {
            m_kib: 64,
            t: 1,
            p: 1,
        }
    }

    fn argon2(&self) -> Result<Argon2<'static>, HashError> {
        let params = Params::new(self.m_kib, self.t, self.p, None)
            .map_err(|e| HashError::Parameters(e.to_string()))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }

    /// Whether argon2 parameters are weaker than this policy in any of m, t, p.
    fn is_weaker(&self, m_kib: u32, t: u32, p: u32) -> bool {
        m_kib < self.m_kib || t < self.t || p < self.p
    }

    /// Checks that argon2 accepts these parameters.
    pub fn validate(&self) -> Result<(), HashError> {
        self.argon2().map(|_| ())
    }
}

/// Where a secret came from, which decides how it is hashed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretOrigin {
    /// Generated with at least 160 random bits: a fast hash suffices.
    Generated,
    /// Chosen by a person: argon2id.
    Chosen,
}

/// Hashing failed; only argon2 can fail, on parameters it refuses.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HashError {
    /// The policy's argon2 parameters are not accepted by argon2.
    #[error("argon2 parameters refused: {0} (m must be at least 8 × p KiB, t and p at least 1)")]
    Parameters(String),
    /// Argon2 failed while hashing.
    #[error("argon2 hashing failed: {0}")]
    Argon2(String),
}

const SHA256_PREFIX: &str = "$sha256$";
const SHA512_CRYPT_PREFIX: &str = "$6$";

/// Bytes of argon2 salt.
pub const SALT_LEN: usize = 16;

/// The longest stored hash, in bytes, that any store must be able to keep.
///
/// An argon2 PHC string under the largest parameters argon2 accepts is about
/// 110 bytes, a SHA-256 one 51; of the imported formats, bcrypt is 60 bytes
/// and SHA-512 crypt at most 123, and the PHC ones are bounded by their
/// salt and output lengths like argon2's.
pub const MAX_HASH_LEN: usize = 512;

/// The formats read besides this system's own `$sha256$`, for people: error
/// messages name them.
pub const SUPPORTED_FORMATS: &str = "argon2 (PHC, any variant), bcrypt ($2a$/$2b$/$2y$), \
     PBKDF2-SHA256 (PHC $pbkdf2-sha256$), scrypt (PHC $scrypt$), SHA-512 crypt ($6$)";

/// The lowest bcrypt cost (log2 of its rounds) the format allows.
pub const BCRYPT_MIN_COST: u32 = 4;
/// The highest bcrypt cost imported: 2^14 rounds, about a second a check
/// (each step doubles it; the usual costs are 10 to 12).
pub const BCRYPT_MAX_COST: u32 = 14;
/// The fewest PBKDF2 iterations imported (the least the `pbkdf2` crate
/// reads).
pub const PBKDF2_MIN_ROUNDS: u32 = 1_000;
/// The most PBKDF2 iterations imported: a few times the usual 600 000,
/// well under a second.
pub const PBKDF2_MAX_ROUNDS: u32 = 2_000_000;
/// The one PBKDF2-SHA256 output length imported, in bytes: SHA-256's own.
/// A longer output costs a multiple of the iterations for no strength.
pub const PBKDF2_OUTPUT_LEN: usize = 32;
/// The one scrypt output length imported, in bytes (the usual one). The
/// format names no length, and a shorter output is a prefix of the longer:
/// a hash cut short would still match, with fewer bits to guess.
pub const SCRYPT_OUTPUT_LEN: usize = 32;
/// The lowest scrypt `ln` (log2 of N) imported: scrypt needs N > 1.
pub const SCRYPT_MIN_LOG_N: u8 = 1;
/// The highest scrypt `ln` imported.
pub const SCRYPT_MAX_LOG_N: u8 = 20;
/// The largest scrypt `r × p` imported.
pub const SCRYPT_MAX_R_TIMES_P: u64 = 16;
/// The most memory one scrypt check may hold, `128 × r × 2^ln` bytes:
/// 256 MiB.
pub const SCRYPT_MAX_MEMORY_BYTES: u64 = 256 * 1024 * 1024;
/// The most memory one scrypt check may fill and read back, over its `p`
/// passes one after another, `128 × r × p × 2^ln` bytes: 512 MiB.
pub const SCRYPT_MAX_WORK_BYTES: u64 = 512 * 1024 * 1024;
/// The fewest SHA-512 crypt rounds imported (the least the format allows).
pub const SHA512_CRYPT_MIN_ROUNDS: u32 = 1_000;
/// The most SHA-512 crypt rounds imported.
pub const SHA512_CRYPT_MAX_ROUNDS: u32 = 1_000_000;
/// The SHA-512 crypt rounds of a hash that names none.
pub const SHA512_CRYPT_DEFAULT_ROUNDS: u32 = 5_000;
/// The most argon2 memory imported, in KiB: 1 GiB.
pub const ARGON2_MAX_M_KIB: u32 = 1_048_576;
/// The most argon2 iterations imported.
pub const ARGON2_MAX_T: u32 = 10;
/// The most argon2 lanes imported (computed one after another here).
pub const ARGON2_MAX_P: u32 = 16;
/// The most argon2 work imported, memory times iterations (`m × t`, in
/// KiB): 2 GiB, as 1 GiB twice or 256 MiB eight times.
pub const ARGON2_MAX_WORK_KIB: u64 = 2_097_152;

/// What checking a presented secret against a stored hash costs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cost {
    /// A fast hash (SHA-256 of a generated secret): well under a microsecond.
    Fast,
    /// A slow, salted hash: argon2 or an imported format (bcrypt, PBKDF2,
    /// scrypt, SHA-512 crypt). Tens to hundreds of milliseconds, and for
    /// argon2 and scrypt megabytes of memory: one lane for all of them.
    Argon2,
}

/// A stored hash of a secret, read once and known to be readable: the text a
/// store keeps (see [`SecretHash::as_str`]) and what it means.
///
/// Stores decode rows with [`SecretHash::parse`], so a damaged or foreign
/// value is caught when the row is read, as a [`crate::store::BadRow`], and
/// never reaches authentication. `Debug` shows only the scheme: hashes are
/// not secrets, but they have no business in logs.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretHash {
    text: Box<str>,
    scheme: Scheme,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Scheme {
    /// `$sha256$` and the base64 of the digest, kept decoded.
    Sha256([u8; 32]),
    /// An argon2 PHC string, with the parameters it was made with.
    Argon2 {
        m_kib: u32,
        t: u32,
        p: u32,
        /// argon2id, version 0x13: the algorithm the policy hashes with.
        current_algorithm: bool,
    },
    /// `$2a$`, `$2b$` or `$2y$`, kept decoded.
    Bcrypt {
        cost: u32,
        salt: [u8; 16],
        hash: [u8; 23],
    },
    /// A `$pbkdf2-sha256$` PHC string, with its parameters.
    Pbkdf2Sha256 { rounds: u32, output_len: usize },
    /// A `$scrypt$` PHC string, with its parameters.
    Scrypt {
        log_n: u8,
        r: u32,
        p: u32,
        output_len: usize,
    },
    /// `$6$`, with its rounds (named or the default).
    Sha512Crypt { rounds: u32 },
}

/// A stored value that is not a hash in a format this crate reads.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "not a stored secret hash: expected `$sha256$` and 43 base64 characters, or one of {formats}, of at most {max} bytes",
    formats = SUPPORTED_FORMATS,
    max = MAX_HASH_LEN
)]
pub struct UnreadableHash;

/// A readable hash that is not to be imported: its format is not for
/// imports, or its parameters would make each check too dear.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImportableHashError {
    /// bcrypt's cost is past the bounds.
    #[error(
        "bcrypt cost {cost} is not importable: the cost must be from {min} to {max}",
        min = BCRYPT_MIN_COST,
        max = BCRYPT_MAX_COST
    )]
    BcryptCost {
        /// The hash's cost.
        cost: u32,
    },
    /// PBKDF2's iterations are past the bounds.
    #[error(
        "PBKDF2-SHA256 with i={rounds} is not importable: iterations must be from {min} to {max}",
        min = PBKDF2_MIN_ROUNDS,
        max = PBKDF2_MAX_ROUNDS
    )]
    Pbkdf2Rounds {
        /// The hash's iterations.
        rounds: u32,
    },
    /// PBKDF2's output is not 32 bytes.
    #[error(
        "PBKDF2-SHA256 with l={len} is not importable: the output length must be {only} bytes",
        only = PBKDF2_OUTPUT_LEN
    )]
    Pbkdf2OutputLen {
        /// The hash's output length, in bytes.
        len: usize,
    },
    /// scrypt's output is not 32 bytes.
    #[error(
        "scrypt with a {len}-byte hash is not importable: the output length must be {only} bytes",
        only = SCRYPT_OUTPUT_LEN
    )]
    ScryptOutputLen {
        /// The hash's output length, in bytes.
        len: usize,
    },
    /// scrypt's `ln` is past the bounds.
    #[error(
        "scrypt with ln={log_n} is not importable: ln must be from {min} to {max}",
        min = SCRYPT_MIN_LOG_N,
        max = SCRYPT_MAX_LOG_N
    )]
    ScryptLogN {
        /// The hash's `ln`.
        log_n: u8,
    },
    /// scrypt's `r × p` is past the bound.
    #[error(
        "scrypt with r={r}, p={p} is not importable: r × p must be at most {max}",
        max = SCRYPT_MAX_R_TIMES_P
    )]
    ScryptRTimesP {
        /// The hash's `r`.
        r: u32,
        /// The hash's `p`.
        p: u32,
    },
    /// scrypt's memory, `128 × r × 2^ln` bytes, is past the bound.
    #[error(
        "scrypt with ln={log_n}, r={r} is not importable: its memory (128 × r × 2^ln bytes) must be at most {max} bytes (256 MiB)",
        max = SCRYPT_MAX_MEMORY_BYTES
    )]
    ScryptMemory {
        /// The hash's `ln`.
        log_n: u8,
        /// The hash's `r`.
        r: u32,
    },
    /// scrypt's work, `128 × r × p × 2^ln` bytes, is past the bound.
    #[error(
        "scrypt with ln={log_n}, r={r}, p={p} is not importable: its work (128 × r × p × 2^ln bytes) must be at most {max} bytes (512 MiB)",
        max = SCRYPT_MAX_WORK_BYTES
    )]
    ScryptWork {
        /// The hash's `ln`.
        log_n: u8,
        /// The hash's `r`.
        r: u32,
        /// The hash's `p`.
        p: u32,
    },
    /// SHA-512 crypt's rounds are past the bounds.
    #[error(
        "SHA-512 crypt with rounds={rounds} is not importable: rounds must be from {min} to {max}",
        min = SHA512_CRYPT_MIN_ROUNDS,
        max = SHA512_CRYPT_MAX_ROUNDS
    )]
    Sha512CryptRounds {
        /// The hash's rounds.
        rounds: u32,
    },
    /// argon2's memory is past the bound.
    #[error(
        "argon2 with m={m_kib} is not importable: m must be at most {max} KiB (1 GiB)",
        max = ARGON2_MAX_M_KIB
    )]
    Argon2Memory {
        /// The hash's memory, in KiB.
        m_kib: u32,
    },
    /// argon2's iterations are past the bound.
    #[error(
        "argon2 with t={t} is not importable: t must be at most {max}",
        max = ARGON2_MAX_T
    )]
    Argon2Iterations {
        /// The hash's iterations.
        t: u32,
    },
    /// argon2's lanes are past the bound.
    #[error(
        "argon2 with p={p} is not importable: p must be at most {max}",
        max = ARGON2_MAX_P
    )]
    Argon2Lanes {
        /// The hash's lanes.
        p: u32,
    },
    /// argon2's memory times iterations is past the bound.
    #[error(
        "argon2 with m={m_kib}, t={t} is not importable: m × t must be at most {max} KiB",
        max = ARGON2_MAX_WORK_KIB
    )]
    Argon2Work {
        /// The hash's memory, in KiB.
        m_kib: u32,
        /// The hash's iterations.
        t: u32,
    },
}

impl SecretHash {
    /// Reads a stored hash: `$sha256$` and the unpadded base64 of a 32-byte
    /// digest, or one of [`SUPPORTED_FORMATS`] with its parameters, salt
    /// and hash.
    pub fn parse(text: &str) -> Result<Self, UnreadableHash> {
        if text.len() > MAX_HASH_LEN {
            return Err(UnreadableHash);
        }
        let scheme = if let Some(b64) = text.strip_prefix(SHA256_PREFIX) {
            let mut digest = [0u8; 32];
            match Base64Unpadded::decode(b64, &mut digest) {
                Ok(d) if d.len() == 32 => Scheme::Sha256(digest),
                _ => return Err(UnreadableHash),
            }
        } else if text.starts_with("$2") {
            parse_bcrypt(text).ok_or(UnreadableHash)?
        } else if text.starts_with(SHA512_CRYPT_PREFIX) {
            parse_sha512_crypt(text).ok_or(UnreadableHash)?
        } else {
            parse_phc(text).ok_or(UnreadableHash)?
        };
        Ok(SecretHash {
            text: text.into(),
            scheme,
        })
    }

    /// The text a store keeps, which [`SecretHash::parse`] reads back.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// What checking a secret against this hash costs.
    pub fn cost(&self) -> Cost {
        match self.scheme {
            Scheme::Sha256(_) => Cost::Fast,
            Scheme::Argon2 { .. }
            | Scheme::Bcrypt { .. }
            | Scheme::Pbkdf2Sha256 { .. }
            | Scheme::Scrypt { .. }
            | Scheme::Sha512Crypt { .. } => Cost::Argon2,
        }
    }

    /// The name of the hash's scheme: `sha256`, `argon2` (any variant),
    /// `bcrypt`, `pbkdf2-sha256`, `scrypt` or `sha512-crypt`.
    pub fn scheme(&self) -> &'static str {
        match self.scheme {
            Scheme::Sha256(_) => "sha256",
            Scheme::Argon2 { .. } => "argon2",
            Scheme::Bcrypt { .. } => "bcrypt",
            Scheme::Pbkdf2Sha256 { .. } => "pbkdf2-sha256",
            Scheme::Scrypt { .. } => "scrypt",
            Scheme::Sha512Crypt { .. } => "sha512-crypt",
        }
    }

    /// Whether this hash may be imported from another system: it is in one
    /// of [`SUPPORTED_FORMATS`] or this system's own `$sha256$` of a
    /// generated secret (which matches only a secret of the generated
    /// shape), with parameters within
    /// the bounds, so that no imported hash makes a check cost seconds or
    /// gigabytes. The error names the format and the bound, never the hash.
    pub fn check_importable(&self) -> Result<(), ImportableHashError> {
        use ImportableHashError as E;
        match self.scheme {
            Scheme::Sha256(_) => Ok(()),
            Scheme::Argon2 { m_kib, t, p, .. } => {
                if m_kib > ARGON2_MAX_M_KIB {
                    Err(E::Argon2Memory { m_kib })
                } else if t > ARGON2_MAX_T {
                    Err(E::Argon2Iterations { t })
                } else if p > ARGON2_MAX_P {
                    Err(E::Argon2Lanes { p })
                } else if u64::from(m_kib) * u64::from(t) > ARGON2_MAX_WORK_KIB {
                    Err(E::Argon2Work { m_kib, t })
                } else {
                    Ok(())
                }
            }
            Scheme::Bcrypt { cost, .. } => {
                if (BCRYPT_MIN_COST..=BCRYPT_MAX_COST).contains(&cost) {
                    Ok(())
                } else {
                    Err(E::BcryptCost { cost })
                }
            }
            Scheme::Pbkdf2Sha256 { rounds, output_len } => {
                if !(PBKDF2_MIN_ROUNDS..=PBKDF2_MAX_ROUNDS).contains(&rounds) {
                    Err(E::Pbkdf2Rounds { rounds })
                } else if output_len != PBKDF2_OUTPUT_LEN {
                    Err(E::Pbkdf2OutputLen { len: output_len })
                } else {
                    Ok(())
                }
            }
            Scheme::Scrypt {
                log_n,
                r,
                p,
                output_len,
            } => {
                // At most 2^20 × 2^32 × 2^32 × 2^7: no overflow in u128.
                let memory = (128 * u128::from(r)) << log_n.min(SCRYPT_MAX_LOG_N);
                if output_len != SCRYPT_OUTPUT_LEN {
                    Err(E::ScryptOutputLen { len: output_len })
                } else if !(SCRYPT_MIN_LOG_N..=SCRYPT_MAX_LOG_N).contains(&log_n) {
                    Err(E::ScryptLogN { log_n })
                } else if u64::from(r) * u64::from(p) > SCRYPT_MAX_R_TIMES_P {
                    Err(E::ScryptRTimesP { r, p })
                } else if memory > u128::from(SCRYPT_MAX_MEMORY_BYTES) {
                    Err(E::ScryptMemory { log_n, r })
                } else if memory * u128::from(p) > u128::from(SCRYPT_MAX_WORK_BYTES) {
                    Err(E::ScryptWork { log_n, r, p })
                } else {
                    Ok(())
                }
            }
            Scheme::Sha512Crypt { rounds } => {
                if (SHA512_CRYPT_MIN_ROUNDS..=SHA512_CRYPT_MAX_ROUNDS).contains(&rounds) {
                    Ok(())
                } else {
                    Err(E::Sha512CryptRounds { rounds })
                }
            }
        }
    }

    fn sha256_of(bytes: &[u8]) -> Self {
        let digest: [u8; 32] = Sha256::digest(bytes).into();
        let mut text = String::with_capacity(SHA256_PREFIX.len() + 43);
        text.push_str(SHA256_PREFIX);
        text.push_str(&Base64Unpadded::encode_string(&digest));
        SecretHash {
            text: text.into(),
            scheme: Scheme::Sha256(digest),
        }
    }
}

/// `$2a$`, `$2b$` or `$2y$`, a two-digit cost from 4 to 31, `$`, then 22
/// characters of salt and 31 of hash in bcrypt's base64: 60 bytes.
fn parse_bcrypt(text: &str) -> Option<Scheme> {
    if text.len() != 60 || !text.is_ascii() {
        return None;
    }
    if !matches!(text.get(..4)?, "$2a$" | "$2b$" | "$2y$") || text.get(6..7)? != "$" {
        return None;
    }
    let cost = text.get(4..6)?;
    if !cost.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let cost: u32 = cost.parse().ok()?;
    if !(BCRYPT_MIN_COST..=31).contains(&cost) {
        return None;
    }
    let mut salt = [0u8; 16];
    let mut hash = [0u8; 23];
    // Strict base64 (no stray bits in the last character): the systems that
    // write bcrypt encode the salt and hash afresh, so theirs always is.
    if Base64Bcrypt::decode(text.get(7..29)?, &mut salt)
        .ok()?
        .len()
        != 16
        || Base64Bcrypt::decode(text.get(29..)?, &mut hash).ok()?.len() != 23
    {
        return None;
    }
    Some(Scheme::Bcrypt { cost, salt, hash })
}

/// `$6$`, optionally `rounds=N$` (N from 1000 to 999999999, as every
/// writer puts it), a salt of 1 to 16 characters, `$` and 86 characters of
/// hash in SHA-crypt's base64.
fn parse_sha512_crypt(text: &str) -> Option<Scheme> {
    // What the crate that verifies it reads, so that parse and verify agree.
    sha_crypt::PasswordHashRef::new(text).ok()?;
    let rest = text.strip_prefix(SHA512_CRYPT_PREFIX)?;
    let (rounds, rest) = match rest.strip_prefix("rounds=") {
        Some(named) => {
            let (rounds, rest) = named.split_once('$')?;
            if !rounds.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (rounds.parse().ok()?, rest)
        }
        None => (SHA512_CRYPT_DEFAULT_ROUNDS, rest),
    };
    sha_crypt::Params::new(rounds).ok()?;
    let (salt, hash) = rest.split_once('$')?;
    let mut digest = [0u8; 64];
    if !(1..=16).contains(&salt.len())
        || hash.len() != 86
        || Base64ShaCrypt::decode(hash, &mut digest).ok()?.len() != 64
    {
        return None;
    }
    Some(Scheme::Sha512Crypt { rounds })
}

/// A PHC string of argon2 (any variant), PBKDF2-SHA256 or scrypt, with a
/// salt and a hash, and parameters its crate accepts. PBKDF2 and scrypt
/// must name their parameters: the crates' defaults for missing ones are
/// theirs, not the format's.
fn parse_phc(text: &str) -> Option<Scheme> {
    let phc = PasswordHash::new(text).ok()?;
    if phc.salt.is_none() || phc.hash.is_none() {
        return None;
    }
    let named = |names: &[&str]| names.iter().all(|n| phc.params.get(*n).is_some());
    match phc.algorithm.as_str() {
        algorithm @ ("argon2id" | "argon2i" | "argon2d") => {
            let params = Params::try_from(&phc.params).ok()?;
            Some(Scheme::Argon2 {
                m_kib: params.m_cost(),
                t: params.t_cost(),
                p: params.p_cost(),
                current_algorithm: algorithm == "argon2id"
                    && phc.version == Some(u32::from(Version::V0x13)),
            })
        }
        "pbkdf2-sha256" if named(&["i"]) => {
            let params = pbkdf2::Params::try_from(&phc).ok()?;
            Some(Scheme::Pbkdf2Sha256 {
                rounds: params.rounds(),
                output_len: params.output_len(),
            })
        }
        "scrypt" if named(&["ln", "r", "p"]) => {
            let params = scrypt::Params::try_from(&phc).ok()?;
            Some(Scheme::Scrypt {
                log_n: params.log_n(),
                r: params.r(),
                p: params.p(),
                output_len: phc.hash.map_or(0, |h| h.len()),
            })
        }
        _ => None,
    }
}

impl std::str::FromStr for SecretHash {
    type Err = UnreadableHash;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SecretHash::parse(s)
    }
}

impl std::fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretHash({}, [hidden])", self.scheme())
    }
}

/// Hashes a secret for storage: argon2id under the policy for a chosen
/// secret (a PHC string `$argon2id$v=19$m=..,t=..,p=..$salt$hash`), SHA-256
/// for a generated one (which needs no salt: `salt` is then unused).
///
/// The salt is a parameter, not a generator, so that a caller can draw it
/// under a lock and run argon2 outside it.
pub fn hash_secret(
    policy: &HashingPolicy,
    secret: &Secret,
    origin: SecretOrigin,
    salt: &[u8; SALT_LEN],
) -> Result<SecretHash, HashError> {
    match origin {
        SecretOrigin::Generated => Ok(SecretHash::sha256_of(secret.expose_secret().as_bytes())),
        SecretOrigin::Chosen => {
            let hash = policy
                .argon2()?
                .hash_password_with_salt(secret.expose_secret().as_bytes(), salt)
                .map_err(|e| HashError::Argon2(e.to_string()))?;
            SecretHash::parse(&hash.to_string()).map_err(|e| HashError::Argon2(e.to_string()))
        }
    }
}

/// A fresh salt from `rng`.
pub fn random_salt(rng: &mut (impl CryptoRng + ?Sized)) -> [u8; SALT_LEN] {
    let mut salt = [0u8; SALT_LEN];
    rng.fill_bytes(&mut salt);
    salt
}

/// Compares two SHA-256 digests in constant time, as four 64-bit words:
/// `subtle` compares a byte array one optimisation barrier per byte, which
/// showed in the cost of every authentication.
fn digests_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let word = |d: &[u8; 32], i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&d[i * 8..i * 8 + 8]);
        u64::from_ne_bytes(w)
    };
    let equal = (0..4).fold(Choice::from(1), |acc, i| {
        acc & word(a, i).ct_eq(&word(b, i))
    });
    bool::from(equal)
}

/// bcrypt's 23 bytes of output for `secret`, read as the C systems that
/// write `$2a$`, `$2b$` and `$2y$` read it: its first 72 bytes, and its
/// terminating NUL if it is shorter. `None` for a secret holding a NUL
/// (which such a system could never have hashed: it would have stopped
/// there) or a cost bcrypt refuses.
pub(crate) fn bcrypt_output(cost: u32, salt: [u8; 16], secret: &[u8]) -> Option<[u8; 23]> {
    if secret.contains(&0) || !(BCRYPT_MIN_COST..=31).contains(&cost) {
        return None;
    }
    let mut key = Zeroizing::new([0u8; 72]);
    let len = secret.len().min(72);
    key.get_mut(..len)?.copy_from_slice(secret.get(..len)?);
    // The key is never empty: at least the terminating NUL.
    let output = Zeroizing::new(bcrypt::bcrypt(cost, salt, key.get(..(len + 1).min(72))?));
    let mut hash = [0u8; 23];
    hash.copy_from_slice(output.get(..23)?);
    Some(hash)
}

/// Whether a stored hash should be replaced by a fresh one after a match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rehash {
    /// The hash is as strong as the policy asks.
    NotNeeded,
    /// The hash is weaker than the policy, of another argon2 variant, or
    /// imported in another format: replace it with a hash of the same
    /// secret under the policy.
    Needed,
}

/// The outcome of checking a presented secret against a stored hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verification {
    /// The secret matches.
    Match(Rehash),
    /// The secret does not match.
    Mismatch,
}

/// Checks `presented` against a stored hash, dispatching on its scheme.
pub fn verify_secret(policy: &HashingPolicy, presented: &str, stored: &SecretHash) -> Verification {
    let matched = |ok: bool| {
        if ok {
            Verification::Match(Rehash::Needed)
        } else {
            Verification::Mismatch
        }
    };
    match stored.scheme {
        Scheme::Sha256(expected) => {
            let actual: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
            if digests_equal(&actual, &expected) {
                Verification::Match(Rehash::NotNeeded)
            } else {
                Verification::Mismatch
            }
        }
        Scheme::Argon2 {
            m_kib,
            t,
            p,
            current_algorithm,
        } => {
            // Parsed when the hash was read, so this cannot fail; a failure
            // would refuse, never admit.
            let Ok(phc) = PasswordHash::new(&stored.text) else {
                return Verification::Mismatch;
            };
            match Argon2::default().verify_password(presented.as_bytes(), &phc) {
                Ok(()) if !current_algorithm || policy.is_weaker(m_kib, t, p) => {
                    Verification::Match(Rehash::Needed)
                }
                Ok(()) => Verification::Match(Rehash::NotNeeded),
                Err(_) => Verification::Mismatch,
            }
        }
        // An imported hash beyond the import bounds is never computed.
        _ if stored.check_importable().is_err() => Verification::Mismatch,
        Scheme::Bcrypt { cost, salt, hash } => matched(
            bcrypt_output(cost, salt, presented.as_bytes())
                .is_some_and(|actual| bool::from(actual[..].ct_eq(&hash[..]))),
        ),
        Scheme::Pbkdf2Sha256 { .. } => matched(PasswordHash::new(&stored.text).is_ok_and(|phc| {
            pbkdf2::Pbkdf2::default()
                .verify_password(presented.as_bytes(), &phc)
                .is_ok()
        })),
        Scheme::Scrypt { .. } => matched(PasswordHash::new(&stored.text).is_ok_and(|phc| {
            scrypt::Scrypt::new()
                .verify_password(presented.as_bytes(), &phc)
                .is_ok()
        })),
        Scheme::Sha512Crypt { .. } => matched(
            !presented.as_bytes().contains(&0)
                && sha_crypt::ShaCrypt::SHA512
                    .verify_password(presented.as_bytes(), &*stored.text)
                    .is_ok(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn salt() -> [u8; SALT_LEN] {
        random_salt(&mut ChaCha20Rng::seed_from_u64(11))
    }

    fn chosen(policy: &HashingPolicy, secret: &str) -> SecretHash {
        hash_secret(policy, &Secret::new(secret), SecretOrigin::Chosen, &salt()).unwrap()
    }

    const MATCH: Verification = Verification::Match(Rehash::NotNeeded);

    fn foreign(secret: &str) -> Vec<(&'static str, SecretHash)> {
        crate::testing::foreign::hashes_of(secret)
            .into_iter()
            .map(|(name, text)| (name, SecretHash::parse(&text).unwrap()))
            .collect()
    }

    #[test]
    fn imported_formats_match_once_and_ask_for_rehash() {
        // The production policy: the argon2id fixture is weaker than it,
        // as an imported argon2id hash stronger than the policy is kept.
        let p = HashingPolicy::default();
        let hashes = foreign("correct horse battery");
        assert_eq!(hashes.len(), 10);
        for (name, h) in &hashes {
            assert_eq!(h.cost(), Cost::Argon2, "{name}");
            assert_eq!(h.check_importable(), Ok(()), "{name}");
            assert_eq!(
                verify_secret(&p, "correct horse battery", h),
                Verification::Match(Rehash::Needed),
                "{name}"
            );
            for wrong in ["correct horse batterY", "", "correct horse battery "] {
                assert_eq!(
                    verify_secret(&p, wrong, h),
                    Verification::Mismatch,
                    "{name}"
                );
            }
            assert_eq!(SecretHash::parse(h.as_str()).as_ref(), Ok(h), "{name}");
            let expected = name.split(' ').next().unwrap();
            let expected = match expected {
                "argon2i" | "argon2d" | "argon2id" => "argon2",
                other => other,
            };
            assert_eq!(h.scheme(), expected, "{name}");
        }
    }

    #[test]
    fn debug_names_the_scheme_and_hides_the_hash() {
        for (name, h) in foreign("correct horse battery") {
            let shown = format!("{h:?}");
            assert_eq!(
                shown,
                format!("SecretHash({}, [hidden])", h.scheme()),
                "{name}"
            );
            let body = h.as_str().rsplit_once('$').unwrap().1;
            assert!(!shown.contains(body), "{name}");
        }
    }

    #[test]
    fn bcrypt_reads_72_bytes_and_never_a_nul() {
        let p = HashingPolicy::fast_for_tests();
        let bcrypt = |secret: &str| {
            let (_, h) = foreign(secret)
                .into_iter()
                .find(|(n, _)| *n == "bcrypt $2b$")
                .unwrap();
            h
        };
        let s72 = "x".repeat(71) + "y";
        let h = bcrypt(&s72);
        assert_eq!(
            verify_secret(&p, &(s72.clone() + "anything"), &h),
            Verification::Match(Rehash::Needed)
        );
        assert_eq!(verify_secret(&p, &s72[..71], &h), Verification::Mismatch);
        // Under 72 bytes the terminating NUL counts: one more byte differs.
        let h71 = bcrypt(&s72[..71]);
        assert_eq!(verify_secret(&p, &s72, &h71), Verification::Mismatch);
        // A NUL never matches, not even where C would have stopped.
        let h = bcrypt("abc");
        assert_eq!(verify_secret(&p, "abc\0", &h), Verification::Mismatch);
        assert_eq!(verify_secret(&p, "abc\0def", &h), Verification::Mismatch);
        assert!(bcrypt_output(4, [0; 16], b"a\0").is_none());
        assert!(
            crate::testing::foreign::hashes_of("a\0b")
                .iter()
                .all(|(n, _)| !n.starts_with("bcrypt"))
        );
    }

    #[test]
    fn sha512_crypt_never_matches_a_nul() {
        let p = HashingPolicy::fast_for_tests();
        for (name, h) in foreign("abc\0") {
            if name.starts_with("sha512-crypt") {
                assert_eq!(verify_secret(&p, "abc\0", &h), Verification::Mismatch);
                assert_eq!(verify_secret(&p, "abc", &h), Verification::Mismatch);
            }
        }
    }

    #[test]
    fn own_hashes_are_importable() {
        let p = HashingPolicy::fast_for_tests();
        let h = hash_secret(
            &p,
            &Secret::new("akeyexample"),
            SecretOrigin::Generated,
            &salt(),
        )
        .unwrap();
        assert_eq!(h.check_importable(), Ok(()));
        assert_eq!(
            chosen(&p, "correct horse battery").check_importable(),
            Ok(())
        );
        assert_eq!(h.scheme(), "sha256");
    }

    #[test]
    fn digests_differing_anywhere_are_unequal() {
        let a: [u8; 32] = core::array::from_fn(|i| u8::try_from(i * 7).unwrap());
        assert!(digests_equal(&a, &a));
        for i in 0..32 {
            for bit in 0..8 {
                let mut b = a;
                b[i] ^= 1 << bit;
                assert!(!digests_equal(&a, &b), "byte {i} bit {bit}");
            }
        }
    }

    #[test]
    fn generated_secrets_use_sha256() {
        let p = HashingPolicy::fast_for_tests();
        let s = Secret::new("akeyexample");
        let h = hash_secret(&p, &s, SecretOrigin::Generated, &salt()).unwrap();
        assert!(h.as_str().starts_with("$sha256$"));
        assert!(!h.as_str().contains("akeyexample"));
        assert_eq!(h.cost(), Cost::Fast);
        assert_eq!(verify_secret(&p, "akeyexample", &h), MATCH);
        assert_eq!(verify_secret(&p, "akeyexamplf", &h), Verification::Mismatch);
        assert_eq!(SecretHash::parse(h.as_str()), Ok(h));
    }

    #[test]
    fn chosen_secrets_use_argon2id_with_policy_parameters() {
        let p = HashingPolicy::fast_for_tests();
        let h = chosen(&p, "correct horse battery");
        assert!(
            h.as_str().starts_with("$argon2id$v=19$m=64,t=1,p=1$"),
            "{h:?}"
        );
        assert_eq!(h.cost(), Cost::Argon2);
        assert_eq!(verify_secret(&p, "correct horse battery", &h), MATCH);
        assert_eq!(
            verify_secret(&p, "correct horse batterY", &h),
            Verification::Mismatch
        );
        assert_eq!(SecretHash::parse(h.as_str()), Ok(h));
    }

    #[test]
    fn production_parameters_are_owasp() {
        let p = HashingPolicy::default();
        let h = chosen(&p, "correct horse battery");
        assert!(
            h.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{h:?}"
        );
        assert_eq!(verify_secret(&p, "correct horse battery", &h), MATCH);
    }

    #[test]
    fn weaker_hashes_ask_for_rehash() {
        let weak = HashingPolicy::fast_for_tests();
        let h = chosen(&weak, "correct horse battery");
        let stronger = HashingPolicy {
            m_kib: 128,
            t: 1,
            p: 1,
        };
        assert_eq!(
            verify_secret(&stronger, "correct horse battery", &h),
            Verification::Match(Rehash::Needed)
        );
        let more_t = HashingPolicy {
            m_kib: 64,
            t: 2,
            p: 1,
        };
        assert_eq!(
            verify_secret(&more_t, "correct horse battery", &h),
            Verification::Match(Rehash::Needed)
        );
        // A wrong secret never asks for anything.
        assert_eq!(
            verify_secret(&stronger, "wrong", &h),
            Verification::Mismatch
        );
        // Stronger-than-policy hashes are left alone.
        let strong_h = chosen(&stronger, "correct horse battery");
        assert_eq!(
            verify_secret(&weak, "correct horse battery", &strong_h),
            MATCH
        );
    }

    #[test]
    fn other_argon2_variants_match_and_ask_for_rehash() {
        let p = HashingPolicy::fast_for_tests();
        let params = Params::new(64, 1, 1, None).unwrap();
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, params)
            .hash_password_with_salt(b"correct horse battery", &salt())
            .unwrap()
            .to_string();
        let h = SecretHash::parse(&argon2i).unwrap();
        assert_eq!(
            verify_secret(&p, "correct horse battery", &h),
            Verification::Match(Rehash::Needed)
        );
    }

    #[test]
    fn unreadable_hashes_are_refused_when_read() {
        let argon2 = chosen(&HashingPolicy::fast_for_tests(), "correct horse battery");
        let without_hash = argon2.as_str().rsplit_once('$').unwrap().0.to_string();
        for stored in [
            "",
            "plain",
            "$sha256$",
            "$sha256$!!!",
            "$sha256$AAAA",
            "$argon2id$v=19$m=x$y$z",
            "$md5$abc",
            "$pbkdf2-sha256$i=1000$c2FsdA$aGFzaA",
            without_hash.as_str(),
            &"$sha256$".repeat(100),
        ] {
            let e = SecretHash::parse(stored).unwrap_err();
            assert!(
                e.to_string().contains("expected `$sha256$`"),
                "{stored}: {e}"
            );
        }
    }

    #[test]
    fn debug_hides_the_hash() {
        let h = chosen(&HashingPolicy::fast_for_tests(), "correct horse battery");
        let shown = format!("{h:?}");
        assert_eq!(shown, "SecretHash(argon2, [hidden])");
    }

    #[test]
    fn bad_parameters_are_a_clear_error() {
        let p = HashingPolicy {
            m_kib: 1,
            t: 0,
            p: 1,
        };
        let e = hash_secret(
            &p,
            &Secret::new("correct horse battery"),
            SecretOrigin::Chosen,
            &salt(),
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("argon2 parameters refused"));
        assert!(p.validate().is_err());
        assert!(HashingPolicy::default().validate().is_ok());
    }
}

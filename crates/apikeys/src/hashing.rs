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

use crate::credentials::Secret;
use argon2::password_hash::PasswordHasher;
use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordVerifier, Version};
use base64ct::{Base64Unpadded, Encoding};
use rand_core::CryptoRng;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

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

/// Bytes of argon2 salt.
pub const SALT_LEN: usize = 16;

/// The longest stored hash, in bytes, that any store must be able to keep.
///
/// An argon2 PHC string under the largest parameters argon2 accepts is about
/// 110 bytes, a SHA-256 one 51; the margin leaves room for formats imported
/// from other systems.
pub const MAX_HASH_LEN: usize = 512;

/// What checking a presented secret against a stored hash costs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cost {
    /// A fast hash (SHA-256 of a generated secret): well under a microsecond.
    Fast,
    /// Argon2: tens of milliseconds and megabytes of memory.
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
}

/// A stored value that is not a hash in a format this crate reads.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "not a stored secret hash: expected `$sha256$` and 43 base64 characters, or an argon2 PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`), of at most {max} bytes",
    max = MAX_HASH_LEN
)]
pub struct UnreadableHash;

impl SecretHash {
    /// Reads a stored hash: `$sha256$` and the unpadded base64 of a 32-byte
    /// digest, or an argon2 PHC string (any variant) with its parameters,
    /// salt and hash.
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
        } else {
            let phc = PasswordHash::new(text).map_err(|_| UnreadableHash)?;
            let params = Params::try_from(&phc.params).map_err(|_| UnreadableHash)?;
            let algorithm = phc.algorithm.as_str();
            if !matches!(algorithm, "argon2id" | "argon2i" | "argon2d")
                || phc.salt.is_none()
                || phc.hash.is_none()
            {
                return Err(UnreadableHash);
            }
            Scheme::Argon2 {
                m_kib: params.m_cost(),
                t: params.t_cost(),
                p: params.p_cost(),
                current_algorithm: algorithm == "argon2id"
                    && phc.version == Some(u32::from(Version::V0x13)),
            }
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
            Scheme::Argon2 { .. } => Cost::Argon2,
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

impl std::str::FromStr for SecretHash {
    type Err = UnreadableHash;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SecretHash::parse(s)
    }
}

impl std::fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = match self.scheme {
            Scheme::Sha256(_) => "sha256",
            Scheme::Argon2 { .. } => "argon2",
        };
        write!(f, "SecretHash({scheme}, [hidden])")
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

/// Whether a stored hash should be replaced by a fresh one after a match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rehash {
    /// The hash is as strong as the policy asks.
    NotNeeded,
    /// The hash is weaker than the policy (or of another argon2 variant):
    /// replace it with a hash of the same secret under the policy.
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

//! How secrets are stored: argon2id for chosen secrets, SHA-256 for generated
//! ones, both as self-describing strings (SPEC.md section 4, "Hashing").

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
    fn is_weaker(&self, params: &Params) -> bool {
        params.m_cost() < self.m_kib || params.t_cost() < self.t || params.p_cost() < self.p
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

/// Hashes a secret for storage. The result is self-describing: a PHC string
/// `$argon2id$v=19$m=..,t=..,p=..$salt$hash` for a chosen secret, or
/// `$sha256$<base64>` for a generated one (which needs no salt: `salt` is
/// then unused).
///
/// The salt is a parameter, not a generator, so that a caller can draw it
/// under a lock and run argon2 outside it.
pub fn hash_secret(
    policy: &HashingPolicy,
    secret: &Secret,
    origin: SecretOrigin,
    salt: &[u8; SALT_LEN],
) -> Result<String, HashError> {
    match origin {
        SecretOrigin::Generated => Ok(sha256_string(secret.expose_secret().as_bytes())),
        SecretOrigin::Chosen => {
            let hash = policy
                .argon2()?
                .hash_password_with_salt(secret.expose_secret().as_bytes(), salt)
                .map_err(|e| HashError::Argon2(e.to_string()))?;
            Ok(hash.to_string())
        }
    }
}

/// A fresh salt from `rng`.
pub fn random_salt(rng: &mut (impl CryptoRng + ?Sized)) -> [u8; SALT_LEN] {
    let mut salt = [0u8; SALT_LEN];
    rng.fill_bytes(&mut salt);
    salt
}

/// Whether a stored hash is of the fast kind (generated secrets), which no
/// cache could speed up.
pub fn is_fast_hash(stored: &str) -> bool {
    stored.starts_with(SHA256_PREFIX)
}

fn sha256_string(bytes: &[u8]) -> String {
    let digest: [u8; 32] = Sha256::digest(bytes).into();
    let mut out = String::with_capacity(SHA256_PREFIX.len() + 43);
    out.push_str(SHA256_PREFIX);
    out.push_str(&Base64Unpadded::encode_string(&digest));
    out
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

/// The outcome of checking a presented secret against a stored hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verification {
    /// The secret matches. `needs_rehash` says the stored hash is weaker than
    /// the policy and should be replaced by a fresh one.
    Match {
        /// Whether the stored parameters are weaker than the policy's.
        needs_rehash: bool,
    },
    /// The secret does not match.
    Mismatch,
    /// The stored string is in no format this crate knows (a corrupt row).
    UnknownFormat,
}

/// Checks `presented` against a stored hash, dispatching on the stored format.
pub fn verify_secret(policy: &HashingPolicy, presented: &str, stored: &str) -> Verification {
    if let Some(b64) = stored.strip_prefix(SHA256_PREFIX) {
        let mut expected = [0u8; 32];
        return match Base64Unpadded::decode(b64, &mut expected) {
            Ok(d) if d.len() == 32 => {
                let actual: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
                if digests_equal(&actual, &expected) {
                    Verification::Match {
                        needs_rehash: false,
                    }
                } else {
                    Verification::Mismatch
                }
            }
            _ => Verification::UnknownFormat,
        };
    }
    let Ok(phc) = PasswordHash::new(stored) else {
        return Verification::UnknownFormat;
    };
    let Ok(params) = Params::try_from(&phc.params) else {
        return Verification::UnknownFormat;
    };
    let algorithm_ok =
        phc.algorithm.as_str() == "argon2id" && phc.version == Some(u32::from(Version::V0x13));
    match Argon2::default().verify_password(presented.as_bytes(), &phc) {
        Ok(()) => Verification::Match {
            needs_rehash: !algorithm_ok || policy.is_weaker(&params),
        },
        Err(argon2::password_hash::Error::PasswordInvalid) => Verification::Mismatch,
        Err(_) => Verification::UnknownFormat,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    fn rng() -> [u8; SALT_LEN] {
        random_salt(&mut ChaCha20Rng::seed_from_u64(11))
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
        let h = hash_secret(&p, &s, SecretOrigin::Generated, &rng()).unwrap();
        assert!(h.starts_with("$sha256$"));
        assert!(!h.contains("akeyexample"));
        assert_eq!(
            verify_secret(&p, "akeyexample", &h),
            Verification::Match {
                needs_rehash: false
            }
        );
        assert_eq!(verify_secret(&p, "akeyexamplf", &h), Verification::Mismatch);
    }

    #[test]
    fn chosen_secrets_use_argon2id_with_policy_parameters() {
        let p = HashingPolicy::fast_for_tests();
        let s = Secret::new("correct horse battery");
        let h = hash_secret(&p, &s, SecretOrigin::Chosen, &rng()).unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{h}");
        assert_eq!(
            verify_secret(&p, "correct horse battery", &h),
            Verification::Match {
                needs_rehash: false
            }
        );
        assert_eq!(
            verify_secret(&p, "correct horse batterY", &h),
            Verification::Mismatch
        );
    }

    #[test]
    fn production_parameters_are_owasp() {
        let p = HashingPolicy::default();
        let h = hash_secret(
            &p,
            &Secret::new("correct horse battery"),
            SecretOrigin::Chosen,
            &rng(),
        )
        .unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert_eq!(
            verify_secret(&p, "correct horse battery", &h),
            Verification::Match {
                needs_rehash: false
            }
        );
    }

    #[test]
    fn weaker_hashes_ask_for_rehash() {
        let weak = HashingPolicy::fast_for_tests();
        let h = hash_secret(
            &weak,
            &Secret::new("correct horse battery"),
            SecretOrigin::Chosen,
            &rng(),
        )
        .unwrap();
        let stronger = HashingPolicy {
            m_kib: 128,
            t: 1,
            p: 1,
        };
        assert_eq!(
            verify_secret(&stronger, "correct horse battery", &h),
            Verification::Match { needs_rehash: true }
        );
        let more_t = HashingPolicy {
            m_kib: 64,
            t: 2,
            p: 1,
        };
        assert_eq!(
            verify_secret(&more_t, "correct horse battery", &h),
            Verification::Match { needs_rehash: true }
        );
        // A wrong secret never asks for anything.
        assert_eq!(
            verify_secret(&stronger, "wrong", &h),
            Verification::Mismatch
        );
        // Stronger-than-policy hashes are left alone.
        let strong_h = hash_secret(
            &stronger,
            &Secret::new("correct horse battery"),
            SecretOrigin::Chosen,
            &rng(),
        )
        .unwrap();
        assert_eq!(
            verify_secret(&weak, "correct horse battery", &strong_h),
            Verification::Match {
                needs_rehash: false
            }
        );
    }

    #[test]
    fn unknown_formats_are_reported_not_matched() {
        let p = HashingPolicy::fast_for_tests();
        for stored in [
            "",
            "plain",
            "$sha256$",
            "$sha256$!!!",
            "$argon2id$v=19$m=x$y$z",
            "$md5$abc",
        ] {
            assert_eq!(
                verify_secret(&p, "anything", stored),
                Verification::UnknownFormat,
                "{stored}"
            );
        }
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
            &rng(),
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("argon2 parameters refused"));
        assert!(p.validate().is_err());
        assert!(HashingPolicy::default().validate().is_ok());
    }
}

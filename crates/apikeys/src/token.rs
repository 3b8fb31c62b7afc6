//! REST tokens: the REST channel trades a key's Basic credentials for a
//! bearer token valid for a while (the policy's `token_lifetime`, by default
//! 1440 minutes, as the provider's REST API does).
//!
//! Rules:
//! - A token is opaque: [`TOKEN_PREFIX`], 40 random base-62 characters
//!   (about 238 bits) and a 6-character checksum, so that a mistyped or
//!   forged token is refused before any lookup, and secret scanners can
//!   find leaked ones.
//! - Only its SHA-256 digest is stored. Nothing the database or the server
//!   holds lets anyone make a token: it is random, not signed.
//! - A token dies, for every process at its next request, when it expires,
//!   when its key's credentials change (identifier or secret: the store
//!   deletes the key's tokens in the same transaction), or when its key is
//!   deleted. A change of the whitelist keeps it: the whitelist is checked
//!   again at every request.
//! - A key holds at most the policy's `max_tokens_per_key` live tokens
//!   (default 10): issuing one more removes the oldest. Expired tokens are
//!   removed when the key gets a new one, and by
//!   [`crate::Store::purge_expired_tokens`].
//! - Issuing a token is recorded in the audit trail; checking one costs one
//!   store lookup and one SHA-256, never argon2, so a REST client whose key
//!   has a chosen secret pays argon2 once per token.

use crate::credentials::{GeneratedShape, Secret, checksummed_shape, generate_checksummed};
use crate::id::KeyId;
use rand_core::CryptoRng;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// The prefix every REST token starts with.
pub const TOKEN_PREFIX: &str = "aktok";
/// Random base-62 characters in a token: 40 × log2(62) ≈ 238 bits.
const BODY_LEN: usize = 40;
/// Total length of a token.
pub const TOKEN_LEN: usize = TOKEN_PREFIX.len() + BODY_LEN + 6;

/// A token's stored form: the SHA-256 digest of its text.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenDigest(pub [u8; 32]);

impl TokenDigest {
    /// The digest of a presented token.
    pub fn of(token: &str) -> Self {
        TokenDigest(Sha256::digest(token.as_bytes()).into())
    }
}

impl std::fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenDigest([hidden])")
    }
}

/// A token as a store keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRecord {
    /// The digest of the token.
    pub digest: TokenDigest,
    /// The key it stands for.
    pub key_id: KeyId,
    /// When it was issued.
    pub issued_at: OffsetDateTime,
    /// The first instant at which it no longer works.
    pub expires_at: OffsetDateTime,
}

/// A token just issued: the token itself (shown this once) and when it
/// expires.
#[derive(Debug)]
pub struct IssuedToken {
    /// The token, to hand to the client now: only its digest is kept.
    pub token: Secret,
    /// The first instant at which it no longer works.
    pub expires_at: OffsetDateTime,
}

/// A fresh random token.
pub fn generate_token(rng: &mut (impl CryptoRng + ?Sized)) -> Secret {
    generate_checksummed(rng, TOKEN_PREFIX, BODY_LEN)
}

/// Whether `text` has the shape of a token, checksum included.
pub fn is_token_shaped(text: &str) -> bool {
    checksummed_shape(text, TOKEN_PREFIX, TOKEN_LEN) == GeneratedShape::Valid
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn tokens_are_prefixed_checksummed_and_random() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let t = generate_token(&mut rng);
        let text = t.expose_secret();
        assert_eq!(text.len(), TOKEN_LEN);
        assert!(text.starts_with("aktok"));
        assert!(is_token_shaped(text));
        let mut typo = text.as_bytes().to_vec();
        typo[20] = if typo[20] == b'a' { b'b' } else { b'a' };
        assert!(!is_token_shaped(std::str::from_utf8(&typo).unwrap()));
        assert_ne!(generate_token(&mut rng), t);
        // A generated secret is not a token, nor the other way round.
        let secret = crate::credentials::generate_secret(&mut rng);
        assert!(!is_token_shaped(secret.expose_secret()));
        assert_eq!(
            crate::credentials::generated_shape(text),
            GeneratedShape::Other
        );
    }

    #[test]
    fn digests_hide_and_distinguish() {
        assert_eq!(TokenDigest::of("a"), TokenDigest::of("a"));
        assert_ne!(TokenDigest::of("a"), TokenDigest::of("b"));
        assert_eq!(
            format!("{:?}", TokenDigest::of("a")),
            "TokenDigest([hidden])"
        );
    }
}

//! The verified-secret cache: after a chosen (argon2) secret passes once, the
//! next checks of the same key with the same secret cost one keyed hash
//! instead of argon2.
//!
//! What keeps it safe:
//! - It never answers without the store: `authenticate` looks the key up on
//!   every request, and a cache entry only stands for "this secret matched
//!   this stored hash at this version of this key". A rotation, a whitelist
//!   change or a renaming bumps the version; an upgrade changes the hash; a
//!   deletion makes the lookup fail; a grace expiry is read from the fresh
//!   record. Each takes effect on the very next request, in every process.
//! - A miss (including any wrong secret) falls through to argon2, so the
//!   cache is no faster oracle for guessing.
//! - Entries hold an HMAC-SHA-256 tag of the secret under a random key drawn
//!   per process and never stored, not the secret.
//! - It is bounded: at capacity an arbitrary entry makes room.

use crate::auth::SecretSlot as Slot;
use crate::hashing::SecretHash;
use crate::id::KeyId;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

struct Entry {
    version: u64,
    stored_hash: Box<str>,
    tag: [u8; 32],
}

pub(crate) struct VerifiedCache {
    /// Keyed once; each tag clones this state, saving the key's blocks.
    mac: HmacSha256,
    capacity: usize,
    entries: RwLock<HashMap<(KeyId, Slot), Entry>>,
}

impl VerifiedCache {
    pub(crate) fn new(key: &[u8; 32], capacity: usize) -> Option<Self> {
        let mac = HmacSha256::new_from_slice(key).ok()?;
        Some(VerifiedCache {
            mac,
            capacity,
            entries: RwLock::new(HashMap::new()),
        })
    }

    fn tag(&self, secret: &str) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(secret.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Whether `secret` was verified against exactly this stored hash at
    /// exactly this version of the key.
    pub(crate) fn vouches(
        &self,
        id: KeyId,
        slot: Slot,
        version: u64,
        stored_hash: &SecretHash,
        secret: &str,
    ) -> bool {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        let Some(e) = entries.get(&(id, slot)) else {
            return false;
        };
        if e.version != version || *e.stored_hash != *stored_hash.as_str() {
            return false;
        }
        let tag = self.tag(secret);
        e.tag.ct_eq(&tag).into()
    }

    /// Records that `secret` matched `stored_hash` at `version`.
    pub(crate) fn remember(
        &self,
        id: KeyId,
        slot: Slot,
        version: u64,
        stored_hash: &SecretHash,
        secret: &str,
    ) {
        if self.capacity == 0 {
            return;
        }
        let entry = Entry {
            version,
            stored_hash: stored_hash.as_str().into(),
            tag: self.tag(secret),
        };
        // Poisoning cannot leave a half-written map: inserts are single calls.
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.capacity
            && !entries.contains_key(&(id, slot))
            && let Some(victim) = entries.keys().next().copied()
        {
            entries.remove(&victim);
        }
        entries.insert((id, slot), entry);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> KeyId {
        KeyId::from_bytes([n; 16])
    }

    /// Two distinct readable hashes.
    fn hashes() -> (SecretHash, SecretHash) {
        let p = crate::HashingPolicy::fast_for_tests();
        let h = |s: &str| {
            crate::hashing::hash_secret(
                &p,
                &crate::Secret::new(s),
                crate::hashing::SecretOrigin::Chosen,
                &[7; crate::hashing::SALT_LEN],
            )
            .unwrap()
        };
        (h("first-secret-1"), h("second-secret-2"))
    }

    #[test]
    fn vouches_only_for_the_same_secret_hash_and_version() {
        let c = VerifiedCache::new(&[7; 32], 10).unwrap();
        let (h1, h2) = hashes();
        c.remember(id(1), Slot::Current, 3, &h1, "s3cret-secret");
        assert!(c.vouches(id(1), Slot::Current, 3, &h1, "s3cret-secret"));
        assert!(!c.vouches(id(1), Slot::Current, 3, &h1, "s3cret-secreT"));
        assert!(!c.vouches(id(1), Slot::Current, 4, &h1, "s3cret-secret"));
        assert!(!c.vouches(id(1), Slot::Current, 3, &h2, "s3cret-secret"));
        assert!(!c.vouches(id(1), Slot::Previous, 3, &h1, "s3cret-secret"));
        assert!(!c.vouches(id(2), Slot::Current, 3, &h1, "s3cret-secret"));
    }

    #[test]
    fn tags_depend_on_the_process_key() {
        let a = VerifiedCache::new(&[1; 32], 10).unwrap();
        let b = VerifiedCache::new(&[2; 32], 10).unwrap();
        assert_ne!(a.tag("same secret"), b.tag("same secret"));
        assert_ne!(a.tag("same secret"), a.tag("other secret"));
    }

    #[test]
    fn bounded_and_switchable_off() {
        let c = VerifiedCache::new(&[7; 32], 3).unwrap();
        let (h, _) = hashes();
        for n in 0..10 {
            c.remember(id(n), Slot::Current, 1, &h, "secret-secret");
            assert!(c.len() <= 3);
            assert!(
                c.vouches(id(n), Slot::Current, 1, &h, "secret-secret"),
                "the newest entry stays"
            );
        }
        let off = VerifiedCache::new(&[7; 32], 0).unwrap();
        off.remember(id(1), Slot::Current, 1, &h, "secret-secret");
        assert!(!off.vouches(id(1), Slot::Current, 1, &h, "secret-secret"));
    }
}

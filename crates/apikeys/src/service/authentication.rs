//! Authentication: the hot path.
//!
//! Rules (the answers are described in [`crate::auth`]):
//! - A secret of the generated shape with a wrong checksum, an identifier
//!   or a secret longer than any can be, is refused before any lookup.
//! - A generated secret's hash is SHA-256: its check is one store lookup and
//!   one digest. A chosen secret's is argon2, unless the verified-secret
//!   cache vouches for it (see `cache.rs`).
//! - An unknown identifier with a secret not of the generated shape costs an
//!   argon2 run against a dummy hash, as a wrong chosen secret does, so that
//!   timing does not tell which identifiers exist.
//! - The channel is checked after the secret, so that another channel's key
//!   costs what a wrong secret costs; the whitelist only once the
//!   credentials are right.
//! - After a successful argon2 check against a hash weaker than the policy,
//!   the hash is replaced (best effort: a failure leaves the old, still
//!   valid hash and is tried again next time).
//!
//! A check runs in two steps, so that an adapter can run the cheap part
//! where it likes (an event loop) and argon2 where blocking is acceptable,
//! with a bound on how many run at once: [`ApiKeys::begin_authentication`]
//! never runs argon2 and answers [`Check::NeedsArgon2`] when the verdict
//! needs it; [`ApiKeys::finish_authentication`] runs it, without a second
//! lookup. [`ApiKeys::authenticate`] does both.

use super::ApiKeys;
use crate::auth::{AuthError, Authenticated, Refusal, SecretSlot};
use crate::channel::Channel;
use crate::credentials::{
    GENERATED_SECRET_LEN, GeneratedShape, MAX_IDENTIFIER_LEN, MAX_SECRET_LEN, Secret,
    generated_shape,
};
use crate::hashing::{
    Cost, HashingPolicy, Rehash, SecretHash, SecretOrigin, Verification, hash_secret, random_salt,
    verify_secret,
};
use crate::key::KeyRecord;
use std::net::IpAddr;
use std::sync::atomic::Ordering;

/// The longest secret that can match anything: longer ones are refused
/// before any lookup, and never fed to argon2.
const LONGEST_SECRET: usize = if MAX_SECRET_LEN > GENERATED_SECRET_LEN {
    MAX_SECRET_LEN
} else {
    GENERATED_SECRET_LEN
};

/// The first step of a check: a verdict, or the argon2 work it still needs.
#[derive(Debug)]
#[must_use]
pub enum Check {
    /// The verdict, reached without argon2.
    Done(Result<Authenticated, AuthError>),
    /// The verdict needs argon2: pass this to
    /// [`ApiKeys::finish_authentication`]. (Boxed: the verdict, the common
    /// case, stays small.)
    NeedsArgon2(Box<PendingCheck>),
}

/// A check waiting for its argon2 run. It holds the presented secret (in a
/// [`Secret`], wiped on drop) and the key it was looked up against, so
/// finishing it needs no second lookup.
#[derive(Debug)]
pub struct PendingCheck {
    channel: Channel,
    client: IpAddr,
    secret: Secret,
    /// `None` for an unknown identifier: the run is against the dummy hash.
    key: Option<KeyRecord>,
}

/// Whether a check may run argon2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Answer only what needs no argon2.
    WithoutArgon2,
    /// Run argon2 where the verdict needs it.
    WithArgon2,
}

/// What the secrets of a key said: which one matched, or why none did.
type Verdict = Result<(SecretSlot, Rehash), Refusal>;

impl ApiKeys {
    /// Checks credentials presented on `channel` from `client`, running
    /// argon2 if the verdict needs it.
    ///
    /// One uniform refusal for an unknown identifier, a wrong secret, a
    /// deleted key, another channel's key or an expired grace secret
    /// ([`AuthError::InvalidCredentials`], whose [`AuthError::reason`] tells
    /// the embedder which); [`AuthError::AddressNotAllowed`] only when the
    /// credentials are right.
    pub fn authenticate(
        &self,
        channel: Channel,
        identifier: &str,
        secret: &str,
        client: IpAddr,
    ) -> Result<Authenticated, AuthError> {
        match self.begin_authentication(channel, identifier, secret, client) {
            Check::Done(outcome) => outcome,
            Check::NeedsArgon2(pending) => self.finish_authentication(pending),
        }
    }

    /// The first step of [`ApiKeys::authenticate`]: everything that needs no
    /// argon2. It costs one store lookup and a SHA-256 (or a keyed hash of
    /// the verified-secret cache), so it may run on the event loop of a
    /// local store.
    pub fn begin_authentication(
        &self,
        channel: Channel,
        identifier: &str,
        secret: &str,
        client: IpAddr,
    ) -> Check {
        let shape = generated_shape(secret);
        if shape == GeneratedShape::BadChecksum || secret.len() > LONGEST_SECRET {
            return Check::Done(Err(AuthError::InvalidCredentials(Refusal::MalformedSecret)));
        }
        if identifier.len() > MAX_IDENTIFIER_LEN {
            return Check::Done(Err(AuthError::InvalidCredentials(
                Refusal::UnknownIdentifier,
            )));
        }
        let key = match self.store.key_by_identifier(identifier) {
            Ok(key) => key,
            Err(e) => return Check::Done(Err(AuthError::Unavailable(e))),
        };
        let Some(key) = key else {
            return match shape {
                // Same cost as a wrong chosen secret: the dummy argon2 run.
                GeneratedShape::Other => Check::NeedsArgon2(Box::new(PendingCheck {
                    channel,
                    client,
                    secret: Secret::new(secret),
                    key: None,
                })),
                _ => Check::Done(Err(AuthError::InvalidCredentials(
                    Refusal::UnknownIdentifier,
                ))),
            };
        };
        match self.judge(&key, secret, Mode::WithoutArgon2) {
            Some(verdict) => Check::Done(self.conclude(&key, channel, secret, client, verdict)),
            None => Check::NeedsArgon2(Box::new(PendingCheck {
                channel,
                client,
                secret: Secret::new(secret),
                key: Some(key),
            })),
        }
    }

    /// The second step of [`ApiKeys::authenticate`]: the argon2 run that
    /// [`ApiKeys::begin_authentication`] left. Blocks for as long as argon2
    /// takes (tens of milliseconds under the production policy).
    pub fn finish_authentication(
        &self,
        pending: Box<PendingCheck>,
    ) -> Result<Authenticated, AuthError> {
        let PendingCheck {
            channel,
            client,
            secret,
            key,
        } = *pending;
        let secret = secret.expose_secret();
        let Some(key) = key else {
            let _ = verify_secret(&self.policy.hashing, secret, &self.dummy_hash);
            return Err(AuthError::InvalidCredentials(Refusal::UnknownIdentifier));
        };
        // With argon2 allowed, every check reaches a verdict.
        let verdict = self
            .judge(&key, secret, Mode::WithArgon2)
            .unwrap_or(Err(Refusal::WrongSecret));
        self.conclude(&key, channel, secret, client, verdict)
    }

    /// Checks `secret` against the key's current secret, then its previous
    /// one during a grace period. `None` if that needs argon2 and `mode`
    /// forbids it.
    fn judge(&self, key: &KeyRecord, secret: &str, mode: Mode) -> Option<Verdict> {
        let current = self.verify(key, SecretSlot::Current, &key.secret_hash, secret, mode)?;
        if let Verification::Match(rehash) = current {
            return Some(Ok((SecretSlot::Current, rehash)));
        }
        let Some(previous) = &key.previous_secret else {
            return Some(Err(Refusal::WrongSecret));
        };
        Some(
            match self.verify(key, SecretSlot::Previous, &previous.hash, secret, mode)? {
                // The clock is read only here, where the answer depends on it.
                Verification::Match(_) if self.now() < previous.expires_at => {
                    Ok((SecretSlot::Previous, Rehash::NotNeeded))
                }
                Verification::Match(_) => Err(Refusal::GraceExpired),
                Verification::Mismatch => Err(Refusal::WrongSecret),
            },
        )
    }

    /// The answer, once the secrets have spoken: the channel, then the
    /// whitelist, then a rehash if the match asked for one.
    fn conclude(
        &self,
        key: &KeyRecord,
        channel: Channel,
        secret: &str,
        client: IpAddr,
        verdict: Verdict,
    ) -> Result<Authenticated, AuthError> {
        // Checked after the secret, so that another channel's key costs the
        // same as a wrong secret.
        if key.channel != channel {
            return Err(AuthError::InvalidCredentials(Refusal::WrongChannel {
                key_channel: key.channel,
            }));
        }
        let (matched, rehash) = verdict.map_err(AuthError::InvalidCredentials)?;
        if !key.whitelist.allows(client) {
            return Err(AuthError::AddressNotAllowed {
                key_id: key.id,
                client,
            });
        }
        // Only an argon2 match asks for a rehash, and rehashing is argon2:
        // this happens only in the second step.
        if rehash == Rehash::Needed {
            self.upgrade_hash(key, secret);
        }
        Ok(Authenticated {
            account_id: key.account_id,
            key_id: key.id,
            channel,
            matched,
        })
    }

    /// Checks `secret` against one of the key's stored hashes, through the
    /// verified-secret cache when the hash is an argon2 one. `None` if that
    /// needs argon2 and `mode` forbids it.
    fn verify(
        &self,
        key: &KeyRecord,
        slot: SecretSlot,
        stored: &SecretHash,
        secret: &str,
        mode: Mode,
    ) -> Option<Verification> {
        let hashing: &HashingPolicy = &self.policy.hashing;
        if stored.cost() == Cost::Fast {
            return Some(verify_secret(hashing, secret, stored));
        }
        if let Some(cache) = &self.cache
            && cache.vouches(key.id, slot, key.version, stored, secret)
        {
            self.cached_checks.fetch_add(1, Ordering::Relaxed);
            return Some(Verification::Match(Rehash::NotNeeded));
        }
        if mode == Mode::WithoutArgon2 {
            return None;
        }
        self.slow_checks.fetch_add(1, Ordering::Relaxed);
        let verdict = verify_secret(hashing, secret, stored);
        if let Some(cache) = &self.cache
            && verdict == Verification::Match(Rehash::NotNeeded)
        {
            cache.remember(key.id, slot, key.version, stored, secret);
        }
        Some(verdict)
    }

    /// Best effort: a failed upgrade leaves the old, still valid hash, and is
    /// tried again at the next successful check.
    fn upgrade_hash(&self, key: &KeyRecord, secret: &str) {
        let secret = Secret::new(secret);
        let salt = self.with_rng(|r| random_salt(r));
        if let Ok(upgraded) =
            hash_secret(&self.policy.hashing, &secret, SecretOrigin::Chosen, &salt)
        {
            let _ = self
                .store
                .upgrade_secret_hash(key.id, &key.secret_hash, &upgraded);
        }
    }
}

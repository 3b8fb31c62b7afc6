//! Authentication: the hot path.
//!
//! Rules (the answers are described in [`crate::auth`]):
//! - An attempt from an address that failed too often is refused first,
//!   before any lookup (see [`crate::throttle`]).
//! - A secret of the generated shape with a wrong checksum, an identifier
//!   or a secret longer than any can be, is refused before any lookup.
//! - **The cost of a refusal depends only on the presented secret's
//!   shape**, never on whether the identifier exists, what kind of secret
//!   its key holds, or its channel:
//!   - a secret of the generated shape never meets argon2: it is checked
//!     against the key's SHA-256 hashes only (a chosen secret can never have
//!     that shape, so it could not match an argon2 hash);
//!   - any other secret costs exactly one argon2 verification: against the
//!     key's argon2 hash, or, when there is none to check (an unknown
//!     identifier, a key whose secret was generated), against a dummy hash.
//!     The one exception: a key in a grace period whose two secrets are both
//!     argon2 hashes costs two when the first does not match.
//! - The verified-secret cache (see `cache.rs`) is asked about both of
//!   a key's secrets before any argon2 runs, so a client still using its
//!   previous secret during a grace period pays argon2 once, not on every
//!   request.
//! - The channel is checked after the secret, so that another channel's key
//!   costs what a wrong secret costs; the whitelist only once the
//!   credentials are right.
//! - A check that ran argon2 reads the key again before it answers yes, and
//!   refuses if the key changed or went away meanwhile: a deletion or a
//!   rotation that returned beats a check that started before it.
//! - After a successful argon2 check against a hash weaker than the policy,
//!   the hash is replaced (best effort: a failure leaves the old, still
//!   valid hash and is tried again next time).
//!
//! A check runs in two steps, so that an adapter can run the cheap part
//! where it likes (an event loop) and argon2 where blocking is acceptable,
//! with a bound on how many run at once: [`ApiKeys::begin_authentication`]
//! never runs argon2 and answers [`Check::NeedsArgon2`] when the verdict
//! needs it; [`ApiKeys::finish_authentication`] runs it, without a second
//! lookup of the identifier. [`ApiKeys::authenticate`] does both.

use super::ApiKeys;
use crate::auth::{AuthError, Authenticated, Refusal, SecretSlot};
use crate::channel::Channel;
use crate::credentials::{
    GENERATED_SECRET_LEN, GeneratedShape, MAX_IDENTIFIER_LEN, MAX_SECRET_LEN, Secret,
    generated_shape,
};
use crate::hashing::{
    Cost, Rehash, SecretHash, SecretOrigin, Verification, hash_secret, random_salt, verify_secret,
};
use crate::key::KeyRecord;
use crate::lifecycle::{self, Denial, HeldKey};
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

/// A check waiting for its argon2 run. It holds the presented credentials
/// (the secret in a [`Secret`], wiped on drop) and the key they were looked
/// up against, so finishing it needs no second lookup.
#[derive(Debug)]
pub struct PendingCheck {
    channel: Channel,
    client: IpAddr,
    identifier: String,
    secret: Secret,
    /// `None` for an unknown identifier: the run is against the dummy hash.
    key: Option<HeldKey>,
}

/// What the secrets of a key said: which one matched, or why none did.
type Verdict = Result<(SecretSlot, Rehash), Refusal>;

/// What a check can tell without argon2.
enum Fast {
    /// The verdict.
    Verdict(Verdict),
    /// Argon2 must run: to check the secret, or to cost what it costs.
    NeedsArgon2,
}

impl ApiKeys {
    /// Checks credentials presented on `channel` from `client`, running
    /// argon2 if the verdict needs it.
    ///
    /// One uniform refusal for an unknown identifier, a wrong secret, a
    /// deleted key, another channel's key or an expired grace secret
    /// ([`AuthError::InvalidCredentials`], whose [`AuthError::reason`] tells
    /// the embedder which); [`AuthError::AddressNotAllowed`] only when the
    /// credentials are right; [`AuthError::Throttled`] when the address
    /// failed too often.
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
    /// argon2. It costs at most one store lookup and a SHA-256 (or a keyed
    /// hash of the verified-secret cache), so it may run on the event loop
    /// of a local store.
    pub fn begin_authentication(
        &self,
        channel: Channel,
        identifier: &str,
        secret: &str,
        client: IpAddr,
    ) -> Check {
        if !self.throttle.is_idle()
            && let Some(retry_after) = self.throttle.retry_after(identifier, client, self.now())
        {
            self.stats.throttled.fetch_add(1, Ordering::Relaxed);
            return Check::Done(Err(AuthError::Throttled { retry_after }));
        }
        let shape = generated_shape(secret);
        if shape == GeneratedShape::BadChecksum || secret.len() > LONGEST_SECRET {
            return Check::Done(self.refuse(identifier, client, Refusal::MalformedSecret));
        }
        if identifier.len() > MAX_IDENTIFIER_LEN {
            return Check::Done(self.refuse(identifier, client, Refusal::UnknownIdentifier));
        }
        let key = match self.store.key_for_authentication(identifier) {
            Ok(key) => key,
            Err(e) => return Check::Done(Err(AuthError::Unavailable(e))),
        };
        let pending = |key| {
            Check::NeedsArgon2(Box::new(PendingCheck {
                channel,
                client,
                identifier: identifier.to_owned(),
                secret: Secret::new(secret),
                key,
            }))
        };
        let Some(key) = key else {
            return match shape {
                // The dummy argon2 run: what a wrong chosen secret costs.
                GeneratedShape::Other => pending(None),
                _ => Check::Done(self.refuse(identifier, client, Refusal::UnknownIdentifier)),
            };
        };
        match self.judge_fast(&key.key, secret, shape) {
            Fast::Verdict(verdict) => {
                Check::Done(self.conclude(&key, channel, identifier, secret, client, verdict))
            }
            Fast::NeedsArgon2 => pending(Some(key)),
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
            identifier,
            secret,
            key,
        } = *pending;
        let secret = secret.expose_secret();
        let Some(key) = key else {
            self.dummy_argon2(secret);
            return self.refuse(&identifier, client, Refusal::UnknownIdentifier);
        };
        let verdict = self.judge_argon2(&key.key, secret);
        if verdict.is_ok() {
            // Argon2 took a while: answer for the key as it is now.
            match self.store.key(key.key.id) {
                Ok(Some(now)) if now.version == key.key.version => {}
                Ok(_) => return self.refuse(&identifier, client, Refusal::ChangedDuringCheck),
                Err(e) => return Err(AuthError::Unavailable(e)),
            }
        }
        self.conclude(&key, channel, &identifier, secret, client, verdict)
    }

    /// What the key's secrets say without argon2: SHA-256 hashes are
    /// checked, argon2 hashes only asked of the verified-secret cache (both
    /// before any argon2 runs).
    fn judge_fast(&self, key: &KeyRecord, secret: &str, shape: GeneratedShape) -> Fast {
        for (slot, hash) in slots(key) {
            let verification = match hash.cost() {
                Cost::Fast => verify_secret(&self.policy.hashing, secret, hash),
                // A generated-shape secret never meets argon2: no chosen
                // secret has that shape.
                Cost::Argon2 if shape != GeneratedShape::Other => continue,
                Cost::Argon2 => match &self.cache {
                    Some(cache) if cache.vouches(key.id, slot, key.version, hash, secret) => {
                        self.stats.cached.fetch_add(1, Ordering::Relaxed);
                        Verification::Match(Rehash::NotNeeded)
                    }
                    _ => continue,
                },
            };
            if let Verification::Match(rehash) = verification {
                return match self.in_force(key, slot, rehash) {
                    // A refusal of a non-generated shape must cost its one
                    // argon2 run: let the second step answer it.
                    Err(_) if shape == GeneratedShape::Other => Fast::NeedsArgon2,
                    verdict => Fast::Verdict(verdict),
                };
            }
        }
        match shape {
            GeneratedShape::Other => Fast::NeedsArgon2,
            _ => Fast::Verdict(Err(Refusal::WrongSecret)),
        }
    }

    /// The argon2 step: each argon2 hash of the key in turn (SHA-256 ones
    /// were checked already), or the dummy if there is none, so that the
    /// refusal costs what it costs everywhere.
    fn judge_argon2(&self, key: &KeyRecord, secret: &str) -> Verdict {
        let mut ran = false;
        for (slot, hash) in slots(key).filter(|(_, h)| h.cost() == Cost::Argon2) {
            ran = true;
            self.stats.argon2.fetch_add(1, Ordering::Relaxed);
            let verification = verify_secret(&self.policy.hashing, secret, hash);
            if let Verification::Match(rehash) = verification {
                if let Some(cache) = &self.cache
                    && rehash == Rehash::NotNeeded
                {
                    cache.remember(key.id, slot, key.version, hash, secret);
                }
                return self.in_force(key, slot, rehash);
            }
        }
        if !ran {
            self.dummy_argon2(secret);
        }
        Err(Refusal::WrongSecret)
    }

    /// A match on `slot`, if that secret is still in force.
    fn in_force(&self, key: &KeyRecord, slot: SecretSlot, rehash: Rehash) -> Verdict {
        match (slot, &key.previous_secret) {
            // Tokens are not checked here (see `tokens.rs`).
            (SecretSlot::Current | SecretSlot::Token, _) => Ok((slot, rehash)),
            // The clock is read only here, where the answer depends on it.
            (SecretSlot::Previous, Some(p)) if self.now() < p.expires_at => {
                Ok((SecretSlot::Previous, Rehash::NotNeeded))
            }
            (SecretSlot::Previous, _) => Err(Refusal::GraceExpired),
        }
    }

    fn dummy_argon2(&self, secret: &str) {
        self.stats.argon2.fetch_add(1, Ordering::Relaxed);
        let _ = verify_secret(&self.policy.hashing, secret, &self.dummy_hash);
    }

    /// The answer, once the secrets have spoken: the channel, then the
    /// key's lifecycle and its holders' rules (see [`crate::lifecycle`]),
    /// then a rehash if the match asked for one, and the use noted.
    fn conclude(
        &self,
        held: &HeldKey,
        channel: Channel,
        identifier: &str,
        secret: &str,
        client: IpAddr,
        verdict: Verdict,
    ) -> Result<Authenticated, AuthError> {
        let key = &held.key;
        // Checked after the secret, so that another channel's key costs the
        // same as a wrong secret.
        if key.channel != channel {
            return self.refuse(
                identifier,
                client,
                Refusal::WrongChannel {
                    key_channel: key.channel,
                },
            );
        }
        let (matched, rehash) = match verdict {
            Ok(v) => v,
            Err(refusal) => return self.refuse(identifier, client, refusal),
        };
        let now = self.now();
        match lifecycle::admit(key, &held.holders, now, client) {
            Ok(()) => {}
            Err(Denial::Refused(refusal)) => return self.refuse(identifier, client, refusal),
            Err(Denial::Address(list)) => {
                self.count_failure(identifier, client);
                return Err(AuthError::AddressNotAllowed {
                    key_id: key.id,
                    client,
                    list,
                });
            }
        }
        // Only an argon2 match asks for a rehash, and rehashing is argon2:
        // this happens only in the second step.
        if rehash == Rehash::Needed {
            self.upgrade_hash(key, secret);
        }
        self.throttle.succeeded(identifier, client);
        self.stats.succeeded.fetch_add(1, Ordering::Relaxed);
        self.note_use(key, matched, client, now);
        Ok(Authenticated {
            account_id: key.account_id,
            key_id: key.id,
            channel,
            matched,
            key_version: key.version,
        })
    }

    /// An invalid-credentials refusal, counted against the client.
    pub(super) fn refuse(
        &self,
        identifier: &str,
        client: IpAddr,
        refusal: Refusal,
    ) -> Result<Authenticated, AuthError> {
        self.count_failure(identifier, client);
        Err(AuthError::InvalidCredentials(refusal))
    }

    pub(super) fn count_failure(&self, identifier: &str, client: IpAddr) {
        self.stats.refused.fetch_add(1, Ordering::Relaxed);
        self.throttle.failed(identifier, client, self.now());
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

/// The key's secrets in the order they are checked: current, then previous.
fn slots(key: &KeyRecord) -> impl Iterator<Item = (SecretSlot, &SecretHash)> {
    std::iter::once((SecretSlot::Current, &key.secret_hash)).chain(
        key.previous_secret
            .as_ref()
            .map(|p| (SecretSlot::Previous, &p.hash)),
    )
}

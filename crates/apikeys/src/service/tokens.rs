//! REST tokens: issuing them for credentials that authenticated, and
//! checking them. The rules are in [`crate::token`].

use super::ApiKeys;
use crate::Actor;
use crate::audit::{AuditEvent, AuditKind};
use crate::auth::{AuthError, Authenticated, Refusal, SecretSlot};
use crate::channel::Channel;
use crate::error::Error;
use crate::lifecycle::{self, Denial};
use crate::store::StoreError;
use crate::token::{IssuedToken, TokenDigest, TokenRecord, generate_token, is_token_shaped};
use std::net::IpAddr;
use std::sync::atomic::Ordering;

/// What the throttle counts bearer-token failures under: tokens have no
/// identifier, so an address's wrong tokens share one count.
const TOKEN_IDENTIFIER: &str = "";

impl ApiKeys {
    /// Issues a REST token for `who`, just authenticated on the REST
    /// channel with its key's credentials. The token is bound to the key's
    /// credentials as they were checked: if they changed since, the issue
    /// is refused ([`Error::ConcurrentChange`]), and when they change later
    /// the token dies. The token comes back this once.
    pub fn issue_token(&self, who: &Authenticated) -> Result<IssuedToken, Error> {
        if who.channel != Channel::Rest {
            return Err(Error::TokenChannel(who.channel));
        }
        let now = self.now();
        let expires_at = now
            .checked_add(self.policy.token_lifetime)
            .ok_or(Error::Store(StoreError::backend(
                crate::store::Unstorable::Instant(now),
            )))?;
        let token = self.with_rng(|r| generate_token(r));
        let record = TokenRecord {
            digest: TokenDigest::of(token.expose_secret()),
            key_id: who.key_id,
            issued_at: now,
            expires_at,
        };
        let event = AuditEvent {
            account_id: who.account_id,
            key_id: Some(who.key_id),
            channel: Some(Channel::Rest),
            at: now,
            kind: AuditKind::TokenIssued,
            actor: Actor::Account(who.account_id),
            detail: format!("token issued, valid until {}", super::rfc3339(expires_at)),
        };
        self.store
            .insert_token(
                &record,
                who.key_version,
                self.policy.max_tokens_per_key,
                now,
                &event,
            )
            .map_err(|e| match e {
                StoreError::Conflict { key, .. } => Error::ConcurrentChange(key),
                StoreError::NotFound(_) => Error::KeyNotFound(who.key_id),
                e => Error::Store(e),
            })?;
        Ok(IssuedToken { token, expires_at })
    }

    /// Checks a REST bearer token presented from `client`: one store lookup
    /// and one SHA-256, never argon2. Refusals are the uniform "invalid
    /// credentials" (with [`Refusal::UnknownToken`] or
    /// [`Refusal::TokenExpired`] for the embedder), or "address not allowed"
    /// when the key's whitelist refuses the client; failures count for the
    /// throttle like any other.
    pub fn authenticate_token(
        &self,
        token: &str,
        client: IpAddr,
    ) -> Result<Authenticated, AuthError> {
        if !self.throttle.is_idle()
            && let Some(retry_after) =
                self.throttle
                    .retry_after(TOKEN_IDENTIFIER, client, self.now())
        {
            self.stats.throttled.fetch_add(1, Ordering::Relaxed);
            return Err(AuthError::Throttled { retry_after });
        }
        if !is_token_shaped(token) {
            return self.refuse(TOKEN_IDENTIFIER, client, Refusal::MalformedSecret);
        }
        let found = match self.store.token_for_authentication(&TokenDigest::of(token)) {
            Ok(found) => found,
            Err(e) => return Err(AuthError::Unavailable(e)),
        };
        let Some((record, held)) = found else {
            return self.refuse(TOKEN_IDENTIFIER, client, Refusal::UnknownToken);
        };
        let key = &held.key;
        let now = self.now();
        if record.expires_at <= now {
            return self.refuse(TOKEN_IDENTIFIER, client, Refusal::TokenExpired);
        }
        if key.channel != Channel::Rest {
            return self.refuse(
                TOKEN_IDENTIFIER,
                client,
                Refusal::WrongChannel {
                    key_channel: key.channel,
                },
            );
        }
        match lifecycle::admit(key, &held.holders, now, client) {
            Ok(()) => {}
            Err(Denial::Refused(refusal)) => {
                return self.refuse(TOKEN_IDENTIFIER, client, refusal);
            }
            Err(Denial::Address(list)) => {
                self.count_failure(TOKEN_IDENTIFIER, client);
                return Err(AuthError::AddressNotAllowed {
                    key_id: key.id,
                    client,
                    list,
                });
            }
        }
        self.stats.succeeded.fetch_add(1, Ordering::Relaxed);
        self.note_use(key, SecretSlot::Token, client, now);
        Ok(Authenticated {
            account_id: key.account_id,
            key_id: key.id,
            channel: Channel::Rest,
            matched: SecretSlot::Token,
            key_version: key.version,
        })
    }

    /// Deletes every expired token (a periodic chore for a server; issuing a
    /// token also clears its key's expired ones); returns how many went.
    pub fn purge_expired_tokens(&self) -> Result<u64, Error> {
        Ok(self.store.purge_expired_tokens(self.now())?)
    }
}

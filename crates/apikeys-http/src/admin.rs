//! The admin token that guards the management API.
//!
//! Decisions:
//! - Only a SHA-256 digest of the token is kept: in memory, and, where a
//!   server keeps a generated token between starts (as `apikeys-server`
//!   does), as its [`AdminToken::stored_form`]. Presented tokens are hashed
//!   and compared in constant time. A generated token has about 190 random
//!   bits, so a fast hash is as good as argon2 against a leaked digest, and
//!   checking it costs a microsecond instead of argon2's tens of
//!   milliseconds and megabytes on every management request.
//! - A chosen token (`AdminToken::from_chosen`) must have 32 to 256
//!   printable ASCII characters: long enough that guessing it online is
//!   hopeless, and fit to travel in a header.
//! - Wrong tokens are throttled per client address, by the same rules as
//!   authentication's per-address count (with the per-identifier allowance):
//!   past it, 429 with `Retry-After`, and the token is not even checked.
//!   Each wrong token is logged with the peer's address, at most a few lines
//!   a second.
//! - Where the digest is kept is not the router's business: it takes an
//!   `AdminToken`, however it was obtained.

use crate::error::ApiError;
use crate::error::ErrorCode;
use crate::state::AppState;
use apikeys::{AccountId, Actor, Secret};
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use rand_core::CryptoRng;
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

/// The header naming the account a management request acts as.
pub const ACTING_ACCOUNT_HEADER: &str = "x-acting-account";

const STORED_PREFIX: &str = "sha256$";

/// The admin token, as its SHA-256 digest.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken {
    digest: [u8; 32],
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken([hidden])")
    }
}

/// A chosen admin token that breaks the rules, or a stored form that cannot
/// be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminTokenError {
    /// A chosen token is too short or too long.
    #[error("the admin token is {len} characters long: it must have 32 to 256")]
    Length {
        /// Its length in characters.
        len: usize,
    },
    /// A chosen token has a character that cannot travel in a header.
    #[error(
        "the admin token has a character outside printable ASCII at position {position}: only 0x21 to 0x7E are allowed"
    )]
    Character {
        /// Its position, counted in characters from 0.
        position: usize,
    },
    /// A stored form that [`AdminToken::stored_form`] did not write.
    #[error("the stored admin token is unreadable: expected `sha256$` and 64 hex digits")]
    CorruptStored,
}

impl AdminToken {
    /// The token chosen by the operator (from `APIKEYS_ADMIN_TOKEN`): 32 to
    /// 256 printable ASCII characters.
    pub fn from_chosen(token: &str) -> Result<Self, AdminTokenError> {
        let len = token.chars().count();
        if !(32..=256).contains(&len) {
            return Err(AdminTokenError::Length { len });
        }
        if let Some(position) = token.chars().position(|c| !('\x21'..='\x7e').contains(&c)) {
            return Err(AdminTokenError::Character { position });
        }
        Ok(Self::digest_of(token))
    }

    fn digest_of(token: &str) -> Self {
        AdminToken {
            digest: Sha256::digest(token.as_bytes()).into(),
        }
    }

    /// A fresh random token (the domain's generated-secret format, about 190
    /// bits) and its digest.
    pub fn generate(rng: &mut (impl CryptoRng + ?Sized)) -> (Self, Secret) {
        let secret = apikeys::credentials::generate_secret(rng);
        (Self::digest_of(secret.expose_secret()), secret)
    }

    /// The form to keep between starts: `sha256$` and 64 lowercase hex
    /// digits (the digest, never the token).
    pub fn stored_form(&self) -> String {
        let mut out = String::with_capacity(STORED_PREFIX.len() + 64);
        out.push_str(STORED_PREFIX);
        for b in self.digest {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        out
    }

    /// Reads what [`AdminToken::stored_form`] wrote.
    pub fn from_stored(stored: &str) -> Result<Self, AdminTokenError> {
        let hex = stored
            .strip_prefix(STORED_PREFIX)
            .filter(|h| h.len() == 64)
            .ok_or(AdminTokenError::CorruptStored)?;
        let mut digest = [0u8; 32];
        for (byte, pair) in digest.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
            let hi = hex_value(pair[0]).ok_or(AdminTokenError::CorruptStored)?;
            let lo = hex_value(pair[1]).ok_or(AdminTokenError::CorruptStored)?;
            *byte = hi << 4 | lo;
        }
        Ok(AdminToken { digest })
    }

    /// Whether `presented` is the token, compared in constant time.
    pub fn verify(&self, presented: &str) -> bool {
        let actual: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        actual.ct_eq(&self.digest).into()
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// A management request that presented the admin token, acting as the
/// operator or, with `X-Acting-Account`, as that account.
#[derive(Clone, Copy, Debug)]
pub struct Admin(pub Actor);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let client = state.client_address(parts).await?;
        let now = state.sync().now();
        // A portal session (feature `ui`): its cookie, and no Authorization.
        // Not throttled: its cookie is no guess at the admin token.
        #[cfg(feature = "ui")]
        if !parts.headers.contains_key(header::AUTHORIZATION)
            && let Some(actor) = crate::ui::session_actor(parts, state)?
        {
            return Ok(Admin(actor));
        }
        // No token at all is no guess: it is answered 401 at once, throttled
        // or not; only a presented token waits out the throttle.
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "missing admin token: send `Authorization: Bearer <admin token>`",
                )
            })?;
        if let Some(retry_after) = state.admin_throttle().retry_after(client, now) {
            return Err(ApiError::too_many(retry_after));
        }
        if !state.admin_token().verify(presented) {
            state.admin_throttle().failed(client, now);
            if let Some(left_out) = state.admin_log().admit() {
                tracing::warn!(%client, similar_lines_left_out = left_out, "wrong admin token");
            }
            return Err(ApiError::unauthorized("wrong admin token"));
        }
        let actor = match parts.headers.get(ACTING_ACCOUNT_HEADER) {
            None => Actor::Operator,
            Some(value) => {
                let id: AccountId = value
                    .to_str()
                    .map_err(|_| {
                        ApiError::bad_request(ErrorCode::InvalidId, "X-Acting-Account is not text")
                    })?
                    .parse()
                    .map_err(|e| {
                        ApiError::bad_request(
                            ErrorCode::InvalidId,
                            format!("X-Acting-Account: {e}"),
                        )
                    })?;
                Actor::Account(id)
            }
        };
        Ok(Admin(actor))
    }
}

/// The token of `Bearer <token>` (the scheme is case-insensitive).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn stored_form_roundtrips_and_verifies() {
        let (token, secret) = AdminToken::generate(&mut ChaCha20Rng::seed_from_u64(1));
        let stored = token.stored_form();
        assert!(stored.starts_with("sha256$") && stored.len() == 71);
        assert!(!stored.contains(secret.expose_secret()));
        let back = AdminToken::from_stored(&stored).unwrap();
        assert!(back.verify(secret.expose_secret()));
        assert!(!back.verify("something else entirely"));
        assert!(AdminToken::from_stored("sha256$xyz").is_err());
        assert!(AdminToken::from_stored(&stored.to_uppercase()).is_err());
        assert_eq!(format!("{token:?}"), "AdminToken([hidden])");
    }

    #[test]
    fn chosen_tokens_have_rules() {
        assert!(matches!(
            AdminToken::from_chosen("short"),
            Err(AdminTokenError::Length { len: 5 })
        ));
        assert!(matches!(
            AdminToken::from_chosen("has a space in the middle of it, too long"),
            Err(AdminTokenError::Character { position: 3 })
        ));
        assert!(matches!(
            AdminToken::from_chosen("correct-horse-battery-staple"),
            Err(AdminTokenError::Length { len: 28 })
        ));
        assert!(AdminToken::from_chosen("correct-horse-battery-staple-and-more").is_ok());
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer"), None);
    }
}

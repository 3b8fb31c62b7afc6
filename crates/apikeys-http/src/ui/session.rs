//! Portal sessions: the one-time links the platform opens for its customer,
//! and the sessions those links start.
//!
//! Decisions:
//! - Both live in the router's memory, per process: a server restart ends
//!   every session and every unused link, and servers behind one load
//!   balancer do not share them (a customer is sent to the server that
//!   issued the link, or simply opens a new one). Nothing about them is
//!   written to the store.
//! - Only the SHA-256 digest of a link's token and of a session's cookie is
//!   kept, as for the admin token: a dump of the process's memory map holds
//!   no usable token. Tokens are the domain's generated-secret format (about
//!   190 random bits from the operating system), so a fast hash suffices.
//! - A link works once and for [`UiConfig::link_ttl`] (5 minutes by
//!   default); a session ends after [`UiConfig::idle_timeout`] without a
//!   request (30 minutes by default) or at sign-out. Instants are the
//!   service's clock, so tests move them with a `ManualClock`.
//! - Each session has its own CSRF token, given to the page and required
//!   (compared in constant time) on every state-changing request.

use super::UiConfig;
use apikeys::{AccountId, Secret};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

type Digest32 = [u8; 32];

fn digest(token: &str) -> Digest32 {
    Sha256::digest(token.as_bytes()).into()
}

fn fresh_token() -> Secret {
    apikeys::credentials::generate_secret(&mut apikeys::os_rng())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The most links and sessions kept at once: past it, the oldest go first.
/// A bound on memory, far above what one platform's customers open at once.
const MAX_ENTRIES: usize = 100_000;

struct Link {
    account: AccountId,
    return_url: Option<String>,
    expires_at: OffsetDateTime,
}

struct Session {
    account: AccountId,
    csrf: Secret,
    return_url: Option<String>,
    last_seen: OffsetDateTime,
}

/// A live session, as a request sees it.
#[derive(Clone)]
pub(crate) struct SessionInfo {
    /// The account it acts as.
    pub(crate) account: AccountId,
    /// Where sign-out goes, if the link named a place.
    pub(crate) return_url: Option<String>,
    csrf: Secret,
}

impl std::fmt::Debug for SessionInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionInfo")
            .field("account", &self.account)
            .field("csrf", &"[hidden]")
            .finish_non_exhaustive()
    }
}

impl SessionInfo {
    /// The CSRF token, to hand to the page.
    pub(crate) fn csrf_token(&self) -> &str {
        self.csrf.expose_secret()
    }

    /// Whether `presented` is this session's CSRF token (constant time).
    pub(crate) fn csrf_matches(&self, presented: &str) -> bool {
        let a = self.csrf.expose_secret().as_bytes();
        a.len() == presented.len() && bool::from(a.ct_eq(presented.as_bytes()))
    }
}

/// The links and sessions of one router.
pub(crate) struct Portal {
    config: UiConfig,
    links: Mutex<HashMap<Digest32, Link>>,
    sessions: Mutex<HashMap<Digest32, Session>>,
}

impl Portal {
    pub(crate) fn new(config: UiConfig) -> Self {
        Portal {
            config,
            links: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn config(&self) -> &UiConfig {
        &self.config
    }

    /// A new one-time link's token for `account`, and when it expires.
    pub(crate) fn open_link(
        &self,
        account: AccountId,
        return_url: Option<String>,
        now: OffsetDateTime,
    ) -> (Secret, OffsetDateTime) {
        let token = fresh_token();
        let expires_at = now + self.config.link_ttl;
        let mut links = lock(&self.links);
        links.retain(|_, l| l.expires_at > now);
        if links.len() >= MAX_ENTRIES
            && let Some(oldest) = links
                .iter()
                .min_by_key(|(_, l)| l.expires_at)
                .map(|(d, _)| *d)
        {
            links.remove(&oldest);
        }
        links.insert(
            digest(token.expose_secret()),
            Link {
                account,
                return_url,
                expires_at,
            },
        );
        (token, expires_at)
    }

    /// Uses a link: `None` if it is unknown, used or expired; else the new
    /// session's cookie value. The link is gone either way.
    pub(crate) fn redeem(&self, token: &str, now: OffsetDateTime) -> Option<Secret> {
        let link = lock(&self.links).remove(&digest(token))?;
        if link.expires_at <= now {
            return None;
        }
        let cookie = fresh_token();
        let mut sessions = lock(&self.sessions);
        let idle = self.config.idle_timeout;
        sessions.retain(|_, s| s.last_seen + idle > now);
        if sessions.len() >= MAX_ENTRIES
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(d, _)| *d)
        {
            sessions.remove(&oldest);
        }
        sessions.insert(
            digest(cookie.expose_secret()),
            Session {
                account: link.account,
                csrf: fresh_token(),
                return_url: link.return_url,
                last_seen: now,
            },
        );
        Some(cookie)
    }

    /// The live session of this cookie value, its idle clock restarted; an
    /// idle one is ended.
    pub(crate) fn session(&self, cookie: &str, now: OffsetDateTime) -> Option<SessionInfo> {
        let key = digest(cookie);
        let mut sessions = lock(&self.sessions);
        let session = sessions.get_mut(&key)?;
        if session.last_seen + self.config.idle_timeout <= now {
            sessions.remove(&key);
            return None;
        }
        session.last_seen = now.max(session.last_seen);
        Some(SessionInfo {
            account: session.account,
            return_url: session.return_url.clone(),
            csrf: session.csrf.clone(),
        })
    }

    /// Ends the session of this cookie value.
    pub(crate) fn end(&self, cookie: &str) {
        lock(&self.sessions).remove(&digest(cookie));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn account() -> AccountId {
        "acc_0123456789abcdef0123456789abcdef".parse().unwrap()
    }

    #[test]
    fn a_link_works_once_and_until_it_expires() {
        let portal = Portal::new(UiConfig::default());
        let t0 = datetime!(2026-01-01 0:00 UTC);
        let (token, expires) = portal.open_link(account(), None, t0);
        assert_eq!(expires, t0 + time::Duration::minutes(5));
        let cookie = portal.redeem(token.expose_secret(), t0).unwrap();
        assert!(portal.redeem(token.expose_secret(), t0).is_none(), "reused");
        let (late, _) = portal.open_link(account(), None, t0);
        assert!(
            portal.redeem(late.expose_secret(), expires).is_none(),
            "expired"
        );
        let s = portal.session(cookie.expose_secret(), t0).unwrap();
        assert_eq!(s.account, account());
        assert!(s.csrf_matches(s.csrf_token()));
        assert!(!s.csrf_matches("") && !s.csrf_matches("wrong"));
        assert!(!format!("{s:?}").contains(s.csrf_token()));
    }

    #[test]
    fn a_session_ends_when_idle_or_signed_out() {
        let portal = Portal::new(UiConfig::default());
        let t0 = datetime!(2026-01-01 0:00 UTC);
        let (token, _) = portal.open_link(account(), None, t0);
        let cookie = portal.redeem(token.expose_secret(), t0).unwrap();
        let c = cookie.expose_secret();
        // Each use restarts the idle clock.
        let t1 = t0 + time::Duration::minutes(29);
        assert!(portal.session(c, t1).is_some());
        let t2 = t1 + time::Duration::minutes(29);
        assert!(portal.session(c, t2).is_some());
        assert!(
            portal
                .session(c, t2 + time::Duration::minutes(30))
                .is_none()
        );
        assert!(portal.session(c, t2).is_none(), "ended for good");
        let (token, _) = portal.open_link(account(), None, t0);
        let cookie = portal.redeem(token.expose_secret(), t0).unwrap();
        portal.end(cookie.expose_secret());
        assert!(portal.session(cookie.expose_secret(), t0).is_none());
    }
}

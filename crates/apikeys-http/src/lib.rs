#![doc = include_str!("../README.md")]

mod accounts;
pub mod admin;
mod authn;
pub mod client_addr;
pub mod dto;
pub mod error;
mod extract;
mod keys;
mod meta;
pub mod server;
mod state;

pub use admin::{AdminToken, AdminTokenError};
pub use error::{ApiError, ErrorBody};

use apikeys::ApiKeys;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use state::AppState;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// How the router behaves. `Config::default()` suits a server on its own;
/// chainable setters named after the fields change one value
/// (`Config::default().trust_proxy(true)` behind a reverse proxy).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Take the client address from the first `X-Forwarded-For` entry
    /// instead of the TCP peer. Only behind a proxy that sets it: anyone
    /// else could claim any address and walk past the IP whitelists.
    pub trust_proxy: bool,
    /// The largest request body, in bytes (default 64 KiB); larger is 413.
    pub body_limit: usize,
    /// How many requests may run argon2 at once (hashing or verifying a
    /// chosen secret): default, the number of cores. Others wait their turn
    /// as futures, holding no thread and no argon2 memory.
    pub argon2_concurrency: usize,
    /// Run the argon2-free part of authentication (one store lookup and a
    /// SHA-256, microseconds) on the event loop instead of handing it to a
    /// blocking thread, which costs more than the check itself. Right for a
    /// store that answers from memory or a local file (the memory and SQLite
    /// stores; `apikeys-server` turns it on over SQLite); wrong for one that
    /// waits on the network: a round trip would hold an async worker, and
    /// `apikeys-postgres`' synchronous client cannot run on one at all
    /// (`apikeys-server` leaves it off over PostgreSQL). Default off. Argon2
    /// never runs inline either way.
    pub inline_checks: bool,
    /// How many other blocking calls (store I/O, generated-secret checks)
    /// may run at once (default 64).
    pub blocking_concurrency: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            trust_proxy: false,
            body_limit: 64 * 1024,
            argon2_concurrency: std::thread::available_parallelism().map_or(2, usize::from),
            blocking_concurrency: 64,
            inline_checks: false,
        }
    }
}

impl Config {
    /// This configuration with the proxy's address trusted or not.
    #[must_use]
    pub fn trust_proxy(mut self, trust: bool) -> Self {
        self.trust_proxy = trust;
        self
    }

    /// This configuration with another body limit, in bytes.
    #[must_use]
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// This configuration with another argon2 concurrency (0 counts as 1).
    #[must_use]
    pub fn argon2_concurrency(mut self, at_once: usize) -> Self {
        self.argon2_concurrency = at_once;
        self
    }

    /// This configuration with argon2-free checks on the event loop or not.
    #[must_use]
    pub fn inline_checks(mut self, inline: bool) -> Self {
        self.inline_checks = inline;
        self
    }

    /// This configuration with another bound on other blocking calls (0
    /// counts as 1).
    #[must_use]
    pub fn blocking_concurrency(mut self, at_once: usize) -> Self {
        self.blocking_concurrency = at_once;
        self
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "apikeys",
        description = "API keys of a messaging platform's accounts: accounts, keys per channel, \
credentials, IP whitelists, audit, and authentication. The management API needs \
`Authorization: Bearer <admin token>`; `X-Acting-Account` acts as an account."
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "accounts", description = "Masters and sub-accounts"),
        (name = "keys", description = "API keys and their credentials"),
        (name = "whitelist", description = "Per-key IP whitelists"),
        (name = "authentication", description = "Checking credentials (no admin token)"),
        (name = "meta", description = "Health and this document"),
    )
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        components.add_security_scheme(
            "rest_basic",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
        );
    }
}

/// Every route, each with its OpenAPI operation: the document is built from
/// the same list as the router, so the two cannot drift.
fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(accounts::open_account))
        .routes(routes!(accounts::get_account))
        .routes(routes!(accounts::list_keys, accounts::create_key))
        .routes(routes!(accounts::audit))
        .routes(routes!(keys::get_key, keys::delete_key))
        .routes(routes!(keys::change_credentials))
        .routes(routes!(keys::get_whitelist, keys::put_whitelist))
        .routes(routes!(authn::authenticate))
        .routes(routes!(authn::rest_whoami))
        .routes(routes!(authn::http_whoami))
        .routes(routes!(meta::healthz))
        .routes(routes!(meta::openapi_json))
}

/// The OpenAPI document of the API (what `GET /openapi.json` serves).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api_routes().split_for_parts().1
}

/// The API over `keys`, guarded by `admin`.
///
/// Serve it with [`serve`] (or with
/// `into_make_service_with_connect_info::<SocketAddr>()`): authentication
/// needs the peer's address.
pub fn router(keys: Arc<ApiKeys>, admin: AdminToken, config: Config) -> Router {
    let (routes, doc) = api_routes().split_for_parts();
    let openapi_json = serde_json::to_vec(&doc).unwrap_or_default();
    let body_limit = config.body_limit;
    routes
        .fallback(meta::not_found)
        .method_not_allowed_fallback(meta::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn(meta::log_request))
        .with_state(AppState::new(keys, admin, config, openapi_json))
}

/// Serves `app` on `listener` until `shutdown` completes, then lets
/// requests in flight finish.
pub async fn serve<F>(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_setters() {
        let d = Config::default();
        assert!(!d.trust_proxy && !d.inline_checks);
        assert_eq!((d.body_limit, d.blocking_concurrency), (64 * 1024, 64));
        assert!(d.argon2_concurrency >= 1);
        let c = Config::default()
            .trust_proxy(true)
            .body_limit(1024)
            .argon2_concurrency(3)
            .inline_checks(true)
            .blocking_concurrency(5);
        assert_eq!(
            (
                c.trust_proxy,
                c.body_limit,
                c.argon2_concurrency,
                c.inline_checks,
                c.blocking_concurrency
            ),
            (true, 1024, 3, true, 5)
        );
    }
}

#![doc = include_str!("../README.md")]

// The domain crate, so that an embedder's version cannot disagree with the
// router's.
pub use apikeys;

mod accounts;
pub mod admin;
mod authn;
pub mod client_addr;
mod credentials_in;
mod document;
mod dormancy;
pub mod dto;
pub mod error;
pub mod extract;
pub mod facade;
mod keys;
pub mod layer;
mod log_limit;
mod meta;
pub mod server;
mod state;
#[cfg(feature = "testing")]
pub mod testing;
#[cfg(feature = "ui")]
pub mod ui;
pub mod versions;

pub use admin::{AdminToken, AdminTokenError};
pub use client_addr::{ForwardedHeader, TrustedProxies};
pub use error::{ApiError, ErrorBody, ErrorCode};
pub use extract::{ApiJson, ApiPath, ApiQuery, BodyLimits};
pub use facade::{AsyncApiKeys, Busy, CheckError, Lanes, StoreCalls};
pub use layer::{ApiKey, ApiKeyLayer, CredentialStyle};
pub use server::{ServeOptions, serve};

use apikeys::{ApiKeys, Policy};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use state::AppState;
use std::sync::Arc;
use std::time::Duration;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// How the router behaves. `Config::default()` suits a server on its own;
/// chainable setters named after the fields change one value
/// (`Config::default().lanes(Lanes::default().store_calls(StoreCalls::Inline))`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// The proxies whose forwarding headers are believed (default none: the
    /// client address is the TCP peer's). See [`client_addr`].
    pub trusted_proxies: TrustedProxies,
    /// The largest request body, in bytes (default 64 KiB); larger is 413,
    /// at once when `Content-Length` says so.
    pub body_limit: usize,
    /// How long a client may take to send a request body (default 10 s);
    /// past that, 408 and the connection is closed.
    pub body_timeout: Duration,
    /// The lanes calls run in (see [`facade`]).
    pub lanes: Lanes,
    /// The "API Keys" page and its portal sessions (feature `ui`).
    #[cfg(feature = "ui")]
    pub ui: ui::UiConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            trusted_proxies: TrustedProxies::default(),
            body_limit: 64 * 1024,
            body_timeout: Duration::from_secs(10),
            lanes: Lanes::default(),
            #[cfg(feature = "ui")]
            ui: ui::UiConfig::default(),
        }
    }
}

impl Config {
    /// This configuration with other trusted proxies.
    #[must_use]
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.trusted_proxies = proxies;
        self
    }

    /// This configuration with another body limit, in bytes.
    #[must_use]
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// This configuration with another body deadline.
    #[must_use]
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        self.body_timeout = timeout;
        self
    }

    /// This configuration with other lanes.
    #[must_use]
    pub fn lanes(mut self, lanes: Lanes) -> Self {
        self.lanes = lanes;
        self
    }

    /// This configuration with another page and session set-up.
    #[cfg(feature = "ui")]
    #[must_use]
    pub fn ui(mut self, ui: ui::UiConfig) -> Self {
        self.ui = ui;
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
        (name = "portal", description = "One-time links to the API Keys page (feature `ui`)"),
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
        components.add_security_scheme(
            "rest_bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// Every route, each with its OpenAPI operation: the document is built from
/// the same list as the router, so the two cannot drift.
fn api_routes() -> OpenApiRouter<AppState> {
    let routes = OpenApiRouter::with_openapi(ApiDoc::openapi());
    #[cfg(feature = "ui")]
    let routes = routes.routes(routes!(ui::open_portal_session));
    routes
        .routes(routes!(accounts::open_account, accounts::list_accounts))
        .routes(routes!(accounts::get_account, accounts::patch_account))
        .routes(routes!(accounts::account_by_external_id))
        .routes(routes!(accounts::get_policy, accounts::put_policy))
        .routes(routes!(accounts::dormant_keys))
        .routes(routes!(dormancy::all_dormant_keys))
        .routes(routes!(dormancy::disable_dormant))
        .routes(routes!(accounts::sub_accounts))
        .routes(routes!(accounts::list_keys, accounts::create_key))
        .routes(routes!(accounts::audit))
        .routes(routes!(keys::get_key, keys::delete_key, keys::patch_key))
        .routes(routes!(keys::change_credentials))
        .routes(routes!(
            keys::get_whitelist,
            keys::put_whitelist,
            keys::patch_whitelist
        ))
        .routes(routes!(keys::explain_whitelist))
        .routes(routes!(authn::authenticate))
        .routes(routes!(authn::rest_whoami))
        .routes(routes!(authn::rest_token))
        .routes(routes!(authn::http_whoami))
        .routes(routes!(meta::healthz))
        .routes(routes!(meta::openapi_json))
}

/// The OpenAPI document of the API, as JSON, for a service under the
/// default policy. The bounds that depend on the policy (the longest grace,
/// the most whitelist entries) are its; [`openapi_for`] gives another's,
/// and the router serves its own service's (`GET /openapi.json`).
pub fn openapi() -> serde_json::Value {
    openapi_for(&Policy::default())
}

/// The OpenAPI document of the API, as JSON, for a service under `policy`:
/// what the router over such a service serves.
pub fn openapi_for(policy: &Policy) -> serde_json::Value {
    document::finish(&api_routes().split_for_parts().1, policy)
}

/// The API over `keys`, guarded by `admin`.
///
/// Serve it with [`serve`] (or with
/// `into_make_service_with_connect_info::<SocketAddr>()`): authentication
/// needs the peer's address.
pub fn router(keys: Arc<ApiKeys>, admin: AdminToken, config: Config) -> Router {
    let (routes, doc) = api_routes().split_for_parts();
    let openapi_json =
        serde_json::to_vec(&document::finish(&doc, keys.policy())).unwrap_or_default();
    let body_limit = config.body_limit;
    let keys = AsyncApiKeys::new(keys, config.lanes.clone());
    let state = AppState::new(keys, admin, config, openapi_json);
    #[cfg(feature = "ui")]
    let routes = routes
        .merge(ui::routes(&state))
        .layer(axum::middleware::from_fn(ui::no_store_for_sessions));
    routes
        .fallback(meta::not_found)
        .method_not_allowed_fallback(meta::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn(meta::no_store_with_credentials))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            meta::guard_request,
        ))
        .layer(axum::middleware::from_fn(meta::log_request))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_setters() {
        let d = Config::default();
        assert_eq!(d.trusted_proxies, TrustedProxies::default());
        assert_eq!(
            (d.body_limit, d.body_timeout),
            (64 * 1024, Duration::from_secs(10))
        );
        assert_eq!(d.lanes.store_calls, StoreCalls::BlockingPool);
        let proxies = TrustedProxies {
            networks: vec!["10.0.0.0/8".parse().unwrap()],
            header: ForwardedHeader::Forwarded,
        };
        let c = Config::default()
            .trusted_proxies(proxies.clone())
            .body_limit(1024)
            .body_timeout(Duration::from_secs(2))
            .lanes(
                Lanes::default()
                    .argon2_concurrency(3)
                    .store_calls(StoreCalls::Inline),
            );
        assert_eq!(
            (
                c.trusted_proxies,
                c.body_limit,
                c.body_timeout,
                c.lanes.argon2_concurrency,
                c.lanes.store_calls
            ),
            (proxies, 1024, Duration::from_secs(2), 3, StoreCalls::Inline)
        );
    }
}

//! What every handler shares: the service behind its lanes, the admin token
//! and its throttle, the configuration, and the log's rate limits.

use crate::Config;
use crate::admin::AdminToken;
use crate::error::ApiError;
use crate::error::ErrorCode;
use crate::facade::AsyncApiKeys;
use crate::log_limit::LogLimit;
use apikeys::{AddressThrottle, ApiKeys, Cost, ThrottlePolicy};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// The router's state.
#[derive(Clone)]
pub(crate) struct AppState(Arc<Inner>);

struct Inner {
    keys: AsyncApiKeys,
    admin: AdminToken,
    /// Wrong admin tokens, per address: the same rules as authentication's
    /// per-address count.
    admin_throttle: AddressThrottle,
    config: Config,
    openapi_json: Vec<u8>,
    /// Refused authentications: counted exactly by the service, logged at
    /// most a few lines a second.
    pub(crate) refusal_log: LogLimit,
    /// Wrong admin tokens, likewise.
    pub(crate) admin_log: LogLimit,
    /// Portal links and sessions.
    #[cfg(feature = "ui")]
    portal: crate::ui::session::Portal,
}

impl AppState {
    pub(crate) fn new(
        keys: AsyncApiKeys,
        admin: AdminToken,
        config: Config,
        openapi_json: Vec<u8>,
    ) -> Self {
        let throttle = keys.sync().policy().throttle.clone();
        AppState(Arc::new(Inner {
            #[cfg(feature = "ui")]
            portal: crate::ui::session::Portal::new(config.ui.clone()),
            admin_throttle: AddressThrottle::new(admin_throttle_policy(throttle)),
            keys,
            admin,
            config,
            openapi_json,
            refusal_log: LogLimit::per_second(10),
            admin_log: LogLimit::per_second(5),
        }))
    }

    pub(crate) fn admin_token(&self) -> &AdminToken {
        &self.0.admin
    }

    pub(crate) fn admin_throttle(&self) -> &AddressThrottle {
        &self.0.admin_throttle
    }

    #[cfg(feature = "ui")]
    pub(crate) fn portal(&self) -> &crate::ui::session::Portal {
        &self.0.portal
    }

    pub(crate) fn config(&self) -> &Config {
        &self.0.config
    }

    pub(crate) fn keys(&self) -> &AsyncApiKeys {
        &self.0.keys
    }

    pub(crate) fn sync(&self) -> &ApiKeys {
        self.0.keys.sync()
    }

    pub(crate) fn refusal_log(&self) -> &LogLimit {
        &self.0.refusal_log
    }

    pub(crate) fn admin_log(&self) -> &LogLimit {
        &self.0.admin_log
    }

    pub(crate) fn openapi_json(&self) -> &[u8] {
        &self.0.openapi_json
    }

    /// Runs a synchronous call of the service in the lane its cost says.
    pub(crate) async fn run<T, F>(&self, cost: Cost, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&ApiKeys) -> T + Send + 'static,
    {
        Ok(self.0.keys.run(cost, f).await?)
    }

    /// The client's address: the TCP peer's, or, behind a trusted proxy,
    /// the right-most untrusted forwarding entry (see `client_addr`).
    pub(crate) async fn client_address(&self, parts: &mut Parts) -> Result<IpAddr, ApiError> {
        // axum's extractor, not the extension itself: it also finds the
        // address a test mocks with `MockConnectInfo`.
        let ConnectInfo(peer) = ConnectInfo::<SocketAddr>::from_request_parts(parts, self)
            .await
            .map_err(|_| {
                ApiError::internal(
                    "no peer address: serve the router with `apikeys_http::serve` \
                     (or into_make_service_with_connect_info)",
                )
            })?;
        self.0
            .config
            .trusted_proxies
            .client_address(peer.ip(), &parts.headers)
            .map_err(|e| ApiError::bad_request(ErrorCode::InvalidForwardedFor, e.to_string()))
    }
}

/// The admin token's throttle: the policy's per-address rules, with a
/// smaller allowance (nobody types the admin token by hand often).
fn admin_throttle_policy(policy: ThrottlePolicy) -> ThrottlePolicy {
    let allowance = policy.per_identifier_allowance;
    policy.per_address_allowance(allowance)
}

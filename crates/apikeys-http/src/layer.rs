//! Protecting an embedder's own routes with apikeys: a tower layer that
//! checks the channel's own credentials, and an extractor that hands the
//! handler who it was.
//!
//! ```no_run
//! use apikeys_http::{ApiKey, ApiKeyLayer, AsyncApiKeys};
//! use axum::routing::post;
//!
//! # fn app(keys: AsyncApiKeys) -> axum::Router {
//! async fn send_sms(ApiKey(who): ApiKey) -> String {
//!     format!("sent for {}", who.account_id)
//! }
//! axum::Router::new()
//!     .route("/send-sms", post(send_sms))
//!     .layer(ApiKeyLayer::rest(keys))
//! # }
//! ```
//!
//! Rules:
//! - The layer reads the credentials of the styles it was built for:
//!   REST's `Authorization: Basic base64(identifier:secret)` or
//!   `Authorization: Bearer <token>` (a token from
//!   `GET /v1/rest/authentication`), or the HTTP channel's
//!   `username` and `password` in the query string or a form body.
//! - Present credentials are checked through [`AsyncApiKeys`] (the lanes,
//!   the throttles, the cache: the router's own code) against the client
//!   address (trusted proxies as configured). On success the request goes on
//!   with [`ApiKey`] in its extensions; on refusal the layer answers in the
//!   router's JSON error style: 401 with a `WWW-Authenticate` challenge, 403
//!   `address_not_allowed`, 429 `throttled`, 503 `busy` or
//!   `store_unavailable`.
//! - A request without credentials goes on without `ApiKey`: a handler that
//!   takes [`ApiKey`] answers 401 itself, one that takes `Option<ApiKey>`
//!   runs for anonymous requests too.

use crate::client_addr::TrustedProxies;
use crate::credentials_in::{Found, form_credentials, query_credentials, rest_credentials};
use crate::error::ApiError;
use crate::error::ErrorCode;
use crate::facade::{AsyncApiKeys, CheckError};
use apikeys::{Authenticated, Channel};
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::http::{Request, header};
use axum::response::{IntoResponse, Response};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The challenge of a REST route.
pub(crate) const REST_CHALLENGE: &str = "Basic realm=\"apikeys\", Bearer realm=\"apikeys\"";
/// The challenge of an HTTP-channel route (its credentials are parameters,
/// which no standard scheme describes).
pub(crate) const HTTP_CHALLENGE: &str = "ApiKey realm=\"apikeys\"";

/// Which credentials a layer reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CredentialStyle {
    /// The REST channel: `Authorization: Basic`, or `Bearer` with a token.
    Rest,
    /// The HTTP channel: `username` and `password`, in the query string or
    /// an `application/x-www-form-urlencoded` body.
    Http,
}

impl CredentialStyle {
    fn channel(self) -> Channel {
        match self {
            CredentialStyle::Rest => Channel::Rest,
            CredentialStyle::Http => Channel::Http,
        }
    }

    fn challenge(self) -> &'static str {
        match self {
            CredentialStyle::Rest => REST_CHALLENGE,
            CredentialStyle::Http => HTTP_CHALLENGE,
        }
    }
}

/// Who a request authenticated as: put in its extensions by
/// [`ApiKeyLayer`], taken by a handler. As `Option<ApiKey>` it is optional.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiKey(pub Authenticated);

impl<S: Send + Sync> FromRequestParts<S> for ApiKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<ApiKey>().copied().ok_or_else(|| {
            ApiError::invalid_credentials("send the channel's credentials")
                .with_challenge(REST_CHALLENGE)
        })
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for ApiKey {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<ApiKey>().copied())
    }
}

/// A tower layer checking a channel's own credentials (see the module's
/// docs). Cheap to clone.
#[derive(Clone, Debug)]
pub struct ApiKeyLayer(Arc<LayerState>);

#[derive(Debug)]
struct LayerState {
    keys: AsyncApiKeys,
    style: CredentialStyle,
    proxies: TrustedProxies,
    /// The largest form body read for the HTTP style.
    body_limit: usize,
}

impl ApiKeyLayer {
    /// REST credentials: `Authorization: Basic base64(identifier:secret)`, or
    /// `Authorization: Bearer <token>`.
    pub fn rest(keys: AsyncApiKeys) -> Self {
        Self::new(keys, CredentialStyle::Rest)
    }

    /// HTTP-channel credentials: `username` and `password` parameters.
    pub fn http(keys: AsyncApiKeys) -> Self {
        Self::new(keys, CredentialStyle::Http)
    }

    /// Credentials of `style`.
    pub fn new(keys: AsyncApiKeys, style: CredentialStyle) -> Self {
        ApiKeyLayer(Arc::new(LayerState {
            keys,
            style,
            proxies: TrustedProxies::default(),
            body_limit: 64 * 1024,
        }))
    }

    /// This layer, believing the forwarding headers of these proxies (see
    /// [`crate::client_addr`]).
    #[must_use]
    pub fn trusted_proxies(self, proxies: TrustedProxies) -> Self {
        self.with(|s| s.proxies = proxies)
    }

    /// This layer, reading form bodies of at most `bytes` (default 64 KiB).
    #[must_use]
    pub fn body_limit(self, bytes: usize) -> Self {
        self.with(|s| s.body_limit = bytes)
    }

    fn with(self, f: impl FnOnce(&mut LayerState)) -> Self {
        let mut state = LayerState {
            keys: self.0.keys.clone(),
            style: self.0.style,
            proxies: self.0.proxies.clone(),
            body_limit: self.0.body_limit,
        };
        f(&mut state);
        ApiKeyLayer(Arc::new(state))
    }
}

impl<S> tower::Layer<S> for ApiKeyLayer {
    type Service = ApiKeyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ApiKeyService {
            inner,
            state: self.0.clone(),
        }
    }
}

/// The service [`ApiKeyLayer`] wraps around a route.
#[derive(Clone, Debug)]
pub struct ApiKeyService<S> {
    inner: S,
    state: Arc<LayerState>,
}

impl<S> tower::Service<Request<Body>> for ApiKeyService<S>
where
    S: tower::Service<Request<Body>, Response = Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        // The clone that was polled ready serves this request; a fresh clone
        // stays for the next one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let state = self.state.clone();
        Box::pin(async move {
            match authenticate(&state, req).await {
                Ok(req) => inner.call(req).await,
                Err(refusal) => Ok(refusal.into_response()),
            }
        })
    }
}

/// The request with [`ApiKey`] in its extensions if it carried good
/// credentials, as it came if it carried none, or the refusal.
async fn authenticate(state: &LayerState, req: Request<Body>) -> Result<Request<Body>, ApiError> {
    let challenge = state.style.challenge();
    let (mut parts, body) = req.into_parts();
    let ConnectInfo(peer) = ConnectInfo::<SocketAddr>::from_request_parts(&mut parts, &())
        .await
        .map_err(|_| ApiError::internal("no peer address: serve with `apikeys_http::serve`"))?;
    let client = state
        .proxies
        .client_address(peer.ip(), &parts.headers)
        .map_err(|e| ApiError::bad_request(ErrorCode::InvalidForwardedFor, e.to_string()))?;
    let (found, body) = match state.style {
        CredentialStyle::Rest => (rest_credentials(&parts.headers), body),
        CredentialStyle::Http => {
            let in_query = query_credentials(parts.uri.query());
            if !matches!(in_query, Found::Nothing) || !is_form(&parts) {
                (in_query, body)
            } else {
                let bytes = axum::body::to_bytes(body, state.body_limit)
                    .await
                    .map_err(|_| ApiError::payload_too_large(state.body_limit))?;
                (form_credentials(&bytes), Body::from(bytes))
            }
        }
    };
    let checked = match found {
        Found::Nothing => return Ok(Request::from_parts(parts, body)),
        Found::Malformed(what) => {
            return Err(ApiError::invalid_credentials(what).with_challenge(challenge));
        }
        Found::Credentials(identifier, secret) => {
            state
                .keys
                .authenticate(state.style.channel(), identifier, secret, client)
                .await
        }
        Found::Token(token) => state.keys.authenticate_token(token, client).await,
    };
    match checked {
        Ok(who) => {
            parts.extensions.insert(ApiKey(who));
            Ok(Request::from_parts(parts, body))
        }
        Err(CheckError::Refused(e)) => {
            let e = ApiError::from(e);
            Err(if e.status() == axum::http::StatusCode::UNAUTHORIZED {
                e.with_challenge(challenge)
            } else {
                e
            })
        }
        Err(CheckError::Busy(busy)) => Err(busy.into()),
    }
}

fn is_form(parts: &Parts) -> bool {
    parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

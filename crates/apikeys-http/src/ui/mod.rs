//! The "API Keys" settings page and the portal sessions that reach it
//! (feature `ui`).
//!
//! The platform, which has its customer logged in, asks for a one-time link
//! with the admin token (`POST /v1/accounts/{account_id}/portal-sessions`)
//! and sends the customer to it. Opening the link starts a session for that
//! account: a cookie, and a CSRF token given to the page. With that cookie
//! (and no `Authorization`), the JSON API acts as the account, exactly as
//! `X-Acting-Account` does with the admin token: its own keys and, for a
//! master, its sub-accounts', never more. The page renders what the same
//! service calls answer the API, and every change is a `fetch` of the
//! public JSON API from the page's script.
//!
//! Decisions:
//! - Sessions and links live in the router's memory, per process (see
//!   [`session`]).
//! - A session request carrying `X-Acting-Account` is refused (400
//!   `acting_account_with_session`), not ignored: a session acts as its own
//!   account only, and a client that believes otherwise should hear so.
//! - A session cannot open portal sessions: that needs the admin token.
//! - A link that cannot be used (expired, used before, or never issued) is
//!   answered alike: 410 Gone and a page saying to open the page again from
//!   the platform. Telling the cases apart would help nobody but a prober.
//! - Every state-changing request with a session must carry the session's
//!   CSRF token in `X-CSRF-Token` (403 `csrf_failed` otherwise), on top of
//!   the cookie's `SameSite=Strict`. Every answer to a session request is
//!   `Cache-Control: no-store`.
//! - The cookie is `HttpOnly; SameSite=Strict; Path=/`, and `Secure` when
//!   [`UiConfig::secure_cookies`] says so or the public origin is https
//!   (then named `__Host-apikeys_session`, which no subdomain can plant). A
//!   browser does not send a Strict cookie on the redirect that ends a
//!   cross-site click (the customer comes from the platform's site), so the
//!   link also sets a short-lived `Lax` marker without any power; a page
//!   request that has the marker but not yet the session gets a page that
//!   reloads itself once, a same-site navigation that does carry it.
//! - The page's links are relative, so the router can be served under any
//!   prefix (`Router::nest`) and the page under any path
//!   ([`UiConfig::path`]); the JSON API's base reaches the script in a
//!   `data-` attribute.

mod page;
pub(crate) mod session;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;
use apikeys::{AccountId, Actor, Cost};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, OriginalUri, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::ToSchema;

/// The session cookie's name over plain HTTP.
pub const SESSION_COOKIE: &str = "apikeys_session";
/// The session cookie's name when it is `Secure`: the `__Host-` prefix makes
/// browsers refuse such a cookie unless it is `Secure`, `Path=/` and has no
/// `Domain`, so a sibling subdomain cannot plant one (session fixation).
pub const SECURE_SESSION_COOKIE: &str = "__Host-apikeys_session";
/// The powerless marker a link sets beside the session (see the module's
/// decisions).
const PENDING_COOKIE: &str = "apikeys_session_pending";
/// The header carrying a session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How the page and its sessions behave. `UiConfig::default()` serves the
/// page at `/ui` over plain HTTP, framed by nobody.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct UiConfig {
    /// Where the page lives, below the router's root: `/ui` by default; no
    /// trailing slash.
    pub path: String,
    /// The origin links are given under, as customers reach the server
    /// (`https://keys.example.com`, with the path a proxy in front maps to
    /// the router's root, if any). A prefix the router is nested under
    /// (`Router::nest`) is added from the request. Unset: the request's
    /// `Host`.
    pub public_origin: Option<String>,
    /// The JSON API's base as the page's script should reach it; unset: the
    /// router's root, relative to the page.
    pub api_base: Option<String>,
    /// The CSP `frame-ancestors` value: `'none'` by default (no site may
    /// frame the page).
    pub frame_ancestors: String,
    /// Mark the cookie `Secure` (the page is served over TLS). Also implied
    /// by an https public origin.
    pub secure_cookies: bool,
    /// How long a link works (5 minutes).
    pub link_ttl: Duration,
    /// How long a session lives without a request (30 minutes).
    pub idle_timeout: Duration,
}

impl Default for UiConfig {
    fn default() -> Self {
        UiConfig {
            path: "/ui".to_owned(),
            public_origin: None,
            api_base: None,
            frame_ancestors: "'none'".to_owned(),
            secure_cookies: false,
            link_ttl: Duration::from_secs(5 * 60),
            idle_timeout: Duration::from_secs(30 * 60),
        }
    }
}

impl UiConfig {
    /// Serves the page at `path` (e.g. `/portal/keys`).
    #[must_use]
    pub fn path(mut self, path: impl Into<String>) -> Self {
        let path: String = path.into();
        self.path = format!("/{}", path.trim_matches('/'));
        self
    }

    /// Gives links under this origin.
    #[must_use]
    pub fn public_origin(mut self, origin: impl Into<String>) -> Self {
        self.public_origin = Some(origin.into().trim_end_matches('/').to_owned());
        self
    }

    /// The JSON API's base for the page's script.
    #[must_use]
    pub fn api_base(mut self, base: impl Into<String>) -> Self {
        self.api_base = Some(base.into().trim_end_matches('/').to_owned());
        self
    }

    /// Another `frame-ancestors` value (`'self'`, `https://platform.example`).
    #[must_use]
    pub fn frame_ancestors(mut self, value: impl Into<String>) -> Self {
        self.frame_ancestors = value.into();
        self
    }

    /// Marks the cookie `Secure`, or not.
    #[must_use]
    pub fn secure_cookies(mut self, secure: bool) -> Self {
        self.secure_cookies = secure;
        self
    }

    /// Another link lifetime.
    #[must_use]
    pub fn link_ttl(mut self, ttl: Duration) -> Self {
        self.link_ttl = ttl;
        self
    }

    /// Another idle timeout.
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Whether cookies are marked `Secure`.
    pub fn cookies_are_secure(&self) -> bool {
        self.secure_cookies
            || self
                .public_origin
                .as_deref()
                .is_some_and(|o| o.starts_with("https://"))
    }

    /// The session cookie's name: [`SECURE_SESSION_COOKIE`] when cookies
    /// are secure, else [`SESSION_COOKIE`].
    pub fn session_cookie_name(&self) -> &'static str {
        if self.cookies_are_secure() {
            SECURE_SESSION_COOKIE
        } else {
            SESSION_COOKIE
        }
    }

    /// The `Content-Security-Policy` of every page.
    pub fn content_security_policy(&self) -> String {
        format!(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors {}",
            valid_frame_ancestors(&self.frame_ancestors).unwrap_or("'none'")
        )
    }
}

/// `value` if it is fit for `frame-ancestors`: printable ASCII sources
/// without the separators that would end the directive or the header.
pub fn valid_frame_ancestors(value: &str) -> Option<&str> {
    let value = value.trim();
    (!value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_graphic() && c != ';' && c != ',' || c == ' '))
    .then_some(value)
}

/// `POST /v1/accounts/{account_id}/portal-sessions`.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct PortalSessionRequest {
    /// Where sign-out sends the customer: an absolute http(s) URL (the
    /// platform's own page). Without it, a signed-out page of the router.
    #[schema(
        example = "https://platform.example/settings",
        max_length = 2048,
        pattern = r#"^https?://[!-"$-.0->A-[\]-~]+([/?#][!-~]*)?$"#
    )]
    pub return_url: Option<String>,
}

/// A one-time link to the page.
#[derive(Serialize, ToSchema)]
pub struct PortalSessionView {
    /// The link: give it to the customer now; it works once.
    #[schema(example = "https://portal.example/ui/session/ak_0123…")]
    pub url: String,
    /// When the link stops working (5 minutes from now by default).
    #[schema(format = DateTime)]
    pub expires_at: String,
}

/// A JSON body that may be absent altogether, or `null`.
pub(crate) struct OptionalJson<T>(Option<T>);

impl<T: serde::de::DeserializeOwned> FromRequest<AppState> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let headers = req.headers();
        // No body at all, or a declared empty one (whatever its type).
        let length = headers.get(header::CONTENT_LENGTH);
        let empty = length.is_some_and(|v| v.as_bytes() == b"0")
            || length.is_none()
                && !headers.contains_key(header::CONTENT_TYPE)
                && !headers.contains_key(header::TRANSFER_ENCODING);
        if empty {
            return Ok(OptionalJson(None));
        }
        // `null`, which the document allows for an optional body, is no
        // body too.
        let ApiJson(value) = ApiJson::<Option<T>>::from_request(req, state).await?;
        Ok(OptionalJson(value))
    }
}

/// Opens a one-time link to the API Keys page for an account, for its
/// logged-in customer: valid 5 minutes, usable once.
#[utoipa::path(
    post, path = "/v1/accounts/{account_id}/portal-sessions", tag = "portal",
    request_body(content = Option<PortalSessionRequest>, description = "Optional"),
    params(
        ("account_id" = String, Path, description = "The account the session acts as", pattern = "^acc_[0-9a-f]{32}$"),
        ("X-Acting-Account" = Option<String>, Header, description = "Act as this account (it may open links for what it may manage)", pattern = "^acc_[0-9a-f]{32}$"),
    ),
    responses(
        crate::error::AdminErrors,
        crate::error::BodyErrors,
        (status = 201, description = "The link (`Cache-Control: no-store`)", body = PortalSessionView),
        (status = 400, description = "Bad input: the id or the return URL", body = ErrorBody),
        (status = 403, description = "Asked with a portal session rather than the admin token", body = ErrorBody),
        (status = 404, description = "No such account, or one the acting account may not manage", body = ErrorBody),
    ),
    security(("admin_token" = []))
)]
// An axum handler: each argument is an extractor.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn open_portal_session(
    State(state): State<AppState>,
    crate::admin::Admin(actor): crate::admin::Admin,
    via: Option<axum::Extension<ViaSession>>,
    OriginalUri(original): OriginalUri,
    uri: Uri,
    headers: HeaderMap,
    ApiPath(id): ApiPath<AccountId>,
    OptionalJson(body): OptionalJson<PortalSessionRequest>,
) -> Result<Response, ApiError> {
    if via.is_some() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            crate::error::ErrorCode::Forbidden,
            "portal sessions are opened with the admin token, not from a portal session",
        ));
    }
    let return_url = body
        .unwrap_or_default()
        .return_url
        .map(|u| validate_return_url(&u))
        .transpose()?;
    // Who may act on the account is the service's decision, worded as
    // everywhere else (an account the actor may not see is "not found").
    let account = state
        .run(Cost::Fast, move |k| k.account(actor, id))
        .await??;
    let config = state.portal().config();
    let origin = match &config.public_origin {
        Some(o) => o.clone(),
        None => origin_from_host(&headers, config.cookies_are_secure())?,
    };
    // The prefix the router is nested under, if any.
    let prefix = original
        .path()
        .strip_suffix(uri.path())
        .unwrap_or_default()
        .to_owned();
    let now = state.sync().now();
    let (token, expires_at) = state.portal().open_link(account.id, return_url, now);
    let view = PortalSessionView {
        url: format!(
            "{origin}{prefix}{}/session/{}",
            config.path.trim_end_matches('/'),
            token.expose_secret()
        ),
        expires_at: crate::dto::rfc3339(expires_at),
    };
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(view),
    )
        .into_response())
}

/// An absolute http(s) URL with a host, no user part, no spaces or control
/// characters, at most 2048 characters.
fn validate_return_url(url: &str) -> Result<String, ApiError> {
    let bad = |why: &str| {
        ApiError::bad_request(
            crate::error::ErrorCode::InvalidReturnUrl,
            format!(
                "return_url {why}: it must be an absolute http:// or https:// URL of at most 2048 characters"
            ),
        )
    };
    if url.len() > 2048 {
        return Err(bad("is too long"));
    }
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad("contains spaces or control characters"));
    }
    // It travels in a `Location` header: ASCII only.
    if !url.is_ascii() {
        return Err(bad("has characters outside ASCII (percent-encode them)"));
    }
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| bad("is not an http(s) URL"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        return Err(bad("has no host"));
    }
    if authority.contains('@') || authority.contains('\\') {
        return Err(bad("has a user part"));
    }
    Ok(url.to_owned())
}

/// `http(s)://<Host>`, when no public origin is configured.
fn origin_from_host(headers: &HeaderMap, secure: bool) -> Result<String, ApiError> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
        .ok_or_else(|| {
            ApiError::bad_request(
                crate::error::ErrorCode::InvalidHost,
                "no usable Host header to build the link from: configure the public origin",
            )
        })?;
    Ok(format!(
        "{}://{host}",
        if secure { "https" } else { "http" }
    ))
}

/// Marks a request authenticated by a portal session.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ViaSession;

/// The session cookie's value among the request's cookies.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// The account a request's session cookie acts as, when it has one and no
/// `Authorization` (the admin extractor asks). A dead session is 401,
/// `X-Acting-Account` beside a session 400, a change without the session's
/// CSRF token 403.
pub(crate) fn session_actor(
    parts: &mut Parts,
    state: &AppState,
) -> Result<Option<Actor>, ApiError> {
    let name = state.portal().config().session_cookie_name();
    let Some(value) = cookie(&parts.headers, name) else {
        return Ok(None);
    };
    let session = state
        .portal()
        .session(value, state.sync().now())
        .ok_or_else(session_ended)?;
    if parts
        .headers
        .contains_key(crate::admin::ACTING_ACCOUNT_HEADER)
    {
        return Err(ApiError::bad_request(
            crate::error::ErrorCode::ActingAccountWithSession,
            "X-Acting-Account is not accepted with a portal session: the session acts as its own account",
        ));
    }
    if !is_safe(&parts.method) {
        let presented = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !session.csrf_matches(presented) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                crate::error::ErrorCode::CsrfFailed,
                "missing or wrong X-CSRF-Token: a change made with a portal session must carry the page's CSRF token",
            ));
        }
    }
    parts.extensions.insert(ViaSession);
    Ok(Some(Actor::Account(session.account)))
}

fn session_ended() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        crate::error::ErrorCode::SessionEnded,
        "the portal session has ended (signed out, or idle too long): open the page again from your platform",
    )
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Every answer to a request with a session cookie is `no-store`: it shows
/// an account's keys, and may show a secret.
pub(crate) async fn no_store_for_sessions(req: Request, next: Next) -> Response {
    let with_session = cookie(req.headers(), SESSION_COOKIE).is_some()
        || cookie(req.headers(), SECURE_SESSION_COOKIE).is_some();
    let mut response = next.run(req).await;
    if with_session {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The page's routes, under [`UiConfig::path`].
pub(crate) fn routes(state: &AppState) -> Router<AppState> {
    let p = state.portal().config().path.clone();
    let p = if p == "/" { String::new() } else { p };
    Router::new()
        .route(&format!("{p}/"), get(page::page))
        .route(&format!("{p}/static/ui.css"), get(stylesheet))
        .route(&format!("{p}/static/ui.js"), get(script))
        .route(&format!("{p}/session/{{token}}"), get(open_link))
        .route(&format!("{p}/session/end"), post(sign_out))
        .route(&format!("{p}/signed-out"), get(signed_out))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            page_headers,
        ))
        .merge(if p.is_empty() {
            Router::new()
        } else {
            let last = p.rsplit('/').next().unwrap_or_default().to_owned();
            Router::new().route(
                &p,
                get(move || async move { redirect(&format!("{last}/")) }),
            )
        })
}

/// The security headers of every page and asset.
async fn page_headers(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let csp = state.portal().config().content_security_policy();
    let deny_framing = state.portal().config().frame_ancestors.trim() == "'none'";
    let asset = req.uri().path().contains("/static/");
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if deny_framing {
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    if !asset {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

fn redirect(to: &str) -> Response {
    match HeaderValue::from_str(to) {
        Ok(location) => (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("ui.css"),
    )
        .into_response()
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("ui.js"),
    )
        .into_response()
}

fn cookie_header(state: &AppState, name: &str, value: &str, extra: &str) -> HeaderValue {
    let secure = if state.portal().config().cookies_are_secure() {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!("{name}={value}; HttpOnly; Path=/{extra}{secure}"))
        .unwrap_or_else(|_| HeaderValue::from_static("apikeys_invalid=; Max-Age=0"))
}

/// `GET {path}/session/{token}`: uses a link, starts a session, and sends
/// the browser to the page.
async fn open_link(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let now = state.sync().now();
    let Some(cookie) = state.portal().redeem(&token, now) else {
        return page::message(
            StatusCode::GONE,
            "This link cannot be used",
            "A link to the API Keys page works once, for a few minutes. Open the page again from your account settings on the platform.",
            "",
        );
    };
    let mut response = redirect("../");
    let h = response.headers_mut();
    h.append(
        header::SET_COOKIE,
        cookie_header(
            &state,
            state.portal().config().session_cookie_name(),
            cookie.expose_secret(),
            "; SameSite=Strict",
        ),
    );
    h.append(
        header::SET_COOKIE,
        cookie_header(&state, PENDING_COOKIE, "1", "; SameSite=Lax; Max-Age=60"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[derive(Deserialize)]
struct SignOutForm {
    csrf_token: String,
}

/// `POST {path}/session/end`: ends the session (with its CSRF token) and
/// goes to the return URL or the signed-out page.
async fn sign_out(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(value) = cookie(&headers, state.portal().config().session_cookie_name()) else {
        return redirect("../signed-out");
    };
    let Some(session) = state.portal().session(value, state.sync().now()) else {
        return clear_session(&state, redirect("../signed-out"));
    };
    let form: Option<SignOutForm> = serde_urlencoded::from_bytes(&body).ok();
    if !form.is_some_and(|f| session.csrf_matches(&f.csrf_token)) {
        return page::message(
            StatusCode::FORBIDDEN,
            "Sign-out refused",
            "The request did not carry this page's security token. Use the Sign out button of the API Keys page.",
            "../",
        );
    }
    state.portal().end(value);
    let to = session
        .return_url
        .unwrap_or_else(|| "../signed-out".to_owned());
    clear_session(&state, redirect(&to))
}

fn clear_session(state: &AppState, mut response: Response) -> Response {
    response.headers_mut().append(
        header::SET_COOKIE,
        cookie_header(
            state,
            state.portal().config().session_cookie_name(),
            "",
            "; SameSite=Strict; Max-Age=0",
        ),
    );
    response
}

async fn signed_out() -> Response {
    page::message(
        StatusCode::OK,
        "Signed out",
        "You are signed out of the API Keys page. Open it again from your account settings on the platform.",
        "",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_urls_are_checked() {
        assert!(validate_return_url("https://platform.example/settings?x=1").is_ok());
        assert!(validate_return_url("http://127.0.0.1:3000/").is_ok());
        for bad in [
            "javascript:alert(1)",
            "//evil.example/",
            "/relative",
            "https://",
            "https://user@evil.example/",
            "https://a.example/\nSet-Cookie: x",
            "ftp://a.example/",
            "https://bücher.example/",
        ] {
            assert!(validate_return_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn frame_ancestors_cannot_add_directives() {
        assert_eq!(
            valid_frame_ancestors("'self' https://a.example"),
            Some("'self' https://a.example")
        );
        assert_eq!(valid_frame_ancestors("'none'; script-src *"), None);
        assert_eq!(valid_frame_ancestors(""), None);
        let csp = UiConfig::default()
            .frame_ancestors("x; y")
            .content_security_policy();
        assert!(csp.ends_with("frame-ancestors 'none'"));
    }
}

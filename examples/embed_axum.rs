//! An SMS gateway of its own that protects its `POST /send-sms` with
//! apikeys: REST Basic credentials or a bearer token, the key's IP whitelist
//! honoured, guessing throttled. It opens customers and rotates their keys
//! with its own code, through the library.
//!
//! `cargo run --example embed_axum -- [ADDR] [DB]` (default
//! `127.0.0.1:3000`, `./sms-gateway.sqlite3`). Then:
//!
//! ```sh
//! curl -s -X POST localhost:3000/customers            # {"customer", "client_id", "secret"}
//! curl -s -u CLIENT_ID:SECRET localhost:3000/token    # {"token", ...}
//! curl -s -u CLIENT_ID:SECRET -X POST localhost:3000/send-sms -d 'to=27820000000&text=hi'
//! curl -s -H "Authorization: Bearer TOKEN" -X POST localhost:3000/send-sms -d 'to=27820000000'
//! ```
//!
//! The apikeys-specific glue is the five lines marked `// glue`.

use apikeys::{Actor, ApiKeys, Channel, CredentialChange, NewAccount, NewKey, Policy};
use apikeys_http::{ApiKey, ApiKeyLayer, AsyncApiKeys, Lanes, ServeOptions}; // glue
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{post, put};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::sync::Arc;

/// The gateway's own handler: who sends is whoever the key belongs to.
async fn send_sms(ApiKey(who): ApiKey, body: String) -> Json<Value> {
    // glue
    Json(json!({"queued": true, "for": who.account_id.to_string(), "message": body}))
}

/// Trades the caller's Basic credentials for a bearer token.
async fn token(
    State(keys): State<AsyncApiKeys>,
    ApiKey(who): ApiKey,
) -> Result<Json<Value>, StatusCode> {
    let issued = keys
        .run(apikeys::Cost::Fast, move |k| k.issue_token(&who))
        .await
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?
        .map_err(|_| StatusCode::CONFLICT)?;
    Ok(Json(
        json!({"token": issued.token.expose_secret(), "expires_at": issued.expires_at.to_string()}),
    ))
}

/// The gateway's own sign-up: a new customer and its REST key.
async fn new_customer(State(keys): State<AsyncApiKeys>) -> Result<Json<Value>, StatusCode> {
    let opened = keys
        .run(apikeys::Cost::Fast, |k| {
            let customer = k.open_account(Actor::Operator, NewAccount::master())?;
            let key = k.create_key(
                Actor::Operator,
                customer.account.id,
                NewKey::generated(Channel::Rest),
            )?;
            Ok::<_, apikeys::Error>((customer.account.id, key))
        })
        .await
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    let (customer, key) = opened;
    Ok(Json(json!({
        "customer": customer.to_string(),
        "key": key.key.id.to_string(),
        "client_id": key.key.identifier,
        "secret": key.secret.map(|s| s.expose_secret().to_owned()),
    })))
}

/// The gateway's own rotation: a new secret for a customer's key.
async fn rotate(
    State(keys): State<AsyncApiKeys>,
    Path(key): Path<String>,
) -> Result<Json<Value>, StatusCode> {
    let key = key.parse().map_err(|_| StatusCode::BAD_REQUEST)?;
    let issued = keys
        .run(apikeys::Cost::Fast, move |k| {
            k.change_credentials(Actor::Operator, key, CredentialChange::regenerate_secret())
        })
        .await
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?
        .map_err(|_| StatusCode::NOT_FOUND)?;
    Ok(Json(
        json!({"secret": issued.secret.map(|s| s.expose_secret().to_owned())}),
    ))
}

/// The gateway's own whitelist setting.
async fn whitelist(
    State(keys): State<AsyncApiKeys>,
    Path(key): Path<String>,
    Json(entries): Json<Vec<String>>,
) -> Result<StatusCode, StatusCode> {
    let key = key.parse().map_err(|_| StatusCode::BAD_REQUEST)?;
    let nets = entries
        .iter()
        .map(|e| apikeys::whitelist::parse_entry(e))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| StatusCode::BAD_REQUEST)?;
    keys.run(apikeys::Cost::Fast, move |k| {
        k.set_whitelist(Actor::Operator, key, nets)
    })
    .await
    .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?
    .map_err(|_| StatusCode::NOT_FOUND)?;
    Ok(StatusCode::NO_CONTENT)
}

/// The gateway: its customer routes, and its protected ones.
pub fn app(db: &std::path::Path) -> Result<Router, Box<dyn std::error::Error>> {
    let store = Arc::new(apikeys_sqlite::SqliteStore::open(db)?);
    let keys = AsyncApiKeys::new(
        Arc::new(ApiKeys::production(store, Policy::default())?),
        Lanes::default(),
    ); // glue
    let protected = Router::new()
        .route("/send-sms", post(send_sms))
        .route("/token", axum::routing::get(token))
        .layer(ApiKeyLayer::rest(keys.clone())); // glue
    Ok(Router::new()
        .route("/customers", post(new_customer))
        .route("/keys/{key}/rotate", post(rotate))
        .route("/keys/{key}/whitelist", put(whitelist))
        .merge(protected)
        .with_state(keys))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:3000".into());
    let db = args.next().unwrap_or_else(|| "sms-gateway.sqlite3".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("sms gateway on http://{}", listener.local_addr()?);
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    apikeys_http::serve(
        listener,
        app(db.as_ref())?,
        ServeOptions::default(),
        shutdown,
    )
    .await?; // glue
    Ok(())
}

/// The app served on a real socket and used as its customers would: good
/// and bad credentials, an address outside the whitelist, throttling, a
/// token, and a token refused after the key's secret changed.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use serde_json::Value;
    use std::net::SocketAddr;
    use std::time::Duration;

    struct Gateway {
        addr: SocketAddr,
        _dir: tempfile::TempDir,
        _runtime: tokio::runtime::Runtime,
    }

    fn start() -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let app = super::app(&dir.path().join("gateway.sqlite3")).unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        runtime.spawn(apikeys_http::serve(
            listener,
            app,
            apikeys_http::ServeOptions::default(),
            std::future::pending(),
        ));
        Gateway {
            addr,
            _dir: dir,
            _runtime: runtime,
        }
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into()
    }

    fn call(
        gw: &Gateway,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: &str,
    ) -> (u16, Value) {
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", gw.addr));
        if let Some(a) = auth {
            request = request.header("Authorization", a);
        }
        if !body.is_empty() {
            request = request.header("Content-Type", "application/json");
        }
        let mut response = agent()
            .run(request.body(body.as_bytes().to_vec()).unwrap())
            .unwrap();
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn basic(id: &str, secret: &str) -> String {
        use base64ct::{Base64, Encoding};
        format!(
            "Basic {}",
            Base64::encode_string(format!("{id}:{secret}").as_bytes())
        )
    }

    fn text(v: &Value, field: &str) -> String {
        v[field].as_str().unwrap().to_owned()
    }

    #[test]
    fn the_embedding_app_end_to_end() {
        let gw = start();
        let (status, customer) = call(&gw, "POST", "/customers", None, "");
        assert_eq!(status, 200, "{customer}");
        let (key, id, secret) = (
            text(&customer, "key"),
            text(&customer, "client_id"),
            text(&customer, "secret"),
        );

        // Good and bad credentials.
        let (status, sent) = call(
            &gw,
            "POST",
            "/send-sms",
            Some(&basic(&id, &secret)),
            "to=27820000000",
        );
        assert_eq!(status, 200, "{sent}");
        assert_eq!(sent["for"], customer["customer"]);
        let (status, refused) = call(
            &gw,
            "POST",
            "/send-sms",
            Some(&basic(&id, "not-the-secret")),
            "x",
        );
        assert_eq!(
            (status, refused["error"].as_str()),
            (401, Some("invalid_credentials"))
        );
        assert_eq!(call(&gw, "POST", "/send-sms", None, "x").0, 401);

        // A token, then the token refused after the key's secret changed.
        let (status, issued) = call(&gw, "GET", "/token", Some(&basic(&id, &secret)), "");
        assert_eq!(status, 200, "{issued}");
        let bearer = format!("Bearer {}", text(&issued, "token"));
        assert_eq!(
            call(&gw, "POST", "/send-sms", Some(&bearer), "via token").0,
            200
        );
        let (status, rotated) = call(&gw, "POST", &format!("/keys/{key}/rotate"), None, "");
        assert_eq!(status, 200, "{rotated}");
        let (status, refused) = call(&gw, "POST", "/send-sms", Some(&bearer), "via token");
        assert_eq!(
            (status, refused["error"].as_str()),
            (401, Some("invalid_credentials"))
        );
        let secret = text(&rotated, "secret");
        assert_eq!(
            call(&gw, "POST", "/send-sms", Some(&basic(&id, &secret)), "x").0,
            200
        );

        // An address outside the whitelist: right credentials, still refused.
        let (status, _) = call(
            &gw,
            "PUT",
            &format!("/keys/{key}/whitelist"),
            None,
            r#"["203.0.113.0/24"]"#,
        );
        assert_eq!(status, 204);
        let (status, refused) = call(&gw, "POST", "/send-sms", Some(&basic(&id, &secret)), "x");
        assert_eq!(
            (status, refused["error"].as_str()),
            (403, Some("address_not_allowed"))
        );
        call(&gw, "PUT", &format!("/keys/{key}/whitelist"), None, "[]");

        // Guessing is throttled: past five failures (the refusals above count
        // too), 429, even with the right secret.
        let mut guesses = 0;
        loop {
            let guess = basic(&id, &format!("guess-{guesses:08}"));
            let (status, _) = call(&gw, "POST", "/send-sms", Some(&guess), "x");
            if status == 429 {
                break;
            }
            assert_eq!(status, 401);
            guesses += 1;
            assert!(guesses <= 6, "still no throttle after {guesses} guesses");
        }
        let (status, throttled) = call(&gw, "POST", "/send-sms", Some(&basic(&id, &secret)), "x");
        assert_eq!(
            (status, throttled["error"].as_str()),
            (429, Some("throttled"))
        );
    }

    /// The glue the example needs is counted: at most five lines.
    #[test]
    fn the_example_needs_at_most_five_lines_of_glue() {
        let source = include_str!("embed_axum.rs");
        let glue = source
            .lines()
            .filter(|l| l.trim_end().ends_with("// glue"))
            .count();
        assert!(glue <= 5, "{glue} lines of glue");
        assert!(glue >= 4, "the glue is marked: {glue} lines");
    }
}

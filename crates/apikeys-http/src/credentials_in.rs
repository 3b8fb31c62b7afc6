//! Credentials as the channels send them, read once for the router's own
//! routes and for [`crate::ApiKeyLayer`] alike.

use crate::dto::HttpCredentials;
use apikeys::Secret;
use axum::http::{HeaderMap, header};
use base64ct::{Base64, Encoding};

/// What a request carried.
pub(crate) enum Found {
    /// No credentials of this style at all.
    Nothing,
    /// Credentials of this style, but unreadable: what is expected.
    Malformed(&'static str),
    /// An identifier and a secret (the secret wiped on drop).
    Credentials(String, Secret),
    /// A REST bearer token.
    Token(Secret),
}

const BASIC_SHAPE: &str = "send `Authorization: Basic base64(client_id:secret)`";
const BEARER_SHAPE: &str =
    "send `Authorization: Bearer <token>`, a token from GET /v1/rest/authentication";
const PARAMS_SHAPE: &str = "send `username=<identifier>&password=<secret>`";

/// REST's credentials: `Authorization: Basic base64(identifier:secret)`
/// (the decoded text is held as a [`Secret`] so that it is wiped on drop),
/// or `Authorization: Bearer <token>`. Another scheme is `Nothing` here.
pub(crate) fn rest_credentials(headers: &HeaderMap) -> Found {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Found::Nothing;
    };
    let Some((scheme, encoded)) = value.to_str().ok().and_then(|v| v.split_once(' ')) else {
        return Found::Malformed(BASIC_SHAPE);
    };
    if scheme.eq_ignore_ascii_case("bearer") {
        return match encoded.trim() {
            "" => Found::Malformed(BEARER_SHAPE),
            token => Found::Token(Secret::new(token)),
        };
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return Found::Nothing;
    }
    let Some(decoded) = Base64::decode_vec(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .map(Secret::new)
    else {
        return Found::Malformed(BASIC_SHAPE);
    };
    match decoded.expose_secret().split_once(':') {
        Some((identifier, secret)) => {
            Found::Credentials(identifier.to_owned(), Secret::new(secret))
        }
        None => Found::Malformed(BASIC_SHAPE),
    }
}

/// The HTTP channel's `username` and `password` in a query string.
pub(crate) fn query_credentials(query: Option<&str>) -> Found {
    params(query.unwrap_or_default().as_bytes())
}

/// The same in an `application/x-www-form-urlencoded` body.
pub(crate) fn form_credentials(body: &[u8]) -> Found {
    params(body)
}

fn params(encoded: &[u8]) -> Found {
    match serde_urlencoded::from_bytes::<HttpCredentials>(encoded) {
        Ok(HttpCredentials {
            username: Some(identifier),
            password: Some(secret),
        }) => Found::Credentials(identifier, secret.0),
        Ok(HttpCredentials {
            username: None,
            password: None,
        }) => Found::Nothing,
        Ok(_) | Err(_) => Found::Malformed(PARAMS_SHAPE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn auth(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    fn pair(found: Found) -> Option<(String, String)> {
        match found {
            Found::Credentials(i, s) => Some((i, s.expose_secret().to_owned())),
            _ => None,
        }
    }

    #[test]
    fn basic() {
        let encoded = Base64::encode_string(b"client-1:se:cret");
        assert_eq!(
            pair(rest_credentials(&auth(&format!("Basic {encoded}")))),
            Some(("client-1".into(), "se:cret".into())),
            "the secret may hold colons; the identifier cannot"
        );
        assert!(matches!(
            rest_credentials(&HeaderMap::new()),
            Found::Nothing
        ));
        assert!(
            matches!(rest_credentials(&auth("Bearer abc")), Found::Token(t) if t.expose_secret() == "abc")
        );
        assert!(matches!(
            rest_credentials(&auth("Bearer  ")),
            Found::Malformed(_)
        ));
        assert!(matches!(
            rest_credentials(&auth("Digest x")),
            Found::Nothing
        ));
        assert!(matches!(
            rest_credentials(&auth("Basic !!!")),
            Found::Malformed(_)
        ));
        let no_colon = Base64::encode_string(b"nocolon");
        assert!(matches!(
            rest_credentials(&auth(&format!("basic {no_colon}"))),
            Found::Malformed(_)
        ));
    }

    #[test]
    fn params_in_query_and_form() {
        assert_eq!(
            pair(query_credentials(Some("username=u-1&password=p%26w&to=27"))),
            Some(("u-1".into(), "p&w".into()))
        );
        assert!(matches!(query_credentials(None), Found::Nothing));
        assert!(matches!(query_credentials(Some("to=27")), Found::Nothing));
        assert!(matches!(
            query_credentials(Some("username=u-1")),
            Found::Malformed(_)
        ));
        assert_eq!(
            pair(form_credentials(b"password=pw&username=u-2&text=hello")),
            Some(("u-2".into(), "pw".into()))
        );
    }
}

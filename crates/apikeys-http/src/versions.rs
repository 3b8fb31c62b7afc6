//! A key's version on the wire: every answer carrying one key carries
//! `ETag: "<version>"` (a strong tag), and every change of a key honours
//! `If-Match`, so that two people editing one key from the same read cannot
//! overwrite each other: the second is answered 412 `precondition_failed`
//! and nothing is written.
//!
//! `If-Match` is `*` (any version: the key must exist, as every change
//! needs anyway) or a comma-separated list of entity tags; the change
//! applies if the key is at one of the versions listed. Comparison is
//! strong (RFC 9110, 13.1.1): a weak tag (`W/"3"`) and a tag that is not a
//! version this server writes (`"03"`, `"x"`) match nothing. A value that
//! is not an entity-tag list is a 400 `invalid_header`. Without `If-Match`,
//! a change applies to the key as it is.

use crate::error::{ApiError, ErrorCode};
use apikeys::Precondition;
use axum::extract::FromRequestParts;
use axum::http::header::{ETAG, IF_MATCH};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};

/// The pattern of an `If-Match` value this server accepts, as the OpenAPI
/// document gives it; [`parse_if_match`] accepts exactly these values.
pub const IF_MATCH_PATTERN: &str = r#"^(\*|(W/)?"[!#-~]*"( *, *(W/)?"[!#-~]*")*)$"#;

/// `ETag: "<version>"`.
pub(crate) fn etag(version: u64) -> HeaderValue {
    // Digits and quotes: always a valid header value.
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// A header map holding only the key's `ETag`.
pub(crate) fn etag_headers(version: u64) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(ETAG, etag(version));
    headers
}

/// The request's `If-Match`, as the change's [`Precondition`].
#[derive(Debug)]
pub(crate) struct IfMatch(pub(crate) Precondition);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let mut values = parts.headers.get_all(IF_MATCH).iter().peekable();
        if values.peek().is_none() {
            return Ok(IfMatch(Precondition::Any));
        }
        // Several header lines are one list (RFC 9110, 5.3).
        let mut any = false;
        let mut versions = Vec::new();
        for value in values {
            let parsed = value
                .to_str()
                .ok()
                .and_then(parse_if_match)
                .ok_or_else(malformed)?;
            match parsed {
                Precondition::Any => any = true,
                Precondition::OneOf(v) => versions.extend(v),
            }
        }
        Ok(IfMatch(if any {
            Precondition::Any
        } else {
            Precondition::OneOf(versions)
        }))
    }
}

fn malformed() -> ApiError {
    ApiError::bad_request(
        ErrorCode::InvalidHeader,
        "If-Match must be `*` or a comma-separated list of entity tags such as \"3\" (the key's ETag)",
    )
}

/// One `If-Match` value, or `None` if it is not `*` nor a list of entity
/// tags (see [`IF_MATCH_PATTERN`]).
pub(crate) fn parse_if_match(value: &str) -> Option<Precondition> {
    if value == "*" {
        return Some(Precondition::Any);
    }
    let mut versions = Vec::new();
    let mut rest = value;
    loop {
        let (weak, tag_and_more) = match rest.strip_prefix("W/") {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let inner = tag_and_more.strip_prefix('"')?;
        let end = inner.find('"')?;
        let opaque = &inner[..end];
        if !opaque
            .bytes()
            .all(|b| b == b'!' || (b'#'..=b'~').contains(&b))
        {
            return None;
        }
        // Strong comparison: only a strong tag spelled as this server
        // writes versions can match.
        if !weak
            && let Ok(v) = opaque.parse::<u64>()
            && v.to_string() == opaque
        {
            versions.push(v);
        }
        rest = &inner[end + 1..];
        if rest.is_empty() {
            return Some(Precondition::OneOf(versions));
        }
        rest = rest.trim_start_matches(' ').strip_prefix(',')?;
        rest = rest.trim_start_matches(' ');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_values() {
        let one_of = |v: &[u64]| Some(Precondition::OneOf(v.to_vec()));
        assert_eq!(parse_if_match("*"), Some(Precondition::Any));
        assert_eq!(parse_if_match("\"3\""), one_of(&[3]));
        assert_eq!(parse_if_match("\"3\", \"5\""), one_of(&[3, 5]));
        assert_eq!(parse_if_match("\"3\",\"5\"  ,  \"7\""), one_of(&[3, 5, 7]));
        assert_eq!(parse_if_match("W/\"3\""), one_of(&[]), "weak never matches");
        assert_eq!(parse_if_match("\"03\", \"x\", \"\""), one_of(&[]));
        assert_eq!(
            parse_if_match("\"18446744073709551616\""),
            one_of(&[]),
            "beyond u64: no version"
        );
        for bad in [
            "",
            "3",
            "\"3",
            "3\"",
            "\"3\" \"4\"",
            "\"3\",",
            ",\"3\"",
            "**",
            "* ",
            " \"3\"",
            "\"3\" ",
            "w/\"3\"",
            "\"a b\"",
            "\"3\";",
            "\"\\\"\"",
        ] {
            assert_eq!(parse_if_match(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn etags_are_strong_quoted_versions() {
        assert_eq!(etag(1), "\"1\"");
        assert_eq!(
            etag(u64::MAX).to_str().unwrap(),
            format!("\"{}\"", u64::MAX)
        );
    }
}

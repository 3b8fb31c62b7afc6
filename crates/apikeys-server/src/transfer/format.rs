//! The transfer format: JSON Lines, one account per line, read by `import`
//! and written by `export` (see `examples/import.jsonl`).
//!
//! ```text
//! {"external_id": "CUST-1", "kind": "master", "created_at": "2019-04-01T08:00:00Z",
//!  "keys": [{"channel": "ftp", "identifier": "acme-ftp", "secret_hash": "$2y$10$…"}]}
//! {"external_id": "CUST-1-A", "kind": "sub", "parent_external_id": "CUST-1",
//!  "created_at": "2020-01-01T00:00:00Z", "keys": []}
//! ```
//!
//! Rules:
//! - An unknown field is an error (a misspelt `secret_hash` must not import
//!   a key without its secret).
//! - A master names no parent; a sub-account names its master's external id.
//! - A key has exactly one of `secret` (plaintext) and `secret_hash`.
//! - Instants are RFC 3339; `enabled` defaults to true; `label`,
//!   `whitelist` and `expires_at` are optional.
//! - A blank line is skipped.

use apikeys::service::{ImportAccount, ImportKey, ImportKind, ImportSecret};
use apikeys::{Channel, ExternalId, Secret};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// What the first pass reads of a line: who it is and who its master is.
#[derive(Deserialize)]
pub(crate) struct Head {
    pub(crate) external_id: String,
    pub(crate) kind: String,
    #[serde(default)]
    pub(crate) parent_external_id: Option<String>,
}

/// Whether a line is a sub-account's, for the stream that takes it: its
/// kind says so, or it names a master (a master line naming one is refused
/// there, by [`to_import`]).
pub(crate) fn is_sub(kind: &str, parent_external_id: Option<&str>) -> bool {
    kind == "sub" || parent_external_id.is_some()
}

/// One line, whole.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Line {
    pub(crate) external_id: String,
    pub(crate) kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) parent_external_id: Option<String>,
    pub(crate) created_at: String,
    #[serde(default)]
    pub(crate) keys: Vec<LineKey>,
}

/// One key of a line.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LineKey {
    pub(crate) channel: String,
    pub(crate) identifier: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) secret_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) label: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) whitelist: Vec<String>,
    #[serde(default = "enabled")]
    pub(crate) enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) expires_at: Option<String>,
}

fn enabled() -> bool {
    true
}

impl std::fmt::Debug for LineKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineKey")
            .field("channel", &self.channel)
            .field("identifier", &self.identifier)
            .finish_non_exhaustive()
    }
}

/// Reads one line. The error never quotes the line (it may hold a secret):
/// serde's message names the field and the position.
pub(crate) fn parse_line(text: &str) -> Result<Line, String> {
    serde_json::from_str(text).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Data => "bad field",
            _ => "bad JSON",
        };
        format!("{what}: {}", without_values(&e.to_string()))
    })
}

/// serde's message without any quoted value it echoes (a value might be a
/// secret put in the wrong field): `invalid type: string "…"` becomes
/// `invalid type: string`.
fn without_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quoted = false;
    for c in message.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                if !quoted {
                    out.push_str("\"…\"");
                }
            }
            _ if quoted => {}
            c => out.push(c),
        }
    }
    out
}

fn instant(field: &str, text: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(text, &Rfc3339).map_err(|_| {
        format!(
            "{field} `{}` is not an RFC 3339 instant (e.g. 2019-04-01T08:00:00Z)",
            cut(text)
        )
    })
}

/// At most 64 characters of a value for a message.
fn cut(text: &str) -> String {
    text.chars().take(64).collect()
}

/// The external id of a line, checked.
pub(crate) fn external_id(field: &str, text: &str) -> Result<ExternalId, String> {
    ExternalId::new(text).map_err(|e| format!("{field}: {e}"))
}

/// The account a line describes, checked for everything the line alone
/// can tell.
pub(crate) fn to_import(line: Line) -> Result<ImportAccount, String> {
    let external = external_id("external_id", &line.external_id)?;
    let kind = match (line.kind.as_str(), &line.parent_external_id) {
        ("master", None) => ImportKind::Master,
        ("master", Some(_)) => {
            return Err("a master names no parent_external_id".into());
        }
        ("sub", Some(parent)) => ImportKind::Sub {
            parent: external_id("parent_external_id", parent)?,
        },
        ("sub", None) => {
            return Err("a sub-account needs parent_external_id, its master's external id".into());
        }
        (other, _) => {
            return Err(format!(
                "kind `{}` is neither `master` nor `sub`",
                cut(other)
            ));
        }
    };
    if let ImportKind::Sub { parent } = &kind
        && *parent == external
    {
        return Err("a sub-account cannot be its own master".into());
    }
    let created_at = instant("created_at", &line.created_at)?;
    let keys = line
        .keys
        .into_iter()
        .enumerate()
        .map(|(i, k)| to_key(k).map_err(|e| format!("key {}: {e}", i + 1)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ImportAccount {
        external_id: external,
        kind,
        created_at,
        keys,
    })
}

fn to_key(k: LineKey) -> Result<ImportKey, String> {
    let channel: Channel = k.channel.parse().map_err(|_| {
        format!(
            "channel `{}` is unknown: use ftp, rest, http, web_service or email",
            cut(&k.channel)
        )
    })?;
    let secret = match (k.secret, k.secret_hash) {
        (Some(s), None) => ImportSecret::Plaintext(Secret::new(s)),
        (None, Some(h)) => ImportSecret::Hash(h),
        (Some(_), Some(_)) => {
            return Err("give `secret` or `secret_hash`, not both".into());
        }
        (None, None) => {
            return Err(
                "no credential: give `secret` (plaintext) or `secret_hash` (the old system's hash)"
                    .into(),
            );
        }
    };
    let whitelist = k
        .whitelist
        .iter()
        .map(|e| apikeys::whitelist::parse_entry(e).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let expires_at = k
        .expires_at
        .as_deref()
        .map(|t| instant("expires_at", t))
        .transpose()?;
    Ok(ImportKey {
        channel,
        identifier: k.identifier,
        secret,
        label: k.label,
        whitelist,
        enabled: k.enabled,
        expires_at,
    })
}

/// An instant as the format writes it.
pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_never_echo_values() {
        let e = parse_line(r#"{"external_id": "a", "kind": "master", "created_at": "2020-01-01T00:00:00Z", "keys": [{"channel": "ftp", "identifier": "abc", "enabled": "Sup3r-Secret-Value"}]}"#)
            .err()
            .unwrap_or_default();
        assert!(e.starts_with("bad field: invalid type"), "{e}");
        assert!(!e.contains("Sup3r"), "{e}");
        let e = parse_line("{not json").err().unwrap_or_default();
        assert!(e.starts_with("bad JSON"), "{e}");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e = parse_line(r#"{"external_id": "a", "kind": "master", "created_at": "2020-01-01T00:00:00Z", "keys": [{"channel": "ftp", "identifier": "abc", "secret_hsh": "x"}]}"#)
            .err()
            .unwrap_or_default();
        assert!(e.contains("unknown field"), "{e}");
    }
}

//! The last touches of the OpenAPI document, where the domain's rules say
//! more than the types can: the shape of every input the server accepts,
//! so that a request the document calls valid is never refused as
//! malformed, and one it calls invalid is.
//!
//! - Optional headers and query parameters are strings, never `null` (a
//!   parameter is absent or has a value).
//! - Identifiers, secrets, labels, whitelist entries, ids in bodies and
//!   creation instants carry the domain's patterns and lengths; the label's
//!   pattern is computed from the label rule itself, character by
//!   character.
//! - The rules between fields (a sub-account names its master and a master
//!   none; a credential change changes something, never both a chosen and
//!   a generated secret, grace only with a new secret; a whitelist patch
//!   holds an entry) are `oneOf`/`anyOf`/`not` of the request's schema.
//! - The policy's bounds (the longest grace, the most whitelist entries)
//!   are the service's own.
//!
//! - External ids carry the rule's characters, computed from the rule as
//!   the label's are, and at most 128 characters.
//!
//! What no schema can say is left to the answer: a secret containing its
//! key's identifier, or looking like a generated secret, is a 400
//! `invalid_credential`; a whitelist that would grow past the most entries
//! a 400 `invalid_whitelist`.

use apikeys::Policy;
use apikeys::account::{ExternalId, MAX_EXTERNAL_ID_CHARS};
use apikeys::credentials::{
    MAX_IDENTIFIER_LEN, MAX_LABEL_CHARS, MAX_SECRET_LEN, MIN_IDENTIFIER_LEN, MIN_SECRET_LEN,
    validate_label,
};
use apikeys::policy::MAX_KEY_LIFETIME;
use serde_json::{Value, json};
use std::fmt::Write as _;

/// An account id.
const ACCOUNT_ID: &str = "^acc_[0-9a-f]{32}$";
/// An RFC 3339 instant whose year the domain accepts whatever its offset
/// (1971 to 2198: the first and last years hold instants out of range); the
/// format says the rest.
const CREATION_YEARS: &str = "^(197[1-9]|19[89][0-9]|20[0-9][0-9]|21[0-8][0-9]|219[0-8])-";
/// An RFC 3339 instant whose year may hold a key's expiry whatever its
/// offset (before 2200; the past is the answer's to refuse).
const EXPIRY_YEARS: &str = "^(20[0-9][0-9]|21[0-9][0-9])-";
/// An IPv4 address, dotted decimal without leading zeros.
const IPV4: &str = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}";
/// An IPv6 address in its textual forms (no zone), without and then with
/// an IPv4 address in its last 32 bits.
fn ipv6() -> String {
    const PLAIN: &str = "([0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}|([0-9a-fA-F]{1,4}:){1,7}:|([0-9a-fA-F]{1,4}:){1,6}:[0-9a-fA-F]{1,4}|([0-9a-fA-F]{1,4}:){1,5}(:[0-9a-fA-F]{1,4}){1,2}|([0-9a-fA-F]{1,4}:){1,4}(:[0-9a-fA-F]{1,4}){1,3}|([0-9a-fA-F]{1,4}:){1,3}(:[0-9a-fA-F]{1,4}){1,4}|([0-9a-fA-F]{1,4}:){1,2}(:[0-9a-fA-F]{1,4}){1,5}|[0-9a-fA-F]{1,4}:(:[0-9a-fA-F]{1,4}){1,6}|:((:[0-9a-fA-F]{1,4}){1,7}|:)";
    format!(
        "({PLAIN}|([0-9a-fA-F]{{1,4}}:){{6}}{IPV4}|::([0-9a-fA-F]{{1,4}}:){{0,5}}{IPV4}|([0-9a-fA-F]{{1,4}}:){{1,4}}:{IPV4})"
    )
}

/// A whitelist entry: an IPv4 or IPv6 address, or a network in CIDR
/// notation.
fn entry_pattern() -> String {
    format!(
        "^({IPV4}(/(3[0-2]|[12]?[0-9]))?|{}(/(12[0-8]|1[01][0-9]|[1-9]?[0-9]))?)$",
        ipv6()
    )
}

/// An address to explain.
fn address_pattern() -> String {
    format!("^({IPV4}|{})$", ipv6())
}

/// A chosen identifier.
fn identifier_pattern() -> String {
    format!(
        "^[A-Za-z0-9][A-Za-z0-9._-]{{{},{}}}$",
        MIN_IDENTIFIER_LEN - 1,
        MAX_IDENTIFIER_LEN - 1
    )
}

/// The characters `refused` says, as the body of a regex class: each as
/// its escape (or itself outside the BMP), runs as ranges.
fn class_of(refused: impl Fn(char) -> bool) -> String {
    let mut class = String::new();
    let mut range: Option<(char, char)> = None;
    fn put(class: &mut String, c: char) {
        if (c as u32) < 0x10000 {
            let _ = write!(class, "\\u{:04x}", c as u32);
        } else {
            // Outside the BMP a `\u` escape cannot say it: the character
            // itself.
            class.push(c);
        }
    }
    let flush = |class: &mut String, (from, to): (char, char)| {
        put(class, from);
        if to != from {
            class.push('-');
            put(class, to);
        }
    };
    for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
        if refused(c) {
            range = match range {
                Some((from, to)) if to as u32 + 1 == c as u32 => Some((from, c)),
                Some(done) => {
                    flush(&mut class, done);
                    Some((c, c))
                }
                None => Some((c, c)),
            };
        }
    }
    if let Some(done) = range {
        flush(&mut class, done);
    }
    class
}

/// A label: no character the label rule refuses, computed from the rule.
pub(crate) fn label_pattern() -> String {
    let class = class_of(|c| validate_label(c.encode_utf8(&mut [0; 4])).is_err());
    format!("^[^{class}]*$")
}

/// An external id: no character the rule refuses anywhere (between two
/// letters), and none it refuses at either end (alone) first or last,
/// both computed from the rule. Computed once: it walks every character.
pub(crate) fn external_id_pattern() -> &'static str {
    static PATTERN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATTERN.get_or_init(|| {
        let refused_between = class_of(|c| {
            let mut buf = [b'a'; 6];
            let len = c.encode_utf8(&mut buf[1..]).len();
            std::str::from_utf8(&buf[..len + 2]).map_or(true, |t| ExternalId::new(t).is_err())
        });
        let refused_at_ends = class_of(|c| ExternalId::new(c.encode_utf8(&mut [0; 4])).is_err());
        format!("^[^{refused_at_ends}](?:[^{refused_between}]*[^{refused_at_ends}])?$")
    })
}

/// The schema of an external id: the rule's characters, and its length in
/// characters, which a schema counts as the rule does: exactly the ids the
/// rule takes.
fn external_id() -> Value {
    json!({
        "pattern": external_id_pattern(),
        "minLength": 1, "maxLength": MAX_EXTERNAL_ID_CHARS,
    })
}

fn secret() -> Value {
    json!({
        "type": "string", "format": "password",
        "minLength": MIN_SECRET_LEN, "maxLength": MAX_SECRET_LEN,
        "pattern": "^[!-~]*$",
    })
}

/// Sets `fields` on the schema at `pointer`, if it is there.
fn set(doc: &mut Value, pointer: &str, fields: Value) {
    if let (Some(target), Value::Object(fields)) = (doc.pointer_mut(pointer), fields)
        && let Some(target) = target.as_object_mut()
    {
        target.extend(fields);
    }
}

/// Drops `null` from the type of every header and query parameter.
fn parameters_are_never_null(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for item in paths.values_mut() {
        let Some(ops) = item.as_object_mut() else {
            continue;
        };
        for op in ops.values_mut() {
            let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) else {
                continue;
            };
            for p in params {
                if p["name"] == "X-Acting-Account" {
                    set(p, "/schema", json!({"minLength": 36, "maxLength": 36}));
                }
                if let Some(types) = p.pointer_mut("/schema/type")
                    && let Some(list) = types.as_array()
                {
                    let kept: Vec<Value> = list.iter().filter(|t| *t != "null").cloned().collect();
                    if kept.len() == 1 {
                        *types = kept[0].clone();
                    }
                }
            }
        }
    }
}

/// The document, finished for a service under `policy`.
pub(crate) fn finish(doc: &utoipa::openapi::OpenApi, policy: &Policy) -> Value {
    let mut doc = serde_json::to_value(doc).unwrap_or(Value::Null);
    parameters_are_never_null(&mut doc);
    let s = "/components/schemas";
    let string_or_null = |extra: Value| {
        let mut v = json!({"type": ["string", "null"]});
        if let (Some(v), Value::Object(extra)) = (v.as_object_mut(), extra) {
            v.extend(extra);
        }
        v
    };
    let identifier = json!({
        "pattern": identifier_pattern(),
        "minLength": MIN_IDENTIFIER_LEN, "maxLength": MAX_IDENTIFIER_LEN,
    });
    let label = json!({
        "pattern": label_pattern(), "minLength": 1, "maxLength": MAX_LABEL_CHARS,
    });
    let entries = |min: usize| {
        json!({
            "type": "array", "minItems": min, "maxItems": policy.max_whitelist_entries,
            "items": {"type": "string", "pattern": entry_pattern()},
        })
    };
    for (schema, field) in [
        ("CreateKeyRequest", "identifier"),
        ("ChangeCredentialsRequest", "identifier"),
    ] {
        set(
            &mut doc,
            &format!("{s}/{schema}/properties/{field}"),
            identifier.clone(),
        );
    }
    for schema in ["CreateKeyRequest", "KeyPatch"] {
        set(
            &mut doc,
            &format!("{s}/{schema}/properties/label"),
            label.clone(),
        );
    }
    for schema in ["CreateKeyRequest", "ChangeCredentialsRequest"] {
        set(
            &mut doc,
            &format!("{s}/{schema}/properties/secret"),
            secret(),
        );
        if let Some(t) = doc.pointer_mut(&format!("{s}/{schema}/properties/secret/type")) {
            *t = json!(["string", "null"]);
        }
    }
    set(
        &mut doc,
        &format!("{s}/ChangeCredentialsRequest/properties/grace_seconds"),
        json!({"minimum": 1, "maximum": policy.max_grace.whole_seconds()}),
    );
    // Something changes; not a chosen and a generated secret at once; grace
    // only with a new secret.
    let new_identifier =
        json!({"required": ["identifier"], "properties": {"identifier": {"type": "string"}}});
    let chosen = json!({"required": ["secret"], "properties": {"secret": {"type": "string"}}});
    let generated = json!({"required": ["regenerate_secret"], "properties": {"regenerate_secret": {"const": true}}});
    let grace = json!({"required": ["grace_seconds"], "properties": {"grace_seconds": {"type": "integer"}}});
    set(
        &mut doc,
        &format!("{s}/ChangeCredentialsRequest"),
        json!({"allOf": [
            {"anyOf": [new_identifier, chosen, generated]},
            {"not": {"allOf": [chosen, generated]}},
            {"anyOf": [{"not": grace}, chosen, generated]},
        ]}),
    );
    set(
        &mut doc,
        &format!("{s}/WhitelistBody/properties/entries"),
        entries(0),
    );
    for field in ["add", "remove"] {
        set(
            &mut doc,
            &format!("{s}/WhitelistPatch/properties/{field}"),
            json!({"type": ["array", "null"], "maxItems": policy.max_whitelist_entries,
                "items": {"type": "string", "pattern": entry_pattern()}}),
        );
    }
    set(
        &mut doc,
        &format!("{s}/WhitelistPatch"),
        json!({"anyOf": [
            {"required": ["add"], "properties": {"add": {"type": "array", "minItems": 1}}},
            {"required": ["remove"], "properties": {"remove": {"type": "array", "minItems": 1}}},
        ]}),
    );
    // A master names no parent; a sub-account names its master.
    let created_at = string_or_null(json!({"format": "date-time", "pattern": CREATION_YEARS}));
    set(
        &mut doc,
        &format!("{s}/OpenAccountRequest/properties/created_at"),
        created_at,
    );
    set(
        &mut doc,
        &format!("{s}/OpenAccountRequest/properties/parent_id"),
        json!({"pattern": ACCOUNT_ID}),
    );
    // The platform's own id, in a request, an answer and a path alike.
    for schema in ["OpenAccountRequest", "AccountView"] {
        set(
            &mut doc,
            &format!("{s}/{schema}/properties/external_id"),
            external_id(),
        );
    }
    if let Some(params) = doc
        .pointer_mut("/paths/~1v1~1accounts~1by-external-id~1{external_id}/get/parameters")
        .and_then(Value::as_array_mut)
    {
        for p in params.iter_mut().filter(|p| p["name"] == "external_id") {
            set(p, "/schema", external_id());
        }
    }
    set(
        &mut doc,
        &format!("{s}/OpenAccountRequest"),
        json!({"oneOf": [
            {"properties": {"kind": {"const": "master"}, "parent_id": {"type": "null"}}},
            {"required": ["parent_id"], "properties": {"kind": {"const": "sub"}, "parent_id": {"type": "string"}}},
        ]}),
    );
    // A key's expiry: an instant, or `null` (creation: none asked for;
    // a patch: cleared). Whether it is in the future and within the
    // longest lifetime is the answer's to say (400 `invalid_expiry`).
    let expiry = string_or_null(json!({"format": "date-time", "pattern": EXPIRY_YEARS}));
    for schema in ["CreateKeyRequest", "KeyPatch"] {
        set(
            &mut doc,
            &format!("{s}/{schema}/properties/expires_at"),
            expiry.clone(),
        );
    }
    // A patch changes something; `enabled` is a boolean, never `null`.
    set(
        &mut doc,
        &format!("{s}/KeyPatch/properties/enabled"),
        json!({"type": "boolean"}),
    );
    if let Some(patch) = doc
        .pointer_mut(&format!("{s}/KeyPatch"))
        .and_then(Value::as_object_mut)
    {
        patch.remove("required");
        patch.insert(
            "anyOf".into(),
            json!([
                {"required": ["label"]},
                {"required": ["expires_at"]},
                {"required": ["enabled"]},
            ]),
        );
    }
    // An account's policy.
    set(
        &mut doc,
        &format!("{s}/PolicyBody/properties/whitelist"),
        entries(0),
    );
    set(
        &mut doc,
        &format!("{s}/PolicyBody/properties/sub_account_channels"),
        json!({"type": "array", "maxItems": 5,
            "items": {"$ref": "#/components/schemas/ChannelCode"}}),
    );
    set(
        &mut doc,
        &format!("{s}/PolicyBody/properties/max_key_lifetime_seconds"),
        json!({"type": ["integer", "null"], "format": "int64", "minimum": 1,
            "maximum": MAX_KEY_LIFETIME.whole_seconds()}),
    );
    set(
        &mut doc,
        &format!("{s}/DormancyActionRequest/properties/dry_run"),
        json!({"type": "boolean", "default": true}),
    );
    // The address to explain.
    if let Some(params) = doc
        .pointer_mut("/paths/~1v1~1keys~1{key_id}~1whitelist~1explain/get/parameters")
        .and_then(Value::as_array_mut)
    {
        for p in params.iter_mut().filter(|p| p["name"] == "address") {
            p["schema"] = json!({"type": "string", "pattern": address_pattern()});
        }
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each form the entry pattern names is one the server takes.
    #[test]
    fn the_forms_of_the_entry_pattern_are_accepted() {
        for entry in [
            "0.0.0.0",
            "255.255.255.255/32",
            "10.0.0.0/8",
            "1:2:3:4:5:6:7:8",
            "1::",
            "::",
            "::1/128",
            "1:2:3:4:5:6::8",
            "1::8",
            "::2:3:4:5:6:7:8",
            "1:2:3:4:5:6:1.2.3.4",
            "::1.2.3.4",
            "::ffff:1.2.3.4/120",
            "::1:2:3:4:5:1.2.3.4",
            "1::1.2.3.4",
            "1:2:3:4::1.2.3.4",
            "FFFF:abcd::0/0",
        ] {
            assert!(
                apikeys::whitelist::parse_entry(entry).is_ok(),
                "{entry} is in the pattern's language but refused"
            );
        }
        let p = entry_pattern();
        assert!(p.starts_with("^(") && p.ends_with(")?)$"), "{p}");
    }

    #[test]
    fn the_label_pattern_refuses_what_the_rule_refuses() {
        let p = label_pattern();
        assert!(
            p.starts_with("^[^\\u0000-\\u001f\\u007f-\\u009f\\u00ad"),
            "{p}"
        );
        assert!(
            p.contains("\\u200b-\\u200f") && p.contains("\\u2028-\\u202e"),
            "{p}"
        );
        assert!(p.contains('\u{e0001}'), "outside the BMP too");
        assert!(p.ends_with("]*$"));
    }
}

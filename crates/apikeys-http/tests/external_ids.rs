//! Accounts carrying the platform's own id: opened with it, answered with
//! it, found by it (exactly, as one percent-encoded path segment, within
//! what the acting account may see), and the document's schema of it
//! against the rule.

// Test code: failing loudly is its job.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use apikeys::ExternalId;
use common::{Server, s};
use serde_json::{Value, json};

fn open(server: &Server, body: Value) -> Value {
    server.post("/v1/accounts", body).admin().send().expect(201)["account"].clone()
}

/// `text` as one path segment: every byte but the unreserved ones
/// percent-encoded.
fn segment(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn by_external_id(text: &str) -> String {
    format!("/v1/accounts/by-external-id/{}", segment(text))
}

#[test]
fn an_account_opens_with_its_external_id_and_answers_with_it() {
    let server = Server::start();
    let master = open(&server, json!({"kind": "master", "external_id": "acme"}));
    assert_eq!(master["external_id"], "acme");
    let id = s(&master, "id");
    let sub = open(
        &server,
        json!({"kind": "sub", "parent_id": id, "external_id": "acme/eu"}),
    );
    assert_eq!(sub["external_id"], "acme/eu");
    let plain = open(&server, json!({"kind": "master", "external_id": null}));
    assert_eq!(plain["external_id"], Value::Null);
    let without = open(&server, json!({"kind": "master"}));
    assert_eq!(without["external_id"], Value::Null);
    // Every answer carrying the account carries it.
    let read = server
        .get(&format!("/v1/accounts/{id}"))
        .admin()
        .send()
        .expect(200);
    assert_eq!(read["external_id"], "acme");
    let subs = server
        .get(&format!("/v1/accounts/{id}/sub-accounts"))
        .admin()
        .send()
        .expect(200);
    assert_eq!(subs["accounts"][0]["external_id"], "acme/eu");
    let page = server.get("/v1/accounts").admin().send().expect(200);
    let mut listed: Vec<&Value> = page["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["external_id"])
        .collect();
    listed.sort_by_key(|v| v.to_string());
    assert_eq!(
        listed,
        [
            &json!("acme"),
            &json!("acme/eu"),
            &Value::Null,
            &Value::Null
        ]
    );
}

#[test]
fn an_account_is_found_by_its_external_id_exactly() {
    let server = Server::start();
    for text in [
        "acme",
        "ACME-42",
        "Zürich 東京 𝄞",
        "tenant/7",
        "50%",
        "a+b=c?d#e",
        "..",
    ] {
        let account = open(&server, json!({"kind": "master", "external_id": text}));
        let found = server.get(&by_external_id(text)).admin().send().expect(200);
        assert_eq!(found, account, "{text}");
    }
    // Compared exactly: case counts, and nothing is trimmed or folded.
    for absent in ["Acme", "ACME", "acme-42", "tenant%2F7", "zürich 東京 𝄞"] {
        let message = server
            .get(&by_external_id(absent))
            .admin()
            .send()
            .expect_error(404, "account_not_found");
        assert_eq!(message, format!("no account has external id `{absent}`"));
    }
    // A segment that is not UTF-8 is not a text at all; an empty one names
    // no route.
    server
        .get("/v1/accounts/by-external-id/%FF")
        .admin()
        .send()
        .expect_error(400, "invalid_path");
    server
        .get("/v1/accounts/by-external-id/")
        .admin()
        .send()
        .expect_error(404, "not_found");
    // The admin token is required, as for every management route.
    assert_eq!(server.get(&by_external_id("acme")).send().status, 401);
}

#[test]
fn an_external_id_names_one_account() {
    let server = Server::start();
    let master = open(&server, json!({"kind": "master", "external_id": "acme"}));
    let id = s(&master, "id");
    for body in [
        json!({"kind": "master", "external_id": "acme"}),
        json!({"kind": "sub", "parent_id": id, "external_id": "acme"}),
    ] {
        let message = server
            .post("/v1/accounts", body)
            .admin()
            .send()
            .expect_error(409, "external_id_taken");
        assert_eq!(
            message,
            "external id `acme` is taken: an external id names one account"
        );
    }
    // Another case is another id.
    open(&server, json!({"kind": "master", "external_id": "ACME"}));
    let page = server.get("/v1/accounts").admin().send().expect(200);
    assert_eq!(page["accounts"].as_array().unwrap().len(), 2);
}

/// The texts the rule refuses, each with the domain's own message.
fn refused() -> Vec<String> {
    let mut texts: Vec<String> = [
        "",
        "a\u{0}",
        "a\tb",
        "a\nb",
        "a\u{7f}",
        "a\u{85}b",
        "a\u{9c}b",
        " a",
        "a ",
        "\u{a0}a",
        "a\u{2028}",
        "a\u{3000}",
        "\u{feff}a\u{1680}",
        "6\u{d0}\u{f} W\u{0}",
    ]
    .iter()
    .map(|t| t.to_string())
    .collect();
    // 129 characters, of one byte each, and of four.
    texts.push("a".repeat(129));
    texts.push("𝄞".repeat(129));
    texts
}

#[test]
fn an_invalid_external_id_is_400_with_the_rules_message() {
    let server = Server::start();
    for text in refused() {
        let expected = ExternalId::new(&text).unwrap_err().to_string();
        let message = server
            .post(
                "/v1/accounts",
                json!({"kind": "master", "external_id": text}),
            )
            .admin()
            .send()
            .expect_error(400, "invalid_external_id");
        assert_eq!(message, expected, "{text:?}");
        if text.is_empty() {
            continue;
        }
        let message = server
            .get(&by_external_id(&text))
            .admin()
            .send()
            .expect_error(400, "invalid_external_id");
        assert_eq!(message, expected, "{text:?}");
    }
    // The path Schemathesis once sent, control characters in percent-encoded
    // UTF-8.
    server
        .get("/v1/accounts/by-external-id/%F0%9B%9D%A6%C2%9CZt%C3%89k%01%C2%9E")
        .admin()
        .send()
        .expect_error(400, "invalid_external_id");
    // Not a string at all: the body's shape.
    server
        .post("/v1/accounts", json!({"kind": "master", "external_id": 7}))
        .admin()
        .send()
        .expect_error(400, "invalid_body");
    // At the bounds the rule takes: 128 characters (512 bytes of them), and
    // one character.
    for text in ["a".repeat(128), "𝄞".repeat(128), "x".to_string()] {
        open(&server, json!({"kind": "master", "external_id": text}));
        server
            .get(&by_external_id(&text))
            .admin()
            .send()
            .expect(200);
    }
}

#[test]
fn an_acting_account_finds_only_the_accounts_it_may_see() {
    let server = Server::start();
    let master = s(
        &open(&server, json!({"kind": "master", "external_id": "m"})),
        "id",
    );
    let acting = |who: &str, text: &str| server.get(&by_external_id(text)).acting(who).send();
    let sub = s(
        &server
            .post(
                "/v1/accounts",
                json!({"kind": "sub", "parent_id": master, "external_id": "s"}),
            )
            .acting(&master)
            .send()
            .expect(201)["account"],
        "id",
    );
    let sibling = s(
        &open(
            &server,
            json!({"kind": "sub", "parent_id": master, "external_id": "s2"}),
        ),
        "id",
    );
    let other = s(
        &open(&server, json!({"kind": "master", "external_id": "o"})),
        "id",
    );
    // A master sees itself and its sub-accounts; a sub-account itself.
    assert_eq!(s(&acting(&master, "m").expect(200), "id"), master);
    assert_eq!(s(&acting(&master, "s").expect(200), "id"), sub);
    assert_eq!(s(&acting(&sub, "s").expect(200), "id"), sub);
    assert_eq!(s(&acting(&other, "o").expect(200), "id"), other);
    // Anything else is exactly an account no one carries.
    for (who, text) in [
        (&master, "o"),
        (&sub, "s2"),
        (&sub, "m"),
        (&sibling, "s"),
        (&other, "m"),
        (&other, "s"),
        (&master, "absent"),
    ] {
        let message = acting(who, text).expect_error(404, "account_not_found");
        assert_eq!(message, format!("no account has external id `{text}`"));
    }
    // The operator sees them all.
    for text in ["m", "s", "s2", "o"] {
        server.get(&by_external_id(text)).admin().send().expect(200);
    }
}

/// The schema's pattern, read back: its two classes of refused
/// characters (at the ends; anywhere), as ranges.
struct Schema {
    at_ends: Vec<(char, char)>,
    anywhere: Vec<(char, char)>,
    min: usize,
    max: usize,
}

fn ranges(class: &str) -> Vec<(char, char)> {
    let mut chars = Vec::new();
    let mut rest = class;
    while !rest.is_empty() {
        if let Some(hex) = rest.strip_prefix("\\u") {
            chars.push(Some(
                char::from_u32(u32::from_str_radix(&hex[..4], 16).unwrap()).unwrap(),
            ));
            rest = &hex[4..];
        } else if let Some(after) = rest.strip_prefix('-') {
            chars.push(None);
            rest = after;
        } else {
            let c = rest.chars().next().unwrap();
            assert!(u32::from(c) >= 0x10000, "only astral characters are bare");
            chars.push(Some(c));
            rest = &rest[c.len_utf8()..];
        }
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let from = chars[i].unwrap();
        if chars.get(i + 1) == Some(&None) {
            out.push((from, chars[i + 2].unwrap()));
            i += 3;
        } else {
            out.push((from, from));
            i += 1;
        }
    }
    out
}

impl Schema {
    fn read(schema: &Value) -> Schema {
        let pattern = schema["pattern"].as_str().unwrap();
        let body = pattern
            .strip_prefix("^[^")
            .and_then(|p| p.strip_suffix("])?$"))
            .unwrap_or_else(|| panic!("unexpected shape: {pattern}"));
        let (at_ends, rest) = body.split_once("](?:[^").unwrap();
        let (anywhere, last) = rest.split_once("]*[^").unwrap();
        assert_eq!(last, at_ends, "first and last refuse alike");
        Schema {
            at_ends: ranges(at_ends),
            anywhere: ranges(anywhere),
            min: schema["minLength"].as_u64().unwrap() as usize,
            max: schema["maxLength"].as_u64().unwrap() as usize,
        }
    }

    fn accepts(&self, text: &str) -> bool {
        let within = |c: char, rs: &[(char, char)]| rs.iter().any(|&(a, b)| a <= c && c <= b);
        let chars: Vec<char> = text.chars().collect();
        (self.min..=self.max).contains(&chars.len())
            && !within(chars[0], &self.at_ends)
            && !within(chars[chars.len() - 1], &self.at_ends)
            && chars.iter().all(|&c| !within(c, &self.anywhere))
    }
}

#[test]
fn the_documents_external_id_is_the_rules() {
    let server = Server::start();
    let doc = server.get("/openapi.json").send().expect(200);
    let schemas = &doc["components"]["schemas"];
    let request = &schemas["OpenAccountRequest"]["properties"]["external_id"];
    let answer = &schemas["AccountView"]["properties"]["external_id"];
    let path = doc["paths"]["/v1/accounts/by-external-id/{external_id}"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "external_id")
        .unwrap();
    assert_eq!(path["required"], true);
    assert_eq!(path["schema"]["type"], "string");
    assert_eq!(request["type"], json!(["string", "null"]));
    assert_eq!(answer["type"], json!(["string", "null"]));
    for field in ["pattern", "minLength", "maxLength"] {
        assert_eq!(request[field], answer[field], "{field}");
        assert_eq!(request[field], path["schema"][field], "{field}");
    }
    assert_eq!(
        (&request["minLength"], &request["maxLength"]),
        (&json!(1), &json!(apikeys::account::MAX_EXTERNAL_ID_CHARS))
    );
    let schema = Schema::read(request);
    // Whatever the character, alone, at an end or between two letters, the
    // schema and the rule agree.
    for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
        for text in [
            format!("{c}"),
            format!("a{c}a"),
            format!("{c}a"),
            format!("a{c}"),
        ] {
            assert_eq!(
                schema.accepts(&text),
                ExternalId::new(&text).is_ok(),
                "{text:?}"
            );
        }
    }
    let mut accepted = vec![
        "acme".to_string(),
        "a b".into(),
        "tenant/7".into(),
        "Zürich 東京 𝄞".into(),
        "a\u{3000}b".into(),
        "\u{ad}".into(),
        "a".repeat(128),
        "𝄞".repeat(128),
        format!("é{}", "a".repeat(127)),
    ];
    accepted.extend(["x", "-", "..", "\u{200b}"].map(String::from));
    for text in &accepted {
        assert!(schema.accepts(text), "{text:?}");
        assert!(ExternalId::new(text).is_ok(), "{text:?}");
    }
    // What the rule refuses the schema refuses.
    for text in refused() {
        assert!(ExternalId::new(&text).is_err(), "{text:?}");
        assert!(!schema.accepts(&text), "{text:?}");
    }
}

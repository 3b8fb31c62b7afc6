//! Keeping a connection string's password out of messages.

/// `message` without the password `url` holds, raw or percent-decoded:
/// `user:PASSWORD@` of a URL, and any `password=` parameter. Connection
/// errors do not quote the URL, but a parser's error may quote a piece of
/// it (an "unknown option" can be the whole string); this makes sure no
/// such piece carries the password out.
pub fn redact_password(message: &str, url: &str) -> String {
    let mut secrets: Vec<String> = Vec::new();
    // URL form: the password is between the first ':' and the first '@'
    // after the scheme, as libpq (and rust-postgres) read it.
    if let Some((_, rest)) = url.split_once("://")
        && let Some((credentials, _)) = rest.split_once('@')
        && let Some((_, password)) = credentials.split_once(':')
    {
        secrets.push(password.to_owned());
    }
    // `password=` as a URL parameter or a key=value pair.
    let mut rest = url;
    while let Some(at) = rest.find("password") {
        let after = rest[at + "password".len()..].trim_start();
        rest = &rest[at + "password".len()..];
        let Some(value) = after.strip_prefix('=') else {
            continue;
        };
        let value = value.trim_start();
        let value = match value.strip_prefix('\'') {
            Some(quoted) => quoted.split('\'').next().unwrap_or_default(),
            None => value
                .split(|c: char| c == '&' || c.is_whitespace())
                .next()
                .unwrap_or_default(),
        };
        secrets.push(value.to_owned());
    }
    let decoded: Vec<String> = secrets.iter().filter_map(|s| percent_decode(s)).collect();
    secrets.extend(decoded);
    // Longest first, so that a secret containing another goes whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = message.to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(secret.as_str(), "[password hidden]");
    }
    out
}

/// `%XX` sequences decoded, if there are any and they make UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return None;
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                let value = hex(h).unwrap_or_default() * 16 + hex(l).unwrap_or_default();
                out.push(u8::try_from(value).unwrap_or_default());
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_in_every_form() {
        let cases = [
            // A parser quoting the whole string.
            (
                "mysql://app:s3cret-pw@db/x?a=1",
                "unknown option `mysql://app:s3cret-pw@db/x?a`",
            ),
            (
                "postgres://app:p%40ss%2Fw0rd@db/x",
                "bad: p%40ss%2Fw0rd p@ss/w0rd",
            ),
            (
                "postgres://app@db/x?password=qwerty123&sslmode=x",
                "qwerty123 bad",
            ),
            ("host=db password='with space' user=app", "with space!"),
            ("host=db password = plain-pw user=app", "plain-pw?"),
        ];
        for (url, message) in cases {
            let out = redact_password(message, url);
            for leaked in [
                "s3cret-pw",
                "p%40ss",
                "p@ss/w0rd",
                "qwerty123",
                "with space",
                "plain-pw",
            ] {
                assert!(!out.contains(leaked), "{url}: {out}");
            }
            assert!(out.contains("[password hidden]"), "{url}: {out}");
        }
        // Nothing to hide: unchanged.
        assert_eq!(
            redact_password("connection refused", "postgres://app@db/x"),
            "connection refused"
        );
    }
}

//! Test support (feature `testing`): what the tests of an HTTP API over
//! apikeys keep writing again. A response with asserting readers, the
//! REST Basic header, a string field of a JSON body, and a log writer that
//! keeps what it is given.
// Test helpers fail loudly, with the body in the message.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

use serde_json::Value;
use std::io::Write;
use std::sync::{Arc, Mutex};

/// A response, however it was obtained (in-process or over a socket).
#[derive(Debug, Clone, Default)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers, as sent.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of the header `name` (ignoring ASCII case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON; panics, showing the body, if it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts the status (showing the body if it differs) and returns the
    /// JSON body (`null` for an empty one).
    pub fn expect(&self, status: u16) -> Value {
        assert_eq!(
            self.status,
            status,
            "unexpected status; body: {}",
            self.text()
        );
        if self.body.is_empty() {
            Value::Null
        } else {
            self.json()
        }
    }

    /// Asserts an error answer in the router's style: the status, the
    /// `error` code and a non-empty `message`, which it returns.
    pub fn expect_error(&self, status: u16, code: &str) -> String {
        let body = self.expect(status);
        assert_eq!(body["error"], code, "body: {body}");
        let message = body["message"].as_str().expect("a message").to_string();
        assert!(!message.is_empty());
        message
    }
}

/// The `Authorization` value of REST Basic credentials.
pub fn basic(identifier: &str, secret: &str) -> String {
    use base64ct::{Base64, Encoding};
    format!(
        "Basic {}",
        Base64::encode_string(format!("{identifier}:{secret}").as_bytes())
    )
}

/// The string field `name` of a JSON value; panics, showing the value, if
/// there is none.
pub fn field(v: &Value, name: &str) -> String {
    v[name]
        .as_str()
        .unwrap_or_else(|| panic!("no string `{name}` in {v}"))
        .to_string()
}

/// A log writer that keeps everything written to it, for a test to read
/// back: hand clones of it to `tracing_subscriber`'s `with_writer`.
#[derive(Clone, Default)]
pub struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl CapturedLog {
    /// What was written so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for CapturedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

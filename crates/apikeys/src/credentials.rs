//! Credentials: identifiers, secrets, labels, and their generation.
//!
//! Rules:
//! - At creation, and at every change, the identifier and the secret are
//!   each either chosen by the caller or generated, independently.
//! - A chosen secret is checked against the identifier the key will have
//!   when the write lands (again, if another writer renamed the key
//!   meanwhile). A rename alone cannot check the stored secret, of which
//!   only a hash is kept: the rule holds for secrets as they were chosen.
//! - A chosen identifier has 3 to 64 characters: ASCII letters, digits,
//!   `.`, `_` and `-`, starting with a letter or a digit. A generated one is
//!   a random UUID (the shape of the provider's client ids).
//! - A chosen secret has 12 to 128 printable ASCII characters (0x21 to
//!   0x7E, so no spaces) and does not contain the identifier, ignoring ASCII
//!   case. A generated secret is [`GENERATED_SECRET_PREFIX`], 32 random
//!   base-62 characters (about 190 bits from the CSPRNG) and a 6-character
//!   CRC-32 checksum: letters and digits only, safe in URLs, Basic auth, FTP,
//!   SOAP and mail; recognisable by secret scanners; a typo is refused
//!   without any lookup.
//! - A chosen secret may not have the shape of a generated one (the prefix,
//!   38 letters and digits, a valid checksum): authentication recognises
//!   generated secrets by their shape and checks them without argon2, so a
//!   person's secret must never look like one.
//! - A label has 1 to 64 characters, and none that is invisible or moves
//!   text around: no control characters, no format characters (bidi
//!   controls, zero-width characters, the soft hyphen...) and no line or
//!   paragraph separators.
//! - A secret lives in [`Secret`], which zeroizes on drop, never prints, and
//!   is read only through [`Secret::expose_secret`].

use rand_core::CryptoRng;
use std::fmt;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// A secret in plain text: the one moment it exists is when it is created,
/// changed or presented.
///
/// It zeroizes its memory on drop, prints as `[redacted]` in `Debug` and
/// `Display`, compares in constant time, and is read only through
/// [`Secret::expose_secret`].
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a secret (for a chosen secret, or one received from a client).
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(Zeroizing::new(secret.into()))
    }

    /// The secret in plain text. The only way to read it: each call site is a
    /// place that shows or checks the secret on purpose.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl ConstantTimeEq for Secret {
    fn ct_eq(&self, other: &Self) -> subtle::Choice {
        self.0.as_bytes().ct_eq(other.0.as_bytes())
    }
}

impl PartialEq for Secret {
    /// Constant time in the contents (the length is not hidden).
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

impl Eq for Secret {}

/// How the identifier of a new key, or a changed one, is chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentifierChoice {
    /// A UUID-shaped identifier is generated.
    Generate,
    /// The caller's identifier, validated by [`validate_identifier`].
    Chosen(String),
}

/// How the secret of a new key, or a changed one, is chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretChoice {
    /// A high-entropy secret is generated (see [`generate_secret`]).
    Generate,
    /// The caller's secret, validated by [`validate_secret`].
    Chosen(Secret),
}

/// Which rule a credential or label broke. Messages say what is allowed and
/// never repeat a secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// The identifier's length is outside 3 to 64 characters.
    #[error("identifier is {len} characters long: it must have 3 to 64")]
    IdentifierLength {
        /// Its length in characters.
        len: usize,
    },
    /// The identifier holds a character outside the allowed alphabet.
    #[error(
        "identifier has {found:?} at position {position}: only ASCII letters, digits, `.`, `_` and `-` are allowed"
    )]
    IdentifierCharacter {
        /// The offending character.
        found: char,
        /// Its position, counted in characters from 0.
        position: usize,
    },
    /// The identifier does not start with a letter or digit.
    #[error("identifier starts with {found:?}: it must start with an ASCII letter or digit")]
    IdentifierStart {
        /// The first character.
        found: char,
    },
    /// The secret's length is outside 12 to 128 characters.
    #[error("secret is {len} characters long: it must have 12 to 128")]
    SecretLength {
        /// Its length in characters.
        len: usize,
    },
    /// The secret holds a character that is not printable ASCII. The
    /// character itself is not repeated: it is part of a secret.
    #[error(
        "secret has a character outside printable ASCII at position {position}: only characters 0x21 to 0x7E are allowed (no spaces)"
    )]
    SecretCharacter {
        /// Its position, counted in characters from 0.
        position: usize,
    },
    /// The secret contains the identifier (compared ignoring ASCII case).
    #[error("secret contains the identifier: choose a secret that does not")]
    SecretContainsIdentifier,
    /// The secret has the shape of a generated secret but a wrong checksum:
    /// most likely a mistyped generated secret. It would be refused at every
    /// authentication, so it is refused now.
    #[error(
        "secret looks like a generated secret (prefix `{prefix}`) but its checksum is wrong: copy it again, or choose a secret of another shape",
        prefix = GENERATED_SECRET_PREFIX
    )]
    SecretBadChecksum,
    /// The secret has the shape of a generated secret, checksum included.
    /// Generated secrets are checked without argon2, recognised by their
    /// shape; a chosen secret must not pass for one.
    #[error(
        "secret has the shape of a generated secret (prefix `{prefix}`, 38 letters and digits, a valid checksum): choose a secret of another shape, or have one generated",
        prefix = GENERATED_SECRET_PREFIX
    )]
    SecretLooksGenerated,
    /// The label is empty or longer than 64 characters.
    #[error("label is {len} characters long: it must have 1 to 64")]
    LabelLength {
        /// Its length in characters.
        len: usize,
    },
    /// The label holds a control character.
    #[error(
        "label has a control character at position {position}: control characters are not allowed"
    )]
    LabelControl {
        /// Its position, counted in characters from 0.
        position: usize,
    },
    /// The label holds an invisible character that changes how text reads:
    /// a format character (bidi controls such as U+202E, zero-width
    /// characters such as U+200B) or a line or paragraph separator.
    #[error(
        "label has an invisible character U+{code_point:04X} at position {position}: format characters (bidi controls, zero-width characters) and line or paragraph separators are not allowed"
    )]
    LabelInvisible {
        /// Its position, counted in characters from 0.
        position: usize,
        /// The character's code point.
        code_point: u32,
    },
}

/// The fewest characters a chosen identifier may have.
pub const MIN_IDENTIFIER_LEN: usize = 3;
/// The most characters (and bytes: identifiers are ASCII) an identifier may
/// have; longer ones are refused before any lookup.
pub const MAX_IDENTIFIER_LEN: usize = 64;
/// The fewest characters a chosen secret may have.
pub const MIN_SECRET_LEN: usize = 12;
/// The most characters a chosen secret may have.
pub const MAX_SECRET_LEN: usize = 128;
/// The most characters a label may have.
pub const MAX_LABEL_CHARS: usize = 64;

/// Checks a chosen identifier: 3 to 64 characters of ASCII letters, digits,
/// `.`, `_`, `-`, starting with a letter or digit.
pub fn validate_identifier(identifier: &str) -> Result<(), CredentialError> {
    let len = identifier.chars().count();
    if !(MIN_IDENTIFIER_LEN..=MAX_IDENTIFIER_LEN).contains(&len) {
        return Err(CredentialError::IdentifierLength { len });
    }
    for (position, c) in identifier.chars().enumerate() {
        if !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) {
            return Err(CredentialError::IdentifierCharacter { found: c, position });
        }
    }
    match identifier.chars().next() {
        Some(c) if !c.is_ascii_alphanumeric() => Err(CredentialError::IdentifierStart { found: c }),
        _ => Ok(()),
    }
}

/// Checks a chosen secret: 12 to 128 printable ASCII characters (0x21 to
/// 0x7E), not containing `identifier` (ignoring ASCII case), and not a
/// mistyped generated secret.
pub fn validate_secret(secret: &Secret, identifier: &str) -> Result<(), CredentialError> {
    let s = secret.expose_secret();
    let len = s.chars().count();
    if !(MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&len) {
        return Err(CredentialError::SecretLength { len });
    }
    if let Some(position) = s.chars().position(|c| !('\x21'..='\x7e').contains(&c)) {
        return Err(CredentialError::SecretCharacter { position });
    }
    let lower = Zeroizing::new(s.to_ascii_lowercase());
    if !identifier.is_empty() && lower.contains(&identifier.to_ascii_lowercase()) {
        return Err(CredentialError::SecretContainsIdentifier);
    }
    match generated_shape(s) {
        GeneratedShape::BadChecksum => Err(CredentialError::SecretBadChecksum),
        GeneratedShape::Valid => Err(CredentialError::SecretLooksGenerated),
        GeneratedShape::Other => Ok(()),
    }
}

/// Checks a key label: 1 to 64 characters, no control characters, no
/// format characters (Unicode category Cf) and no line or paragraph
/// separators (Zl, Zp).
pub fn validate_label(label: &str) -> Result<(), CredentialError> {
    use unicode_properties::{GeneralCategory as G, UnicodeGeneralCategory};
    let len = label.chars().count();
    if !(1..=MAX_LABEL_CHARS).contains(&len) {
        return Err(CredentialError::LabelLength { len });
    }
    for (position, c) in label.chars().enumerate() {
        if c.is_control() {
            return Err(CredentialError::LabelControl { position });
        }
        if matches!(
            c.general_category(),
            G::Format | G::LineSeparator | G::ParagraphSeparator
        ) {
            return Err(CredentialError::LabelInvisible {
                position,
                code_point: u32::from(c),
            });
        }
    }
    Ok(())
}

/// A generated identifier: a random UUID (version 4), lowercase and
/// hyphenated, the shape of the provider's client ids.
pub fn generate_identifier(rng: &mut (impl CryptoRng + ?Sized)) -> String {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// The prefix every generated secret starts with, so that secret scanners
/// can find leaked ones: a generated secret matches
/// `akey[0-9A-Za-z]{38}` and its last six characters are a checksum.
pub const GENERATED_SECRET_PREFIX: &str = "akey";
/// Random base-62 characters in a generated secret: 32 × log2(62) ≈ 190 bits.
const BODY_LEN: usize = 32;
/// Base-62 digits of the CRC-32 checksum (62^6 > 2^32).
const CHECK_LEN: usize = 6;
/// Total length of a generated secret.
pub const GENERATED_SECRET_LEN: usize = GENERATED_SECRET_PREFIX.len() + BODY_LEN + CHECK_LEN;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Generates a secret: the prefix, 32 base-62 characters drawn uniformly from
/// `rng` (about 190 bits), and a 6-character base-62 CRC-32 of the rest.
pub fn generate_secret(rng: &mut (impl CryptoRng + ?Sized)) -> Secret {
    generate_checksummed(rng, GENERATED_SECRET_PREFIX, BODY_LEN)
}

/// `prefix`, `body_len` base-62 characters drawn uniformly from `rng`, and a
/// 6-character base-62 CRC-32 of the rest: the shape of generated secrets
/// and of REST tokens.
pub(crate) fn generate_checksummed(
    rng: &mut (impl CryptoRng + ?Sized),
    prefix: &str,
    body_len: usize,
) -> Secret {
    let mut out = Zeroizing::new(String::with_capacity(prefix.len() + body_len + CHECK_LEN));
    out.push_str(prefix);
    let mut buf = Zeroizing::new([0u8; 64]);
    while out.len() < prefix.len() + body_len {
        rng.fill_bytes(buf.as_mut());
        // Rejection sampling: 248 = 4 × 62, so `b % 62` is uniform below it.
        for &b in buf.iter().filter(|&&b| b < 248) {
            if out.len() == prefix.len() + body_len {
                break;
            }
            out.push(char::from(BASE62[usize::from(b % 62)]));
        }
    }
    let check = checksum(out.as_bytes());
    out.extend(check.iter().map(|&b| char::from(b)));
    Secret(Zeroizing::new(std::mem::take(&mut *out)))
}

fn checksum(prefix_and_body: &[u8]) -> [u8; CHECK_LEN] {
    let mut n = crc32fast::hash(prefix_and_body);
    let mut digits = [b'0'; CHECK_LEN];
    for d in digits.iter_mut().rev() {
        *d = BASE62[(n % 62) as usize];
        n /= 62;
    }
    digits
}

/// What a presented secret looks like, judged without any lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GeneratedShape {
    /// Not the generated shape: a chosen secret, or garbage.
    Other,
    /// A generated secret with a valid checksum.
    Valid,
    /// The generated shape with a wrong checksum: a typo or a forgery.
    BadChecksum,
}

/// Classifies `secret` by shape: prefix, length, alphabet and checksum.
pub fn generated_shape(secret: &str) -> GeneratedShape {
    checksummed_shape(secret, GENERATED_SECRET_PREFIX, GENERATED_SECRET_LEN)
}

/// Whether `text` is `prefix`, letters and digits up to `len` in all, the
/// last six a valid checksum.
pub(crate) fn checksummed_shape(text: &str, prefix: &str, len: usize) -> GeneratedShape {
    let b = text.as_bytes();
    if b.len() != len || !text.starts_with(prefix) || !b.iter().all(u8::is_ascii_alphanumeric) {
        return GeneratedShape::Other;
    }
    let (head, check) = b.split_at(len - CHECK_LEN);
    if checksum(head).as_slice().ct_eq(check).into() {
        GeneratedShape::Valid
    } else {
        GeneratedShape::BadChecksum
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("hunter2-hunter2");
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(
            format!("{:?}", SecretChoice::Chosen(s.clone())),
            "Chosen(Secret([redacted]))"
        );
        assert_eq!(s.expose_secret(), "hunter2-hunter2");
        assert_eq!(s, Secret::new("hunter2-hunter2"));
        assert_ne!(s, Secret::new("hunter2-hunter3"));
    }

    #[test]
    fn generated_secret_shape() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let s = generate_secret(&mut rng);
        let t = s.expose_secret();
        assert_eq!(t.len(), GENERATED_SECRET_LEN);
        assert!(t.starts_with("akey"));
        assert!(t.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(generated_shape(t), GeneratedShape::Valid);
        // A one-character typo is caught by the checksum.
        let mut typo = t.to_string().into_bytes();
        typo[10] = if typo[10] == b'a' { b'b' } else { b'a' };
        let typo = String::from_utf8(typo).unwrap();
        assert_eq!(generated_shape(&typo), GeneratedShape::BadChecksum);
        assert_eq!(
            validate_secret(&Secret::new(typo), "someone"),
            Err(CredentialError::SecretBadChecksum)
        );
        assert_ne!(generate_secret(&mut rng), s);
    }

    #[test]
    fn generated_identifier_is_uuid_shaped_and_valid() {
        let mut rng = ChaCha20Rng::seed_from_u64(8);
        let id = generate_identifier(&mut rng);
        assert_eq!(id.len(), 36);
        assert!(uuid::Uuid::try_parse(&id).is_ok());
        assert_eq!(validate_identifier(&id), Ok(()));
    }

    #[test]
    fn identifier_rules_and_messages() {
        assert_eq!(
            validate_identifier("ab"),
            Err(CredentialError::IdentifierLength { len: 2 })
        );
        assert!(validate_identifier(&"a".repeat(64)).is_ok());
        assert!(validate_identifier(&"a".repeat(65)).is_err());
        assert!(validate_identifier("a.b_c-d9").is_ok());
        let e = validate_identifier("ab c").unwrap_err();
        assert_eq!(
            e.to_string(),
            "identifier has ' ' at position 2: only ASCII letters, digits, `.`, `_` and `-` are allowed"
        );
        assert_eq!(
            validate_identifier("_abc"),
            Err(CredentialError::IdentifierStart { found: '_' })
        );
        assert!(validate_identifier("abé").is_err());
        assert_eq!(
            validate_identifier("-ab").unwrap_err().to_string(),
            "identifier starts with '-': it must start with an ASCII letter or digit"
        );
    }

    #[test]
    fn secret_rules_and_messages_never_echo_the_secret() {
        let cases = [
            (
                "short",
                "secret is 5 characters long: it must have 12 to 128",
            ),
            (
                "has a space in it",
                "secret has a character outside printable ASCII at position 3: only characters 0x21 to 0x7E are allowed (no spaces)",
            ),
            (
                "xxALICExx-123",
                "secret contains the identifier: choose a secret that does not",
            ),
        ];
        for (secret, message) in cases {
            let e = validate_secret(&Secret::new(secret), "alice").unwrap_err();
            assert_eq!(e.to_string(), message);
            assert!(!format!("{e} {e:?}").contains(secret));
        }
        assert!(validate_secret(&Secret::new("x".repeat(128)), "alice").is_ok());
        assert!(validate_secret(&Secret::new("x".repeat(129)), "alice").is_err());
        assert!(validate_secret(&Secret::new("!~correct-horse"), "alice").is_ok());
    }

    #[test]
    fn label_rules() {
        assert!(validate_label("Production server").is_ok());
        assert_eq!(
            validate_label(""),
            Err(CredentialError::LabelLength { len: 0 })
        );
        assert!(validate_label(&"é".repeat(64)).is_ok());
        assert!(validate_label(&"é".repeat(65)).is_err());
        assert_eq!(
            validate_label("a\nb"),
            Err(CredentialError::LabelControl { position: 1 })
        );
        // Bidi overrides, zero-width characters, the BOM, soft hyphen,
        // separators: invisible, and able to make a label read otherwise.
        for (c, cp) in [
            ('\u{202E}', 0x202E),
            ('\u{2066}', 0x2066),
            ('\u{200B}', 0x200B),
            ('\u{200D}', 0x200D),
            ('\u{FEFF}', 0xFEFF),
            ('\u{00AD}', 0x00AD),
            ('\u{2028}', 0x2028),
            ('\u{2029}', 0x2029),
        ] {
            let label = format!("pay{c}ments");
            let e = validate_label(&label).unwrap_err();
            assert_eq!(
                e,
                CredentialError::LabelInvisible {
                    position: 3,
                    code_point: cp
                }
            );
            assert!(e.to_string().contains(&format!("U+{cp:04X}")), "{e}");
        }
        // Visible non-ASCII text is fine.
        assert!(validate_label("Zahlungen – Büro 東京 🚀").is_ok());
    }

    #[test]
    fn a_chosen_secret_may_not_pass_for_a_generated_one() {
        let generated = generate_secret(&mut ChaCha20Rng::seed_from_u64(12));
        let e = validate_secret(&generated, "someone").unwrap_err();
        assert_eq!(e, CredentialError::SecretLooksGenerated);
        assert!(e.to_string().contains("shape of a generated secret"));
        assert!(!e.to_string().contains(generated.expose_secret()));
    }
}

//! Typed, opaque, random identifiers: never sequential (122 random bits from
//! the CSPRNG), never mixed up, since each kind carries its own prefix
//! (`acc_`, `key_`).

use rand_core::CryptoRng;
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// A string that is not a well-formed id of the expected kind.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{given}` is not a valid {kind} id: expected `{prefix}` followed by 32 lowercase hex digits"
)]
pub struct ParseIdError {
    /// What was given, cut to 64 characters.
    pub given: String,
    /// Which kind of id was expected (`account` or `key`).
    pub kind: &'static str,
    /// The prefix that kind of id carries.
    pub prefix: &'static str,
}

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Uuid);

        impl $name {
            /// The prefix of this id's text form.
            pub const PREFIX: &'static str = $prefix;

            /// A fresh random id (122 random bits, UUID version 4 layout).
            pub fn random(rng: &mut (impl CryptoRng + ?Sized)) -> Self {
                let mut bytes = [0u8; 16];
                rng.fill_bytes(&mut bytes);
                Self(uuid::Builder::from_random_bytes(bytes).into_uuid())
            }

            /// The id's 16 bytes, for stores that keep them in binary form.
            pub fn as_bytes(&self) -> &[u8; 16] {
                self.0.as_bytes()
            }

            /// Rebuilds an id from the 16 bytes [`Self::as_bytes`] gave.
            pub fn from_bytes(bytes: [u8; 16]) -> Self {
                Self(Uuid::from_bytes(bytes))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{}", $prefix, self.0.simple())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let err = || ParseIdError {
                    given: s.chars().take(64).collect(),
                    kind: $kind,
                    prefix: $prefix,
                };
                let hex = s.strip_prefix($prefix).ok_or_else(err)?;
                if hex.len() != 32 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                    return Err(err());
                }
                Uuid::try_parse(hex).map(Self).map_err(|_| err())
            }
        }
    };
}

typed_id!(
    /// Identifies an account. Text form: `acc_` and 32 hex digits.
    AccountId,
    "acc_",
    "account"
);
typed_id!(
    /// Identifies an API key. Text form: `key_` and 32 hex digits.
    KeyId,
    "key_",
    "key"
);

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    #[test]
    fn ids_roundtrip_and_do_not_mix() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let a = AccountId::random(&mut rng);
        let k = KeyId::random(&mut rng);
        assert_ne!(a.as_bytes(), k.as_bytes());
        assert_eq!(a.to_string().parse::<AccountId>(), Ok(a));
        assert_eq!(k.to_string().parse::<KeyId>(), Ok(k));
        assert_eq!(AccountId::from_bytes(*a.as_bytes()), a);
        let err = k.to_string().parse::<AccountId>().unwrap_err();
        assert!(err.to_string().contains("is not a valid account id"));
        assert!(
            err.to_string()
                .contains("`acc_` followed by 32 lowercase hex digits")
        );
    }

    #[test]
    fn malformed_ids_are_refused() {
        for bad in [
            "",
            "acc_",
            "acc_123",
            "ACC_0123456789abcdef0123456789abcdef",
            "acc_0123456789ABCDEF0123456789abcdef",
            "acc_0123456789abcdef0123456789abcdeg",
            "acc_0123456789abcdef0123456789abcdef0",
        ] {
            assert!(bad.parse::<AccountId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn ids_are_not_sequential() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let ids: std::collections::HashSet<_> =
            (0..1000).map(|_| KeyId::random(&mut rng)).collect();
        assert_eq!(ids.len(), 1000);
    }
}

//! The five channels a key can open.
//!
//! Rules:
//! - There are exactly five, in this order: FTP, REST, HTTP, Web Service,
//!   Email.
//! - Each has a stable code (`ftp`, `rest`, `http`, `web_service`, `email`)
//!   and a label for people (`FTP`, `REST`, `HTTP`, `Web Service`, `Email`).
//! - Parsing a code ignores ASCII case; a bad code gets an error naming the
//!   five valid ones.
//! - Only REST allows several keys per account.

use std::fmt;
use std::str::FromStr;

/// A channel through which an account sends: one key per channel per account,
/// except [`Channel::Rest`], which allows several.
///
/// The order of the variants is the product's display order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Channel {
    /// File upload over FTP.
    Ftp,
    /// The REST API (the only channel that allows several keys per account).
    Rest,
    /// The plain HTTP (query-string) API.
    Http,
    /// The SOAP web service.
    WebService,
    /// E-mail to SMS.
    Email,
}

impl Channel {
    /// All five channels, in display order.
    pub const ALL: [Channel; 5] = [
        Channel::Ftp,
        Channel::Rest,
        Channel::Http,
        Channel::WebService,
        Channel::Email,
    ];

    /// The stable machine code: `ftp`, `rest`, `http`, `web_service`, `email`.
    pub const fn code(self) -> &'static str {
        match self {
            Channel::Ftp => "ftp",
            Channel::Rest => "rest",
            Channel::Http => "http",
            Channel::WebService => "web_service",
            Channel::Email => "email",
        }
    }

    /// The label shown to people: `FTP`, `REST`, `HTTP`, `Web Service`, `Email`.
    pub const fn label(self) -> &'static str {
        match self {
            Channel::Ftp => "FTP",
            Channel::Rest => "REST",
            Channel::Http => "HTTP",
            Channel::WebService => "Web Service",
            Channel::Email => "Email",
        }
    }

    /// Whether an account may hold several keys for this channel (only REST).
    pub const fn allows_several_keys(self) -> bool {
        matches!(self, Channel::Rest)
    }

    /// Position in [`Channel::ALL`], for compact sets.
    pub(crate) const fn index(self) -> u8 {
        match self {
            Channel::Ftp => 0,
            Channel::Rest => 1,
            Channel::Http => 2,
            Channel::WebService => 3,
            Channel::Email => 4,
        }
    }
}

impl fmt::Display for Channel {
    /// Displays the stable code (use [`Channel::label`] for people).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.code())
    }
}

/// A string that is not one of the five channel codes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("channel `{given}` is not one of ftp, rest, http, web_service, email")]
pub struct ParseChannelError {
    /// What was given, cut to 64 characters so an error never carries a huge input.
    pub given: String,
}

impl FromStr for Channel {
    type Err = ParseChannelError;

    /// Parses a code, ignoring ASCII case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Channel::ALL
            .into_iter()
            .find(|c| c.code().eq_ignore_ascii_case(s))
            .ok_or_else(|| ParseChannelError {
                given: s.chars().take(64).collect(),
            })
    }
}

/// A set of channels (a bit set over the five).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ChannelSet(u8);

impl ChannelSet {
    /// No channel.
    pub const EMPTY: ChannelSet = ChannelSet(0);
    /// All five channels.
    pub const ALL: ChannelSet = ChannelSet::of(&Channel::ALL);

    /// The set as bits, one per channel in [`Channel::ALL`] order (FTP is
    /// bit 0): how stores keep it.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// The set of these bits, or `None` if a bit names no channel.
    pub const fn from_bits(bits: u8) -> Option<ChannelSet> {
        if bits & !ChannelSet::ALL.0 != 0 {
            None
        } else {
            Some(ChannelSet(bits))
        }
    }

    /// The set of the given channels.
    pub const fn of(channels: &[Channel]) -> ChannelSet {
        let mut bits = 0u8;
        let mut i = 0;
        while i < channels.len() {
            bits |= 1 << channels[i].index();
            i += 1;
        }
        ChannelSet(bits)
    }

    /// Whether `channel` is in the set.
    pub const fn contains(self, channel: Channel) -> bool {
        self.0 & (1 << channel.index()) != 0
    }

    /// This set with `channel` added.
    #[must_use]
    pub const fn with(self, channel: Channel) -> ChannelSet {
        ChannelSet(self.0 | (1 << channel.index()))
    }

    /// The channels of this set that are not in `other`.
    pub const fn difference(self, other: ChannelSet) -> ChannelSet {
        ChannelSet(self.0 & !other.0)
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Number of channels in the set.
    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The channels in display order.
    pub fn iter(self) -> impl Iterator<Item = Channel> {
        Channel::ALL.into_iter().filter(move |c| self.contains(*c))
    }
}

impl FromIterator<Channel> for ChannelSet {
    fn from_iter<I: IntoIterator<Item = Channel>>(iter: I) -> Self {
        iter.into_iter().fold(ChannelSet::EMPTY, ChannelSet::with)
    }
}

impl fmt::Debug for ChannelSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_labels_in_order() {
        let codes: Vec<_> = Channel::ALL.iter().map(|c| c.code()).collect();
        assert_eq!(codes, ["ftp", "rest", "http", "web_service", "email"]);
        let labels: Vec<_> = Channel::ALL.iter().map(|c| c.label()).collect();
        assert_eq!(labels, ["FTP", "REST", "HTTP", "Web Service", "Email"]);
        assert!(Channel::ALL.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn parse_ignores_case_and_roundtrips() {
        for c in Channel::ALL {
            assert_eq!(c.code().parse::<Channel>(), Ok(c));
            assert_eq!(c.code().to_ascii_uppercase().parse::<Channel>(), Ok(c));
            assert_eq!(c.to_string().parse::<Channel>(), Ok(c));
        }
        assert_eq!("Web_Service".parse::<Channel>(), Ok(Channel::WebService));
    }

    #[test]
    fn bad_code_names_the_valid_ones() {
        let err = "sms".parse::<Channel>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "channel `sms` is not one of ftp, rest, http, web_service, email"
        );
        for bad in [
            "",
            " ftp",
            "web service",
            "webservice",
            "ftps",
            "Web Service",
        ] {
            assert!(bad.parse::<Channel>().is_err(), "{bad:?} parsed");
        }
        let long = "x".repeat(10_000);
        assert_eq!(long.parse::<Channel>().unwrap_err().given.len(), 64);
    }

    #[test]
    fn only_rest_allows_several() {
        let several: Vec<_> = Channel::ALL
            .into_iter()
            .filter(|c| c.allows_several_keys())
            .collect();
        assert_eq!(several, [Channel::Rest]);
    }

    #[test]
    fn channel_set_operations() {
        let s = ChannelSet::of(&[Channel::Email, Channel::Ftp]);
        assert_eq!(s.len(), 2);
        assert!(s.contains(Channel::Ftp) && !s.contains(Channel::Rest));
        assert_eq!(s.iter().collect::<Vec<_>>(), [Channel::Ftp, Channel::Email]);
        assert_eq!(format!("{s:?}"), "{Ftp, Email}");
        assert!(ChannelSet::EMPTY.is_empty());
        let all: ChannelSet = Channel::ALL.into_iter().collect();
        assert_eq!(all.len(), 5);
    }
}

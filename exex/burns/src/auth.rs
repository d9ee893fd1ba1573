//! Who may read the burn feed, and over what: the bearer token and the endpoint rule.
//!
//! The feed's burns become releasable peg-outs, so a forged feed is forged money. The rule is the one the
//! governance stream follows: the feed is reached over TLS (`https://`), or in plaintext only on
//! loopback, where nothing outside the host can read or inject; and the server asks for a bearer token
//! (`authorization: Bearer <token>`), which it compares in constant time. [`BearerToken`] is that token
//! on both sides; [`check_endpoint`] is the transport rule, applied by [`BurnFeedClient::new`]
//! (`crate::BurnFeedClient`) and by the node before it starts.
//!
//! [`BurnFeedClient::new`]: crate::BurnFeedClient::new

use std::{
    net::IpAddr,
    path::{Path, PathBuf},
};

use subtle::ConstantTimeEq;

/// The metadata key the token travels in.
pub const AUTHORIZATION: &str = "authorization";

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The token (or its file) is empty or only whitespace: an empty token would let anyone in.
    #[error("the bearer token is empty")]
    Empty,
    /// The token holds a character an HTTP/2 header cannot carry (it must be visible ASCII).
    #[error("the bearer token must be visible ASCII (no spaces or control characters)")]
    Invalid,
    /// The token file could not be read.
    #[error("reading the bearer token file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The secret a feed client presents and a feed server requires.
///
/// Never empty, visible ASCII only; surrounding whitespace (a file's trailing newline) is not part of
/// it. Its `Debug` output does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken(String);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

impl BearerToken {
    /// The token `text`, trimmed.
    pub fn new(text: &str) -> Result<Self, TokenError> {
        let token = text.trim();
        if token.is_empty() {
            return Err(TokenError::Empty);
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(TokenError::Invalid);
        }
        Ok(Self(token.to_owned()))
    }

    /// The token held in the file at `path` (e.g. `etc/keys/devnet-feed.token`).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, TokenError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|source| TokenError::Read { path: path.to_owned(), source })?;
        Self::new(&text)
    }

    /// The `authorization` header value a client sends: `Bearer <token>`.
    pub fn header_value(&self) -> String {
        format!("Bearer {}", self.0)
    }

    /// Whether `header` (the request's `authorization` value, if any) carries this token. Constant time
    /// in the token's content: only the length of a wrong value shows in the time taken.
    pub fn authorizes(&self, header: Option<&[u8]>) -> bool {
        let Some(header) = header else { return false };
        let expected = self.header_value();
        bool::from(header.ct_eq(expected.as_bytes()))
    }
}

/// Why an endpoint is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// Not a URL with a host.
    #[error("burn feed endpoint {url:?} is not a URL with a host")]
    NotAUrl {
        /// The endpoint.
        url: String,
    },
    /// Neither `https://` nor `http://`.
    #[error("burn feed endpoint {url:?}: use https:// (TLS), or http:// on loopback")]
    Scheme {
        /// The endpoint.
        url: String,
    },
    /// `http://` to a host that is not loopback: anyone on the path could read or forge burns.
    #[error(
        "burn feed endpoint {url:?}: plaintext is allowed on loopback only (127.0.0.1, ::1, localhost); \
         serve the feed over TLS and use https://"
    )]
    PlaintextOffLoopback {
        /// The endpoint.
        url: String,
    },
}

/// Whether the endpoint is TLS (`https://`); errors when it breaks the rule (plaintext off loopback,
/// another scheme, not a URL).
pub fn check_endpoint(url: &str) -> Result<bool, EndpointError> {
    let uri: http::Uri = url.parse().map_err(|_| EndpointError::NotAUrl { url: url.to_owned() })?;
    let host = uri.host().ok_or_else(|| EndpointError::NotAUrl { url: url.to_owned() })?;
    match uri.scheme_str() {
        Some("https") => Ok(true),
        Some("http") if is_loopback(host) => Ok(false),
        Some("http") => Err(EndpointError::PlaintextOffLoopback { url: url.to_owned() }),
        _ => Err(EndpointError::Scheme { url: url.to_owned() }),
    }
}

/// Whether a URL's host names this machine only.
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]
    use super::*;

    #[test]
    fn tokens_are_trimmed_never_empty_and_never_shown() {
        let token = BearerToken::new("  s3cret\n").unwrap();
        assert_eq!(token.header_value(), "Bearer s3cret");
        assert!(!format!("{token:?}").contains("s3cret"));
        assert!(matches!(BearerToken::new(" \n"), Err(TokenError::Empty)));
        assert!(matches!(BearerToken::new("two words"), Err(TokenError::Invalid)));
        assert!(matches!(BearerToken::new("caf\u{e9}"), Err(TokenError::Invalid)));
        assert!(matches!(BearerToken::from_file("/nonexistent/token"), Err(TokenError::Read { .. })));
    }

    #[test]
    fn only_the_exact_header_authorizes() {
        let token = BearerToken::new("s3cret").unwrap();
        assert!(token.authorizes(Some(b"Bearer s3cret")));
        for wrong in [&b"Bearer s3cre"[..], b"Bearer s3cret2", b"bearer s3cret", b"s3cret", b"", b"Bearer "] {
            assert!(!token.authorizes(Some(wrong)), "{}", String::from_utf8_lossy(wrong));
        }
        assert!(!token.authorizes(None));
    }

    #[test]
    fn plaintext_only_on_loopback() {
        for (url, tls) in [
            ("https://feed.example.org:50551", true),
            ("https://10.0.0.5:50551", true),
            ("http://127.0.0.1:50551", false),
            ("http://127.8.9.1:50551", false),
            ("http://localhost:50551", false),
            ("http://[::1]:50551", false),
        ] {
            assert_eq!(check_endpoint(url), Ok(tls), "{url}");
        }
        for url in ["http://10.0.0.5:50551", "http://feed.example.org", "http://[2001:db8::1]:1"] {
            assert!(matches!(check_endpoint(url), Err(EndpointError::PlaintextOffLoopback { .. })), "{url}");
            assert!(check_endpoint(url).unwrap_err().to_string().contains("https://"));
        }
        assert!(matches!(check_endpoint("ftp://127.0.0.1"), Err(EndpointError::Scheme { .. })));
        assert!(matches!(check_endpoint("not a url"), Err(EndpointError::NotAUrl { .. })));
        assert!(matches!(check_endpoint("/just/a/path"), Err(EndpointError::NotAUrl { .. })));
    }
}

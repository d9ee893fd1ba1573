//! Engine API authentication: the shared HS256 secret, token minting and checking, and the HTTP layer that
//! refuses unauthenticated requests before jsonrpsee reads their bodies.
//!
//! The rules are the Engine API's (`authentication.md`): a JWT signed with HS256 under a 32-byte secret,
//! sent as `Authorization: Bearer <token>`, whose `iat` claim is within ±60 seconds of the server's clock.
//!
//! HS256 is computed here with `hmac`/`sha2` instead of `JwtSecret::validate`/`encode`: those go through
//! `jsonwebtoken`, whose crypto backend is a process-wide choice made by cargo features elsewhere, and
//! panics when no backend was chosen. `JwtSecret` is still the key type, so callers share alloy's.

use std::{
    future::Future,
    path::{Path, PathBuf},
    pin::Pin,
    task::{Context, Poll},
    time::{SystemTime, UNIX_EPOCH},
};

use alloy_rpc_types_engine::JwtSecret;
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Mac, digest::KeyInit};
use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse};
use sha2::Sha256;

/// How far a token's `iat` may be from the server's clock, in seconds (Engine API: ±60 s).
pub const MAX_IAT_DRIFT_SECS: u64 = 60;

/// Length of the hex-encoded secret: 32 bytes.
const SECRET_HEX_LEN: usize = 64;

/// Why a JWT secret file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JwtSecretError {
    /// The file could not be read.
    #[error("cannot read JWT secret file {path}: {source}")]
    Io {
        /// The path that was read.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The secret does not have 64 hex digits.
    #[error("JWT secret must be 64 hex digits (32 bytes), found {0} characters")]
    InvalidLength(usize),
    /// The secret has a character that is not a hex digit.
    #[error("JWT secret is not hex: {0}")]
    InvalidHex(String),
}

/// Parses a JWT secret: 64 hex digits, optionally prefixed with `0x`, surrounding whitespace ignored.
pub fn parse_jwt_secret(text: &str) -> Result<JwtSecret, JwtSecretError> {
    let trimmed = text.trim();
    let hex = trimmed.strip_prefix("0x").or_else(|| trimmed.strip_prefix("0X")).unwrap_or(trimmed);
    if hex.len() != SECRET_HEX_LEN {
        return Err(JwtSecretError::InvalidLength(hex.len()));
    }
    if let Some(bad) = hex.chars().find(|c| !c.is_ascii_hexdigit()) {
        return Err(JwtSecretError::InvalidHex(format!("unexpected character {bad:?}")));
    }
    JwtSecret::from_hex(hex).map_err(|e| JwtSecretError::InvalidHex(e.to_string()))
}

/// Reads a JWT secret file (64 hex digits, optional `0x`, surrounding whitespace ignored).
pub fn read_jwt_secret(path: impl AsRef<Path>) -> Result<JwtSecret, JwtSecretError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path)
        .map_err(|source| JwtSecretError::Io { path: path.to_path_buf(), source })?;
    parse_jwt_secret(&text)
}

/// Why a request's token was refused. The message is the body of the 401 response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtValidationError {
    /// No `Authorization: Bearer …` header.
    #[error("missing or invalid Authorization header")]
    MissingBearer,
    /// The token is not three base64url parts with JSON header and claims.
    #[error("malformed JWT: {0}")]
    Malformed(&'static str),
    /// The header names an algorithm other than HS256.
    #[error("unsupported signature algorithm, only HS256 is supported")]
    UnsupportedAlgorithm,
    /// The signature does not match the secret.
    #[error("invalid JWT signature")]
    InvalidSignature,
    /// `iat` is more than 60 seconds away from now.
    #[error("iat claim is not within ±60 seconds of the current time")]
    StaleIat,
    /// `exp` is present and passed (with the same 60 s grace reth allows).
    #[error("JWT has expired")]
    Expired,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Claims {
    iat: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exp: Option<u64>,
}

/// The current UNIX time in seconds (0 if the clock is before 1970).
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

fn mac(secret: &JwtSecret) -> hmac::Hmac<Sha256> {
    // HMAC zero-pads keys shorter than the hash's block size (RFC 2104), so a 32-byte secret padded to
    // the 64-byte block gives the same MAC as `new_from_slice`, without a fallible constructor.
    let mut block = [0u8; 64];
    for (dst, src) in block.iter_mut().zip(secret.as_bytes()) {
        *dst = *src;
    }
    <hmac::Hmac<Sha256> as KeyInit>::new(&block.into())
}

/// Mints an HS256 token with the given `iat` (UNIX seconds), as a consensus client does.
pub fn encode_jwt(secret: &JwtSecret, iat: u64) -> String {
    encode_parts(secret, &Header { alg: "HS256".into(), typ: Some("JWT".into()) }, &Claims { iat, exp: None })
}

fn encode_parts(secret: &JwtSecret, header: &Header, claims: &Claims) -> String {
    // Serializing these two plain structs cannot fail; an empty part would only make the token invalid.
    let header = URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).unwrap_or_default());
    let claims = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let signing_input = format!("{header}.{claims}");
    let mut mac = mac(secret);
    mac.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

/// The `Authorization` header value (`Bearer <token>`) for a token issued now.
pub fn bearer_header(secret: &JwtSecret) -> String {
    format!("Bearer {}", encode_jwt(secret, unix_now()))
}

/// Checks an HS256 token against the secret at time `now` (UNIX seconds).
pub fn validate_jwt(secret: &JwtSecret, token: &str, now: u64) -> Result<(), JwtValidationError> {
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtValidationError::Malformed("expected three parts"));
    };
    let header: Header = URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(JwtValidationError::Malformed("header"))?;
    if header.alg != "HS256" {
        return Err(JwtValidationError::UnsupportedAlgorithm);
    }
    let signature =
        URL_SAFE_NO_PAD.decode(signature).map_err(|_| JwtValidationError::Malformed("signature"))?;
    let (signing_input, _) =
        token.rsplit_once('.').ok_or(JwtValidationError::Malformed("expected three parts"))?;
    let mut mac = mac(secret);
    mac.update(signing_input.as_bytes());
    // Constant-time comparison.
    mac.verify_slice(&signature).map_err(|_| JwtValidationError::InvalidSignature)?;
    let claims: Claims = URL_SAFE_NO_PAD
        .decode(claims)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(JwtValidationError::Malformed("claims"))?;
    if now.abs_diff(claims.iat) > MAX_IAT_DRIFT_SECS {
        return Err(JwtValidationError::StaleIat);
    }
    if let Some(exp) = claims.exp
        && exp.saturating_add(MAX_IAT_DRIFT_SECS) < now
    {
        return Err(JwtValidationError::Expired);
    }
    Ok(())
}

/// Checks the `Authorization` header of a request.
fn authorize<B>(secret: &JwtSecret, request: &http::Request<B>) -> Result<(), JwtValidationError> {
    let value = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(JwtValidationError::MissingBearer)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or(JwtValidationError::MissingBearer)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(JwtValidationError::MissingBearer);
    }
    validate_jwt(secret, token.trim(), unix_now())
}

/// A tower layer that answers HTTP 401 to requests without a valid Engine API token.
#[derive(Debug, Clone, Copy)]
pub struct JwtAuthLayer {
    secret: JwtSecret,
}

impl JwtAuthLayer {
    /// A layer checking tokens against `secret`.
    pub const fn new(secret: JwtSecret) -> Self {
        Self { secret }
    }
}

impl<S> tower::Layer<S> for JwtAuthLayer {
    type Service = JwtAuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        JwtAuthService { secret: self.secret, inner }
    }
}

/// The service of [`JwtAuthLayer`]: passes authenticated requests to `S`, answers 401 to the rest.
#[derive(Debug, Clone)]
pub struct JwtAuthService<S> {
    secret: JwtSecret,
    inner: S,
}

impl<S, B> tower::Service<HttpRequest<B>> for JwtAuthService<S>
where
    S: tower::Service<HttpRequest<B>, Response = HttpResponse> + Send,
    S::Error: Send + 'static,
    S::Future: Send + 'static,
{
    type Response = HttpResponse;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: HttpRequest<B>) -> Self::Future {
        match authorize(&self.secret, &request) {
            Ok(()) => Box::pin(self.inner.call(request)),
            Err(err) => {
                tracing::debug!(target: "engine::auth", %err, "refused unauthenticated request");
                metrics::counter!("engine_api_auth_failures_total").increment(1);
                Box::pin(std::future::ready(Ok(unauthorized(&err))))
            }
        }
    }
}

fn unauthorized(err: &JwtValidationError) -> HttpResponse {
    let mut response = HttpResponse::new(HttpBody::from(format!("{err}\n")));
    *response.status_mut() = http::StatusCode::UNAUTHORIZED;
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> JwtSecret {
        parse_jwt_secret(&"ab".repeat(32)).unwrap()
    }

    #[test]
    fn round_trip_and_clock_window() {
        let s = secret();
        let now = 1_700_000_000;
        assert_eq!(validate_jwt(&s, &encode_jwt(&s, now), now), Ok(()));
        assert_eq!(validate_jwt(&s, &encode_jwt(&s, now - 60), now), Ok(()));
        assert_eq!(validate_jwt(&s, &encode_jwt(&s, now + 60), now), Ok(()));
        assert_eq!(validate_jwt(&s, &encode_jwt(&s, now - 61), now), Err(JwtValidationError::StaleIat));
        assert_eq!(validate_jwt(&s, &encode_jwt(&s, now + 61), now), Err(JwtValidationError::StaleIat));
        let other = parse_jwt_secret(&"cd".repeat(32)).unwrap();
        assert_eq!(
            validate_jwt(&other, &encode_jwt(&s, now), now),
            Err(JwtValidationError::InvalidSignature)
        );
    }

    #[test]
    fn rejects_other_algorithms_and_garbage() {
        let s = secret();
        let token =
            encode_parts(&s, &Header { alg: "none".into(), typ: None }, &Claims { iat: 5, exp: None });
        assert_eq!(validate_jwt(&s, &token, 5), Err(JwtValidationError::UnsupportedAlgorithm));
        for garbage in ["", "a", "a.b", "a.b.c.d", "!!.!!.!!", "\u{e9}.x.y"] {
            assert!(
                matches!(validate_jwt(&s, garbage, 5), Err(JwtValidationError::Malformed(_))),
                "{garbage}"
            );
        }
        let expired = encode_parts(
            &s,
            &Header { alg: "HS256".into(), typ: None },
            &Claims { iat: 1000, exp: Some(900) },
        );
        assert_eq!(validate_jwt(&s, &expired, 1000), Err(JwtValidationError::Expired));
    }

    #[test]
    fn matches_a_reference_token() {
        // HMAC-SHA256 computed independently (Python's hmac) for secret 0xabab…ab, claims {"iat":1700000000}.
        let reference = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpYXQiOjE3MDAwMDAwMDB9.\
                         ILD6C_SXwKNhCvebSXLJDwCYa2iZjSb05lH6gII16L8";
        assert_eq!(encode_jwt(&secret(), 1_700_000_000), reference);
        assert_eq!(validate_jwt(&secret(), reference, 1_700_000_030), Ok(()));
    }

    #[test]
    fn secret_file_format() {
        let hex = "0123456789abcdef".repeat(4);
        assert!(parse_jwt_secret(&hex).is_ok());
        assert!(parse_jwt_secret(&format!("0x{hex}")).is_ok());
        assert!(parse_jwt_secret(&format!("  \n0x{hex}\n\n")).is_ok());
        assert_eq!(parse_jwt_secret(&format!("0x{hex}")).unwrap(), parse_jwt_secret(&hex).unwrap());
        assert!(matches!(parse_jwt_secret(""), Err(JwtSecretError::InvalidLength(0))));
        assert!(matches!(parse_jwt_secret(&hex[..62]), Err(JwtSecretError::InvalidLength(62))));
        assert!(matches!(parse_jwt_secret(&format!("{hex}00")), Err(JwtSecretError::InvalidLength(66))));
        assert!(matches!(parse_jwt_secret(&format!("zz{}", &hex[2..])), Err(JwtSecretError::InvalidHex(_))));
        assert!(matches!(parse_jwt_secret(&format!("0x {}", &hex[1..])), Err(JwtSecretError::InvalidHex(_))));
        assert!(matches!(read_jwt_secret("/nonexistent/jwt.hex"), Err(JwtSecretError::Io { .. })));
    }
}

//! Engine API authentication: the HTTP layer that refuses requests without a valid token before
//! jsonrpsee reads their bodies.
//!
//! The rules are the Engine API's (`authentication.md`): a JWT signed with HS256 under the shared 32-byte
//! secret, sent as `Authorization: Bearer <token>`, whose `iat` claim is within ±60 seconds of the
//! server's clock. Tokens are checked by alloy's [`JwtSecret::validate`], as reth checks them.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use alloy_rpc_types_engine::{JwtError, JwtSecret};
use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse};

/// Checks the `Authorization` header of a request.
fn authorize<B>(secret: &JwtSecret, request: &http::Request<B>) -> Result<(), JwtError> {
    let value = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(JwtError::MissingOrInvalidAuthorizationHeader)?;
    let (scheme, token) =
        value.trim().split_once(' ').ok_or(JwtError::MissingOrInvalidAuthorizationHeader)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(JwtError::MissingOrInvalidAuthorizationHeader);
    }
    secret.validate(token.trim())
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
                metrics::counter!("alys_devnet_engine_api_auth_failures_total").increment(1);
                Box::pin(std::future::ready(Ok(unauthorized(&err))))
            }
        }
    }
}

fn unauthorized(err: &JwtError) -> HttpResponse {
    let mut response = HttpResponse::new(HttpBody::from(format!("{err}\n")));
    *response.status_mut() = http::StatusCode::UNAUTHORIZED;
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

#[cfg(test)]
mod tests {
    use alloy_rpc_types_engine::Claims;

    use super::*;

    fn secret() -> JwtSecret {
        JwtSecret::from_hex("ab".repeat(32)).unwrap()
    }

    fn request(authorization: Option<String>) -> http::Request<()> {
        let mut builder = http::Request::builder();
        if let Some(value) = authorization {
            builder = builder.header(http::header::AUTHORIZATION, value);
        }
        builder.body(()).unwrap()
    }

    fn token(secret: &JwtSecret, iat: u64) -> String {
        secret.encode(&Claims { iat, exp: None }).unwrap()
    }

    #[test]
    fn bearer_tokens_within_the_clock_window_pass() {
        let s = secret();
        let now = Claims::with_current_timestamp().iat;
        for iat in [now, now - 50, now + 50] {
            authorize(&s, &request(Some(format!("Bearer {}", token(&s, iat))))).unwrap();
        }
        authorize(&s, &request(Some(format!("bearer {}", token(&s, now))))).unwrap();
        for (what, header) in [
            ("stale", Some(format!("Bearer {}", token(&s, now - 120)))),
            ("future", Some(format!("Bearer {}", token(&s, now + 120)))),
            (
                "other secret",
                Some(format!("Bearer {}", token(&JwtSecret::from_hex("cd".repeat(32)).unwrap(), now))),
            ),
            ("not bearer", Some(format!("Basic {}", token(&s, now)))),
            ("garbage", Some("Bearer a.b.c".into())),
            ("missing", None),
        ] {
            assert!(authorize(&s, &request(header)).is_err(), "{what}");
        }
    }
}

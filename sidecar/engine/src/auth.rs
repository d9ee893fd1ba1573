//! JWT authentication of Engine API requests: a fresh HS256 token (`iat` = now) on every request.

use std::task::{Context, Poll};

use alloy_rpc_types_engine::{Claims, JwtSecret};
use http::{HeaderValue, Request, header::AUTHORIZATION};
use tower::{Layer, Service};

/// Adds `Authorization: Bearer <jwt>` to every HTTP request, minted at send time so `iat` is always fresh.
#[derive(Debug, Clone)]
pub struct JwtAuthLayer {
    secret: JwtSecret,
}

impl JwtAuthLayer {
    /// A layer signing with `secret`.
    pub const fn new(secret: JwtSecret) -> Self {
        Self { secret }
    }
}

impl<S> Layer<S> for JwtAuthLayer {
    type Service = JwtAuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        JwtAuthService { secret: self.secret, inner }
    }
}

/// The service [`JwtAuthLayer`] wraps around the HTTP transport.
#[derive(Debug, Clone)]
pub struct JwtAuthService<S> {
    secret: JwtSecret,
    inner: S,
}

impl<S, B> Service<Request<B>> for JwtAuthService<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        match self.secret.encode(&Claims::with_current_timestamp()) {
            Ok(token) => match HeaderValue::from_str(&format!("Bearer {token}")) {
                Ok(value) => {
                    request.headers_mut().insert(AUTHORIZATION, value);
                }
                Err(error) => tracing::error!(target: "alys::engine", %error, "JWT is not a valid header"),
            },
            // The request goes out unauthenticated and the server answers 401, which surfaces as a
            // typed error at the caller rather than a panic here.
            Err(error) => tracing::error!(target: "alys::engine", %error, "cannot sign Engine API JWT"),
        }
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{
        convert::Infallible,
        future::{Ready, ready},
    };

    #[derive(Clone)]
    struct Echo;

    impl Service<Request<()>> for Echo {
        type Response = Option<HeaderValue>;
        type Error = Infallible;
        type Future = Ready<Result<Self::Response, Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: Request<()>) -> Self::Future {
            ready(Ok(request.headers().get(AUTHORIZATION).cloned()))
        }
    }

    #[tokio::test]
    async fn every_request_carries_a_fresh_valid_token() {
        let secret = JwtSecret::random();
        let mut service = JwtAuthLayer::new(secret).layer(Echo);
        let header = service.call(Request::new(())).await.unwrap().expect("authorization header");
        let token = header.to_str().unwrap().strip_prefix("Bearer ").expect("bearer scheme");
        secret.validate(token).expect("the server side accepts it");
        assert!(JwtSecret::random().validate(token).is_err(), "another secret refuses it");
    }
}

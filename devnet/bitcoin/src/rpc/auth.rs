//! bitcoind's RPC authentication: HTTP Basic with the cookie (`__cookie__:<hex>`) or
//! `-rpcuser`/`-rpcpassword`, checked before jsonrpsee reads the body; anything else gets HTTP 401 with
//! `WWW-Authenticate: Basic realm="jsonrpc"`, as `HTTPReq_JSONRPC` answers. Authenticated requests are
//! treated as JSON whatever their `Content-Type`, as bitcoind does.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use base64::Engine;
use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse};

/// Accepted `user:password` pairs.
#[derive(Debug, Clone)]
pub struct BasicAuthLayer {
    credentials: Arc<Vec<String>>,
}

impl BasicAuthLayer {
    /// A layer accepting any of `credentials` (each `user:password`).
    pub fn new(credentials: Vec<String>) -> Self {
        Self { credentials: Arc::new(credentials) }
    }

    fn authorized<B>(&self, request: &http::Request<B>) -> bool {
        let Some(value) = request.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let Some((scheme, encoded)) = value.trim().split_once(' ') else { return false };
        if !scheme.eq_ignore_ascii_case("basic") {
            return false;
        }
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        // Compare every candidate in full so the answer's timing does not tell how much matched.
        self.credentials.iter().fold(false, |found, expected| {
            let equal = expected.len() == decoded.len()
                && expected.bytes().zip(&decoded).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
            found | equal
        })
    }
}

impl<S> tower::Layer<S> for BasicAuthLayer {
    type Service = BasicAuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        BasicAuthService { layer: self.clone(), inner }
    }
}

/// The service of [`BasicAuthLayer`].
#[derive(Debug, Clone)]
pub struct BasicAuthService<S> {
    layer: BasicAuthLayer,
    inner: S,
}

impl<S, B> tower::Service<HttpRequest<B>> for BasicAuthService<S>
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

    fn call(&mut self, mut request: HttpRequest<B>) -> Self::Future {
        if self.layer.authorized(&request) {
            // bitcoind reads any body as JSON; its own examples send `content-type: text/plain`, which
            // jsonrpsee would refuse.
            request
                .headers_mut()
                .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
            return Box::pin(self.inner.call(request));
        }
        tracing::debug!(target: "devnet::bitcoin::rpc", "refused a request without valid credentials");
        let mut response = HttpResponse::new(HttpBody::empty());
        *response.status_mut() = http::StatusCode::UNAUTHORIZED;
        response.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Basic realm=\"jsonrpc\""),
        );
        Box::pin(std::future::ready(Ok(response)))
    }
}

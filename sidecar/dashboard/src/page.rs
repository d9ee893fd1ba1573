//! Serving the page: a tower layer in front of the RPC server's HTTP service that answers
//! `GET /dashboard` with the compiled-in HTML and passes every other request through.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use alys_rpc::jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse};
use http::{HeaderValue, Method, StatusCode, header};
use tower::{Layer, Service};

/// Where the page is served.
pub const PAGE_PATH: &str = "/dashboard";

/// The page: HTML, style and script in one file.
const PAGE: &str = include_str!("page.html");

/// What the page may load: only itself and the WebSocket back to this listener.
const CSP: &str = "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                   connect-src 'self' ws: wss:; img-src 'self' data:; frame-ancestors 'none'";

/// Adds the dashboard page to an RPC server's HTTP stack (or, switched off, passes everything through).
#[derive(Debug, Clone, Copy)]
pub struct PageLayer {
    enabled: bool,
}

impl PageLayer {
    /// The layer, serving the page when `enabled`.
    pub const fn new(enabled: bool) -> Self {
        Self { enabled }
    }
}

impl<S> Layer<S> for PageLayer {
    type Service = PageService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PageService { inner, enabled: self.enabled }
    }
}

/// The service [`PageLayer`] makes.
#[derive(Debug, Clone)]
pub struct PageService<S> {
    inner: S,
    enabled: bool,
}

/// The page's response (also for `HEAD`).
fn page_response(with_body: bool) -> HttpResponse {
    let body = if with_body { HttpBody::from(PAGE) } else { HttpBody::empty() };
    let mut response = HttpResponse::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

impl<S> Service<HttpRequest> for PageService<S>
where
    S: Service<HttpRequest, Response = HttpResponse>,
    S::Future: Send + 'static,
{
    type Response = HttpResponse;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, S::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: HttpRequest) -> Self::Future {
        let path = request.uri().path();
        if self.enabled && (path == PAGE_PATH || path == "/dashboard/") {
            let response = match *request.method() {
                Method::GET => page_response(true),
                Method::HEAD => page_response(false),
                _ => {
                    let mut response = HttpResponse::new(HttpBody::from("use GET\n"));
                    *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
                    response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
                    response
                }
            };
            return Box::pin(async move { Ok(response) });
        }
        Box::pin(self.inner.call(request))
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tower::{ServiceExt, service_fn};

    use super::*;

    /// The RPC server behind the layer: answers every request it gets with 204.
    fn inner()
    -> impl Service<HttpRequest, Response = HttpResponse, Error = Infallible, Future: Send + 'static> + Clone
    {
        service_fn(|_request: HttpRequest| async {
            let mut response = HttpResponse::new(HttpBody::empty());
            *response.status_mut() = StatusCode::NO_CONTENT;
            Ok::<_, Infallible>(response)
        })
    }

    fn request(method: Method, path: &str) -> HttpRequest {
        http::Request::builder().method(method).uri(path).body(HttpBody::empty()).expect("a request")
    }

    #[tokio::test]
    async fn the_page_is_served_with_its_policy_and_everything_else_passes_through() {
        let service = PageLayer::new(true).layer(inner());
        let page = service.clone().oneshot(request(Method::GET, "/dashboard")).await.unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(page.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert!(
            page.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .starts_with("default-src 'self'")
        );
        let head = service.clone().oneshot(request(Method::HEAD, "/dashboard/")).await.unwrap();
        assert_eq!(head.status(), StatusCode::OK);
        let post = service.clone().oneshot(request(Method::POST, "/dashboard")).await.unwrap();
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
        for path in ["/", "/health", "/dashboardx"] {
            let other = service.clone().oneshot(request(Method::GET, path)).await.unwrap();
            assert_eq!(other.status(), StatusCode::NO_CONTENT, "{path} reaches the RPC server");
        }
    }

    #[tokio::test]
    async fn switched_off_the_page_is_not_served() {
        let service = PageLayer::new(false).layer(inner());
        let response = service.oneshot(request(Method::GET, "/dashboard")).await.unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        for needle in ["<script src", "@import", "url(http", "src=\"http", "href=\"http", "<iframe"] {
            assert!(!PAGE.contains(needle), "the page loads something: {needle}");
        }
        for (i, _) in PAGE.match_indices("<link ") {
            let tag = PAGE.get(i..).and_then(|rest| rest.split('>').next()).unwrap_or_default();
            assert!(tag.contains("href=\"data:"), "a link to elsewhere: {tag}");
        }
        assert!(PAGE.contains("<title>Alys node dashboard</title>"));
    }
}

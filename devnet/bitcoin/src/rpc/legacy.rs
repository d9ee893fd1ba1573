//! Bitcoin Core's JSON-RPC 1.0 dialect in front of jsonrpsee, which speaks 2.0 only.
//!
//! `bitcoin-cli`, Core's `curl` examples and many scripts send `{"jsonrpc":"1.0",...}` or no `jsonrpc`
//! field at all, and expect Core's legacy answer: `{"result":...,"error":...,"id":...}` with both fields
//! present, and on error HTTP 500 (400 for an invalid request, 404 for an unknown method), as
//! `HTTPReq_JSONRPC` answers. The layer rewrites such requests to 2.0 for jsonrpsee and the answers
//! back. 2.0 requests pass untouched. In a batch each request keeps its own version's shape and the
//! batch is answered with HTTP 200, as Core does; a body that is not JSON gets Core's legacy parse
//! error.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use jsonrpsee::{
    core::http_helpers::{HttpError, read_body},
    server::{HttpBody, HttpRequest, HttpResponse},
};
use serde_json::{Map, Value, json};

/// Core's cap on an HTTP request body (`MAX_SIZE`, 32 MiB): a large block in hex fits.
pub(super) const MAX_BODY_SIZE: u32 = 0x0200_0000;

/// jsonrpsee's error codes that Core answers with a status other than 500.
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const PARSE_ERROR: i64 = -32700;

/// Translates JSON-RPC 1.0 (and version-less) requests to 2.0 and their answers back.
#[derive(Debug, Clone, Copy, Default)]
pub struct LegacyJsonRpcLayer;

impl<S> tower::Layer<S> for LegacyJsonRpcLayer {
    type Service = LegacyJsonRpcService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        LegacyJsonRpcService { inner }
    }
}

/// The service of [`LegacyJsonRpcLayer`].
#[derive(Debug, Clone)]
pub struct LegacyJsonRpcService<S> {
    inner: S,
}

impl<S> tower::Service<HttpRequest> for LegacyJsonRpcService<S>
where
    S: tower::Service<HttpRequest, Response = HttpResponse> + Clone + Send + 'static,
    S::Error: Send + 'static,
    S::Future: Send + 'static,
{
    type Response = HttpResponse;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: HttpRequest) -> Self::Future {
        if request.method() != http::Method::POST {
            return Box::pin(self.inner.call(request));
        }
        // The body is read before the inner service is called: hand it the instance `poll_ready`
        // prepared and keep a fresh clone.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            let bytes = match read_body(&parts.headers, body, MAX_BODY_SIZE).await {
                Ok((bytes, _)) => bytes,
                Err(HttpError::TooLarge) => return Ok(status_only(http::StatusCode::PAYLOAD_TOO_LARGE)),
                Err(HttpError::Malformed) => return Ok(parse_error()),
                Err(HttpError::Stream(error)) => {
                    tracing::debug!(target: "devnet::bitcoin::rpc", %error, "reading a request body failed");
                    return Ok(status_only(http::StatusCode::BAD_REQUEST));
                }
            };
            let Ok(mut value) = serde_json::from_slice::<Value>(&bytes) else { return Ok(parse_error()) };
            let Some(plan) = Plan::rewrite(&mut value) else {
                return inner.call(HttpRequest::from_parts(parts, HttpBody::from(bytes))).await;
            };
            let body = value.to_string();
            parts.headers.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(body.len()));
            let response = inner.call(HttpRequest::from_parts(parts, HttpBody::from(body))).await?;
            Ok(plan.restore(response).await)
        })
    }
}

/// A request as the client sent it: its id and whether it spoke 1.0.
#[derive(Debug)]
struct Original {
    id: Value,
    legacy: bool,
}

/// How to turn jsonrpsee's answer back into the client's dialect. Every rewritten request carries its
/// position in the body as its id, so answers map back whatever order they come in and whatever id
/// (Core takes any JSON value) the client chose.
#[derive(Debug)]
enum Plan {
    Single(Original),
    /// By position; `None` for a 2.0 notification or an entry that is not an object.
    Batch(Vec<Option<Original>>),
}

impl Plan {
    /// Rewrites `body` to 2.0; `None` (and `body` untouched) when it holds no 1.0 request.
    fn rewrite(body: &mut Value) -> Option<Self> {
        match body {
            Value::Object(request) if is_legacy(request) => Some(Self::Single(rewrite_one(request, 0))),
            Value::Array(requests) if requests.iter().any(|r| r.as_object().is_some_and(is_legacy)) => {
                let originals = requests
                    .iter_mut()
                    .enumerate()
                    .map(|(index, request)| {
                        let request = request.as_object_mut()?;
                        // A 2.0 request without an id is a notification: no answer to map.
                        (is_legacy(request) || request.contains_key("id"))
                            .then(|| rewrite_one(request, index))
                    })
                    .collect();
                Some(Self::Batch(originals))
            }
            _ => None,
        }
    }

    async fn restore(self, response: HttpResponse) -> HttpResponse {
        let (mut parts, body) = response.into_parts();
        let value = match read_body(&parts.headers, body, u32::MAX).await {
            Ok((bytes, _)) => serde_json::from_slice::<Value>(&bytes).map_err(|_| bytes),
            Err(error) => {
                tracing::debug!(target: "devnet::bitcoin::rpc", %error, "reading a response body failed");
                return status_only(http::StatusCode::INTERNAL_SERVER_ERROR);
            }
        };
        let body = match (self, value) {
            (Self::Single(original), Ok(Value::Object(answer))) => {
                let (answer, status) = restore_one(answer, original);
                parts.status = status;
                answer
            }
            (Self::Batch(mut originals), Ok(Value::Array(answers))) => Value::Array(
                answers
                    .into_iter()
                    .map(|answer| {
                        let Value::Object(answer) = answer else { return answer };
                        let original = answer
                            .get("id")
                            .and_then(Value::as_u64)
                            .and_then(|index| usize::try_from(index).ok())
                            .and_then(|index| originals.get_mut(index))
                            .and_then(Option::take);
                        match original {
                            Some(original) => restore_one(answer, original).0,
                            None => Value::Object(answer),
                        }
                    })
                    .collect(),
            ),
            // Not an answer of the expected shape (an HTTP-level refusal): passed on as it is.
            (_, Ok(other)) => other,
            (_, Err(bytes)) => return HttpResponse::from_parts(parts, HttpBody::from(bytes)),
        };
        parts.headers.remove(http::header::CONTENT_LENGTH);
        HttpResponse::from_parts(parts, HttpBody::from(body.to_string()))
    }
}

/// Core's test (`JSONRPCRequest::parse`): no `jsonrpc` field, a null one, or `"1.0"`.
fn is_legacy(request: &Map<String, Value>) -> bool {
    match request.get("jsonrpc") {
        None | Some(Value::Null) => true,
        Some(Value::String(version)) => version == "1.0",
        Some(_) => false,
    }
}

fn rewrite_one(request: &mut Map<String, Value>, index: usize) -> Original {
    let legacy = is_legacy(request);
    // A 1.0 request without an id is still answered, with `"id": null`.
    let id = request.insert("id".into(), json!(index)).unwrap_or(Value::Null);
    request.insert("jsonrpc".into(), json!("2.0"));
    Original { id, legacy }
}

/// Puts the client's id back and, for a 1.0 request, Core's legacy shape and HTTP status.
fn restore_one(mut answer: Map<String, Value>, original: Original) -> (Value, http::StatusCode) {
    if !original.legacy {
        answer.insert("id".into(), original.id);
        return (Value::Object(answer), http::StatusCode::OK);
    }
    let error = answer.remove("error").unwrap_or(Value::Null);
    let result = if error.is_null() { answer.remove("result").unwrap_or(Value::Null) } else { Value::Null };
    let status = legacy_status(&error);
    (json!({"result": result, "error": error, "id": original.id}), status)
}

/// `JSONErrorReply`'s status for a 1.0 request.
fn legacy_status(error: &Value) -> http::StatusCode {
    if error.is_null() {
        return http::StatusCode::OK;
    }
    match error.get("code").and_then(Value::as_i64) {
        Some(INVALID_REQUEST) => http::StatusCode::BAD_REQUEST,
        Some(METHOD_NOT_FOUND) => http::StatusCode::NOT_FOUND,
        _ => http::StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Core's answer to a body that is not JSON: a legacy parse error, HTTP 500.
fn parse_error() -> HttpResponse {
    let body = json!({"result": null, "error": {"code": PARSE_ERROR, "message": "Parse error"}, "id": null});
    let mut response = HttpResponse::new(HttpBody::from(body.to_string()));
    *response.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    response
}

fn status_only(status: http::StatusCode) -> HttpResponse {
    let mut response = HttpResponse::new(HttpBody::empty());
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_single_legacy_request_is_rewritten_with_its_id_kept() {
        let mut body = json!({"jsonrpc": "1.0", "id": "curltest", "method": "getblockcount", "params": []});
        let Some(Plan::Single(original)) = Plan::rewrite(&mut body) else { panic!("not rewritten") };
        assert_eq!(body, json!({"jsonrpc": "2.0", "id": 0, "method": "getblockcount", "params": []}));
        assert_eq!((original.id, original.legacy), (json!("curltest"), true));

        let mut versionless = json!({"method": "getblockcount"});
        let Some(Plan::Single(original)) = Plan::rewrite(&mut versionless) else { panic!("not rewritten") };
        assert_eq!(versionless, json!({"jsonrpc": "2.0", "id": 0, "method": "getblockcount"}));
        assert_eq!(original.id, Value::Null);
    }

    #[test]
    fn two_point_zero_bodies_pass_untouched() {
        for body in [
            json!({"jsonrpc": "2.0", "id": 1, "method": "getblockcount"}),
            json!([{"jsonrpc": "2.0", "id": 1, "method": "getblockcount"}, {"jsonrpc": "2.0", "method": "x"}]),
            json!({"jsonrpc": "3.0", "id": 1, "method": "getblockcount"}),
        ] {
            let mut rewritten = body.clone();
            assert!(Plan::rewrite(&mut rewritten).is_none());
            assert_eq!(rewritten, body);
        }
    }

    #[test]
    fn a_mixed_batch_maps_answers_back_by_position() {
        let mut body = json!([
            {"jsonrpc": "1.0", "id": {"any": "value"}, "method": "a"},
            {"jsonrpc": "2.0", "id": "two", "method": "b"},
            {"jsonrpc": "2.0", "method": "notification"},
            7,
        ]);
        let Some(Plan::Batch(mut originals)) = Plan::rewrite(&mut body) else { panic!("not rewritten") };
        assert_eq!(body[0]["id"], 0);
        assert_eq!(body[1]["id"], 1);
        assert!(body[2].get("id").is_none());
        assert!(originals[2].is_none() && originals[3].is_none());

        let error =
            json!({"jsonrpc": "2.0", "id": 0, "error": {"code": -32601, "message": "Method not found"}});
        let Value::Object(error) = error else { unreachable!() };
        let (legacy, status) = restore_one(error, originals[0].take().unwrap());
        assert_eq!(
            legacy,
            json!({"result": null, "error": {"code": -32601, "message": "Method not found"}, "id": {"any": "value"}})
        );
        assert_eq!(status, http::StatusCode::NOT_FOUND);
        let Value::Object(ok) = json!({"jsonrpc": "2.0", "id": 1, "result": 5}) else { unreachable!() };
        let (modern, _) = restore_one(ok, originals[1].take().unwrap());
        assert_eq!(modern, json!({"jsonrpc": "2.0", "id": "two", "result": 5}));
    }

    #[test]
    fn legacy_errors_get_core_http_statuses() {
        assert_eq!(legacy_status(&Value::Null), http::StatusCode::OK);
        assert_eq!(legacy_status(&json!({"code": -32600})), http::StatusCode::BAD_REQUEST);
        assert_eq!(legacy_status(&json!({"code": -32601})), http::StatusCode::NOT_FOUND);
        assert_eq!(legacy_status(&json!({"code": -8})), http::StatusCode::INTERNAL_SERVER_ERROR);
    }
}

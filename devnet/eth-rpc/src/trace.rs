//! A `tracing` span around every call (target `eth_rpc`), with its outcome and duration.

use std::{future::Future, time::Instant};

use jsonrpsee::{
    MethodResponse,
    core::middleware::{Batch, Notification, RpcServiceT},
    types::Request,
};
use tracing::Instrument;

/// Wraps the server's RPC service with a span per call.
#[derive(Debug, Clone)]
pub(crate) struct Traced<S> {
    inner: S,
}

impl<S> Traced<S> {
    pub(crate) const fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl<S> RpcServiceT for Traced<S>
where
    S: RpcServiceT<MethodResponse = MethodResponse> + Clone + Send + Sync + 'static,
{
    type MethodResponse = S::MethodResponse;
    type NotificationResponse = S::NotificationResponse;
    type BatchResponse = S::BatchResponse;

    fn call<'a>(&self, request: Request<'a>) -> impl Future<Output = Self::MethodResponse> + Send + 'a {
        let span = tracing::debug_span!(target: "eth_rpc", "rpc_call", method = %request.method_name(), id = %request.id());
        let inner = self.inner.clone();
        async move {
            let started = Instant::now();
            let response = inner.call(request).await;
            let elapsed_us = started.elapsed().as_micros() as u64;
            match response.as_error_code() {
                Some(code) => tracing::debug!(target: "eth_rpc", code, elapsed_us, "call failed"),
                None => tracing::trace!(target: "eth_rpc", elapsed_us, "call answered"),
            }
            response
        }
        .instrument(span)
    }

    fn batch<'a>(&self, batch: Batch<'a>) -> impl Future<Output = Self::BatchResponse> + Send + 'a {
        let span = tracing::debug_span!(target: "eth_rpc", "rpc_batch", len = batch.len());
        self.inner.batch(batch).instrument(span)
    }

    fn notification<'a>(
        &self,
        notification: Notification<'a>,
    ) -> impl Future<Output = Self::NotificationResponse> + Send + 'a {
        let span = tracing::debug_span!(target: "eth_rpc", "rpc_notification", method = %notification.method);
        self.inner.notification(notification).instrument(span)
    }
}

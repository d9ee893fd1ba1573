//! `alys_dashboard` and `alys_subscribeDashboard`.

use std::sync::Arc;

use alys_rpc::{
    ErrorCode,
    jsonrpsee::{
        PendingSubscriptionSink, RpcModule,
        core::{RegisterMethodError, RpcResult, SubscriptionResult, async_trait},
        proc_macros::rpc,
    },
    rpc_error,
};

use crate::{Dashboard, sample::DashboardService};

/// The dashboard's data, for the page and for any other client.
#[rpc(server, client)]
pub trait DashboardApi {
    /// The latest snapshot. Error [`Unavailable`](ErrorCode::Unavailable) in the first second after start,
    /// before the first one is taken.
    #[method(name = "alys_dashboard")]
    async fn dashboard(&self) -> RpcResult<Dashboard>;

    /// Every new snapshot (about one a second), starting with the latest; notifications are named
    /// `alys_dashboardSnapshot`. A client too slow to take them misses intermediate ones, never the newest.
    #[subscription(name = "alys_subscribeDashboard" => "alys_dashboardSnapshot", unsubscribe = "alys_unsubscribeDashboard", item = Dashboard)]
    async fn subscribe_dashboard(&self) -> SubscriptionResult;
}

#[async_trait]
impl DashboardApiServer for DashboardService {
    async fn dashboard(&self) -> RpcResult<Dashboard> {
        let latest = self.latest();
        let snapshot = latest.ok_or_else(|| rpc_error(ErrorCode::Unavailable, "no snapshot taken yet"))?;
        Ok(Dashboard::clone(&snapshot))
    }

    async fn subscribe_dashboard(&self, pending: PendingSubscriptionSink) -> SubscriptionResult {
        let mut snapshots = self.watch();
        let sink = pending.accept().await?;
        let _span = tracing::debug_span!(target: "alys::dashboard", "subscription").entered();
        drop(_span);
        loop {
            let latest: Option<Arc<Dashboard>> = snapshots.borrow_and_update().clone();
            if let Some(snapshot) = latest {
                let message = serde_json::value::to_raw_value(&*snapshot)?;
                if sink.send(message).await.is_err() {
                    // The client went away.
                    return Ok(());
                }
            }
            tokio::select! {
                changed = snapshots.changed() => if changed.is_err() { return Ok(()) },
                () = sink.closed() => return Ok(()),
            }
        }
    }
}

impl DashboardService {
    /// The dashboard's RPC methods, to merge into the node's module.
    pub fn rpc_module(&self) -> Result<RpcModule<()>, RegisterMethodError> {
        let mut module = RpcModule::new(());
        module.merge(DashboardApiServer::into_rpc(self.clone()))?;
        Ok(module)
    }
}

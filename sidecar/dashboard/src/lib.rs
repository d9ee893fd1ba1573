//! The node's live dashboard.
//!
//! An operator opens `http://<rpc listen>/dashboard` and sees the node as its RPC describes it, kept
//! current without reloading. Three parts make that:
//!
//! - the **sampler** ([`DashboardService::spawn`]), one task that about once a second asks the node's own
//!   RPC methods in-process (`alys_syncStatus`, `alys_peers`, `alys_governanceStatus`, the bridge's
//!   lists), reads the last [`WINDOW`](sample::WINDOW) canonical blocks from the database (authors,
//!   approvals, missed slots, miners) and the Engine API call counters, and publishes one
//!   [`Dashboard`] snapshot on a watch channel, keeping an hour of samples for the plots. Because it
//!   reads the same answers a client would, the page and `alys_syncStatus` never disagree;
//! - the **API** ([`DashboardApiServer`]): `alys_dashboard` returns the latest snapshot and
//!   `alys_subscribeDashboard` streams each new one over the RPC listener's WebSocket;
//! - the **page** ([`PageLayer`]): one HTML file compiled into the binary (inline script and style, no
//!   build step, nothing fetched from elsewhere) served at `GET /dashboard` on the same listener; it
//!   subscribes over WebSocket and draws its plots as inline SVG.
//!
//! Nothing here holds a lock another task waits on: the sampler owns its state and readers only see
//! finished snapshots through the watch channel.

mod api;
mod page;
pub mod sample;
pub mod snapshot;

pub use api::{DashboardApiClient, DashboardApiServer};
pub use page::{PAGE_PATH, PageLayer, PageService};
pub use sample::{DashboardService, Sources};
pub use snapshot::Dashboard;

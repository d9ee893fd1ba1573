//! The burn feed (`alys.burnfeed.v1`): the ExEx's gRPC server and the sidecar's resuming client.
//!
//! The feed is the store's append-only event log. A subscriber names the last cursor it has processed;
//! the server streams every stored event after it, then live events. Backlog and live events come from
//! the same place (the store, read after a commit wakes the subscriber), so there is no seam at which an
//! event could be skipped or sent twice, and a slow consumer only lags: it holds a bounded channel, not a
//! growing buffer.

mod client;
mod convert;
mod server;

pub use client::{BurnFeedClient, ClientConfig, ClientError, CursorStore, FileCursorStore};
pub use convert::{FeedHead, ProtoError};
pub use server::{FeedConfig, FeedServer};

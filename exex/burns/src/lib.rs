//! Peg-out burns of the Alys bridge: what a burn is, how it is read from executed blocks, and how the
//! sidecar receives them from the ExEx's feed.
//!
//! # What a burn is
//!
//! BTC leaves Alys through the bridge contract predeployed at
//! [`BRIDGE_ADDRESS`](alys_contracts::BRIDGE_ADDRESS): a user calls
//! `requestPegOut(bytes bitcoinAddress)` with the value to move, the contract burns that value and emits
//! `RequestPegOut(address indexed evmAddress, bytes bitcoinAddress, uint256 value)`. Such a log is a
//! [`Burn`]. The federation pays it on Bitcoin once its block is final (DESIGN invariant 3).
//!
//! # Its identity
//!
//! A burn is identified by its [`BurnKey`]: the hash of the block that holds it and the index of its log
//! among *all* logs of that block, in receipt order (the `logIndex` of `eth_getLogs`). The hash, not the
//! number: after a reorg the same height holds another block, whose burns are other burns, and the
//! reverted block's burns no longer exist. The key is the same whether the burn is read from the
//! execution client's notifications ([`BurnExtractor::extract_block`]) or over JSON-RPC
//! ([`BurnExtractor::burn_from_rpc_log`], the geth path), so both paths agree burn for burn, and a burn
//! seen twice (a replay after a restart) is recognised as the same one.
//!
//! # Why only the bridge address counts
//!
//! Anyone can deploy a copy of the bridge contract and emit the same event with the same topic, without
//! burning anything on the real bridge. Only logs whose emitter is the bridge's address are burns; the
//! rest still count toward log indexes (so keys match `eth_getLogs`), but never as burns. A bridge log
//! with the burn topic that does not decode is skipped with a warning and a metric: receipts are outside
//! data and must never panic the node (DESIGN invariant 6).
//!
//! # What extraction reads
//!
//! [`BlockLogs`] is the chain shape the ExEx reads: a block's number, hash and parent, each receipt's
//! logs and, for a transaction that burned, its hash. reth's blocks (in `exex/reth`) and the devnet
//! engine's implement it in place, without copies.
//!
//! # How the feed delivers
//!
//! The ExEx (`alys-exex`) stores burns and appends a [`FeedEvent`] to an append-only log for each burn
//! added ([`FeedEventKind::Burn`]) or retracted by a reorg ([`FeedEventKind::Retract`]); each event has
//! a *cursor*, 1, 2, 3, … with no gaps. The `alys.burnfeed.v1` gRPC feed streams the events after a
//! cursor the subscriber names, then live ones. [`BurnFeedClient`] checks the cursors (no gap, no
//! duplicate, the server not behind the client) and reconnects with backoff.
//!
//! The consumer owns the cursor: it starts the client after the last cursor it committed and writes each
//! event's cursor in the same database transaction as the burns the event changes. Delivery is therefore
//! exactly once within a run and at least once across restarts: an event processed but not committed
//! before a crash comes again, and its key makes the replay harmless.
//!
//! The feed keeps a bounded history (see `alys-exex`'s retention rule). A consumer whose cursor fell
//! below what the feed still holds is refused with [`ClientError::Pruned`]: it must resynchronise,
//! never resume across a silent gap.
//!
//! # Who may read it
//!
//! Burns on the feed become payable peg-outs, so the feed is guarded like the governance stream
//! ([`auth`]): TLS (`https://`) or plaintext on loopback only, and a [`BearerToken`] the server
//! requires and compares in constant time. A refused token is [`ClientError::Unauthenticated`].

pub mod auth;
mod block;
mod burn;
mod client;
mod convert;
mod extract;
pub mod metrics;
#[cfg(feature = "test-utils")]
pub mod test_utils;

pub use auth::{BearerToken, EndpointError, TokenError};
pub use block::BlockLogs;
pub use burn::{Burn, BurnKey, BurnPosition, FeedEvent, FeedEventKind};
pub use client::{BurnFeedClient, ClientConfig, ClientError, FeedTls, RETAINED_FROM};
pub use convert::{FeedHead, ProtoError};
pub use extract::BurnExtractor;

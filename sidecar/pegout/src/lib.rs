//! Peg-out: BTC leaving Alys (re-exported by `alys-bridge` as `alys_bridge::pegout`).
//!
//! ```text
//!  burn on the bridge contract ──▶ ledger (pending → released once final and canonical, `source`)
//!                                   │
//!                                   ▼
//!  slot author: PegoutRules::propose ──▶ the block's peg-out: burns settled, unsigned transaction,
//!                                   │    refunds as withdrawals; settled burns, spent and created
//!                                   │    federation outputs committed with the block
//!                                   ▼
//!  every importer: PegoutRules::verify (rebuilds the transaction from the same burns and UTXOs)
//!                                   │
//!                                   ▼  the proposing block final
//!  payer: signature request (id from the txid) ──▶ governance ──▶ every witness verified
//!         ──▶ sendrawtransaction ──▶ confirmations followed, re-broadcast when it leaves the mempool
//! ```
//!
//! [`tx`] builds and checks the unsigned transaction, [`rules`] decides what a block may propose and
//! checks it, [`payer`] gets final proposals signed, broadcast and confirmed.

pub mod metrics;
pub mod payer;
pub mod rules;
pub mod tx;

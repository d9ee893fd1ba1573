//! The bridge's integration tests, one binary: the peg-out burn source and ledger ([`pegout`]), the
//! peg-out transaction rules ([`pegout::tx`](alys_bridge::pegout::tx)), and peg-in claims against the database ([`pegin`]).

mod payer;
mod pegin;
mod pegout;
mod pegout_tx;

//! The bridge's integration tests, one binary: the peg-out burn source and ledger ([`pegout`]), the
//! peg-out transaction rules ([`pegout_tx`]), and peg-in claims against the database ([`pegin`]).

mod pegin;
mod pegout;
mod pegout_tx;

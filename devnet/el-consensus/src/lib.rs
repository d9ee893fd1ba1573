//! The consensus rules of the embedded execution engine around revm: the fork schedule of an Alys chain
//! ([`AlysForks`], with the blob parameters of each fork), the checks of a header against its parent
//! ([`validate_header`]) with the values a builder derives from the parent for the next block
//! ([`next_base_fee`], [`next_gas_limit`], [`next_excess_blob_gas`]), and the one execution rule revm 43
//! lacks: EIP-7610, a contract creation at an account with storage collides ([`block_evm`],
//! [`StorageCollision`], over a database that is [`StorageOnly`]-aware).
//!
//! The rules are reth's and geth's, so the devnet engine agrees with them on which blocks are valid: gas
//! limits move by less than 1/1024 of the parent's per block and stay within [`MIN_GAS_LIMIT`] and
//! [`MAX_GAS_LIMIT`] (2^63 - 1), the base fee follows EIP-1559, the blob gas fields follow EIP-4844 with
//! the genesis `blobSchedule` of the fork at the header's timestamp (EIP-7840, EIP-7691), and each
//! fork's header fields are present exactly from its activation on.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use alys_el_consensus::{AlysForks, validate_header};
//! let spec = alys_chainspec::ChainSpec::devnet()?;
//! let forks = AlysForks::new(&spec);
//! let genesis = spec.genesis_header();
//! // A header copied from its parent does not follow it.
//! assert!(validate_header(&forks, &genesis, &genesis).is_err());
//! # Ok(()) }
//! ```

mod collision;
pub mod forks;
mod header;

pub use collision::{StorageCollision, StorageOnly, block_evm};
pub use forks::AlysForks;
pub use header::{
    GAS_LIMIT_BOUND_DIVISOR, HeaderError, MAX_EXTRA_DATA, MAX_GAS_LIMIT, MIN_GAS_LIMIT, next_base_fee,
    next_excess_blob_gas, next_gas_limit, validate_header,
};

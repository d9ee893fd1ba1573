//! Library side of `alys-devnet`: the reference merged-mining CPU miner shared by the `alys-miner`
//! binary and the devnet, which runs it by default.

pub mod miner;

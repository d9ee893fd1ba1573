//! End-to-end tests of the Alys node: `alys-devnet`, `alys` and `alys-miner` as processes on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, reason = "test code")]

mod bitcoin;
mod blobs;
mod crash;
mod dashboard;
mod el_cast;
mod federation;
mod federation_import;
mod federation_support;
mod governance;
mod mining;
mod network;
mod pegin;
mod pegin_import;
mod pegout;
mod pegout_import;
mod recovery;
mod support;

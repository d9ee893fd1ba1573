//! The Alys node (binary `alys`): it reads its configuration, opens its database, starts the actors
//! (the chain, the governance stream, the burn source) and wires them together, and serves the RPC and
//! the Prometheus metrics.
//!
//! Where things live, by crate: consensus rules in `alys-consensus`, block production and import in
//! `alys-chain`, merged mining in `alys-auxpow`, the Engine API client in `alys-engine-client`, governance
//! in `alys-governance`, peg-outs in `alys-bridge`, the database in `alys-storage`, and the RPC's types
//! and traits in `alys-rpc`. This crate only composes them.

pub mod config;
pub mod launch;
pub mod rpc;
pub mod status;

pub use launch::{LaunchError, NodeHandle, install_metrics, launch, shutdown_signal};

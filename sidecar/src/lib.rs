//! The Alys consensus sidecar (binary `alys`).
//!
//! It owns consensus and the bridge: Aura block production and import, AuxPow finalization, the Engine API
//! driver of the execution client, peg-ins and peg-outs, and the governance stream. Each component is an
//! actor ([`actor`]) that owns its state and is reached through a typed handle; nothing is shared behind
//! locks between them.

pub mod actor;
pub mod auxpow;
pub mod chain;
pub mod config;
pub mod engine;
pub mod governance;
pub mod node;
pub mod pegout;
pub mod rpc;
pub mod storage;

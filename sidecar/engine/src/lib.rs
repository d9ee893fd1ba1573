//! The Engine API driver of the execution client (reth, geth or the embedded devnet engine: one code path).

mod auth;
mod client;

pub use auth::{JwtAuthLayer, JwtAuthService};
pub use client::{BuiltPayload, EngineClient, EngineClientError, EngineVersion};

//! The error codes of the Alys RPC, in one place.

use jsonrpsee::types::ErrorObjectOwned;

/// Every error code the Alys RPC answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum ErrorCode {
    /// The parameters do not parse (JSON-RPC's standard code): a bad address, hash or hex.
    InvalidParams = -32602,
    /// The node failed internally (database, a stopped component): retrying later may work.
    Internal = -32603,
    /// The answer does not exist yet or the feature is not configured: nothing to mine yet, no
    /// governance service, no peg-out source, the federation not known yet.
    Unavailable = -32000,
    /// An admin method was called without the right token, or admin methods are disabled.
    Unauthorized = -32001,
    /// The node is unhealthy: the execution client is offline or a component stopped for good
    /// (`alys_health`, and HTTP 500 on `GET /health`).
    Unhealthy = -32002,
    /// The node did not answer within the call timeout (it is busy); retrying later may work.
    Timeout = -32003,
}

impl ErrorCode {
    /// The numeric code.
    pub const fn code(self) -> i32 {
        self as i32
    }

    /// The code of a numeric value, if it is one of ours.
    pub const fn from_code(code: i32) -> Option<Self> {
        Some(match code {
            -32602 => Self::InvalidParams,
            -32603 => Self::Internal,
            -32000 => Self::Unavailable,
            -32001 => Self::Unauthorized,
            -32002 => Self::Unhealthy,
            -32003 => Self::Timeout,
            _ => return None,
        })
    }
}

/// An error object with `code` and `message`.
pub fn rpc_error(code: ErrorCode, message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(code.code(), message.into(), None::<()>)
}

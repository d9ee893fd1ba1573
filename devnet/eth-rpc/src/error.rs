//! How engine errors are answered on the wire.
//!
//! Tools (cast, ethers, viem, MetaMask) match on codes and messages, so these follow reth where geth and reth
//! differ and geth's messages otherwise. The codes are public so callers and tests name them instead of
//! repeating numbers.

use alys_el_api::{BackendError, PoolError};
use jsonrpsee::types::ErrorObjectOwned;

/// `-32700`: the request is not valid JSON (answered by the transport, listed for completeness).
pub const PARSE_ERROR_CODE: i32 = -32700;
/// `-32601`: no such method (answered by the transport).
pub const METHOD_NOT_FOUND_CODE: i32 = -32601;
/// `-32602`: parameters of the wrong type or number, a log query over too many blocks or results, and
/// parameters that make no sense (reth's code for `query exceeds max block range`; geth uses `-32000`).
pub const INVALID_PARAMS_CODE: i32 = -32602;
/// `-32603`: the engine failed internally (shutting down, task gone).
pub const INTERNAL_ERROR_CODE: i32 = -32603;
/// `-32000`: geth's generic server error: every pool rejection and every execution failure but a revert.
pub const SERVER_ERROR_CODE: i32 = -32000;
/// `-32001`: a state read named a block that is not known; the message is `header not found` (reth's code,
/// geth's message; foundry retries on that message).
pub const RESOURCE_NOT_FOUND_CODE: i32 = -32001;
/// `3`: `eth_call` or `eth_estimateGas` reverted; `data` carries the 0x-hex revert payload.
pub const EXECUTION_REVERTED_CODE: i32 = 3;

/// The message answered for an unknown block in a state read.
pub const HEADER_NOT_FOUND: &str = "header not found";
/// The message `debug_traceTransaction` answers (code `-32000`) for a transaction in no canonical block.
pub const TRANSACTION_NOT_FOUND: &str = "transaction not found";

/// The JSON-RPC error for a backend error.
pub(crate) fn backend_error(err: &BackendError) -> ErrorObjectOwned {
    match err {
        BackendError::UnknownBlock => {
            ErrorObjectOwned::owned(RESOURCE_NOT_FOUND_CODE, HEADER_NOT_FOUND, None::<()>)
        }
        BackendError::Reverted { data, .. } => {
            // Display gives "execution reverted" or "execution reverted: <reason>"; data is always present
            // ("0x" when empty), as geth answers.
            ErrorObjectOwned::owned(EXECUTION_REVERTED_CODE, err.to_string(), Some(data.clone()))
        }
        BackendError::Execution(_) => ErrorObjectOwned::owned(SERVER_ERROR_CODE, err.to_string(), None::<()>),
        BackendError::RangeTooLarge { .. }
        | BackendError::TooManyResults { .. }
        | BackendError::InvalidParams(_) => invalid_params(err.to_string()),
        BackendError::Internal(_) => {
            ErrorObjectOwned::owned(INTERNAL_ERROR_CODE, err.to_string(), None::<()>)
        }
    }
}

/// The JSON-RPC error for a refused raw transaction: geth's `-32000` with the pool's message, except an
/// internal failure, which is `-32603`.
pub(crate) fn pool_error(err: &PoolError) -> ErrorObjectOwned {
    match err {
        PoolError::Internal(_) => ErrorObjectOwned::owned(INTERNAL_ERROR_CODE, err.to_string(), None::<()>),
        _ => ErrorObjectOwned::owned(SERVER_ERROR_CODE, err.to_string(), None::<()>),
    }
}

/// geth's `-32000 transaction not found`.
pub(crate) fn transaction_not_found() -> ErrorObjectOwned {
    ErrorObjectOwned::owned(SERVER_ERROR_CODE, TRANSACTION_NOT_FOUND, None::<()>)
}

/// A `-32602` error with a message.
pub(crate) fn invalid_params(message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(INVALID_PARAMS_CODE, message, None::<()>)
}

#[cfg(test)]
mod tests {
    use alloy_primitives::{Bytes, U256};

    use super::*;

    #[test]
    fn revert_carries_hex_data_and_reason() {
        let err = backend_error(&BackendError::Reverted {
            data: Bytes::from_static(&[0xde, 0xad]),
            reason: Some("nope".into()),
        });
        assert_eq!(err.code(), EXECUTION_REVERTED_CODE);
        assert_eq!(err.message(), "execution reverted: nope");
        assert_eq!(err.data().map(|d| d.get()), Some("\"0xdead\""));
    }

    #[test]
    fn pool_errors_keep_geth_messages() {
        let err = pool_error(&PoolError::InsufficientFunds { balance: U256::from(1), cost: U256::from(2) });
        assert_eq!(err.code(), SERVER_ERROR_CODE);
        assert_eq!(
            err.message(),
            "insufficient funds for gas * price + value: balance 1, tx cost 2, overshot 1"
        );
        assert_eq!(pool_error(&PoolError::Internal("x".into())).code(), INTERNAL_ERROR_CODE);
    }

    #[test]
    fn unknown_block_is_header_not_found() {
        let err = backend_error(&BackendError::UnknownBlock);
        assert_eq!((err.code(), err.message()), (RESOURCE_NOT_FOUND_CODE, HEADER_NOT_FOUND));
    }
}

//! Engine API error codes and the JSON-RPC error objects the server answers with.
//!
//! Codes and messages follow the Engine API spec (`common.md#errors`) and reth's mapping, so a consensus
//! client sees the same error objects from this server as from reth: `-32602` and `-38003` carry the reason
//! in `data.err`, the other engine codes carry only their spec message.

use alys_el_api::EngineError;
use jsonrpsee::types::{
    ErrorObjectOwned,
    error::{INTERNAL_ERROR_CODE, INVALID_PARAMS_CODE, INVALID_PARAMS_MSG, SERVER_ERROR_MSG},
};

/// `-38001`: no payload is being built for the id.
pub const UNKNOWN_PAYLOAD_CODE: i32 = -38001;
/// `-38002`: the forkchoice state is inconsistent.
pub const INVALID_FORKCHOICE_STATE_CODE: i32 = -38002;
/// `-38003`: the payload attributes are invalid.
pub const INVALID_PAYLOAD_ATTRIBUTES_CODE: i32 = -38003;
/// `-38004`: a bodies request asked for too many blocks.
pub const TOO_LARGE_REQUEST_CODE: i32 = -38004;
/// `-38005`: the method version does not match the fork at the payload's timestamp.
pub const UNSUPPORTED_FORK_CODE: i32 = -38005;

/// The most block bodies one `engine_getPayloadBodiesBy*V1` request may ask for (spec: at least 32;
/// reth: 1024).
pub const MAX_PAYLOAD_BODIES: u64 = 1024;

/// The `data` member of an error response: `{"err": "<reason>"}`, as reth and geth send it.
#[derive(serde::Serialize)]
struct ErrorData {
    err: String,
}

/// An Engine API call refused by the server's own checks or by the backend.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RpcError {
    /// The backend refused the call.
    #[error(transparent)]
    Backend(#[from] EngineError),
    /// The method version does not match the fork at the timestamp.
    #[error("Unsupported fork")]
    UnsupportedFork,
    /// A field is missing or present against the method version, or a parameter is out of range.
    #[error("{0}")]
    InvalidParams(String),
    /// The payload attributes do not match the method version.
    #[error("{0}")]
    InvalidPayloadAttributes(String),
    /// A bodies request asked for more than [`MAX_PAYLOAD_BODIES`] blocks, or a blobs request for more
    /// than [`MAX_BLOB_HASHES`](crate::MAX_BLOB_HASHES) blobs.
    #[error("requested count too large: {0}")]
    TooLargeRequest(u64),
}

impl RpcError {
    /// The JSON-RPC error code this error is answered with.
    pub(crate) fn code(&self) -> i32 {
        match self {
            Self::Backend(err) => engine_error_code(err),
            Self::UnsupportedFork => UNSUPPORTED_FORK_CODE,
            Self::InvalidParams(_) => INVALID_PARAMS_CODE,
            Self::InvalidPayloadAttributes(_) => INVALID_PAYLOAD_ATTRIBUTES_CODE,
            Self::TooLargeRequest(_) => TOO_LARGE_REQUEST_CODE,
        }
    }
}

impl From<RpcError> for ErrorObjectOwned {
    fn from(err: RpcError) -> Self {
        match err {
            RpcError::Backend(err) => engine_error_object(&err),
            RpcError::UnsupportedFork => engine_error_object(&EngineError::UnsupportedFork),
            RpcError::InvalidParams(reason) => {
                Self::owned(INVALID_PARAMS_CODE, INVALID_PARAMS_MSG, Some(ErrorData { err: reason }))
            }
            RpcError::InvalidPayloadAttributes(reason) => Self::owned(
                INVALID_PAYLOAD_ATTRIBUTES_CODE,
                "Invalid payload attributes",
                Some(ErrorData { err: reason }),
            ),
            err @ RpcError::TooLargeRequest(_) => Self::owned(
                TOO_LARGE_REQUEST_CODE,
                "Too large request",
                Some(ErrorData { err: err.to_string() }),
            ),
        }
    }
}

/// The JSON-RPC error code for an [`EngineError`].
pub const fn engine_error_code(err: &EngineError) -> i32 {
    match err {
        EngineError::UnknownPayload => UNKNOWN_PAYLOAD_CODE,
        EngineError::InvalidForkchoiceState => INVALID_FORKCHOICE_STATE_CODE,
        EngineError::InvalidPayloadAttributes => INVALID_PAYLOAD_ATTRIBUTES_CODE,
        EngineError::TooLargeRequest => TOO_LARGE_REQUEST_CODE,
        EngineError::UnsupportedFork => UNSUPPORTED_FORK_CODE,
        EngineError::InvalidParams(_) => INVALID_PARAMS_CODE,
        EngineError::Internal(_) => INTERNAL_ERROR_CODE,
    }
}

/// The JSON-RPC error object for an [`EngineError`], as reth answers it.
pub fn engine_error_object(err: &EngineError) -> ErrorObjectOwned {
    let code = engine_error_code(err);
    match err {
        EngineError::InvalidParams(reason) => {
            ErrorObjectOwned::owned(code, INVALID_PARAMS_MSG, Some(ErrorData { err: reason.clone() }))
        }
        // Internal details go to `data`; the message stays generic.
        EngineError::Internal(reason) => {
            ErrorObjectOwned::owned(code, SERVER_ERROR_MSG, Some(ErrorData { err: reason.clone() }))
        }
        EngineError::UnknownPayload
        | EngineError::InvalidForkchoiceState
        | EngineError::InvalidPayloadAttributes
        | EngineError::TooLargeRequest
        | EngineError::UnsupportedFork => ErrorObjectOwned::owned(code, err.to_string(), None::<()>),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_codes_and_messages() {
        let cases = [
            (EngineError::UnknownPayload, -38001, "Unknown payload"),
            (EngineError::InvalidForkchoiceState, -38002, "Invalid forkchoice state"),
            (EngineError::InvalidPayloadAttributes, -38003, "Invalid payload attributes"),
            (EngineError::TooLargeRequest, -38004, "Too large request"),
            (EngineError::UnsupportedFork, -38005, "Unsupported fork"),
            (EngineError::InvalidParams("x".into()), -32602, "Invalid params"),
            (EngineError::Internal("db".into()), -32603, "Server error"),
        ];
        for (err, code, message) in cases {
            let obj = engine_error_object(&err);
            assert_eq!((obj.code(), obj.message()), (code, message), "{err:?}");
            assert_eq!(RpcError::Backend(err).code(), code);
        }
        let obj = ErrorObjectOwned::from(RpcError::InvalidParams("no withdrawals".into()));
        assert_eq!(obj.data().map(|d| d.get()), Some(r#"{"err":"no withdrawals"}"#));
    }
}

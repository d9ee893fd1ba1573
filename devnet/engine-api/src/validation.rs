//! Method-version rules, as reth applies them (`reth_payload_primitives::validate_version_specific_fields`
//! and `validate_payload_timestamp`).
//!
//! * V2 (Shanghai) must not be used for a timestamp at or after Cancun; V3 needs Cancun; V4 needs Prague.
//!   A mismatch is `-38005 Unsupported fork`.
//! * Fields must match the method version: withdrawals after Shanghai, `parentBeaconBlockRoot` from V3 on,
//!   no Amsterdam `slotNumber`. A mismatch is `-32602 Invalid params` for payloads and `-38003 Invalid
//!   payload attributes` for forkchoice attributes. Field checks run before the timestamp check, as in
//!   reth, so the error a client sees for a doubly wrong call is reth's.
//!
//! Like reth, `engine_forkchoiceUpdatedV3` serves both Cancun and Prague attributes, and V3 methods are
//! not refused for Prague timestamps here: a V3 payload on a Prague timestamp lacks its requests and is
//! answered INVALID by the engine, as reth does.

use alloy_primitives::Bytes;
use alys_chainspec::{ChainSpec, Fork};

use crate::error::RpcError;

/// An Engine API method version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EngineApiVersion {
    /// Shanghai: `newPayloadV2`, `forkchoiceUpdatedV2`, `getPayloadV2`.
    V2,
    /// Cancun: `newPayloadV3`, `forkchoiceUpdatedV3`, `getPayloadV3`.
    V3,
    /// Prague: `newPayloadV4`, `getPayloadV4`.
    V4,
}

/// What is being validated; decides the error code of a field mismatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MessageKind {
    /// An execution payload (`newPayload`): `-32602`.
    Payload,
    /// Payload attributes (`forkchoiceUpdated`): `-38003`.
    PayloadAttributes,
}

/// The fork-dependent fields of a payload or of payload attributes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct VersionedFields {
    pub(crate) timestamp: u64,
    pub(crate) has_withdrawals: bool,
    pub(crate) has_parent_beacon_block_root: bool,
    pub(crate) has_slot_number: bool,
}

/// Checks that the method `version` may be used for a block with this timestamp.
pub(crate) fn validate_payload_timestamp(
    spec: &ChainSpec,
    version: EngineApiVersion,
    timestamp: u64,
) -> Result<(), RpcError> {
    let is_cancun = spec.is_active_at(Fork::Cancun, timestamp);
    let is_prague = spec.is_active_at(Fork::Prague, timestamp);
    let supported = match version {
        EngineApiVersion::V2 => !is_cancun,
        EngineApiVersion::V3 => is_cancun,
        EngineApiVersion::V4 => is_prague,
    };
    if supported { Ok(()) } else { Err(RpcError::UnsupportedFork) }
}

fn field_error(kind: MessageKind, reason: &str) -> RpcError {
    match kind {
        MessageKind::Payload => RpcError::InvalidParams(format!("Payload validation error: {reason}")),
        MessageKind::PayloadAttributes => {
            RpcError::InvalidPayloadAttributes(format!("Payload attributes validation error: {reason}"))
        }
    }
}

/// Checks the presence of fork-dependent fields against the method version, then the timestamp.
pub(crate) fn validate_version_specific_fields(
    spec: &ChainSpec,
    version: EngineApiVersion,
    kind: MessageKind,
    fields: VersionedFields,
) -> Result<(), RpcError> {
    // Amsterdam is not scheduled on any Alys chain, so a slot number is never expected.
    if fields.has_slot_number {
        return Err(field_error(kind, "slot number not supported"));
    }
    let is_shanghai = spec.is_active_at(Fork::Shanghai, fields.timestamp);
    if is_shanghai && !fields.has_withdrawals {
        return Err(field_error(kind, "no withdrawals post-Shanghai"));
    }
    if !is_shanghai && fields.has_withdrawals {
        return Err(field_error(kind, "withdrawals pre-Shanghai"));
    }
    match version {
        EngineApiVersion::V2 if fields.has_parent_beacon_block_root => {
            return Err(field_error(kind, "parent beacon block root not supported before V3"));
        }
        EngineApiVersion::V3 | EngineApiVersion::V4 if !fields.has_parent_beacon_block_root => {
            return Err(field_error(kind, "no parent beacon block root post-cancun"));
        }
        _ => {}
    }
    validate_payload_timestamp(spec, version, fields.timestamp)
}

/// EIP-7685 request list rules of `engine_newPayloadV4`: each element is a type byte and non-empty data,
/// ordered by strictly increasing type.
pub(crate) fn validate_execution_requests(requests: &[Bytes]) -> Result<(), RpcError> {
    let mut last_type = None;
    for request in requests {
        let Some((&request_type, data)) = request.split_first() else {
            return Err(RpcError::InvalidParams("EmptyExecutionRequest".into()));
        };
        if data.is_empty() {
            return Err(RpcError::InvalidParams("EmptyExecutionRequest".into()));
        }
        if Some(request_type) < last_type {
            return Err(RpcError::InvalidParams("OutOfOrderExecutionRequest".into()));
        }
        if Some(request_type) == last_type {
            return Err(RpcError::InvalidParams("DuplicatedExecutionRequestType".into()));
        }
        last_type = Some(request_type);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mixed() -> ChainSpec {
        let mut genesis: serde_json::Value =
            serde_json::from_str(alys_chainspec::DEVNET_GENESIS_JSON).unwrap();
        genesis["config"]["cancunTime"] = 100.into();
        genesis["config"]["pragueTime"] = 200.into();
        ChainSpec::from_genesis(serde_json::from_value(genesis).unwrap()).unwrap()
    }

    fn fields(timestamp: u64, pbbr: bool) -> VersionedFields {
        VersionedFields {
            timestamp,
            has_withdrawals: true,
            has_parent_beacon_block_root: pbbr,
            has_slot_number: false,
        }
    }

    #[test]
    fn versions_follow_the_fork_schedule() {
        let spec = mixed();
        let ok = |v, ts| validate_payload_timestamp(&spec, v, ts).is_ok();
        assert!(ok(EngineApiVersion::V2, 99));
        assert!(!ok(EngineApiVersion::V2, 100));
        assert!(!ok(EngineApiVersion::V3, 99));
        assert!(ok(EngineApiVersion::V3, 100));
        assert!(ok(EngineApiVersion::V3, 200));
        assert!(!ok(EngineApiVersion::V4, 199));
        assert!(ok(EngineApiVersion::V4, 200));
    }

    #[test]
    fn field_errors_depend_on_kind_and_precede_fork_errors() {
        let spec = mixed();
        let check = |v, k, f| validate_version_specific_fields(&spec, v, k, f).map_err(|e| e.code());
        assert_eq!(check(EngineApiVersion::V3, MessageKind::Payload, fields(150, false)), Err(-32602));
        assert_eq!(
            check(EngineApiVersion::V3, MessageKind::PayloadAttributes, fields(150, false)),
            Err(-38003)
        );
        assert_eq!(
            check(EngineApiVersion::V2, MessageKind::PayloadAttributes, fields(50, true)),
            Err(-38003)
        );
        assert_eq!(check(EngineApiVersion::V2, MessageKind::Payload, fields(150, false)), Err(-38005));
        assert_eq!(check(EngineApiVersion::V3, MessageKind::Payload, fields(50, true)), Err(-38005));
        let no_withdrawals = VersionedFields { has_withdrawals: false, ..fields(50, false) };
        assert_eq!(check(EngineApiVersion::V2, MessageKind::Payload, no_withdrawals), Err(-32602));
        let slot = VersionedFields { has_slot_number: true, ..fields(250, true) };
        assert_eq!(check(EngineApiVersion::V3, MessageKind::PayloadAttributes, slot), Err(-38003));
        assert_eq!(check(EngineApiVersion::V4, MessageKind::Payload, fields(250, true)), Ok(()));
    }

    #[test]
    fn execution_request_rules() {
        let r = |b: &[u8]| Bytes::copy_from_slice(b);
        assert!(validate_execution_requests(&[]).is_ok());
        assert!(validate_execution_requests(&[r(&[0, 1]), r(&[1, 1]), r(&[2, 1])]).is_ok());
        assert!(validate_execution_requests(&[r(&[])]).is_err());
        assert!(validate_execution_requests(&[r(&[0])]).is_err());
        assert!(validate_execution_requests(&[r(&[1, 1]), r(&[0, 1])]).is_err());
        assert!(validate_execution_requests(&[r(&[1, 1]), r(&[1, 2])]).is_err());
    }
}

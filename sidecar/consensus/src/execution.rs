//! The execution block a consensus block carries: its encoding, its Engine API payload, and the
//! withdrawals that mint the block's peg-ins.

use alloy_consensus::{Block, TxEnvelope};
use alloy_eips::{
    eip4895::Withdrawal,
    eip7685::{Requests, RequestsOrHash},
};
use alloy_primitives::{Address, B256, Bytes};
use alloy_rlp::Decodable;
use alloy_rpc_types_engine::{
    CancunPayloadFields, ExecutionPayload, ExecutionPayloadSidecar, PayloadError, PraguePayloadFields,
};
use alys_contracts::GWEI_PER_SAT;

use alys_primitives::{PegInClaim, SignedBlock};

/// Why the execution part of a consensus block was refused.
#[derive(Debug, thiserror::Error)]
pub enum ExecutionBlockError {
    /// The bytes are not an RLP execution block.
    #[error("execution block does not decode: {0}")]
    Decode(alloy_rlp::Error),
    /// The execution block's hash differs from the one the header commits to.
    #[error("execution block hash {actual} differs from the header's {expected}")]
    HashMismatch {
        /// What the header says.
        expected: B256,
        /// What the block hashes to.
        actual: B256,
    },
    /// The block's number differs from the consensus height.
    #[error("execution block number {number} differs from height {height}")]
    NumberMismatch {
        /// The execution block's number.
        number: u64,
        /// The consensus height.
        height: u64,
    },
    /// Invariant 2: the withdrawals must be exactly the peg-ins the block claims.
    #[error("withdrawals do not match the claimed peg-ins")]
    WithdrawalsMismatch,
    /// The payload could not be turned into a block.
    #[error("payload: {0}")]
    Payload(#[from] PayloadError),
}

/// The withdrawals that mint `pegins`: in order, one per claim, to its EVM address, `sats * 10` gwei.
pub fn pegin_withdrawals(pegins: &[PegInClaim]) -> Vec<Withdrawal> {
    pegins
        .iter()
        .enumerate()
        .map(|(index, pegin)| Withdrawal {
            index: index as u64,
            validator_index: 0,
            address: pegin.evm_address,
            amount: pegin.amount_sats.saturating_mul(GWEI_PER_SAT),
        })
        .collect()
}

/// The withdrawals that refund burns the bridge cannot pay, `(burner, gwei)` in order, indexed from
/// `first_index` (after the block's peg-in claims).
pub fn refund_withdrawals(refunds: &[(Address, u64)], first_index: u64) -> Vec<Withdrawal> {
    refunds
        .iter()
        .zip(first_index..)
        .map(|((address, amount), index)| Withdrawal {
            index,
            validator_index: 0,
            address: *address,
            amount: *amount,
        })
        .collect()
}

/// Checks that the execution block's withdrawals are exactly `expected` (invariant 2).
pub fn check_withdrawals(
    execution: &Block<TxEnvelope>,
    expected: &[Withdrawal],
) -> Result<(), ExecutionBlockError> {
    if execution.body.withdrawals.as_ref().map(|w| w.as_slice()) != Some(expected) {
        return Err(ExecutionBlockError::WithdrawalsMismatch);
    }
    Ok(())
}

/// Decodes the execution block of `block` and checks its hash and number against the header.
pub fn decode_execution_block(block: &SignedBlock) -> Result<Block<TxEnvelope>, ExecutionBlockError> {
    let mut bytes = block.execution_block.as_ref();
    let execution = Block::<TxEnvelope>::decode(&mut bytes).map_err(ExecutionBlockError::Decode)?;
    if !bytes.is_empty() {
        return Err(ExecutionBlockError::Decode(alloy_rlp::Error::UnexpectedLength));
    }
    let actual = execution.header.hash_slow();
    if actual != block.header.execution_block_hash {
        return Err(ExecutionBlockError::HashMismatch {
            expected: block.header.execution_block_hash,
            actual,
        });
    }
    if execution.header.number != block.header.height {
        return Err(ExecutionBlockError::NumberMismatch {
            number: execution.header.number,
            height: block.header.height,
        });
    }
    Ok(execution)
}

/// The RLP encoding of an execution block, as a consensus block carries it.
pub fn encode_execution_block(block: &Block<TxEnvelope>) -> Bytes {
    alloy_rlp::encode(block).into()
}

/// Turns a built payload back into a block (to carry it), checking it with its Cancun/Prague fields.
pub fn payload_to_block(
    payload: ExecutionPayload,
    parent_beacon_block_root: Option<B256>,
    requests: Option<&Requests>,
) -> Result<Block<TxEnvelope>, ExecutionBlockError> {
    let sidecar = match (parent_beacon_block_root, requests) {
        (Some(root), Some(requests)) => ExecutionPayloadSidecar::v4(
            CancunPayloadFields { parent_beacon_block_root: root, versioned_hashes: Vec::new() },
            PraguePayloadFields { requests: RequestsOrHash::Requests(requests.clone()) },
        ),
        (Some(root), None) => ExecutionPayloadSidecar::v3(CancunPayloadFields {
            parent_beacon_block_root: root,
            versioned_hashes: Vec::new(),
        }),
        _ => ExecutionPayloadSidecar::none(),
    };
    Ok(payload.try_into_block_with_sidecar(&sidecar)?)
}

/// The Engine API payload of a carried execution block, to hand it to `newPayload`.
pub fn block_to_payload(hash: B256, block: &Block<TxEnvelope>) -> ExecutionPayload {
    ExecutionPayload::from_block_unchecked(hash, block).0
}

/// The blob versioned hashes of a block's type-3 transactions, in block order: what `newPayloadV3/V4`
/// must be given beside the payload.
pub fn versioned_hashes(block: &Block<TxEnvelope>) -> Vec<B256> {
    use alloy_consensus::Transaction as _;
    block
        .body
        .transactions
        .iter()
        .filter_map(|tx| tx.blob_versioned_hashes())
        .flat_map(|hashes| hashes.iter().copied())
        .collect()
}

/// The execution requests a block carries, in `newPayloadV4`'s shape.
pub fn requests_of(block: &SignedBlock) -> Requests {
    Requests::new(block.execution_requests.clone())
}

#[cfg(test)]
mod tests {
    use alloy_consensus::{BlockBody, Header, Signed, TxEip1559, TxEip4844, TxEip4844Variant};
    use alloy_primitives::Signature;

    use super::*;

    fn blob_tx(hashes: Vec<B256>) -> TxEnvelope {
        let tx = TxEip4844 { blob_versioned_hashes: hashes, ..Default::default() };
        let tx = TxEip4844Variant::TxEip4844(tx);
        TxEnvelope::Eip4844(Signed::new_unhashed(tx, Signature::test_signature()))
    }

    #[test]
    fn versioned_hashes_are_the_payloads_own_in_order() {
        let (a, b, c) = (B256::repeat_byte(1), B256::repeat_byte(2), B256::repeat_byte(3));
        let plain =
            TxEnvelope::Eip1559(Signed::new_unhashed(TxEip1559::default(), Signature::test_signature()));
        let block = Block {
            header: Header::default(),
            body: BlockBody {
                transactions: vec![blob_tx(vec![a, b]), plain, blob_tx(vec![c])],
                ommers: Vec::new(),
                withdrawals: None,
            },
        };
        assert_eq!(versioned_hashes(&block), vec![a, b, c]);
        assert!(versioned_hashes(&Block::<TxEnvelope>::default()).is_empty());
    }
}

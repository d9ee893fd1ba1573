//! Claims: which deposits the slot author mints, and how every importer checks a block's claims against
//! its own Bitcoin node (DESIGN invariants 1 and 2).
//!
//! # Which federation addresses count at a height
//!
//! A claim in the block at Alys height `H` may mint outputs paying the federation that holds deposits at
//! `H`, or the one before it while `H` is within `pegin_grace_blocks` of the rotation. Both come from
//! governance's signed federation updates, which every node holds, and the height is the block's own,
//! so producer and importers decide alike whatever their clocks or Bitcoin tips.
//!
//! # What the author claims
//!
//! The recorded deposits still open on its chain (`pegin_open`), oldest Bitcoin block first, that have
//! `pegin_confirmations` on the node's followed Bitcoin chain, pay a federation address valid at `H`,
//! reach `pegin_min_sats` and whose outpoints were never minted on the parent's chain; at most
//! [`MAX_CLAIMS_PER_BLOCK`]. Nothing while governance pauses peg-ins.
//!
//! # What an importer checks, per claim
//!
//! Against its own bitcoind (one `getblockheader` and one `getblock` per Bitcoin block claimed from):
//! the claimed Bitcoin block is in the best chain with enough confirmations, and the transaction is in
//! it; the transaction, read by the same rules, is a deposit with exactly the
//! claimed outputs, sum and EVM address. Against its own database: no claimed outpoint was minted on
//! the parent's chain, nor twice in the block. The withdrawals themselves are compared with the claims
//! by the chain (invariant 2).

use std::collections::HashSet;

use alloy_primitives::B256;
use alys_bitcoin::{BitcoinClient, BitcoinError};
use alys_governance::RuntimeView;
use alys_primitives::{BlockRef, ConsensusHeader, PegInClaim, PegInOutput};
use alys_storage::{DepositRecord, PeginRead, Storage, StorageError};
use bitcoin::{BlockHash, ScriptBuf, Txid, hashes::Hash as _};

use super::deposit::{Rejection, scan_transaction};

/// The most deposits one block claims (the rest wait for the next block).
pub const MAX_CLAIMS_PER_BLOCK: usize = 1_000;

/// A txid in Bitcoin's display order, for messages.
pub fn display_txid(txid: &B256) -> Txid {
    Txid::from_byte_array(txid.0)
}

/// A block hash in Bitcoin's display order, for messages.
pub fn display_block(hash: &B256) -> BlockHash {
    BlockHash::from_byte_array(hash.0)
}

/// Why a block's claims were refused.
#[derive(Debug, thiserror::Error)]
pub enum PeginError {
    /// Governance paused peg-ins at this height.
    #[error("peg-ins are paused at height {0}")]
    Paused(u64),
    /// The node has no Bitcoin node to check claims with.
    #[error("the block claims peg-ins but this node has no Bitcoin node configured ([bitcoin])")]
    NoBitcoinNode,
    /// An outpoint is claimed twice in the block.
    #[error("outpoint {}:{vout} claimed twice in the block", display_txid(txid))]
    Duplicate {
        /// The deposit.
        txid: B256,
        /// The output.
        vout: u32,
    },
    /// An outpoint was minted already on this chain.
    #[error("outpoint {}:{vout} was minted already in block {}", display_txid(txid), block.hash)]
    AlreadyMinted {
        /// The deposit.
        txid: B256,
        /// The output.
        vout: u32,
        /// Where it was minted.
        block: BlockRef,
    },
    /// The claim is not well formed (no outputs, outputs out of order, sum wrong).
    #[error("claim of {} is malformed: {what}", display_txid(txid))]
    Malformed {
        /// The deposit.
        txid: B256,
        /// What is wrong.
        what: &'static str,
    },
    /// The claimed Bitcoin block is unknown to this node's bitcoind, or not in its best chain.
    #[error("claimed Bitcoin block {} is not in the best chain", display_block(block))]
    NotInBestChain {
        /// The block.
        block: B256,
    },
    /// The claimed Bitcoin block has too few confirmations.
    #[error(
        "claimed Bitcoin block {} has {confirmations} confirmations, {required} required",
        display_block(block)
    )]
    TooShallow {
        /// The block.
        block: B256,
        /// What bitcoind says.
        confirmations: i64,
        /// What the height requires.
        required: u32,
    },
    /// The transaction is not in the claimed block.
    #[error("transaction {} is not in Bitcoin block {}", display_txid(txid), display_block(block))]
    NotInBlock {
        /// The deposit.
        txid: B256,
        /// The claimed block.
        block: B256,
    },
    /// The transaction is not the deposit claimed.
    #[error("claim of {} differs from the transaction: {what}", display_txid(txid))]
    Mismatch {
        /// The deposit.
        txid: B256,
        /// What differs.
        what: &'static str,
    },
    /// The transaction is not a valid deposit at this height.
    #[error("{} is not a valid deposit: {reason}", display_txid(txid))]
    Rejected {
        /// The deposit.
        txid: B256,
        /// Why.
        reason: Rejection,
    },
    /// bitcoind could not answer.
    #[error(transparent)]
    Bitcoin(#[from] BitcoinError),
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl PeginError {
    /// A short label for the refusal metric.
    pub const fn reason(&self) -> &'static str {
        match self {
            Self::Paused(_) => "paused",
            Self::NoBitcoinNode => "no_bitcoin_node",
            Self::Duplicate { .. } => "duplicate",
            Self::AlreadyMinted { .. } => "already_minted",
            Self::Malformed { .. } => "malformed",
            Self::NotInBestChain { .. } => "not_in_best_chain",
            Self::TooShallow { .. } => "too_shallow",
            Self::NotInBlock { .. } => "not_in_block",
            Self::Mismatch { .. } => "mismatch",
            Self::Rejected { .. } => "rejected",
            Self::Bitcoin(_) => "bitcoin_unavailable",
            Self::Storage(_) => "storage",
        }
    }
}

/// The federation scripts deposits may pay at Alys height `height` (see the module docs).
pub fn deposit_scripts_at(runtime: &RuntimeView, height: u64) -> HashSet<ScriptBuf> {
    let (current, previous) = runtime.federations_at(height);
    let grace = runtime.state_at(height).parameters.pegin_grace_blocks;
    let mut scripts = HashSet::new();
    if let Some(current) = current {
        if let Some(previous) = previous
            && height < current.effective_height.saturating_add(grace)
        {
            scripts.insert(previous.address.script_pubkey());
        }
        scripts.insert(current.address.script_pubkey());
    }
    scripts
}

/// Scripts of federations announced to take effect after `height`: deposits to them wait for it.
pub fn future_scripts_at(runtime: &RuntimeView, height: u64) -> HashSet<ScriptBuf> {
    runtime
        .federations()
        .iter()
        .filter(|f| f.effective_height > height)
        .map(|f| f.address.script_pubkey())
        .collect()
}

/// Every federation script ever announced: what the follower records deposits to (validity at a
/// height is decided when claiming).
pub fn known_scripts(runtime: &RuntimeView) -> HashSet<ScriptBuf> {
    runtime.federations().iter().map(|f| f.address.script_pubkey()).collect()
}

/// The outputs of `record` that may be minted at a height whose valid scripts are `valid`.
fn valid_outputs(record: &DepositRecord, valid: &HashSet<ScriptBuf>) -> Vec<PegInOutput> {
    record
        .outputs
        .iter()
        .filter(|o| valid.contains(ScriptBuf::from_bytes(o.script_pubkey.to_vec()).as_script()))
        .map(|o| PegInOutput {
            vout: o.vout,
            amount_sats: o.amount_sats,
            script_pubkey: o.script_pubkey.clone(),
        })
        .collect()
}

/// Why a recorded, deep enough deposit cannot be minted at a height whose valid scripts are `valid`,
/// if it cannot. A deposit paying only a federation announced for a later height (`future`) is not
/// rejected: it waits for that federation.
pub fn rejection_at(
    record: &DepositRecord,
    valid: &HashSet<ScriptBuf>,
    future: &HashSet<ScriptBuf>,
    min_sats: u64,
) -> Option<Rejection> {
    let outputs = valid_outputs(record, valid);
    if outputs.is_empty() {
        let waits = record
            .outputs
            .iter()
            .any(|o| future.contains(ScriptBuf::from_bytes(o.script_pubkey.to_vec()).as_script()));
        return (!waits).then_some(Rejection::FederationExpired);
    }
    let amount = outputs.iter().fold(0u64, |sum, o| sum.saturating_add(o.amount_sats));
    (amount < min_sats).then_some(Rejection::BelowMinimum)
}

/// The peg-in rules the chain applies when it produces and imports blocks.
#[derive(Debug, Clone)]
pub struct PeginRules {
    runtime: RuntimeView,
    bitcoin: Option<BitcoinClient>,
    max_claims: usize,
}

impl PeginRules {
    /// Rules reading governance's decisions from `runtime` and checking claims with `bitcoin` (without
    /// one, the node claims nothing and refuses blocks that claim).
    pub const fn new(runtime: RuntimeView, bitcoin: Option<BitcoinClient>) -> Self {
        Self { runtime, bitcoin, max_claims: MAX_CLAIMS_PER_BLOCK }
    }

    /// Sets the most claims per block.
    pub const fn with_max_claims(mut self, max_claims: usize) -> Self {
        self.max_claims = max_claims;
        self
    }

    /// The deposits the block at `height` on `parent` claims (see the module docs).
    pub fn select(
        &self,
        read: &impl PeginRead,
        height: u64,
        parent: BlockRef,
    ) -> Result<Vec<PegInClaim>, StorageError> {
        let state = self.runtime.state_at(height);
        if state.pegins_paused || self.bitcoin.is_none() {
            return Ok(Vec::new());
        }
        let Some((tip, _)) = read.bitcoin_tip()? else { return Ok(Vec::new()) };
        let required = u64::from(state.parameters.pegin_confirmations.max(1));
        let valid = deposit_scripts_at(&self.runtime, height);
        if valid.is_empty() {
            return Ok(Vec::new());
        }
        let future = future_scripts_at(&self.runtime, height);
        let mut claims = Vec::new();
        // Open deposits come oldest first: the first one too shallow ends the scan. Some open ones may
        // be minted on a branch of the parent's chain not yet canonical, so read a margin beyond.
        for record in read.open_deposits(self.max_claims.saturating_mul(2))? {
            if claims.len() >= self.max_claims {
                break;
            }
            if tip.saturating_add(1).saturating_sub(record.bitcoin_height) < required {
                break;
            }
            if rejection_at(&record, &valid, &future, state.parameters.pegin_min_sats).is_some() {
                continue;
            }
            // Its Bitcoin block must still be the one this node followed at that height.
            if read.bitcoin_block_at(record.bitcoin_height)? != Some(record.bitcoin_block) {
                continue;
            }
            let outputs = valid_outputs(&record, &valid);
            if outputs.is_empty() {
                continue;
            }
            let mut minted = false;
            for output in &outputs {
                if read.minted_on(&record.txid, output.vout, parent)?.is_some() {
                    minted = true;
                    break;
                }
            }
            if minted {
                continue;
            }
            let amount_sats = outputs.iter().fold(0u64, |sum, o| sum.saturating_add(o.amount_sats));
            claims.push(PegInClaim {
                txid: record.txid,
                bitcoin_block: record.bitcoin_block,
                outputs,
                amount_sats,
                evm_address: record.evm_address,
            });
        }
        Ok(claims)
    }

    /// Checks the claims of `header` (whose parent is `parent`) against this node's bitcoind and
    /// database (see the module docs).
    pub async fn verify(
        &self,
        storage: &Storage,
        header: &ConsensusHeader,
        parent: BlockRef,
    ) -> Result<(), PeginError> {
        if header.pegins.is_empty() {
            return Ok(());
        }
        let height = header.height;
        let state = self.runtime.state_at(height);
        if state.pegins_paused {
            return Err(PeginError::Paused(height));
        }
        let bitcoin = self.bitcoin.as_ref().ok_or(PeginError::NoBitcoinNode)?;
        let valid = deposit_scripts_at(&self.runtime, height);
        let required = state.parameters.pegin_confirmations.max(1);
        let mut seen = HashSet::new();
        {
            let read = storage.read()?;
            for claim in &header.pegins {
                if claim.outputs.is_empty() {
                    return Err(PeginError::Malformed { txid: claim.txid, what: "no outputs" });
                }
                if claim.outputs.windows(2).any(|w| matches!(w, [a, b] if a.vout >= b.vout)) {
                    return Err(PeginError::Malformed { txid: claim.txid, what: "outputs not ascending" });
                }
                let sum = claim.outputs.iter().try_fold(0u64, |sum, o| sum.checked_add(o.amount_sats));
                if sum != Some(claim.amount_sats) {
                    return Err(PeginError::Malformed {
                        txid: claim.txid,
                        what: "amount is not the sum of outputs",
                    });
                }
                for output in &claim.outputs {
                    if !seen.insert((claim.txid, output.vout)) {
                        return Err(PeginError::Duplicate { txid: claim.txid, vout: output.vout });
                    }
                    if let Some(minted) = read.minted_on(&claim.txid, output.vout, parent)? {
                        return Err(PeginError::AlreadyMinted {
                            txid: claim.txid,
                            vout: output.vout,
                            block: minted.block,
                        });
                    }
                }
            }
        }
        // One `getblockheader` and one `getblock` per Bitcoin block claimed from, however many claims.
        let mut by_block: std::collections::BTreeMap<B256, Vec<&PegInClaim>> =
            std::collections::BTreeMap::new();
        for claim in &header.pegins {
            by_block.entry(claim.bitcoin_block).or_default().push(claim);
        }
        for (block_hash, claims) in by_block {
            let block = display_block(&block_hash);
            let confirmations = match bitcoin.header_info(block).await? {
                Some(info) if info.confirmations >= 1 => info.confirmations,
                _ => return Err(PeginError::NotInBestChain { block: block_hash }),
            };
            if confirmations < i64::from(required) {
                return Err(PeginError::TooShallow { block: block_hash, confirmations, required });
            }
            let txs = bitcoin.block(block).await?.txdata;
            let by_txid: std::collections::HashMap<[u8; 32], &bitcoin::Transaction> =
                txs.iter().map(|tx| (tx.compute_txid().to_byte_array(), tx)).collect();
            for claim in claims {
                let tx = by_txid
                    .get(&claim.txid.0)
                    .ok_or(PeginError::NotInBlock { txid: claim.txid, block: block_hash })?;
                let deposit = scan_transaction(tx, &valid).ok_or(PeginError::Rejected {
                    txid: claim.txid,
                    reason: Rejection::NoFederationOutput,
                })?;
                let address = deposit
                    .evm_address
                    .map_err(|reason| PeginError::Rejected { txid: claim.txid, reason })?;
                if deposit.outputs.is_empty() {
                    return Err(PeginError::Rejected {
                        txid: claim.txid,
                        reason: Rejection::FederationExpired,
                    });
                }
                if address != claim.evm_address {
                    return Err(PeginError::Mismatch { txid: claim.txid, what: "EVM address" });
                }
                let outputs: Vec<PegInOutput> = deposit
                    .outputs
                    .iter()
                    .map(|o| PegInOutput {
                        vout: o.vout,
                        amount_sats: o.amount_sats,
                        script_pubkey: o.script_pubkey.clone(),
                    })
                    .collect();
                if outputs != claim.outputs {
                    return Err(PeginError::Mismatch { txid: claim.txid, what: "federation outputs" });
                }
                if claim.amount_sats < state.parameters.pegin_min_sats {
                    return Err(PeginError::Rejected { txid: claim.txid, reason: Rejection::BelowMinimum });
                }
            }
        }
        Ok(())
    }
}

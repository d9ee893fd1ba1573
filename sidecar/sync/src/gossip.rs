//! Gossip through the chain's checks: one message at a time, in arrival order, each answered with a
//! verdict; and what the chain emits, published.

use std::{sync::Arc, time::Duration};

use alloy_primitives::Bytes;
use alys_actor::Handle;
use alys_chain::{ChainEvent, ChainMessage, ImportError};
use alys_network::{NetworkHandle, Topic, Verdict};
use alys_primitives::{Approval, EquivocationEvidence, SignedBlock};
use alys_storage::{ChainRead, Storage};
use libp2p::{PeerId, gossipsub::MessageId};
use tokio::sync::mpsc;

pub(crate) struct Gossip {
    pub(crate) network: NetworkHandle,
    pub(crate) chain: Handle<ChainMessage>,
    pub(crate) storage: Arc<Storage>,
    pub(crate) slot_duration: Duration,
    pub(crate) wake_sync: mpsc::Sender<()>,
    pub(crate) messages: mpsc::Receiver<(Topic, MessageId, PeerId, Bytes)>,
    pub(crate) chain_events: mpsc::Receiver<ChainEvent>,
}

pub(crate) async fn run(mut gossip: Gossip) {
    loop {
        tokio::select! {
            biased;
            event = gossip.chain_events.recv() => match event {
                Some(event) => gossip.publish(event),
                None => return,
            },
            message = gossip.messages.recv() => match message {
                Some((topic, id, from, data)) => {
                    let started = std::time::Instant::now();
                    let verdict = gossip.judge(topic, &data, from).await;
                    metrics::histogram!("alys_sync_gossip_handle_seconds", "topic" => topic.name())
                        .record(started.elapsed().as_secs_f64());
                    metrics::counter!("alys_sync_gossip_verdicts_total", "topic" => topic.name(),
                        "verdict" => verdict.name()).increment(1);
                    gossip.network.report(id, from, verdict);
                }
                None => return,
            },
        }
    }
}

/// The verdict for a block the chain refused: the block's own fault is the sender's, a gap of ours is
/// not.
fn verdict_of(error: &ImportError) -> Verdict {
    if error.is_invalid_block() { Verdict::Reject } else { Verdict::Ignore }
}

impl Gossip {
    fn publish(&self, event: ChainEvent) {
        let (topic, data) = match event {
            ChainEvent::Proposed(block) => (Topic::Proposals, block.encoded()),
            ChainEvent::Block(block) => (Topic::Blocks, block.encoded()),
            ChainEvent::Equivocation(evidence) => (Topic::Evidence, evidence.encoded()),
            ChainEvent::Proof(proof) => (Topic::AuxPow, proof.to_vec()),
        };
        if let Err(error) = self.network.publish(topic, data) {
            tracing::warn!(target: "alys::sync", %topic, %error, "cannot publish");
        }
    }

    fn arrival(&self, topic: Topic, slot: u64) {
        let slot_ms = u64::try_from(self.slot_duration.as_millis()).unwrap_or(u64::MAX).max(1);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0));
        let since = now.saturating_sub(slot.saturating_mul(slot_ms));
        metrics::histogram!("alys_sync_gossip_arrival_seconds", "topic" => topic.name())
            .record(since as f64 / 1_000.0);
    }

    fn wake_sync(&self) {
        let _ = self.wake_sync.try_send(());
    }

    async fn judge(&self, topic: Topic, data: &[u8], from: PeerId) -> Verdict {
        match topic {
            Topic::Blocks => {
                let Ok(block) = SignedBlock::decode(data) else { return Verdict::Reject };
                self.arrival(topic, block.header.slot);
                let hash = block.header.hash();
                if self.storage.read().and_then(|r| r.has_block(&hash)).unwrap_or(false) {
                    return Verdict::Ignore;
                }
                match self.chain.ask(|reply| ChainMessage::Import(Box::new(block), reply)).await {
                    Ok(Ok(_)) => Verdict::Accept,
                    Ok(Err(error)) => {
                        tracing::debug!(target: "alys::sync", %from, %hash, %error, "gossiped block not imported");
                        if matches!(error, ImportError::UnknownParent(_)) {
                            self.wake_sync();
                        }
                        verdict_of(&error)
                    }
                    Err(_) => Verdict::Ignore,
                }
            }
            Topic::Proposals => {
                let Ok(block) = SignedBlock::decode(data) else { return Verdict::Reject };
                self.arrival(topic, block.header.slot);
                match self.chain.ask(|reply| ChainMessage::Proposal(Box::new(block), reply)).await {
                    Ok(Ok(approval)) => {
                        if let Some(approval) = approval
                            && let Err(error) = self.network.publish(Topic::Approvals, approval.encoded())
                        {
                            tracing::warn!(target: "alys::sync", %error, "cannot publish an approval");
                        }
                        Verdict::Accept
                    }
                    Ok(Err(error)) => {
                        tracing::debug!(target: "alys::sync", %from, %error, "proposal not approved");
                        if matches!(error, ImportError::UnknownParent(_) | ImportError::NotOnHead { .. }) {
                            self.wake_sync();
                        }
                        verdict_of(&error)
                    }
                    Err(_) => Verdict::Ignore,
                }
            }
            Topic::Approvals => {
                let Ok(approval) = Approval::decode(data) else { return Verdict::Reject };
                match self.chain.ask(|reply| ChainMessage::Approval(approval, reply)).await {
                    Ok(Ok(_)) => Verdict::Accept,
                    Ok(Err(ImportError::Aura(_))) => Verdict::Reject,
                    _ => Verdict::Ignore,
                }
            }
            Topic::AuxPow => {
                let proof = Bytes::copy_from_slice(data);
                match self.chain.ask(|reply| ChainMessage::GossipProof(proof, reply)).await {
                    Ok(Ok(true)) => Verdict::Accept,
                    Ok(Err(ImportError::AuxPow(
                        alys_chain::mining::ProofError::Encoding(_) | alys_chain::mining::ProofError::Rule(_),
                    ))) => Verdict::Reject,
                    _ => Verdict::Ignore,
                }
            }
            Topic::Evidence => {
                let Ok(evidence) = EquivocationEvidence::decode(data) else { return Verdict::Reject };
                match self.chain.ask(|reply| ChainMessage::Evidence(Box::new(evidence), reply)).await {
                    Ok(Ok(true)) => Verdict::Accept,
                    Ok(Err(ImportError::Aura(_))) => Verdict::Reject,
                    _ => Verdict::Ignore,
                }
            }
        }
    }
}

//! Governance's decisions and the chain's height: which heights a decision may still take effect at,
//! which decisions take effect at a height, and the read-only view the rest of the node has of them.
//!
//! # Only heights above the head
//!
//! A proposal or a federation update takes effect at its effective height: it governs the block at that
//! height and every block after it. A block that exists was built (or checked) and committed under the
//! decisions the node held then, and nothing changes it afterwards. So the node refuses a decision
//! whose effective height is at or below its head ([`ProposalError::PastHeight`],
//! [`FederationError::PastHeight`]): it is counted in [`crate::metrics::REJECTED`] with
//! `reason="past_height"`, logged at WARN with both heights, and not stored. Accepting it anyway would
//! either show it in force over blocks that were made without it (a pause "from height 2" while blocks
//! 2 to 41 exist) or let it take effect at a later height of this node's choosing, which no other node
//! would share.
//!
//! **What governance does about it:** re-issue the decision (a new proposal id; for a rotation, a new
//! update) at a height above the head of every node, with a margin for delivery: a few blocks
//! (`head + 3` in the README's drill). The refusal is not sent back over the stream
//! (`governance.v1` has no message for it); the operator sees it in the node's log and metric, and in
//! `alys_proposals` / `alys_governanceStatus`, which do not list it.
//!
//! Two exceptions, both because no existing block can be affected:
//!
//! * genesis (height 0) is no block a decision governs, so a decision at height 0 governs from block 1
//!   on and is refused only once block 1 exists ([`is_past`]);
//! * the first federation a node learns is accepted whatever its height: until then the node had no
//!   federation, so nothing it did depended on one (a node that ran without governance for a while).
//!
//! Decisions already held are not checked again: governance announces every federation and proposal
//! to each new session, and the node knows those it saved while they were ahead. Nor are the decisions
//! read back from the database at start: they were checked when they arrived.
//!
//! # The race with the head
//!
//! The head moves while a message is in flight. The check is made when the message is received,
//! against the head the chain actor published, and made again inside the transaction that saves the
//! decision, against the head committed in the database. The database runs one write transaction at a
//! time, so every block commit is either before the save (the decision is then refused) or after it:
//! no saved decision has a block at or above its height that existed when it was saved. The chain
//! reads the decisions for a block when it builds it (the height it is about to produce) and never
//! for a block it already has, so a decision only ever affects blocks at or above its height that are
//! made after it was saved. (A decision for the very next block can land while that block is being
//! built; the block then stands as built and the decision governs the ones after it. The margin above
//! avoids this.)
//!
//! Every node that accepts a decision applies it from the same block, because it is held for a height
//! and not from a moment. A node whose head has already reached that height refuses it; the margin is
//! what keeps every node below it.
//!
//! # Taking effect
//!
//! [`RuntimeView::taking_effect_at`] lists the decisions whose first block is at a height: the chain
//! actor calls [`RuntimeView::log_in_force`] after it commits a new head, which logs each at INFO
//! (`governance decision in force height=… kind=pause id=…`), once, since a height becomes the head
//! once.
//!
//! A production pause at height `p` stops the chain at `p - 1`: the next block is `p`, which the pause
//! governs. It is lifted by a resume effective at `p` itself (the height the chain waits at: its head
//! plus one) whose id sorts after the pause's; a resume at a later height would never be reached.
//! Block `p` is then committed, and both lines come with it, in the order the decisions apply. While
//! the pause holds, `alys_syncStatus` shows `governance.productionPaused` and
//! `alys_chain_slots_skipped_total{reason="governance_pause"}` counts the slots this node skips.

use std::sync::Arc;

use tokio::sync::watch;

use crate::{
    federation::{Federation, FederationError, FederationHistory},
    proposals::{
        PauseScope, Proposal, ProposalAction, ProposalBook, ProposalError, RuntimeParameters, RuntimeState,
    },
};

/// Whether a decision effective at `height` would govern a block that already exists when the head is
/// at `head`: a block at a height in `max(height, 1)..=head` (genesis is no block a decision governs).
pub const fn is_past(height: u64, head: u64) -> bool {
    let first_governed = if height == 0 { 1 } else { height };
    first_governed <= head
}

/// [`ProposalBook::check`], then the head rule: `Ok(true)` when `proposal` is new and takes effect
/// above `head`, `Ok(false)` when the book already holds it (at any height),
/// [`ProposalError::Conflicting`] or [`ProposalError::PastHeight`] otherwise.
pub fn check_proposal(book: &ProposalBook, proposal: &Proposal, head: u64) -> Result<bool, ProposalError> {
    if !book.check(proposal)? {
        return Ok(false);
    }
    if is_past(proposal.effective_height, head) {
        return Err(ProposalError::PastHeight { height: proposal.effective_height, head });
    }
    Ok(true)
}

/// [`FederationHistory::check`], then the head rule (except for the first federation): `Ok(true)` when
/// `federation` is new and starts above `head`, `Ok(false)` when it is known,
/// [`FederationError::Stale`] or [`FederationError::PastHeight`] otherwise.
pub fn check_federation(
    history: &FederationHistory,
    federation: &Federation,
    head: u64,
) -> Result<bool, FederationError> {
    if !history.check(federation)? {
        return Ok(false);
    }
    if !history.is_empty() && is_past(federation.effective_height, head) {
        return Err(FederationError::PastHeight { height: federation.effective_height, head });
    }
    Ok(true)
}

/// A decision governance took, as it takes effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// An accepted proposal.
    Proposal(Proposal),
    /// A federation, from its first block on.
    Federation(Federation),
}

impl Decision {
    /// The height of the first block it governs.
    pub const fn effective_height(&self) -> u64 {
        match self {
            Self::Proposal(proposal) => proposal.effective_height,
            Self::Federation(federation) => federation.effective_height,
        }
    }

    /// What kind of decision: `pause`, `resume`, `parameter`, `record` or `federation`.
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::Proposal(proposal) => match &proposal.action {
                ProposalAction::Emergency { pause: true, .. } => "pause",
                ProposalAction::Emergency { pause: false, .. } => "resume",
                ProposalAction::Parameter { .. } => "parameter",
                ProposalAction::Record { .. } => "record",
            },
            Self::Federation(_) => "federation",
        }
    }

    /// The proposal's id, or the federation's deposit address.
    pub fn id(&self) -> String {
        match self {
            Self::Proposal(proposal) => proposal.id.clone(),
            Self::Federation(federation) => federation.address.to_string(),
        }
    }

    /// What it does, in a few words: the paused scope, `name=value`, or the federation's multisig.
    pub fn detail(&self) -> String {
        match self {
            Self::Proposal(proposal) => match &proposal.action {
                ProposalAction::Emergency { scope, .. } => match scope {
                    PauseScope::Pegins => "pegins".to_owned(),
                    PauseScope::Pegouts => "pegouts".to_owned(),
                    PauseScope::BlockProduction => "production".to_owned(),
                },
                ProposalAction::Parameter { name, value } => format!("{name}={value}"),
                ProposalAction::Record { description } => description.clone(),
            },
            Self::Federation(federation) => {
                format!("{}-of-{}", federation.threshold, federation.members.len())
            }
        }
    }
}

/// Everything governance decided that the node holds: the proposal book and the federation history,
/// published together by the stream actor after each save.
#[derive(Debug, Clone)]
pub struct Decisions {
    proposals: Arc<ProposalBook>,
    federations: Arc<FederationHistory>,
}

impl Decisions {
    /// The decisions in `proposals` and `federations`.
    pub fn new(proposals: ProposalBook, federations: FederationHistory) -> Self {
        Self { proposals: Arc::new(proposals), federations: Arc::new(federations) }
    }

    /// The decisions whose first block is at `height`: the federation that starts there, then the
    /// proposals effective there in the order they apply.
    pub fn taking_effect_at(&self, height: u64) -> Vec<Decision> {
        let federation = self.federations.starting_at(height).cloned().map(Decision::Federation);
        federation
            .into_iter()
            .chain(self.proposals.effective_at(height).cloned().map(Decision::Proposal))
            .collect()
    }
}

/// A read-only view of the latest decisions, shared by message passing (a `watch` channel): the stream
/// actor publishes, the chain actor, the peg-out source and RPC read their own copy.
#[derive(Debug, Clone)]
pub struct RuntimeView(watch::Receiver<Arc<Decisions>>);

impl RuntimeView {
    /// A view over `receiver`.
    pub const fn new(receiver: watch::Receiver<Arc<Decisions>>) -> Self {
        Self(receiver)
    }

    /// A view that never changes (a node without governance).
    pub fn fixed(defaults: RuntimeParameters) -> Self {
        let decisions = Decisions::new(ProposalBook::new(defaults), FederationHistory::default());
        let (_, receiver) = watch::channel(Arc::new(decisions));
        Self(receiver)
    }

    /// The state at `height`.
    pub fn state_at(&self, height: u64) -> RuntimeState {
        self.0.borrow().proposals.state_at(height)
    }

    /// The current book.
    pub fn book(&self) -> Arc<ProposalBook> {
        Arc::clone(&self.0.borrow().proposals)
    }

    /// The federation holding deposits at `height`, and the one before it.
    pub fn federations_at(&self, height: u64) -> (Option<Federation>, Option<Federation>) {
        let decisions = self.0.borrow();
        (decisions.federations.at(height).cloned(), decisions.federations.previous(height).cloned())
    }

    /// Every federation known, oldest first.
    pub fn federations(&self) -> Vec<Federation> {
        self.0.borrow().federations.iter().cloned().collect()
    }

    /// Waits until new decisions are published; `false` when the publisher is gone.
    pub async fn changed(&mut self) -> bool {
        self.0.changed().await.is_ok()
    }

    /// The decisions whose first block is at `height` (see [`Decisions::taking_effect_at`]).
    pub fn taking_effect_at(&self, height: u64) -> Vec<Decision> {
        self.0.borrow().taking_effect_at(height)
    }

    /// Logs at INFO each decision whose first block is at `height`, and returns how many. The chain
    /// actor calls it right after it commits the block at `height` as its head, so each decision is
    /// logged once, when it comes into force.
    pub fn log_in_force(&self, height: u64) -> usize {
        let decisions = self.taking_effect_at(height);
        for decision in &decisions {
            tracing::info!(target: "alys::governance", height, kind = %decision.kind(), id = %decision.id(),
                what = %decision.detail(), "governance decision in force");
        }
        decisions.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, reason = "test code")]
    use super::*;

    fn proposal(id: &str, height: u64, pause: bool) -> Proposal {
        Proposal {
            id: id.into(),
            proposal_type: "EMERGENCY_ACTION".into(),
            effective_height: height,
            action: ProposalAction::Emergency {
                scope: PauseScope::BlockProduction,
                pause,
                reason: String::new(),
            },
        }
    }

    fn book() -> ProposalBook {
        ProposalBook::new(RuntimeParameters::with_max_blocks_without_pow(10))
    }

    #[test]
    fn past_means_a_governed_block_exists() {
        assert!(is_past(41, 41), "the block at the head exists");
        assert!(!is_past(42, 41), "the next block does not");
        assert!(is_past(2, 41));
        assert!(!is_past(0, 0) && !is_past(1, 0), "at genesis every height is ahead");
        assert!(is_past(0, 1), "height 0 governs block 1 on");
        assert!(!is_past(u64::MAX, u64::MAX - 1));
    }

    #[test]
    fn a_proposal_at_or_below_the_head_is_refused_unless_already_held() {
        let mut book = book();
        for head in [10, 11] {
            assert_eq!(
                check_proposal(&book, &proposal("p", 10, true), head),
                Err(ProposalError::PastHeight { height: 10, head })
            );
        }
        assert_eq!(check_proposal(&book, &proposal("p", 10, true), 9), Ok(true), "head + 1 is ahead");
        book.insert(proposal("p", 10, true)).unwrap();
        // Announced again once the chain passed its height: known, not refused.
        assert_eq!(check_proposal(&book, &proposal("p", 10, true), 50), Ok(false));
        assert_eq!(
            check_proposal(&book, &proposal("p", 60, true), 50),
            Err(ProposalError::Conflicting("p".into())),
            "a reused id is a conflict whatever its height"
        );
    }

    #[test]
    fn decisions_take_effect_at_their_height_only() {
        let mut proposals = book();
        proposals.insert(proposal("b-resume", 5, false)).unwrap();
        proposals.insert(proposal("a-pause", 5, true)).unwrap();
        proposals.insert(proposal("c", 6, true)).unwrap();
        let decisions = Decisions::new(proposals, FederationHistory::default());
        let at5: Vec<_> = decisions.taking_effect_at(5).iter().map(|d| (d.kind(), d.id())).collect();
        assert_eq!(at5, [("pause", "a-pause".to_owned()), ("resume", "b-resume".to_owned())]);
        assert_eq!(decisions.taking_effect_at(6).len(), 1);
        assert!(decisions.taking_effect_at(4).is_empty() && decisions.taking_effect_at(7).is_empty());
        let (tx, rx) = watch::channel(Arc::new(decisions));
        let view = RuntimeView::new(rx);
        assert_eq!(view.log_in_force(5), 2);
        assert_eq!(view.log_in_force(7), 0);
        tx.send_replace(Arc::new(Decisions::new(book(), FederationHistory::default())));
        assert_eq!(view.log_in_force(5), 0, "the view follows what is published");
    }
}

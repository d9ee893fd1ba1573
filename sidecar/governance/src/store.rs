//! Governance's durable state: what the stream actor commits, in what order, and the names of its
//! commit points.
//!
//! # Save, then apply
//!
//! Everything governance tells the node is verified, then saved in one transaction of the node's
//! database, and only then applied in memory and published:
//!
//! | message | verified | saved ([`Commit`]) | then |
//! |---|---|---|---|
//! | `FederationUpdate` | signature, multisig, after the latest federation, above the head | `federation_updates` | history updated, `RuntimeView`s see it, `GovernanceEvent::Federation` |
//! | `ProposalNotification` | signature, action, id not reused, above the head | `proposals` | book updated, `RuntimeView`s see it, `GovernanceEvent::Proposal` |
//!
//! "Above the head" is checked on arrival and again inside the saving transaction, against the head
//! committed there (the crate's `decisions` module has the rule); a decision that fails it is refused
//! and the transaction is dropped without a commit.
//! | `SignatureResponse` | a request with its id is pending | request removed and answer stored, one commit | waiting callers answered |
//!
//! A save that fails is not applied: it is counted ([`crate::metrics::SAVE_FAILURES`]), logged with its
//! error, and the session is ended. The reconnect gets it all again: the node re-sends its pending
//! signature requests (their ids unchanged, so governance repeats its answer rather than signing again),
//! and governance announces its federations and proposals to every session that registers. So a failed
//! save costs a reconnect, never a decision the node acts on but would forget after a restart.
//!
//! # Signature answers are kept until taken
//!
//! An answer is stored in the transaction that removes its request, and stays stored until a consumer
//! takes it: a caller that timed out, whose receiver is gone, or that restarted before the answer came
//! finds it later by request id (`StreamHandle::request_signatures_with_id` returns it at
//! once). A consumer with state of its own takes the answer in the transaction that records what it did
//! with it ([`take_signature_response`] on its own [`WriteTx`]), so a crash leaves either the answer
//! stored or the consumer's new state, never neither. Repeated answers to one id are not stored again:
//! each request is answered at most once.
//!
//! # Commit points
//!
//! Each commit has two crash points (`alys_primitives::crash_point!`, armed with
//! `FAILPOINTS="<name>=return"`: the process aborts there) and one fail point that makes the commit
//! fail with an I/O error instead (`fail::cfg("<name>", "return")` in a test), all listed in
//! [`Commit::ALL`]:
//!
//! | commit | before / after (crash) | error (fails the save) |
//! |---|---|---|
//! | a signature request stored before it is sent | `governance::signature_request::before` / `::after` | `governance::signature_request::error` |
//! | an answer stored, its request removed | `governance::signature_response::before` / `::after` | `governance::signature_response::error` |
//! | an answer taken through the stream handle | `governance::signature_take::before` / `::after` | `governance::signature_take::error` |
//! | a federation update saved | `governance::federation_update::before` / `::after` | `governance::federation_update::error` |
//! | a proposal saved | `governance::proposal::before` / `::after` | `governance::proposal::error` |
//!
//! What a crash leaves: before a commit, nothing of it (the request is asked for again, the answer or
//! the decision is sent again on the next session); after it, the saved state, which the actor loads
//! at start.

use alys_proto::governance::v1::SignatureResponse;
use alys_storage::{GovernanceRead, StorageError, WriteTx};
use prost::Message as _;

/// Why reading or taking a stored signature answer failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("governance store: {0}")]
    Storage(#[from] StorageError),
    /// A stored answer does not decode (the database is damaged or was written by something else).
    #[error("stored answer to signature request {id} does not decode: {source}")]
    CorruptResponse {
        /// The request id.
        id: String,
        /// The decoding error.
        source: prost::DecodeError,
    },
}

/// A commit of governance's state, with its crash points and error fail point (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    /// A signature request stored before it is sent.
    SignatureRequest,
    /// An answer stored in the transaction that removes its request.
    SignatureResponse,
    /// An answer taken through `StreamHandle::take_signature_response` (a consumer
    /// that takes it in its own transaction names its own commit points).
    SignatureTake,
    /// A verified federation update saved.
    FederationUpdate,
    /// A verified proposal saved.
    Proposal,
}

impl Commit {
    /// Every commit, for harnesses that arm each point in turn.
    pub const ALL: [Self; 5] = [
        Self::SignatureRequest,
        Self::SignatureResponse,
        Self::SignatureTake,
        Self::FederationUpdate,
        Self::Proposal,
    ];

    /// The commit's name, as in its points' names and the `what` label of
    /// [`crate::metrics::SAVE_FAILURES`].
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::SignatureRequest => "signature_request",
            Self::SignatureResponse => "signature_response",
            Self::SignatureTake => "signature_take",
            Self::FederationUpdate => "federation_update",
            Self::Proposal => "proposal",
        }
    }

    /// The crash point right before the commit.
    pub const fn before(self) -> &'static str {
        match self {
            Self::SignatureRequest => "governance::signature_request::before",
            Self::SignatureResponse => "governance::signature_response::before",
            Self::SignatureTake => "governance::signature_take::before",
            Self::FederationUpdate => "governance::federation_update::before",
            Self::Proposal => "governance::proposal::before",
        }
    }

    /// The crash point right after the commit.
    pub const fn after(self) -> &'static str {
        match self {
            Self::SignatureRequest => "governance::signature_request::after",
            Self::SignatureResponse => "governance::signature_response::after",
            Self::SignatureTake => "governance::signature_take::after",
            Self::FederationUpdate => "governance::federation_update::after",
            Self::Proposal => "governance::proposal::after",
        }
    }

    /// The fail point that makes this commit fail with an I/O error, for tests of failed saves.
    pub const fn error(self) -> &'static str {
        match self {
            Self::SignatureRequest => "governance::signature_request::error",
            Self::SignatureResponse => "governance::signature_response::error",
            Self::SignatureTake => "governance::signature_take::error",
            Self::FederationUpdate => "governance::federation_update::error",
            Self::Proposal => "governance::proposal::error",
        }
    }

    // `crash_point!` takes a literal, hence one arm per point; `crash_points_are_named_as_listed`
    // checks these against `before()` and `after()`.
    fn crash_before(self) {
        match self {
            Self::SignatureRequest => alys_primitives::crash_point!("governance::signature_request::before"),
            Self::SignatureResponse => {
                alys_primitives::crash_point!("governance::signature_response::before")
            }
            Self::SignatureTake => alys_primitives::crash_point!("governance::signature_take::before"),
            Self::FederationUpdate => alys_primitives::crash_point!("governance::federation_update::before"),
            Self::Proposal => alys_primitives::crash_point!("governance::proposal::before"),
        }
    }

    fn crash_after(self) {
        match self {
            Self::SignatureRequest => alys_primitives::crash_point!("governance::signature_request::after"),
            Self::SignatureResponse => alys_primitives::crash_point!("governance::signature_response::after"),
            Self::SignatureTake => alys_primitives::crash_point!("governance::signature_take::after"),
            Self::FederationUpdate => alys_primitives::crash_point!("governance::federation_update::after"),
            Self::Proposal => alys_primitives::crash_point!("governance::proposal::after"),
        }
    }
}

/// Commits `tx` between `commit`'s crash points, or fails as an I/O error would when its error fail
/// point is armed (the transaction is then dropped: nothing of it is applied).
pub(crate) fn commit(tx: WriteTx, commit: Commit) -> Result<(), StorageError> {
    fail::fail_point!(commit.error(), |_| Err(injected(commit)));
    commit.crash_before();
    tx.commit()?;
    commit.crash_after();
    Ok(())
}

/// The error an armed error fail point stands for: a failed write of the database file.
fn injected(commit: Commit) -> StorageError {
    StorageError::Storage(redb::StorageError::Io(std::io::Error::other(format!(
        "injected by fail point {}",
        commit.error()
    ))))
}

pub(crate) fn decode_response(id: &str, bytes: &[u8]) -> Result<SignatureResponse, StoreError> {
    SignatureResponse::decode(bytes)
        .map_err(|source| StoreError::CorruptResponse { id: id.to_owned(), source })
}

/// The stored answer to signature request `id`, without taking it; `None` if it has not arrived or
/// was taken.
pub fn signature_response(
    read: &impl GovernanceRead,
    id: &str,
) -> Result<Option<SignatureResponse>, StoreError> {
    read.signature_response(id)?.map(|bytes| decode_response(id, &bytes)).transpose()
}

/// Takes the stored answer to signature request `id` inside the caller's own transaction: commit `tx`
/// with the state change the answer leads to (the peg-out signer records the signed transaction in the
/// same commit), and the answer is consumed exactly when that change is saved. `None` if there is no
/// answer (not arrived yet, or taken). A stored answer that does not decode is an error, and stays
/// where it was unless `tx` is committed anyway.
pub fn take_signature_response(tx: &WriteTx, id: &str) -> Result<Option<SignatureResponse>, StoreError> {
    tx.take_signature_response(id)?.map(|bytes| decode_response(id, &bytes)).transpose()
}

/// Fail points are process-wide: every test that commits, or arms a point, holds one of these, so no
/// test sees another's points (dropping it clears them).
#[cfg(test)]
pub(crate) fn fail_scenario() -> fail::FailScenario<'static> {
    fail::FailScenario::setup()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, reason = "test code")]
    use super::*;
    use alys_storage::Storage;

    fn scenario() -> fail::FailScenario<'static> {
        fail_scenario()
    }

    #[test]
    fn crash_points_are_named_as_listed() {
        let _scenario = scenario();
        let store = Storage::in_memory().unwrap();
        for commit in Commit::ALL {
            assert!(commit.before().starts_with("governance::") && commit.before().ends_with("::before"));
            assert!(commit.before().contains(commit.as_str()) && commit.after().contains(commit.as_str()));
            // Armed with "panic" rather than "return" (which aborts): the panic proves the point is
            // evaluated under the listed name, at the listed side of the commit.
            for (point, committed) in [(commit.before(), false), (commit.after(), true)] {
                fail::cfg(point, "panic").unwrap();
                let tx = store.write().unwrap();
                tx.put_proposal(point, b"x").unwrap();
                let outcome =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| super::commit(tx, commit)));
                fail::remove(point);
                assert!(outcome.is_err(), "{point} is not evaluated");
                let stored = store.read().unwrap().proposals().unwrap().iter().any(|(id, _)| id == point);
                assert_eq!(stored, committed, "{point}");
            }
        }
    }

    #[test]
    fn an_armed_error_point_fails_the_commit_and_changes_nothing() {
        let _scenario = scenario();
        let store = Storage::in_memory().unwrap();
        fail::cfg(Commit::Proposal.error(), "return").unwrap();
        let tx = store.write().unwrap();
        tx.put_proposal("p", b"x").unwrap();
        assert!(matches!(commit(tx, Commit::Proposal), Err(StorageError::Storage(_))));
        fail::remove(Commit::Proposal.error());
        assert!(store.read().unwrap().proposals().unwrap().is_empty());
    }

    #[test]
    fn a_consumer_takes_an_answer_in_its_own_transaction() {
        let store = Storage::in_memory().unwrap();
        let answer = SignatureResponse { status: 2, ..Default::default() };
        let tx = store.write().unwrap();
        tx.put_signature_request("r", b"request").unwrap();
        assert!(tx.answer_signature_request("r", &answer.encode_to_vec()).unwrap());
        tx.commit().unwrap();
        assert_eq!(signature_response(&store.read().unwrap(), "r").unwrap(), Some(answer.clone()));

        let tx = store.write().unwrap();
        assert_eq!(take_signature_response(&tx, "r").unwrap(), Some(answer));
        tx.put_proposal("consumer-state", b"signed").unwrap();
        tx.commit().unwrap();
        let read = store.read().unwrap();
        assert_eq!(signature_response(&read, "r").unwrap(), None);
        assert_eq!(read.proposals().unwrap().len(), 1, "the take committed with the consumer's change");

        let tx = store.write().unwrap();
        tx.put_signature_request("bad", b"request").unwrap();
        assert!(tx.answer_signature_request("bad", &[0xff, 0xff]).unwrap());
        assert!(matches!(take_signature_response(&tx, "bad"), Err(StoreError::CorruptResponse { .. })));
    }
}

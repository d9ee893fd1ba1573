//! The peg-out path's commit points, named for the crash-point tests (DESIGN invariant 8).
//!
//! Each commit has two crash points (`alys_primitives::crash_point!`, armed with
//! `FAILPOINTS="<name>=return"`: the process aborts there, as a `kill -9` would) and one fail point that
//! makes the commit fail with an I/O error instead (`fail::cfg("<name>", "return")` in a test):
//!
//! | commit | before / after (crash) | error (fails the write) |
//! |---|---|---|
//! | a feed event recorded with its cursor | `pegout::feed_event::before` / `::after` | `pegout::feed_event::error` |
//! | final, canonical burns released | `pegout::release::before` / `::after` | `pegout::release::error` |
//! | a chunk of geth logs ingested, its height stored | `pegout::geth_chunk::before` / `::after` | `pegout::geth_chunk::error` |
//!
//! What a crash leaves: before a commit, nothing of it (the feed redelivers the event after the stored
//! cursor, the release pass runs again at the next head, the poller reads the chunk again from the
//! stored height); after it, the new state, from which the source resumes.

use alys_storage::{StorageError, WriteTx};

/// A commit of the peg-out path (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PegoutCommit {
    /// A burn-feed event applied to the ledger with its cursor.
    FeedEvent,
    /// Pending burns that are final and canonical moved to the released set.
    Release,
    /// A chunk of `eth_getLogs` burns recorded with the geth height it reaches.
    GethChunk,
}

impl PegoutCommit {
    /// Every commit, for harnesses that arm each point in turn.
    pub const ALL: [Self; 3] = [Self::FeedEvent, Self::Release, Self::GethChunk];

    /// The commit's name, as in its points' names.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::FeedEvent => "feed_event",
            Self::Release => "release",
            Self::GethChunk => "geth_chunk",
        }
    }

    /// The crash point right before the commit.
    pub const fn before(self) -> &'static str {
        match self {
            Self::FeedEvent => "pegout::feed_event::before",
            Self::Release => "pegout::release::before",
            Self::GethChunk => "pegout::geth_chunk::before",
        }
    }

    /// The crash point right after the commit.
    pub const fn after(self) -> &'static str {
        match self {
            Self::FeedEvent => "pegout::feed_event::after",
            Self::Release => "pegout::release::after",
            Self::GethChunk => "pegout::geth_chunk::after",
        }
    }

    /// The fail point that makes this commit fail with an I/O error, for tests of failed writes.
    pub const fn error(self) -> &'static str {
        match self {
            Self::FeedEvent => "pegout::feed_event::error",
            Self::Release => "pegout::release::error",
            Self::GethChunk => "pegout::geth_chunk::error",
        }
    }

    // `crash_point!` takes a literal, hence one arm per point; a test checks them against `before()`
    // and `after()`.
    fn crash_before(self) {
        match self {
            Self::FeedEvent => alys_primitives::crash_point!("pegout::feed_event::before"),
            Self::Release => alys_primitives::crash_point!("pegout::release::before"),
            Self::GethChunk => alys_primitives::crash_point!("pegout::geth_chunk::before"),
        }
    }

    fn crash_after(self) {
        match self {
            Self::FeedEvent => alys_primitives::crash_point!("pegout::feed_event::after"),
            Self::Release => alys_primitives::crash_point!("pegout::release::after"),
            Self::GethChunk => alys_primitives::crash_point!("pegout::geth_chunk::after"),
        }
    }
}

/// Commits `tx` between `commit`'s crash points, or fails as an I/O error would when its error fail
/// point is armed (the transaction is then dropped: nothing of it is applied).
pub(crate) fn commit(tx: WriteTx, commit: PegoutCommit) -> Result<(), StorageError> {
    fail::fail_point!(commit.error(), |_| Err(injected(commit)));
    commit.crash_before();
    tx.commit()?;
    commit.crash_after();
    Ok(())
}

/// The error an armed error fail point stands for: a failed write of the database file.
fn injected(commit: PegoutCommit) -> StorageError {
    StorageError::Storage(redb::StorageError::Io(std::io::Error::other(format!(
        "injected by fail point {}",
        commit.error()
    ))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_points_are_named_as_listed() {
        // An armed crash point aborts, so the literal names are checked by reading this file.
        let source = include_str!("commit.rs");
        for commit in PegoutCommit::ALL {
            for name in [commit.before(), commit.after()] {
                assert!(source.contains(&format!("crash_point!(\"{name}\")")), "{name}");
                assert!(name.starts_with(&format!("pegout::{}::", commit.as_str())), "{name}");
            }
            assert_eq!(commit.error(), format!("pegout::{}::error", commit.as_str()));
        }
    }
}

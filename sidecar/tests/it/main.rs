//! Integration tests of the sidecar.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, reason = "test code")]

mod actor;
mod launch;

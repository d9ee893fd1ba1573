//! Integration tests of the node: launching from a configuration.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, reason = "test code")]

mod launch;

//! End-to-end tests of the Alys node: `alys-devnet`, `alys` and `alys-miner` as real processes on
//! loopback, driven through their public interfaces (eth JSON-RPC with foundry's `cast`, the Alys RPC's
//! typed client, the Engine API, the burn feed, Prometheus metrics and the governance admin RPC).
//!
//! The tests live in `it/` (one integration-test binary); this library is empty. The first test that
//! needs a binary builds all three with the cargo that runs the tests, for the same profile, into the
//! same target directory (`it/support.rs`, `bin`); `cast` comes from `npm ci` in the repository root.
//!
//! | file | what runs | what is checked |
//! |---|---|---|
//! | `el_cast.rs` | `alys-devnet el` | foundry's `cast` against the engine: transfers, deployment, calls, logs, the bridge, wallet errors |
//! | `mining.rs` | `alys-devnet`; `alys-devnet el` + `alys run` | merged mining finalizes and pays; production stops without proofs and resumes with one; bad mining input |
//! | `network.rs` | `alys-devnet` | `kill -9` safety, operator pause/resume, the Alys RPC's shapes and errors, peg-outs through the burn feed, geth path = ExEx path |
//! | `governance.rs` | `alys-devnet governance` + `alys-devnet el` + `alys run`; `alys-devnet` | reconnect after an outage, proposals, parameters, rotation, paused peg-outs |
//! | `recovery.rs` | `alys-devnet el` + `alys run` | a wiped execution client is refilled; a panicking chain handler (failpoint) is restarted |

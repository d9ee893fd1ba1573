//! `alys-miner` as a process: its command line, and how it behaves with no node to mine for.

#![allow(clippy::unwrap_used, reason = "test code")]

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::mpsc,
    time::Duration,
};

fn alys_miner() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_alys-miner"));
    command.env("NO_COLOR", "1").env_remove("RUST_LOG");
    command
}

#[test]
fn help_lists_the_options_and_a_bad_payout_address_is_refused() {
    let output = alys_miner().arg("--help").output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let help = String::from_utf8(output.stdout).unwrap();
    for expected in ["--rpc", "http://127.0.0.1:3000", "--address", "--interval-ms"] {
        assert!(help.contains(expected), "{expected:?} missing from:\n{help}");
    }

    let output = alys_miner().args(["--address", "0x1234"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let error = String::from_utf8(output.stderr).unwrap();
    assert!(error.contains("invalid value '0x1234' for '--address"), "{error}");
}

#[test]
fn without_a_node_each_round_fails_and_the_miner_keeps_going() {
    // Port 1 on loopback: nothing listens, every connection is refused at once.
    let mut child = alys_miner()
        .args(["--rpc", "http://127.0.0.1:1", "--interval-ms", "50"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (lines_tx, lines_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            if lines_tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    let mut failed_rounds = 0;
    while failed_rounds < 3 {
        let line = lines_rx.recv_timeout(Duration::from_secs(30)).expect("a log line within 30 s");
        if line.contains("mining round failed") {
            failed_rounds += 1;
        }
    }
    assert!(child.try_wait().unwrap().is_none(), "the miner is still running after failed rounds");
    child.kill().unwrap();
    child.wait().unwrap();
}

//! `alys-devnet`'s command line, as a person or a script meets it.

#![allow(clippy::unwrap_used, reason = "test code")]

use std::process::{Command, Output};

fn alys_devnet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_alys-devnet")).args(args).env("NO_COLOR", "1").output().unwrap()
}

#[test]
fn help_lists_the_subcommands_and_the_default_ports() {
    let output = alys_devnet(&["--help"]);
    assert!(output.status.success(), "{output:?}");
    let help = String::from_utf8(output.stdout).unwrap();
    for expected in [
        "el ",
        "governance ",
        "--http.addr",
        "--ws.addr",
        "--authrpc.addr",
        "--rpc.addr",
        "--feed.addr",
        "--governance.admin-addr",
        "--metrics.addr",
        "127.0.0.1:8545",
        "127.0.0.1:8551",
        "127.0.0.1:3000",
        "127.0.0.1:50551",
    ] {
        assert!(help.contains(expected), "{expected:?} missing from:\n{help}");
    }

    let output = alys_devnet(&["el", "--help"]);
    assert!(output.status.success(), "{output:?}");
    let help = String::from_utf8(output.stdout).unwrap();
    for expected in ["--chain", "--datadir", "--authrpc.jwtsecret", "etc/jwt/jwt.hex", "127.0.0.1:8551"] {
        assert!(help.contains(expected), "{expected:?} missing from:\n{help}");
    }
}

#[test]
fn an_unknown_flag_or_a_bad_address_is_refused_before_anything_starts() {
    let output = alys_devnet(&["--bogus"]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let error = String::from_utf8(output.stderr).unwrap();
    assert!(error.contains("unexpected argument '--bogus'"), "{error}");
    assert!(output.stdout.is_empty(), "no ready line");

    let output = alys_devnet(&["el", "--http.addr", "localhost"]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let error = String::from_utf8(output.stderr).unwrap();
    assert!(error.contains("invalid value 'localhost' for '--http.addr"), "{error}");
}

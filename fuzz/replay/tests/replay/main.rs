#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, reason = "test code")]
//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the fuzz targets' bodies on
//! stable Rust, and keeps the seeds in the corpus what the current code encodes.
//!
//! After a change to an encoding, `ALYS_BLESS=1 cargo test -p alys-fuzz-replay` rewrites the seed files
//! (`seed-*`); every other corpus file (inputs a fuzzer found) is kept and replayed as it is.

mod seeds;

use std::{
    collections::BTreeSet,
    fs,
    panic::{AssertUnwindSafe, catch_unwind},
    path::{Path, PathBuf},
};

use alys_fuzz_replay::{TARGETS, Target};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn corpus_dir(target: &str) -> PathBuf {
    fuzz_dir().join("corpus").join(target)
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

/// Runs every corpus file of `target`; returns the files that panicked, with the panic.
fn replay(target: &Target) -> Vec<String> {
    let mut failures = Vec::new();
    for path in files(&corpus_dir(target.name)) {
        let data = fs::read(&path).unwrap();
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| (target.run)(&data))) {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            failures.push(format!("{}: {message}", path.display()));
        }
    }
    failures
}

#[test]
fn every_corpus_file_replays_without_a_panic() {
    let mut failures = Vec::new();
    for target in TARGETS {
        let count = files(&corpus_dir(target.name)).len();
        assert!(count > 0, "fuzz/corpus/{} is empty", target.name);
        failures.extend(replay(target));
    }
    assert!(failures.is_empty(), "corpus inputs that fail their target:\n{}", failures.join("\n"));
}

#[test]
fn every_target_has_a_fuzz_binary_and_a_corpus_and_nothing_else_does() {
    let names: BTreeSet<&str> = TARGETS.iter().map(|t| t.name).collect();
    assert_eq!(names.len(), TARGETS.len(), "duplicate target names");
    let manifest = fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    for name in &names {
        let source = fs::read_to_string(fuzz_dir().join("fuzz_targets").join(format!("{name}.rs")))
            .unwrap_or_else(|e| panic!("fuzz/fuzz_targets/{name}.rs: {e}"));
        assert!(
            source.contains(&format!("alys_fuzz_replay::targets::{name}(data)")),
            "{name}.rs calls another body"
        );
        assert!(manifest.contains(&format!("name = \"{name}\"")), "fuzz/Cargo.toml has no [[bin]] {name}");
    }
    let listed = |dir: &str, strip: &str| -> BTreeSet<String> {
        fs::read_dir(fuzz_dir().join(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().trim_end_matches(strip).to_owned())
            .collect()
    };
    let names: BTreeSet<String> = names.iter().map(|n| (*n).to_owned()).collect();
    assert_eq!(listed("fuzz_targets", ".rs"), names, "fuzz/fuzz_targets/ and TARGETS differ");
    assert_eq!(listed("corpus", ""), names, "fuzz/corpus/ and TARGETS differ");
}

#[test]
fn seeds_are_what_the_code_encodes() {
    let bless = std::env::var_os("ALYS_BLESS").is_some();
    let seeds = seeds::all();
    let mut stale = Vec::new();
    for target in TARGETS {
        let dir = corpus_dir(target.name);
        let wanted: BTreeSet<String> =
            seeds.iter().filter(|s| s.target == target.name).map(|s| s.name.clone()).collect();
        assert!(!wanted.is_empty(), "no seed for {}", target.name);
        if bless {
            fs::create_dir_all(&dir).unwrap();
            // Old seeds go; inputs a fuzzer found (not `seed-*`) stay.
            for path in files(&dir) {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                if name.starts_with("seed-") && !wanted.contains(&name) {
                    fs::remove_file(path).unwrap();
                }
            }
        }
    }
    for seed in &seeds {
        let path = corpus_dir(seed.target).join(&seed.name);
        if bless {
            fs::write(&path, &seed.bytes).unwrap();
        } else if fs::read(&path).ok().as_deref() != Some(seed.bytes.as_slice()) {
            stale.push(format!("fuzz/corpus/{}/{}", seed.target, seed.name));
        }
    }
    assert!(
        stale.is_empty(),
        "seeds missing or not what the code encodes now (ALYS_BLESS=1 cargo test -p alys-fuzz-replay \
         rewrites them):\n{}",
        stale.join("\n")
    );
    if !bless {
        for target in TARGETS {
            let committed = files(&corpus_dir(target.name))
                .into_iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .filter(|name| name.starts_with("seed-"))
                .collect::<BTreeSet<_>>();
            let wanted: BTreeSet<String> =
                seeds.iter().filter(|s| s.target == target.name).map(|s| s.name.clone()).collect();
            assert_eq!(committed, wanted, "fuzz/corpus/{} holds seeds the code no longer makes", target.name);
        }
    }
}

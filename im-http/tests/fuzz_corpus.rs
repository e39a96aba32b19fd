//! Replays the committed corpus of every im-http fuzz target
//! (`fuzz/corpus/<target>/`) through the function the target calls, so that
//! every input the fuzzers kept is checked on stable by `cargo test`.
//!
//! Needs the `fuzzing` feature, which `./scripts/test` turns on (it runs
//! with `--all-features`): `cargo test -p im-http --features fuzzing`.

#![cfg(feature = "fuzzing")]

use std::path::{Path, PathBuf};

use im_http::fuzzing;

/// Every input of a target's corpus (dot files are the fuzzer's own).
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| {
            !p.file_name()
                .is_some_and(|f| f.to_string_lossy().starts_with('.'))
        })
        .map(|p| {
            let data = std::fs::read(&p).unwrap();
            (p, data)
        })
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "no corpus in {}", dir.display());
    inputs
}

fn replay(target: &str, f: fn(&[u8])) {
    for (path, data) in corpus(target) {
        let result = std::panic::catch_unwind(|| f(&data));
        assert!(result.is_ok(), "{target} fails on {}", path.display());
    }
}

#[test]
fn json_body_corpus_replays() {
    replay("json_body", fuzzing::json_body);
}

#[test]
fn ids_corpus_replays() {
    replay("ids", fuzzing::ids);
}

#[test]
fn query_corpus_replays() {
    replay("query", fuzzing::query);
}

#[test]
fn last_event_id_corpus_replays() {
    replay("last_event_id", fuzzing::last_event_id);
}

#[test]
fn token_corpus_replays() {
    replay("token", fuzzing::token);
}

#[test]
fn commands_corpus_replays() {
    replay("commands", fuzzing::commands);
}

//! Replays the committed corpus of the `sled_keys` fuzz target
//! (`fuzz/corpus/sled_keys/`) through the function the target calls, so
//! that every input the fuzzer kept is checked on stable by `cargo test`.

use std::path::Path;

#[test]
fn sled_keys_corpus_replays() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/sled_keys");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .is_some_and(|f| f.to_string_lossy().starts_with('.'))
        {
            continue;
        }
        let data = std::fs::read(&path).unwrap();
        im_store_sled::fuzzing::keys(&data);
        n += 1;
    }
    assert!(n > 0, "no corpus in {}", dir.display());
}

//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) through the
//! same checks the fuzz targets run, on stable, as part of the workspace tests.

use std::fs;
use std::path::PathBuf;

/// Runs `check` on every file of `fuzz/corpus/<target>/`; fails when the
/// directory is missing or empty.
fn replay(target: &str, check: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let entries = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {} cannot be read: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "corpus {} is empty", dir.display());
    for file in &files {
        let data = fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        eprintln!("replaying {}", file.display());
        check(&data);
    }
}

#[test]
fn every_envelope_corpus_input_passes_the_envelope_checks() {
    replay("envelope", chanmux_fuzz::envelope);
}

#[test]
fn every_actions_corpus_input_passes_the_action_checks() {
    replay("actions", chanmux_fuzz::actions);
}

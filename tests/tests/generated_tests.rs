//! The `#[test]` that `#[trainable]` generates runs under `cargo test` and fails for a
//! trainable whose checkpoint is incomplete.
//!
//! Builds the fixture crate `tests/fixtures/save-restore` with `--features broken` in a
//! nested cargo (with its own target directory: the outer build directory is locked) and
//! reads libtest's output.

use std::path::Path;
use std::process::Command;

#[test]
fn generated_tests_run_and_catch_a_broken_checkpoint() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
    let target = workspace.join("target").join("nested-fixture");
    let output = Command::new(env!("CARGO"))
        .current_dir(workspace)
        .args(["test", "-p", "tune-fixture-save-restore", "--features", "broken", "-j2"])
        .arg("--target-dir")
        .arg(&target)
        .args(["--", "--test-threads=2"])
        .env_remove("CARGO_TARGET_DIR")
        .env("CARGO_TERM_COLOR", "never")
        .output()
        .expect("run cargo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let context = format!("--- stdout\n{stdout}\n--- stderr\n{stderr}");

    assert!(!output.status.success(), "the broken trainable's test must fail\n{context}");
    let result = |name: &str| {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix(&format!("test {name} ... ")))
            .map(str::trim)
    };
    assert_eq!(result("__tune_save_restore_good_net"), Some("ok"), "{context}");
    assert_eq!(result("__tune_save_restore_good_fn"), Some("ok"), "{context}");
    assert_eq!(result("__tune_save_restore_forgetful_net"), Some("FAILED"), "{context}");

    // The failure section of the broken test carries the check's message.
    let section = stdout
        .split("---- __tune_save_restore_forgetful_net stdout ----")
        .nth(1)
        .unwrap_or_else(|| panic!("no failure output for the broken test\n{context}"));
    for expected in [
        "`ForgetfulNet`: metrics after restore differ at step 4: `loss` was",
        "a field that step() depends on is not checkpointed",
        "#[checkpoint(skip)]",
    ] {
        assert!(section.contains(expected), "missing {expected:?} in the panic message\n{context}");
    }
    assert!(stdout.contains("test result: FAILED. 2 passed; 1 failed"), "{context}");
}

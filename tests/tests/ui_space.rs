//! Compile-time errors of `search_space!` (`tests/ui/space/fail`, one error class per file,
//! each with its expected `.stderr`) and accepted inputs (`tests/ui/space/pass`).
//!
//! Regenerate the expected output with `TRYBUILD=overwrite cargo test -p tune-tests --test
//! ui_space`, then read every changed `.stderr`.

#[test]
fn ui_space() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/space/fail/*.rs");
    t.pass("ui/space/pass/*.rs");
}

//! Compile errors and accepted forms of `#[trainable]` (trybuild). Regenerate the expected
//! output with `TRYBUILD=overwrite cargo test-all --test ui_trainable` (the features of `cargo test-all`: rustc names some paths differently when they change the dependency graph), then read it.

#[test]
fn ui_trainable() {
    let t = trybuild::TestCases::new();
    t.pass("ui/trainable/pass/*.rs");
    t.compile_fail("ui/trainable/fail/*.rs");
}

//! Compile errors and accepted forms of `#[trainable]` (trybuild). Regenerate the expected
//! output with `TRYBUILD=overwrite cargo test -p tune-tests --test ui_trainable`, then read it.

#[test]
fn ui_trainable() {
    let t = trybuild::TestCases::new();
    t.pass("ui/trainable/pass/*.rs");
    t.compile_fail("ui/trainable/fail/*.rs");
}

//! Compile errors and accepted forms of `#[derive(Metrics)]` (trybuild). Regenerate the
//! expected output with `TRYBUILD=overwrite cargo test-all --test ui_metrics` (the features of `cargo test-all`: rustc names some paths differently when they change the dependency graph), then
//! read it.

#[test]
fn ui_metrics() {
    let t = trybuild::TestCases::new();
    t.pass("ui/metrics/pass/*.rs");
    t.compile_fail("ui/metrics/fail/*.rs");
}

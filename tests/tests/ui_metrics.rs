//! Compile errors and accepted forms of `#[derive(Metrics)]` (trybuild). Regenerate the
//! expected output with `TRYBUILD=overwrite cargo test -p tune-tests --test ui_metrics`, then
//! read it.

#[test]
fn ui_metrics() {
    let t = trybuild::TestCases::new();
    t.pass("ui/metrics/pass/*.rs");
    t.compile_fail("ui/metrics/fail/*.rs");
}

//! `model!` rejects wrong models at compile time, with errors that point at the
//! offending layer. One case per file under `tests/ui/`, its expected compiler output
//! beside it; regenerate with `TRYBUILD=overwrite cargo test -p kiln --test
//! compile_fail` and review the diff.

#[test]
fn wrong_models_do_not_compile() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}

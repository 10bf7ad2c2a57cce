//! Compile-time guarantees: every case in `ui-tests/` must fail to compile
//! with the message in its `.stderr`. Regenerate with `TRYBUILD=overwrite`
//! after a toolchain change, and review the diff by eye.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("ui-tests/*.rs");
}

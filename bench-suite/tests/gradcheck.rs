//! The `gradcheck` command's checks pass, on every `cargo test`.

#[test]
fn every_gradient_matches_finite_differences() {
    let mut out = Vec::new();
    let tally = origami_bench::gradcheck::gradcheck(&mut out).unwrap();
    let report = String::from_utf8(out).unwrap();
    assert_eq!(tally.failed, 0, "{report}");
    assert!(tally.passed >= 60, "{report}");
    assert!(
        report
            .trim_end()
            .ends_with(&format!("{} passed, 0 failed", tally.passed))
    );
}

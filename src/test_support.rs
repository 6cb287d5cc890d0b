//! What the crate's property tests share.

use proptest::test_runner::{Config, FileFailurePersistence};

/// 256 cases, or `PROPTEST_CASES` for a longer run; anything found is
/// kept as a seed under `proptest-regressions/` beside the source.
pub(crate) fn proptest_config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(256);
    Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::SourceParallel(
            "proptest-regressions",
        ))),
        ..Config::default()
    }
}

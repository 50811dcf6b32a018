//! Helpers shared by the unit tests.

use std::path::PathBuf;

/// Path of a file in the shared fixtures: `$SAFEYOLO_FIXTURES/<rel>`, falling
/// back to `<workspace root>/../shared/fixtures/<rel>`.
pub(crate) fn fixture(rel: &str) -> PathBuf {
    let root = std::env::var_os("SAFEYOLO_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures")
        });
    root.join(rel)
}

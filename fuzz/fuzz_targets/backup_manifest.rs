//! A backup's manifest (`store::parse_manifest`, what `restore` and `verify_backup`
//! read first from an uploaded or copied backup).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use safe_yolo_store::parse_manifest;

fuzz_target!(|data: &[u8]| {
    let dir = Path::new("/var/lib/safe-yolo/restore-fuzz");
    let Ok(m) = parse_manifest(data, dir) else {
        return;
    };
    assert_eq!(m.files.first().map(|f| f.path.as_str()), Some("store.redb"));
    for f in &m.files {
        assert!(
            !f.path.contains("..") && !f.path.starts_with('/'),
            "{:?}",
            f.path
        );
    }
    // What the box writes it reads back the same.
    let again = serde_json::to_vec(&m).unwrap();
    assert_eq!(parse_manifest(&again, dir).unwrap(), m);
});

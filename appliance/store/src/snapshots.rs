//! JPEG snapshot files beside the database: atomic writes, free-space checks, orphan sweep.
//!
//! A file is written to a hidden temporary name and fsynced before the write lock is taken;
//! inside the transaction it is renamed to `<event id>.jpg` and the directory is fsynced
//! before the commit. A crash before that commit leaves an unreferenced file, which `sweep`
//! removes at the next open.

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::StoreError;

/// File name of the snapshot of event `id`.
pub fn file_name(id: u64) -> String {
    format!("{id:020}.jpg")
}

/// Parses a snapshot file name back into its event id.
pub(crate) fn parse_file_name(name: &str) -> Option<u64> {
    name.strip_suffix(".jpg")?.parse().ok()
}

/// Writes `bytes` durably (data fsynced) to the hidden temporary file `dir/.<name>.tmp`.
/// The caller renames it into place and fsyncs the directory. Returns the path and the
/// SHA-256 in lowercase hex.
pub(crate) fn write_temp(
    dir: &Path,
    name: &str,
    bytes: &[u8],
) -> std::io::Result<(std::path::PathBuf, String)> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = result {
        // Best effort: a leftover temporary file is also removed by the sweep at open.
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    Ok((tmp, hex::encode(Sha256::digest(bytes))))
}

/// Whether an I/O error means the disk (or the user's quota) is full.
pub(crate) fn is_disk_full(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull
        || matches!(e.raw_os_error(), Some(28 /* ENOSPC */ | 122 /* EDQUOT */))
}

/// Bytes available to unprivileged writers on the file system holding `dir`.
pub(crate) fn available_bytes(dir: &Path) -> Result<u64, StoreError> {
    let st = rustix::fs::statvfs(dir)
        .map_err(|e| StoreError::io("statvfs", dir, std::io::Error::from(e)))?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Removes temporary files and snapshot files that no event references.
/// Returns the number of files removed.
/// Moves every snapshot file of `dir` that no event in `referenced` names into `aside`
/// (created when there is one), fsyncing both directories; returns how many moved.
pub(crate) fn set_aside(
    dir: &Path,
    referenced: &HashSet<u64>,
    aside: &Path,
) -> Result<usize, StoreError> {
    let mut moved = 0;
    let entries = fs::read_dir(dir).map_err(|e| StoreError::io("read directory", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io("read directory", dir, e))?;
        let name = entry.file_name();
        let Some(id) = parse_file_name(&name.to_string_lossy()) else {
            continue;
        };
        if referenced.contains(&id) {
            continue;
        }
        if moved == 0 {
            fs::create_dir_all(aside)
                .map_err(|e| StoreError::io("create snapshot set-aside directory", aside, e))?;
        }
        let to = aside.join(&name);
        fs::rename(entry.path(), &to).map_err(|e| StoreError::io("set aside snapshot", &to, e))?;
        moved += 1;
    }
    if moved > 0 {
        crate::migrate::sync_dir(aside)?;
        crate::migrate::sync_dir(dir)?;
    }
    Ok(moved)
}

pub(crate) fn sweep(dir: &Path, referenced: &HashSet<u64>) -> Result<usize, StoreError> {
    let mut removed = 0;
    let mut present = HashSet::new();
    let entries = fs::read_dir(dir).map_err(|e| StoreError::io("read directory", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io("read directory", dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let id = parse_file_name(&name);
        if let Some(id) = id {
            present.insert(id);
        }
        let orphan = if name.starts_with('.') && name.ends_with(".tmp") {
            true
        } else {
            id.is_some_and(|id| !referenced.contains(&id))
        };
        if orphan {
            let path = entry.path();
            fs::remove_file(&path)
                .map_err(|e| StoreError::io("remove orphan snapshot", &path, e))?;
            tracing::info!(file = %path.display(), "removed unreferenced snapshot file");
            removed += 1;
        }
    }
    let missing = referenced.difference(&present).count();
    if missing > 0 {
        // Evidence files removed behind the store's back: say so loudly, keep the records.
        tracing::error!(missing, dir = %dir.display(), "snapshot files referenced by events are missing");
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_round_trip_and_sort_by_id() {
        assert_eq!(parse_file_name(&file_name(42)), Some(42));
        assert!(file_name(9) < file_name(10));
        assert_eq!(parse_file_name("notes.txt"), None);
    }

    #[test]
    fn atomic_write_then_sweep_keeps_only_referenced_files() {
        let dir = tempfile::tempdir().unwrap();
        let (tmp, sha) = write_temp(dir.path(), "a", b"\xFF\xD8one\xFF\xD9").unwrap();
        assert_eq!(sha.len(), 64);
        fs::rename(tmp, dir.path().join(file_name(1))).unwrap();
        let (tmp, _) = write_temp(dir.path(), "b", b"two").unwrap();
        fs::rename(tmp, dir.path().join(file_name(2))).unwrap();
        fs::write(dir.path().join(".00000000000000000003.jpg.tmp"), b"half").unwrap();
        fs::write(dir.path().join("README"), b"not ours").unwrap();
        let removed = sweep(dir.path(), &HashSet::from([1])).unwrap();
        assert_eq!(removed, 2);
        let mut left: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, vec![file_name(1), "README".to_owned()]);
    }

    #[test]
    fn enospc_and_edquot_count_as_disk_full() {
        assert!(is_disk_full(&std::io::Error::from_raw_os_error(28)));
        assert!(is_disk_full(&std::io::Error::from_raw_os_error(122)));
        assert!(!is_disk_full(&std::io::Error::from_raw_os_error(13)));
    }
}

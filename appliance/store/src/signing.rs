//! Backups signed by the box that took them.
//!
//! Each box keeps an Ed25519 key (`backup-signing.key` in the state directory,
//! PKCS#8, mode 0600, made on first use). [`crate::Store::backup`] signs
//! `MANIFEST.json` (which carries every file's SHA-256) into `MANIFEST.sig`;
//! restore checks the signature against the box's own key. A backup of another
//! box (another key, no signature, or a signature that no longer verifies
//! because something was changed after signing) is [`Provenance::Foreign`]:
//! restore takes it only when asked to explicitly, and the restored store's
//! audit log says so.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

use crate::error::StoreError;

/// The key file in the state directory.
pub const KEY_FILE: &str = "backup-signing.key";
/// The signature file inside a backup directory.
pub const SIGNATURE: &str = "MANIFEST.sig";

/// `MANIFEST.sig`: the signature of `MANIFEST.json`'s bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignatureFile {
    /// Always `ed25519`.
    alg: String,
    /// The signing box's public key, hex.
    public_key: String,
    /// The signature, hex.
    signature: String,
}

/// Who a backup comes from, as its signature says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provenance {
    /// Signed by this box's key and unchanged since.
    ThisBox,
    /// Not provably from this box: why.
    Foreign {
        /// Unsigned, signed by another key (its fingerprint), or altered after signing.
        reason: String,
    },
}

/// This box's backup signing key.
#[derive(Debug)]
pub struct BackupKey {
    pair: Ed25519KeyPair,
}

fn io(op: &'static str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::io(op, path, e)
}

fn bad_key(path: &Path, reason: &str) -> StoreError {
    StoreError::BadBackup {
        path: path.to_path_buf(),
        reason: format!("the backup signing key is unusable: {reason}"),
    }
}

impl BackupKey {
    /// Loads the key of the box whose state directory is `state_dir`, making it on
    /// first use.
    pub fn load_or_create(state_dir: &Path) -> Result<Self, StoreError> {
        let path = state_dir.join(KEY_FILE);
        match Self::load(state_dir)? {
            Some(k) => Ok(k),
            None => {
                let rng = SystemRandom::new();
                let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
                    .map_err(|_| bad_key(&path, "the random number generator failed"))?;
                let tmp = path.with_extension("key.tmp");
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&tmp)
                    .map_err(|e| io("create", &tmp, e))?;
                f.write_all(pkcs8.as_ref())
                    .and_then(|()| f.sync_all())
                    .map_err(|e| io("write", &tmp, e))?;
                fs::rename(&tmp, &path).map_err(|e| io("rename", &path, e))?;
                crate::migrate::sync_dir(state_dir)?;
                tracing::info!(path = %path.display(), "made the backup signing key");
                Self::load(state_dir)?.ok_or_else(|| bad_key(&path, "vanished after writing"))
            }
        }
    }

    /// Loads the key if the box has one.
    pub fn load(state_dir: &Path) -> Result<Option<Self>, StoreError> {
        let path = state_dir.join(KEY_FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("read", &path, e)),
        };
        let pair = Ed25519KeyPair::from_pkcs8(&bytes)
            .map_err(|_| bad_key(&path, "not an Ed25519 PKCS#8 key"))?;
        Ok(Some(Self { pair }))
    }

    /// The public key, hex.
    pub fn public_hex(&self) -> String {
        hex::encode(self.pair.public_key().as_ref())
    }

    /// Signs the manifest of the backup in `dir` into [`SIGNATURE`].
    pub fn sign(&self, dir: &Path) -> Result<(), StoreError> {
        let mpath = dir.join(crate::backup::MANIFEST);
        let manifest = fs::read(&mpath).map_err(|e| io("read manifest", &mpath, e))?;
        let sig = SignatureFile {
            alg: "ed25519".into(),
            public_key: self.public_hex(),
            signature: hex::encode(self.pair.sign(&manifest).as_ref()),
        };
        let bytes = serde_json::to_vec_pretty(&sig).map_err(|source| StoreError::Encode {
            table: "signature",
            source,
        })?;
        let spath = dir.join(SIGNATURE);
        fs::write(&spath, bytes).map_err(|e| io("write signature", &spath, e))?;
        fs::File::open(&spath)
            .and_then(|h| h.sync_all())
            .map_err(|e| io("fsync", &spath, e))
    }
}

/// A short fingerprint of a public key (hex), for messages.
fn fingerprint(public_hex: &str) -> String {
    public_hex.chars().take(16).collect()
}

/// Checks the signature of the backup in `dir` against `key` (this box's key,
/// `None` when the box has none yet: every backup is then foreign).
pub fn provenance(dir: &Path, key: Option<&BackupKey>) -> Result<Provenance, StoreError> {
    let spath = dir.join(SIGNATURE);
    let raw = match fs::read(&spath) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Provenance::Foreign {
                reason: "the backup is not signed".into(),
            });
        }
        Err(e) => return Err(io("read signature", &spath, e)),
    };
    let foreign = |reason: String| Ok(Provenance::Foreign { reason });
    let Ok(sig) = serde_json::from_slice::<SignatureFile>(&raw) else {
        return foreign(format!("{SIGNATURE} is not a signature file"));
    };
    if sig.alg != "ed25519" {
        return foreign(format!("unknown signature algorithm {:?}", sig.alg));
    }
    let Some(key) = key else {
        return foreign(format!(
            "this box has no backup key yet; the backup was signed by key {}",
            fingerprint(&sig.public_key)
        ));
    };
    if sig.public_key != key.public_hex() {
        return foreign(format!(
            "signed by another box (key {}, this box's is {})",
            fingerprint(&sig.public_key),
            fingerprint(&key.public_hex())
        ));
    }
    let mpath = dir.join(crate::backup::MANIFEST);
    let manifest = fs::read(&mpath).map_err(|e| io("read manifest", &mpath, e))?;
    let (Ok(public), Ok(signature)) = (hex::decode(&sig.public_key), hex::decode(&sig.signature))
    else {
        return foreign("the signature is not hex".into());
    };
    match UnparsedPublicKey::new(&ED25519, public).verify(&manifest, &signature) {
        Ok(()) => Ok(Provenance::ThisBox),
        Err(_) => foreign("the manifest was changed after it was signed".into()),
    }
}

/// The key file's path in `state_dir`.
pub fn key_path(state_dir: &Path) -> PathBuf {
    state_dir.join(KEY_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_is_this_boxs_only_with_its_key_and_unchanged() {
        let box_a = tempfile::tempdir().unwrap();
        let box_b = tempfile::tempdir().unwrap();
        let backup = tempfile::tempdir().unwrap();
        let manifest = backup.path().join(crate::backup::MANIFEST);
        fs::write(&manifest, br#"{"format":1}"#).unwrap();
        assert!(matches!(
            provenance(backup.path(), None).unwrap(),
            Provenance::Foreign { .. }
        ));
        let a = BackupKey::load_or_create(box_a.path()).unwrap();
        let mode = fs::metadata(key_path(box_a.path())).unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o600
        );
        // The same key on the next load.
        let again = BackupKey::load_or_create(box_a.path()).unwrap();
        assert_eq!(a.public_hex(), again.public_hex());
        a.sign(backup.path()).unwrap();
        assert_eq!(
            provenance(backup.path(), Some(&a)).unwrap(),
            Provenance::ThisBox
        );
        let b = BackupKey::load_or_create(box_b.path()).unwrap();
        let Provenance::Foreign { reason } = provenance(backup.path(), Some(&b)).unwrap() else {
            panic!("another box's key accepted the backup");
        };
        assert!(reason.contains("another box"), "{reason}");
        // One byte changed after signing.
        fs::write(&manifest, br#"{"format":2}"#).unwrap();
        let Provenance::Foreign { reason } = provenance(backup.path(), Some(&a)).unwrap() else {
            panic!("an altered manifest verified");
        };
        assert!(reason.contains("changed after"), "{reason}");
    }
}

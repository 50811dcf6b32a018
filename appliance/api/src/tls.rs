//! TLS: rustls with the ring provider, TLS 1.3 only unless 1.2 is enabled, and a
//! certificate that can be replaced while the server runs.
//!
//! On first boot a self-signed certificate for the box's names is generated (rcgen)
//! and kept with its key in `<state>/api/tls.pem` (mode 0600): one file, so the pair
//! is replaced by one write and one rename and can never be half old, half new. An
//! uploaded certificate is validated (parses, key matches, currently valid), written
//! the same way (uploads one at a time) and swapped in for new connections.
//!
//! The management plane degrades, the safety path does not: a certificate that
//! cannot be used at start (expired, not valid yet, key mismatch, unreadable) never
//! stops the daemon. The stored pair is moved aside (`tls.pem.rejected`), a fresh
//! self-signed certificate is served, and the reason is logged, audited
//! (`tls.fallback`) and shown by `GET /api/v1/system` (`certificate_problem`).
//! Firmware before this kept `tls.crt` and `tls.key`; they are read once and
//! rewritten as `tls.pem`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use safe_yolo_config::TlsMinVersion;
use serde::Serialize;
use sha2::Digest;

use crate::error::ApiError;

/// Why a certificate is not acceptable.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The PEM text holds no certificate or no key.
    #[error("{field}: {reason}")]
    Invalid {
        /// `cert` or `key`.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// Reading a certificate or key file failed.
    #[error("reading {} failed", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Writing the files failed.
    #[error("writing {} failed", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// What the system page shows about the certificate in use.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct CertInfo {
    /// Subject of the leaf certificate.
    pub subject: String,
    /// Issuer of the leaf certificate.
    pub issuer: String,
    /// Start of validity, Unix seconds.
    pub not_before: i64,
    /// End of validity, Unix seconds.
    pub not_after: i64,
    /// SHA-256 of the leaf certificate (DER), lowercase hex.
    pub sha256: String,
    /// Whether subject equals issuer.
    pub self_signed: bool,
}

/// The certificate in use; resolves every handshake to the current one.
#[derive(Debug)]
pub struct CertStore {
    current: RwLock<(Arc<CertifiedKey>, CertInfo)>,
    /// Key and certificate chain, PEM, one file.
    pair_path: PathBuf,
    /// Uploads one at a time.
    upload: parking_lot::Mutex<()>,
    /// Why the certificate found at start was not used, if it was not.
    fallback: Option<String>,
}

/// The file of the pair in the state directory.
const PAIR_FILE: &str = "tls.pem";
/// Where an unusable pair is moved aside.
const REJECTED_FILE: &str = "tls.pem.rejected";
/// The two files of firmware before `tls.pem`.
const LEGACY_FILES: [&str; 2] = ["tls.crt", "tls.key"];

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.current.read().0))
    }
}

/// Parses and checks a certificate chain and its key.
pub fn validate_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<(CertifiedKey, CertInfo), TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Invalid {
            field: "cert",
            reason: format!("not valid PEM: {e}"),
        })?;
    let Some(leaf) = chain.first() else {
        return Err(TlsError::Invalid {
            field: "cert",
            reason: "holds no CERTIFICATE block".into(),
        });
    };
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::Invalid {
        field: "key",
        reason: format!("no usable private key in PEM: {e}"),
    })?;
    let info = cert_info(leaf.as_ref())?;
    let now = i64::try_from(safe_yolo_store::now_ms() / 1000).unwrap_or(i64::MAX);
    if info.not_after <= now {
        return Err(TlsError::Invalid {
            field: "cert",
            reason: format!("expired (not after {})", info.not_after),
        });
    }
    if info.not_before > now {
        return Err(TlsError::Invalid {
            field: "cert",
            reason: format!("not valid yet (not before {})", info.not_before),
        });
    }
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::Invalid {
            field: "key",
            reason: format!("unsupported private key: {e}"),
        })?;
    let ck = CertifiedKey::new(chain, signing);
    ck.keys_match().map_err(|e| TlsError::Invalid {
        field: "key",
        reason: format!("does not match the certificate: {e}"),
    })?;
    Ok((ck, info))
}

fn cert_info(der: &[u8]) -> Result<CertInfo, TlsError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| TlsError::Invalid {
        field: "cert",
        reason: format!("not a valid X.509 certificate: {e}"),
    })?;
    let subject = cert.subject().to_string();
    let issuer = cert.issuer().to_string();
    Ok(CertInfo {
        self_signed: subject == issuer,
        subject,
        issuer,
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        sha256: hex::encode(sha2::Sha256::digest(der)),
    })
}

/// Writes `data` to `path` with mode 0600: temp file, fsync, rename.
pub(crate) fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Creates `dir` (mode 0700) if needed.
pub(crate) fn ensure_private_dir(dir: &Path) -> Result<(), ApiError> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| ApiError::Io {
            op: "create directory",
            path: dir.to_owned(),
            source,
        })
}

impl CertStore {
    /// Loads the configured certificate, else the pair in the state directory, else
    /// generates a self-signed one for `names` and stores it there (mode 0600). A
    /// certificate that cannot be used is replaced by a fresh self-signed one (see
    /// [`CertStore::fallback`]); only a state directory that cannot be written or a
    /// certificate that cannot be generated is an error.
    pub fn load_or_generate(
        api_dir: &Path,
        configured: Option<(&Path, &Path)>,
        names: &[String],
    ) -> Result<Self, ApiError> {
        ensure_private_dir(api_dir)?;
        let pair_path = api_dir.join(PAIR_FILE);
        let legacy = LEGACY_FILES.map(|f| api_dir.join(f));
        let found = if let Some((c, k)) = configured {
            let r = read_pair(c, k).and_then(|(c, k)| validate_pem(&c, &k));
            Some((r, "configured"))
        } else if pair_path.exists() {
            let r = std::fs::read(&pair_path)
                .map_err(|source| TlsError::Read {
                    path: pair_path.clone(),
                    source,
                })
                .and_then(|pem| validate_pem(&pem, &pem));
            Some((r, "stored"))
        } else if legacy.iter().all(|p| p.exists()) {
            let r = read_pair(&legacy[0], &legacy[1]).and_then(|(c, k)| {
                let (ck, info) = validate_pem(&c, &k)?;
                write_pair(&pair_path, &c, &k)?;
                Ok((ck, info))
            });
            Some((r, "stored (tls.crt, tls.key)"))
        } else {
            None
        };
        let mut fallback = None;
        let (ck, info) = match found {
            Some((Ok(pair), _)) => {
                if configured.is_none() {
                    remove_legacy(&legacy);
                }
                pair
            }
            Some((Err(e), which)) => {
                let reason = format!("the {which} certificate cannot be used: {e}");
                tracing::error!(%reason, "serving a fresh self-signed certificate instead; the alarms are not affected");
                if configured.is_none() {
                    set_aside(&pair_path, &legacy, &api_dir.join(REJECTED_FILE));
                }
                fallback = Some(reason);
                generate(&pair_path, names)?
            }
            None => generate(&pair_path, names)?,
        };
        Ok(Self {
            current: RwLock::new((Arc::new(ck), info)),
            pair_path,
            upload: parking_lot::Mutex::new(()),
            fallback,
        })
    }

    /// Why the certificate found at start was not used (a fresh self-signed one is
    /// served instead), if it was not.
    pub fn fallback(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    /// The certificate in use.
    pub fn info(&self) -> CertInfo {
        self.current.read().1.clone()
    }

    /// Validates, stores (0600, key and chain in one file: one write, one rename)
    /// and activates a new certificate; new connections use it. Uploads run one at
    /// a time, so the stored pair and the served one are always the same.
    pub fn replace(&self, cert_pem: &[u8], key_pem: &[u8]) -> Result<CertInfo, TlsError> {
        let (ck, info) = validate_pem(cert_pem, key_pem)?;
        let _one_at_a_time = self.upload.lock();
        write_pair(&self.pair_path, cert_pem, key_pem)?;
        *self.current.write() = (Arc::new(ck), info.clone());
        Ok(info)
    }
}

fn read_pair(cert: &Path, key: &Path) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| TlsError::Read {
            path: p.to_owned(),
            source,
        })
    };
    Ok((read(cert)?, read(key)?))
}

/// Writes key and certificate chain as one private file.
fn write_pair(path: &Path, cert_pem: &[u8], key_pem: &[u8]) -> Result<(), TlsError> {
    let mut pem = key_pem.to_vec();
    if !pem.ends_with(b"\n") {
        pem.push(b'\n');
    }
    pem.extend_from_slice(cert_pem);
    write_private(path, &pem).map_err(|source| TlsError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Generates, stores and validates a self-signed pair.
fn generate(pair_path: &Path, names: &[String]) -> Result<(CertifiedKey, CertInfo), ApiError> {
    let (cert, key) = self_signed(names)?;
    write_pair(pair_path, &cert, &key).map_err(|e| ApiError::Tls {
        reason: e.to_string(),
    })?;
    tracing::info!(names = ?names, path = %pair_path.display(), "generated a self-signed TLS certificate");
    validate_pem(&cert, &key).map_err(|e| ApiError::Tls {
        reason: e.to_string(),
    })
}

/// Moves an unusable stored pair aside (the older firmware's two files are
/// concatenated into the same place), keeping one rejected copy for inspection.
fn set_aside(pair: &Path, legacy: &[PathBuf; 2], rejected: &Path) {
    let moved = if pair.exists() {
        std::fs::rename(pair, rejected)
    } else {
        let joined: Vec<u8> = legacy
            .iter()
            .flat_map(|p| std::fs::read(p).unwrap_or_default())
            .collect();
        write_private(rejected, &joined)
    };
    if let Err(e) = moved {
        tracing::warn!(path = %rejected.display(), error = %e, "cannot keep the rejected certificate");
    }
    remove_legacy(legacy);
}

fn remove_legacy(legacy: &[PathBuf; 2]) {
    for p in legacy {
        if p.exists()
            && let Err(e) = std::fs::remove_file(p)
        {
            tracing::warn!(path = %p.display(), error = %e, "cannot remove an old certificate file");
        }
    }
}

/// The rustls server configuration: ring provider, TLS 1.3 (plus 1.2 only on request),
/// HTTP/1.1 over ALPN, certificate from `certs`.
pub fn server_config(
    min: TlsMinVersion,
    certs: Arc<CertStore>,
) -> Result<Arc<rustls::ServerConfig>, ApiError> {
    let versions: &[&'static rustls::SupportedProtocolVersion] = match min {
        TlsMinVersion::Tls13 => &[&rustls::version::TLS13],
        TlsMinVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .map_err(|e| ApiError::Tls {
        reason: format!("protocol versions: {e}"),
    })?
    .with_no_client_auth()
    .with_cert_resolver(certs);
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// A self-signed certificate for `names` whose subject is the first name
/// that is not a loopback one (the box's host name when it has one), as
/// (certificate PEM, key PEM).
fn self_signed(names: &[String]) -> Result<(Vec<u8>, Vec<u8>), ApiError> {
    let bad = |e: rcgen::Error| ApiError::Tls {
        reason: format!("cannot generate a self-signed certificate: {e}"),
    };
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(bad)?;
    let subject = names
        .iter()
        .find(|n| !matches!(n.as_str(), "localhost" | "127.0.0.1" | "::1"))
        .map_or("safe-yolo", String::as_str);
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, subject);
    dn.push(rcgen::DnType::OrganizationName, "SAFE-YOLO appliance");
    params.distinguished_name = dn;
    let key = rcgen::KeyPair::generate().map_err(bad)?;
    let cert = params.self_signed(&key).map_err(bad)?;
    Ok((cert.pem().into_bytes(), key.serialize_pem().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_subject_is_the_box_name() {
        use rustls::pki_types::pem::PemObject;
        let der = |names: &[&str]| {
            let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
            let (pem, _) = self_signed(&names).unwrap();
            rustls::pki_types::CertificateDer::from_pem_slice(&pem)
                .unwrap()
                .to_vec()
        };
        let has = |der: &[u8], s: &str| der.windows(s.len()).any(|w| w == s.as_bytes());
        let named = der(&["localhost", "127.0.0.1", "press-box-7"]);
        assert!(has(&named, "press-box-7"));
        assert!(!has(&named, "rcgen self signed cert"));
        let nameless = der(&["localhost", "127.0.0.1"]);
        assert!(has(&nameless, "safe-yolo"));
    }

    #[test]
    fn generates_private_files_and_rejects_mismatched_keys() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let api = dir.path().join("api");
        let store = CertStore::load_or_generate(&api, None, &["localhost".into()]).unwrap();
        let mode = std::fs::metadata(api.join(PAIR_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(store.info().self_signed);
        assert_eq!(store.fallback(), None);
        let other = rcgen::generate_simple_self_signed(vec!["x".to_string()]).unwrap();
        let cert = std::fs::read(api.join(PAIR_FILE)).unwrap();
        let err = store
            .replace(&cert, other.key_pair.serialize_pem().as_bytes())
            .unwrap_err();
        assert!(err.to_string().starts_with("key:"), "{err}");
        let info = store
            .replace(
                other.cert.pem().as_bytes(),
                other.key_pair.serialize_pem().as_bytes(),
            )
            .unwrap();
        assert_eq!(store.info(), info);
        assert!(validate_pem(b"junk", b"junk").is_err());
    }

    #[test]
    fn rejects_an_expired_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["old".to_string()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let err = validate_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes()).unwrap_err();
        assert!(err.to_string().contains("expired"), "{err}");
    }

    fn pair(not_before: (i32, u8, u8), not_after: (i32, u8, u8)) -> (String, String) {
        let mut params = rcgen::CertificateParams::new(vec!["box".to_string()]).unwrap();
        params.not_before = rcgen::date_time_ymd(not_before.0, not_before.1, not_before.2);
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn an_unusable_stored_certificate_is_set_aside_and_a_fresh_one_served() {
        let names = ["press-box".to_string()];
        let (good_cert, good_key) = pair((2020, 1, 1), (2090, 1, 1));
        let (_, other_key) = pair((2020, 1, 1), (2090, 1, 1));
        let (old_cert, old_key) = pair((2000, 1, 1), (2001, 1, 1));
        let (future_cert, future_key) = pair((2080, 1, 1), (2090, 1, 1));
        let cases: [(&str, Vec<u8>, &str); 4] = [
            (
                "expired",
                format!("{old_key}{old_cert}").into_bytes(),
                "expired",
            ),
            (
                "not yet valid",
                format!("{future_key}{future_cert}").into_bytes(),
                "not valid yet",
            ),
            (
                "mismatched",
                format!("{other_key}{good_cert}").into_bytes(),
                "does not match",
            ),
            ("garbage", b"not a certificate".to_vec(), "cert:"),
        ];
        for (what, planted, needle) in cases {
            let dir = tempfile::tempdir().unwrap();
            let api = dir.path().join("api");
            ensure_private_dir(&api).unwrap();
            write_private(&api.join(PAIR_FILE), &planted).unwrap();
            let store = CertStore::load_or_generate(&api, None, &names).unwrap();
            let why = store.fallback().unwrap_or_default();
            assert!(why.contains(needle), "{what}: {why}");
            assert!(
                store.info().self_signed && store.info().subject.contains("press-box"),
                "{what}"
            );
            assert_eq!(
                std::fs::read(api.join(REJECTED_FILE)).unwrap(),
                planted,
                "{what}"
            );
            // The fresh pair is stored: the next start serves it without a fallback.
            let again = CertStore::load_or_generate(&api, None, &names).unwrap();
            assert_eq!(again.fallback(), None, "{what}");
            assert_eq!(again.info(), store.info(), "{what}");
        }
        // A good stored pair is served as is.
        let dir = tempfile::tempdir().unwrap();
        let api = dir.path().join("api");
        ensure_private_dir(&api).unwrap();
        write_pair(
            &api.join(PAIR_FILE),
            good_cert.as_bytes(),
            good_key.as_bytes(),
        )
        .unwrap();
        let store = CertStore::load_or_generate(&api, None, &names).unwrap();
        assert_eq!(store.fallback(), None);
        assert_eq!(store.info().not_before, 1_577_836_800);
    }

    #[test]
    fn the_two_files_of_older_firmware_become_one() {
        let dir = tempfile::tempdir().unwrap();
        let api = dir.path().join("api");
        ensure_private_dir(&api).unwrap();
        let (cert, key) = pair((2020, 1, 1), (2090, 1, 1));
        write_private(&api.join("tls.crt"), cert.as_bytes()).unwrap();
        write_private(&api.join("tls.key"), key.as_bytes()).unwrap();
        let store = CertStore::load_or_generate(&api, None, &["b".into()]).unwrap();
        assert_eq!(store.fallback(), None);
        assert!(api.join(PAIR_FILE).exists());
        assert!(!api.join("tls.crt").exists() && !api.join("tls.key").exists());
        let again = CertStore::load_or_generate(&api, None, &["b".into()]).unwrap();
        assert_eq!(again.info(), store.info());
    }
}

//! TLS: rustls with the ring provider, TLS 1.3 only unless 1.2 is enabled, and a
//! certificate that can be replaced while the server runs.
//!
//! On first boot a self-signed certificate for the box's names is generated (rcgen)
//! and kept in `<state>/api/tls.crt` and `tls.key` with mode 0600. An uploaded
//! certificate is validated (parses, key matches, currently valid), written the same
//! way and swapped in for new connections.

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
    cert_path: PathBuf,
    key_path: PathBuf,
}

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
    /// Loads the configured certificate, else the one in the state directory, else
    /// generates a self-signed one for `names` and stores it there (mode 0600).
    pub fn load_or_generate(
        api_dir: &Path,
        configured: Option<(&Path, &Path)>,
        names: &[String],
    ) -> Result<Self, ApiError> {
        ensure_private_dir(api_dir)?;
        let cert_path = api_dir.join("tls.crt");
        let key_path = api_dir.join("tls.key");
        let read = |p: &Path| {
            std::fs::read(p).map_err(|source| ApiError::Io {
                op: "read",
                path: p.to_owned(),
                source,
            })
        };
        let (cert_pem, key_pem) = if let Some((c, k)) = configured {
            (read(c)?, read(k)?)
        } else if cert_path.exists() && key_path.exists() {
            (read(&cert_path)?, read(&key_path)?)
        } else {
            let (cert, key) = self_signed(names)?;
            for (path, data) in [(&key_path, &key), (&cert_path, &cert)] {
                write_private(path, data).map_err(|source| ApiError::Io {
                    op: "write",
                    path: path.clone(),
                    source,
                })?;
            }
            tracing::info!(names = ?names, path = %cert_path.display(), "generated a self-signed TLS certificate");
            (cert, key)
        };
        let (ck, info) = validate_pem(&cert_pem, &key_pem).map_err(|e| ApiError::Tls {
            reason: e.to_string(),
        })?;
        Ok(Self {
            current: RwLock::new((Arc::new(ck), info)),
            cert_path,
            key_path,
        })
    }

    /// The certificate in use.
    pub fn info(&self) -> CertInfo {
        self.current.read().1.clone()
    }

    /// Validates, stores (0600) and activates a new certificate; new connections use it.
    pub fn replace(&self, cert_pem: &[u8], key_pem: &[u8]) -> Result<CertInfo, TlsError> {
        let (ck, info) = validate_pem(cert_pem, key_pem)?;
        for (path, data) in [(&self.key_path, key_pem), (&self.cert_path, cert_pem)] {
            write_private(path, data).map_err(|source| TlsError::Io {
                path: path.clone(),
                source,
            })?;
        }
        *self.current.write() = (Arc::new(ck), info.clone());
        Ok(info)
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
        for f in ["tls.crt", "tls.key"] {
            let mode = std::fs::metadata(api.join(f)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
        assert!(store.info().self_signed);
        let other = rcgen::generate_simple_self_signed(vec!["x".to_string()]).unwrap();
        let cert = std::fs::read(api.join("tls.crt")).unwrap();
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
}

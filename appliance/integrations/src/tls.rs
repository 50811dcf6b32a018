//! The TLS trust every sink uses: a CA file of the plant (PEM), else the system's roots,
//! with rustls on ring.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// Why the TLS settings could not be made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{what} {path}: {reason}")]
    Pem {
        /// Which file.
        what: &'static str,
        /// Its path.
        path: String,
        /// Why.
        reason: String,
    },
    /// rustls refused the settings.
    #[error("TLS settings refused")]
    Rustls(#[from] rustls::Error),
}

impl TlsError {
    /// A PEM problem of `what` at `path`.
    pub(crate) fn pem(what: &'static str, path: &Path, reason: impl ToString) -> Self {
        Self::Pem {
            what,
            path: path.display().to_string(),
            reason: reason.to_string(),
        }
    }
}

/// The crypto provider of every client.
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificates a server must chain to: every one in `ca_file`, else the system's.
pub(crate) fn roots(ca_file: Option<&Path>) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in CertificateDer::pem_file_iter(path)
                .map_err(|e| TlsError::pem("CA file", path, e))?
            {
                let cert = cert.map_err(|e| TlsError::pem("CA file", path, e))?;
                roots
                    .add(cert)
                    .map_err(|e| TlsError::pem("CA file", path, e))?;
            }
            if roots.is_empty() {
                return Err(TlsError::pem("CA file", path, "holds no certificate"));
            }
        }
        None => {
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        }
    }
    Ok(roots)
}

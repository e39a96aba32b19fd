//! HTTPS: [`Certificates`], a certificate chain and key read from PEM files
//! that [`serve_tls`](crate::serve_tls) presents, and that can be read again
//! while the server runs (the binary does on SIGHUP).
//!
//! rustls with the ring provider. The server offers HTTP/2 and HTTP/1.1 by
//! ALPN: over HTTP/1.1 a browser opens at most six connections to an
//! origin, so six tabs with an event stream each would leave a page no
//! connection for its requests; over HTTP/2 they all share one.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The ALPN names the server offers, in its order of preference.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Why certificates could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read or holds nothing of the kind expected.
    #[error("cannot read {what} from {}", path.display())]
    Pem {
        /// `certificates` or `a private key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// The key does not fit the certificate, or rustls refused either.
    #[error("the key in {} does not go with the certificate in {}", key.display(), cert.display())]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// Why.
        #[source]
        source: rustls::Error,
    },
}

/// A certificate chain and its private key, read from PEM files, and
/// presented to every TLS client; [`Certificates::reload`] reads the files
/// again, and connections from then on get the new ones.
#[derive(Debug)]
pub struct Certificates {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl Certificates {
    /// Reads the chain from `cert` (PEM, the server's certificate first,
    /// then any intermediates) and its key from `key` (PEM: PKCS#8, PKCS#1
    /// or SEC1).
    ///
    /// # Errors
    ///
    /// [`TlsError`] when a file cannot be read, holds no certificate or key,
    /// or the key does not go with the certificate.
    pub fn load(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Result<Arc<Self>, TlsError> {
        let (cert, key) = (cert.into(), key.into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let current = read(&cert, &key, &provider)?;
        Ok(Arc::new(Self {
            cert,
            key,
            provider,
            current: RwLock::new(Arc::new(current)),
        }))
    }

    /// Reads the files again; new connections get what they hold now, open
    /// ones keep what they were given.
    ///
    /// # Errors
    ///
    /// As [`Certificates::load`]; the certificates in use then stay.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = read(&self.cert, &self.key, &self.provider)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(fresh);
        Ok(())
    }

    /// The rustls server settings: these certificates, TLS 1.2 and 1.3,
    /// no client certificates, and ALPN with `h2` before `http/1.1`.
    ///
    /// # Panics
    ///
    /// Never in practice: only if ring's provider supported no safe TLS
    /// version.
    pub fn server_config(self: &Arc<Self>) -> Arc<rustls::ServerConfig> {
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()
            .expect("ring supports TLS 1.2 and 1.3")
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(PoisonError::into_inner),
        ))
    }
}

fn read(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| pem_error("certificates", cert, e))?;
    if chain.is_empty() {
        let none = rustls::pki_types::pem::Error::NoItemsFound;
        return Err(pem_error("certificates", cert, none));
    }
    let private =
        PrivateKeyDer::from_pem_file(key).map_err(|e| pem_error("a private key", key, e))?;
    CertifiedKey::from_der(chain, private, provider).map_err(|source| TlsError::Mismatch {
        cert: cert.to_owned(),
        key: key.to_owned(),
        source,
    })
}

fn pem_error(what: &'static str, path: &Path, source: rustls::pki_types::pem::Error) -> TlsError {
    TlsError::Pem {
        what,
        path: path.to_owned(),
        source,
    }
}

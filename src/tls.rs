//! TLS material: certificates and keys read from PEM files into rustls configurations that can
//! be swapped while connections are being made (SIGHUP, `POST /v1/reload`). A file that does
//! not load is refused whole and the configuration in service stays.
//!
//! Used by the SIP listener (toward dialers), the upstream client (toward the carrier) and the
//! admin API. Only the `ring` provider is compiled in, so no C toolchain beyond `cc` is needed.

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {what}")]
    File { path: String, what: String },
    #[error("{0}")]
    Setup(String),
}

fn file_error(path: &Path, what: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        what: what.to_string(),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A PEM certificate chain, leaf first; it must hold at least one certificate.
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(file_error(path, "no PEM certificate in the file"));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| file_error(path, format!("private key: {e}")))
}

fn read_roots(path: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in read_certs(path)? {
        roots
            .add(c)
            .map_err(|e| file_error(path, format!("CA certificate: {e}")))?;
    }
    Ok(Arc::new(roots))
}

/// The leaf certificate's end of validity (Unix seconds), for the expiry gauge.
fn not_after(path: &Path, leaf: &CertificateDer) -> Result<i64, TlsError> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(leaf).map_err(|e| file_error(path, e.to_string()))?;
    Ok(cert.validity().not_after.timestamp())
}

/// The identities a certificate speaks for: its DNS subject alternative names and its subject
/// common name, lower-cased. Used to recognise dialers by client certificate and to say who
/// made an admin change.
pub(crate) fn cert_names(der: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return vec![];
    };
    let mut names: Vec<String> = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(d) = n {
                names.push(d.to_ascii_lowercase());
            }
        }
    }
    for cn in cert.subject().iter_common_name() {
        if let Ok(s) = cn.as_str() {
            let s = s.to_ascii_lowercase();
            if !names.contains(&s) {
                names.push(s);
            }
        }
    }
    names
}

/// What a TLS server presents and whom it asks for a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Client certificates are asked for and verified against these CAs.
    pub client_ca: Option<PathBuf>,
    /// Without a valid client certificate the handshake fails.
    pub require_client_cert: bool,
}

/// What a TLS client trusts and, optionally, the certificate it presents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientFiles {
    pub ca: PathBuf,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

fn load_server(f: &ServerFiles) -> Result<(Arc<ServerConfig>, i64), TlsError> {
    let certs = read_certs(&f.cert)?;
    let expires = not_after(&f.cert, &certs[0])?;
    let key = read_key(&f.key)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?;
    let builder = match &f.client_ca {
        Some(ca) => {
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                read_roots(ca)?,
                provider(),
            );
            let v = if f.require_client_cert {
                v
            } else {
                v.allow_unauthenticated()
            };
            builder.with_client_cert_verifier(v.build().map_err(|e| file_error(ca, e))?)
        }
        None => builder.with_no_client_auth(),
    };
    let cfg = builder
        .with_single_cert(certs, key)
        .map_err(|e| file_error(&f.key, format!("does not match {}: {e}", f.cert.display())))?;
    Ok((Arc::new(cfg), expires))
}

fn load_client(f: &ClientFiles) -> Result<(Arc<ClientConfig>, i64), TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .with_root_certificates(read_roots(&f.ca)?);
    let (cfg, expires) = match (&f.cert, &f.key) {
        (Some(cert), Some(key)) => {
            let certs = read_certs(cert)?;
            let expires = not_after(cert, &certs[0])?;
            let cfg = builder
                .with_client_auth_cert(certs, read_key(key)?)
                .map_err(|e| file_error(key, format!("does not match {}: {e}", cert.display())))?;
            (cfg, expires)
        }
        _ => (builder.with_no_client_auth(), 0),
    };
    Ok((Arc::new(cfg), expires))
}

/// Reads a configuration from its files: the configuration and the presented certificate's
/// expiry (Unix seconds, 0 when none is presented).
type Loader<F, C> = fn(&F) -> Result<(Arc<C>, i64), TlsError>;

/// A configuration read from files, swappable in place.
pub struct Reloadable<F, C> {
    files: F,
    current: ArcSwap<C>,
    /// Unix seconds when the certificate we present expires (0: none presented).
    expires: AtomicI64,
    load: Loader<F, C>,
}

pub(crate) type ServerTls = Reloadable<ServerFiles, ServerConfig>;
pub(crate) type ClientTls = Reloadable<ClientFiles, ClientConfig>;

impl ServerTls {
    pub fn load(files: ServerFiles) -> Result<Arc<ServerTls>, TlsError> {
        Reloadable::open(files, load_server)
    }
}

impl ClientTls {
    pub fn load(files: ClientFiles) -> Result<Arc<ClientTls>, TlsError> {
        Reloadable::open(files, load_client)
    }
}

impl<F, C> Reloadable<F, C> {
    fn open(files: F, load: Loader<F, C>) -> Result<Arc<Self>, TlsError> {
        let (cfg, expires) = load(&files)?;
        Ok(Arc::new(Reloadable {
            files,
            current: ArcSwap::new(cfg),
            expires: AtomicI64::new(expires),
            load,
        }))
    }

    /// The configuration for the next connection (existing connections keep theirs).
    pub(crate) fn current(&self) -> Arc<C> {
        self.current.load_full()
    }
}

/// Every TLS configuration of a running callgate, by role (the `role` label of the metrics).
#[derive(Default)]
pub struct TlsSet {
    pub sip: Option<Arc<ServerTls>>,
    pub upstream: Option<Arc<ClientTls>>,
    pub admin: Option<Arc<ServerTls>>,
}

impl TlsSet {
    pub(crate) fn roles(&self) -> Vec<(&'static str, &dyn ReloadTls)> {
        let mut v: Vec<(&'static str, &dyn ReloadTls)> = Vec::new();
        if let Some(t) = &self.sip {
            v.push(("sip", &**t));
        }
        if let Some(t) = &self.upstream {
            v.push(("upstream", &**t));
        }
        if let Some(t) = &self.admin {
            v.push(("admin", &**t));
        }
        v
    }
}

/// What the reload path needs of a TLS configuration, whatever its side.
pub(crate) trait ReloadTls {
    /// Re-read the files; on any error the configuration in service stays.
    fn reload(&self) -> Result<(), TlsError>;
    /// Unix seconds when the certificate we present expires (0: none presented).
    fn expires(&self) -> i64;
}

impl<F, C> ReloadTls for Reloadable<F, C> {
    fn reload(&self) -> Result<(), TlsError> {
        let (cfg, expires) = (self.load)(&self.files)?;
        self.current.store(cfg);
        self.expires.store(expires, Ordering::Relaxed);
        Ok(())
    }
    fn expires(&self) -> i64 {
        self.expires.load(Ordering::Relaxed)
    }
}

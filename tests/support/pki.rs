//! A throw-away certificate authority for the TLS tests: a CA and leaf certificates made at
//! run time (rcgen's default validity, 1975-4096, so nothing here expires with the calendar),
//! written as PEM files, plus blocking rustls clients and servers that speak SIP over them.
#![allow(dead_code)]

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub struct Pki {
    issuer: Issuer<'static, KeyPair>,
    pub ca_pem: String,
}

/// A leaf certificate and its key, as PEM files.
#[derive(Clone)]
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Pki {
    pub fn new(name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Pki {
            ca_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// Write the CA certificate to `dir/<file>`.
    pub fn write_ca(&self, dir: &Path, file: &str) -> PathBuf {
        let p = dir.join(file);
        std::fs::write(&p, &self.ca_pem).unwrap();
        p
    }

    /// A leaf for `names` (DNS names or IP addresses; the first is also the subject CN),
    /// written to `dir/<stem>.crt` and `dir/<stem>.key`.
    pub fn leaf(&self, dir: &Path, stem: &str, names: &[&str]) -> Leaf {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let leaf = Leaf {
            cert: dir.join(format!("{stem}.crt")),
            key: dir.join(format!("{stem}.key")),
        };
        std::fs::write(&leaf.cert, cert.pem()).unwrap();
        std::fs::write(&leaf.key, key.serialize_pem()).unwrap();
        leaf
    }

    fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(self.ca_pem.as_bytes()).unwrap())
            .unwrap();
        roots
    }

    /// A client that trusts this CA and presents `cert` if given.
    pub fn client_config(&self, cert: Option<&Leaf>) -> Arc<rustls::ClientConfig> {
        let b = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(self.roots());
        Arc::new(match cert {
            Some(l) => b
                .with_client_auth_cert(certs(&l.cert), key(&l.key))
                .unwrap(),
            None => b.with_no_client_auth(),
        })
    }

    /// A server presenting `leaf`, no client certificates asked.
    pub fn server_config(&self, leaf: &Leaf) -> Arc<rustls::ServerConfig> {
        self.server_config_with(leaf, false)
    }

    /// A server presenting `leaf` that requires a client certificate from this CA.
    pub fn server_config_requiring_clients(&self, leaf: &Leaf) -> Arc<rustls::ServerConfig> {
        self.server_config_with(leaf, true)
    }

    fn server_config_with(&self, leaf: &Leaf, clients: bool) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let b = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let b = if clients {
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(self.roots()),
                provider,
            )
            .build()
            .unwrap();
            b.with_client_cert_verifier(v)
        } else {
            b.with_no_client_auth()
        };
        Arc::new(
            b.with_single_cert(certs(&leaf.cert), key(&leaf.key))
                .unwrap(),
        )
    }
}

fn certs(p: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(p)
        .unwrap()
        .map(|c| c.unwrap())
        .collect()
}

fn key(p: &Path) -> PrivateKeyDer<'static> {
    PrivateKeyDer::from_pem_file(p).unwrap()
}

pub type TlsClient = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;
pub type TlsServer = rustls::StreamOwned<rustls::ServerConnection, TcpStream>;

/// Connect and finish the handshake (an error names what the server refused).
pub fn connect(
    addr: SocketAddr,
    server_name: &str,
    cfg: Arc<rustls::ClientConfig>,
) -> std::io::Result<TlsClient> {
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(3)))?;
    let name = ServerName::try_from(server_name.to_string()).unwrap();
    let conn = rustls::ClientConnection::new(cfg, name).map_err(std::io::Error::other)?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    // TLS 1.3: a refused client certificate is only reported after the handshake; a
    // zero-byte write and a short read bring the alert in.
    s.flush()?;
    Ok(s)
}

/// The subject CN of the certificate the server presented.
pub fn server_cert_cn(s: &TlsClient) -> String {
    let der = &s.conn.peer_certificates().unwrap()[0];
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();
    cn
}

/// The names on the client certificate a server connection was shown.
pub fn client_cert_cn(s: &TlsServer) -> Option<String> {
    let der = s.conn.peer_certificates()?.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?;
    Some(cn.to_string())
}

/// Accept one TLS connection on `l`.
pub fn accept(l: &TcpListener, cfg: Arc<rustls::ServerConfig>) -> TlsServer {
    let (tcp, _) = l.accept().unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let conn = rustls::ServerConnection::new(cfg).unwrap();
    rustls::StreamOwned::new(conn, tcp)
}

/// Read one SIP message off a stream (headers, then Content-Length bytes of body).
pub fn read_sip(s: &mut impl Read) -> std::io::Result<String> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let len = head
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            (n.trim().eq_ignore_ascii_case("content-length") || n.trim() == "l")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body)?;
    Ok(head + &String::from_utf8_lossy(&body))
}

/// Read messages until a final response (status >= 200) or a request arrives.
pub fn read_final(s: &mut impl Read) -> std::io::Result<String> {
    loop {
        let m = read_sip(s)?;
        if !m.starts_with("SIP/2.0 1") {
            return Ok(m);
        }
    }
}

pub fn send(s: &mut impl Write, msg: &str) {
    s.write_all(msg.as_bytes()).unwrap();
    s.flush().unwrap();
}

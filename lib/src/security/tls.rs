//! TLS settings (rustls with ring): the server side of SSL and SASL_SSL
//! listeners, with optional client certificates (Kafka's ssl.client.auth),
//! the client side nodes use towards each other, and a certificate's
//! distinguished name as Java prints it (RFC 2253), for
//! ssl.principal.mapping.rules.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;
use serde::{Deserialize, Serialize};

/// Kafka's ssl.client.auth.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    #[default]
    None,
    /// A client may present a certificate (then it must be valid).
    Requested,
    /// A client must present a valid certificate.
    Required,
}

impl std::str::FromStr for ClientAuth {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(ClientAuth::None),
            "requested" => Ok(ClientAuth::Requested),
            "required" => Ok(ClientAuth::Required),
            other => Err(format!("ssl_client_auth {other:?}: expected none, requested or required")),
        }
    }
}

/// PEM files of one TLS identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CAs that sign clients' certificates (and peers', between nodes).
    pub ca: Option<PathBuf>,
    pub client_auth: ClientAuth,
}

/// ring: pure Rust and C with no cmake step (aws-lc-rs would add minutes
/// to a fresh build); rustls marks it deprecated only for lacking
/// post-quantum key exchange.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut BufReader::new(f)).collect::<Result<_, _>>().map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate", path.display()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    rustls_pemfile::private_key(&mut BufReader::new(f))
        .map_err(|e| format!("{}: {e}", path.display()))?
        .ok_or_else(|| format!("{}: no PEM private key", path.display()))
}

fn roots(path: &Path) -> Result<Arc<RootCertStore>, String> {
    let mut roots = RootCertStore::empty();
    for c in read_certs(path)? {
        roots.add(c).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(Arc::new(roots))
}

impl TlsFiles {
    /// The server side: our certificate; clients' checked against `ca` as
    /// `client_auth` says.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, String> {
        let builder = rustls::ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions().map_err(|e| e.to_string())?;
        let builder = match (self.client_auth, &self.ca) {
            (ClientAuth::None, _) => builder.with_no_client_auth(),
            (auth, Some(ca)) => {
                let v = WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider());
                let v = if auth == ClientAuth::Requested { v.allow_unauthenticated() } else { v };
                builder.with_client_cert_verifier(v.build().map_err(|e| e.to_string())?)
            }
            (_, None) => return Err("ssl_client_auth requested or required needs ssl_ca_file (the CAs that sign client certificates)".into()),
        };
        let config = builder.with_single_cert(read_certs(&self.cert)?, read_key(&self.key)?).map_err(|e| format!("{}: {e}", self.cert.display()))?;
        Ok(Arc::new(config))
    }

    /// The client side, for one node calling another: trusts `ca` (needed)
    /// and presents our own certificate.
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, String> {
        let ca = self.ca.as_ref().ok_or("TLS between nodes needs ssl_ca_file")?;
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots(ca)?)
            .with_client_auth_cert(read_certs(&self.cert)?, read_key(&self.key)?)
            .map_err(|e| e.to_string())?;
        Ok(Arc::new(config))
    }

    /// The PEM files' bytes (for HTTP clients that take PEM).
    pub fn identity_pem(&self) -> Result<Vec<u8>, String> {
        let mut pem = std::fs::read(&self.cert).map_err(|e| format!("{}: {e}", self.cert.display()))?;
        pem.extend(std::fs::read(&self.key).map_err(|e| format!("{}: {e}", self.key.display()))?);
        Ok(pem)
    }
}

/// A certificate's subject as Java's X500Principal.getName() prints it
/// (RFC 2253: most specific first, "CN=a,OU=b,O=c").
pub fn subject_dn(cert: &[u8]) -> Result<String, String> {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(cert).map_err(|e| format!("client certificate: {e}"))?;
    let rdns: Vec<_> = cert.subject().iter().collect();
    let mut parts = vec![];
    for rdn in rdns.iter().rev() {
        let attrs: Vec<String> = rdn
            .iter()
            .map(|a| {
                let oid = a.attr_type();
                let name = match oid.to_id_string().as_str() {
                    "2.5.4.3" => "CN".to_string(),
                    "2.5.4.6" => "C".into(),
                    "2.5.4.7" => "L".into(),
                    "2.5.4.8" => "ST".into(),
                    "2.5.4.10" => "O".into(),
                    "2.5.4.11" => "OU".into(),
                    "2.5.4.9" => "STREET".into(),
                    "0.9.2342.19200300.100.1.25" => "DC".into(),
                    "0.9.2342.19200300.100.1.1" => "UID".into(),
                    other => other.to_string(),
                };
                let value = a.as_str().map(escape_dn_value).unwrap_or_default();
                format!("{name}={value}")
            })
            .collect();
        parts.push(attrs.join("+"));
    }
    Ok(parts.join(","))
}

fn escape_dn_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for (i, c) in v.chars().enumerate() {
        if matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';') || (i == 0 && (c == '#' || c == ' ')) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

//! TLS for the API: the server's rustls configuration from `[http.tls]`, and the client's (the
//! CLI, the tests) trusting one CA file. Always rustls with the ring provider, given explicitly:
//! nothing depends on a process-wide default provider.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::config::HttpTlsConfig;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {key} {}", path.display())]
    Read { key: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{key} {}: {reason}", path.display())]
    Invalid { key: &'static str, path: PathBuf, reason: String },
    #[error("cannot build the TLS configuration")]
    Rustls(#[from] rustls::Error),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path, key: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { key, path: path.to_owned(), source })
}

fn invalid(path: &Path, key: &'static str, reason: impl Into<String>) -> TlsError {
    TlsError::Invalid { key, path: path.to_owned(), reason: reason.into() }
}

/// Every CERTIFICATE block of a PEM file; at least one.
fn read_certs(path: &Path, key: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path, key)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(path, key, format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(invalid(path, key, "holds no PEM CERTIFICATE block"));
    }
    Ok(certs)
}

/// Every CA certificate of a PEM file, as a root store.
fn read_roots(path: &Path, key: &'static str) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(path, key)? {
        roots.add(cert).map_err(|e| invalid(path, key, format!("not a usable CA certificate: {e}")))?;
    }
    Ok(roots)
}

/// A PEM certificate chain and its private key.
fn read_identity(
    cert_file: &Path,
    cert_key: &'static str,
    key_file: &Path,
    key_key: &'static str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let certs = read_certs(cert_file, cert_key)?;
    let key_pem = read(key_file, key_key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| invalid(key_file, key_key, format!("no PEM private key (PKCS#8, SEC1 or PKCS#1): {e}")))?;
    Ok((certs, key))
}

/// The API server's configuration: the certificate chain and key of `[http.tls]`, and, with a
/// `client-ca-file`, a verifier that requires every client to present a certificate issued by
/// one of those CAs. ALPN is actix's.
pub fn server_config(cfg: &HttpTlsConfig) -> Result<ServerConfig, TlsError> {
    let (certs, key) = read_identity(&cfg.cert_file, "http.tls.cert-file", &cfg.key_file, "http.tls.key-file")?;
    let builder = ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let builder = match &cfg.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let roots = read_roots(path, "http.tls.client-ca-file")?;
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| invalid(path, "http.tls.client-ca-file", format!("unusable client CAs: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    builder
        .with_single_cert(certs, key)
        .map_err(|e| invalid(&cfg.key_file, "http.tls.key-file", format!("unusable with http.tls.cert-file: {e}")))
}

/// A client configuration that trusts exactly the CA certificates of `ca_file` (`key` names the
/// option it came from, for errors), speaking HTTP/1.1 (websockets included).
pub fn client_config(ca_file: &Path, key: &'static str) -> Result<ClientConfig, TlsError> {
    client_config_with(ca_file, key, None)
}

/// [`client_config`], presenting a client certificate (`(cert_file, key_file)`) when given.
pub fn client_config_with(
    ca_file: &Path,
    key: &'static str,
    client_cert: Option<(&Path, &Path)>,
) -> Result<ClientConfig, TlsError> {
    let roots = read_roots(ca_file, key)?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let mut config = match client_cert {
        None => builder.with_no_client_auth(),
        Some((cert_file, key_file)) => {
            let (certs, private) = read_identity(cert_file, "--client-cert", key_file, "--client-key")?;
            builder
                .with_client_auth_cert(certs, private)
                .map_err(|e| invalid(key_file, "--client-key", format!("unusable with --client-cert: {e}")))?
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path) -> HttpTlsConfig {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap().self_signed(&key).unwrap();
        let (cert_file, key_file) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        HttpTlsConfig { cert_file, key_file, client_ca_file: None }
    }

    #[test]
    fn server_and_client_configs_load_from_pem() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = files(dir.path());
        server_config(&cfg).unwrap();
        let client = client_config(&cfg.cert_file, "--cacert").unwrap();
        assert_eq!(client.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }

    #[test]
    fn unusable_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let good = files(dir.path());
        let check = |cfg: HttpTlsConfig, needle: &str| {
            let err = server_config(&cfg).unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        };
        let missing = dir.path().join("missing.pem");
        check(HttpTlsConfig { key_file: missing.clone(), ..good.clone() }, "cannot read http.tls.key-file");
        check(HttpTlsConfig { cert_file: missing, ..good.clone() }, "cannot read http.tls.cert-file");
        check(HttpTlsConfig { key_file: good.cert_file.clone(), ..good.clone() }, "no PEM private key");
        check(HttpTlsConfig { cert_file: good.key_file.clone(), ..good.clone() }, "no PEM CERTIFICATE");
        // A key of another certificate.
        let other = tempfile::tempdir().unwrap();
        check(HttpTlsConfig { key_file: files(other.path()).key_file, ..good }, "unusable with http.tls.cert-file");
    }
}

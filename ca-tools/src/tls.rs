//! rustls configurations for mutual TLS (ring provider).

use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::error::PkiError;
use crate::msp::TlsIdentity;
use crate::pemutil;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn root_store(pems: &[String], what: &str) -> Result<rustls::RootCertStore, PkiError> {
    let mut store = rustls::RootCertStore::empty();
    for pem_text in pems {
        for der in pemutil::ders_with_tag(pem_text.as_bytes(), "CERTIFICATE", what)? {
            store.add(CertificateDer::from(der)).map_err(|e| PkiError::Tls(format!("{what}: {e}")))?;
        }
    }
    if store.is_empty() {
        return Err(PkiError::Tls(format!("no {what} given")));
    }
    Ok(store)
}

fn chain_and_key(id: &TlsIdentity) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), PkiError> {
    let chain = pemutil::ders_with_tag(id.cert_chain_pem.as_bytes(), "CERTIFICATE", "TLS certificate")?
        .into_iter()
        .map(CertificateDer::from)
        .collect();
    let key_block = pemutil::single_block(id.key_pem.as_bytes(), "TLS private key")?;
    if key_block.tag() != "PRIVATE KEY" {
        return Err(PkiError::Key(format!("TLS key must be PKCS#8 'PRIVATE KEY', found '{}'", key_block.tag())));
    }
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_block.into_contents()));
    Ok((chain, key))
}

/// A server config that requires a client certificate chaining to one of
/// `client_roots_pem`, refusing end-entity certificates listed in `crls_pem`.
pub fn server_config(
    id: &TlsIdentity,
    client_roots_pem: &[String],
    crls_pem: &[String],
) -> Result<rustls::ServerConfig, PkiError> {
    let roots = root_store(client_roots_pem, "client CA root")?;
    let mut crls = Vec::new();
    for pem_text in crls_pem {
        for der in pemutil::ders_with_tag(pem_text.as_bytes(), "X509 CRL", "CRL")? {
            crls.push(CertificateRevocationListDer::from(der));
        }
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .with_crls(crls)
        .only_check_end_entity_revocation()
        .allow_unknown_revocation_status()
        .build()
        .map_err(|e| PkiError::Tls(format!("client verifier: {e}")))?;
    let (chain, key) = chain_and_key(id)?;
    rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| PkiError::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| PkiError::Tls(format!("server certificate/key: {e}")))
}

/// A client config that trusts servers chaining to `server_roots_pem` and
/// presents `id` as its client certificate.
pub fn client_config(id: &TlsIdentity, server_roots_pem: &[String]) -> Result<rustls::ClientConfig, PkiError> {
    let roots = root_store(server_roots_pem, "server CA root")?;
    let (chain, key) = chain_and_key(id)?;
    rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| PkiError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| PkiError::Tls(format!("client certificate/key: {e}")))
}

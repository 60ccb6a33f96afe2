//! rustls configurations for mutual TLS (ring provider).

use std::sync::Arc;

use std::sync::RwLock;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime,
};

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
    server_config_with(id, client_verifier(client_roots_pem, crls_pem)?)
}

/// [`server_config`] with client certificates checked by `verifier` (e.g. a
/// [`ReloadableClientVerifier`]).
pub fn server_config_with(
    id: &TlsIdentity,
    verifier: Arc<dyn ClientCertVerifier>,
) -> Result<rustls::ServerConfig, PkiError> {
    let (chain, key) = chain_and_key(id)?;
    rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| PkiError::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| PkiError::Tls(format!("server certificate/key: {e}")))
}

/// Checks client certificates against `client_roots_pem` (and CRLs of end
/// entities).
fn client_verifier(client_roots_pem: &[String], crls_pem: &[String]) -> Result<Arc<dyn ClientCertVerifier>, PkiError> {
    let roots = root_store(client_roots_pem, "client CA root")?;
    let mut crls = Vec::new();
    for pem_text in crls_pem {
        for der in pemutil::ders_with_tag(pem_text.as_bytes(), "X509 CRL", "CRL")? {
            crls.push(CertificateRevocationListDer::from(der));
        }
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .with_crls(crls)
        .only_check_end_entity_revocation()
        .allow_unknown_revocation_status()
        .build()
        .map_err(|e| PkiError::Tls(format!("client verifier: {e}")))
}

/// A verifier whose trust anchors can be replaced while the listeners and
/// connections that use it run: a channel joined, or reconfigured, later
/// brings organisations whose TLS roots must be trusted from then on.
#[derive(Debug)]
pub struct Reloadable<V: ?Sized> {
    inner: RwLock<Arc<V>>,
}

impl<V: ?Sized> Reloadable<V> {
    fn with(verifier: Arc<V>) -> Arc<Self> {
        Arc::new(Self { inner: RwLock::new(verifier) })
    }

    fn replace(&self, verifier: Arc<V>) {
        *self.inner.write().unwrap_or_else(|p| p.into_inner()) = verifier;
    }

    fn current(&self) -> Arc<V> {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Client certificates checked against trust anchors that can be replaced.
pub type ReloadableClientVerifier = Reloadable<dyn ClientCertVerifier>;
/// Server certificates checked against trust anchors that can be replaced.
pub type ReloadableServerVerifier = Reloadable<dyn ServerCertVerifier>;

impl Reloadable<dyn ClientCertVerifier> {
    /// Trusting `client_roots_pem`, with end-entity CRLs `crls_pem`.
    pub fn new(client_roots_pem: &[String], crls_pem: &[String]) -> Result<Arc<Self>, PkiError> {
        Ok(Self::with(client_verifier(client_roots_pem, crls_pem)?))
    }

    /// Replaces the trust anchors; handshakes from now on use them.
    pub fn reload(&self, client_roots_pem: &[String], crls_pem: &[String]) -> Result<(), PkiError> {
        self.replace(client_verifier(client_roots_pem, crls_pem)?);
        Ok(())
    }
}

impl Reloadable<dyn ServerCertVerifier> {
    /// Trusting servers that chain to `server_roots_pem`.
    pub fn new(server_roots_pem: &[String]) -> Result<Arc<Self>, PkiError> {
        Ok(Self::with(server_verifier(server_roots_pem)?))
    }

    /// Replaces the trust anchors; handshakes from now on use them.
    pub fn reload(&self, server_roots_pem: &[String]) -> Result<(), PkiError> {
        self.replace(server_verifier(server_roots_pem)?);
        Ok(())
    }
}

fn server_verifier(server_roots_pem: &[String]) -> Result<Arc<dyn ServerCertVerifier>, PkiError> {
    let roots = root_store(server_roots_pem, "server CA root")?;
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| PkiError::Tls(format!("server verifier: {e}")))?;
    Ok(verifier)
}

/// The handshake-signature checks both verifier traits share, delegated to
/// the current verifier.
macro_rules! delegate_handshake_signatures {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.current().verify_tls12_signature(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.current().verify_tls13_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.current().supported_verify_schemes()
        }
    };
}

impl ClientCertVerifier for Reloadable<dyn ClientCertVerifier> {
    /// No CA names are sent (they change; clients send their certificate
    /// without them).
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.current().verify_client_cert(end_entity, intermediates, now)
    }

    delegate_handshake_signatures!();
}

impl ServerCertVerifier for Reloadable<dyn ServerCertVerifier> {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.current().verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    delegate_handshake_signatures!();
}

/// A client config presenting `id` whose server certificates `verifier`
/// checks (e.g. a [`ReloadableServerVerifier`]).
pub fn client_config_with(
    id: &TlsIdentity,
    verifier: Arc<dyn ServerCertVerifier>,
) -> Result<rustls::ClientConfig, PkiError> {
    let (chain, key) = chain_and_key(id)?;
    rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| PkiError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(chain, key)
        .map_err(|e| PkiError::Tls(format!("client certificate/key: {e}")))
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

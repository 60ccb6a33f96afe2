//! One root CA: its key and self-signed certificate.

use std::path::Path;

use rcgen::{CertificateParams, Issuer};

use super::params::{ca_params, Validity};
use crate::certinfo::parse_cert;
use crate::error::PkiError;
use crate::files;
use crate::keys::{KeyType, SigningKey};
use crate::pemutil;

/// A root CA: private key and certificate.
pub(crate) struct RootCa {
    pub(crate) key: SigningKey,
    pub(crate) cert_pem: String,
}

pub(crate) fn issue_err(e: rcgen::Error) -> PkiError {
    PkiError::Issue(e.to_string())
}

impl RootCa {
    pub(crate) fn create(msp_id: &str, cn: &str, key_type: KeyType, validity: Validity) -> Result<Self, PkiError> {
        let key = SigningKey::generate(key_type)?;
        let params = ca_params(msp_id, cn, validity)?;
        let cert = params.self_signed(&key.to_rcgen()?).map_err(issue_err)?;
        Ok(RootCa { key, cert_pem: cert.pem() })
    }

    pub(crate) fn load(cert_path: &Path, key_path: &Path) -> Result<Self, PkiError> {
        let cert_pem = files::read_text(cert_path)?;
        let key = SigningKey::from_pkcs8_pem(&files::read_text(key_path)?)?;
        crate::msp::check_key_matches(&cert_pem, &key, key_path.parent().unwrap_or(key_path))?;
        Ok(RootCa { key, cert_pem })
    }

    pub(crate) fn not_after_unix(&self) -> Result<i64, PkiError> {
        let der = pemutil::cert_der(self.cert_pem.as_bytes())?;
        let x509 = parse_cert(&der).map_err(|e| PkiError::Certificate(e.to_string()))?;
        Ok(x509.validity().not_after.timestamp())
    }

    pub(crate) fn subject_raw(&self) -> Result<Vec<u8>, PkiError> {
        let der = pemutil::cert_der(self.cert_pem.as_bytes())?;
        let x509 = parse_cert(&der).map_err(|e| PkiError::Certificate(e.to_string()))?;
        Ok(x509.subject().as_raw().to_vec())
    }

    pub(crate) fn issue(&self, params: &CertificateParams, key: &SigningKey) -> Result<String, PkiError> {
        let issuer_key = self.key.to_rcgen()?;
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, issuer_key).map_err(issue_err)?;
        let cert = params.signed_by(&key.to_rcgen()?, &issuer).map_err(issue_err)?;
        Ok(cert.pem())
    }
}

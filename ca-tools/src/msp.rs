//! Loading identities from Fabric's MSP layout and TLS directories.

use std::path::Path;

use crate::certinfo::{self, parse_cert};
use crate::error::PkiError;
use crate::files;
use crate::keys::{PublicKey, SigningKey};
use crate::pemutil;

/// A local signing identity loaded from an MSP directory.
#[derive(Debug)]
pub struct Msp {
    /// The MSP id.
    pub msp_id: String,
    /// The enrollment certificate, PEM.
    pub signcert_pem: String,
    /// The private key matching the enrollment certificate.
    pub key: SigningKey,
    /// The signing CA roots, PEM.
    pub cacerts_pem: Vec<String>,
    /// The TLS CA roots, PEM.
    pub tlscacerts_pem: Vec<String>,
}

fn layout_err(dir: &Path, reason: impl Into<String>) -> PkiError {
    PkiError::Layout { dir: dir.to_path_buf(), reason: reason.into() }
}

fn read_texts(dir: &Path) -> Result<Vec<String>, PkiError> {
    files::files_in(dir)?.iter().map(|p| files::read_text(p)).collect()
}

fn exactly_one(dir: &Path, what: &str) -> Result<String, PkiError> {
    let mut all = files::files_in(dir)?;
    match all.len() {
        1 => files::read_text(&all.remove(0)),
        0 => Err(layout_err(dir, format!("no {what} file found"))),
        n => Err(layout_err(dir, format!("{n} files found, expected exactly one {what}"))),
    }
}

/// Fail unless `key` is the private key of the certificate `cert_pem`.
pub(crate) fn check_key_matches(cert_pem: &str, key: &SigningKey, dir: &Path) -> Result<(), PkiError> {
    let cert_key = PublicKey::from_cert(cert_pem.as_bytes())?;
    if cert_key != key.public_key() {
        return Err(layout_err(dir, "the private key does not match the certificate's public key"));
    }
    Ok(())
}

impl Msp {
    /// Load `msp_dir/signcerts` (one certificate), `msp_dir/keystore` (one
    /// PKCS#8 key), `cacerts/` and `tlscacerts/`. With `msp_id` None, the MSP
    /// id is taken from the certificate (subject O).
    pub fn load(msp_id: Option<&str>, msp_dir: &Path) -> Result<Self, PkiError> {
        let signcert_pem = exactly_one(&msp_dir.join("signcerts"), "certificate")?;
        let keystore = msp_dir.join("keystore");
        let key = SigningKey::from_pkcs8_pem(&exactly_one(&keystore, "private key")?)?;
        check_key_matches(&signcert_pem, &key, &keystore)?;
        let der = pemutil::cert_der(signcert_pem.as_bytes())?;
        let x509 = parse_cert(&der).map_err(|e| PkiError::Certificate(e.to_string()))?;
        let cert_msp = certinfo::msp_id_of(&x509);
        let msp_id = match (msp_id, cert_msp) {
            (Some(given), _) => given.to_string(),
            (None, Some(from_cert)) => from_cert,
            (None, None) => {
                return Err(layout_err(
                    msp_dir,
                    "the certificate carries no MSP id (subject O); give the MSP id explicitly",
                ))
            }
        };
        let cacerts_pem = read_texts(&msp_dir.join("cacerts"))?;
        if cacerts_pem.is_empty() {
            return Err(layout_err(msp_dir, "cacerts/ is empty or missing"));
        }
        Ok(Msp { msp_id, signcert_pem, key, cacerts_pem, tlscacerts_pem: read_texts(&msp_dir.join("tlscacerts"))? })
    }
}

/// A TLS identity: certificate chain, private key and the TLS CA.
#[derive(Debug, Clone)]
pub struct TlsIdentity {
    /// The certificate (chain), PEM.
    pub cert_chain_pem: String,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
    /// The TLS CA certificate, PEM.
    pub ca_pem: String,
}

impl TlsIdentity {
    /// Load `server.crt`/`server.key` (or, if absent, `client.crt`/`client.key`)
    /// and `ca.crt` from a TLS directory.
    pub fn load(tls_dir: &Path) -> Result<Self, PkiError> {
        let stem = if tls_dir.join("server.crt").exists() {
            "server"
        } else if tls_dir.join("client.crt").exists() {
            "client"
        } else {
            return Err(layout_err(tls_dir, "neither server.crt nor client.crt found (is this a tls/ directory?)"));
        };
        let cert_chain_pem = files::read_text(&tls_dir.join(format!("{stem}.crt")))?;
        let key_pem = files::read_text(&tls_dir.join(format!("{stem}.key")))?;
        let key = SigningKey::from_pkcs8_pem(&key_pem)?;
        check_key_matches(&cert_chain_pem, &key, tls_dir)?;
        Ok(TlsIdentity { cert_chain_pem, key_pem, ca_pem: files::read_text(&tls_dir.join("ca.crt"))? })
    }
}

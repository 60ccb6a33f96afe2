//! Reading the facts a certificate carries: MSP id, role, SANs, validity.

use serde::Serialize;
use sha2::Digest as _;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use crate::error::{PkiError, VerifyError};
use crate::keys::{KeyType, PublicKey};
use crate::pemutil;
use crate::role::Role;

/// What `ca-tools inspect` shows about a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertInfo {
    /// Subject distinguished name.
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// Serial number, lowercase hex.
    pub serial: String,
    /// MSP id (subject O), if present.
    pub msp_id: Option<String>,
    /// Role (subject OU), if present.
    pub role: Option<Role>,
    /// Subject alternative names (DNS names and IP addresses).
    pub sans: Vec<String>,
    /// Start of validity, RFC 3339.
    pub not_before: String,
    /// End of validity, RFC 3339.
    pub not_after: String,
    /// End of validity, unix seconds.
    pub not_after_unix: i64,
    /// Whole days from the inspection time to the end of validity (negative once expired).
    pub days_left: i64,
    /// SHA-256 of the DER certificate, lowercase hex.
    pub sha256_fingerprint: String,
    /// Key type ("ecdsa-p256", "ed25519" or a description of an unsupported key).
    pub key_type: String,
    /// Whether it is a CA certificate.
    pub is_ca: bool,
    /// Key usages present.
    pub key_usage: Vec<String>,
    /// Extended key usages present.
    pub extended_key_usage: Vec<String>,
}

/// Inspect a certificate (PEM or DER) at the current time.
pub fn inspect(cert: &[u8]) -> Result<CertInfo, PkiError> {
    inspect_at(cert, crate::now_unix())
}

/// Inspect a certificate (PEM or DER) as of unix time `now_unix`.
pub fn inspect_at(cert: &[u8], now_unix: i64) -> Result<CertInfo, PkiError> {
    let der = pemutil::cert_der(cert)?;
    let x509 = parse_cert(&der).map_err(|e| PkiError::Certificate(e.to_string()))?;
    let not_after_unix = x509.validity().not_after.timestamp();
    let key_type = match PublicKey::from_spki(x509.public_key()) {
        Ok(k) => k.key_type().as_str().to_string(),
        Err(e) => e.to_string(),
    };
    let mut key_usage = Vec::new();
    if let Ok(Some(ku)) = x509.key_usage() {
        key_usage = ku.value.to_string().split(", ").map(str::to_string).collect();
        key_usage.retain(|s| !s.is_empty());
    }
    let mut extended_key_usage = Vec::new();
    if let Ok(Some(eku)) = x509.extended_key_usage() {
        let e = eku.value;
        for (on, name) in [
            (e.server_auth, "serverAuth"),
            (e.client_auth, "clientAuth"),
            (e.code_signing, "codeSigning"),
            (e.email_protection, "emailProtection"),
            (e.time_stamping, "timeStamping"),
            (e.ocsp_signing, "ocspSigning"),
            (e.any, "any"),
        ] {
            if on {
                extended_key_usage.push(name.to_string());
            }
        }
    }
    Ok(CertInfo {
        subject: x509.subject().to_string(),
        issuer: x509.issuer().to_string(),
        serial: hex::encode(x509.serial.to_bytes_be()),
        msp_id: msp_id_of(&x509),
        role: role_of(&x509),
        sans: sans_of(&x509),
        not_before: rfc3339(x509.validity().not_before.timestamp()),
        not_after: rfc3339(not_after_unix),
        not_after_unix,
        days_left: (not_after_unix - now_unix).div_euclid(86_400),
        sha256_fingerprint: hex::encode(sha2::Sha256::digest(&der)),
        key_type,
        is_ca: x509.is_ca(),
        key_usage,
        extended_key_usage,
    })
}

/// Parse a DER certificate, refusing trailing bytes.
pub(crate) fn parse_cert(der: &[u8]) -> Result<X509Certificate<'_>, VerifyError> {
    let (rest, x509) = x509_parser::parse_x509_certificate(der).map_err(|e| VerifyError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(VerifyError::Malformed(format!("{} trailing bytes after the certificate", rest.len())));
    }
    Ok(x509)
}

/// The MSP id: the first subject O.
pub(crate) fn msp_id_of(x509: &X509Certificate<'_>) -> Option<String> {
    x509.subject().iter_organization().next().and_then(|a| a.as_str().ok()).map(str::to_string)
}

/// The role: the first subject OU that names a role.
pub(crate) fn role_of(x509: &X509Certificate<'_>) -> Option<Role> {
    x509.subject().iter_organizational_unit().filter_map(|a| a.as_str().ok()).find_map(|s| s.parse::<Role>().ok())
}

/// The subject common name.
pub(crate) fn common_name_of(x509: &X509Certificate<'_>) -> Option<String> {
    x509.subject().iter_common_name().next().and_then(|a| a.as_str().ok()).map(str::to_string)
}

/// DNS names and IP addresses of the SAN extension.
pub(crate) fn sans_of(x509: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(san)) = x509.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some((*d).to_string()),
            GeneralName::IPAddress(ip) => match ip.len() {
                4 => <[u8; 4]>::try_from(*ip).ok().map(|b| std::net::IpAddr::from(b).to_string()),
                16 => <[u8; 16]>::try_from(*ip).ok().map(|b| std::net::IpAddr::from(b).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// Format unix seconds as RFC 3339 (UTC).
pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| format!("@{unix}"))
}

/// The key type of a certificate's public key, if supported.
pub(crate) fn key_type_of(x509: &X509Certificate<'_>) -> Option<KeyType> {
    PublicKey::from_spki(x509.public_key()).ok().map(|k| k.key_type())
}

//! Typed errors of the PKI library.

use std::path::PathBuf;

/// Errors of key handling, certificate issuance, file I/O and configuration.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An output already exists and `force` was not given.
    #[error("{0} already exists; refusing to overwrite it (pass --force to replace it)")]
    AlreadyExists(PathBuf),
    /// An input is larger than the limit this tool accepts.
    #[error("{what} is {size} bytes, more than the limit of {limit} bytes")]
    TooLarge {
        /// What was too large.
        what: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A file or string was expected to be PEM but is not.
    #[error("{what}: not valid PEM ({reason})")]
    Pem {
        /// What was being decoded.
        what: String,
        /// Why it failed.
        reason: String,
    },
    /// A private key could not be decoded, generated or used.
    #[error("private key: {0}")]
    Key(String),
    /// A certificate could not be parsed or is unsuitable for the operation.
    #[error("certificate: {0}")]
    Certificate(String),
    /// A CRL could not be parsed, or is not signed by a known root.
    #[error("CRL: {0}")]
    Crl(String),
    /// Issuing a certificate or CRL failed.
    #[error("issuing failed: {0}")]
    Issue(String),
    /// The CA directory's state (`ca.json`) is missing, unreadable or inconsistent.
    #[error("CA state: {0}")]
    CaState(String),
    /// A configuration value (YAML, CLI argument) is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Building a rustls configuration failed.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// An MSP or TLS directory does not have the expected layout.
    #[error("{dir}: {reason}")]
    Layout {
        /// The directory.
        dir: PathBuf,
        /// What is missing or wrong.
        reason: String,
    },
}

/// Why a signature did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The public key bytes are not a valid key of the stated type.
    #[error("public key is malformed")]
    MalformedKey,
    /// The signature bytes are not well-formed (DER for ECDSA, 64 bytes for Ed25519).
    #[error("signature is malformed")]
    MalformedSignature,
    /// The ECDSA signature has a high S value (Fabric rejects those as malleable).
    #[error("ECDSA signature has a high S value (not low-S normalised)")]
    HighS,
    /// The signature does not match the message and key.
    #[error("signature does not verify")]
    Invalid,
}

/// Why a certificate was not accepted as an identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The input is not a parseable X.509 certificate.
    #[error("malformed certificate: {0}")]
    Malformed(String),
    /// No trusted root has the certificate's issuer name.
    #[error("unknown issuer '{issuer}': not one of the trusted CA roots")]
    UnknownIssuer {
        /// The issuer distinguished name of the certificate.
        issuer: String,
    },
    /// A root with the issuer's name exists but its key did not sign this certificate.
    #[error("bad signature: the certificate was not signed by the trusted CA of that name")]
    BadSignature,
    /// The certificate (or its CA) expired before the verification time.
    #[error("expired: '{subject}' was valid until {not_after}, verification time is {at}")]
    Expired {
        /// Subject of the expired certificate.
        subject: String,
        /// End of validity, RFC 3339.
        not_after: String,
        /// The verification time, RFC 3339.
        at: String,
    },
    /// The certificate (or its CA) is not valid yet at the verification time.
    #[error("not yet valid: '{subject}' is valid from {not_before}, verification time is {at}")]
    NotYetValid {
        /// Subject of the certificate.
        subject: String,
        /// Start of validity, RFC 3339.
        not_before: String,
        /// The verification time, RFC 3339.
        at: String,
    },
    /// The certificate's serial number is on a CRL of its issuer.
    #[error("revoked: certificate serial {serial} is on the CRL of '{issuer}'")]
    Revoked {
        /// Serial number, hex.
        serial: String,
        /// The issuer whose CRL lists it.
        issuer: String,
    },
    /// The certificate carries no role (subject OU), or one that is not allowed.
    #[error("wrong role: certificate has role {found}, allowed: {allowed}")]
    WrongRole {
        /// The role found ("none" if absent).
        found: String,
        /// The allowed roles, comma-separated.
        allowed: String,
    },
    /// The certificate may not be used to sign (no digitalSignature, or it is a CA).
    #[error("wrong key usage: {reason}")]
    WrongKeyUsage {
        /// What is wrong with the key usage.
        reason: String,
    },
    /// The MSP id in the certificate differs from the MSP whose root issued it.
    #[error("MSP mismatch: certificate says MSP '{found}' but was issued by the CA of '{expected}'")]
    MspMismatch {
        /// The MSP id of the trusting org.
        expected: String,
        /// The MSP id carried in the certificate ("none" if absent).
        found: String,
    },
    /// The subject public key is of an unsupported type.
    #[error("unsupported public key: {0} (supported: ECDSA P-256, Ed25519)")]
    UnsupportedKey(String),
}

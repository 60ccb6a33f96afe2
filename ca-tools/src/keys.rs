//! Signing keys and public keys: ECDSA P-256 (SHA-256, DER, low-S) and Ed25519.

use std::fmt;
use std::str::FromStr;

use p256::ecdsa::signature::Signer as _;
use serde::{Deserialize, Serialize};
use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_SIG_ED25519};

use crate::error::{PkiError, SignatureError};
use crate::pemutil;

/// The kind of a key pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KeyType {
    /// ECDSA over NIST P-256 with SHA-256.
    #[serde(rename = "ecdsa-p256")]
    EcdsaP256,
    /// Ed25519.
    #[serde(rename = "ed25519")]
    Ed25519,
}

impl KeyType {
    /// The CLI / config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::EcdsaP256 => "ecdsa-p256",
            KeyType::Ed25519 => "ed25519",
        }
    }

    pub(crate) fn rcgen_alg(self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            KeyType::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyType::Ed25519 => &rcgen::PKCS_ED25519,
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyType {
    type Err = PkiError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "ecdsa-p256" | "ecdsa" | "p256" | "p-256" => Ok(KeyType::EcdsaP256),
            "ed25519" => Ok(KeyType::Ed25519),
            _ => Err(PkiError::Config(format!("unknown key type '{s}' (expected ecdsa-p256 or ed25519)"))),
        }
    }
}

/// A public key taken from a certificate.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum PublicKey {
    /// ECDSA P-256, SEC1-encoded point (as in the certificate, usually uncompressed, 65 bytes).
    EcdsaP256(Vec<u8>),
    /// Ed25519, 32 bytes.
    Ed25519([u8; 32]),
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublicKey::EcdsaP256(b) => write!(f, "EcdsaP256({})", hex::encode(b)),
            PublicKey::Ed25519(b) => write!(f, "Ed25519({})", hex::encode(b)),
        }
    }
}

impl PublicKey {
    /// The public key of a certificate given as PEM or DER.
    pub fn from_cert(cert: &[u8]) -> Result<Self, PkiError> {
        let der = pemutil::cert_der(cert)?;
        let (_, x509) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| PkiError::Certificate(format!("cannot parse: {e}")))?;
        Self::from_spki(x509.public_key()).map_err(|e| PkiError::Certificate(e.to_string()))
    }

    /// The public key of a parsed SubjectPublicKeyInfo.
    pub(crate) fn from_spki(
        spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>,
    ) -> Result<Self, crate::error::VerifyError> {
        use crate::error::VerifyError;
        let alg = &spki.algorithm.algorithm;
        let bytes = spki.subject_public_key.data.as_ref();
        if *alg == OID_SIG_ED25519 {
            let key: [u8; 32] =
                bytes.try_into().map_err(|_| VerifyError::Malformed("Ed25519 key is not 32 bytes".into()))?;
            return Ok(PublicKey::Ed25519(key));
        }
        if *alg == OID_KEY_TYPE_EC_PUBLIC_KEY {
            let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok());
            if curve.as_ref() == Some(&OID_EC_P256) {
                p256::ecdsa::VerifyingKey::from_sec1_bytes(bytes)
                    .map_err(|_| VerifyError::Malformed("invalid P-256 point".into()))?;
                return Ok(PublicKey::EcdsaP256(bytes.to_vec()));
            }
            return Err(VerifyError::UnsupportedKey(format!(
                "EC key on curve {}",
                curve.map(|c| c.to_id_string()).unwrap_or_else(|| "?".into())
            )));
        }
        Err(VerifyError::UnsupportedKey(format!("algorithm {}", alg.to_id_string())))
    }

    /// Verify `sig` over `msg`. ECDSA: DER signature over SHA-256(msg), high-S
    /// refused (as Fabric does); Ed25519: raw 64-byte signature (strict).
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> Result<(), SignatureError> {
        self.prepare()?.verify(msg, sig)
    }

    /// The key parsed once for many verifications (an Ed25519 point is
    /// decompressed here, not at every signature).
    pub fn prepare(&self) -> Result<PreparedKey, SignatureError> {
        match self {
            PublicKey::EcdsaP256(point) => {
                p256::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(|_| SignatureError::MalformedKey)?;
                Ok(PreparedKey::EcdsaP256(point.clone()))
            }
            PublicKey::Ed25519(bytes) => ed25519_dalek::VerifyingKey::from_bytes(bytes)
                .map(PreparedKey::Ed25519)
                .map_err(|_| SignatureError::MalformedKey),
        }
    }

    /// A public key from its raw bytes (as returned by [`PublicKey::to_bytes`]).
    pub fn from_bytes(kind: KeyType, bytes: &[u8]) -> Result<Self, PkiError> {
        match kind {
            KeyType::EcdsaP256 => {
                p256::ecdsa::VerifyingKey::from_sec1_bytes(bytes)
                    .map_err(|_| PkiError::Key("not a valid P-256 public key".into()))?;
                Ok(PublicKey::EcdsaP256(bytes.to_vec()))
            }
            KeyType::Ed25519 => {
                let key: [u8; 32] =
                    bytes.try_into().map_err(|_| PkiError::Key("an Ed25519 public key is 32 bytes".into()))?;
                ed25519_dalek::VerifyingKey::from_bytes(&key)
                    .map_err(|_| PkiError::Key("not a valid Ed25519 public key".into()))?;
                Ok(PublicKey::Ed25519(key))
            }
        }
    }

    /// The raw key bytes (SEC1 point or 32 Ed25519 bytes).
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            PublicKey::EcdsaP256(b) => b.clone(),
            PublicKey::Ed25519(b) => b.to_vec(),
        }
    }

    /// The key type.
    pub fn key_type(&self) -> KeyType {
        match self {
            PublicKey::EcdsaP256(_) => KeyType::EcdsaP256,
            PublicKey::Ed25519(_) => KeyType::Ed25519,
        }
    }
}

#[derive(Clone)]
enum Inner {
    Ecdsa(p256::ecdsa::SigningKey),
    Ed25519(ed25519_dalek::SigningKey),
}

/// A private signing key (ECDSA P-256 or Ed25519). Debug output never shows the key.
#[derive(Clone)]
pub struct SigningKey {
    inner: Inner,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({}, public {:?})", self.key_type(), self.public_key())
    }
}

impl SigningKey {
    /// A fresh random key from the operating system's RNG.
    pub fn generate(kind: KeyType) -> Result<Self, PkiError> {
        let mut rng = rand_core::OsRng;
        let inner = match kind {
            KeyType::EcdsaP256 => Inner::Ecdsa(p256::ecdsa::SigningKey::random(&mut rng)),
            KeyType::Ed25519 => Inner::Ed25519(ed25519_dalek::SigningKey::generate(&mut rng)),
        };
        Ok(SigningKey { inner })
    }

    /// Decode a PKCS#8 PEM private key ("PRIVATE KEY") of either supported type.
    pub fn from_pkcs8_pem(pem_text: &str) -> Result<Self, PkiError> {
        let block = pemutil::single_block(pem_text.as_bytes(), "private key")?;
        if block.tag() != "PRIVATE KEY" {
            return Err(PkiError::Key(format!("expected a PKCS#8 'PRIVATE KEY' PEM block, found '{}'", block.tag())));
        }
        Self::from_pkcs8_der(block.contents())
    }

    /// Decode a PKCS#8 DER private key of either supported type.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, PkiError> {
        use p256::pkcs8::DecodePrivateKey as _;
        if let Ok(k) = p256::ecdsa::SigningKey::from_pkcs8_der(der) {
            return Ok(SigningKey { inner: Inner::Ecdsa(k) });
        }
        if let Ok(k) = ed25519_dalek::SigningKey::from_pkcs8_der(der) {
            return Ok(SigningKey { inner: Inner::Ed25519(k) });
        }
        Err(PkiError::Key("not a PKCS#8 ECDSA P-256 or Ed25519 private key".into()))
    }

    fn to_pkcs8_der(&self) -> Result<Vec<u8>, PkiError> {
        use p256::pkcs8::EncodePrivateKey as _;
        let doc = match &self.inner {
            Inner::Ecdsa(k) => k.to_pkcs8_der(),
            // PKCS#8 v1 without the public key, as OpenSSL and Go write it
            // (OpenSSL 3.0 cannot read the v2 form).
            Inner::Ed25519(k) => {
                ed25519_dalek::pkcs8::KeypairBytes { secret_key: k.to_bytes(), public_key: None }.to_pkcs8_der()
            }
        }
        .map_err(|e| PkiError::Key(format!("cannot encode as PKCS#8: {e}")))?;
        Ok(doc.as_bytes().to_vec())
    }

    /// Encode as PKCS#8 PEM ("PRIVATE KEY").
    pub fn to_pkcs8_pem(&self) -> Result<String, PkiError> {
        let der = self.to_pkcs8_der()?;
        Ok(pem::encode(&pem::Pem::new("PRIVATE KEY", der)))
    }

    /// Sign `msg`. ECDSA: DER signature over SHA-256(msg), low-S normalised;
    /// Ed25519: 64 bytes.
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, PkiError> {
        match &self.inner {
            Inner::Ecdsa(k) => {
                let sig: p256::ecdsa::Signature =
                    k.try_sign(msg).map_err(|e| PkiError::Key(format!("ECDSA signing failed: {e}")))?;
                let sig = sig.normalize_s().unwrap_or(sig);
                Ok(sig.to_der().as_bytes().to_vec())
            }
            Inner::Ed25519(k) => Ok(k.sign(msg).to_bytes().to_vec()),
        }
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        match &self.inner {
            Inner::Ecdsa(k) => PublicKey::EcdsaP256(k.verifying_key().to_encoded_point(false).as_bytes().to_vec()),
            Inner::Ed25519(k) => PublicKey::Ed25519(k.verifying_key().to_bytes()),
        }
    }

    /// The key type.
    pub fn key_type(&self) -> KeyType {
        match &self.inner {
            Inner::Ecdsa(_) => KeyType::EcdsaP256,
            Inner::Ed25519(_) => KeyType::Ed25519,
        }
    }

    /// The same key as an rcgen key pair (for issuing certificates).
    pub(crate) fn to_rcgen(&self) -> Result<rcgen::KeyPair, PkiError> {
        let der = self.to_pkcs8_der()?;
        let pkcs8 = rustls_pki_types::PrivatePkcs8KeyDer::from(der);
        rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, self.key_type().rcgen_alg())
            .map_err(|e| PkiError::Key(format!("cannot use key for issuing: {e}")))
    }
}

/// A public key checked and parsed once, for verifying many signatures.
#[derive(Clone)]
pub enum PreparedKey {
    /// ECDSA P-256, SEC1-encoded point (checked to be on the curve).
    EcdsaP256(Vec<u8>),
    /// Ed25519, decompressed.
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl PreparedKey {
    /// As [`PublicKey::verify`]: ECDSA DER signatures over SHA-256(msg) with
    /// high-S refused, Ed25519 raw 64-byte signatures (strict).
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> Result<(), SignatureError> {
        match self {
            PreparedKey::EcdsaP256(point) => {
                let sig = p256::ecdsa::DerSignature::try_from(sig).map_err(|_| SignatureError::MalformedSignature)?;
                let sig =
                    p256::ecdsa::Signature::from_der(sig.as_bytes()).map_err(|_| SignatureError::MalformedSignature)?;
                if sig.normalize_s().is_some() {
                    return Err(SignatureError::HighS);
                }
                // ring's P-256 verification is several times faster than the
                // pure-Rust one; the parsing above keeps the precise errors.
                ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_ASN1, point)
                    .verify(msg, sig.to_der().as_bytes())
                    .map_err(|_| SignatureError::Invalid)
            }
            PreparedKey::Ed25519(key) => {
                let sig = ed25519_dalek::Signature::from_slice(sig).map_err(|_| SignatureError::MalformedSignature)?;
                key.verify_strict(msg, &sig).map_err(|_| SignatureError::Invalid)
            }
        }
    }
}

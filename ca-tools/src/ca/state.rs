//! The CA's recorded state (`ca.json`): issued and revoked certificates.

use serde::{Deserialize, Serialize};

use crate::keys::KeyType;
use crate::role::Role;

/// Most certificates one CA records as issued (and as revoked).
pub const ISSUED_MAX: usize = 100_000;
/// Largest `ca.json` accepted, bytes (room for [`ISSUED_MAX`] records of each kind).
pub const STATE_BYTES_MAX: u64 = 64 << 20;

/// Which of an org's two CAs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Authority {
    /// The signing (enrollment) root CA.
    Sign,
    /// The TLS root CA.
    Tls,
}

/// One certificate the CA issued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedRecord {
    /// Serial number, lowercase hex.
    pub serial: String,
    /// Which CA issued it.
    pub authority: Authority,
    /// Identity name (subject CN).
    pub name: String,
    /// Role.
    pub role: Role,
    /// End of validity, RFC 3339.
    pub not_after: String,
}

/// One certificate the CA revoked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedRecord {
    /// Serial number, lowercase hex.
    pub serial: String,
    /// Which CA issued it.
    pub authority: Authority,
    /// Identity name (subject CN), if known.
    pub name: String,
    /// When it was revoked, unix seconds.
    pub revoked_at_unix: i64,
}

/// The content of `ca.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaState {
    /// Format version (1).
    pub version: u32,
    /// Organisation name.
    pub org: String,
    /// MSP id.
    pub msp_id: String,
    /// Key type of the CA keys (and default for leaves).
    pub key_type: KeyType,
    /// Next CRL number.
    pub next_crl_number: u64,
    /// Certificates issued.
    pub issued: Vec<IssuedRecord>,
    /// Certificates revoked.
    pub revoked: Vec<RevokedRecord>,
}

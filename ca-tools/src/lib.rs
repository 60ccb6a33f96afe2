//! Consortium PKI for bftorderer: an org's signing and TLS root CAs,
//! role-carrying certificates in Fabric's MSP layout, verification with CRLs,
//! signing keys, and mutual-TLS configurations.
//!
//! Certificates carry the MSP id as the first subject O and the role as a
//! subject OU (`orderer`, `peer`, `client`, `admin`, `auditor`), as Fabric's
//! NodeOUs do.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod ca;
pub mod certinfo;
pub mod error;
pub mod files;
pub mod keys;
pub mod layout;
pub mod msp;
pub mod network;
pub mod pemutil;
pub mod role;
pub mod tls;
pub mod verify;

pub use ca::{Authority, Ca, CaState, InitCaOptions, IssueRequest, IssuedIdentity, Validity};
pub use certinfo::{inspect, inspect_at, CertInfo};
pub use error::{PkiError, SignatureError, VerifyError};
pub use keys::{KeyType, PreparedKey, PublicKey, SigningKey};
pub use msp::{Msp, TlsIdentity};
pub use network::{generate_network, NetworkConfig, NetworkSummary};
pub use role::Role;
pub use tls::{
    client_config, client_config_with, server_config, server_config_with, ReloadableClientVerifier,
    ReloadableServerVerifier,
};
pub use verify::{verify_identity, verify_tls_identity, IdentityVerifier, OrgTrust, Verified, VerifiedIdentity};

/// The current time in unix seconds.
pub fn now_unix() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    match now {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

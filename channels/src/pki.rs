//! The one place that turns ca-tools verification results into this crate's
//! errors: envelope creators and consenter certificates.

use std::sync::Arc;

use ca_tools::{verify_identity, verify_tls_identity, IdentityVerifier, OrgTrust, Role, Verified, VerifyError};

use crate::config::{ConfigError, Consenter, Organization};
use crate::envelope::EnvelopeError;

/// Verifies an envelope creator's certificate against the channel's orgs.
pub(crate) fn verify_creator(
    cert: &[u8],
    identities: &IdentityVerifier,
    now_unix: i64,
    allowed: &[Role],
) -> Result<Arc<Verified>, EnvelopeError> {
    identities.verify(cert, now_unix, allowed).map_err(creator_error)
}

fn creator_error(error: VerifyError) -> EnvelopeError {
    let text = error.to_string();
    match error {
        VerifyError::UnknownIssuer { .. } | VerifyError::MspMismatch { .. } => EnvelopeError::UnknownCreator(text),
        VerifyError::Revoked { .. } => EnvelopeError::RevokedCreator(text),
        VerifyError::Expired { .. } => EnvelopeError::ExpiredCreator(text),
        VerifyError::NotYetValid { .. } => EnvelopeError::CreatorNotYetValid(text),
        VerifyError::WrongRole { .. } => EnvelopeError::WrongRole(text),
        VerifyError::Malformed(_)
        | VerifyError::BadSignature
        | VerifyError::WrongKeyUsage { .. }
        | VerifyError::UnsupportedKey(_) => EnvelopeError::InvalidCreator(text),
    }
}

/// Checks a consenter's identity certificate against its org's signing roots
/// and its TLS certificate against the org's TLS roots (both: chain, validity
/// at `now_unix`, CRLs, MSP id, orderer role).
pub(crate) fn check_consenter_certs(
    consenter: &Consenter,
    org: &Organization,
    trust: &OrgTrust,
    now_unix: i64,
) -> Result<(), ConfigError> {
    let bad = |which: &'static str, reason: String| ConfigError::BadConsenterCert {
        id: consenter.id,
        which,
        msp_id: consenter.msp_id.clone(),
        reason,
    };
    verify_identity(consenter.identity_cert.as_bytes(), std::slice::from_ref(trust), now_unix, Consenter::roles())
        .map_err(|e| bad("identity", e.to_string()))?;
    if org.tls_root_certs.is_empty() {
        return Err(bad("TLS", "the organisation has no TLS root CA to check it against; add its tlscacerts".into()));
    }
    verify_tls_identity(consenter.tls_cert.as_bytes(), std::slice::from_ref(trust), now_unix, Consenter::roles())
        .map_err(|e| bad("TLS", e.to_string()))?;
    Ok(())
}

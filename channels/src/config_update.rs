//! Channel configuration updates: the transaction by which the channel's org
//! admins replace its configuration (rotate a consenter's certificates, add
//! or remove one consenter, change organisations or batch settings).
//!
//! The layout mirrors Fabric's CONFIG_UPDATE: a Fabric [`Envelope`] whose
//! channel header has type [`HeaderType::ConfigUpdate`] and whose payload
//! data is an encoded `bftorderer.ConfigUpdateEnvelope { config, signatures }`.
//! `config` is the canonical encoding of the whole proposed
//! [`ChannelConfig`]; each `ConfigSignature` is an org admin's signature over
//! `signature_header ‖ config`, where `signature_header` is an encoded
//! `common.SignatureHeader { creator, nonce }`. The envelope itself is
//! created and signed by any member of a current organisation (an admin, or
//! an orderer or peer that submits it).
//!
//! Two checks exist, as for key announcements:
//! - [`ConfigUpdateVerifier::verify`] is deterministic: every replica runs it
//!   on the ordered bytes and must reach the same answer, so it reads no
//!   clock. Certificates are judged at the envelope's channel-header
//!   timestamp (signed by the submitter) against the trust anchors and CRLs
//!   of the CURRENT configuration, which every replica shares.
//! - [`ConfigUpdateVerifier::verify_submitted`] adds, for admission, a
//!   timestamp within [`TIMESTAMP_SKEW_SECONDS_MAX`] of the orderer's clock
//!   and certificates that are also valid now.
//!
//! See docs/config-updates.md.

use std::collections::{BTreeMap, BTreeSet};

use ca_tools::certinfo::rfc3339;
use ca_tools::{verify_identity, Msp, Role, VerifyError};
use prost::Message;
use rand_core::{OsRng, RngCore};

use crate::block::verify_data_hash;
use crate::config::{ChannelConfig, ConfigError, Consenter, MAX_CONFIG_BYTES};
use crate::envelope::{
    build_envelope, decode_envelope, serialized_identity, verify_envelope, ChannelTrust, DecodedEnvelope,
    EnvelopeError, MAX_NONCE_LEN, NONCE_LEN,
};
use crate::genesis::config_from_genesis;
use crate::proto::common::{Block, Envelope, HeaderType, SignatureHeader};
use crate::proto::msp::SerializedIdentity;

pub use crate::proto::bftorderer::{ConfigSignature, ConfigUpdateEnvelope};

/// Largest config update envelope accepted: a whole configuration plus the
/// signatures and headers around it.
pub const CONFIG_UPDATE_BYTES_MAX: usize = MAX_CONFIG_BYTES + 1024 * 1024;
/// Most admin signatures one update may carry.
pub const SIGNATURES_MAX: usize = 256;
/// Largest encoded signature header of one admin signature.
pub const SIGNATURE_HEADER_BYTES_MAX: usize = 64 * 1024;
/// How far a submitted update's timestamp may be from the orderer's clock.
pub const TIMESTAMP_SKEW_SECONDS_MAX: i64 = 15 * 60;

/// Why an admin signature's certificate was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignerFault {
    /// Not issued by a current organisation of the channel (or claims
    /// another MSP id than the one that issued it).
    NotAMember,
    /// On a CRL of the current configuration.
    Revoked,
    /// Expired at the time it is judged at.
    Expired,
    /// Not valid yet at the time it is judged at.
    NotYetValid,
    /// A member, but not an admin.
    NotAnAdmin,
    /// Undecodable or unusable for signing.
    Invalid,
}

impl std::fmt::Display for SignerFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SignerFault::NotAMember => "not an admin of an organisation of the channel",
            SignerFault::Revoked => "certificate revoked by the channel's current CRLs",
            SignerFault::Expired => "certificate expired",
            SignerFault::NotYetValid => "certificate not valid yet",
            SignerFault::NotAnAdmin => "not an admin (role admin required)",
            SignerFault::Invalid => "invalid signer",
        })
    }
}

/// Why a config update was refused (or could not be made).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigUpdateError {
    /// The envelope is of another type.
    #[error(
        "not a config update (header type {0}): make one with `channels config-update envelope`, whose header type \
         is CONFIG_UPDATE (2)"
    )]
    NotAConfigUpdate(i32),
    /// The envelope layers, channel, creator, signature or tx id are wrong.
    #[error("config update envelope refused: {0}")]
    Envelope(#[from] EnvelopeError),
    /// The channel header has no timestamp.
    #[error(
        "config update has no timestamp in its channel header; certificates are judged at that time: wrap the \
         update with `channels config-update envelope`"
    )]
    MissingTimestamp,
    /// A submitted update's timestamp is too far from the orderer's clock.
    #[error(
        "config update is stamped {} but this orderer's clock says {} ({skew_seconds} s apart; at most \
         {TIMESTAMP_SKEW_SECONDS_MAX} s = 15 minutes is accepted): wrap it again with `channels config-update \
         envelope` and submit it right away, or fix the submitter's clock",
        rfc3339(*timestamp), rfc3339(*now)
    )]
    TimestampSkew {
        /// The envelope's timestamp, unix seconds.
        timestamp: i64,
        /// The orderer's clock, unix seconds.
        now: i64,
        /// |timestamp − now|.
        skew_seconds: i64,
    },
    /// The payload is not a `bftorderer.ConfigUpdateEnvelope`.
    #[error("config update payload is not a ConfigUpdateEnvelope: {0}")]
    Malformed(String),
    /// More signatures than [`SIGNATURES_MAX`].
    #[error("config update carries {count} admin signatures; at most {max} are accepted (one per admin is enough)")]
    TooManySignatures {
        /// Signatures present (or that would be).
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The proposed configuration does not decode canonically or is invalid.
    #[error("proposed configuration is invalid: {0}; fix it and create the update again")]
    InvalidConfig(ConfigError),
    /// The proposed configuration names another channel.
    #[error("proposed configuration is for channel {found:?}, not {expected:?}")]
    WrongChannel {
        /// This channel.
        expected: String,
        /// The channel of the proposed configuration.
        found: String,
    },
    /// The proposed sequence is not current + 1.
    #[error(
        "proposed configuration has sequence {found}, but the channel is at sequence {current} so an update must \
         carry {}: create it again from the channel's latest configuration with `channels config-update create`",
        current.saturating_add(1)
    )]
    WrongSequence {
        /// The current configuration's sequence.
        current: u64,
        /// The proposed configuration's sequence.
        found: u64,
    },
    /// A setting that may not change after genesis changes.
    #[error(
        "config update changes {field} from {current} to {proposed}; it cannot change once the channel exists \
         (the epoch switch relies on it): keep {current}"
    )]
    Immutable {
        /// The setting.
        field: &'static str,
        /// Its current value.
        current: String,
        /// The proposed value.
        proposed: String,
    },
    /// More than one consenter added or removed.
    #[error(
        "config update adds consenters {added:?} and removes {removed:?}; an update may add or remove at most one \
         consenter (so that every step keeps a quorum): split it into several updates"
    )]
    TooManyConsenterChanges {
        /// Ids added.
        added: Vec<u32>,
        /// Ids removed.
        removed: Vec<u32>,
    },
    /// A kept consenter id moves to another organisation.
    #[error(
        "config update moves consenter {id} from {from} to {to}; a consenter id keeps its organisation: remove it \
         in one update and add a new id in the next"
    )]
    ConsenterChangedOrg {
        /// Consenter id.
        id: u32,
        /// Current MSP id.
        from: String,
        /// Proposed MSP id.
        to: String,
    },
    /// An admin signature's signer is not acceptable.
    #[error("admin signature {index} (claimed MSP {msp_id:?}) refused, {fault}: {reason}")]
    BadSigner {
        /// Position in the signature list.
        index: usize,
        /// The MSP id the signer claims.
        msp_id: String,
        /// What kind of problem.
        fault: SignerFault,
        /// Details.
        reason: String,
    },
    /// An admin signature does not verify.
    #[error(
        "admin signature {index} by {msp_id} does not verify over its signature header and the proposed \
         configuration (was the configuration changed after signing?): collect the signatures again"
    )]
    BadSignature {
        /// Position in the signature list.
        index: usize,
        /// The signer's MSP id.
        msp_id: String,
    },
    /// Two signatures by the same certificate.
    #[error("admin signatures {first} and {second} are by the same certificate: remove one of them")]
    DuplicateSigner {
        /// The first.
        first: usize,
        /// The repeat.
        second: usize,
    },
    /// Too few organisations' admins signed.
    #[error(
        "config update has admin signatures of {signed} of {orgs} organisations ({}); the channel's admin policy \
         `{policy}` needs {needed}: collect more with `channels config-update sign`",
        list_or_none(signer_orgs)
    )]
    PolicyNotSatisfied {
        /// The current admin policy.
        policy: String,
        /// Organisations with a valid admin signature.
        signed: usize,
        /// Organisations of the current configuration.
        orgs: usize,
        /// Organisations the policy needs.
        needed: usize,
        /// Which organisations signed.
        signer_orgs: Vec<String>,
    },
    /// `sign_update` by a certificate that already signed.
    #[error("this admin certificate of {msp_id} has already signed the update; ask another admin")]
    AlreadySigned {
        /// The admin's MSP id.
        msp_id: String,
    },
    /// Signing failed (building side).
    #[error("cannot sign the config update: {0}")]
    Signing(String),
    /// No configuration can be read from the given block or envelope.
    #[error("cannot read the current configuration: {0}")]
    NoCurrentConfig(String),
}

fn list_or_none(orgs: &[String]) -> String {
    if orgs.is_empty() {
        "none".into()
    } else {
        orgs.join(", ")
    }
}

/// Who must approve a configuration update (the current configuration's
/// `admin_policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminPolicy {
    /// More than half of the organisations.
    Majority,
    /// Every organisation.
    All,
    /// Any one organisation.
    Any,
}

impl AdminPolicy {
    /// Parses `majority`, `all` or `any`.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        match text {
            "majority" => Ok(AdminPolicy::Majority),
            "all" => Ok(AdminPolicy::All),
            "any" => Ok(AdminPolicy::Any),
            other => Err(ConfigError::UnknownAdminPolicy(other.to_string())),
        }
    }

    /// The policy's name.
    pub fn as_str(self) -> &'static str {
        match self {
            AdminPolicy::Majority => "majority",
            AdminPolicy::All => "all",
            AdminPolicy::Any => "any",
        }
    }

    /// How many of `orgs` organisations must sign.
    pub fn needed(self, orgs: usize) -> usize {
        match self {
            AdminPolicy::Majority => orgs / 2 + 1,
            AdminPolicy::All => orgs,
            AdminPolicy::Any => 1,
        }
    }
}

/// What the consenter set does in an update.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsenterChanges {
    /// The consenter id added, if any.
    pub added: Option<u32>,
    /// The consenter id removed, if any.
    pub removed: Option<u32>,
    /// Kept consenters whose certificates, endpoint or MAC key changed.
    pub changed: Vec<u32>,
}

/// A verified configuration update.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigUpdated {
    /// The new configuration (validated).
    pub config: ChannelConfig,
    /// The envelope's transaction id.
    pub tx_id: String,
    /// The organisations with a valid admin signature, in the current
    /// configuration's order.
    pub signer_orgs: Vec<String>,
    /// The consenter id added, if any.
    pub added: Option<u32>,
    /// The consenter id removed, if any.
    pub removed: Option<u32>,
    /// Kept consenters whose certificates, endpoint or MAC key changed.
    pub changed: Vec<u32>,
}

/// An unsigned update proposing `next` (whose sequence must be the current
/// one + 1).
pub fn propose(next: &ChannelConfig) -> ConfigUpdateEnvelope {
    ConfigUpdateEnvelope { config: next.to_canonical_bytes(), signatures: Vec::new() }
}

/// What an admin signs: `signature_header ‖ config`.
fn signed_bytes(signature_header: &[u8], config: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(signature_header.len() + config.len());
    bytes.extend_from_slice(signature_header);
    bytes.extend_from_slice(config);
    bytes
}

fn fresh_nonce() -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    nonce
}

/// The certificate (DER) behind a signature header, if it decodes.
fn signer_cert_der(signature_header: &[u8]) -> Option<Vec<u8>> {
    let header = SignatureHeader::decode(signature_header).ok()?;
    let creator = SerializedIdentity::decode(header.creator.as_slice()).ok()?;
    ca_tools::pemutil::cert_der(&creator.id_bytes).ok()
}

/// Adds `admin`'s signature (fresh nonce) to `update`. Refuses an update
/// whose config does not decode canonically, a second signature by the same
/// certificate, and more than [`SIGNATURES_MAX`] signatures. Whether the
/// signer is an admin of the channel is for the verifier to judge.
pub fn sign_update(update: &mut ConfigUpdateEnvelope, admin: &Msp) -> Result<(), ConfigUpdateError> {
    ChannelConfig::from_canonical_bytes(&update.config).map_err(ConfigUpdateError::InvalidConfig)?;
    let count = update.signatures.len() + 1;
    if count > SIGNATURES_MAX {
        return Err(ConfigUpdateError::TooManySignatures { count, max: SIGNATURES_MAX });
    }
    let mine = ca_tools::pemutil::cert_der(admin.signcert_pem.as_bytes())
        .map_err(|e| ConfigUpdateError::Signing(format!("the admin's certificate cannot be read: {e}")))?;
    if update.signatures.iter().any(|s| signer_cert_der(&s.signature_header).as_deref() == Some(mine.as_slice())) {
        return Err(ConfigUpdateError::AlreadySigned { msp_id: admin.msp_id.clone() });
    }
    let creator = serialized_identity(&admin.msp_id, &admin.signcert_pem);
    let signature_header = SignatureHeader { creator, nonce: fresh_nonce().to_vec() }.encode_to_vec();
    let signature = admin
        .key
        .sign(&signed_bytes(&signature_header, &update.config))
        .map_err(|e| ConfigUpdateError::Signing(e.to_string()))?;
    update.signatures.push(ConfigSignature { signature_header, signature });
    assert_eq!(update.signatures.len(), count);
    Ok(())
}

/// The CONFIG_UPDATE envelope carrying `update` for `channel_id`, created
/// and signed by `submitter` (any member of a current organisation) and
/// stamped `timestamp_unix` (certificates are judged at that time).
pub fn update_envelope(
    channel_id: &str,
    update: &ConfigUpdateEnvelope,
    submitter: &Msp,
    timestamp_unix: i64,
) -> Result<Envelope, ConfigUpdateError> {
    let data = update.encode_to_vec();
    Ok(build_envelope(channel_id, submitter, &data, HeaderType::ConfigUpdate, timestamp_unix, &fresh_nonce())?)
}

/// Whether `bytes` claims to be a config update (header type only; no
/// signature check).
pub fn is_config_update(bytes: &[u8]) -> bool {
    decode_envelope(bytes, CONFIG_UPDATE_BYTES_MAX)
        .is_ok_and(|d| d.channel_header.r#type == HeaderType::ConfigUpdate as i32)
}

/// Checks that `next` may follow `current`, judging certificates at
/// `at_unix`: same channel, sequence + 1, unchanged checkpoint interval,
/// `next` fully valid, at most one consenter added or removed, kept
/// consenters keep their organisation. Returns what happens to the
/// consenters. Signatures are not looked at.
pub fn check_transition(
    current: &ChannelConfig,
    next: &ChannelConfig,
    at_unix: i64,
) -> Result<ConsenterChanges, ConfigUpdateError> {
    if next.channel_id != current.channel_id {
        return Err(ConfigUpdateError::WrongChannel {
            expected: current.channel_id.clone(),
            found: next.channel_id.clone(),
        });
    }
    if current.sequence.checked_add(1) != Some(next.sequence) {
        return Err(ConfigUpdateError::WrongSequence { current: current.sequence, found: next.sequence });
    }
    let interval = |c: &ChannelConfig| c.bft.as_ref().map(|b| b.checkpoint_interval);
    if interval(current) != interval(next) {
        let show = |v: Option<u64>| v.map_or_else(|| "unset".to_string(), |v| v.to_string());
        return Err(ConfigUpdateError::Immutable {
            field: "bft.checkpoint_interval",
            current: show(interval(current)),
            proposed: show(interval(next)),
        });
    }
    next.validate_at(at_unix).map_err(ConfigUpdateError::InvalidConfig)?;
    let before: BTreeMap<u32, &Consenter> = current.consenters.iter().map(|c| (c.id, c)).collect();
    let after: BTreeMap<u32, &Consenter> = next.consenters.iter().map(|c| (c.id, c)).collect();
    let added: Vec<u32> = after.keys().filter(|id| !before.contains_key(id)).copied().collect();
    let removed: Vec<u32> = before.keys().filter(|id| !after.contains_key(id)).copied().collect();
    if added.len() + removed.len() > 1 {
        return Err(ConfigUpdateError::TooManyConsenterChanges { added, removed });
    }
    let mut changed = Vec::new();
    for (id, old) in &before {
        let Some(new) = after.get(id) else { continue };
        if new.msp_id != old.msp_id {
            return Err(ConfigUpdateError::ConsenterChangedOrg {
                id: *id,
                from: old.msp_id.clone(),
                to: new.msp_id.clone(),
            });
        }
        if new != old {
            changed.push(*id);
        }
    }
    Ok(ConsenterChanges { added: added.first().copied(), removed: removed.first().copied(), changed })
}

/// Verifies config updates against the channel's CURRENT configuration,
/// with its trust anchors parsed once.
pub struct ConfigUpdateVerifier {
    current: ChannelConfig,
    trust: ChannelTrust,
    policy: AdminPolicy,
}

impl ConfigUpdateVerifier {
    /// Prepares to verify updates of `current` (its structure is checked and
    /// its organisations' trust anchors parsed).
    pub fn new(current: &ChannelConfig) -> Result<Self, ConfigError> {
        current.validate_structure()?;
        let policy = AdminPolicy::parse(&current.admin_policy)?;
        Ok(Self { current: current.clone(), trust: ChannelTrust::new(current)?, policy })
    }

    /// The configuration updates are checked against.
    pub fn current(&self) -> &ChannelConfig {
        &self.current
    }

    /// The deterministic check every replica runs on the ordered bytes: a
    /// function of the bytes and the current configuration only (no clock).
    /// Certificates are judged at the envelope's timestamp.
    pub fn verify(&self, envelope_bytes: &[u8]) -> Result<ConfigUpdated, ConfigUpdateError> {
        self.check(envelope_bytes, None)
    }

    /// Admission at the API: the timestamp is within
    /// [`TIMESTAMP_SKEW_SECONDS_MAX`] of `now_unix`, then [`Self::verify`],
    /// with the submitter's and admins' certificates also valid now.
    pub fn verify_submitted(&self, envelope_bytes: &[u8], now_unix: i64) -> Result<ConfigUpdated, ConfigUpdateError> {
        let decoded = self.decode(envelope_bytes)?;
        let timestamp = timestamp_of(&decoded)?;
        let skew_seconds = timestamp.saturating_sub(now_unix).saturating_abs();
        if skew_seconds > TIMESTAMP_SKEW_SECONDS_MAX {
            return Err(ConfigUpdateError::TimestampSkew { timestamp, now: now_unix, skew_seconds });
        }
        self.check(envelope_bytes, Some(now_unix))
    }

    fn decode(&self, bytes: &[u8]) -> Result<DecodedEnvelope, ConfigUpdateError> {
        let decoded = decode_envelope(bytes, CONFIG_UPDATE_BYTES_MAX)?;
        if decoded.channel_header.r#type != HeaderType::ConfigUpdate as i32 {
            return Err(ConfigUpdateError::NotAConfigUpdate(decoded.channel_header.r#type));
        }
        Ok(decoded)
    }

    /// Every check, at the envelope's timestamp and, when given, also at
    /// `now_unix`.
    fn check(&self, bytes: &[u8], now_unix: Option<i64>) -> Result<ConfigUpdated, ConfigUpdateError> {
        let decoded = self.decode(bytes)?;
        let at = timestamp_of(&decoded)?;
        // Channel, creator (a member of a current org at `at`), envelope
        // signature and tx id.
        let envelope = verify_envelope(bytes, &self.trust, at, CONFIG_UPDATE_BYTES_MAX)?;
        if let Some(now) = now_unix {
            verify_envelope(bytes, &self.trust, now, CONFIG_UPDATE_BYTES_MAX)?;
        }
        let update = ConfigUpdateEnvelope::decode(decoded.payload.data.as_slice())
            .map_err(|e| ConfigUpdateError::Malformed(e.to_string()))?;
        if update.signatures.len() > SIGNATURES_MAX {
            return Err(ConfigUpdateError::TooManySignatures { count: update.signatures.len(), max: SIGNATURES_MAX });
        }
        let next = ChannelConfig::from_canonical_bytes(&update.config).map_err(ConfigUpdateError::InvalidConfig)?;
        let changes = check_transition(&self.current, &next, at)?;
        let signer_orgs = self.signer_orgs(&update, at, now_unix)?;
        let needed = self.policy.needed(self.current.orgs.len());
        if signer_orgs.len() < needed {
            return Err(ConfigUpdateError::PolicyNotSatisfied {
                policy: self.policy.as_str().into(),
                signed: signer_orgs.len(),
                orgs: self.current.orgs.len(),
                needed,
                signer_orgs,
            });
        }
        assert!(next.sequence == self.current.sequence + 1 && !signer_orgs.is_empty());
        Ok(ConfigUpdated {
            config: next,
            tx_id: envelope.tx_id,
            signer_orgs,
            added: changes.added,
            removed: changes.removed,
            changed: changes.changed,
        })
    }

    /// Checks every admin signature (an invalid one is an error, not
    /// ignored) and returns the organisations that signed, in the current
    /// configuration's order; two admins of one org count once.
    fn signer_orgs(
        &self,
        update: &ConfigUpdateEnvelope,
        at: i64,
        now_unix: Option<i64>,
    ) -> Result<Vec<String>, ConfigUpdateError> {
        let mut first_by_cert: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
        let mut signed: BTreeSet<String> = BTreeSet::new();
        for (index, signature) in update.signatures.iter().enumerate() {
            let invalid = |msp_id: &str, reason: String| ConfigUpdateError::BadSigner {
                index,
                msp_id: msp_id.to_string(),
                fault: SignerFault::Invalid,
                reason,
            };
            if signature.signature_header.len() > SIGNATURE_HEADER_BYTES_MAX {
                return Err(invalid(
                    "",
                    format!(
                        "signature header of {} bytes is over the limit of {SIGNATURE_HEADER_BYTES_MAX}",
                        signature.signature_header.len()
                    ),
                ));
            }
            let header = SignatureHeader::decode(signature.signature_header.as_slice())
                .map_err(|e| invalid("", format!("signature header cannot be decoded: {e}")))?;
            let creator = SerializedIdentity::decode(header.creator.as_slice())
                .map_err(|e| invalid("", format!("signer identity cannot be decoded: {e}")))?;
            if header.nonce.is_empty() || header.nonce.len() > MAX_NONCE_LEN {
                return Err(invalid(&creator.mspid, format!("nonce must be 1-{MAX_NONCE_LEN} bytes")));
            }
            let admin_at = |time: i64| {
                verify_identity(&creator.id_bytes, self.trust.orgs(), time, &[Role::Admin])
                    .map_err(|e| signer_error(index, &creator.mspid, e))
            };
            let identity = admin_at(at)?;
            if let Some(now) = now_unix {
                admin_at(now)?;
            }
            if identity.msp_id != creator.mspid {
                return Err(ConfigUpdateError::BadSigner {
                    index,
                    msp_id: creator.mspid.clone(),
                    fault: SignerFault::NotAMember,
                    reason: format!("the certificate is issued by {}", identity.msp_id),
                });
            }
            if let Some(first) = first_by_cert.insert(identity.cert_der.clone(), index) {
                return Err(ConfigUpdateError::DuplicateSigner { first, second: index });
            }
            identity
                .public_key
                .verify(&signed_bytes(&signature.signature_header, &update.config), &signature.signature)
                .map_err(|_| ConfigUpdateError::BadSignature { index, msp_id: identity.msp_id.clone() })?;
            signed.insert(identity.msp_id);
        }
        let ordered: Vec<String> =
            self.current.orgs.iter().filter(|o| signed.contains(&o.msp_id)).map(|o| o.msp_id.clone()).collect();
        assert_eq!(ordered.len(), signed.len());
        Ok(ordered)
    }
}

fn signer_error(index: usize, msp_id: &str, error: VerifyError) -> ConfigUpdateError {
    let reason = error.to_string();
    let fault = match error {
        // A certificate whose issuer name is a member CA's but whose
        // signature is not (an impostor CA) is not a member either.
        VerifyError::UnknownIssuer { .. } | VerifyError::MspMismatch { .. } | VerifyError::BadSignature => {
            SignerFault::NotAMember
        }
        VerifyError::Revoked { .. } => SignerFault::Revoked,
        VerifyError::Expired { .. } => SignerFault::Expired,
        VerifyError::NotYetValid { .. } => SignerFault::NotYetValid,
        VerifyError::WrongRole { .. } => SignerFault::NotAnAdmin,
        VerifyError::Malformed(_) | VerifyError::WrongKeyUsage { .. } | VerifyError::UnsupportedKey(_) => {
            SignerFault::Invalid
        }
    };
    ConfigUpdateError::BadSigner { index, msp_id: msp_id.to_string(), fault, reason }
}

fn timestamp_of(decoded: &DecodedEnvelope) -> Result<i64, ConfigUpdateError> {
    decoded.channel_header.timestamp.as_ref().map(|t| t.seconds).ok_or(ConfigUpdateError::MissingTimestamp)
}

/// The configuration a block establishes, for building the next update: the
/// genesis block's CONFIG envelope, or the config of a block whose only
/// envelope is a CONFIG (or a CONFIG_UPDATE) envelope. The update's
/// signatures are NOT checked here: the operator vouches for the file.
pub fn current_config_from_block(block: &Block) -> Result<ChannelConfig, ConfigUpdateError> {
    let no_config = |reason: String| ConfigUpdateError::NoCurrentConfig(reason);
    if block.number() == 0 {
        return config_from_genesis(block).map_err(|e| no_config(e.to_string()));
    }
    verify_data_hash(block).map_err(|e| no_config(e.to_string()))?;
    let [envelope] = block.envelopes() else {
        return Err(no_config(format!(
            "block {} has {} envelopes; give the genesis block or a block whose only envelope is a config update",
            block.number(),
            block.envelopes().len()
        )));
    };
    current_config_from_envelope(envelope)
}

/// The configuration carried by a CONFIG or CONFIG_UPDATE envelope
/// (signatures not checked; see [`current_config_from_block`]).
pub fn current_config_from_envelope(bytes: &[u8]) -> Result<ChannelConfig, ConfigUpdateError> {
    let decoded = decode_envelope(bytes, CONFIG_UPDATE_BYTES_MAX)?;
    let data = &decoded.payload.data;
    let header_type = decoded.channel_header.r#type;
    let config_bytes = if header_type == HeaderType::Config as i32 {
        data.clone()
    } else if header_type == HeaderType::ConfigUpdate as i32 {
        ConfigUpdateEnvelope::decode(data.as_slice()).map_err(|e| ConfigUpdateError::Malformed(e.to_string()))?.config
    } else {
        return Err(ConfigUpdateError::NoCurrentConfig(format!(
            "envelope of header type {header_type} carries no channel configuration (CONFIG or CONFIG_UPDATE needed)"
        )));
    };
    let config = ChannelConfig::from_canonical_bytes(&config_bytes).map_err(ConfigUpdateError::InvalidConfig)?;
    config.validate_structure().map_err(ConfigUpdateError::InvalidConfig)?;
    Ok(config)
}

/// A human-readable account of what changes from `current` to `next`, one
/// line per change (for the CLI).
pub fn diff_summary(current: &ChannelConfig, next: &ChannelConfig) -> String {
    let mut lines = Vec::new();
    if current.channel_id != next.channel_id {
        lines.push(format!("channel id {} -> {} (will be refused)", current.channel_id, next.channel_id));
    }
    lines.push(format!("sequence {} -> {}", current.sequence, next.sequence));
    diff_consenters(current, next, &mut lines);
    diff_orgs(current, next, &mut lines);
    if current.batch != next.batch {
        lines.push(format!("batch settings {} -> {}", compact(&current.batch), compact(&next.batch)));
    }
    if current.bft != next.bft {
        lines.push(format!("BFT options {} -> {}", compact(&current.bft), compact(&next.bft)));
    }
    if current.key_rotation != next.key_rotation {
        lines.push(format!("key rotation {} -> {}", compact(&current.key_rotation), compact(&next.key_rotation)));
    }
    if current.admin_policy != next.admin_policy {
        lines.push(format!("admin policy {} -> {}", current.admin_policy, next.admin_policy));
    }
    if lines.len() == 1 {
        lines.push("no change besides the sequence".into());
    }
    lines.join("\n")
}

/// One-line JSON of a configuration section ("unset" when absent).
fn compact<T: serde::Serialize>(section: &Option<T>) -> String {
    match section {
        Some(value) => serde_json::to_string(value).unwrap_or_else(|e| format!("<{e}>")),
        None => "unset".into(),
    }
}

fn diff_consenters(current: &ChannelConfig, next: &ChannelConfig, lines: &mut Vec<String>) {
    for new in &next.consenters {
        let Some(old) = current.consenter(new.id) else {
            lines.push(format!("added consenter {} ({}) at {}", new.id, new.msp_id, new.endpoint()));
            continue;
        };
        if old.msp_id != new.msp_id {
            lines.push(format!("moved consenter {} from {} to {} (will be refused)", new.id, old.msp_id, new.msp_id));
        }
        if old.endpoint() != new.endpoint() {
            lines.push(format!("moved consenter {} from {} to {}", new.id, old.endpoint(), new.endpoint()));
        }
        if old.identity_cert != new.identity_cert {
            lines.push(format!("rotated identity certificate of consenter {}", new.id));
        }
        if old.tls_cert != new.tls_cert {
            lines.push(format!("rotated TLS certificate of consenter {}", new.id));
        }
        if old.mac_public_key != new.mac_public_key {
            lines.push(format!("changed MAC public key of consenter {}", new.id));
        }
    }
    for old in &current.consenters {
        if next.consenter(old.id).is_none() {
            lines.push(format!("removed consenter {} ({}) at {}", old.id, old.msp_id, old.endpoint()));
        }
    }
}

fn diff_orgs(current: &ChannelConfig, next: &ChannelConfig, lines: &mut Vec<String>) {
    for new in &next.orgs {
        match current.org(&new.msp_id) {
            None => lines.push(format!("added organisation {}", new.msp_id)),
            Some(old) => {
                if old.root_certs != new.root_certs || old.tls_root_certs != new.tls_root_certs {
                    lines.push(format!("changed root CAs of organisation {}", new.msp_id));
                }
                if old.crls != new.crls {
                    lines.push(format!(
                        "changed CRLs of organisation {} ({} -> {})",
                        new.msp_id,
                        old.crls.len(),
                        new.crls.len()
                    ));
                }
            }
        }
    }
    for old in &current.orgs {
        if next.org(&old.msp_id).is_none() {
            lines.push(format!("removed organisation {}", old.msp_id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_policies_count_organisations() {
        let needed = |p: AdminPolicy| [1, 2, 3, 4, 5].map(|orgs| p.needed(orgs));
        assert_eq!(needed(AdminPolicy::Majority), [1, 2, 2, 3, 3]);
        assert_eq!(needed(AdminPolicy::All), [1, 2, 3, 4, 5]);
        assert_eq!(needed(AdminPolicy::Any), [1, 1, 1, 1, 1]);
        assert!(AdminPolicy::parse("most").is_err());
    }

    #[test]
    fn bytes_that_are_not_an_envelope_are_not_a_config_update() {
        assert!(!is_config_update(b"not an envelope"));
        assert!(current_config_from_envelope(b"\xff\xff").is_err());
    }
}

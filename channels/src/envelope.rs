//! Envelope signing and verification in Fabric's layout.
//!
//! An envelope is `Envelope { payload, signature }` where `payload` is an
//! encoded `Payload { header: Header { channel_header, signature_header },
//! data }`, the creator in the `SignatureHeader` is an encoded
//! `msp.SerializedIdentity { mspid, id_bytes = PEM certificate }`, and the
//! signature is the creator's signature over the payload bytes (ECDSA P-256
//! over SHA-256, DER, low-S; or Ed25519). The transaction id is
//! `hex(SHA-256(nonce ‖ creator))`, as Fabric's `protoutil.ComputeTxID`.

use ca_tools::{IdentityVerifier, Msp, OrgTrust, Role};
use prost::Message;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};

use crate::config::{unix_now, ChannelConfig, ConfigError};
use crate::proto::common::{ChannelHeader, Envelope, Header, HeaderType, Payload, SignatureHeader};
use crate::proto::msp::SerializedIdentity;

/// Length of the nonce [`build_envelope_now`] draws (as Fabric's SDKs).
pub const NONCE_LEN: usize = 24;
/// Longest nonce accepted in a signature header.
pub const MAX_NONCE_LEN: usize = 1024;
/// A sensible default for `max_bytes` (Fabric's default absolute max).
pub const DEFAULT_MAX_ENVELOPE_BYTES: usize = 10 * 1024 * 1024;

/// Why an envelope was refused (or could not be built).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    /// Bigger than the caller's limit; nothing was decoded.
    #[error("envelope is {size} bytes, over the limit of {max}")]
    TooLarge {
        /// Size received.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The envelope, payload, headers or creator cannot be decoded.
    #[error("malformed envelope: {0}")]
    Malformed(String),
    /// The envelope is for another channel.
    #[error("envelope is for channel {found:?}, not {expected:?}")]
    WrongChannel {
        /// This channel.
        expected: String,
        /// The channel named in the header.
        found: String,
    },
    /// The creator is not issued by any organisation of the channel, or
    /// claims another MSP than the one that issued it.
    #[error("creator is not a member of the channel: {0}")]
    UnknownCreator(String),
    /// The creator's certificate is revoked.
    #[error("creator certificate is revoked: {0}")]
    RevokedCreator(String),
    /// The creator's certificate has expired.
    #[error("creator certificate has expired: {0}")]
    ExpiredCreator(String),
    /// The creator's certificate is not valid yet.
    #[error("creator certificate is not valid yet: {0}")]
    CreatorNotYetValid(String),
    /// The creator's role may not submit this kind of envelope.
    #[error("creator's role may not submit this envelope: {0}")]
    WrongRole(String),
    /// The creator's certificate is unusable for another reason.
    #[error("creator certificate is invalid: {0}")]
    InvalidCreator(String),
    /// The signature does not verify with the creator's key.
    #[error("envelope signature does not verify with the creator's certificate")]
    BadSignature,
    /// The header's tx id is not the one computed from nonce and creator.
    #[error("tx id {found:?} in the channel header is not hex(SHA-256(nonce || creator)) = {expected:?}")]
    TxIdMismatch {
        /// Computed tx id.
        expected: String,
        /// Tx id in the header.
        found: String,
    },
    /// Signing failed (building side).
    #[error("cannot sign the envelope: {0}")]
    Signing(String),
}

/// The trust a channel puts in its members, prepared once for verifying
/// many envelopes.
pub struct ChannelTrust {
    /// The channel id envelopes must name.
    pub channel_id: String,
    /// Every organisation's trust anchors, and the creators verified so far.
    identities: IdentityVerifier,
}

impl ChannelTrust {
    /// Parses the trust anchors of `config`'s organisations.
    pub fn new(config: &ChannelConfig) -> Result<Self, ConfigError> {
        Ok(ChannelTrust {
            channel_id: config.channel_id.clone(),
            identities: IdentityVerifier::new(config.org_trust()?),
        })
    }

    /// Every organisation's trust anchors.
    pub fn orgs(&self) -> &[OrgTrust] {
        self.identities.orgs()
    }
}

/// What a verified envelope is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedEnvelope {
    /// The transaction id (checked).
    pub tx_id: String,
    /// The channel (checked).
    pub channel_id: String,
    /// MSP id of the creator (checked against its certificate).
    pub creator_msp: String,
    /// Role carried by the creator's certificate.
    pub creator_role: Role,
    /// Header type.
    pub header_type: HeaderType,
    /// Encoded size in bytes.
    pub size: usize,
}

/// The transaction id of a payload: `hex(SHA-256(nonce ‖ creator))`.
pub fn compute_tx_id(nonce: &[u8], creator: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(nonce);
    hasher.update(creator);
    hex::encode(hasher.finalize())
}

/// The encoded `msp.SerializedIdentity` of a signer.
pub fn serialized_identity(msp_id: &str, cert_pem: &str) -> Vec<u8> {
    SerializedIdentity { mspid: msp_id.to_string(), id_bytes: cert_pem.as_bytes().to_vec() }.encode_to_vec()
}

/// Builds the payload of an envelope signed by `msp`: channel header (type,
/// version 0, `timestamp_secs`, channel id, tx id, epoch 0) and signature
/// header (creator, `nonce`), then `data`.
pub fn build_payload(
    channel_id: &str,
    msp: &Msp,
    data: &[u8],
    header_type: HeaderType,
    timestamp_secs: i64,
    nonce: &[u8],
) -> Payload {
    let creator = serialized_identity(&msp.msp_id, &msp.signcert_pem);
    let channel_header = ChannelHeader {
        r#type: header_type as i32,
        version: 0,
        timestamp: Some(prost_types::Timestamp { seconds: timestamp_secs, nanos: 0 }),
        channel_id: channel_id.to_string(),
        tx_id: compute_tx_id(nonce, &creator),
        epoch: 0,
        extension: Vec::new(),
        tls_cert_hash: Vec::new(),
    };
    let signature_header = SignatureHeader { creator, nonce: nonce.to_vec() };
    Payload {
        header: Some(Header {
            channel_header: channel_header.encode_to_vec(),
            signature_header: signature_header.encode_to_vec(),
        }),
        data: data.to_vec(),
    }
}

/// Encodes `payload` and signs the bytes with `msp`'s key.
pub fn sign_payload(msp: &Msp, payload: &Payload) -> Result<Envelope, EnvelopeError> {
    let payload = payload.encode_to_vec();
    let signature = msp.key.sign(&payload).map_err(|e| EnvelopeError::Signing(e.to_string()))?;
    Ok(Envelope { payload, signature })
}

/// A signed envelope of `data` for `channel_id` by `msp`, with the given time
/// and nonce (deterministic apart from ECDSA's signature randomness).
pub fn build_envelope(
    channel_id: &str,
    msp: &Msp,
    data: &[u8],
    header_type: HeaderType,
    timestamp_secs: i64,
    nonce: &[u8],
) -> Result<Envelope, EnvelopeError> {
    let payload = build_payload(channel_id, msp, data, header_type, timestamp_secs, nonce);
    sign_payload(msp, &payload)
}

/// [`build_envelope`] at the current time with a random 24-byte nonce.
pub fn build_envelope_now(
    channel_id: &str,
    msp: &Msp,
    data: &[u8],
    header_type: HeaderType,
) -> Result<Envelope, EnvelopeError> {
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    build_envelope(channel_id, msp, data, header_type, unix_now(), &nonce)
}

/// The decoded layers of an envelope, before any check of trust.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedEnvelope {
    /// The envelope.
    pub envelope: Envelope,
    /// Its payload.
    pub payload: Payload,
    /// The payload's channel header.
    pub channel_header: ChannelHeader,
    /// The payload's signature header.
    pub signature_header: SignatureHeader,
    /// The creator in the signature header (empty for unsigned envelopes such
    /// as a genesis config envelope).
    pub creator: SerializedIdentity,
}

/// Decodes every layer of an envelope (bounded by `max_bytes`), without
/// checking channel, creator or signature.
pub fn decode_envelope(bytes: &[u8], max_bytes: usize) -> Result<DecodedEnvelope, EnvelopeError> {
    if bytes.len() > max_bytes {
        return Err(EnvelopeError::TooLarge { size: bytes.len(), max: max_bytes });
    }
    let malformed = |what: &str, e: prost::DecodeError| EnvelopeError::Malformed(format!("{what}: {e}"));
    let envelope = Envelope::decode(bytes).map_err(|e| malformed("envelope", e))?;
    let payload = Payload::decode(envelope.payload.as_slice()).map_err(|e| malformed("payload", e))?;
    let header = payload.header.as_ref().ok_or_else(|| EnvelopeError::Malformed("payload has no header".into()))?;
    let channel_header =
        ChannelHeader::decode(header.channel_header.as_slice()).map_err(|e| malformed("channel header", e))?;
    let signature_header =
        SignatureHeader::decode(header.signature_header.as_slice()).map_err(|e| malformed("signature header", e))?;
    let creator = SerializedIdentity::decode(signature_header.creator.as_slice())
        .map_err(|e| malformed("creator identity", e))?;
    if signature_header.nonce.len() > MAX_NONCE_LEN {
        return Err(EnvelopeError::Malformed(format!(
            "nonce of {} bytes is longer than {MAX_NONCE_LEN}",
            signature_header.nonce.len()
        )));
    }
    Ok(DecodedEnvelope { envelope, payload, channel_header, signature_header, creator })
}

/// The roles that may create an envelope of `header_type`: clients, peers
/// and admins write; orderers too for configuration transactions; key
/// announcements only orderers.
pub fn allowed_roles(header_type: HeaderType) -> &'static [Role] {
    match header_type {
        HeaderType::Config | HeaderType::ConfigUpdate | HeaderType::OrdererTransaction => {
            &[Role::Client, Role::Peer, Role::Admin, Role::Orderer]
        }
        HeaderType::Message
        | HeaderType::EndorserTransaction
        | HeaderType::DeliverSeekInfo
        | HeaderType::ChaincodePackage => &[Role::Client, Role::Peer, Role::Admin],
        // Only consenters announce keys (and only for themselves: see
        // `crate::announcement`).
        HeaderType::BftKeyAnnouncement => &[Role::Orderer],
    }
}

/// Verifies a submitted envelope for the channel of `trust` at unix time
/// `now_unix`: size bound first, then decoding, channel, creator (chains to
/// one of the channel's organisations, not revoked, valid now, allowed
/// role), signature over the payload bytes, and tx id.
pub fn verify_envelope(
    bytes: &[u8],
    trust: &ChannelTrust,
    now_unix: i64,
    max_bytes: usize,
) -> Result<VerifiedEnvelope, EnvelopeError> {
    let decoded = decode_envelope(bytes, max_bytes)?;
    let channel_header = &decoded.channel_header;
    let header_type = HeaderType::try_from(channel_header.r#type)
        .map_err(|_| EnvelopeError::Malformed(format!("unknown header type {}", channel_header.r#type)))?;
    if channel_header.channel_id != trust.channel_id {
        return Err(EnvelopeError::WrongChannel {
            expected: trust.channel_id.clone(),
            found: channel_header.channel_id.clone(),
        });
    }
    if decoded.signature_header.nonce.is_empty() {
        return Err(EnvelopeError::Malformed("signature header has no nonce".into()));
    }
    let verified =
        crate::pki::verify_creator(&decoded.creator.id_bytes, &trust.identities, now_unix, allowed_roles(header_type))?;
    let identity = &verified.identity;
    if identity.msp_id != decoded.creator.mspid {
        return Err(EnvelopeError::UnknownCreator(format!(
            "creator claims MSP {:?} but its certificate is issued by {:?}",
            decoded.creator.mspid, identity.msp_id
        )));
    }
    verified
        .key
        .verify(&decoded.envelope.payload, &decoded.envelope.signature)
        .map_err(|_| EnvelopeError::BadSignature)?;
    let expected = compute_tx_id(&decoded.signature_header.nonce, &decoded.signature_header.creator);
    if channel_header.tx_id != expected {
        return Err(EnvelopeError::TxIdMismatch { expected, found: channel_header.tx_id.clone() });
    }
    Ok(VerifiedEnvelope {
        tx_id: expected,
        channel_id: channel_header.channel_id.clone(),
        creator_msp: identity.msp_id.clone(),
        creator_role: identity.role,
        header_type,
        size: bytes.len(),
    })
}

//! Key announcements: the transaction by which a consenter publishes the
//! fresh X25519 public key of its pairwise MAC keys for the next epoch.
//!
//! An announcement is a Fabric envelope whose channel header has type
//! [`HeaderType::BftKeyAnnouncement`] (100, not a Fabric value) and whose
//! payload data is an encoded `bftorderer.KeyAnnouncement { consenter_id,
//! epoch, x25519_public_key }`. Its creator is the announcing consenter's
//! identity certificate exactly as pinned in the channel configuration, and
//! the envelope is signed with that certificate's key. Only the consenter
//! itself can therefore announce a key for its id.
//!
//! Two checks exist:
//! - [`AnnouncementVerifier::verify`] is deterministic (no clock, no CRL):
//!   every replica runs it at execution and must reach the same answer on
//!   the same bytes. It checks the layout, the channel, the pinned creator,
//!   the signature, the tx id and the key length.
//! - [`AnnouncementVerifier::verify_submitted`] adds the full envelope
//!   verification of [`verify_envelope`] (certificate chain, validity now,
//!   revocation, orderer role), for admission.

use std::collections::BTreeMap;

use ca_tools::{Msp, PublicKey};
use prost::Message;
use rand_core::{OsRng, RngCore};

use crate::config::{unix_now, ChannelConfig};
use crate::envelope::{
    build_envelope, compute_tx_id, decode_envelope, verify_envelope, ChannelTrust, EnvelopeError, NONCE_LEN,
};
use crate::proto::bftorderer::KeyAnnouncement;
use crate::proto::common::{Envelope, HeaderType};

/// Length of an X25519 public key.
pub const X25519_KEY_LEN: usize = 32;
/// Largest announcement envelope accepted (they are a few KB: the
/// certificate dominates).
pub const ANNOUNCEMENT_BYTES_MAX: usize = 64 * 1024;

/// Why an envelope is not a valid key announcement.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AnnouncementError {
    /// The envelope's header type is not `BFT_KEY_ANNOUNCEMENT`.
    #[error("not a key announcement (header type {0})")]
    NotAnAnnouncement(i32),
    /// The envelope layers do not decode, or the envelope check failed.
    #[error("key announcement refused: {0}")]
    Envelope(#[from] EnvelopeError),
    /// The payload data is not a `bftorderer.KeyAnnouncement`.
    #[error("key announcement payload cannot be decoded: {0}")]
    Malformed(String),
    /// The announced id is not a consenter of the channel.
    #[error("key announcement for consenter {0}, which is not a consenter of the channel")]
    UnknownConsenter(u32),
    /// The creator is not the identity certificate pinned for the announced id.
    #[error(
        "key announcement for consenter {0} is not created by that consenter's identity certificate as pinned in \
         the channel configuration: only a consenter may announce its own key"
    )]
    NotTheConsenter(u32),
    /// The signature does not verify with the pinned certificate's key.
    #[error("key announcement signature does not verify with consenter {0}'s pinned identity certificate")]
    BadSignature(u32),
    /// The key is not 32 bytes.
    #[error("announced X25519 public key is {0} bytes; it must be exactly {X25519_KEY_LEN}")]
    BadKeyLength(usize),
    /// Epoch 0 is never announced (epochs start at 1 with the genesis keys).
    #[error("key announcement for epoch 0: announcements introduce epoch 2 or later")]
    BadEpoch,
}

/// A verified key announcement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announced {
    /// The announcing consenter.
    pub consenter: u32,
    /// The epoch the key is for.
    pub epoch: u64,
    /// The X25519 public key.
    pub public_key: [u8; X25519_KEY_LEN],
    /// The envelope's transaction id (hex).
    pub tx_id: String,
}

/// Builds a signed announcement of `public_key` for `epoch` by consenter
/// `consenter_id`, whose identity is `msp` (its certificate must be the one
/// pinned in the channel configuration for the announcement to count).
pub fn build_announcement(
    channel_id: &str,
    msp: &Msp,
    consenter_id: u32,
    epoch: u64,
    public_key: &[u8; X25519_KEY_LEN],
) -> Result<Envelope, EnvelopeError> {
    let data = KeyAnnouncement { consenter_id, epoch, x25519_public_key: public_key.to_vec() }.encode_to_vec();
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    build_envelope(channel_id, msp, &data, HeaderType::BftKeyAnnouncement, unix_now(), &nonce)
}

/// Whether `bytes` claims to be a key announcement (header type only; no
/// signature check). Cheap enough to run on every envelope.
pub fn is_announcement(bytes: &[u8]) -> bool {
    decode_envelope(bytes, ANNOUNCEMENT_BYTES_MAX)
        .is_ok_and(|d| d.channel_header.r#type == HeaderType::BftKeyAnnouncement as i32)
}

/// One consenter as an announcement must show it.
struct Pinned {
    msp_id: String,
    cert_der: Vec<u8>,
    key: PublicKey,
}

/// Verifies announcements against a channel configuration, with the
/// consenters' pinned certificates parsed once.
pub struct AnnouncementVerifier {
    channel_id: String,
    consenters: BTreeMap<u32, Pinned>,
}

impl AnnouncementVerifier {
    /// Parses the pinned identity certificates of `config`'s consenters.
    /// A consenter whose certificate cannot be parsed cannot announce.
    pub fn new(config: &ChannelConfig) -> Self {
        let mut consenters = BTreeMap::new();
        for c in &config.consenters {
            let parsed = ca_tools::pemutil::cert_der(c.identity_cert.as_bytes())
                .ok()
                .and_then(|der| PublicKey::from_cert(&der).ok().map(|key| (der, key)));
            if let Some((cert_der, key)) = parsed {
                consenters.insert(c.id, Pinned { msp_id: c.msp_id.clone(), cert_der, key });
            }
        }
        Self { channel_id: config.channel_id.clone(), consenters }
    }

    /// The deterministic check (same answer on every replica, at any time):
    /// header type, channel, payload, key length, creator = the pinned
    /// certificate of the announced consenter, signature, tx id.
    pub fn verify(&self, bytes: &[u8]) -> Result<Announced, AnnouncementError> {
        let decoded = decode_envelope(bytes, ANNOUNCEMENT_BYTES_MAX)?;
        let header = &decoded.channel_header;
        if header.r#type != HeaderType::BftKeyAnnouncement as i32 {
            return Err(AnnouncementError::NotAnAnnouncement(header.r#type));
        }
        if header.channel_id != self.channel_id {
            return Err(EnvelopeError::WrongChannel {
                expected: self.channel_id.clone(),
                found: header.channel_id.clone(),
            }
            .into());
        }
        let body = KeyAnnouncement::decode(decoded.payload.data.as_slice())
            .map_err(|e| AnnouncementError::Malformed(e.to_string()))?;
        let public_key: [u8; X25519_KEY_LEN] = body
            .x25519_public_key
            .as_slice()
            .try_into()
            .map_err(|_| AnnouncementError::BadKeyLength(body.x25519_public_key.len()))?;
        if body.epoch == 0 {
            return Err(AnnouncementError::BadEpoch);
        }
        let id = body.consenter_id;
        let pinned = self.consenters.get(&id).ok_or(AnnouncementError::UnknownConsenter(id))?;
        let creator_der = ca_tools::pemutil::cert_der(&decoded.creator.id_bytes).ok();
        if creator_der.as_deref() != Some(pinned.cert_der.as_slice()) || decoded.creator.mspid != pinned.msp_id {
            return Err(AnnouncementError::NotTheConsenter(id));
        }
        pinned
            .key
            .verify(&decoded.envelope.payload, &decoded.envelope.signature)
            .map_err(|_| AnnouncementError::BadSignature(id))?;
        let tx_id = compute_tx_id(&decoded.signature_header.nonce, &decoded.signature_header.creator);
        if decoded.signature_header.nonce.is_empty() || header.tx_id != tx_id {
            return Err(EnvelopeError::TxIdMismatch { expected: tx_id, found: header.tx_id.clone() }.into());
        }
        Ok(Announced { consenter: id, epoch: body.epoch, public_key, tx_id })
    }

    /// Admission: [`verify_envelope`] at `now_unix` (chain, validity,
    /// revocation, orderer role), then [`Self::verify`].
    pub fn verify_submitted(
        &self,
        bytes: &[u8],
        trust: &ChannelTrust,
        now_unix: i64,
    ) -> Result<Announced, AnnouncementError> {
        verify_envelope(bytes, trust, now_unix, ANNOUNCEMENT_BYTES_MAX)?;
        self.verify(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_that_is_not_an_announcement_is_said_so() {
        assert!(!is_announcement(b"not an envelope"));
        let verifier = AnnouncementVerifier { channel_id: "ch".into(), consenters: BTreeMap::new() };
        assert!(matches!(verifier.verify(b"\xff\xff"), Err(AnnouncementError::Envelope(_))));
    }
}

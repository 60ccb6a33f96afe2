//! Block certificates: a quorum of consenter signatures over a block header,
//! stored in the block's SIGNATURES metadata slot as Fabric `Metadata`.
//!
//! Mapping: the SIGNATURES slot (index 0) holds an encoded
//! `common.Metadata { value: empty, signatures }` with one
//! `common.MetadataSignature` per consenter:
//! - `signature_header`: empty (the signer is named by id, as Fabric's BFT
//!   orderer does);
//! - `identifier_header`: an encoded `common.IdentifierHeader { identifier:
//!   consenter id, nonce: epoch as 8 bytes big-endian }`;
//! - `signature`: the consenter's identity-key signature over
//!   [`certificate_signing_bytes`]`(channel, epoch, number, header hash)`.

use std::collections::{BTreeMap, BTreeSet};

use ca_tools::{PublicKey, SigningKey};
use prost::Message;

use super::{certificate_signing_bytes, BlockError};
use crate::config::ChannelConfig;
use crate::proto::common::{Block, BlockMetadataIndex, IdentifierHeader, Metadata, MetadataSignature};

/// Most signatures a certificate may carry (bounded by the largest channel).
pub const MAX_CERTIFICATE_SIGNATURES: usize = crate::config::MAX_CONSENTERS;

/// The consenter signatures certifying one block in one epoch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BlockCertificate {
    /// The epoch the signatures were made in.
    pub epoch: u64,
    /// `(consenter id, signature)` pairs.
    pub signatures: Vec<(u32, Vec<u8>)>,
}

impl BlockCertificate {
    /// The Fabric `Metadata` encoding of this certificate (see the module
    /// documentation).
    pub fn to_metadata(&self) -> Vec<u8> {
        let nonce = self.epoch.to_be_bytes().to_vec();
        let signatures = self
            .signatures
            .iter()
            .map(|(id, signature)| MetadataSignature {
                signature_header: Vec::new(),
                signature: signature.clone(),
                identifier_header: IdentifierHeader { identifier: *id, nonce: nonce.clone() }.encode_to_vec(),
            })
            .collect();
        Metadata { value: Vec::new(), signatures }.encode_to_vec()
    }

    /// Decodes a certificate from SIGNATURES metadata bytes.
    pub fn from_metadata(bytes: &[u8]) -> Result<Self, BlockError> {
        let malformed = |what: String| BlockError::MalformedCertificate(what);
        let metadata = Metadata::decode(bytes).map_err(|e| malformed(format!("metadata: {e}")))?;
        if metadata.signatures.is_empty() {
            return Err(malformed("no signatures".into()));
        }
        if metadata.signatures.len() > MAX_CERTIFICATE_SIGNATURES {
            return Err(malformed(format!(
                "{} signatures, more than {MAX_CERTIFICATE_SIGNATURES}",
                metadata.signatures.len()
            )));
        }
        let mut epoch = None;
        let mut signatures = Vec::with_capacity(metadata.signatures.len());
        for entry in metadata.signatures {
            let header = IdentifierHeader::decode(entry.identifier_header.as_slice())
                .map_err(|e| malformed(format!("identifier header: {e}")))?;
            let nonce: [u8; 8] = header.nonce.as_slice().try_into().map_err(|_| {
                malformed(format!(
                    "identifier header nonce is {} bytes; it must be the 8-byte epoch",
                    header.nonce.len()
                ))
            })?;
            let entry_epoch = u64::from_be_bytes(nonce);
            match epoch {
                None => epoch = Some(entry_epoch),
                Some(first) if first != entry_epoch => {
                    return Err(BlockError::MixedEpochs { first, other: entry_epoch })
                }
                Some(_) => {}
            }
            signatures.push((header.identifier, entry.signature));
        }
        Ok(BlockCertificate { epoch: epoch.unwrap_or_default(), signatures })
    }

    /// Reads the certificate from `block`'s SIGNATURES slot.
    pub fn from_block(block: &Block) -> Result<Self, BlockError> {
        let slot = block
            .metadata_slot(BlockMetadataIndex::Signatures)
            .ok_or(BlockError::MissingCertificate { number: block.number() })?;
        Self::from_metadata(slot)
    }

    /// Writes the certificate into `block`'s SIGNATURES slot (creating the
    /// metadata slots if the block has none).
    pub fn store(&self, block: &mut Block) {
        let metadata = block.metadata.get_or_insert_with(Default::default);
        if metadata.metadata.len() < super::METADATA_SLOTS {
            metadata.metadata.resize(super::METADATA_SLOTS, Vec::new());
        }
        metadata.metadata[BlockMetadataIndex::Signatures as usize] = self.to_metadata();
    }
}

/// Signs `block`'s header as each of `signers` (consenter id, identity key)
/// for `channel_id` in `epoch`, and stores the certificate in the block —
/// what consenters do together after commit, in one place for tools and
/// tests.
pub fn certify_block(
    block: &mut Block,
    channel_id: &str,
    epoch: u64,
    signers: &[(u32, &SigningKey)],
) -> Result<BlockCertificate, BlockError> {
    let header = block.header_checked()?;
    let bytes = certificate_signing_bytes(channel_id, epoch, header.number, &header.hash());
    let mut signatures = Vec::with_capacity(signers.len());
    for (id, key) in signers {
        let signature = key.sign(&bytes).map_err(|e| BlockError::BadConsenterKey { id: *id, reason: e.to_string() })?;
        signatures.push((*id, signature));
    }
    let certificate = BlockCertificate { epoch, signatures };
    certificate.store(block);
    Ok(certificate)
}

/// The consenters' identity keys of a channel, parsed once, for verifying
/// many block certificates (state transfer, peers following a channel).
#[derive(Debug, Clone)]
pub struct ConsenterKeys {
    channel_id: String,
    quorum: usize,
    keys: BTreeMap<u32, PublicKey>,
}

impl ConsenterKeys {
    /// Parses every consenter's identity public key from `config`.
    pub fn new(config: &ChannelConfig) -> Result<Self, BlockError> {
        let mut keys = BTreeMap::new();
        for consenter in &config.consenters {
            let key = PublicKey::from_cert(consenter.identity_cert.as_bytes())
                .map_err(|e| BlockError::BadConsenterKey { id: consenter.id, reason: e.to_string() })?;
            keys.insert(consenter.id, key);
        }
        Ok(ConsenterKeys { channel_id: config.channel_id.clone(), quorum: config.quorum(), keys })
    }

    /// Verifies `block`'s certificate: every signer a consenter, each at
    /// most once, each signature valid over [`certificate_signing_bytes`]
    /// for the certificate's epoch, at least a quorum of distinct signers;
    /// and, when `epoch` is given, the certificate is of that epoch.
    pub fn verify(&self, block: &Block, epoch: Option<u64>) -> Result<BlockCertificate, BlockError> {
        let certificate = BlockCertificate::from_block(block)?;
        if let Some(expected) = epoch.filter(|e| *e != certificate.epoch) {
            return Err(BlockError::WrongEpoch { expected, found: certificate.epoch });
        }
        let header = block.header_checked()?;
        let signing_bytes =
            certificate_signing_bytes(&self.channel_id, certificate.epoch, header.number, &header.hash());
        let mut signers = BTreeSet::new();
        for (id, signature) in &certificate.signatures {
            if !signers.insert(*id) {
                return Err(BlockError::DuplicateSigner { id: *id });
            }
            let key = self.keys.get(id).ok_or(BlockError::UnknownSigner { id: *id })?;
            key.verify(&signing_bytes, signature)
                .map_err(|_| BlockError::BadSignature { id: *id, number: header.number })?;
        }
        if signers.len() < self.quorum || self.quorum == 0 {
            return Err(BlockError::NoQuorum { have: signers.len(), need: self.quorum });
        }
        assert!(signers.len() <= self.keys.len());
        Ok(certificate)
    }
}

/// Verifies `block`'s certificate against `config`'s consenters: at least a
/// quorum ⌈(n+f+1)/2⌉ of distinct consenters, each signature valid with that
/// consenter's identity key over [`certificate_signing_bytes`] for the
/// certificate's epoch. A duplicate signer, an unknown signer or a bad
/// signature refuses the whole certificate.
pub fn verify_block_certificate(block: &Block, config: &ChannelConfig) -> Result<(), BlockError> {
    ConsenterKeys::new(config)?.verify(block, None).map(|_| ())
}

/// [`verify_block_certificate`], also requiring the certificate to be of
/// `epoch`.
pub fn verify_block_certificate_in_epoch(block: &Block, config: &ChannelConfig, epoch: u64) -> Result<(), BlockError> {
    ConsenterKeys::new(config)?.verify(block, Some(epoch)).map(|_| ())
}

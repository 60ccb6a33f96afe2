//! Block hashing and the bytes a consenter signs for a block certificate.
//!
//! These functions are the contract between the data model and the
//! consensus core: the core chains proposals with `header_hash` and
//! `data_hash`, and consenters sign `certificate_signing_bytes`.

use prost::Message;
use sha2::{Digest, Sha256};

use crate::proto::common::{Block, BlockData, BlockHeader, BlockMetadata, BlockMetadataIndex};

mod certificate;

pub use certificate::{
    certify_block, verify_block_certificate, verify_block_certificate_in_epoch, BlockCertificate, ConsenterKeys,
    MAX_CERTIFICATE_SIGNATURES,
};

/// Length of every hash in a block header.
pub const HASH_LEN: usize = 32;

/// Number of metadata slots in a block, as Fabric allocates them (one per
/// [`BlockMetadataIndex`] value).
pub const METADATA_SLOTS: usize = 5;

/// Upper bound on the number of blocks one [`verify_chain`] call accepts.
pub const MAX_CHAIN_BLOCKS: usize = 1_000_000;

/// Why a block or a chain of blocks was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BlockError {
    /// The block has no header, no data or no metadata.
    #[error("block is malformed: {0}")]
    Malformed(String),
    /// The encoded block is bigger than the caller's limit.
    #[error("block is {size} bytes, over the limit of {max}")]
    TooLarge {
        /// Size received.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The header's data hash is not the hash of the block's data.
    #[error("block {number}: data hash in the header does not match the block data")]
    DataHashMismatch {
        /// Block number.
        number: u64,
    },
    /// A block does not follow its predecessor.
    #[error("block {number} does not link to block {previous}: {reason}")]
    BrokenLink {
        /// Number of the block that does not link.
        number: u64,
        /// Number of its predecessor in the sequence.
        previous: u64,
        /// What is wrong (number or previous hash).
        reason: String,
    },
    /// Too many blocks passed to one chain verification.
    #[error("too many blocks in one chain check: {count} > {max}")]
    TooManyBlocks {
        /// Blocks passed.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The block carries no certificate in its SIGNATURES metadata.
    #[error("block {number} carries no block certificate (SIGNATURES metadata is empty)")]
    MissingCertificate {
        /// Block number.
        number: u64,
    },
    /// The SIGNATURES metadata cannot be decoded as a block certificate.
    #[error("block certificate is malformed: {0}")]
    MalformedCertificate(String),
    /// The certificate's entries disagree on the epoch.
    #[error("block certificate mixes epochs {first} and {other}")]
    MixedEpochs {
        /// Epoch of the first entry.
        first: u64,
        /// A different epoch in a later entry.
        other: u64,
    },
    /// The certificate is from another epoch than the one required.
    #[error("block certificate is for epoch {found}, expected epoch {expected}")]
    WrongEpoch {
        /// Epoch the verifier requires.
        expected: u64,
        /// Epoch of the certificate.
        found: u64,
    },
    /// The same consenter signed twice.
    #[error("consenter {id} signed the block certificate more than once")]
    DuplicateSigner {
        /// The consenter id.
        id: u32,
    },
    /// A signature is from an id that is not a consenter of the channel.
    #[error("signer {id} is not a consenter of the channel")]
    UnknownSigner {
        /// The id claimed by the signature.
        id: u32,
    },
    /// A consenter's identity certificate in the config cannot be read.
    #[error("consenter {id}'s identity certificate in the channel config is unusable: {reason}")]
    BadConsenterKey {
        /// The consenter id.
        id: u32,
        /// Why the key could not be read.
        reason: String,
    },
    /// A signature does not verify with the consenter's key.
    #[error("signature of consenter {id} on block {number} does not verify")]
    BadSignature {
        /// The consenter id.
        id: u32,
        /// Block number.
        number: u64,
    },
    /// Fewer distinct valid signatures than the quorum.
    #[error("block certificate has {have} distinct consenter signatures, a quorum is {need}")]
    NoQuorum {
        /// Distinct signers.
        have: usize,
        /// Quorum of the channel.
        need: usize,
    },
}

/// Domain-separation prefix of a block-certificate signature.
pub const CERTIFICATE_DOMAIN: &[u8] = b"bftorderer/block-certificate/v1\0";

/// SHA-256 over the concatenated envelope bytes, as Fabric computes a block's
/// data hash.
pub fn data_hash<E: AsRef<[u8]>>(envelopes: &[E]) -> [u8; HASH_LEN] {
    let mut hasher = Sha256::new();
    for envelope in envelopes {
        hasher.update(envelope.as_ref());
    }
    hasher.finalize().into()
}

/// SHA-256 of the ASN.1 DER encoding of the header
/// `SEQUENCE { INTEGER number, OCTET STRING previous_hash, OCTET STRING data_hash }`,
/// byte for byte what Fabric's `protoutil.BlockHeaderBytes` hashes.
pub fn header_hash(number: u64, previous_hash: &[u8], data_hash: &[u8]) -> [u8; HASH_LEN] {
    Sha256::digest(header_der(number, previous_hash, data_hash)).into()
}

/// The ASN.1 DER encoding of a block header (see [`header_hash`]).
pub fn header_der(number: u64, previous_hash: &[u8], data_hash: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(16 + previous_hash.len() + data_hash.len());
    der_tlv(&mut body, 0x02, &der_unsigned_integer(number));
    der_tlv(&mut body, 0x04, previous_hash);
    der_tlv(&mut body, 0x04, data_hash);
    let mut out = Vec::with_capacity(body.len() + 4);
    der_tlv(&mut out, 0x30, &body);
    out
}

/// The canonical bytes a consenter signs to certify block `number` of
/// `channel_id` in `epoch`: domain prefix, length-prefixed channel id, epoch,
/// number and header hash (all integers big-endian).
pub fn certificate_signing_bytes(channel_id: &str, epoch: u64, number: u64, header_hash: &[u8; HASH_LEN]) -> Vec<u8> {
    let channel = channel_id.as_bytes();
    let mut out = Vec::with_capacity(CERTIFICATE_DOMAIN.len() + 4 + channel.len() + 16 + HASH_LEN);
    out.extend_from_slice(CERTIFICATE_DOMAIN);
    out.extend_from_slice(&(channel.len() as u32).to_be_bytes());
    out.extend_from_slice(channel);
    out.extend_from_slice(&epoch.to_be_bytes());
    out.extend_from_slice(&number.to_be_bytes());
    out.extend_from_slice(header_hash);
    out
}

/// Minimal two's-complement big-endian content octets of a non-negative
/// INTEGER (a leading zero byte when the top bit is set), as Go's
/// `asn1.Marshal` writes a non-negative `*big.Int`.
fn der_unsigned_integer(value: u64) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len() - 1);
    let mut out = Vec::with_capacity(9);
    if bytes[first] & 0x80 != 0 {
        out.push(0);
    }
    out.extend_from_slice(&bytes[first..]);
    out
}

fn der_tlv(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let len_bytes = (len as u64).to_be_bytes();
        let first = len_bytes.iter().position(|b| *b != 0).unwrap_or(7);
        out.push(0x80 | (8 - first) as u8);
        out.extend_from_slice(&len_bytes[first..]);
    }
    out.extend_from_slice(content);
}

/// Builds block `number` over `envelopes` (encoded envelopes), chained to the
/// header hash `previous_hash`, with Fabric's five empty metadata slots
/// (`SIGNATURES` at index 0 is filled later by [`BlockCertificate::store`]).
pub fn build_block(number: u64, previous_hash: &[u8], envelopes: Vec<Vec<u8>>) -> Block {
    let hash = data_hash(&envelopes);
    let block = Block {
        header: Some(BlockHeader { number, previous_hash: previous_hash.to_vec(), data_hash: hash.to_vec() }),
        data: Some(BlockData { data: envelopes }),
        metadata: Some(BlockMetadata { metadata: vec![Vec::new(); METADATA_SLOTS] }),
    };
    assert!(block_metadata_len(&block) == METADATA_SLOTS);
    block
}

fn block_metadata_len(block: &Block) -> usize {
    block.metadata.as_ref().map_or(0, |m| m.metadata.len())
}

impl BlockHeader {
    /// The header hash (see [`header_hash`]); what the next block's
    /// `previous_hash` must be.
    pub fn hash(&self) -> [u8; HASH_LEN] {
        header_hash(self.number, &self.previous_hash, &self.data_hash)
    }
}

impl Block {
    /// The header, or `Malformed` if the block has none.
    pub fn header_checked(&self) -> Result<&BlockHeader, BlockError> {
        self.header.as_ref().ok_or_else(|| BlockError::Malformed("block has no header".into()))
    }

    /// The block number (0 when the header is missing).
    pub fn number(&self) -> u64 {
        self.header.as_ref().map_or(0, |h| h.number)
    }

    /// The encoded envelopes of the block (empty when data is missing).
    pub fn envelopes(&self) -> &[Vec<u8>] {
        self.data.as_ref().map_or(&[], |d| d.data.as_slice())
    }

    /// The metadata slot at `index`, if present and non-empty.
    pub fn metadata_slot(&self, index: BlockMetadataIndex) -> Option<&[u8]> {
        let slot = self.metadata.as_ref()?.metadata.get(index as usize)?;
        (!slot.is_empty()).then_some(slot.as_slice())
    }

    /// Decodes a block, refusing inputs over `max_bytes` before decoding.
    pub fn decode_bounded(bytes: &[u8], max_bytes: usize) -> Result<Block, BlockError> {
        if bytes.len() > max_bytes {
            return Err(BlockError::TooLarge { size: bytes.len(), max: max_bytes });
        }
        Block::decode(bytes).map_err(|e| BlockError::Malformed(format!("not a block: {e}")))
    }
}

/// Checks that the header's data hash is the hash of the block's data.
pub fn verify_data_hash(block: &Block) -> Result<(), BlockError> {
    let header = block.header_checked()?;
    if header.data_hash != data_hash(block.envelopes()) {
        return Err(BlockError::DataHashMismatch { number: header.number });
    }
    Ok(())
}

/// Checks that `next` directly follows `previous`: number + 1 and
/// `previous_hash` = header hash of `previous`. Data hashes are not checked.
pub fn verify_link(previous: &Block, next: &Block) -> Result<(), BlockError> {
    let prev = previous.header_checked()?;
    let header = next.header_checked()?;
    let broken = |reason: String| BlockError::BrokenLink { number: header.number, previous: prev.number, reason };
    if prev.number.checked_add(1) != Some(header.number) {
        return Err(broken(format!("number {} does not follow {}", header.number, prev.number)));
    }
    if header.previous_hash != prev.hash() {
        return Err(broken("previous_hash is not the hash of the previous header".into()));
    }
    Ok(())
}

/// Checks a consecutive sequence of blocks: each block's data hash, and each
/// link to its predecessor. Certificates are checked separately
/// ([`verify_block_certificate`]).
pub fn verify_chain(blocks: &[Block]) -> Result<(), BlockError> {
    if blocks.len() > MAX_CHAIN_BLOCKS {
        return Err(BlockError::TooManyBlocks { count: blocks.len(), max: MAX_CHAIN_BLOCKS });
    }
    for block in blocks {
        verify_data_hash(block)?;
    }
    for pair in blocks.windows(2) {
        verify_link(&pair[0], &pair[1])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_der_of_genesis_matches_fabric_layout() {
        // number 0 is INTEGER 02 01 00; empty previous hash is 04 00.
        let der = header_der(0, &[], &[0xAB; 32]);
        assert_eq!(&der[..7], &[0x30, 0x27, 0x02, 0x01, 0x00, 0x04, 0x00]);
        assert_eq!(&der[7..9], &[0x04, 0x20]);
        assert_eq!(der.len(), 2 + 3 + 2 + 34);
    }

    #[test]
    fn integer_with_top_bit_set_gets_a_leading_zero() {
        assert_eq!(der_unsigned_integer(0x80), vec![0x00, 0x80]);
        assert_eq!(der_unsigned_integer(0x7f), vec![0x7f]);
        assert_eq!(der_unsigned_integer(256), vec![0x01, 0x00]);
        assert_eq!(der_unsigned_integer(u64::MAX), {
            let mut v = vec![0];
            v.extend_from_slice(&[0xff; 8]);
            v
        });
    }

    #[test]
    fn long_hashes_use_long_form_lengths() {
        let big = vec![7u8; 200];
        let der = header_der(1, &big, &big);
        assert_eq!(der[0], 0x30);
        assert_eq!(der[1], 0x82); // body is > 255 bytes
    }

    #[test]
    fn certificate_bytes_bind_channel_epoch_and_number() {
        let h = [1u8; 32];
        let a = certificate_signing_bytes("ch1", 1, 5, &h);
        assert_ne!(a, certificate_signing_bytes("ch2", 1, 5, &h));
        assert_ne!(a, certificate_signing_bytes("ch1", 2, 5, &h));
        assert_ne!(a, certificate_signing_bytes("ch1", 1, 6, &h));
        assert!(a.starts_with(CERTIFICATE_DOMAIN));
    }
}

//! The genesis (config) block of a channel.
//!
//! Block 0 holds exactly one envelope. Its payload has a channel header of
//! type `CONFIG` for the channel, no timestamp, and a signature header with
//! an empty creator and the nonce `SHA-256(config)[..24]`; its data is the
//! canonical encoding of the [`ChannelConfig`]. The envelope is unsigned, as
//! configtxgen's genesis blocks are: the block is trusted because the
//! operator joins a channel with it, not because of a signature. Everything
//! is derived from the configuration, so the same configuration always gives
//! the same genesis block.

use prost::Message;
use sha2::{Digest, Sha256};

use crate::block::{build_block, verify_chain, verify_data_hash, BlockError, ConsenterKeys};
use crate::config::{ChannelConfig, ConfigError, MAX_CONFIG_BYTES};
use crate::envelope::{compute_tx_id, decode_envelope, EnvelopeError, NONCE_LEN};
use crate::proto::common::{Block, ChannelHeader, Envelope, Header, HeaderType, Payload, SignatureHeader};

/// Why a block is not a usable genesis block.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GenesisError {
    /// Not a well-formed block 0 with one envelope.
    #[error("not a genesis block: {0}")]
    NotGenesis(String),
    /// The block itself is inconsistent.
    #[error(transparent)]
    Block(#[from] BlockError),
    /// The config envelope cannot be decoded.
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    /// The configuration inside cannot be decoded or is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// The single, unsigned CONFIG envelope carrying `config`.
pub fn config_envelope(config: &ChannelConfig) -> Envelope {
    let data = config.to_canonical_bytes();
    let digest = Sha256::digest(&data);
    let nonce = digest[..NONCE_LEN].to_vec();
    let channel_header = ChannelHeader {
        r#type: HeaderType::Config as i32,
        channel_id: config.channel_id.clone(),
        tx_id: compute_tx_id(&nonce, &[]),
        ..ChannelHeader::default()
    };
    let signature_header = SignatureHeader { creator: Vec::new(), nonce };
    let payload = Payload {
        header: Some(Header {
            channel_header: channel_header.encode_to_vec(),
            signature_header: signature_header.encode_to_vec(),
        }),
        data,
    };
    Envelope { payload: payload.encode_to_vec(), signature: Vec::new() }
}

/// The genesis block of `config`'s channel: block 0, empty previous hash,
/// one CONFIG envelope (see the module documentation). The configuration is
/// not validated here; call [`ChannelConfig::validate`] first.
pub fn genesis_block(config: &ChannelConfig) -> Block {
    build_block(0, &[], vec![config_envelope(config).encode_to_vec()])
}

/// Reads the channel configuration back from a genesis block, checking that
/// it is block 0 with one CONFIG envelope whose data hash, channel id, tx id
/// and canonical encoding are consistent. Certificates are not checked here
/// (see [`ChannelConfig::validate`]); the structure is.
pub fn config_from_genesis(block: &Block) -> Result<ChannelConfig, GenesisError> {
    let header = block.header_checked()?;
    if header.number != 0 || !header.previous_hash.is_empty() {
        return Err(GenesisError::NotGenesis(format!(
            "block number {} with a {}-byte previous hash; a genesis block is number 0 with none",
            header.number,
            header.previous_hash.len()
        )));
    }
    verify_data_hash(block)?;
    let [envelope] = block.envelopes() else {
        return Err(GenesisError::NotGenesis(format!(
            "{} envelopes; a genesis block has exactly one",
            block.envelopes().len()
        )));
    };
    let decoded = decode_envelope(envelope, MAX_CONFIG_BYTES + 4096)?;
    if decoded.channel_header.r#type != HeaderType::Config as i32 {
        return Err(GenesisError::NotGenesis(format!(
            "envelope header type {} is not CONFIG",
            decoded.channel_header.r#type
        )));
    }
    let expected_tx_id = compute_tx_id(&decoded.signature_header.nonce, &decoded.signature_header.creator);
    if decoded.channel_header.tx_id != expected_tx_id {
        return Err(GenesisError::Envelope(EnvelopeError::TxIdMismatch {
            expected: expected_tx_id,
            found: decoded.channel_header.tx_id,
        }));
    }
    let config = ChannelConfig::from_canonical_bytes(&decoded.payload.data)?;
    if config.channel_id != decoded.channel_header.channel_id {
        return Err(GenesisError::NotGenesis(format!(
            "config is for channel {:?} but the envelope names {:?}",
            config.channel_id, decoded.channel_header.channel_id
        )));
    }
    config.validate_structure()?;
    Ok(config)
}

/// Verifies `blocks` (consecutive, in order) against the channel of
/// `genesis`: the genesis block itself, data hashes, hash links (from the
/// genesis block when `blocks` starts at number 1) and, for every block
/// after the genesis block, its certificate (of `epoch` when given). Returns
/// the channel configuration. This is what `channels verify-block` does.
pub fn verify_blocks(genesis: &Block, blocks: &[Block], epoch: Option<u64>) -> Result<ChannelConfig, GenesisError> {
    let config = config_from_genesis(genesis)?;
    verify_chain(blocks)?;
    let keys = ConsenterKeys::new(&config)?;
    if let Some(first) = blocks.first() {
        if first.number() == 1 {
            crate::block::verify_link(genesis, first)?;
        }
    }
    for block in blocks {
        if block.number() == 0 {
            if block != genesis {
                return Err(GenesisError::NotGenesis(
                    "block 0 in the sequence differs from the channel's genesis block".into(),
                ));
            }
            continue;
        }
        keys.verify(block, epoch)?;
    }
    Ok(config)
}

//! Readable JSON views of blocks and envelopes (`channels inspect`), the
//! counterpart of configtxlator's `proto_decode`.

use prost::Message;
use serde_json::{json, Value};

use crate::block::{data_hash, BlockCertificate, BlockError};
use crate::config::ChannelConfig;
use crate::config_update::ConfigUpdateEnvelope;
use crate::envelope::{compute_tx_id, decode_envelope, EnvelopeError};
use crate::proto::common::{Block, HeaderType, SignatureHeader};
use crate::proto::msp::SerializedIdentity;

/// Largest block or envelope file inspected.
pub const MAX_INSPECT_BYTES: usize = 512 * 1024 * 1024;

/// Why bytes could not be inspected.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// Neither a block nor an envelope.
    #[error("not a block or an envelope: {0}")]
    Unrecognised(String),
}

/// Decodes `bytes` as a block if they are one (header, data and metadata
/// present), else as an envelope, else as an (unwrapped) config update, and
/// renders it as JSON.
pub fn inspect_bytes(bytes: &[u8]) -> Result<Value, InspectError> {
    if let Ok(block) = Block::decode_bounded(bytes, MAX_INSPECT_BYTES) {
        if block.header.is_some() && block.data.is_some() && block.metadata.is_some() {
            return Ok(json!({ "block": block_json(&block) }));
        }
    }
    let envelope_error = match envelope_json(bytes) {
        Ok(value) => return Ok(json!({ "envelope": value })),
        Err(e) => e,
    };
    match ConfigUpdateEnvelope::decode(bytes) {
        Ok(update) if ChannelConfig::from_canonical_bytes(&update.config).is_ok() => {
            Ok(json!({ "config_update": config_update_json(&update) }))
        }
        _ => Err(InspectError::Unrecognised(envelope_error.to_string())),
    }
}

/// A block as JSON: header (with the recomputed hashes), envelopes, and the
/// decoded block certificate.
pub fn block_json(block: &Block) -> Value {
    let header = block.header.clone().unwrap_or_default();
    let computed = data_hash(block.envelopes());
    let envelopes: Vec<Value> = block
        .envelopes()
        .iter()
        .map(|e| {
            envelope_json(e).unwrap_or_else(|err| json!({ "undecodable": err.to_string(), "hex": hex::encode(e) }))
        })
        .collect();
    let certificate = match BlockCertificate::from_block(block) {
        Ok(c) => certificate_json(&c),
        Err(BlockError::MissingCertificate { .. }) => Value::Null,
        Err(e) => json!({ "undecodable": e.to_string() }),
    };
    let metadata: Vec<Value> = block
        .metadata
        .as_ref()
        .map(|m| m.metadata.iter().map(|slot| Value::String(hex::encode(slot))).collect())
        .unwrap_or_default();
    json!({
        "header": {
            "number": header.number,
            "previous_hash": hex::encode(&header.previous_hash),
            "data_hash": hex::encode(&header.data_hash),
            "data_hash_valid": header.data_hash == computed,
            "header_hash": hex::encode(header.hash()),
        },
        "envelopes": envelopes,
        "certificate": certificate,
        "metadata_hex": metadata,
    })
}

fn certificate_json(certificate: &BlockCertificate) -> Value {
    let signatures: Vec<Value> = certificate
        .signatures
        .iter()
        .map(|(id, sig)| json!({ "consenter": id, "signature": hex::encode(sig) }))
        .collect();
    json!({ "epoch": certificate.epoch, "signatures": signatures })
}

/// An envelope as JSON: channel header, creator, nonce, tx id (and whether
/// it matches), signature and data (a decoded configuration for CONFIG).
pub fn envelope_json(bytes: &[u8]) -> Result<Value, EnvelopeError> {
    let decoded = decode_envelope(bytes, MAX_INSPECT_BYTES)?;
    let header = &decoded.channel_header;
    let header_type = HeaderType::try_from(header.r#type)
        .map(|t| t.as_str_name().to_string())
        .unwrap_or_else(|_| header.r#type.to_string());
    let computed_tx_id = compute_tx_id(&decoded.signature_header.nonce, &decoded.signature_header.creator);
    let data = &decoded.payload.data;
    let data_json = if header.r#type == HeaderType::Config as i32 {
        match ChannelConfig::from_canonical_bytes(data) {
            Ok(config) => json!({ "channel_config": config }),
            Err(e) => json!({ "undecodable_config": e.to_string(), "hex": hex::encode(data) }),
        }
    } else if header.r#type == HeaderType::ConfigUpdate as i32 {
        match ConfigUpdateEnvelope::decode(data.as_slice()) {
            Ok(update) => json!({ "config_update": config_update_json(&update) }),
            Err(e) => json!({ "undecodable_config_update": e.to_string(), "hex": hex::encode(data) }),
        }
    } else {
        match std::str::from_utf8(data) {
            Ok(text) => json!({ "text": text, "size": data.len() }),
            Err(_) => json!({ "hex": hex::encode(data), "size": data.len() }),
        }
    };
    Ok(json!({
        "channel_header": {
            "type": header_type,
            "version": header.version,
            "timestamp": header.timestamp.as_ref().map(|t| t.seconds),
            "channel_id": header.channel_id,
            "tx_id": header.tx_id,
            "tx_id_valid": header.tx_id == computed_tx_id,
            "epoch": header.epoch,
        },
        "signature_header": {
            "creator": {
                "mspid": decoded.creator.mspid,
                "certificate": String::from_utf8_lossy(&decoded.creator.id_bytes),
            },
            "nonce": hex::encode(&decoded.signature_header.nonce),
        },
        "signature": hex::encode(&decoded.envelope.signature),
        "data": data_json,
    }))
}

/// A config update as JSON: the proposed configuration and every admin
/// signature's signer (claimed MSP id and certificate; not verified here:
/// `channels config-update verify` does that).
pub fn config_update_json(update: &ConfigUpdateEnvelope) -> Value {
    let config = match ChannelConfig::from_canonical_bytes(&update.config) {
        Ok(config) => json!(config),
        Err(e) => json!({ "undecodable_config": e.to_string(), "hex": hex::encode(&update.config) }),
    };
    let signers: Vec<Value> = update
        .signatures
        .iter()
        .map(|s| match SignatureHeader::decode(s.signature_header.as_slice()) {
            Ok(header) => {
                let creator = SerializedIdentity::decode(header.creator.as_slice()).unwrap_or_default();
                json!({
                    "mspid": creator.mspid,
                    "certificate": String::from_utf8_lossy(&creator.id_bytes),
                    "nonce": hex::encode(&header.nonce),
                    "signature": hex::encode(&s.signature),
                })
            }
            Err(e) => json!({ "undecodable_signature_header": e.to_string() }),
        })
        .collect();
    json!({ "channel_config": config, "signers": signers })
}

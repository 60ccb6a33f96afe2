//! Block hashing and the bytes a consenter signs for a block certificate.
//!
//! These functions are the contract between the data model and the
//! consensus core: the core chains proposals with `header_hash` and
//! `data_hash`, and consenters sign `certificate_signing_bytes`.

use sha2::{Digest, Sha256};

/// Length of every hash in a block header.
pub const HASH_LEN: usize = 32;

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

//! Block hashes (known answers), chain validation and block certificates.

mod support;

use channels::block::{
    build_block, certify_block, data_hash, header_hash, verify_block_certificate, verify_block_certificate_in_epoch,
    verify_chain, verify_data_hash, BlockCertificate, BlockError,
};
use channels::genesis::{genesis_block, verify_blocks};
use channels::proto::common::Block;
use support::{network, Net, CHANNEL};

fn hex32(s: &str) -> [u8; 32] {
    hex::decode(s).unwrap().try_into().unwrap()
}

const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Vectors computed independently (Python, hashlib + a hand-written DER
/// encoder following Go's asn1.Marshal of *big.Int).
#[test]
fn header_hash_matches_known_answers() {
    let empty = hex32(EMPTY_SHA256);
    let cases: [(u64, Vec<u8>, Vec<u8>, &str); 5] = [
        (0, vec![], empty.to_vec(), "9cae6f5c10756febc407bba95fc23853774c1f65f10354895bfdab6443d66ed3"),
        (1, vec![0; 32], empty.to_vec(), "b4d9c1064d8ec16dcd582382e7cdcd22172f5ae9c7899c4bac8eee437ce2d841"),
        (128, vec![0xab; 32], vec![0xcd; 32], "5f86b9fc4dc4a8f0e02b704cc59c6a55833da7e9fccddd9768d9fc3d1b9aa4c0"),
        (u64::MAX, vec![1; 32], vec![2; 32], "04ef0f8d995f7f46582885653b0c2a342bda707322a5e29aed1a267dea42711d"),
        (300, vec![7; 200], vec![8; 32], "d481c019eca12ff460f666ab3860aee60268760c21375d7a174c4700d5b46c87"),
    ];
    for (number, previous, data, expected) in cases {
        assert_eq!(hex::encode(header_hash(number, &previous, &data)), expected, "block {number}");
    }
}

#[test]
fn data_hash_of_no_envelopes_is_sha256_of_nothing() {
    assert_eq!(data_hash::<Vec<u8>>(&[]), hex32(EMPTY_SHA256));
    assert_eq!(data_hash(&[b"ab".to_vec(), b"c".to_vec()]), data_hash(&[b"abc".to_vec()]));
}

fn chain(length: u64) -> Vec<Block> {
    let mut blocks = vec![build_block(0, &[], vec![b"genesis".to_vec()])];
    for number in 1..length {
        let previous = blocks.last().unwrap().header.as_ref().unwrap().hash();
        blocks.push(build_block(number, &previous, vec![format!("tx {number}").into_bytes()]));
    }
    blocks
}

#[test]
fn built_block_has_fabric_layout() {
    let block = build_block(7, &[1; 32], vec![b"a".to_vec(), b"b".to_vec()]);
    assert_eq!(block.metadata.as_ref().unwrap().metadata.len(), 5);
    assert_eq!(block.number(), 7);
    assert!(verify_data_hash(&block).is_ok());
}

#[test]
fn valid_chain_is_accepted() {
    assert_eq!(verify_chain(&chain(5)), Ok(()));
}

#[test]
fn chain_validation_catches_a_broken_link() {
    let mut blocks = chain(5);
    blocks[3].header.as_mut().unwrap().previous_hash[0] ^= 1;
    assert!(matches!(verify_chain(&blocks), Err(BlockError::BrokenLink { number: 3, previous: 2, .. })));
}

#[test]
fn chain_validation_catches_a_skipped_number() {
    let mut blocks = chain(4);
    blocks.remove(2);
    assert!(matches!(verify_chain(&blocks), Err(BlockError::BrokenLink { number: 3, .. })));
}

#[test]
fn chain_validation_catches_tampered_data() {
    let mut blocks = chain(4);
    blocks[2].data.as_mut().unwrap().data[0] = b"forged".to_vec();
    assert_eq!(verify_chain(&blocks), Err(BlockError::DataHashMismatch { number: 2 }));
}

fn block_one(net: &Net) -> Block {
    let genesis = genesis_block(&net.config);
    build_block(1, &genesis.header.as_ref().unwrap().hash(), vec![b"tx".to_vec()])
}

fn certified(net: &Net, epoch: u64, ids: &[u32]) -> Block {
    let mut block = block_one(net);
    let keys: Vec<_> = ids.iter().map(|id| (*id, net.consenter_key(*id))).collect();
    let refs: Vec<_> = keys.iter().map(|(id, key)| (*id, key)).collect();
    certify_block(&mut block, CHANNEL, epoch, &refs).unwrap();
    block
}

#[test]
fn quorum_certificate_is_accepted_and_chains_from_genesis() {
    let net = network();
    assert_eq!(net.config.quorum(), 3);
    let block = certified(&net, 4, &[1, 3, 4]);
    assert_eq!(verify_block_certificate(&block, &net.config), Ok(()));
    assert_eq!(verify_block_certificate_in_epoch(&block, &net.config, 4), Ok(()));
    assert!(verify_blocks(&genesis_block(&net.config), &[block], Some(4)).is_ok());
}

#[test]
fn certificate_below_quorum_is_refused() {
    let net = network();
    let block = certified(&net, 0, &[1, 2]);
    assert_eq!(verify_block_certificate(&block, &net.config), Err(BlockError::NoQuorum { have: 2, need: 3 }));
}

#[test]
fn duplicate_signer_is_refused() {
    let net = network();
    let mut block = certified(&net, 0, &[1, 2]);
    let mut certificate = BlockCertificate::from_block(&block).unwrap();
    let again = certificate.signatures[1].clone();
    certificate.signatures.push(again);
    certificate.store(&mut block);
    assert_eq!(verify_block_certificate(&block, &net.config), Err(BlockError::DuplicateSigner { id: 2 }));
}

#[test]
fn signature_made_with_another_consenters_key_is_refused() {
    let net = network();
    let mut block = block_one(&net);
    let key1 = net.consenter_key(1);
    let key3 = net.consenter_key(3);
    // consenter 4's slot signed with consenter 3's key.
    certify_block(&mut block, CHANNEL, 0, &[(1, &key1), (3, &key3), (4, &key3)]).unwrap();
    assert_eq!(verify_block_certificate(&block, &net.config), Err(BlockError::BadSignature { id: 4, number: 1 }));
}

#[test]
fn certificate_relabelled_with_another_epoch_is_refused() {
    let net = network();
    let mut block = certified(&net, 1, &[1, 2, 3]);
    let mut certificate = BlockCertificate::from_block(&block).unwrap();
    certificate.epoch = 2;
    certificate.store(&mut block);
    assert!(matches!(verify_block_certificate(&block, &net.config), Err(BlockError::BadSignature { .. })));
}

#[test]
fn certificate_of_an_old_epoch_is_refused_when_a_newer_one_is_required() {
    let net = network();
    let block = certified(&net, 1, &[1, 2, 3]);
    assert_eq!(
        verify_block_certificate_in_epoch(&block, &net.config, 2),
        Err(BlockError::WrongEpoch { expected: 2, found: 1 })
    );
}

#[test]
fn signature_from_a_non_consenter_id_is_refused() {
    let net = network();
    let mut block = block_one(&net);
    let key = net.consenter_key(1);
    certify_block(&mut block, CHANNEL, 0, &[(1, &key), (9, &key)]).unwrap();
    assert_eq!(verify_block_certificate(&block, &net.config), Err(BlockError::UnknownSigner { id: 9 }));
}

#[test]
fn certificate_for_another_channel_is_refused() {
    let net = network();
    let mut block = block_one(&net);
    let keys: Vec<_> = [1, 2, 3].iter().map(|id| (*id, net.consenter_key(*id))).collect();
    let refs: Vec<_> = keys.iter().map(|(id, key)| (*id, key)).collect();
    certify_block(&mut block, "otherchannel", 0, &refs).unwrap();
    assert!(matches!(verify_block_certificate(&block, &net.config), Err(BlockError::BadSignature { .. })));
}

#[test]
fn block_without_certificate_is_refused() {
    let net = network();
    assert_eq!(
        verify_block_certificate(&block_one(&net), &net.config),
        Err(BlockError::MissingCertificate { number: 1 })
    );
}

#[test]
fn certificate_metadata_round_trips_and_rejects_mixed_epochs() {
    let certificate =
        BlockCertificate { epoch: 0x0102_0304_0506_0708, signatures: vec![(1, vec![1, 2, 3]), (4, vec![4, 5])] };
    let bytes = certificate.to_metadata();
    assert_eq!(BlockCertificate::from_metadata(&bytes), Ok(certificate.clone()));
    let mut other = certificate.clone();
    other.epoch = 9;
    let mut metadata = <channels::proto::common::Metadata as prost::Message>::decode(bytes.as_slice()).unwrap();
    let second = <channels::proto::common::Metadata as prost::Message>::decode(other.to_metadata().as_slice()).unwrap();
    metadata.signatures[1] = second.signatures[1].clone();
    let mixed = prost::Message::encode_to_vec(&metadata);
    assert_eq!(
        BlockCertificate::from_metadata(&mixed),
        Err(BlockError::MixedEpochs { first: 0x0102_0304_0506_0708, other: 9 })
    );
}

#[test]
fn tampered_block_after_certification_is_refused() {
    let net = network();
    let mut block = certified(&net, 0, &[1, 2, 3]);
    block.header.as_mut().unwrap().data_hash[0] ^= 1;
    assert!(matches!(verify_block_certificate(&block, &net.config), Err(BlockError::BadSignature { .. })));
}

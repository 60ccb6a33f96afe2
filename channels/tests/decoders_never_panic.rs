//! Property tests: every decoder returns an error, never panics, on
//! arbitrary bytes (and on mutations of valid inputs).

mod support;

use std::sync::OnceLock;

use channels::block::BlockCertificate;
use channels::config::ChannelConfig;
use channels::config_update::{
    current_config_from_envelope, is_config_update, propose, sign_update, update_envelope, ConfigUpdateVerifier,
};
use channels::envelope::{decode_envelope, verify_envelope, ChannelTrust};
use channels::genesis::{config_from_genesis, genesis_block};
use channels::inspect::inspect_bytes;
use channels::proto::common::Block;
use proptest::prelude::*;
use prost::Message;

struct Fixture {
    _net: support::Net,
    trust: ChannelTrust,
    envelope: Vec<u8>,
    genesis: Vec<u8>,
    update: Vec<u8>,
    update_verifier: ConfigUpdateVerifier,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let net = support::network();
        let trust = ChannelTrust::new(&net.config).unwrap();
        let envelope = channels::build_envelope(
            support::CHANNEL,
            &net.client(),
            b"data",
            channels::proto::common::HeaderType::Message,
            1,
            b"nonce",
        )
        .unwrap()
        .encode_to_vec();
        let genesis = genesis_block(&net.config).encode_to_vec();
        let next = ChannelConfig { sequence: 1, ..net.config.clone() };
        let mut update = propose(&next);
        for org in ["Org1", "Org2"] {
            sign_update(&mut update, &net.msp(org, "users", "Admin")).unwrap();
        }
        let update_verifier = ConfigUpdateVerifier::new(&net.config).unwrap();
        let update = update_envelope(support::CHANNEL, &update, &net.client(), ca_tools::now_unix()).unwrap();
        let update = update.encode_to_vec();
        assert!(update_verifier.verify(&update).is_ok(), "the unmutated update is valid");
        Fixture { _net: net, trust, envelope, genesis, update, update_verifier }
    })
}

fn mutate(base: &[u8], edits: &[(usize, u8)], cut: usize) -> Vec<u8> {
    let mut bytes = base.to_vec();
    for (index, value) in edits {
        if !bytes.is_empty() {
            let i = index % bytes.len();
            bytes[i] ^= value;
        }
    }
    bytes.truncate(bytes.len().saturating_sub(cut % 8));
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn envelope_decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let f = fixture();
        let _ = decode_envelope(&bytes, 4096);
        prop_assert!(verify_envelope(&bytes, &f.trust, 1, 4096).is_err());
    }

    #[test]
    fn mutated_envelopes_never_panic(edits in proptest::collection::vec((any::<usize>(), 1u8..), 1..6), cut in any::<usize>()) {
        let f = fixture();
        let bytes = mutate(&f.envelope, &edits, cut);
        let _ = verify_envelope(&bytes, &f.trust, ca_tools::now_unix(), 1 << 20);
        let _ = inspect_bytes(&bytes);
    }

    #[test]
    fn block_and_certificate_decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Block::decode_bounded(&bytes, 4096);
        let _ = BlockCertificate::from_metadata(&bytes);
        let _ = ChannelConfig::from_canonical_bytes(&bytes);
        let _ = inspect_bytes(&bytes);
        if let Ok(block) = Block::decode_bounded(&bytes, 4096) {
            let _ = config_from_genesis(&block);
            let _ = BlockCertificate::from_block(&block);
        }
    }

    #[test]
    fn mutated_genesis_blocks_never_panic(edits in proptest::collection::vec((any::<usize>(), 1u8..), 1..6), cut in any::<usize>()) {
        let f = fixture();
        let bytes = mutate(&f.genesis, &edits, cut);
        if let Ok(block) = Block::decode_bounded(&bytes, 1 << 20) {
            let _ = config_from_genesis(&block);
        }
        let _ = inspect_bytes(&bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn mutated_config_updates_never_panic(edits in proptest::collection::vec((any::<usize>(), 1u8..), 1..6), cut in any::<usize>()) {
        let f = fixture();
        let bytes = mutate(&f.update, &edits, cut);
        let _ = is_config_update(&bytes);
        let _ = f.update_verifier.verify(&bytes);
        let _ = f.update_verifier.verify_submitted(&bytes, ca_tools::now_unix());
        let _ = current_config_from_envelope(&bytes);
        let _ = inspect_bytes(&bytes);
    }

    #[test]
    fn config_update_decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let f = fixture();
        prop_assert!(f.update_verifier.verify(&bytes).is_err());
        let _ = is_config_update(&bytes);
        let _ = current_config_from_envelope(&bytes);
    }
}

//! Channel configuration validation, genesis round trip, profiles.

mod support;

use channels::config::{BatchConfig, BftOptions, ChannelConfig, ConfigError, KeyRotation};
use channels::genesis::{config_envelope, config_from_genesis, genesis_block, GenesisError};
use channels::proto::common::Block;
use channels::{genesis_from_profile, ProfileError};
use prost::Message;
use support::{foreign, network, CHANNEL};

fn structure_error(edit: impl FnOnce(&mut ChannelConfig)) -> ConfigError {
    let net = network();
    let mut config = net.config.clone();
    edit(&mut config);
    config.validate_structure().unwrap_err()
}

#[test]
fn generated_consortium_config_is_valid() {
    let net = network();
    assert_eq!(net.config.validate(), Ok(()));
    assert_eq!((net.config.n(), net.config.f(), net.config.quorum()), (4, 1, 3));
    assert_eq!(net.config.consenter(3).unwrap().msp_id, "Org2MSP");
    assert_eq!(net.config.org_trust().unwrap().len(), 2);
}

#[test]
fn quorum_follows_n_plus_f_plus_one_over_two() {
    let net = network();
    let mut config = net.config.clone();
    let template = config.consenters[0].clone();
    let expected = [(4, 1, 3), (5, 1, 4), (6, 1, 4), (7, 2, 5), (10, 3, 7)];
    for (n, f, quorum) in expected {
        config.consenters = (1..=n).map(|id| channels::config::Consenter { id, ..template.clone() }).collect();
        assert_eq!((config.f(), config.quorum()), (f, quorum), "n = {n}");
    }
}

#[test]
fn fewer_than_four_consenters_are_refused() {
    assert_eq!(structure_error(|c| c.consenters.truncate(3)), ConfigError::TooFewConsenters(3));
}

#[test]
fn duplicate_consenter_ids_are_refused() {
    assert_eq!(structure_error(|c| c.consenters[2].id = 1), ConfigError::DuplicateConsenterId(1));
}

#[test]
fn duplicate_endpoints_are_refused() {
    let err = structure_error(|c| {
        c.consenters[1].host = c.consenters[0].host.clone();
        c.consenters[1].port = c.consenters[0].port;
    });
    assert!(matches!(err, ConfigError::DuplicateEndpoint(_)), "{err}");
}

#[test]
fn twin_identity_certificates_are_refused() {
    let err = structure_error(|c| c.consenters[3].identity_cert = c.consenters[2].identity_cert.clone());
    assert_eq!(err, ConfigError::DuplicateIdentity(3, 4));
}

#[test]
fn consenter_of_an_unknown_org_is_refused() {
    let err = structure_error(|c| c.consenters[0].msp_id = "Org9MSP".into());
    assert!(matches!(err, ConfigError::ConsenterOrgUnknown { id: 1, .. }), "{err}");
}

#[test]
fn mac_public_key_of_the_wrong_length_is_refused() {
    assert_eq!(
        structure_error(|c| c.consenters[1].mac_public_key = vec![7; 31]),
        ConfigError::BadMacKey { id: 2, len: 31 }
    );
}

#[test]
fn profile_reads_the_mac_public_key_beside_the_node_directory() {
    let net = network();
    std::fs::write(net.path("Org2/orderers/orderer3/mac.pub"), hex::encode([9u8; 32])).unwrap();
    std::fs::write(net.path("configtx.yaml"), PROFILE).unwrap();
    let (config, _) = genesis_from_profile(&net.path("configtx.yaml"), CHANNEL, None).unwrap();
    assert_eq!(config.consenter(4).unwrap().mac_public_key, vec![9u8; 32]);
    assert!(config.consenter(1).unwrap().mac_public_key.is_empty());
    std::fs::write(net.path("Org2/orderers/orderer3/mac.pub"), "not hex").unwrap();
    let err = genesis_from_profile(&net.path("configtx.yaml"), CHANNEL, None).unwrap_err();
    assert!(matches!(err, ProfileError::Missing { .. }), "{err}");
}

#[test]
fn zero_port_is_refused() {
    assert!(matches!(structure_error(|c| c.consenters[0].port = 0), ConfigError::BadEndpoint { id: 1, .. }));
}

#[test]
fn consenter_certificate_from_a_foreign_ca_is_refused() {
    let net = network();
    let (dir, _) = foreign();
    let mut config = net.config.clone();
    let stranger = dir.path().join("Org1/users/User1/msp/signcerts");
    let pem = std::fs::read_dir(&stranger).unwrap().next().unwrap().unwrap().path();
    config.consenters[0].identity_cert = std::fs::read_to_string(pem).unwrap();
    let err = config.validate().unwrap_err();
    assert!(matches!(err, ConfigError::BadConsenterCert { id: 1, which: "identity", .. }), "{err}");
}

#[test]
fn consenter_with_a_client_certificate_is_refused() {
    let net = network();
    let mut config = net.config.clone();
    config.consenters[0].identity_cert = net.client().signcert_pem;
    let err = config.validate().unwrap_err();
    assert!(matches!(err, ConfigError::BadConsenterCert { id: 1, which: "identity", .. }), "{err}");
}

#[test]
fn identity_certificate_used_as_tls_certificate_is_refused() {
    let net = network();
    let mut config = net.config.clone();
    config.consenters[2].tls_cert = config.consenters[2].identity_cert.clone();
    let err = config.validate().unwrap_err();
    assert!(matches!(err, ConfigError::BadConsenterCert { id: 3, which: "TLS", .. }), "{err}");
}

#[test]
fn expired_consenter_certificates_are_refused() {
    let net = network();
    let err = net.config.validate_at(ca_tools::now_unix() + 3 * 365 * 86_400).unwrap_err();
    assert!(matches!(err, ConfigError::BadConsenterCert { .. }), "{err}");
}

type Edit = dyn FnOnce(&mut ChannelConfig);

#[test]
fn zero_or_absurd_sizes_and_timeouts_are_refused() {
    let cases: Vec<(Box<Edit>, &str)> = vec![
        (Box::new(|c| c.batch.as_mut().unwrap().max_message_count = 0), "batch.max_message_count"),
        (Box::new(|c| c.batch.as_mut().unwrap().absolute_max_bytes = u32::MAX), "batch.absolute_max_bytes"),
        (Box::new(|c| c.batch.as_mut().unwrap().preferred_max_bytes = 20 * 1024 * 1024), "batch.preferred_max_bytes"),
        (Box::new(|c| c.batch.as_mut().unwrap().batch_timeout_ms = 0), "batch.batch_timeout_ms"),
        (Box::new(|c| c.bft.as_mut().unwrap().view_change_timeout_ms = 86_400_000), "bft.view_change_timeout_ms"),
        (Box::new(|c| c.bft.as_mut().unwrap().checkpoint_interval = 0), "bft.checkpoint_interval"),
        (
            Box::new(|c| c.key_rotation = Some(KeyRotation { every_blocks: 0, every_seconds: 5 })),
            "key_rotation.every_seconds",
        ),
    ];
    for (edit, field) in cases {
        match structure_error(edit) {
            ConfigError::OutOfRange { field: f, .. } => assert_eq!(f, field),
            other => panic!("{field}: expected OutOfRange, got {other}"),
        }
    }
}

#[test]
fn window_smaller_than_checkpoint_interval_is_refused() {
    let err = structure_error(|c| {
        let bft = c.bft.as_mut().unwrap();
        bft.checkpoint_interval = 100;
        bft.pipeline_window = 50;
    });
    assert!(matches!(err, ConfigError::Inconsistent(ref m) if m.contains("pipeline_window")), "{err}");
}

#[test]
fn forward_timeout_not_shorter_than_complain_timeout_is_refused() {
    let err = structure_error(|c| {
        let bft = c.bft.as_mut().unwrap();
        bft.request_forward_timeout_ms = bft.request_complain_timeout_ms;
    });
    assert!(matches!(err, ConfigError::Inconsistent(ref m) if m.contains("request_forward")), "{err}");
}

#[test]
fn missing_sections_and_unknown_policy_are_refused() {
    assert_eq!(structure_error(|c| c.batch = None), ConfigError::MissingSection("batch"));
    assert_eq!(structure_error(|c| c.bft = None), ConfigError::MissingSection("bft"));
    assert!(matches!(structure_error(|c| c.admin_policy = "dictator".into()), ConfigError::UnknownAdminPolicy(_)));
}

#[test]
fn bad_channel_ids_are_refused() {
    for id in ["", "Upper", "9lives", "has space", &"a".repeat(250)] {
        let id = id.to_string();
        assert!(matches!(structure_error(|c| c.channel_id = id.clone()), ConfigError::BadChannelId(_)), "{id:?}");
    }
}

#[test]
fn recommended_settings_are_valid() {
    let net = network();
    let mut config = net.config.clone();
    config.batch = Some(BatchConfig::recommended());
    config.bft = Some(BftOptions::recommended());
    assert_eq!(config.validate_structure(), Ok(()));
}

#[test]
fn genesis_block_round_trips_the_config() {
    let net = network();
    let block = genesis_block(&net.config);
    let decoded = Block::decode(block.encode_to_vec().as_slice()).unwrap();
    assert_eq!(config_from_genesis(&decoded), Ok(net.config.clone()));
    assert_eq!(decoded.number(), 0);
    assert_eq!(genesis_block(&net.config), block, "genesis is deterministic");
}

#[test]
fn genesis_with_tampered_config_is_refused() {
    let net = network();
    let mut block = genesis_block(&net.config);
    let mut other = net.config.clone();
    other.consenters.truncate(3);
    block.data.as_mut().unwrap().data[0] = config_envelope(&other).encode_to_vec();
    assert!(matches!(config_from_genesis(&block), Err(GenesisError::Block(_))), "data hash must not match");
    block.header.as_mut().unwrap().data_hash = channels::block::data_hash(block.envelopes()).to_vec();
    assert_eq!(config_from_genesis(&block), Err(GenesisError::Config(ConfigError::TooFewConsenters(3))));
}

#[test]
fn non_canonical_config_encoding_is_refused() {
    let net = network();
    let mut bytes = net.config.to_canonical_bytes();
    bytes.extend_from_slice(&[0x98, 0x06, 0x01]); // unknown field 99 = 1
    assert!(matches!(ChannelConfig::from_canonical_bytes(&bytes), Err(ConfigError::Decode(_))));
}

#[test]
fn block_that_is_not_block_zero_is_not_a_genesis_block() {
    let net = network();
    let genesis = genesis_block(&net.config);
    let next = channels::block::build_block(1, &genesis.header.as_ref().unwrap().hash(), genesis.envelopes().to_vec());
    assert!(matches!(config_from_genesis(&next), Err(GenesisError::NotGenesis(_))));
}

const PROFILE: &str = r#"
organizations:
  - { msp_id: Org1MSP, msp_dir: Org1/ca/msp }
  - { msp_id: Org2MSP, msp_dir: Org2/ca/msp }
consenters:
  - { id: 1, host: orderer0, port: 7050, msp_id: Org1MSP, dir: Org1/orderers/orderer0 }
  - { id: 2, host: orderer1, port: 7050, msp_id: Org1MSP, dir: Org1/orderers/orderer1 }
  - { id: 3, host: orderer2, port: 7050, msp_id: Org2MSP, dir: Org2/orderers/orderer2 }
  - { id: 4, host: orderer3, port: 7050, msp_id: Org2MSP, dir: Org2/orderers/orderer3 }
bft: { checkpoint_interval: 10, pipeline_window: 20 }
"#;

#[test]
fn profile_makes_a_valid_genesis_with_defaults_overlaid() {
    let net = network();
    let path = net.path("configtx.yaml");
    std::fs::write(&path, PROFILE).unwrap();
    let (config, block) = genesis_from_profile(&path, CHANNEL, None).unwrap();
    assert_eq!(config_from_genesis(&block).unwrap(), config);
    let bft = config.bft.unwrap();
    assert_eq!((bft.checkpoint_interval, bft.pipeline_window), (10, 20));
    assert_eq!(bft.view_change_timeout_ms, BftOptions::recommended().view_change_timeout_ms);
    assert_eq!(config.consenters[2].identity_cert, net.config.consenters[2].identity_cert);
}

#[test]
fn profile_with_a_typo_or_missing_node_is_refused() {
    let net = network();
    let path = net.path("configtx.yaml");
    std::fs::write(&path, PROFILE.replace("checkpoint_interval", "checkpoint_intervall")).unwrap();
    assert!(matches!(genesis_from_profile(&path, CHANNEL, None), Err(ProfileError::Yaml { .. })));
    std::fs::write(&path, PROFILE.replace("orderers/orderer3", "orderers/orderer7")).unwrap();
    assert!(matches!(genesis_from_profile(&path, CHANNEL, None), Err(ProfileError::Missing { .. })));
    std::fs::write(&path, PROFILE.replace("pipeline_window: 20", "pipeline_window: 5")).unwrap();
    assert!(matches!(
        genesis_from_profile(&path, CHANNEL, None),
        Err(ProfileError::Config(ConfigError::Inconsistent(_)))
    ));
}

//! `orderer dev` prepares a consortium, a genesis block and node configs
//! that the node's own loaders accept; running it again reuses them.

use orderer::config::NodeConfig;
use orderer::node::dev::{prepare, DevOptions};

#[test]
fn dev_folder_holds_a_valid_consortium_genesis_and_configs_and_is_reused() {
    let dir = tempfile::tempdir().unwrap();
    let opts = DevOptions {
        nodes: 4,
        dir: dir.path().join("net"),
        channel: "devchannel".into(),
        base_port: 27050,
        demo: 0,
        exit_after_demo: true,
        hosts: vec![],
    };
    let configs = prepare(&opts).unwrap();
    assert_eq!(configs.len(), 4);
    let genesis = std::fs::read(opts.dir.join("bootstrap/devchannel.block")).unwrap();
    let block = <channels::proto::common::Block as prost::Message>::decode(genesis.as_slice()).unwrap();
    let config = channels::config_from_genesis(&block).unwrap();
    config.validate().unwrap();
    assert_eq!(config.consenters.len(), 4);
    assert!(config.consenters.iter().all(|c| c.mac_public_key.len() == 32));
    for (i, path) in configs.iter().enumerate() {
        let cfg = NodeConfig::load(Some(path), Vec::new()).unwrap();
        assert_eq!(cfg.node.id as usize, i + 1);
        assert!(cfg.node.msp_dir.join("signcerts").is_dir(), "{}", cfg.node.msp_dir.display());
    }
    // Again: nothing regenerated, same genesis.
    prepare(&opts).unwrap();
    assert_eq!(std::fs::read(opts.dir.join("bootstrap/devchannel.block")).unwrap(), genesis);
}

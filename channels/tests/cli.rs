//! The `channels` CLI end to end, on a consortium generated at test time.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use prost::Message;

fn channels(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_channels")).current_dir(dir).args(args).output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn refused(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure");
    assert!(stderr.contains(needle), "stderr {stderr:?} lacks {needle:?}");
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
"#;

#[test]
fn genesis_envelope_block_inspect_and_verify_end_to_end() {
    let net = support::network();
    let dir = net.dir.path();
    std::fs::write(dir.join("configtx.yaml"), PROFILE).unwrap();
    std::fs::write(dir.join("tx.txt"), "hello ledger").unwrap();

    let out = ok(&channels(dir, &["genesis", "--profile", "configtx.yaml", "--channel", "demo", "--out", "g.block"]));
    assert!(out.contains("4 consenters (f = 1, quorum 3)"), "{out}");
    refused(
        &channels(dir, &["genesis", "--profile", "configtx.yaml", "--channel", "demo", "--out", "g.block"]),
        "--force",
    );

    ok(&channels(
        dir,
        &["envelope", "--signer", "Org1/users/User1/msp", "--channel", "demo", "--data", "tx.txt", "--out", "e.env"],
    ));
    let out = ok(&channels(dir, &["verify-envelope", "--config", "g.block", "e.env"]));
    assert!(out.starts_with("ok: envelope"), "{out}");
    ok(&channels(
        dir,
        &["envelope", "--signer", "Org1/users/User1/msp", "--channel", "other", "--data", "tx.txt", "--out", "x.env"],
    ));
    refused(&channels(dir, &["verify-envelope", "--config", "g.block", "x.env"]), "not \"demo\"");

    let inspect: serde_json::Value = serde_json::from_str(&ok(&channels(dir, &["inspect", "e.env"]))).unwrap();
    assert_eq!(inspect["envelope"]["data"]["text"], "hello ledger");
    assert_eq!(inspect["envelope"]["channel_header"]["tx_id_valid"], true);

    let sign = |id: u32, node: &str| format!("--sign={id}=Org{}/orderers/{node}/msp", if id <= 2 { 1 } else { 2 });
    let (s1, s2, s4) = (sign(1, "orderer0"), sign(2, "orderer1"), sign(4, "orderer3"));
    ok(&channels(
        dir,
        &["block", "--config", "g.block", "--envelope", "e.env", &s1, &s2, &s4, "--epoch", "5", "--out", "b1"],
    ));
    ok(&channels(
        dir,
        &["block", "--config", "g.block", "--previous", "b1", "--envelope", "e.env", &s1, "--out", "b2"],
    ));
    let out = ok(&channels(dir, &["verify-block", "--config", "g.block", "--epoch", "5", "b1"]));
    assert!(out.contains("ok: block 1"), "{out}");
    refused(&channels(dir, &["verify-block", "--config", "g.block", "b1", "b2"]), "quorum is 3");
    refused(&channels(dir, &["verify-block", "--config", "g.block", "b2"]), "quorum");
    refused(&channels(dir, &["verify-block", "--config", "g.block", "--epoch", "4", "b1"]), "expected epoch 4");

    let block: serde_json::Value = serde_json::from_str(&ok(&channels(dir, &["inspect", "b1"]))).unwrap();
    assert_eq!(block["block"]["certificate"]["epoch"], 5);
    assert_eq!(block["block"]["header"]["data_hash_valid"], true);
    let genesis: serde_json::Value = serde_json::from_str(&ok(&channels(dir, &["inspect", "g.block"]))).unwrap();
    let config = &genesis["block"]["envelopes"][0]["data"]["channel_config"];
    assert_eq!(config["channel_id"], "demo");
    assert_eq!(config["consenters"].as_array().unwrap().len(), 4);
}

#[test]
fn unreadable_inputs_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("junk"), [0xffu8, 0xff, 0xff]).unwrap();
    refused(&channels(dir.path(), &["inspect", "junk"]), "not a block or an envelope");
    refused(&channels(dir.path(), &["inspect", "missing"]), "cannot read missing");
    refused(
        &channels(dir.path(), &["genesis", "--profile", "nope.yaml", "--channel", "c", "--out", "g"]),
        "cannot read nope.yaml",
    );
}

#[test]
fn config_update_create_sign_envelope_verify_and_chain() {
    let net = support::four_orgs();
    let dir = net.net.dir.path();
    std::fs::write(dir.join("g.block"), channels::genesis_block(&net.net.config).encode_to_vec()).unwrap();
    std::fs::write(dir.join("c5.json"), serde_json::to_string(&net.spares[0]).unwrap()).unwrap();
    let admin = |org: u32| format!("Org{org}/users/Admin/msp");

    let out = ok(&channels(
        dir,
        &["config-update", "create", "--current", "g.block", "--add-consenter", "c5.json", "--out", "u.pb"],
    ));
    assert!(out.contains("added consenter 5 (Org4MSP)"), "{out}");
    for org in [1, 2] {
        ok(&channels(dir, &["config-update", "sign", "--update", "u.pb", "--msp", &admin(org)]));
    }
    refused(&channels(dir, &["config-update", "sign", "--update", "u.pb", "--msp", &admin(2)]), "already signed");
    let wrap = ["config-update", "envelope", "--update", "u.pb", "--msp", &admin(1), "--channel", support::CHANNEL];
    ok(&channels(dir, &[&wrap[..], &["--out", "u.env"]].concat()));
    refused(
        &channels(dir, &["config-update", "verify", "--current", "g.block", "--envelope", "u.env"]),
        "2 of 4 organisations (Org1MSP, Org2MSP); the channel's admin policy `majority` needs 3",
    );

    ok(&channels(dir, &["config-update", "sign", "--update", "u.pb", "--msp", &admin(3)]));
    ok(&channels(dir, &[&wrap[..], &["--out", "u.env", "--force"]].concat()));
    let out = ok(&channels(dir, &["config-update", "verify", "--current", "g.block", "--envelope", "u.env"]));
    assert!(out.starts_with("ok: config update"), "{out}");
    assert!(out.contains("approved by admins of Org1MSP, Org2MSP, Org3MSP"), "{out}");

    let inspect: serde_json::Value = serde_json::from_str(&ok(&channels(dir, &["inspect", "u.env"]))).unwrap();
    let update = &inspect["envelope"]["data"]["config_update"];
    assert_eq!(update["signers"].as_array().unwrap().len(), 3);
    assert_eq!(update["channel_config"]["sequence"], 1);
    let unwrapped: serde_json::Value = serde_json::from_str(&ok(&channels(dir, &["inspect", "u.pb"]))).unwrap();
    assert_eq!(unwrapped["config_update"]["signers"][2]["mspid"], "Org3MSP");

    // The block that orders the update becomes the base of the next one.
    let genesis = channels::genesis_block(&net.net.config);
    let envelope = std::fs::read(dir.join("u.env")).unwrap();
    let block = channels::block::build_block(1, &genesis.header.unwrap().hash(), vec![envelope]);
    std::fs::write(dir.join("b1.block"), block.encode_to_vec()).unwrap();
    let out = ok(&channels(
        dir,
        &["config-update", "create", "--current", "b1.block", "--remove-consenter", "2", "--out", "u2.pb"],
    ));
    assert!(out.contains("sequence 1 -> 2") && out.contains("removed consenter 2"), "{out}");
    refused(
        &channels(dir, &["config-update", "create", "--current", "b1.block", "--remove-consenter", "9", "--out", "x"]),
        "no consenter 9",
    );
    refused(
        &channels(dir, &["config-update", "create", "--current", "g.block", "--rotate-identity", "3", "--out", "x"]),
        "expected ID=PEMFILE",
    );
}

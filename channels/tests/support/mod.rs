//! Test consortia, generated at test time with ca-tools (never committed).
#![allow(dead_code)]

use std::path::PathBuf;

use ca_tools::{generate_network, Msp, NetworkConfig, NetworkSummary, SigningKey};
use channels::config_from_network;
use channels::ChannelConfig;
use tempfile::TempDir;

pub const CHANNEL: &str = "testchannel";

/// A generated consortium and the channel configuration over it.
pub struct Net {
    pub dir: TempDir,
    pub summary: NetworkSummary,
    pub config: ChannelConfig,
}

const CONSORTIUM: &str = r#"
orgs:
  - name: Org1
    msp_id: Org1MSP
    orderers: [{ name: orderer0 }, { name: orderer1 }]
    peers: [{ name: peer0 }]
    admins: [{ name: Admin }]
    clients: [{ name: User1 }]
  - name: Org2
    msp_id: Org2MSP
    key_type: ed25519
    orderers: [{ name: orderer2 }, { name: orderer3 }]
    admins: [{ name: Admin }]
    clients: [{ name: User1 }]
"#;

const FOREIGN: &str = r#"
orgs:
  - name: Org3
    msp_id: Org3MSP
    orderers: [{ name: orderer9 }]
    clients: [{ name: User1 }]
  - name: Org1
    msp_id: Org1MSP
    clients: [{ name: User1 }]
"#;

fn generate(yaml: &str) -> (TempDir, NetworkSummary) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = NetworkConfig::from_yaml(yaml).unwrap();
    let summary = generate_network(&cfg, dir.path(), false).unwrap();
    (dir, summary)
}

/// Org1 (ECDSA P-256: orderer0, orderer1, peer0, Admin, User1) and Org2
/// (Ed25519: orderer2, orderer3, Admin, User1); consenters 1-4 in that order.
pub fn network() -> Net {
    let (dir, summary) = generate(CONSORTIUM);
    let config = config_from_network(CHANNEL, &summary, |i, o| (o.name.clone(), 7050 + i as u16)).unwrap();
    Net { dir, summary, config }
}

/// A separate consortium: Org3MSP, and an impostor "Org1MSP" whose CA is not
/// the channel's Org1 CA.
pub fn foreign() -> (TempDir, NetworkSummary) {
    generate(FOREIGN)
}

impl Net {
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The MSP of `org/kind/name`, e.g. `("Org1", "users", "User1")`.
    pub fn msp(&self, org: &str, kind: &str, name: &str) -> Msp {
        Msp::load(None, &self.path(&format!("{org}/{kind}/{name}/msp"))).unwrap()
    }

    pub fn client(&self) -> Msp {
        self.msp("Org1", "users", "User1")
    }

    /// The identity key of consenter `id` (1-4).
    pub fn consenter_key(&self, id: u32) -> SigningKey {
        let (org, name) = match id {
            1 => ("Org1", "orderer0"),
            2 => ("Org1", "orderer1"),
            3 => ("Org2", "orderer2"),
            _ => ("Org2", "orderer3"),
        };
        self.msp(org, "orderers", name).key
    }
}

pub fn foreign_msp(dir: &TempDir, org: &str, kind: &str, name: &str) -> Msp {
    Msp::load(None, &dir.path().join(format!("{org}/{kind}/{name}/msp"))).unwrap()
}

const FOUR_ORGS: &str = r#"
orgs:
  - name: Org1
    msp_id: Org1MSP
    orderers: [{ name: orderer1 }]
    peers: [{ name: peer0 }]
    admins: [{ name: Admin }, { name: Admin2 }]
    clients: [{ name: User1 }]
  - name: Org2
    msp_id: Org2MSP
    orderers: [{ name: orderer2 }]
    admins: [{ name: Admin }]
  - name: Org3
    msp_id: Org3MSP
    key_type: ed25519
    orderers: [{ name: orderer3 }]
    admins: [{ name: Admin }]
  - name: Org4
    msp_id: Org4MSP
    orderers: [{ name: orderer4 }, { name: orderer5 }, { name: orderer6 }]
    admins: [{ name: Admin }]
"#;

const OUTSIDERS: &str = r#"
orgs:
  - name: Org5
    msp_id: Org5MSP
    admins: [{ name: Admin }]
  - name: Org1
    msp_id: Org1MSP
    admins: [{ name: Admin }]
"#;

/// Four organisations (Org1-Org4, Org3 Ed25519) with one consenter each
/// (ids 1-4, `orderer1`..`orderer4`), an admin each (Org1 has two:
/// `Admin`, `Admin2`), and two spare orderers of Org4 (`orderer5`,
/// `orderer6`) described as consenters 5 and 6 but not in the channel.
pub struct FourOrgs {
    pub net: Net,
    pub spares: Vec<channels::config::Consenter>,
}

pub fn four_orgs() -> FourOrgs {
    let (dir, summary) = generate(FOUR_ORGS);
    let mut config = config_from_network(CHANNEL, &summary, |i, o| (o.name.clone(), 7050 + i as u16)).unwrap();
    let spares = config.consenters.split_off(4);
    assert_eq!(config.validate(), Ok(()));
    FourOrgs { net: Net { dir, summary, config }, spares }
}

impl FourOrgs {
    /// The admin of `OrgN`.
    pub fn admin(&self, org: u32) -> Msp {
        self.net.msp(&format!("Org{org}"), "users", "Admin")
    }
}

/// Admins outside the channel: Org5MSP's, and an impostor "Org1MSP" admin
/// whose CA is not the channel's Org1 CA.
pub fn outsiders() -> (TempDir, NetworkSummary) {
    generate(OUTSIDERS)
}

//! The consenters' keys an auditor trusts: every consenter identity
//! certificate of the channel configuration(s) given, each checked to chain
//! to the auditor's CA roots.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ca_tools::{OrgTrust, PublicKey};
use channels::proto::common::Block as PbBlock;
use channels::ChannelConfig;
use prost::Message;

use super::verify::Keys;
use super::AuditError;
use crate::consensus::ReplicaId;

/// Largest genesis/config block read.
const CONFIG_BLOCK_BYTES_MAX: u64 = 64 * 1024 * 1024;

struct ChannelKeys {
    quorum: usize,
    /// Every certificate a consenter id had in the configurations given.
    consenters: BTreeMap<ReplicaId, Vec<(String, PublicKey)>>,
}

/// Keys from CA roots and channel configurations.
pub struct ConfigKeys {
    channels: BTreeMap<String, ChannelKeys>,
    /// Consenter certificates that were not trusted, and why.
    pub refused: Vec<String>,
}

/// Reads a block file (bounded).
pub fn read_block(path: &Path) -> Result<PbBlock, AuditError> {
    let bytes = channels::files::read_bounded(path, CONFIG_BLOCK_BYTES_MAX)
        .map_err(|e| AuditError::Input(format!("{}: {e}", path.display())))?;
    PbBlock::decode(bytes.as_slice())
        .map_err(|e| AuditError::Input(format!("{}: not a protobuf block: {e}", path.display())))
}

impl ConfigKeys {
    /// `roots`: a folder of PEM CA root certificates (the auditor's trust
    /// anchors); `configs`: genesis or config blocks of the channel(s).
    pub fn load(roots: &Path, configs: &[PathBuf]) -> Result<Self, AuditError> {
        let root_pems = channels::files::read_pem_dir(roots)
            .map_err(|e| AuditError::Input(format!("--roots {}: {e}", roots.display())))?;
        if root_pems.is_empty() {
            return Err(AuditError::Input(format!(
                "--roots {}: no PEM certificate found; give the folder holding the organisations' CA root certificates",
                roots.display()
            )));
        }
        if configs.is_empty() {
            return Err(AuditError::Input("give the channel's genesis block with --config".into()));
        }
        let mut parsed = Vec::new();
        for p in configs {
            let block = read_block(p)?;
            let cfg = channels::config_from_genesis(&block)
                .map_err(|e| AuditError::Input(format!("{}: not a channel configuration block: {e}", p.display())))?;
            parsed.push(cfg);
        }
        Ok(Self::from_configs(&root_pems, &parsed))
    }

    /// As [`ConfigKeys::load`], from parsed inputs.
    pub fn from_configs(root_pems: &[String], configs: &[ChannelConfig]) -> Self {
        let mut keys = ConfigKeys { channels: BTreeMap::new(), refused: vec![] };
        let now = ca_tools::now_unix();
        for cfg in configs {
            let ch = keys
                .channels
                .entry(cfg.channel_id.clone())
                .or_insert_with(|| ChannelKeys { quorum: cfg.quorum(), consenters: BTreeMap::new() });
            ch.quorum = ch.quorum.max(cfg.quorum());
            for c in &cfg.consenters {
                let checked = OrgTrust::new(&c.msp_id, root_pems, &[], &[])
                    .map_err(|e| e.to_string())
                    .and_then(|trust| {
                        ca_tools::verify_identity(c.identity_cert.as_bytes(), &[trust], now, &[])
                            .map_err(|e| e.to_string())
                    })
                    .and_then(|_| PublicKey::from_cert(c.identity_cert.as_bytes()).map_err(|e| e.to_string()));
                match checked {
                    Ok(pk) => {
                        let list = ch.consenters.entry(c.id).or_default();
                        if !list.iter().any(|(pem, _)| pem == &c.identity_cert) {
                            list.push((c.identity_cert.clone(), pk));
                        }
                    }
                    Err(why) => keys.refused.push(format!(
                        "consenter {} of channel {}: its identity certificate does not chain to the roots given: {why}",
                        c.id, cfg.channel_id
                    )),
                }
            }
        }
        keys
    }
}

/// The DER of every certificate in `pem` (empty when none parses).
fn ders(pem: &str) -> Vec<Vec<u8>> {
    ca_tools::pemutil::ders_with_tag(pem.as_bytes(), "CERTIFICATE", "certificate").unwrap_or_default()
}

impl Keys for ConfigKeys {
    fn knows(&self, channel: &str, consenter: ReplicaId) -> bool {
        self.channels.get(channel).is_some_and(|c| c.consenters.contains_key(&consenter))
    }

    fn verify(&self, channel: &str, consenter: ReplicaId, message: &[u8], signature: &[u8]) -> bool {
        let Some(list) = self.channels.get(channel).and_then(|c| c.consenters.get(&consenter)) else { return false };
        list.iter().any(|(_, pk)| pk.verify(message, signature).is_ok())
    }

    fn quorum(&self, channel: &str) -> usize {
        self.channels.get(channel).map_or(usize::MAX, |c| c.quorum)
    }

    fn check_certificate(&self, channel: &str, consenter: ReplicaId, pem: &str) -> Result<(), String> {
        let Some(list) = self.channels.get(channel).and_then(|c| c.consenters.get(&consenter)) else {
            return Err(format!("consenter {consenter} of channel {channel} is not in the configuration given"));
        };
        // The first certificate of the PEM is the consenter's; a chain may follow.
        let given = ders(pem);
        let Some(first) = given.first() else { return Err("the certificate is not PEM".into()) };
        if list.iter().any(|(pinned, _)| ders(pinned).first() == Some(first)) {
            Ok(())
        } else {
            Err(format!("it is not the identity certificate the channel configuration pins for consenter {consenter}"))
        }
    }

    fn certificate(&self, channel: &str, consenter: ReplicaId) -> String {
        self.channels
            .get(channel)
            .and_then(|c| c.consenters.get(&consenter))
            .and_then(|l| l.first())
            .map(|(pem, _)| pem.clone())
            .unwrap_or_default()
    }
}

//! The node's configuration file (`orderer.yaml`).
//!
//! Every key has a default; every key can be overridden by an environment
//! variable named `ORDERER_` + the key path in upper case joined by `_`
//! (e.g. `cluster.listen` → `ORDERER_CLUSTER_LISTEN`,
//! `node.data_dir` → `ORDERER_NODE_DATA_DIR`). docs/orderer-config.md lists
//! them all; a test checks that it does.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why the configuration could not be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {detail}")]
    Read { path: String, detail: String },
    #[error("config file {path} is not valid: {detail}")]
    Parse { path: String, detail: String },
    #[error("environment variable {var}={value:?} does not fit key {key}: {detail}")]
    Env { var: String, value: String, key: String, detail: String },
    #[error("environment variable {var} matches no configuration key (see docs/orderer-config.md)")]
    UnknownEnv { var: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The whole configuration.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    pub node: NodeSection,
    pub cluster: ClusterSection,
    pub api: ListenerSection,
    pub admin: ListenerSection,
    pub operations: OperationsSection,
    pub consensus: ConsensusSection,
    pub logging: LoggingSection,
}

/// Who this node is and where its files are.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NodeSection {
    /// This node's consenter id, as listed in the channels' configurations.
    pub id: u32,
    /// MSP id of this node's organisation.
    pub msp_id: String,
    /// Folder for the ledger and consensus state (redb).
    pub data_dir: PathBuf,
    /// The node's MSP folder (signcerts, keystore, cacerts) from ca-tools.
    pub msp_dir: PathBuf,
    /// A second MSP folder holding this node's next identity (empty: none).
    /// When a reconfiguration pins a new identity certificate for this
    /// consenter, the node signs with whichever of `msp_dir` and
    /// `next_msp_dir` holds it.
    pub next_msp_dir: PathBuf,
    /// The node's TLS folder (server.crt, server.key, ca.crt) from ca-tools.
    pub tls_dir: PathBuf,
    /// The node's X25519 key for pairwise MAC keys (created if missing).
    pub mac_key_file: PathBuf,
    /// Genesis blocks of channels to join at start.
    pub bootstrap_dir: PathBuf,
}

/// Node-to-node links.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterSection {
    /// Address the cluster listener binds.
    pub listen: String,
    /// Largest frame accepted from a peer, in bytes.
    pub frame_bytes_max: usize,
    /// Frames queued per peer before new ones are dropped.
    pub send_queue_max: usize,
    pub reconnect_min_ms: u64,
    pub reconnect_max_ms: u64,
    /// Fault injection for tests only: delay added to every frame sent.
    pub fault_delay_ms: u64,
    /// Fault injection for tests only: frames dropped per thousand.
    pub fault_drop_per_mille: u64,
}

/// An HTTPS listener with mutual TLS.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ListenerSection {
    pub listen: String,
    /// Largest request body accepted, in bytes.
    pub body_bytes_max: usize,
}

/// The operations endpoint (metrics, health).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OperationsSection {
    pub listen: String,
}

/// Runtime parameters of the consensus tasks (protocol parameters live in
/// each channel's configuration).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ConsensusSection {
    /// Length of one consensus tick; channel timeouts are rounded to ticks.
    pub tick_ms: u64,
    /// Requests and frames queued per channel task.
    pub queue_max: usize,
    /// Envelopes waiting in a channel's pool before new ones are refused.
    pub pool_max: usize,
    /// Sign every consensus message instead of using MACs on the fast path
    /// (`orderer bench --auth signatures`). All consenters must agree.
    pub sign_all_messages: bool,
    /// A primary with none of its proposals in flight cuts a batch as soon as
    /// one request waits: lower latency at low load, at the price of many
    /// more, smaller blocks (`orderer bench --cut-when-idle`).
    pub cut_when_idle: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingSection {
    /// A tracing filter, e.g. `info` or `orderer=debug`.
    pub level: String,
    /// `text` or `json`.
    pub format: String,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            node: NodeSection::default(),
            cluster: ClusterSection::default(),
            api: ListenerSection { listen: "0.0.0.0:7051".into(), body_bytes_max: 10 * 1024 * 1024 },
            admin: ListenerSection { listen: "127.0.0.1:7053".into(), body_bytes_max: 10 * 1024 * 1024 },
            operations: OperationsSection::default(),
            consensus: ConsensusSection::default(),
            logging: LoggingSection::default(),
        }
    }
}

impl Default for NodeSection {
    fn default() -> Self {
        Self {
            id: 1,
            msp_id: "OrdererMSP".into(),
            data_dir: "data".into(),
            msp_dir: "msp".into(),
            next_msp_dir: PathBuf::new(),
            tls_dir: "tls".into(),
            mac_key_file: "mac.key".into(),
            bootstrap_dir: "bootstrap".into(),
        }
    }
}

impl Default for ClusterSection {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:7050".into(),
            frame_bytes_max: 16 * 1024 * 1024,
            send_queue_max: 4096,
            reconnect_min_ms: 100,
            reconnect_max_ms: 5_000,
            fault_delay_ms: 0,
            fault_drop_per_mille: 0,
        }
    }
}

impl Default for ListenerSection {
    fn default() -> Self {
        Self { listen: "0.0.0.0:7051".into(), body_bytes_max: 10 * 1024 * 1024 }
    }
}

impl Default for OperationsSection {
    fn default() -> Self {
        Self { listen: "127.0.0.1:9443".into() }
    }
}

impl Default for ConsensusSection {
    fn default() -> Self {
        Self { tick_ms: 10, queue_max: 10_000, pool_max: 20_000, sign_all_messages: false, cut_when_idle: false }
    }
}

impl Default for LoggingSection {
    fn default() -> Self {
        Self { level: "info".into(), format: "text".into() }
    }
}

const ENV_PREFIX: &str = "ORDERER_";

impl NodeConfig {
    /// Reads `path` (if given), applies `ORDERER_*` overrides from `env`,
    /// resolves relative paths against the file's folder, and validates.
    pub fn load(path: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let (mut value, base) = match path {
            Some(p) => {
                let shown = p.display().to_string();
                let text = std::fs::read_to_string(p)
                    .map_err(|e| ConfigError::Read { path: shown.clone(), detail: e.to_string() })?;
                let parsed: NodeConfig = serde_norway::from_str(&text)
                    .map_err(|e| ConfigError::Parse { path: shown.clone(), detail: e.to_string() })?;
                let v = serde_json::to_value(parsed)
                    .map_err(|e| ConfigError::Parse { path: shown, detail: e.to_string() })?;
                (v, p.parent().map(Path::to_path_buf).unwrap_or_default())
            }
            None => (default_value(), PathBuf::new()),
        };
        for (var, raw) in env {
            let Some(suffix) = var.strip_prefix(ENV_PREFIX) else { continue };
            let Some(slot) = find_key(&mut value, suffix) else {
                return Err(ConfigError::UnknownEnv { var });
            };
            let key = suffix.to_ascii_lowercase();
            *slot = coerce(slot, &raw).map_err(|detail| ConfigError::Env {
                var: var.clone(),
                value: raw.clone(),
                key,
                detail,
            })?;
        }
        let mut cfg: NodeConfig = serde_json::from_value(value).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        for p in [
            &mut cfg.node.data_dir,
            &mut cfg.node.msp_dir,
            &mut cfg.node.next_msp_dir,
            &mut cfg.node.tls_dir,
            &mut cfg.node.mac_key_file,
            &mut cfg.node.bootstrap_dir,
        ] {
            if p.is_relative() && !base.as_os_str().is_empty() && !p.as_os_str().is_empty() {
                *p = base.join(&*p);
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let checks = [
            (self.consensus.tick_ms >= 1 && self.consensus.tick_ms <= 1_000, "consensus.tick_ms must be 1..=1000"),
            (self.consensus.queue_max >= 16, "consensus.queue_max must be at least 16"),
            (self.consensus.pool_max >= 1, "consensus.pool_max must be at least 1"),
            (self.cluster.frame_bytes_max >= 64 * 1024, "cluster.frame_bytes_max must be at least 65536"),
            (self.cluster.send_queue_max >= 1, "cluster.send_queue_max must be at least 1"),
            (
                self.cluster.reconnect_min_ms <= self.cluster.reconnect_max_ms,
                "cluster.reconnect_min_ms must not exceed reconnect_max_ms",
            ),
            (self.cluster.fault_drop_per_mille <= 1_000, "cluster.fault_drop_per_mille must be 0..=1000"),
            (matches!(self.logging.format.as_str(), "text" | "json"), "logging.format must be text or json"),
        ];
        if let Some((_, what)) = checks.iter().find(|(ok, _)| !ok) {
            return Err(ConfigError::Invalid((*what).to_string()));
        }
        for (name, addr) in [
            ("cluster.listen", &self.cluster.listen),
            ("api.listen", &self.api.listen),
            ("admin.listen", &self.admin.listen),
            ("operations.listen", &self.operations.listen),
        ] {
            addr.parse::<std::net::SocketAddr>()
                .map_err(|e| ConfigError::Invalid(format!("{name} = {addr:?} is not host:port ({e})")))?;
        }
        Ok(())
    }

    /// Every key path with its default value, for docs and the env table.
    pub fn keys() -> Vec<(String, serde_json::Value)> {
        let mut out = Vec::new();
        flatten("", &default_value(), &mut out);
        out
    }
}

fn default_value() -> serde_json::Value {
    serde_json::to_value(NodeConfig::default()).unwrap_or_default()
}

fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, serde_json::Value)>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, child) in map {
                let p = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&p, child, out);
            }
        }
        leaf => out.push((prefix.to_owned(), leaf.clone())),
    }
}

/// Finds the leaf whose path, upper-cased and joined with `_`, is `suffix`.
fn find_key<'a>(v: &'a mut serde_json::Value, suffix: &str) -> Option<&'a mut serde_json::Value> {
    let path = key_path(v, suffix)?;
    let mut slot = v;
    for k in path {
        slot = slot.get_mut(&k)?;
    }
    Some(slot)
}

fn key_path(v: &serde_json::Value, suffix: &str) -> Option<Vec<String>> {
    let serde_json::Value::Object(map) = v else { return None };
    for (k, child) in map {
        let up = k.to_ascii_uppercase();
        if suffix == up && !child.is_object() {
            return Some(vec![k.clone()]);
        }
        if let Some(rest) = suffix.strip_prefix(&up).and_then(|r| r.strip_prefix('_')) {
            if let Some(mut tail) = key_path(child, rest) {
                tail.insert(0, k.clone());
                return Some(tail);
            }
        }
    }
    None
}

fn coerce(current: &serde_json::Value, raw: &str) -> Result<serde_json::Value, String> {
    use serde_json::Value;
    match current {
        Value::Bool(_) => raw.parse::<bool>().map(Value::Bool).map_err(|e| e.to_string()),
        Value::Number(_) => raw.parse::<u64>().map(Value::from).map_err(|e| format!("expected a whole number: {e}")),
        Value::String(_) | Value::Null => Ok(Value::String(raw.to_owned())),
        Value::Array(_) | Value::Object(_) => Err("not a single value".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn defaults_are_valid() {
        NodeConfig::default().validate().unwrap();
        let cfg = NodeConfig::load(None, env(&[])).unwrap();
        assert_eq!(cfg, NodeConfig::default());
    }

    #[test]
    fn environment_overrides_any_key_including_keys_with_underscores() {
        let cfg = NodeConfig::load(
            None,
            env(&[
                ("ORDERER_CLUSTER_LISTEN", "127.0.0.1:9000"),
                ("ORDERER_NODE_DATA_DIR", "/var/lib/orderer"),
                ("ORDERER_CONSENSUS_TICK_MS", "5"),
                ("HOME", "/root"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.cluster.listen, "127.0.0.1:9000");
        assert_eq!(cfg.node.data_dir, PathBuf::from("/var/lib/orderer"));
        assert_eq!(cfg.consensus.tick_ms, 5);
    }

    #[test]
    fn unknown_or_ill_typed_environment_overrides_are_errors_that_name_the_variable() {
        let e = NodeConfig::load(None, env(&[("ORDERER_CLUSTER_LISTN", "x")])).unwrap_err();
        assert!(e.to_string().contains("ORDERER_CLUSTER_LISTN"), "{e}");
        let e = NodeConfig::load(None, env(&[("ORDERER_CONSENSUS_TICK_MS", "fast")])).unwrap_err();
        assert!(e.to_string().contains("ORDERER_CONSENSUS_TICK_MS"), "{e}");
    }

    #[test]
    fn a_file_with_an_unknown_key_is_refused_and_relative_paths_follow_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("orderer.yaml");
        std::fs::write(&p, "node:\n  id: 3\n  data_dir: d\ncluster:\n  listen: 127.0.0.1:7000\n").unwrap();
        let cfg = NodeConfig::load(Some(&p), env(&[])).unwrap();
        assert_eq!(cfg.node.id, 3);
        assert_eq!(cfg.node.data_dir, dir.path().join("d"));
        std::fs::write(&p, "node:\n  idd: 3\n").unwrap();
        assert!(matches!(NodeConfig::load(Some(&p), env(&[])), Err(ConfigError::Parse { .. })));
    }

    #[test]
    fn bad_addresses_are_refused_with_the_key_named() {
        let e = NodeConfig::load(None, env(&[("ORDERER_API_LISTEN", "nowhere")])).unwrap_err();
        assert!(e.to_string().contains("api.listen"), "{e}");
    }

    #[test]
    fn the_documented_key_list_matches_the_config() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/orderer-config.md");
        let doc = std::fs::read_to_string(&root).expect("docs/orderer-config.md exists");
        for (key, _) in NodeConfig::keys() {
            assert!(doc.contains(&format!("`{key}`")), "docs/orderer-config.md does not document `{key}`");
        }
    }
}

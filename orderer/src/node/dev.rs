//! `orderer dev`: a local network in one command. Makes a consortium (two
//! orderer organisations and one peer organisation) with the ca-tools
//! library, a channel genesis block, one `orderer start` process per
//! consenter on 127.0.0.1, prints how to use it and writes `network.json`.
//! Running it again reuses the folder.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use ca_tools::network::{IdentitySpec, NetworkConfig, OrgSpec};
use ca_tools::{KeyType, Msp, TlsIdentity};
use channels::config::{BatchConfig, BftOptions, Consenter, KeyRotation, Organization};
use channels::ChannelConfig;
use prost::Message;
use serde_json::json;
use thiserror::Error;
use tokio::process::{Child, Command};

use super::client::HttpsClient;
use super::identity;

#[derive(Debug, Error)]
pub enum DevError {
    #[error("{0}")]
    Pki(#[from] ca_tools::PkiError),
    #[error("{0}")]
    Profile(#[from] channels::ProfileError),
    #[error("{0}")]
    Config(#[from] channels::ConfigError),
    #[error("{0}")]
    Identity(#[from] identity::IdentityError),
    #[error("{what} {path}: {detail}")]
    Io { what: &'static str, path: String, detail: String },
    #[error("node {id} did not become ready within {secs} s; see its log {log}")]
    NotReady { id: u32, secs: u64, log: String },
    #[error("--nodes must be between 4 and 16 (a BFT channel needs at least 4 consenters)")]
    Nodes,
}

/// Options of `orderer dev`.
#[derive(Clone, Debug)]
pub struct DevOptions {
    pub nodes: usize,
    pub dir: PathBuf,
    pub channel: String,
    pub base_port: u16,
    /// Envelopes the demo client submits once the network is up (0 = none).
    pub demo: usize,
    /// Exit after the demo instead of running until Ctrl-C.
    pub exit_after_demo: bool,
    /// The address of each node, in id order (empty: every node on
    /// 127.0.0.1). The fault tests put each node in its own network
    /// namespace with its own address.
    pub hosts: Vec<String>,
}

impl DevOptions {
    /// The address node `id` (1-based) listens on.
    pub fn host(&self, id: usize) -> &str {
        self.hosts.get(id - 1).map_or("127.0.0.1", String::as_str)
    }
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl Fn(std::io::Error) -> DevError + 'a {
    move |e| DevError::Io { what, path: path.display().to_string(), detail: e.to_string() }
}

/// `opts` with its folder made absolute.
fn absolute(opts: &DevOptions) -> Result<DevOptions, DevError> {
    let dir = std::path::absolute(&opts.dir).map_err(io_err("resolving", &opts.dir))?;
    Ok(DevOptions { dir, ..opts.clone() })
}

/// Ports of node `i` (0-based): cluster, peer API, admin, operations.
pub fn ports(base: u16, i: usize) -> (u16, u16, u16, u16) {
    let p = base + 10 * i as u16;
    (p, p + 1, p + 3, p + 4)
}

fn consortium(opts: &DevOptions) -> NetworkConfig {
    let nodes = opts.nodes;
    let orderer = |i: usize| {
        let mut sans = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        if opts.host(i) != "127.0.0.1" {
            sans.push(opts.host(i).to_string());
        }
        IdentitySpec { name: format!("orderer{i}"), sans }
    };
    let half = nodes.div_ceil(2);
    let org = |name: &str, msp: &str, orderers: Vec<IdentitySpec>| OrgSpec {
        name: name.into(),
        msp_id: msp.into(),
        key_type: KeyType::EcdsaP256,
        ca_days: 3650,
        days: 365,
        orderers,
        peers: vec![],
        admins: vec![IdentitySpec { name: "admin".into(), sans: vec![] }],
        clients: vec![],
        auditors: vec![],
    };
    let mut peer_org = org("org1", "Org1MSP", vec![]);
    peer_org.peers = vec![IdentitySpec { name: "peer0".into(), sans: vec!["localhost".into(), "127.0.0.1".into()] }];
    peer_org.clients = vec![IdentitySpec { name: "client".into(), sans: vec![] }];
    peer_org.auditors = vec![IdentitySpec { name: "auditor".into(), sans: vec![] }];
    NetworkConfig {
        orgs: vec![
            org("ordererorg1", "OrdererOrg1MSP", (1..=half).map(orderer).collect()),
            org("ordererorg2", "OrdererOrg2MSP", (half + 1..=nodes).map(orderer).collect()),
            peer_org,
        ],
    }
}

/// Node `id`'s folder in the consortium (1-based ids; the first half in org 1).
fn node_dir(crypto: &Path, nodes: usize, id: usize) -> (PathBuf, &'static str) {
    let half = nodes.div_ceil(2);
    let (org, msp) = if id <= half { ("ordererorg1", "OrdererOrg1MSP") } else { ("ordererorg2", "OrdererOrg2MSP") };
    (crypto.join(org).join("orderers").join(format!("orderer{id}")), msp)
}

/// Overrides of the dev channel's configuration (`orderer bench --batch-size
/// / --window`); `None` keeps the dev default. They apply when the genesis
/// block is made, not to a folder that already has one.
#[derive(Clone, Copy, Debug, Default)]
pub struct ChannelTuning {
    /// `batch.max_message_count`.
    pub max_message_count: Option<u32>,
    /// `bft.pipeline_window`; the checkpoint interval is lowered to it when larger.
    pub pipeline_window: Option<u64>,
    /// `key_rotation.every_blocks`: rotate the MAC keys every this many blocks.
    pub rotate_every_blocks: Option<u64>,
}

/// A channel configuration tuned for a local network: small batches, short
/// timeouts.
fn dev_channel(opts: &DevOptions, crypto: &Path, tuning: ChannelTuning) -> Result<ChannelConfig, DevError> {
    let mut orgs = Vec::new();
    for (name, msp) in [("ordererorg1", "OrdererOrg1MSP"), ("ordererorg2", "OrdererOrg2MSP"), ("org1", "Org1MSP")] {
        orgs.push(Organization::from_msp_dir(msp, &crypto.join(name).join("ca").join("msp"))?);
    }
    let mut consenters = Vec::new();
    for id in 1..=opts.nodes {
        let (dir, msp) = node_dir(crypto, opts.nodes, id);
        let secret = identity::load_or_create_mac_key(&dir.join("mac.key"))?;
        std::fs::write(dir.join("mac.pub"), identity::mac_public_hex(&secret)).map_err(io_err("writing", &dir))?;
        let (cluster, ..) = ports(opts.base_port, id - 1);
        consenters.push(Consenter::from_node_dir(id as u32, opts.host(id), cluster, msp, &dir)?);
    }
    let mut config = ChannelConfig {
        channel_id: opts.channel.clone(),
        sequence: 0,
        orgs,
        consenters,
        batch: Some(BatchConfig {
            max_message_count: 500,
            absolute_max_bytes: 10 * 1024 * 1024,
            preferred_max_bytes: 2 * 1024 * 1024,
            batch_timeout_ms: 50,
        }),
        bft: Some(BftOptions {
            request_forward_timeout_ms: 2_000,
            request_complain_timeout_ms: 20_000,
            view_change_timeout_ms: 4_000,
            leader_heartbeat_ms: 500,
            checkpoint_interval: 10,
            pipeline_window: 40,
            leader_rotation: 0,
        }),
        key_rotation: Some(KeyRotation { every_blocks: 0, every_seconds: 0 }),
        admin_policy: "majority".into(),
    };
    if let (Some(n), Some(batch)) = (tuning.max_message_count, config.batch.as_mut()) {
        batch.max_message_count = n;
    }
    if let (Some(n), Some(rotation)) = (tuning.rotate_every_blocks, config.key_rotation.as_mut()) {
        rotation.every_blocks = n;
    }
    if let (Some(w), Some(bft)) = (tuning.pipeline_window, config.bft.as_mut()) {
        bft.pipeline_window = w;
        bft.checkpoint_interval = bft.checkpoint_interval.min(w);
    }
    config.validate()?;
    Ok(config)
}

fn node_yaml(opts: &DevOptions, id: usize, crypto: &Path, dir: &Path) -> String {
    let (nd, msp) = node_dir(crypto, opts.nodes, id);
    let (cluster, api, admin, ops) = ports(opts.base_port, id - 1);
    format!(
        "# orderer {id} of the dev network (see docs/orderer-config.md)\nnode:\n  id: {id}\n  msp_id: {msp}\n  data_dir: {data}\n  msp_dir: {nd}/msp\n  tls_dir: {nd}/tls\n  mac_key_file: {nd}/mac.key\n  bootstrap_dir: {boot}\ncluster:\n  listen: {host}:{cluster}\napi:\n  listen: {host}:{api}\nadmin:\n  listen: {host}:{admin}\noperations:\n  listen: {host}:{ops}\nconsensus:\n  tick_ms: 10\n",
        data = dir.join("nodes").join(format!("orderer{id}")).join("data").display(),
        nd = nd.display(),
        boot = dir.join("bootstrap").display(),
        host = opts.host(id),
    )
}

/// Prepares the folder (or reuses it) and returns the config file of each node.
pub fn prepare(opts: &DevOptions) -> Result<Vec<PathBuf>, DevError> {
    prepare_tuned(opts, ChannelTuning::default())
}

/// [`prepare`], with the channel configuration's overrides.
pub fn prepare_tuned(opts: &DevOptions, tuning: ChannelTuning) -> Result<Vec<PathBuf>, DevError> {
    if !(4..=16).contains(&opts.nodes) {
        return Err(DevError::Nodes);
    }
    // Paths written into the node configs are absolute: a relative folder
    // would be resolved against each config file's own folder.
    let opts = &absolute(opts)?;
    let dir = &opts.dir;
    let crypto = dir.join("crypto");
    std::fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
    if !crypto.join("org1").exists() {
        ca_tools::generate_network(&consortium(opts), &crypto, false)?;
    }
    let genesis_path = dir.join("bootstrap").join(format!("{}.block", opts.channel));
    if !genesis_path.exists() {
        let config = dev_channel(opts, &crypto, tuning)?;
        let block = channels::genesis_block(&config);
        std::fs::create_dir_all(dir.join("bootstrap")).map_err(io_err("creating", dir))?;
        std::fs::write(&genesis_path, block.encode_to_vec()).map_err(io_err("writing", &genesis_path))?;
    }
    let mut configs = Vec::new();
    for id in 1..=opts.nodes {
        let node = dir.join("nodes").join(format!("orderer{id}"));
        std::fs::create_dir_all(&node).map_err(io_err("creating", &node))?;
        let path = node.join("orderer.yaml");
        std::fs::write(&path, node_yaml(opts, id, &crypto, dir)).map_err(io_err("writing", &path))?;
        configs.push(path);
    }
    Ok(configs)
}

/// Writes `network.json` (and the TLS root bundle beside it) describing the
/// network; `children` gives the process ids when known.
pub fn write_network_json(opts: &DevOptions, children: &[Child]) -> Result<PathBuf, DevError> {
    let dir = &opts.dir;
    let crypto = dir.join("crypto");
    let nodes: Vec<serde_json::Value> = (1..=opts.nodes)
        .map(|id| {
            let (cluster, api, admin, ops) = ports(opts.base_port, id - 1);
            let host = opts.host(id);
            json!({
                "id": id,
                "cluster": format!("{host}:{cluster}"),
                "peer_api": format!("https://{host}:{api}"),
                "admin_api": format!("https://{host}:{admin}"),
                "operations": format!("http://{host}:{ops}"),
                "pid": children.get(id - 1).and_then(|c| c.id()),
                "config": dir.join("nodes").join(format!("orderer{id}")).join("orderer.yaml"),
                "log": dir.join("nodes").join(format!("orderer{id}")).join("orderer.log"),
            })
        })
        .collect();
    let client = crypto.join("org1").join("users").join("client");
    let admin = crypto.join("org1").join("users").join("admin");
    let doc = json!({
        "channel": opts.channel,
        "genesis_block": dir.join("bootstrap").join(format!("{}.block", opts.channel)),
        "nodes": nodes,
        "ca_roots": {
            "tls": [crypto.join("ordererorg1/ca/msp/tlscacerts"), crypto.join("ordererorg2/ca/msp/tlscacerts"), crypto.join("org1/ca/msp/tlscacerts")],
            "signing": [crypto.join("ordererorg1/ca/msp/cacerts"), crypto.join("ordererorg2/ca/msp/cacerts"), crypto.join("org1/ca/msp/cacerts")],
        },
        "tls_ca_bundle": dir.join("tls-ca-bundle.pem"),
        "client": { "msp_id": "Org1MSP", "msp_dir": client.join("msp"), "cert": client.join("tls/client.crt"), "key": client.join("tls/client.key") },
        "admin": { "msp_id": "Org1MSP", "msp_dir": admin.join("msp"), "cert": admin.join("tls/client.crt"), "key": admin.join("tls/client.key") },
        "orderer_admins": [
            { "msp_id": "OrdererOrg1MSP", "nodes": (1..=opts.nodes.div_ceil(2)).collect::<Vec<_>>(), "cert": crypto.join("ordererorg1/users/admin/tls/client.crt"), "key": crypto.join("ordererorg1/users/admin/tls/client.key") },
            { "msp_id": "OrdererOrg2MSP", "nodes": (opts.nodes.div_ceil(2) + 1..=opts.nodes).collect::<Vec<_>>(), "cert": crypto.join("ordererorg2/users/admin/tls/client.crt"), "key": crypto.join("ordererorg2/users/admin/tls/client.key") },
        ],
    });
    let path = dir.join("network.json");
    let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    std::fs::write(&path, text).map_err(io_err("writing", &path))?;
    // One PEM bundle of every org's TLS root, for curl --cacert.
    let mut bundle = String::new();
    for org in ["ordererorg1", "ordererorg2", "org1"] {
        let tls_dir = crypto.join(org).join("ca").join("msp").join("tlscacerts");
        for pem in channels::files::read_pem_dir(&tls_dir).unwrap_or_default() {
            bundle.push_str(&pem);
        }
    }
    let bundle_path = dir.join("tls-ca-bundle.pem");
    std::fs::write(&bundle_path, bundle).map_err(io_err("writing", &bundle_path))?;
    Ok(path)
}

/// Operations answers read, at most.
const OPERATIONS_BYTES_MAX: u64 = 16 * 1024 * 1024;

/// GET `path` from node `id`'s operations endpoint (plain HTTP): the body of
/// a 200 answer, or `None` (no answer within 5 s, or another status).
pub async fn operations_get(opts: &DevOptions, id: usize, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (.., ops) = ports(opts.base_port, id - 1);
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect((opts.host(id), ops)).await.ok()?;
        let head = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        s.write_all(head.as_bytes()).await.ok()?;
        let mut buf = Vec::new();
        s.take(OPERATIONS_BYTES_MAX).read_to_end(&mut buf).await.ok()?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let (status, body) = text.split_once("\r\n\r\n")?;
        status.starts_with("HTTP/1.1 200").then(|| body.to_string())
    };
    tokio::time::timeout(Duration::from_secs(5), exchange).await.ok().flatten()
}

/// Waits until node `id` answers /readyz with 200.
pub async fn wait_ready(opts: &DevOptions, id: usize, timeout: Duration) -> Result<(), DevError> {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if operations_get(opts, id, "/readyz").await.is_some() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log = opts.dir.join("nodes").join(format!("orderer{id}")).join("orderer.log");
    Err(DevError::NotReady { id: id as u32, secs: timeout.as_secs(), log: log.display().to_string() })
}

/// Starts `exe start --config cfg`, behind `prefix` when one is given (the
/// fault tests run each node with `ip netns exec NS`), with `env` added to
/// its environment and its output appended to `orderer.log` beside the
/// config. The process is killed when the handle is dropped.
pub fn start_node(prefix: &[String], exe: &Path, cfg: &Path, env: &[(&str, &str)]) -> Result<Child, DevError> {
    let log_path = cfg.with_file_name("orderer.log");
    let log =
        std::fs::OpenOptions::new().create(true).append(true).open(&log_path).map_err(io_err("opening", &log_path))?;
    let log2 = log.try_clone().map_err(io_err("opening", &log_path))?;
    let mut command = match prefix.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    command
        .arg("start")
        .arg("--config")
        .arg(cfg)
        .envs(env.iter().copied())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log2))
        .kill_on_drop(true)
        .spawn()
        .map_err(io_err("starting", cfg))
}

/// Starts one `orderer start` process per config file (logs beside each
/// config), with `env` added to their environment, and waits until every
/// node is ready.
pub async fn spawn_nodes(opts: &DevOptions, configs: &[PathBuf], env: &[(&str, &str)]) -> Result<Vec<Child>, DevError> {
    let exe = std::env::current_exe().map_err(io_err("finding", Path::new("orderer")))?;
    let mut children = Vec::new();
    for (i, cfg) in configs.iter().enumerate() {
        let child = start_node(&[], &exe, cfg, env)?;
        println!("started orderer{} (pid {})", i + 1, child.id().unwrap_or(0));
        children.push(child);
    }
    for id in 1..=configs.len() {
        wait_ready(opts, id, Duration::from_secs(60)).await?;
    }
    Ok(children)
}

/// Starts the network and runs until Ctrl-C (or the demo ends).
pub async fn run(opts: DevOptions) -> Result<(), DevError> {
    run_tuned(opts, ChannelTuning::default()).await
}

/// [`run`], with the channel configuration's overrides (used when the
/// folder has no genesis block yet).
pub async fn run_tuned(opts: DevOptions, tuning: ChannelTuning) -> Result<(), DevError> {
    let opts = absolute(&opts)?;
    let configs = prepare_tuned(&opts, tuning)?;
    let mut children = spawn_nodes(&opts, &configs, &[]).await?;
    let network = write_network_json(&opts, &children)?;
    print_usage(&opts, &network);
    if opts.demo > 0 {
        match demo(&opts, opts.demo).await {
            Ok(line) => println!("{line}"),
            Err(e) => eprintln!("demo client: {e}"),
        }
    }
    if !opts.exit_after_demo {
        println!("\nthe network runs until Ctrl-C");
        let _ = tokio::signal::ctrl_c().await;
    }
    println!("stopping {} orderers", children.len());
    for c in &mut children {
        let _ = c.kill().await;
    }
    Ok(())
}

fn print_usage(opts: &DevOptions, network: &Path) {
    let dir = &opts.dir;
    let client = dir.join("crypto/org1/users/client");
    let (_, api, _, ops) = ports(opts.base_port, 0);
    println!("\nbftorderer dev network: {} consenters, channel {:?}", opts.nodes, opts.channel);
    for id in 1..=opts.nodes {
        let (c, a, _, o) = ports(opts.base_port, id - 1);
        println!(
            "  orderer{id}: cluster 127.0.0.1:{c}  peer API https://127.0.0.1:{a}  operations http://127.0.0.1:{o}"
        );
    }
    println!("  network description: {}", network.display());
    println!(
        "  client certificate: {}/tls/client.crt (key client.key, MSP {}/msp)",
        client.display(),
        client.display()
    );
    println!("\nsubmit an envelope and read it back:");
    println!(
        "  cargo run -q -p channels -- envelope --signer {c}/msp --channel {ch} --data README.md --out /tmp/env.pb",
        c = client.display(),
        ch = opts.channel
    );
    println!(
        "  curl --cacert {b} --cert {c}/tls/client.crt --key {c}/tls/client.key --data-binary @/tmp/env.pb 'https://127.0.0.1:{api}/v1/channels/{ch}/envelopes?wait=commit'",
        b = dir.join("tls-ca-bundle.pem").display(),
        c = client.display(),
        ch = opts.channel
    );
    println!(
        "  curl --cacert {b} --cert {c}/tls/client.crt --key {c}/tls/client.key 'https://127.0.0.1:{api}/v1/channels/{ch}/blocks/newest?format=json'",
        b = dir.join("tls-ca-bundle.pem").display(),
        c = client.display(),
        ch = opts.channel
    );
    println!("  curl http://127.0.0.1:{ops}/metrics");
}

/// Submits `count` signed envelopes spread over the nodes and reports.
pub async fn demo(opts: &DevOptions, count: usize) -> Result<String, String> {
    let client_dir = opts.dir.join("crypto/org1/users/client");
    let msp = Msp::load(Some("Org1MSP"), &client_dir.join("msp")).map_err(|e| e.to_string())?;
    let tls = TlsIdentity::load(&client_dir.join("tls")).map_err(|e| e.to_string())?;
    let bundle = channels::files::read_pem(&opts.dir.join("tls-ca-bundle.pem")).map_err(|e| e.to_string())?;
    let roots: Vec<String> =
        pem::parse_many(bundle.as_bytes()).map_err(|e| e.to_string())?.iter().map(pem::encode).collect();
    let config = Arc::new(ca_tools::client_config(&tls, &roots).map_err(|e| e.to_string())?);
    let mut conns = Vec::new();
    for i in 0..opts.nodes {
        let (_, api, ..) = ports(opts.base_port, i);
        let host = opts.host(i + 1);
        conns.push(
            HttpsClient::connect(&format!("{host}:{api}"), host, config.clone()).await.map_err(|e| e.to_string())?,
        );
    }
    let started = std::time::Instant::now();
    let path = format!("/v1/channels/{}/envelopes", opts.channel);
    let mut ok = 0;
    for k in 0..count {
        let data = format!("demo transaction {k}");
        let env = channels::envelope::build_envelope_now(
            &opts.channel,
            &msp,
            data.as_bytes(),
            channels::proto::common::HeaderType::EndorserTransaction,
        )
        .map_err(|e| e.to_string())?;
        let n = k % conns.len();
        let waiting = if k + 1 == count { format!("{path}?wait=commit") } else { path.clone() };
        let r = conns[n].request("POST", &waiting, &env.encode_to_vec()).await.map_err(|e| e.to_string())?;
        if r.status == 200 {
            ok += 1;
        } else {
            return Err(format!("envelope {k}: HTTP {} {}", r.status, String::from_utf8_lossy(&r.body)));
        }
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(format!(
        "demo: submitted={count} accepted={ok} seconds={secs:.2} (last one waited for its commit; see blocks with the curl line above)"
    ))
}

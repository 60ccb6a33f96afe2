//! Fault tests with real `orderer` processes (the `faults` binary,
//! `deploy/faults/run.sh`).
//!
//! Each node runs in its own network namespace ([`netns`]); clients submit
//! signed envelopes with `wait=commit` the whole time ([`load`]); a nemesis
//! breaks the cluster in rounds — SIGKILL of the primary, of a random node,
//! of every node at once, a node partitioned away, a split into halves,
//! messages dropped one way, a slow and lossy node (the transport's fault
//! hook) — and heals it; at the end every node's ledger is read back and the
//! history checked ([`check`]), and every node's vote log is searched for a
//! vote that contradicts an earlier one (a promise broken across a crash).
//!
//! Last line: `faults: nodes=<n> rounds=<R> acked=<A> committed=<C> lost=<L> duplicated=<D> divergent=<X>`.

pub mod check;
pub mod load;
pub mod netns;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ca_tools::{Msp, TlsIdentity};
use channels::proto::common::Block as PbBlock;
use channels::ChannelConfig;
use prost::Message;
use thiserror::Error;
use tokio::process::Child;
use tokio::sync::watch;

use self::check::{LedgerBlock, Verdict};
use self::load::{Endpoint, History};
use self::netns::{NetnsError, Topology};
use crate::node::client::HttpsClient;
use crate::node::dev::{self, DevError, DevOptions};
use crate::sim::rng::Rng;
use crate::storage::Store;

const CHANNEL: &str = "faultchannel";
/// First port of the nodes (each node has its own address, so all use the
/// same ports).
const BASE_PORT: u16 = 7050;
/// Blocks read back from one node, at most.
const LEDGER_BLOCKS_MAX: u64 = 1_000_000;
/// How long the healed cluster has to reach one height.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(120);
/// A round with a connected quorum that commits fewer blocks than this gets
/// its nodes' consensus figures printed.
const SLOW_ROUND_BLOCKS: u64 = 10;
/// The metrics printed for such a round.
const DIAGNOSTIC_METRICS: [&str; 7] = [
    "bft_view ",
    "bft_leader_id",
    "bft_view_change_in_progress",
    "bft_request_pool_size",
    "bft_in_flight_blocks",
    "bft_ledger_height",
    "bft_messages_dropped_total",
];
/// Delay and loss a slowed node adds to every frame it sends.
const SLOW_DELAY_MS: &str = "150";
const SLOW_DROP_PER_MILLE: &str = "100";

#[derive(Debug, Error)]
pub enum FaultsError {
    #[error("{0}")]
    Netns(#[from] NetnsError),
    #[error("{0}")]
    Dev(#[from] DevError),
    #[error("cannot start {what}: {detail}")]
    Start { what: String, detail: String },
    #[error("client set-up: {0}")]
    Client(String),
}

/// What a run does.
#[derive(Clone, Debug)]
pub struct Options {
    pub nodes: usize,
    pub rounds: usize,
    /// How long each fault lasts.
    pub fault: Duration,
    /// How long the healed cluster runs before the next fault.
    pub settle: Duration,
    /// Concurrent clients.
    pub clients: usize,
    /// Seed of the nemesis's choices (which fault, which node).
    pub seed: u64,
    /// The faults to draw from (all when empty).
    pub faults: Vec<Fault>,
    /// The `orderer` binary to run.
    pub orderer: PathBuf,
    /// Folder for certificates, configs, data and logs.
    pub dir: PathBuf,
}

/// One kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    KillPrimary,
    KillRandom,
    KillAll,
    Isolate,
    Split,
    OneWay,
    Slow,
}

impl Fault {
    pub const ALL: [Fault; 7] = [
        Fault::KillPrimary,
        Fault::Isolate,
        Fault::KillRandom,
        Fault::OneWay,
        Fault::Split,
        Fault::Slow,
        Fault::KillAll,
    ];

    pub fn from_name(name: &str) -> Option<Fault> {
        Fault::ALL.into_iter().find(|f| f.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Fault::KillPrimary => "kill-primary",
            Fault::KillRandom => "kill-random",
            Fault::KillAll => "kill-all",
            Fault::Isolate => "isolate",
            Fault::Split => "split",
            Fault::OneWay => "one-way",
            Fault::Slow => "slow",
        }
    }

    /// Whether a quorum of consenters stays up and connected while the
    /// fault lasts (then blocks must keep being committed).
    pub fn quorum_connected(self) -> bool {
        match self {
            Fault::KillPrimary | Fault::KillRandom | Fault::Isolate | Fault::OneWay | Fault::Slow => true,
            Fault::KillAll | Fault::Split => false,
        }
    }
}

/// The running `orderer` processes, one per namespace.
struct Nodes {
    orderer: PathBuf,
    configs: Vec<PathBuf>,
    children: Vec<Option<Child>>,
}

impl Nodes {
    fn start(&mut self, id: usize, env: &[(&str, &str)]) -> Result<(), FaultsError> {
        let child = dev::start_node(&Topology::exec_prefix(id), &self.orderer, &self.configs[id - 1], env)?;
        self.children[id - 1] = Some(child);
        Ok(())
    }

    /// SIGKILL, and reap.
    async fn kill(&mut self, id: usize) {
        if let Some(mut c) = self.children[id - 1].take() {
            let _ = c.kill().await;
        }
    }

    async fn kill_all(&mut self) {
        for id in 1..=self.children.len() {
            self.kill(id).await;
        }
    }
}

/// One Prometheus sample of `name` for the test channel from node `id`.
async fn metric(opts: &DevOptions, id: usize, name: &str) -> Option<u64> {
    let text = dev::operations_get(opts, id, "/metrics").await?;
    text.lines()
        .find(|l| l.starts_with(name) && l.contains(CHANNEL))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v as u64)
}

/// The highest committed block among `ids` (those that answer).
async fn height(opts: &DevOptions, ids: &[usize]) -> Option<u64> {
    let mut best = None;
    for &id in ids {
        if let Some(h) = metric(opts, id, "bft_ledger_height").await {
            best = Some(best.map_or(h, |b: u64| b.max(h)));
        }
    }
    best
}

/// The primary as most reachable nodes see it.
async fn primary(opts: &DevOptions, nodes: usize) -> Option<usize> {
    let mut votes = vec![0usize; nodes + 1];
    for id in 1..=nodes {
        if let Some(p) = metric(opts, id, "bft_leader_id").await {
            if (1..=nodes).contains(&(p as usize)) {
                votes[p as usize] += 1;
            }
        }
    }
    let (id, count) = votes.iter().enumerate().max_by_key(|(_, c)| **c)?;
    (*count > 0).then_some(id)
}

/// Prints the consensus figures of `ids`, for a round that committed little.
async fn diagnose(opts: &DevOptions, ids: &[usize]) {
    for &id in ids {
        let Some(text) = dev::operations_get(opts, id, "/metrics").await else {
            println!("  orderer{id}: no answer from its operations endpoint");
            continue;
        };
        let figures: Vec<&str> = text
            .lines()
            .filter(|l| DIAGNOSTIC_METRICS.iter().any(|m| l.starts_with(m)) && l.contains(CHANNEL))
            .collect();
        println!("  orderer{id}: {}", figures.join(" | "));
    }
}

/// What a round broke, so it can be healed.
#[derive(Default)]
struct Broken {
    killed: Vec<usize>,
    slowed: Option<usize>,
    /// Nodes that should keep committing (a quorum, when there is one).
    majority: Vec<usize>,
    what: String,
}

async fn inflict(
    fault: Fault,
    opts: &DevOptions,
    topo: &Topology,
    nodes: &mut Nodes,
    rng: &mut Rng,
) -> Result<Broken, FaultsError> {
    let n = topo.nodes();
    let all: Vec<usize> = (1..=n).collect();
    let random = 1 + rng.range(0, n as u64 - 1) as usize;
    let others = |x: usize| all.iter().copied().filter(|&i| i != x).collect::<Vec<_>>();
    let broken = match fault {
        Fault::KillPrimary => {
            let p = primary(opts, n).await.unwrap_or(random);
            nodes.kill(p).await;
            Broken { killed: vec![p], majority: others(p), what: format!("SIGKILL primary orderer{p}"), slowed: None }
        }
        Fault::KillRandom => {
            nodes.kill(random).await;
            Broken {
                killed: vec![random],
                majority: others(random),
                what: format!("SIGKILL orderer{random}"),
                slowed: None,
            }
        }
        Fault::KillAll => {
            nodes.kill_all().await;
            Broken { killed: all.clone(), majority: vec![], what: "SIGKILL every orderer".into(), slowed: None }
        }
        Fault::Isolate => {
            for o in others(random) {
                topo.cut(random, o)?;
            }
            Broken { majority: others(random), what: format!("orderer{random} partitioned away"), ..Broken::default() }
        }
        Fault::Split => {
            let side: Vec<usize> = rng.choose(n, n / 2).into_iter().map(|i| i + 1).collect();
            for &a in &side {
                for b in all.iter().copied().filter(|b| !side.contains(b)) {
                    topo.cut(a, b)?;
                }
            }
            Broken { what: format!("split {side:?} from the rest"), ..Broken::default() }
        }
        Fault::OneWay => {
            let p = primary(opts, n).await.unwrap_or(random);
            for o in others(p) {
                let (cluster, ..) = dev::ports(BASE_PORT, o - 1);
                topo.drop_one_way(p, o, cluster)?;
            }
            Broken {
                majority: others(p),
                what: format!("orderer{p} (primary) unheard: its messages dropped one way"),
                ..Broken::default()
            }
        }
        Fault::Slow => {
            nodes.kill(random).await;
            nodes.start(
                random,
                &[
                    ("ORDERER_CLUSTER_FAULT_DELAY_MS", SLOW_DELAY_MS),
                    ("ORDERER_CLUSTER_FAULT_DROP_PER_MILLE", SLOW_DROP_PER_MILLE),
                ],
            )?;
            Broken {
                slowed: Some(random),
                majority: others(random),
                what: format!(
                    "orderer{random} restarted slow ({SLOW_DELAY_MS} ms per frame, {SLOW_DROP_PER_MILLE}‰ dropped)"
                ),
                killed: vec![],
            }
        }
    };
    Ok(broken)
}

async fn heal(broken: &Broken, topo: &Topology, nodes: &mut Nodes) -> Result<(), FaultsError> {
    topo.heal()?;
    if let Some(s) = broken.slowed {
        nodes.kill(s).await;
        nodes.start(s, &[])?;
    }
    for &id in &broken.killed {
        nodes.start(id, &[])?;
    }
    Ok(())
}

/// Reads node `id`'s ledger from block 1 to its end, checking each block's
/// hash chain and certificate.
async fn read_ledger(
    dev: &DevOptions,
    id: usize,
    tls: &Arc<rustls::ClientConfig>,
    config: &ChannelConfig,
    genesis: &PbBlock,
) -> Result<Vec<LedgerBlock>, FaultsError> {
    let (_, api, ..) = dev::ports(BASE_PORT, id - 1);
    let host = dev.host(id);
    let mut conn = HttpsClient::connect(&format!("{host}:{api}"), host, tls.clone())
        .await
        .map_err(|e| FaultsError::Client(e.to_string()))?;
    let mut ledger = Vec::new();
    let mut previous = genesis.clone();
    for number in 1..LEDGER_BLOCKS_MAX {
        let r = conn
            .request("GET", &format!("/v1/channels/{CHANNEL}/blocks/{number}"), &[])
            .await
            .map_err(|e| FaultsError::Client(e.to_string()))?;
        if r.status == 404 {
            break;
        }
        let Ok(block) = PbBlock::decode(r.body.as_slice()) else {
            ledger.push(LedgerBlock { number, header_hash: [0; 32], tx_ids: vec![], certified: false });
            continue;
        };
        let header = block.header.clone().unwrap_or_default();
        let hash = channels::block::header_hash(header.number, &header.previous_hash, &header.data_hash);
        let certified = header.number == number
            && channels::block::verify_link(&previous, &block).is_ok()
            && channels::block::verify_data_hash(&block).is_ok()
            && channels::block::verify_block_certificate(&block, config).is_ok();
        let tx_ids = block
            .data
            .as_ref()
            .map(|d| {
                d.data
                    .iter()
                    .filter_map(|e| channels::envelope::decode_envelope(e, usize::MAX).ok())
                    .map(|e| e.channel_header.tx_id)
                    .collect()
            })
            .unwrap_or_default();
        ledger.push(LedgerBlock { number, header_hash: hash, tx_ids, certified });
        previous = block;
    }
    Ok(ledger)
}

fn io<'a>(what: &str, path: &'a Path) -> impl Fn(std::io::Error) -> FaultsError + 'a {
    let what = what.to_string();
    move |e| FaultsError::Client(format!("{what} {}: {e}", path.display()))
}

/// Runs the fault test and returns the verdict with the number of rounds in
/// which a connected quorum committed nothing.
pub async fn run(opts: Options) -> Result<(Verdict, usize), FaultsError> {
    let topo = Topology::create(opts.nodes)?;
    println!("faults: network of {} namespaces ready (harness {})", opts.nodes, Topology::harness_ip());
    let dev = DevOptions {
        nodes: opts.nodes,
        dir: opts.dir.clone(),
        channel: CHANNEL.into(),
        base_port: BASE_PORT,
        demo: 0,
        exit_after_demo: true,
        hosts: (1..=opts.nodes).map(Topology::node_ip).collect(),
    };
    let configs = dev::prepare(&dev)?;
    dev::write_network_json(&dev, &[])?;
    let mut nodes = Nodes { orderer: opts.orderer.clone(), configs, children: (0..opts.nodes).map(|_| None).collect() };
    for id in 1..=opts.nodes {
        nodes.start(id, &[])?;
    }
    for id in 1..=opts.nodes {
        dev::wait_ready(&dev, id, Duration::from_secs(60)).await?;
    }
    println!("faults: {} orderers ready", opts.nodes);

    // Clients.
    let client_dir = opts.dir.join("crypto/org1/users/client");
    let msp =
        Arc::new(Msp::load(Some("Org1MSP"), &client_dir.join("msp")).map_err(|e| FaultsError::Client(e.to_string()))?);
    let identity = TlsIdentity::load(&client_dir.join("tls")).map_err(|e| FaultsError::Client(e.to_string()))?;
    let bundle_path = opts.dir.join("tls-ca-bundle.pem");
    let bundle = std::fs::read(&bundle_path).map_err(io("reading", &bundle_path))?;
    let roots: Vec<String> =
        pem::parse_many(&bundle).map_err(|e| FaultsError::Client(e.to_string()))?.iter().map(pem::encode).collect();
    let tls = Arc::new(ca_tools::client_config(&identity, &roots).map_err(|e| FaultsError::Client(e.to_string()))?);
    let endpoints: Arc<Vec<Endpoint>> = Arc::new(
        (1..=opts.nodes)
            .map(|id| {
                let (_, api, ..) = dev::ports(BASE_PORT, id - 1);
                Endpoint { addr: format!("{}:{api}", dev.host(id)), host: dev.host(id).to_string() }
            })
            .collect(),
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let clients: Vec<_> = (0..opts.clients)
        .map(|k| {
            tokio::spawn(load::client(k, endpoints.clone(), CHANNEL.into(), msp.clone(), tls.clone(), stop_rx.clone()))
        })
        .collect();

    // Nemesis.
    let mut rng = Rng::new(opts.seed);
    let mut stalled = 0;
    let all: Vec<usize> = (1..=opts.nodes).collect();
    tokio::time::sleep(opts.settle).await;
    for round in 1..=opts.rounds {
        let kinds = if opts.faults.is_empty() { &Fault::ALL[..] } else { &opts.faults[..] };
        // As many rounds as kinds: each once, in order; more: drawn by seed.
        let fault = if opts.rounds <= kinds.len() { kinds[round - 1] } else { *rng.pick(kinds) };
        let before = height(&dev, &all).await.unwrap_or(0);
        let started = Instant::now();
        let broken = inflict(fault, &dev, &topo, &mut nodes, &mut rng).await?;
        tokio::time::sleep(opts.fault).await;
        let during = height(&dev, &broken.majority).await.unwrap_or(0);
        let progressed = during > before;
        if fault.quorum_connected() && !progressed {
            stalled += 1;
        }
        if fault.quorum_connected() && during < before + SLOW_ROUND_BLOCKS {
            diagnose(&dev, &broken.majority).await;
        }
        heal(&broken, &topo, &mut nodes).await?;
        println!(
            "round {round}/{}: {:<12} {} for {:.0} s: height {before} -> {during}{}; healed",
            opts.rounds,
            fault.name(),
            broken.what,
            started.elapsed().as_secs_f64(),
            match (fault.quorum_connected(), progressed) {
                (true, true) => " (quorum connected, committing)",
                (true, false) => " (quorum connected, NOTHING COMMITTED)",
                (false, _) => " (no quorum connected)",
            }
        );
        tokio::time::sleep(opts.settle).await;
    }

    // Stop the clients, let the cluster converge, read every ledger back.
    let _ = stop_tx.send(true);
    let mut history = History::default();
    for c in clients {
        if let Ok(h) = c.await {
            history.merge(h);
        }
    }
    println!(
        "faults: clients submitted={} acked={} accepted_uncommitted={} refused={} unanswered={}",
        history.submitted.len(),
        history.acks.len(),
        history.accepted_uncommitted,
        history.refused,
        history.unanswered
    );
    let healed = Instant::now();
    let converged = converge(&dev, opts.nodes).await;
    println!("faults: heights after healing {converged:?} ({:.1} s to converge)", healed.elapsed().as_secs_f64());
    let genesis_path = opts.dir.join("bootstrap").join(format!("{CHANNEL}.block"));
    let genesis_bytes = std::fs::read(&genesis_path).map_err(io("reading", &genesis_path))?;
    let genesis = PbBlock::decode(genesis_bytes.as_slice()).map_err(|e| FaultsError::Client(e.to_string()))?;
    let config = channels::config_from_genesis(&genesis).map_err(|e| FaultsError::Client(e.to_string()))?;
    let mut ledgers = Vec::new();
    for id in 1..=opts.nodes {
        ledgers.push(read_ledger(&dev, id, &tls, &config, &genesis).await?);
    }
    println!("faults: {} ledgers read back and verified in {:.1} s", ledgers.len(), healed.elapsed().as_secs_f64());
    nodes.kill_all().await;
    drop(topo);
    let mut verdict = check::check(&history.acks, &history.submitted, &ledgers);
    for id in 1..=opts.nodes {
        let path = opts.dir.join("nodes").join(format!("orderer{id}")).join("data").join("ledger.redb");
        let votes = Store::open(&path)
            .and_then(|s| s.votes(CHANNEL))
            .map_err(|e| FaultsError::Client(format!("reading the vote log of orderer{id}: {e}")))?;
        let doubles = check::double_votes(&votes);
        println!("faults: orderer{id} vote log: {} votes, {doubles} contradicting an earlier one", votes.len());
        verdict.double_votes += doubles;
    }
    Ok((verdict, stalled))
}

/// Waits until every node reports the same height twice in a row (or the
/// timeout passes) and returns the heights seen last.
async fn converge(dev: &DevOptions, nodes: usize) -> Vec<Option<u64>> {
    let deadline = Instant::now() + CONVERGE_TIMEOUT;
    let mut last = Vec::new();
    loop {
        let mut heights = Vec::new();
        for id in 1..=nodes {
            heights.push(metric(dev, id, "bft_ledger_height").await);
        }
        let same = heights.iter().all(|h| h.is_some() && *h == heights[0]);
        if (same && heights == last) || Instant::now() >= deadline {
            return heights;
        }
        last = heights;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

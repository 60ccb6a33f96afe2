//! `orderer bench`: throughput, latency and the CPU bound, measured on this
//! machine with real processes, mutual TLS, fsync and signed envelopes.
//!
//! The cluster is a dev network (`orderer dev`'s layout) in a temporary
//! folder, its channel optionally with another batch size and pipeline
//! window. Envelopes (ECDSA P-256 and Ed25519 creators, alternating) are
//! signed before the run so that signing does not compete with the nodes.
//! Clients submit over keep-alive HTTPS connections spread over the nodes:
//! closed loop at max (the default), open loop at a rate, or overload (a
//! closed-loop calibration, then open loop at a multiple of the rate it
//! sustained). A deliver follower on every node records when each block
//! reached it: a node's throughput is the bench envelopes in its ledger
//! divided by the time from the start of the load to its last one, and the
//! headline figure is the minimum over the honest (not killed) nodes. The
//! first follower to receive a block stamps its transactions: latency is
//! submit → the block committed on the first node (for open-loop runs from
//! the scheduled submit time, so queueing counts). A poller reads every
//! node's `/metrics` (ledger, view, primary, view changes, request pool) and
//! `/proc` (CPU seconds, peak RSS).

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ca_tools::ca::{Ca, IssueRequest, Validity};
use ca_tools::{KeyType, Msp, Role};
use channels::proto::common::{Block as PbBlock, HeaderType};
use prost::Message;
use serde_json::json;
use tokio::process::Child;

use super::client::HttpsClient;
use super::dev::{ports, prepare_tuned, spawn_nodes, ChannelTuning, DevOptions};

/// How the clients load the cluster.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Load {
    /// Closed loop at max (the default): every connection submits its next
    /// envelope as soon as the previous one is answered; an envelope refused
    /// with 503 is retried after 10 ms (each 503 is counted).
    Max,
    /// Open loop: envelope k is due k / rate seconds after the start whether
    /// or not earlier ones were answered; a 503 is counted, not retried.
    Rate(u64),
    /// Overload: closed loop for `calibrate_secs` to measure the sustainable
    /// rate, then open loop at `factor` × that rate for the run's duration.
    Overload { factor: f64, calibrate_secs: u64 },
}

impl Load {
    fn name(&self) -> &'static str {
        match self {
            Load::Max => "closed-loop",
            Load::Rate(_) => "open-loop",
            Load::Overload { .. } => "overload",
        }
    }
}

/// Options of a benchmark run.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub nodes: usize,
    pub duration_secs: u64,
    pub env_bytes: usize,
    pub load: Load,
    pub sign_all_messages: bool,
    /// Client connections per node (open loop raises it to keep ~100 ms of
    /// the rate in flight, at most 256 per node).
    pub connections_per_node: usize,
    pub base_port: u16,
    pub json_out: Option<PathBuf>,
    pub keep_dir: Option<PathBuf>,
    /// Overrides of the channel's batch size and pipeline window.
    pub tuning: ChannelTuning,
    /// SIGKILL the primary this many seconds into the measured load.
    pub kill_primary_at: Option<f64>,
    /// The nodes' `consensus.pool_max` (default: the node's default).
    pub pool_max: Option<usize>,
    /// The nodes' `consensus.cut_when_idle`.
    pub cut_when_idle: bool,
}

/// Envelopes pre-signed for a closed-loop second (the cluster cannot take more).
const CLOSED_LOOP_RATE: u64 = 15_000;
/// Most envelopes signed for one phase (about 1 KiB each in memory).
const MAX_ENVELOPES: u64 = 600_000;
/// A phase ends waiting for its last blocks after this long without progress.
const SETTLE_IDLE: Duration = Duration::from_secs(5);
/// … or after this long in any case.
const SETTLE_MAX: Duration = Duration::from_secs(20);

type Stamps = Arc<Mutex<HashMap<String, Instant>>>;

/// When each transaction was first committed on any node.
#[derive(Default)]
struct Commits {
    /// Blocks some follower has stamped already.
    blocks: std::collections::HashSet<u64>,
    at: HashMap<String, Instant>,
}
/// Signed envelopes with their tx ids.
type Signed = Vec<(String, Vec<u8>)>;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// CPU seconds and peak RSS (MiB) of a live process, from /proc.
fn proc_usage(pid: u32) -> Option<(f64, f64)> {
    let ticks = 100.0; // USER_HZ on Linux
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1.split_whitespace().collect::<Vec<_>>();
    let utime: f64 = rest.get(11)?.parse().ok()?;
    let stime: f64 = rest.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    // A zombie (killed, not yet reaped) has no memory lines.
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(((utime + stime) / ticks, kb / 1024.0))
}

/// An Ed25519 client of org1, issued for the benchmark.
fn ed25519_client(dir: &Path) -> Result<Msp, String> {
    let out = dir.join("crypto/org1/users/client-ed25519");
    if !out.exists() {
        let mut ca = Ca::load(&dir.join("crypto/org1/ca")).map_err(|e| e.to_string())?;
        let req = IssueRequest {
            role: Role::Client,
            name: "client-ed25519".into(),
            sans: vec![],
            key_type: KeyType::Ed25519,
            validity: Validity::days_from_now(30).map_err(|e| e.to_string())?,
            sign_key: None,
            tls_key: None,
        };
        ca.issue(req, &out, false).map_err(|e| e.to_string())?;
    }
    Msp::load(Some("Org1MSP"), &out.join("msp")).map_err(|e| e.to_string())
}

/// Signs `count` envelopes of about `bytes` bytes, on every core; `tag`
/// keeps the payloads (and tx ids) of different phases apart.
fn make_envelopes(channel: &str, signers: &[Msp], count: usize, bytes: usize, tag: &str) -> Result<Signed, String> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let per = count.div_ceil(threads);
    let results: Vec<Result<Signed, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let mut out = Vec::with_capacity(per);
                    for k in t * per..((t + 1) * per).min(count) {
                        let msp = &signers[k % signers.len()];
                        let mut data = format!("bench {tag} {k} ").into_bytes();
                        data.resize(bytes.saturating_sub(700).max(16), b'x');
                        let env = channels::envelope::build_envelope_now(
                            channel,
                            msp,
                            &data,
                            HeaderType::EndorserTransaction,
                        )
                        .map_err(|e| e.to_string())?;
                        let tx_id = tx_id_of(&env.encode_to_vec()).unwrap_or_default();
                        out.push((tx_id, env.encode_to_vec()));
                    }
                    Ok(out)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("signer thread panicked".into()))).collect()
    });
    let mut all = Vec::with_capacity(count);
    for r in results {
        all.extend(r?);
    }
    Ok(all)
}

fn tx_id_of(envelope: &[u8]) -> Option<String> {
    channels::envelope::decode_envelope(envelope, usize::MAX).ok().map(|d| d.channel_header.tx_id)
}

/// What a node's `/metrics` says.
#[derive(Clone, Copy, Debug, Default)]
struct Scrape {
    height: u64,
    /// `bft_ledger_envelopes`: envelopes in the node's ledger.
    envelopes: u64,
    view: u64,
    leader: u64,
    /// `bft_view_changes_total`, summed over the reasons.
    view_changes: u64,
    pool: u64,
}

fn parse_metrics(text: &str) -> Option<Scrape> {
    let mut s = Scrape::default();
    let mut seen = false;
    for line in text.lines().filter(|l| l.starts_with("bft_")) {
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let Ok(v) = value.parse::<f64>() else { continue };
        let v = v.max(0.0) as u64;
        match series.split('{').next().unwrap_or("") {
            "bft_ledger_height" => (s.height, seen) = (v, true),
            "bft_ledger_envelopes" => s.envelopes = v,
            "bft_view" => s.view = v,
            "bft_leader_id" => s.leader = v,
            "bft_view_changes_total" => s.view_changes += v,
            "bft_request_pool_size" => s.pool = v,
            _ => {}
        }
    }
    seen.then_some(s)
}

/// Reads node `i`'s (0-based) operations endpoint.
async fn scrape(base_port: u16, i: usize) -> Option<Scrape> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let port = ports(base_port, i).3;
    let read = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.ok()?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.ok()?;
        parse_metrics(&String::from_utf8_lossy(&buf))
    };
    tokio::time::timeout(Duration::from_secs(2), read).await.ok().flatten()
}

/// Blocks a node delivered: (arrival, number, envelopes).
type BlockLog = Arc<Mutex<Vec<(Instant, u64, usize)>>>;
/// Per node: timed metrics samples.
type SampleLog = Arc<Mutex<Vec<Vec<(Instant, Scrape)>>>>;
/// Per node: last CPU seconds and peak RSS MiB seen.
type UsageLog = Arc<Mutex<Vec<(f64, f64)>>>;

/// The cluster as the clients see it.
struct Cluster {
    nodes: usize,
    base_port: u16,
    channel: String,
    tls: Arc<rustls::ClientConfig>,
}

impl Cluster {
    fn api(&self, i: usize) -> String {
        format!("127.0.0.1:{}", ports(self.base_port, i).1)
    }

    /// Follows node `i`'s deliver stream from block 1, logging every block;
    /// the first follower to receive a block stamps its transactions.
    fn follow(&self, i: usize, log: BlockLog, commits: Arc<Mutex<Commits>>) -> tokio::task::JoinHandle<()> {
        let addr = self.api(i);
        let tls = self.tls.clone();
        let path = format!("/v1/channels/{}/deliver?start=1&stop=never", self.channel);
        tokio::spawn(async move {
            let Ok(mut c) = HttpsClient::connect(&addr, "127.0.0.1", tls).await else { return };
            let mut buf: Vec<u8> = Vec::new();
            let _ = c
                .stream(&path, &mut |bytes: &[u8]| {
                    for frame in super::client::deliver_frames(&mut buf, bytes) {
                        let now = Instant::now();
                        let Ok(b) = PbBlock::decode(frame.as_slice()) else { continue };
                        let number = b.header.as_ref().map_or(0, |h| h.number);
                        let envelopes = b.data.map(|d| d.data).unwrap_or_default();
                        let first = commits.lock().is_ok_and(|mut c| c.blocks.insert(number));
                        if first {
                            let ids: Vec<String> = envelopes.iter().filter_map(|e| tx_id_of(e)).collect();
                            if let Ok(mut c) = commits.lock() {
                                c.at.extend(ids.into_iter().map(|id| (id, now)));
                            }
                        }
                        if let Ok(mut l) = log.lock() {
                            l.push((now, number, envelopes.len()));
                        }
                    }
                    true
                })
                .await;
        })
    }
}

/// Submission counters of one phase.
#[derive(Default)]
struct Counters {
    attempts: AtomicU64,
    accepted: AtomicU64,
    unavailable: AtomicU64,
    refused_other: AtomicU64,
    errors: AtomicU64,
}

/// What the clients did in one phase.
struct Phase {
    started: Instant,
    secs: f64,
    connections: usize,
    /// Accepted envelopes: tx id → submit (open loop: due) time.
    submitted: HashMap<String, Instant>,
    attempts: u64,
    accepted: u64,
    /// 503 SERVICE_UNAVAILABLE answers (closed loop: retries included).
    unavailable: u64,
    refused_other: u64,
    errors: u64,
    /// Closed loop: the pre-signed envelopes ran out before the end of the phase.
    exhausted: bool,
}

/// Connects the phase's clients: `per_node` connections to every node.
async fn connect_clients(cluster: &Cluster, per_node: usize) -> Vec<HttpsClient> {
    let attempts = (0..cluster.nodes * per_node).map(|c| {
        let addr = cluster.api(c % cluster.nodes);
        let tls = cluster.tls.clone();
        async move { HttpsClient::connect(&addr, "127.0.0.1", tls).await.ok() }
    });
    futures_util::future::join_all(attempts).await.into_iter().flatten().collect()
}

/// Drives the clients from `started` for `secs` seconds: closed loop when
/// `rate` is `None`, else open loop at `rate` envelopes per second.
async fn drive(
    cluster: &Cluster,
    clients: Vec<HttpsClient>,
    envelopes: Signed,
    rate: Option<u64>,
    secs: u64,
    started: Instant,
) -> Phase {
    let deadline = started + Duration::from_secs(secs);
    let connections = clients.len();
    let total = envelopes.len();
    let queue = Arc::new(Mutex::new(envelopes.into_iter().enumerate().collect::<VecDeque<_>>()));
    let submitted: Stamps = Arc::new(Mutex::new(HashMap::with_capacity(total)));
    let counters = Arc::new(Counters::default());
    let exhausted = Arc::new(AtomicU64::new(0));
    let path = format!("/v1/channels/{}/envelopes", cluster.channel);
    let mut tasks = Vec::new();
    for mut conn in clients {
        let (queue, submitted, counters, exhausted, path) =
            (queue.clone(), submitted.clone(), counters.clone(), exhausted.clone(), path.clone());
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(started.into()).await;
            loop {
                let Some((k, (tx_id, env))) = queue.lock().ok().and_then(|mut q| q.pop_front()) else {
                    // Open loop signs exactly what the run needs (see `envelope_count`).
                    if rate.is_none() && Instant::now() < deadline {
                        exhausted.store(1, Ordering::Relaxed);
                    }
                    return;
                };
                // Open loop: envelope k is due at k / rate; latency counts from then.
                let due = match rate {
                    Some(r) => started + Duration::from_secs_f64(k as f64 / r as f64),
                    None => Instant::now(),
                };
                if due >= deadline {
                    return;
                }
                tokio::time::sleep_until(due.into()).await;
                loop {
                    counters.attempts.fetch_add(1, Ordering::Relaxed);
                    match conn.request("POST", &path, &env).await {
                        Ok(r) if r.status == 200 => {
                            counters.accepted.fetch_add(1, Ordering::Relaxed);
                            if let Ok(mut m) = submitted.lock() {
                                m.insert(tx_id, due);
                            }
                            break;
                        }
                        Ok(r) if r.status == 503 => {
                            counters.unavailable.fetch_add(1, Ordering::Relaxed);
                            let retry = Instant::now() + Duration::from_millis(10);
                            if rate.is_some() || retry >= deadline {
                                break;
                            }
                            tokio::time::sleep_until(retry.into()).await;
                        }
                        Ok(_) => {
                            counters.refused_other.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        Err(_) => {
                            // The node is gone (killed): this connection stops.
                            counters.errors.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let submitted = std::mem::take(&mut *submitted.lock().unwrap_or_else(|e| e.into_inner()));
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    Phase {
        started,
        secs: secs as f64,
        connections,
        submitted,
        attempts: get(&counters.attempts),
        accepted: get(&counters.accepted),
        unavailable: get(&counters.unavailable),
        refused_other: get(&counters.refused_other),
        errors: get(&counters.errors),
        exhausted: exhausted.load(Ordering::Relaxed) == 1,
    }
}

/// Envelopes node `i` delivered since `since` and the arrival of the last
/// non-empty block among them.
fn committed_since(log: &BlockLog, since: Instant) -> (usize, Option<Instant>) {
    let l = log.lock().unwrap_or_else(|e| e.into_inner());
    let mut n = 0;
    let mut last = None;
    for (at, _, envs) in l.iter().filter(|(at, ..)| *at >= since) {
        if *envs > 0 {
            n += envs;
            last = Some(*at);
        }
    }
    (n, last)
}

/// Waits until every live node has delivered what was accepted (or nothing
/// moved for [`SETTLE_IDLE`], or [`SETTLE_MAX`] passed).
async fn settle(logs: &[BlockLog], live: &[bool], phase: &Phase) {
    let begun = Instant::now();
    let mut last_progress = (Instant::now(), 0usize);
    loop {
        let counts: Vec<usize> =
            (0..logs.len()).filter(|i| live[*i]).map(|i| committed_since(&logs[i], phase.started).0).collect();
        let total: usize = counts.iter().sum();
        if counts.iter().all(|c| *c as u64 >= phase.accepted) {
            return;
        }
        if total != last_progress.1 {
            last_progress = (Instant::now(), total);
        }
        if last_progress.0.elapsed() > SETTLE_IDLE || begun.elapsed() > SETTLE_MAX {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Throughput of node `i` in a phase: envelopes committed, and per second
/// from the start of the phase to its last block.
fn node_tps(log: &BlockLog, phase: &Phase) -> (usize, f64, f64) {
    let (n, last) = committed_since(log, phase.started);
    let secs = last.map_or(0.0, |t| t.saturating_duration_since(phase.started).as_secs_f64());
    let tps = if secs > 0.0 { n as f64 / secs } else { 0.0 };
    (n, tps, secs)
}

/// The primary's killing: when, whom, in which view.
struct Kill {
    at: Instant,
    node: usize,
    view: u64,
}

/// At `started + after`, SIGKILLs the node the metrics name as primary.
async fn kill_primary(base_port: u16, children: &mut [Child], started: Instant, after: f64) -> Option<Kill> {
    tokio::time::sleep_until((started + Duration::from_secs_f64(after)).into()).await;
    let mut seen = None;
    for i in 0..children.len() {
        if let Some(s) = scrape(base_port, i).await {
            seen = Some(s);
            break;
        }
    }
    let s = seen?;
    let node = (s.leader as usize).checked_sub(1).filter(|n| *n < children.len())?;
    let at = Instant::now();
    children[node].start_kill().ok()?;
    println!("bench: killed the primary, node {} (view {}), at {after:.1} s", node + 1, s.view);
    Some(Kill { at, node, view: s.view })
}

/// Samples every node's metrics and /proc figures until aborted.
fn spawn_poller(
    base_port: u16,
    pids: Vec<u32>,
    every: Duration,
    samples: SampleLog,
    usage: UsageLog,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            for (i, pid) in pids.iter().enumerate() {
                if let Some(s) = scrape(base_port, i).await {
                    if let Ok(mut v) = samples.lock() {
                        v[i].push((Instant::now(), s));
                    }
                }
                if let (Some((cpu, rss)), Ok(mut u)) = (proc_usage(*pid), usage.lock()) {
                    u[i] = (cpu, u[i].1.max(rss));
                }
            }
            tokio::time::sleep(every).await;
        }
    })
}

/// Runs a benchmark and returns its summary line.
pub async fn run(opts: BenchOptions) -> Result<String, String> {
    if let Some(at) = opts.kill_primary_at {
        if !(at > 0.0 && at < opts.duration_secs as f64) {
            return Err(format!("--kill-primary-at {at} must be within the run's {} s", opts.duration_secs));
        }
    }
    // Costs first, on a machine the cluster does not load yet.
    let costs = super::bench_crypto::measure_costs(2_000);
    let tmp = tempfile_dir(&opts)?;
    let dev = DevOptions {
        nodes: opts.nodes,
        dir: tmp.clone(),
        channel: "benchchannel".into(),
        base_port: opts.base_port,
        demo: 0,
        exit_after_demo: true,
        hosts: vec![],
    };
    let configs = prepare_tuned(&dev, opts.tuning).map_err(|e| e.to_string())?;
    let pool_max = opts.pool_max.map(|p| p.to_string());
    let mut env: Vec<(&str, &str)> = Vec::new();
    if opts.sign_all_messages {
        env.push(("ORDERER_CONSENSUS_SIGN_ALL_MESSAGES", "true"));
    }
    if let Some(p) = &pool_max {
        env.push(("ORDERER_CONSENSUS_POOL_MAX", p));
    }
    if opts.cut_when_idle {
        env.push(("ORDERER_CONSENSUS_CUT_WHEN_IDLE", "true"));
    }
    let result = match spawn_nodes(&dev, &configs, &env).await {
        Ok(mut children) => {
            let result = measure(&opts, &dev, &mut children, &costs).await;
            for c in &mut children {
                let _ = c.kill().await;
            }
            result
        }
        Err(e) => Err(e.to_string()),
    };
    if opts.keep_dir.is_none() {
        match &result {
            Ok(_) => {
                let _ = std::fs::remove_dir_all(&tmp);
            }
            Err(_) => eprintln!("bench: the cluster's folder (logs) is kept: {}", tmp.display()),
        }
    }
    result
}

fn tempfile_dir(opts: &BenchOptions) -> Result<PathBuf, String> {
    match &opts.keep_dir {
        Some(d) => Ok(d.clone()),
        None => {
            let d = std::env::temp_dir().join(format!("bftorderer-bench-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            Ok(d)
        }
    }
}

/// The batch size and pipeline window the channel was made with.
fn channel_figures(dev: &DevOptions) -> (u64, u64) {
    let path = dev.dir.join("bootstrap").join(format!("{}.block", dev.channel));
    std::fs::read(path)
        .ok()
        .and_then(|b| PbBlock::decode(b.as_slice()).ok())
        .and_then(|b| channels::config_from_genesis(&b).ok())
        .map_or((0, 0), |c| (c.batch.map_or(0, |b| b.max_message_count.into()), c.bft.map_or(0, |b| b.pipeline_window)))
}

fn envelope_count(rate: u64, secs: u64) -> usize {
    (rate * secs).clamp(100, MAX_ENVELOPES) as usize
}

async fn measure(
    opts: &BenchOptions,
    dev: &DevOptions,
    children: &mut [Child],
    costs: &super::bench_crypto::Costs,
) -> Result<String, String> {
    let dir = &dev.dir;
    let n = opts.nodes;
    let client_dir = dir.join("crypto/org1/users/client");
    let signers =
        vec![Msp::load(Some("Org1MSP"), &client_dir.join("msp")).map_err(|e| e.to_string())?, ed25519_client(dir)?];
    let tls = ca_tools::TlsIdentity::load(&client_dir.join("tls")).map_err(|e| e.to_string())?;
    let bundle = std::fs::read_to_string(dir.join("tls-ca-bundle.pem")).unwrap_or_default();
    let mut roots: Vec<String> =
        pem::parse_many(bundle.as_bytes()).map_err(|e| e.to_string())?.iter().map(pem::encode).collect();
    if roots.is_empty() {
        roots.push(tls.ca_pem.clone());
        for org in ["ordererorg1", "ordererorg2"] {
            for p in channels::files::read_pem_dir(&dir.join("crypto").join(org).join("ca/msp/tlscacerts"))
                .unwrap_or_default()
            {
                roots.push(p);
            }
        }
    }
    let cluster = Cluster {
        nodes: n,
        base_port: dev.base_port,
        channel: dev.channel.clone(),
        tls: Arc::new(ca_tools::client_config(&tls, &roots).map_err(|e| e.to_string())?),
    };
    let (batch_size, window) = channel_figures(dev);
    if opts.tuning.max_message_count.is_some_and(|b| u64::from(b) != batch_size)
        || opts.tuning.pipeline_window.is_some_and(|w| w != window)
    {
        println!("bench: note: the folder's existing genesis block has batch_size={batch_size} window={window}");
    }

    // Followers and the poller run for the whole measurement.
    let logs: Vec<BlockLog> = (0..n).map(|_| BlockLog::default()).collect();
    let commits = Arc::new(Mutex::new(Commits::default()));
    let followers: Vec<_> = (0..n).map(|i| cluster.follow(i, logs[i].clone(), commits.clone())).collect();
    let pids: Vec<u32> = children.iter().map(|c| c.id().unwrap_or(0)).collect();
    let samples: SampleLog = Arc::new(Mutex::new(vec![Vec::new(); n]));
    let usage: UsageLog = Arc::new(Mutex::new(vec![(0.0, 0.0); n]));
    let every = Duration::from_millis(if opts.kill_primary_at.is_some() { 50 } else { 200 });
    let poller = spawn_poller(dev.base_port, pids.clone(), every, samples.clone(), usage.clone());
    let mut live = vec![true; n];

    // Overload: a closed-loop phase finds the sustainable rate first.
    let mut calibration = None;
    let rate = match opts.load {
        Load::Max => None,
        Load::Rate(r) => Some(r.max(1)),
        Load::Overload { factor, calibrate_secs } => {
            let secs = calibrate_secs.max(1);
            let count = envelope_count(CLOSED_LOOP_RATE, secs);
            println!("bench: calibrating: closed loop for {secs} s ({count} envelopes signed first)");
            let envelopes = make_envelopes(&dev.channel, &signers, count, opts.env_bytes, "calibration")?;
            let clients = connect_clients(&cluster, opts.connections_per_node).await;
            let phase = drive(&cluster, clients, envelopes, None, secs, Instant::now()).await;
            settle(&logs, &live, &phase).await;
            let tps = (0..n).map(|i| node_tps(&logs[i], &phase).1).fold(f64::INFINITY, f64::min);
            let tps = if tps.is_finite() { tps } else { 0.0 };
            let rate = ((tps * factor).round() as u64).max(1);
            println!("bench: calibration sustained {tps:.0} envelopes/s; overload at {factor}× = {rate}/s");
            calibration = Some(json!({ "secs": secs, "tps": tps, "factor": factor, "rate": rate }));
            Some(rate)
        }
    };

    let count = envelope_count(rate.unwrap_or(CLOSED_LOOP_RATE), opts.duration_secs);
    println!("bench: signing {count} envelopes of ~{} bytes (ECDSA P-256 and Ed25519 creators)", opts.env_bytes);
    if let Some(r) = rate.filter(|r| (count as u64) < r * opts.duration_secs) {
        println!(
            "bench: note: at most {MAX_ENVELOPES} envelopes are signed: the load at {r}/s ends after {:.1} s",
            count as f64 / r as f64
        );
    }
    let envelopes = make_envelopes(&dev.channel, &signers, count, opts.env_bytes, "run")?;
    let per_node = match rate {
        Some(r) => opts.connections_per_node.max((r as f64 * 0.1 / n as f64).ceil() as usize).min(256),
        None => opts.connections_per_node,
    };
    let clients = connect_clients(&cluster, per_node).await;
    if clients.is_empty() {
        return Err("no client could connect".into());
    }
    let started = Instant::now();
    let base: Vec<Option<Scrape>> = {
        let s = samples.lock().map_err(|e| e.to_string())?;
        s.iter().map(|v| v.last().map(|x| x.1)).collect()
    };
    let client_cpu_before = proc_usage(std::process::id()).map_or(0.0, |u| u.0);
    let load = drive(&cluster, clients, envelopes, rate, opts.duration_secs, started);
    let killer = async {
        match opts.kill_primary_at {
            Some(after) => kill_primary(dev.base_port, children, started, after).await,
            None => None,
        }
    };
    let (phase, kill) = tokio::join!(load, killer);
    // The clients share the machine with the nodes: what they used counts
    // against the nodes' throughput, and the report says how much.
    let client_cpu = proc_usage(std::process::id()).map_or(0.0, |u| u.0) - client_cpu_before;
    if let Some(k) = &kill {
        live[k.node] = false;
    }
    settle(&logs, &live, &phase).await;
    poller.abort();
    // A last sample of every live node, after its last block.
    for i in (0..n).filter(|i| live[*i]) {
        if let (Some(s), Ok(mut v)) = (scrape(dev.base_port, i).await, samples.lock()) {
            v[i].push((Instant::now(), s));
        }
    }
    for f in followers {
        f.abort();
    }
    if phase.exhausted {
        println!("bench: note: the {count} pre-signed envelopes ran out before the end of the run");
    }

    // Figures.
    let usage = usage.lock().map_err(|e| e.to_string())?.clone();
    let samples = samples.lock().map_err(|e| e.to_string())?.clone();
    let per_node: Vec<(usize, f64, f64)> = logs.iter().map(|l| node_tps(l, &phase)).collect();
    let honest: Vec<usize> = (0..n).filter(|i| live[*i]).collect();
    let tps = honest.iter().map(|i| per_node[*i].1).fold(f64::INFINITY, f64::min);
    let tps = if tps.is_finite() { tps } else { 0.0 };
    let committed = honest.iter().map(|i| per_node[*i].0).min().unwrap_or(0);
    // Increase of a node's counter during the load, from its metrics.
    let delta = |i: usize, f: fn(&Scrape) -> u64| -> u64 {
        let end = samples[i].last().map_or(0, |s| f(&s.1));
        let begin = base[i].or_else(|| samples[i].first().map(|s| s.1)).map_or(0, |s| f(&s));
        end.saturating_sub(begin)
    };
    let view_changes_of = |i: usize| delta(i, |s| s.view_changes);
    // The ledger's own count, to tell a node that lags from a deliver stream that does.
    let ledger_of = |i: usize| (delta(i, |s| s.envelopes), samples[i].last().map_or(0, |s| s.1.height));
    let view_changes = honest.iter().map(|i| view_changes_of(*i)).max().unwrap_or(0);
    let view_begin = base.iter().flatten().map(|s| s.view).max().unwrap_or(0);
    let view_end = honest.iter().filter_map(|i| samples[*i].last()).map(|s| s.1.view).max().unwrap_or(0);
    let pool_peak = |i: usize| samples[i].iter().filter(|s| s.0 >= started).map(|s| s.1.pool).max().unwrap_or(0);
    let rss_max = usage.iter().map(|u| u.1).fold(0.0, f64::max);

    let commits = commits.lock().map_err(|e| e.to_string())?;
    let mut latencies: Vec<f64> = phase
        .submitted
        .iter()
        .filter_map(|(id, t0)| commits.at.get(id).map(|t1| t1.saturating_duration_since(*t0).as_secs_f64() * 1000.0))
        .collect();
    latencies.sort_by(f64::total_cmp);
    let (p50, p90, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.9), percentile(&latencies, 0.99));
    let max = latencies.last().copied().unwrap_or(0.0);

    let kill_report = kill.as_ref().map(|k| {
        let since = |t: Instant| t.saturating_duration_since(k.at).as_secs_f64();
        let first_block_after = |i: usize, from: Instant| {
            logs[i].lock().ok().and_then(|l| l.iter().find(|(at, ..)| *at > from).map(|(at, num, _)| (*at, *num)))
        };
        let next_block = honest.iter().filter_map(|i| first_block_after(*i, k.at)).min_by_key(|(at, _)| *at);
        // The first sample of each survivor in a later view, then its next block.
        let view_seen: Vec<(usize, Instant)> = honest
            .iter()
            .filter_map(|i| samples[*i].iter().find(|s| s.0 > k.at && s.1.view > k.view).map(|s| (*i, s.0)))
            .collect();
        let new_view_block = view_seen.iter().filter_map(|(i, t)| first_block_after(*i, *t)).min_by_key(|(at, _)| *at);
        json!({
            "at_secs": opts.kill_primary_at,
            "node": k.node + 1,
            "view_at_kill": k.view,
            "next_block_secs": next_block.map(|b| since(b.0)),
            "next_block_number": next_block.map(|b| b.1),
            "view_change_seen_secs": view_seen.iter().map(|(_, t)| since(*t)).reduce(f64::min),
            "new_view_block_secs": new_view_block.map(|b| since(b.0)),
            "new_view_block_number": new_view_block.map(|b| b.1),
        })
    });

    let verify_cost = (costs.ecdsa_verify_us + costs.ed25519_verify_us) / 2.0;
    let bound_tps = super::bench_crypto::bound_tps(n, verify_cost);
    let auth = if opts.sign_all_messages { "signatures" } else { "mac" };
    let offered_tps = phase.attempts as f64 / phase.secs;
    let nodes_json: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            json!({
                "node": i + 1, "killed": !live[i],
                "committed": per_node[i].0, "tps": per_node[i].1, "last_commit_secs": per_node[i].2,
                "cpu_seconds": usage[i].0, "rss_mb_peak": usage[i].1,
                "view_changes": view_changes_of(i), "request_pool_peak": pool_peak(i),
                "ledger_envelopes_added": ledger_of(i).0, "ledger_height": ledger_of(i).1,
            })
        })
        .collect();
    let report = json!({
        "nodes": n, "auth": auth, "env_bytes": opts.env_bytes, "duration_secs": opts.duration_secs,
        "load": opts.load.name(), "rate": rate, "offered_tps": offered_tps, "connections": phase.connections,
        "batch_size": batch_size, "window": window, "pool_max": opts.pool_max,
        "cut_when_idle": opts.cut_when_idle,
        "calibration": calibration,
        "submitted": phase.attempts, "accepted": phase.accepted,
        "unavailable_503": phase.unavailable, "refused_other": phase.refused_other, "errors": phase.errors,
        "envelopes_ran_out": phase.exhausted,
        "committed": committed, "tps": tps,
        "latency_ms": { "p50": p50, "p90": p90, "p99": p99, "max": max, "samples": latencies.len() },
        "view_changes": view_changes, "view_begin": view_begin, "view_end": view_end,
        "kill_primary": kill_report,
        "per_node": nodes_json,
        "rss_mb_max": rss_max,
        "client_cpu_seconds": client_cpu,
        "bound_tps": bound_tps, "fraction_of_bound": tps / bound_tps,
        "verify_cost_us": { "ecdsa_p256": costs.ecdsa_verify_us, "ed25519": costs.ed25519_verify_us },
    });
    let text = serde_json::to_string_pretty(&report).unwrap_or_default();
    match &opts.json_out {
        Some(p) => {
            std::fs::write(p, &text).map_err(|e| format!("{}: {e}", p.display()))?;
            println!("bench: report written to {}", p.display());
        }
        None => println!("{text}"),
    }

    // The summary.
    let rate_text = rate.map_or(String::new(), |r| format!(" rate={r}/s offered={offered_tps:.0}/s"));
    println!(
        "bench: load={}{rate_text} connections={} batch_size={batch_size} window={window} duration={}s",
        opts.load.name(),
        phase.connections,
        opts.duration_secs
    );
    println!(
        "bench: submissions={} accepted={} unavailable_503={} refused_other={} errors={}",
        phase.attempts, phase.accepted, phase.unavailable, phase.refused_other, phase.errors
    );
    for i in 0..n {
        println!(
            "bench: node {}: committed={} tps={:.0} last_commit_s={:.1} (ledger +{} envelopes, height {}) cpu_s={:.1} rss_mb_peak={:.0} view_changes={} pool_peak={}{}",
            i + 1,
            per_node[i].0,
            per_node[i].1,
            per_node[i].2,
            ledger_of(i).0,
            ledger_of(i).1,
            usage[i].0,
            usage[i].1,
            view_changes_of(i),
            pool_peak(i),
            if live[i] { "" } else { " (killed)" }
        );
    }
    println!(
        "bench: latency (submit → committed on the first node) ms: p50={p50:.1} p90={p90:.1} p99={p99:.1} max={max:.1} ({} envelopes)",
        latencies.len()
    );
    println!("bench: view changes={view_changes} (view {view_begin} → {view_end})");
    println!(
        "bench: cpu: nodes {:.1} s in all (start-up included), the bench's own clients {client_cpu:.1} s during the {:.0} s load, on {} cores",
        usage.iter().map(|u| u.0).sum::<f64>(),
        phase.secs,
        std::thread::available_parallelism().map_or(1, |c| c.get())
    );
    if let Some(k) = &kill_report {
        let secs = |key: &str| k[key].as_f64().map_or("none".to_string(), |s| format!("{s:.2} s"));
        println!(
            "bench: primary node {} killed at {:.1} s: next block after {}, first block after the view change after {}",
            k["node"],
            opts.kill_primary_at.unwrap_or(0.0),
            secs("next_block_secs"),
            secs("new_view_block_secs")
        );
    }
    println!(
        "bench: tps={tps:.0} (minimum over honest nodes) = {:.0}% of bound_tps={bound_tps:.0}",
        100.0 * tps / bound_tps
    );
    if committed == 0 {
        return Err("nothing was committed".into());
    }
    Ok(format!(
        "bench: nodes={n} auth={auth} env_bytes={} tps={tps:.0} p50_ms={p50:.1} p99_ms={p99:.1} bound_tps={bound_tps:.0} rss_mb_max={rss_max:.0}",
        opts.env_bytes
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_parsed_and_view_changes_summed() {
        let text = "HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\n# HELP bft_view x\n\
            bft_ledger_height{channel=\"c\"} 42\nbft_view{channel=\"c\"} 3\nbft_leader_id{channel=\"c\"} 4\n\
            bft_view_changes_total{channel=\"c\",reason=\"heartbeat\"} 2\n\
            bft_view_changes_total{channel=\"c\",reason=\"join\"} 1\nbft_request_pool_size{channel=\"c\"} 7\n";
        let s = parse_metrics(text).unwrap();
        assert_eq!(s.envelopes, 0);
        assert_eq!((s.height, s.view, s.leader, s.view_changes, s.pool), (42, 3, 4, 3, 7));
        assert!(parse_metrics("HTTP/1.1 404 Not Found\r\n\r\n").is_none());
    }

    #[test]
    fn node_throughput_counts_from_the_start_to_the_last_block() {
        let t0 = Instant::now();
        let log: BlockLog = Arc::new(Mutex::new(vec![
            (t0, 1, 5),
            (t0 + Duration::from_secs(1), 2, 100),
            (t0 + Duration::from_secs(2), 3, 100),
            (t0 + Duration::from_secs(3), 4, 0),
        ]));
        let phase = Phase {
            started: t0 + Duration::from_millis(500),
            secs: 2.0,
            connections: 1,
            submitted: HashMap::new(),
            attempts: 0,
            accepted: 0,
            unavailable: 0,
            refused_other: 0,
            errors: 0,
            exhausted: false,
        };
        let (n, tps, secs) = node_tps(&log, &phase);
        assert_eq!(n, 200);
        assert!((secs - 1.5).abs() < 1e-9);
        assert!((tps - 200.0 / 1.5).abs() < 1e-6);
    }
}

//! `orderer bench`: throughput, latency and the CPU bound, measured on this
//! machine with real processes, mutual TLS, fsync and signed envelopes.
//!
//! The cluster is a dev network (`orderer dev`'s layout) in a temporary
//! folder. Envelopes (ECDSA P-256 and Ed25519 creators, alternating) are
//! signed before the run so that signing does not compete with the nodes.
//! Clients submit over keep-alive HTTPS connections, open-loop at a rate or
//! closed-loop at max; a deliver follower on node 1 stamps the commit time of
//! every envelope; latency is submit → block committed on node 1 (for
//! open-loop runs from the scheduled submit time, so queueing counts).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ca_tools::ca::{Ca, IssueRequest, Validity};
use ca_tools::{KeyType, Msp, Role};
use channels::proto::common::{Block as PbBlock, HeaderType};
use prost::Message;
use serde_json::json;

use super::client::HttpsClient;
use super::dev::{ports, prepare, spawn_nodes, DevOptions};

/// Options of a benchmark run.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub nodes: usize,
    pub duration_secs: u64,
    pub env_bytes: usize,
    /// Envelopes per second (open loop); `None` = as fast as possible.
    pub rate: Option<u64>,
    pub sign_all_messages: bool,
    pub connections_per_node: usize,
    pub base_port: u16,
    pub json_out: Option<PathBuf>,
    pub keep_dir: Option<PathBuf>,
}

type Stamps = Arc<Mutex<HashMap<String, Instant>>>;
/// Signed envelopes with their tx ids.
type Signed = Vec<(String, Vec<u8>)>;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// CPU seconds and peak RSS (MiB) of a process, from /proc.
fn proc_usage(pid: u32) -> (f64, f64) {
    let ticks = 100.0; // USER_HZ on Linux
    let cpu = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1.split_whitespace().collect::<Vec<_>>();
            let utime: f64 = rest.get(11)?.parse().ok()?;
            let stime: f64 = rest.get(12)?.parse().ok()?;
            Some((utime + stime) / ticks)
        })
        .unwrap_or(0.0);
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
            let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kb / 1024.0)
        })
        .unwrap_or(0.0);
    (cpu, rss)
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

/// Signs `count` envelopes of about `bytes` bytes, on every core.
fn make_envelopes(channel: &str, signers: &[Msp], count: usize, bytes: usize) -> Result<Signed, String> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let per = count.div_ceil(threads);
    let results: Vec<Result<Signed, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let mut out = Vec::with_capacity(per);
                    for k in t * per..((t + 1) * per).min(count) {
                        let msp = &signers[k % signers.len()];
                        let mut data = format!("bench {k} ").into_bytes();
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

/// Runs a benchmark and returns its summary line.
pub async fn run(opts: BenchOptions) -> Result<String, String> {
    let tmp = tempfile_dir(&opts)?;
    let dev = DevOptions {
        nodes: opts.nodes,
        dir: tmp.clone(),
        channel: "benchchannel".into(),
        base_port: opts.base_port,
        demo: 0,
        exit_after_demo: true,
    };
    let configs = prepare(&dev).map_err(|e| e.to_string())?;
    let env: Vec<(&str, &str)> =
        if opts.sign_all_messages { vec![("ORDERER_CONSENSUS_SIGN_ALL_MESSAGES", "true")] } else { vec![] };
    let mut children = spawn_nodes(&dev, &configs, &env).await.map_err(|e| e.to_string())?;
    let pids: Vec<u32> = children.iter().filter_map(|c| c.id()).collect();
    let result = measure(&opts, &dev, &pids).await;
    for c in &mut children {
        let _ = c.kill().await;
    }
    if opts.keep_dir.is_none() {
        let _ = std::fs::remove_dir_all(&tmp);
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

async fn measure(opts: &BenchOptions, dev: &DevOptions, pids: &[u32]) -> Result<String, String> {
    let dir = &dev.dir;
    let client_dir = dir.join("crypto/org1/users/client");
    let signers =
        vec![Msp::load(Some("Org1MSP"), &client_dir.join("msp")).map_err(|e| e.to_string())?, ed25519_client(dir)?];
    let target_rate = opts.rate.unwrap_or(15_000);
    let count = (target_rate * opts.duration_secs).clamp(100, 400_000) as usize;
    println!("bench: signing {count} envelopes of ~{} bytes (ECDSA P-256 and Ed25519 creators)", opts.env_bytes);
    let envelopes = make_envelopes(&dev.channel, &signers, count, opts.env_bytes)?;
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
    let config = Arc::new(ca_tools::client_config(&tls, &roots).map_err(|e| e.to_string())?);

    // The deliver follower stamps commit times.
    let committed: Stamps = Arc::new(Mutex::new(HashMap::with_capacity(count)));
    let follower = {
        let committed = committed.clone();
        let config = config.clone();
        let addr = format!("127.0.0.1:{}", ports(dev.base_port, 0).1);
        let path = format!("/v1/channels/{}/deliver?start=1&stop=never", dev.channel);
        tokio::spawn(async move {
            let Ok(mut c) = HttpsClient::connect(&addr, "127.0.0.1", config).await else { return };
            let mut buf: Vec<u8> = Vec::new();
            let _ = c
                .stream(&path, &mut |bytes: &[u8]| {
                    for frame in super::client::deliver_frames(&mut buf, bytes) {
                        let now = Instant::now();
                        if let Ok(b) = PbBlock::decode(frame.as_slice()) {
                            if let (Ok(mut m), Some(data)) = (committed.lock(), b.data) {
                                for e in data.data {
                                    if let Some(id) = tx_id_of(&e) {
                                        m.insert(id, now);
                                    }
                                }
                            }
                        }
                    }
                    true
                })
                .await;
        })
    };

    let submitted: Stamps = Arc::new(Mutex::new(HashMap::with_capacity(count)));
    let refused = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(opts.duration_secs);
    let connections = opts.nodes * opts.connections_per_node;
    let queue = Arc::new(Mutex::new(envelopes.into_iter().enumerate().collect::<std::collections::VecDeque<_>>()));
    let mut tasks = Vec::new();
    for c in 0..connections {
        let node = c % opts.nodes;
        let addr = format!("127.0.0.1:{}", ports(dev.base_port, node).1);
        let config = config.clone();
        let queue = queue.clone();
        let submitted = submitted.clone();
        let refused = refused.clone();
        let path = format!("/v1/channels/{}/envelopes", dev.channel);
        let rate = opts.rate;
        tasks.push(tokio::spawn(async move {
            let Ok(mut conn) = HttpsClient::connect(&addr, "127.0.0.1", config).await else { return };
            loop {
                let Some((k, (tx_id, env))) = queue.lock().ok().and_then(|mut q| q.pop_front()) else { return };
                // Open loop: envelope k is due at k / rate; latency counts from then.
                let due = match rate {
                    Some(r) => started + Duration::from_secs_f64(k as f64 / r as f64),
                    None => Instant::now(),
                };
                if due >= deadline {
                    return;
                }
                tokio::time::sleep_until(due.into()).await;
                match conn.request("POST", &path, &env).await {
                    Ok(r) if r.status == 200 => {
                        if let Ok(mut m) = submitted.lock() {
                            m.insert(tx_id, due);
                        }
                    }
                    Ok(_) => {
                        refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let submit_secs = started.elapsed().as_secs_f64().min(opts.duration_secs as f64).max(0.001);
    // Let the last blocks commit.
    let settle = Instant::now();
    loop {
        let pending = {
            let s = submitted.lock().map(|m| m.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
            let c = committed.lock().map_err(|e| e.to_string())?;
            s.iter().filter(|id| !c.contains_key(*id)).count()
        };
        if pending == 0 || settle.elapsed() > Duration::from_secs(15) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    follower.abort();

    let s = submitted.lock().map_err(|e| e.to_string())?.clone();
    let c = committed.lock().map_err(|e| e.to_string())?.clone();
    let mut latencies: Vec<f64> = s
        .iter()
        .filter_map(|(id, t0)| c.get(id).map(|t1| t1.saturating_duration_since(*t0).as_secs_f64() * 1000.0))
        .collect();
    latencies.sort_by(f64::total_cmp);
    let committed_in_window = s.keys().filter(|id| c.contains_key(*id)).count();
    let tps = committed_in_window as f64 / submit_secs;
    let (p50, p90, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.9), percentile(&latencies, 0.99));
    let max = latencies.last().copied().unwrap_or(0.0);
    let usage: Vec<(f64, f64)> = pids.iter().map(|p| proc_usage(*p)).collect();
    let rss_max = usage.iter().map(|u| u.1).fold(0.0, f64::max);
    let views = view_of_node(dev, 0);
    let costs = super::bench_crypto::measure_costs(2_000);
    let verify_cost = (costs.ecdsa_verify_us + costs.ed25519_verify_us) / 2.0;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get()) as f64;
    let bound_tps = cores / (opts.nodes as f64 * verify_cost / 1e6);
    let auth = if opts.sign_all_messages { "signatures" } else { "mac" };
    let report = json!({
        "nodes": opts.nodes, "auth": auth, "env_bytes": opts.env_bytes, "duration_secs": opts.duration_secs,
        "rate": opts.rate, "connections": connections,
        "submitted": s.len(), "refused": refused.load(std::sync::atomic::Ordering::Relaxed),
        "committed": committed_in_window, "tps": tps,
        "latency_ms": { "p50": p50, "p90": p90, "p99": p99, "max": max },
        "view": views,
        "per_node": usage.iter().enumerate().map(|(i, (cpu, rss))| json!({"node": i + 1, "cpu_seconds": cpu, "rss_mb_peak": rss})).collect::<Vec<_>>(),
        "bound_tps": bound_tps, "fraction_of_bound": tps / bound_tps,
        "verify_cost_us": { "ecdsa_p256": costs.ecdsa_verify_us, "ed25519": costs.ed25519_verify_us },
    });
    println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    if let Some(p) = &opts.json_out {
        std::fs::write(p, serde_json::to_string_pretty(&report).unwrap_or_default())
            .map_err(|e| format!("{}: {e}", p.display()))?;
    }
    if committed_in_window == 0 {
        return Err("nothing was committed".into());
    }
    Ok(format!(
        "bench: nodes={} auth={auth} env_bytes={} tps={tps:.0} p50_ms={p50:.1} p99_ms={p99:.1} bound_tps={bound_tps:.0} rss_mb_max={rss_max:.0}",
        opts.nodes, opts.env_bytes
    ))
}

fn view_of_node(dev: &DevOptions, i: usize) -> u64 {
    use std::io::{Read, Write};
    let port = ports(dev.base_port, i).3;
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return 0 };
    let _ = write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.lines()
        .find(|l| l.starts_with("bft_view{"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

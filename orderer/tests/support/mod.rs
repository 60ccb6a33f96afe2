//! Shared by the tests that run real `orderer` processes: a dev network
//! prepared in a temporary folder, its processes, and clients.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ca_tools::{Msp, TlsIdentity};
use orderer::node::client::HttpsClient;
use orderer::node::dev::{ports, prepare, prepare_tuned, ChannelTuning, DevOptions};
use prost::Message;

pub const CHANNEL: &str = "devchannel";

/// Distinct per test process; node i uses base + 10i .. base + 10i + 4, and
/// a second cluster of the process adds at most 5,000. Everything stays
/// below 32768, where Linux picks the local ports of outgoing connections:
/// a node whose port an outgoing connection took would never become ready.
fn base_port() -> u16 {
    10_000 + (std::process::id() % 1_000) as u16 * 10
}

/// A prepared dev network in a temporary folder, its nodes not started yet.
pub fn network(dir: &Path, nodes: usize) -> Cluster {
    // Distinct per test process; node i uses base + 10i .. base + 10i + 4.
    let base_port = base_port();
    let opts = DevOptions {
        nodes,
        dir: dir.join("net"),
        channel: CHANNEL.into(),
        base_port,
        demo: 0,
        exit_after_demo: true,
        hosts: vec![],
    };
    let configs = prepare(&opts).unwrap();
    Cluster { procs: (0..nodes).map(|_| None).collect(), opts, configs }
}

/// [`network`] with the channel configuration's overrides, on ports offset
/// by `port_offset` (two clusters in one test process).
pub fn network_tuned(dir: &Path, nodes: usize, tuning: ChannelTuning, port_offset: u16) -> Cluster {
    let base_port = base_port();
    let opts = DevOptions {
        nodes,
        dir: dir.join("net"),
        channel: CHANNEL.into(),
        base_port: base_port.wrapping_add(port_offset),
        demo: 0,
        exit_after_demo: true,
        hosts: vec![],
    };
    let configs = prepare_tuned(&opts, tuning).unwrap();
    Cluster { procs: (0..nodes).map(|_| None).collect(), opts, configs }
}

pub struct Cluster {
    pub opts: DevOptions,
    pub configs: Vec<PathBuf>,
    procs: Vec<Option<Child>>,
}

impl Cluster {
    pub fn start_node(&mut self, i: usize) {
        let log = self.configs[i].with_file_name("orderer.log");
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_orderer"))
            .arg("start")
            .arg("--config")
            .arg(&self.configs[i])
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .unwrap();
        self.procs[i] = Some(child);
    }

    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.procs[i].take() {
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
        }
    }

    pub fn metric(&self, i: usize, name: &str) -> Option<u64> {
        let (.., ops) = ports(self.opts.base_port, i);
        let text = http_get(ops, "/metrics")?;
        text.lines()
            .find(|l| l.starts_with(name) && l.contains(CHANNEL))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .map(|v| v as u64)
    }

    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.configs[i].with_file_name("orderer.log")).unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.procs.len() {
            self.kill(i);
        }
    }
}

pub fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    Some(buf)
}

pub fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out after {secs} s waiting for: {what}");
}

pub async fn clients(opts: &DevOptions, nodes: &[usize]) -> (Msp, Vec<HttpsClient>) {
    let dir = &opts.dir;
    let client_dir = dir.join("crypto/org1/users/client");
    let msp = Msp::load(Some("Org1MSP"), &client_dir.join("msp")).unwrap();
    let tls = TlsIdentity::load(&client_dir.join("tls")).unwrap();
    let bundle = std::fs::read_to_string(dir.join("tls-ca-bundle.pem")).unwrap_or_else(|_| bundle(dir));
    let roots: Vec<String> = pem::parse_many(bundle.as_bytes()).unwrap().iter().map(pem::encode).collect();
    let config = Arc::new(ca_tools::client_config(&tls, &roots).unwrap());
    let mut conns = Vec::new();
    for &i in nodes {
        let (_, api, ..) = ports(opts.base_port, i);
        conns.push(HttpsClient::connect(&format!("127.0.0.1:{api}"), "127.0.0.1", config.clone()).await.unwrap());
    }
    (msp, conns)
}

pub fn bundle(dir: &Path) -> String {
    let mut out = String::new();
    for org in ["ordererorg1", "ordererorg2", "org1"] {
        for pem in channels::files::read_pem_dir(&dir.join("crypto").join(org).join("ca/msp/tlscacerts")).unwrap() {
            out.push_str(&pem);
        }
    }
    out
}

impl Cluster {
    /// Starts every node and waits until all are ready.
    pub fn start_all(&mut self) {
        for i in 0..self.procs.len() {
            self.start_node(i);
        }
        let base = self.opts.base_port;
        let n = self.procs.len();
        wait_until("all nodes ready", 60, || {
            (0..n).all(|i| http_get(ports(base, i).3, "/readyz").is_some_and(|r| r.starts_with("HTTP/1.1 200")))
        });
    }
}

/// A TLS client configuration from a ca-tools TLS folder, trusting the
/// network's TLS roots.
pub fn client_config(opts: &DevOptions, tls_dir: &Path) -> Arc<rustls::ClientConfig> {
    let tls = TlsIdentity::load(tls_dir).unwrap();
    let roots: Vec<String> = pem::parse_many(bundle(&opts.dir).as_bytes()).unwrap().iter().map(pem::encode).collect();
    Arc::new(ca_tools::client_config(&tls, &roots).unwrap())
}

/// Starts `loaders` clients, each over its own connections to nodes 1-4.
pub async fn start_load(
    opts: &DevOptions,
    stop: &Arc<AtomicBool>,
    tag: &str,
    loaders_count: usize,
) -> Vec<tokio::task::JoinHandle<Vec<Vec<u8>>>> {
    let mut loaders = Vec::new();
    for l in 0..loaders_count {
        let (msp, conns) = clients(opts, &[0, 1, 2, 3]).await;
        loaders.push(tokio::spawn(load(msp, conns, stop.clone(), format!("{tag}{l}"))));
    }
    loaders
}

pub async fn stop_load(stop: &AtomicBool, loaders: Vec<tokio::task::JoinHandle<Vec<Vec<u8>>>>) -> Vec<Vec<u8>> {
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    for l in loaders {
        acked.extend(l.await.unwrap());
    }
    acked
}

/// Submits envelopes round-robin with `wait=commit` until `stop`; returns
/// the acknowledged ones (HTTP 200: committed in a block). Refusals (503
/// during a switch, a full pool) and 202s are followed by a new envelope
/// after a pause: only acknowledgements are held to account.
pub async fn load(msp: Msp, mut conns: Vec<HttpsClient>, stop: Arc<AtomicBool>, tag: String) -> Vec<Vec<u8>> {
    let path = format!("/v1/channels/{CHANNEL}/envelopes?wait=commit");
    let mut acked = Vec::new();
    let mut k = 0usize;
    while !stop.load(Ordering::Relaxed) && acked.len() < 100_000 {
        let env = channels::envelope::build_envelope_now(
            CHANNEL,
            &msp,
            format!("{tag} tx {k}").as_bytes(),
            channels::proto::common::HeaderType::EndorserTransaction,
        )
        .unwrap()
        .encode_to_vec();
        let n = k % conns.len();
        k += 1;
        match conns[n].request("POST", &path, &env).await {
            Ok(r) if r.status == 200 => acked.push(env),
            Ok(_) | Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    acked
}

//! Four real `orderer` processes over real mutual-TLS sockets: 10,000
//! signed envelopes ordered into byte-identical ledgers; the primary killed
//! with SIGKILL, a view change, ordering continues; the killed node
//! restarted catches up by state transfer.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ca_tools::{Msp, TlsIdentity};
use orderer::node::client::HttpsClient;
use orderer::node::dev::{ports, prepare, DevOptions};
use orderer::storage::Store;
use prost::Message;

const CHANNEL: &str = "devchannel";

struct Cluster {
    opts: DevOptions,
    configs: Vec<PathBuf>,
    procs: Vec<Option<Child>>,
}

impl Cluster {
    fn start_node(&mut self, i: usize) {
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

    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.procs[i].take() {
            let _ = c.kill(); // SIGKILL
            let _ = c.wait();
        }
    }

    fn metric(&self, i: usize, name: &str) -> Option<u64> {
        let (.., ops) = ports(self.opts.base_port, i);
        let text = http_get(ops, "/metrics")?;
        text.lines()
            .find(|l| l.starts_with(name) && l.contains(CHANNEL))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .map(|v| v as u64)
    }

    fn log(&self, i: usize) -> String {
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

fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    Some(buf)
}

fn wait_until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out after {secs} s waiting for: {what}");
}

async fn clients(opts: &DevOptions, nodes: &[usize]) -> (Msp, Vec<HttpsClient>) {
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

fn bundle(dir: &Path) -> String {
    let mut out = String::new();
    for org in ["ordererorg1", "ordererorg2", "org1"] {
        for pem in channels::files::read_pem_dir(&dir.join("crypto").join(org).join("ca/msp/tlscacerts")).unwrap() {
            out.push_str(&pem);
        }
    }
    out
}

/// Submits `count` envelopes round-robin; returns how many got SUCCESS.
async fn submit(msp: &Msp, conns: &mut [HttpsClient], from: usize, count: usize) -> usize {
    let path = format!("/v1/channels/{CHANNEL}/envelopes");
    let mut ok = 0;
    for k in from..from + count {
        let env = channels::envelope::build_envelope_now(
            CHANNEL,
            msp,
            format!("tx {k}").as_bytes(),
            channels::proto::common::HeaderType::EndorserTransaction,
        )
        .unwrap();
        let n = k % conns.len();
        let r = conns[n].request("POST", &path, &env.encode_to_vec()).await.unwrap();
        assert_eq!(r.status, 200, "envelope {k}: {}", String::from_utf8_lossy(&r.body));
        ok += 1;
    }
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_order_ten_thousand_envelopes_survive_a_killed_primary_and_catch_up() {
    let dir = tempfile::tempdir().unwrap();
    let base_port = 20000 + (std::process::id() % 2000) as u16 * 10;
    let opts = DevOptions {
        nodes: 4,
        dir: dir.path().join("net"),
        channel: CHANNEL.into(),
        base_port,
        demo: 0,
        exit_after_demo: true,
    };
    let configs = prepare(&opts).unwrap();
    let mut cluster = Cluster { opts: opts.clone(), procs: (0..4).map(|_| None).collect(), configs };
    for i in 0..4 {
        cluster.start_node(i);
    }
    wait_until("all four nodes ready", 60, || {
        (0..4).all(|i| http_get(ports(base_port, i).3, "/readyz").is_some_and(|r| r.starts_with("HTTP/1.1 200")))
    });

    // 10,000 envelopes through all four nodes.
    let (msp, mut conns) = clients(&opts, &[0, 1, 2, 3]).await;
    let started = Instant::now();
    let accepted = submit(&msp, &mut conns, 0, 10_000).await;
    assert_eq!(accepted, 10_000);
    wait_until("10,000 envelopes committed on every node", 120, || {
        (0..4).all(|i| cluster.metric(i, "bft_ledger_envelopes").unwrap_or(0) >= 10_000)
    });
    println!("ordered 10,000 envelopes in {:.1} s", started.elapsed().as_secs_f64());

    // Kill the primary of view 0 (node 1) with SIGKILL; the rest change view
    // and keep ordering.
    let view_before = cluster.metric(1, "bft_view{").unwrap_or(0);
    cluster.kill(0);
    drop(conns);
    let (_, mut conns) = clients(&opts, &[1, 2, 3]).await;
    let killed_at = Instant::now();
    submit(&msp, &mut conns, 10_000, 300).await;
    wait_until("300 more envelopes committed by the three survivors", 90, || {
        (1..4).all(|i| cluster.metric(i, "bft_ledger_envelopes").unwrap_or(0) >= 10_300)
    });
    let view_after = cluster.metric(1, "bft_view{").unwrap_or(0);
    assert!(view_after > view_before, "a view change happened (view {view_before} -> {view_after})");
    println!("after killing the primary: 300 envelopes committed {:.1} s later", killed_at.elapsed().as_secs_f64());

    // Restart node 1: it catches up by state transfer.
    cluster.start_node(0);
    submit(&msp, &mut conns, 10_300, 50).await;
    wait_until("the restarted node catches up", 90, || {
        cluster.metric(0, "bft_ledger_envelopes").unwrap_or(0) >= 10_350
            && (0..4).map(|i| cluster.metric(i, "bft_ledger_height{")).collect::<std::collections::BTreeSet<_>>().len()
                == 1
    });
    drop(conns);
    for i in 0..4 {
        cluster.kill(i);
    }

    // Byte-identical ledgers, every envelope exactly once.
    let stores: Vec<Store> =
        (1..=4).map(|id| Store::open(&opts.dir.join(format!("nodes/orderer{id}/data/ledger.redb"))).unwrap()).collect();
    let height = stores[0].height(CHANNEL).unwrap();
    for s in &stores[1..] {
        assert_eq!(s.height(CHANNEL).unwrap(), height, "heights differ; log of node 1:\n{}", cluster.log(0));
    }
    let mut seen = std::collections::HashSet::new();
    for n in 1..=height {
        let b = stores[0].block(CHANNEL, n).unwrap().unwrap();
        for s in &stores[1..] {
            assert_eq!(s.block(CHANNEL, n).unwrap().unwrap(), b, "block {n} differs");
            assert!(s.certificate(CHANNEL, n).unwrap().is_some() || n == height, "block {n} has a certificate");
        }
        for e in &b.envelopes {
            assert!(seen.insert(e.clone()), "an envelope twice (block {n})");
        }
    }
    assert_eq!(seen.len(), 10_350, "every accepted envelope in exactly one block");
}

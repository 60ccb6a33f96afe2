//! Reconfiguration with five real `orderer` processes under load. Two
//! configuration updates, each signed by the admins of a majority of the
//! channel's organisations and ordered like any transaction: the first
//! rotates consenter 2's identity certificate (the node holds its next
//! identity in `node.next_msp_dir` and signs with it from the switch on, no
//! restart, no downtime), the second removes consenter 5 (it stops
//! ordering, keeps its ledger and refuses clients; the four others carry
//! on). No acknowledged envelope is lost or duplicated, the ledgers agree,
//! every block verifies under the configuration in force at its height, and
//! each update sits alone in its block.

mod support;

use std::collections::HashSet;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use ca_tools::{Ca, Msp, Validity};
use channels::block::BlockCertificate;
use channels::config_update::{propose, sign_update, update_envelope, ConfigUpdateVerifier};
use channels::proto::common::Block as PbBlock;
use channels::ChannelConfig;
use orderer::node::client::HttpsClient;
use orderer::node::dev::{ports, ChannelTuning};
use orderer::node::epoch::{epoch_bases, epoch_of_block};
use orderer::node::follow::ConfigFollower;
use orderer::storage::Store;
use prost::Message;
use support::{client_config, clients, network, network_tuned, start_load, stop_load, wait_until, Cluster, CHANNEL};

const NODES: usize = 5;
/// Clients submitting at once.
const LOADERS: usize = 4;

fn metric(cluster: &Cluster, i: usize, name: &str) -> u64 {
    cluster.metric(i, name).unwrap_or(0)
}

fn genesis(cluster: &Cluster) -> (PbBlock, ChannelConfig) {
    let bytes = std::fs::read(cluster.opts.dir.join(format!("bootstrap/{CHANNEL}.block"))).unwrap();
    let block = PbBlock::decode(bytes.as_slice()).unwrap();
    let config = channels::config_from_genesis(&block).unwrap();
    (block, config)
}

/// `next` as a signed CONFIG_UPDATE envelope: the admins of OrdererOrg1
/// and OrdererOrg2 sign (2 of the 3 organisations: a majority), the first
/// one submits.
fn signed_update(cluster: &Cluster, next: &ChannelConfig) -> Vec<u8> {
    let crypto = cluster.opts.dir.join("crypto");
    let admin = |org: &str, msp: &str| Msp::load(Some(msp), &crypto.join(org).join("users/admin/msp")).unwrap();
    let (a1, a2) = (admin("ordererorg1", "OrdererOrg1MSP"), admin("ordererorg2", "OrdererOrg2MSP"));
    let mut update = propose(next);
    sign_update(&mut update, &a1).unwrap();
    sign_update(&mut update, &a2).unwrap();
    update_envelope(CHANNEL, &update, &a1, ca_tools::now_unix()).unwrap().encode_to_vec()
}

/// Submits `envelope` to node `i` and waits for it to be committed.
async fn submit_update(cluster: &Cluster, i: usize, envelope: &[u8]) {
    let (msp, mut conns) = clients(&cluster.opts, &[i]).await;
    drop(msp);
    let r = conns[0].request("POST", &format!("/v1/channels/{CHANNEL}/envelopes?wait=commit"), envelope).await.unwrap();
    assert_eq!(r.status, 200, "config update refused: {}", String::from_utf8_lossy(&r.body));
    println!("config update committed: {}", String::from_utf8_lossy(&r.body));
}

/// Block `n` as the API serves it: Fabric's layout with its certificate,
/// signed in the epoch whose range holds it.
fn fabric_block(store: &Store, bases: &[(u64, u64)], n: u64) -> PbBlock {
    let block = store.block(CHANNEL, n).unwrap().unwrap();
    let cert = store.certificate(CHANNEL, n).unwrap().unwrap_or_else(|| panic!("block {n} has no certificate"));
    let mut pb = channels::block::build_block(n, &block.previous_hash, block.envelopes);
    BlockCertificate { epoch: epoch_of_block(bases, n), signatures: cert.signatures }.store(&mut pb);
    pb
}

/// The ledgers after two reconfigurations: nodes 1-4 identical, node 5's a
/// prefix; every acknowledged envelope exactly once; every block verifies
/// under the configuration in force at its height; each update alone in its
/// block. Returns the stores, the height and the switches (block of the
/// update, last block under the previous configuration, new sequence).
fn check_ledgers(cluster: &Cluster, acked: &[Vec<u8>]) -> (Vec<Store>, u64, Vec<(u64, u64, u64)>) {
    let (_, genesis_config) = genesis(cluster);
    let stores: Vec<Store> = (1..=NODES)
        .map(|id| Store::open(&cluster.opts.dir.join(format!("nodes/orderer{id}/data/ledger.redb"))).unwrap())
        .collect();
    let height = stores[0].height(CHANNEL).unwrap();
    let bases = epoch_bases(&stores[0], CHANNEL).unwrap();
    let mut seen = HashSet::new();
    let mut follower = ConfigFollower::new(genesis_config).unwrap();
    let mut update_blocks = Vec::new();
    for n in 1..=height {
        let b = stores[0].block(CHANNEL, n).unwrap().unwrap();
        for (i, s) in stores.iter().enumerate().take(4).skip(1) {
            assert_eq!(s.block(CHANNEL, n).unwrap().unwrap(), b, "block {n} differs on node {}", i + 1);
        }
        if let Some(b5) = stores[4].block(CHANNEL, n).unwrap() {
            assert_eq!(b5, b, "block {n} differs on node 5");
        }
        let updates = ConfigUpdateVerifier::new(follower.config_for(n).unwrap()).unwrap();
        follower.verify_and_observe(&fabric_block(&stores[0], &bases, n)).unwrap_or_else(|e| panic!("block {n}: {e}"));
        for e in &b.envelopes {
            assert!(seen.insert(e.clone()), "an envelope twice (block {n})");
            if updates.verify(e).is_ok() {
                assert_eq!(b.envelopes.len(), 1, "a config update alone in block {n}");
                update_blocks.push(n);
            }
        }
    }
    for e in acked {
        assert!(seen.contains(e), "an acknowledged envelope is missing from the ledger");
    }
    let switches: Vec<(u64, u64, u64)> =
        follower.applied.iter().map(|s| (s.block, s.last_under_previous, s.config.sequence)).collect();
    assert_eq!(switches.len(), 2, "two configurations took effect: {switches:?}");
    assert_eq!(follower.current().consenters.len(), 4);
    assert!(stores[4].height(CHANNEL).unwrap() <= height);
    println!("updates in blocks {update_blocks:?}");
    (stores, height, switches)
}

/// Blocks in `range` whose certificate, on one of nodes 1-4, carries a
/// signature of `id`.
fn signed_by(stores: &[Store], id: u32, range: std::ops::RangeInclusive<u64>) -> usize {
    range
        .filter(|n| {
            stores.iter().take(4).any(|s| {
                s.certificate(CHANNEL, *n)
                    .unwrap()
                    .is_some_and(|c| c.signatures.iter().any(|(signer, _)| *signer == id))
            })
        })
        .count()
}

/// Blocks in `range` whose certificate share node `i` logged in its signed
/// vote log, for the header hash the other nodes' ledgers hold.
fn shares_in_vote_log(stores: &[Store], i: usize, range: std::ops::RangeInclusive<u64>) -> usize {
    let (_, records) = stores[i].audit_records(CHANNEL, 0..=u64::MAX, 1_000_000).unwrap();
    let ledger = &stores[0];
    records
        .iter()
        .filter(|r| match &r.entry {
            orderer::audit::Entry::Block { seq, header_hash, .. } => {
                range.contains(seq)
                    && ledger.block(CHANNEL, *seq).unwrap().is_some_and(|b| b.header_hash == *header_hash)
            }
            _ => false,
        })
        .count()
}

fn sequences(cluster: &Cluster, nodes: &[usize]) -> Vec<u64> {
    nodes.iter().map(|i| metric(cluster, *i, "bft_config_sequence{")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_is_rotated_and_a_consenter_removed_by_config_updates_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = network(dir.path(), NODES);
    let opts = cluster.opts.clone();
    let crypto = opts.dir.join("crypto");

    // Consenter 2's next identity, from its organisation's CA (what
    // `ca-tools renew` does), in the folder its orderer.yaml names as
    // node.next_msp_dir.
    let org = crypto.join("ordererorg1");
    let mut ca = Ca::load(&org.join("ca")).unwrap();
    let current = std::fs::read(org.join("orderers/orderer2/msp/signcerts/orderer2-cert.pem")).unwrap();
    let next_dir = dir.path().join("orderer2-next");
    ca.renew(&current, None, Validity::days_from_now(30).unwrap(), &next_dir, false).unwrap();
    let yaml = std::fs::read_to_string(&cluster.configs[1]).unwrap();
    let yaml = yaml.replacen("node:\n", &format!("node:\n  next_msp_dir: {}\n", next_dir.join("msp").display()), 1);
    std::fs::write(&cluster.configs[1], yaml).unwrap();
    let next_cert = channels::files::read_pem_dir(&next_dir.join("msp/signcerts")).unwrap().remove(0);

    cluster.start_all();
    let stop = Arc::new(AtomicBool::new(false));
    let loaders = start_load(&opts, &stop, "r", LOADERS).await;
    wait_until("some blocks", 60, || metric(&cluster, 0, "bft_ledger_height{") >= 20);

    // 1. Rotate consenter 2's identity certificate.
    let (_, genesis_config) = genesis(&cluster);
    let mut rotated = genesis_config.clone();
    rotated.sequence = 1;
    rotated.consenters.iter_mut().find(|c| c.id == 2).unwrap().identity_cert = next_cert.clone();
    let envelope = signed_update(&cluster, &rotated);
    // A single organisation's admin is not enough.
    {
        let a1 = Msp::load(Some("OrdererOrg1MSP"), &crypto.join("ordererorg1/users/admin/msp")).unwrap();
        let mut weak = propose(&rotated);
        sign_update(&mut weak, &a1).unwrap();
        let bytes = update_envelope(CHANNEL, &weak, &a1, ca_tools::now_unix()).unwrap().encode_to_vec();
        let (_, mut conns) = clients(&opts, &[0]).await;
        let r = conns[0].request("POST", &format!("/v1/channels/{CHANNEL}/envelopes"), &bytes).await.unwrap();
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
        println!("one organisation's signature: {}", String::from_utf8_lossy(&r.body));
    }
    submit_update(&cluster, 2, &envelope).await;
    wait_until("every node under configuration 1", 120, || sequences(&cluster, &[0, 1, 2, 3, 4]) == vec![1; 5]);
    let after_rotation = metric(&cluster, 0, "bft_ledger_height{");
    wait_until("blocks certified after the rotation", 120, || {
        metric(&cluster, 1, "bft_certified_height{") >= after_rotation + 10
    });

    // 2. Remove consenter 5.
    let mut removed = rotated.clone();
    removed.sequence = 2;
    removed.consenters.retain(|c| c.id != 5);
    submit_update(&cluster, 0, &signed_update(&cluster, &removed)).await;
    wait_until("nodes 1-4 under configuration 2, node 5 removed", 120, || {
        sequences(&cluster, &[0, 1, 2, 3]) == vec![2; 4] && metric(&cluster, 4, "bft_consenter_removed{") == 1
    });
    let at_removal = metric(&cluster, 0, "bft_ledger_height{");
    wait_until("the four go on without node 5", 120, || metric(&cluster, 0, "bft_ledger_height{") >= at_removal + 20);
    // Node 5 refuses clients now.
    {
        let (msp, mut conns) = clients(&opts, &[4]).await;
        let env = channels::envelope::build_envelope_now(
            CHANNEL,
            &msp,
            b"to a removed consenter",
            channels::proto::common::HeaderType::EndorserTransaction,
        )
        .unwrap()
        .encode_to_vec();
        let r = conns[0].request("POST", &format!("/v1/channels/{CHANNEL}/envelopes"), &env).await.unwrap();
        assert_ne!(r.status, 200);
        assert!(
            String::from_utf8_lossy(&r.body).contains("no longer a consenter"),
            "{}",
            String::from_utf8_lossy(&r.body)
        );
    }

    let acked = stop_load(&stop, loaders).await;
    wait_until("nodes 1-4 at the same height", 60, || {
        let heights: HashSet<u64> = (0..4).map(|i| metric(&cluster, i, "bft_ledger_height{")).collect();
        heights.len() == 1
    });
    let logs: Vec<String> = (0..NODES).map(|i| cluster.log(i)).collect();
    for i in 0..NODES {
        cluster.kill(i);
    }
    assert!(logs[1].contains("reconfiguration takes effect"), "node 2 switched configuration:\n{}", logs[1]);
    assert!(logs[4].contains("removed this consenter"), "node 5 saw its removal:\n{}", logs[4]);

    let (stores, height, switches) = check_ledgers(&cluster, &acked);
    // Consenter 2 signs with its new identity after the rotation: some
    // certificate past the switch, on some node, carries its signature
    // (which verified above under its new certificate).
    let (rotation_end, removal_end) = (switches[0].1, switches[1].1);
    let signed_by_2 = signed_by(&stores, 2, rotation_end + 1..=height);
    assert!(signed_by_2 > 0, "consenter 2 signed no certificate after its rotation");
    assert_eq!(signed_by(&stores, 5, removal_end + 1..=height), 0, "the removed consenter signs nothing");
    println!(
        "reconfiguration: {} envelopes acknowledged, all in the ledger once; height {height}; \
         (block, last block under the previous configuration, sequence) {switches:?}; {signed_by_2} certificates after the rotation carry consenter 2's new signature",
        acked.len()
    );
}

/// [`wait_until`], and on time-out the nodes' figures and the end of each
/// node's log.
fn wait_or_explain(cluster: &Cluster, what: &str, secs: u64, f: impl Fn(&Cluster) -> bool) {
    for _ in 0..secs * 5 {
        if f(cluster) {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut report = String::new();
    for i in 0..NODES {
        let figures: Vec<String> =
            ["bft_ledger_height{", "bft_certified_height{", "bft_epoch{", "bft_config_sequence{", "bft_view{"]
                .iter()
                .map(|m| format!("{m}{}", metric(cluster, i, m)))
                .collect();
        let log = cluster.log(i);
        let _ = std::fs::write(std::env::temp_dir().join(format!("node-reconfig-{}.log", i + 1)), &log);
        let tail: Vec<&str> = log.lines().rev().take(12).collect();
        report.push_str(&format!(
            "node {}: {}\n  {}\n",
            i + 1,
            figures.join(" "),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n  ")
        ));
    }
    panic!("timed out after {secs} s waiting for: {what}\n{report}");
}

fn ready(cluster: &Cluster, i: usize) -> bool {
    support::http_get(ports(cluster.opts.base_port, i).3, "/readyz").is_some_and(|r| r.starts_with("HTTP/1.1 200"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifth_consenter_is_added_catches_up_from_the_genesis_block_and_is_removed_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = network_tuned(dir.path(), NODES, ChannelTuning::default(), 5_000);
    let opts = cluster.opts.clone();
    // The channel starts with consenters 1-4; node 5 has an identity of
    // OrdererOrg2 but is not in the genesis block.
    let genesis_path = opts.dir.join(format!("bootstrap/{CHANNEL}.block"));
    let (_, mut config) = genesis(&cluster);
    let fifth = config.consenters.iter().find(|c| c.id == 5).unwrap().clone();
    config.consenters.retain(|c| c.id != 5);
    config.validate().unwrap();
    let genesis_block = channels::genesis_block(&config).encode_to_vec();
    std::fs::write(&genesis_path, &genesis_block).unwrap();
    for i in 0..NODES {
        cluster.start_node(i);
    }
    wait_until("nodes 1-4 ready", 60, || (0..4).all(|i| ready(&cluster, i)));
    let stop = Arc::new(AtomicBool::new(false));
    let loaders = start_load(&opts, &stop, "a", LOADERS).await;
    wait_until("some blocks", 60, || metric(&cluster, 0, "bft_ledger_height{") >= 20);

    // 1. Add consenter 5 (its certificates, endpoint and MAC public key).
    let mut added = config.clone();
    added.sequence = 1;
    added.consenters.push(fifth);
    submit_update(&cluster, 1, &signed_update(&cluster, &added)).await;
    wait_until("nodes 1-4 under configuration 1", 120, || sequences(&cluster, &[0, 1, 2, 3]) == vec![1; 4]);
    assert_eq!(metric(&cluster, 0, "bft_consenters{"), 5);

    // The operator joins node 5 with the genesis block: it onboards.
    let admin = opts.dir.join("crypto/ordererorg2/users/admin/tls");
    let (.., admin_port, _) = ports(opts.base_port, 4);
    let mut conn = HttpsClient::connect(&format!("127.0.0.1:{admin_port}"), "127.0.0.1", client_config(&opts, &admin))
        .await
        .unwrap();
    let r = conn.request("POST", "/participation/v1/channels", &genesis_block).await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(r.status, 201, "{body}");
    assert_eq!(body["status"], "onboarding", "{body}");
    // It catches up in its first epoch by state transfer and takes part:
    // its ledger passes the others' height at the join by 20 blocks.
    let joined_at = metric(&cluster, 0, "bft_ledger_height{");
    wait_or_explain(&cluster, "node 5 caught up, runs configuration 1 and goes on", 180, |cluster| {
        metric(cluster, 4, "bft_config_sequence{") == 1 && metric(cluster, 4, "bft_ledger_height{") >= joined_at + 20
    });

    // 2. Remove it again.
    let mut without = added.clone();
    without.sequence = 2;
    without.consenters.retain(|c| c.id != 5);
    submit_update(&cluster, 2, &signed_update(&cluster, &without)).await;
    wait_or_explain(&cluster, "nodes 1-4 under configuration 2, node 5 removed", 180, |cluster| {
        sequences(cluster, &[0, 1, 2, 3]) == vec![2; 4] && metric(cluster, 4, "bft_consenter_removed{") == 1
    });
    let at_removal = metric(&cluster, 0, "bft_ledger_height{");
    wait_until("the four go on", 120, || metric(&cluster, 0, "bft_ledger_height{") >= at_removal + 20);

    let acked = stop_load(&stop, loaders).await;
    wait_until("nodes 1-4 at the same height", 60, || {
        let heights: HashSet<u64> = (0..4).map(|i| metric(&cluster, i, "bft_ledger_height{")).collect();
        heights.len() == 1
    });
    let log5 = cluster.log(4);
    for i in 0..NODES {
        cluster.kill(i);
    }
    assert!(log5.contains("onboarding done"), "node 5 finished onboarding:\n{log5}");
    let (stores, height, switches) = check_ledgers(&cluster, &acked);
    let (added_end, removed_end) = (switches[0].1, switches[1].1);
    // Its shares are the slowest of five (it is the newest node), so the
    // first quorum of a certificate may never include it: its own signed
    // vote log shows the shares it gave, for the blocks everyone has.
    let shares_of_5 = shares_in_vote_log(&stores, 4, added_end + 1..=removed_end);
    assert!(shares_of_5 > 0, "consenter 5 signed no certificate share while it was one");
    let signed_by_5 = signed_by(&stores, 5, added_end + 1..=removed_end);
    assert_eq!(signed_by(&stores, 5, removed_end + 1..=height), 0, "the removed consenter signs nothing");
    assert!(stores[4].height(CHANNEL).unwrap() >= removed_end, "node 5 holds the ledger up to its removal");
    println!(
        "add and remove: {} envelopes acknowledged, all in the ledger once; height {height}; (block, last block \
         under the previous configuration, sequence) {switches:?}; consenter 5 signed {shares_of_5} shares of \
         ledger blocks while it was a consenter, and {signed_by_5} certificates carry its signature",
        acked.len()
    );
}

//! MAC-key rotation with four real `orderer` processes: the channel rotates
//! its keys every 20 blocks under load (at least five epoch switches), a
//! node killed and restarted after a switch comes back in the same epoch
//! with the same keys, a node down across two switches catches up through
//! them, no acknowledged envelope is lost or duplicated, the
//! ledgers are identical, every rotation is visible in the ledger as a block
//! of key announcements; and `POST /admin/v1/channels/{channel}/rotate-keys`
//! rotates the keys of a channel whose policy is off.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use channels::announcement::AnnouncementVerifier;
use orderer::node::client::HttpsClient;
use orderer::node::dev::{ports, ChannelTuning};
use orderer::storage::Store;
use prost::Message;
use support::{client_config, network_tuned, start_load, stop_load, wait_until, Cluster, CHANNEL};

/// Clients submitting at once.
const LOADERS: usize = 6;

fn metric(cluster: &Cluster, i: usize, name: &str) -> u64 {
    cluster.metric(i, name).unwrap_or(0)
}

fn open_stores(cluster: &Cluster) -> Vec<Store> {
    (1..=4)
        .map(|id| Store::open(&cluster.opts.dir.join(format!("nodes/orderer{id}/data/ledger.redb"))).unwrap())
        .collect()
}

/// Identical ledgers; every acknowledged envelope exactly once; returns the
/// blocks holding announcements: block -> [(consenter, epoch)].
fn check_ledgers(cluster: &Cluster, acked: &[Vec<u8>]) -> BTreeMap<u64, Vec<(u32, u64)>> {
    let stores = open_stores(cluster);
    let genesis = std::fs::read(cluster.opts.dir.join(format!("bootstrap/{CHANNEL}.block"))).unwrap();
    let config =
        channels::config_from_genesis(&channels::proto::common::Block::decode(genesis.as_slice()).unwrap()).unwrap();
    let verifier = AnnouncementVerifier::new(&config);
    let height = stores[0].height(CHANNEL).unwrap();
    for s in &stores[1..] {
        assert_eq!(s.height(CHANNEL).unwrap(), height, "heights differ");
    }
    let mut seen = HashSet::new();
    let mut announcements: BTreeMap<u64, Vec<(u32, u64)>> = BTreeMap::new();
    for n in 1..=height {
        let b = stores[0].block(CHANNEL, n).unwrap().unwrap();
        for s in &stores[1..] {
            assert_eq!(s.block(CHANNEL, n).unwrap().unwrap(), b, "block {n} differs");
        }
        for e in &b.envelopes {
            assert!(seen.insert(e.clone()), "an envelope twice (block {n})");
            if let Ok(a) = verifier.verify(e) {
                announcements.entry(n).or_default().push((a.consenter, a.epoch));
            }
        }
    }
    for e in acked {
        assert!(seen.contains(e), "an acknowledged envelope is missing from the ledger");
    }
    let blocks_with_both = announcements
        .keys()
        .filter(|n| {
            let b = stores[0].block(CHANNEL, **n).unwrap().unwrap();
            b.envelopes.iter().any(|e| verifier.verify(e).is_err())
        })
        .count();
    assert_eq!(blocks_with_both, 0, "announcements are ordered in blocks of their own");
    announcements
}

fn epochs_of_all(cluster: &Cluster) -> Vec<u64> {
    (0..4).map(|i| metric(cluster, i, "bft_epoch{")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_every_20_blocks_under_load_with_a_restart_and_no_lost_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let tuning = ChannelTuning { rotate_every_blocks: Some(20), ..ChannelTuning::default() };
    let mut cluster = network_tuned(dir.path(), 4, tuning, 0);
    let opts = cluster.opts.clone();
    cluster.start_all();

    let stop = Arc::new(AtomicBool::new(false));
    let loaders = start_load(&opts, &stop, "a", LOADERS).await;

    wait_until("two epoch switches on every node", 240, || epochs_of_all(&cluster).iter().all(|e| *e >= 3));
    println!("epochs after two switches: {:?}", epochs_of_all(&cluster));

    // Kill node 2 after the switches; restarted, it reads its epoch record
    // and key back and rejoins the current epoch.
    cluster.kill(1);
    std::thread::sleep(Duration::from_secs(1));
    cluster.start_node(1);
    wait_until("the restarted node is back in the others' epoch, one more switch", 240, || {
        let epochs = epochs_of_all(&cluster);
        epochs.iter().all(|e| *e >= 4) && epochs.iter().all(|e| *e == epochs[0])
    });
    // Node 3 is down across two switches: restarted, it catches up through
    // both epochs by state transfer and switches at the same blocks.
    cluster.kill(2);
    let down_in = metric(&cluster, 0, "bft_epoch{");
    wait_until("two switches without node 3", 240, || {
        [0, 1, 3].iter().all(|i| metric(&cluster, *i, "bft_epoch{") >= down_in + 2)
    });
    cluster.start_node(2);
    wait_until("node 3 caught up through the epochs it missed", 240, || {
        let epochs = epochs_of_all(&cluster);
        epochs[2] >= down_in + 2 && epochs.iter().all(|e| *e == epochs[0])
    });
    println!("node 3 was down in epoch {down_in}; now all in {:?}", epochs_of_all(&cluster));
    let acked = stop_load(&stop, loaders).await;
    wait_until("every node at the same height", 60, || {
        let heights: HashSet<u64> = (0..4).map(|i| metric(&cluster, i, "bft_ledger_height{")).collect();
        heights.len() == 1
    });
    let switches: Vec<u64> = (0..4).map(|i| metric(&cluster, i, "bft_epoch_switches_total{")).collect();
    let restarted_logs = [cluster.log(1), cluster.log(2)];
    for i in 0..4 {
        cluster.kill(i);
    }
    assert!(switches.iter().all(|s| *s >= 1), "switch counters: {switches:?}");
    for log in &restarted_logs {
        assert!(!log.contains("throwaway key"), "a restarted node found its key again:\n{log}");
    }

    let announcements = check_ledgers(&cluster, &acked);
    let epochs_announced: HashSet<u64> = announcements.values().flatten().map(|(_, e)| *e).collect();
    assert!(epochs_announced.len() >= 5, "announcements for epochs 2..=6 at least: {announcements:?}");
    println!(
        "{} envelopes acknowledged, all in the ledger once; announcement blocks: {:?}",
        acked.len(),
        announcements
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_endpoint_rotates_the_keys_of_a_channel_whose_policy_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = network_tuned(dir.path(), 4, ChannelTuning::default(), 5_000);
    let opts = cluster.opts.clone();
    cluster.start_all();
    let stop = Arc::new(AtomicBool::new(false));
    let loaders = start_load(&opts, &stop, "b", LOADERS).await;
    wait_until("some blocks", 60, || metric(&cluster, 0, "bft_ledger_height{") >= 30);
    assert_eq!(epochs_of_all(&cluster), vec![1, 1, 1, 1], "no rotation without a trigger");

    // An admin of node 4's organisation asks node 4 to rotate.
    let admin = opts.dir.join("crypto/ordererorg2/users/admin/tls");
    let (.., admin_port, _) = ports(opts.base_port, 3);
    let mut conn = HttpsClient::connect(&format!("127.0.0.1:{admin_port}"), "127.0.0.1", client_config(&opts, &admin))
        .await
        .unwrap();
    let r = conn.request("POST", &format!("/admin/v1/channels/{CHANNEL}/rotate-keys"), b"").await.unwrap();
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(r.status, 202, "{body}");
    assert_eq!(body["epoch"], 1);
    assert_eq!(body["next_epoch"], 2);
    // A client certificate may not.
    let client = opts.dir.join("crypto/org1/users/client/tls");
    let mut other =
        HttpsClient::connect(&format!("127.0.0.1:{admin_port}"), "127.0.0.1", client_config(&opts, &client))
            .await
            .unwrap();
    let r = other.request("POST", &format!("/admin/v1/channels/{CHANNEL}/rotate-keys"), b"").await.unwrap();
    assert_eq!(r.status, 403);

    wait_until("every node in epoch 2", 120, || epochs_of_all(&cluster).iter().all(|e| *e == 2));
    let acked = stop_load(&stop, loaders).await;
    wait_until("every node at the same height", 60, || {
        let heights: HashSet<u64> = (0..4).map(|i| metric(&cluster, i, "bft_ledger_height{")).collect();
        heights.len() == 1
    });
    for i in 0..4 {
        cluster.kill(i);
    }
    let announcements = check_ledgers(&cluster, &acked);
    let announcers: HashSet<u32> = announcements.values().flatten().map(|(c, _)| *c).collect();
    assert!(announcers.contains(&4), "node 4 announced first: {announcements:?}");
    assert!(announcers.len() >= 3, "the others followed: {announcements:?}");
    println!("admin rotation: {} envelopes acknowledged; announcements {:?}", acked.len(), announcements);
}

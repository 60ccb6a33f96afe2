//! Four channel tasks with real storage, connected by an in-memory
//! transport: ordering, identical ledgers, and a node killed and restarted
//! from its data folder that catches up by state transfer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use orderer::audit::export::{export, ExportRange};
use orderer::audit::{read_export, verify, BlockVotes};
use orderer::consensus::{Config, Limits, ReplicaId};
use orderer::node::{spawn, ChannelHandle, ChannelParams, SubmitResult, Transport};
use orderer::sim::audit::SimKeys;
use orderer::sim::identity::{make_envelope, Keyring, SimValidator};
use orderer::storage::Store;

const CHANNEL: &str = "testchannel";

#[derive(Default)]
struct MemNet {
    nodes: Mutex<HashMap<ReplicaId, ChannelHandle>>,
}

struct MemTransport {
    me: ReplicaId,
    net: Arc<MemNet>,
}

impl Transport for MemTransport {
    fn send(&self, to: ReplicaId, _channel: &str, frame: Vec<u8>) {
        if let Some(h) = self.net.nodes.lock().unwrap().get(&to) {
            h.deliver(self.me, frame);
        }
    }
    fn broadcast(&self, channel: &str, frame: Vec<u8>) {
        let peers: Vec<ReplicaId> = self.net.nodes.lock().unwrap().keys().copied().filter(|p| *p != self.me).collect();
        for p in peers {
            self.send(p, channel, frame.clone());
        }
    }
}

fn config(me: ReplicaId) -> Config {
    Config {
        channel: CHANNEL.into(),
        epoch: 1,
        me,
        members: vec![1, 2, 3, 4],
        epoch_base: 0,
        genesis_hash: [5; 32],
        window: 16,
        checkpoint_interval: 4,
        batch_count_max: 200,
        batch_bytes_max: 1 << 20,
        batch_bytes_preferred: 512 << 10,
        batch_timeout_ticks: 2,
        cut_when_idle: true,
        forward_timeout_ticks: 100,
        complain_timeout_ticks: 2_000,
        view_change_timeout_ticks: 200,
        heartbeat_interval_ticks: 10,
        heartbeat_timeout_ticks: 100,
        resend_interval_ticks: 50,
        pool_max: 50_000,
        dedup_window_blocks: 1_000,
        limits: Limits::default(),
        #[cfg(feature = "mutants")]
        mutant: None,
    }
}

fn start(id: ReplicaId, dir: &std::path::Path, ring: &Arc<Keyring>, net: &Arc<MemNet>) -> ChannelHandle {
    let store = Arc::new(Store::open(&dir.join(format!("node{id}.redb"))).unwrap());
    let (handle, _join) = spawn(ChannelParams {
        config: config(id),
        crypto: Box::new(ring.signer(id)),
        macs: ring.mac_keys(id),
        validator: Box::new(SimValidator),
        store,
        transport: Arc::new(MemTransport { me: id, net: net.clone() }),
        tick: Duration::from_millis(5),
        queue_max: 100_000,
        audit_signer: Some(Box::new(ring.signer(id))),
    })
    .unwrap();
    net.nodes.lock().unwrap().insert(id, handle.clone());
    handle
}

async fn wait_height(handles: &[&ChannelHandle], height: u64, what: &str) {
    for _ in 0..2_000 {
        if handles.iter().all(|h| h.status().borrow().height >= height) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let heights: Vec<u64> = handles.iter().map(|h| h.status().borrow().height).collect();
    panic!("{what}: heights {heights:?} never reached {height}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_channel_tasks_order_envelopes_into_identical_ledgers_and_a_restarted_node_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let ring = Keyring::new(&[1, 2, 3, 4], 1);
    let net = Arc::new(MemNet::default());
    let mut handles: Vec<ChannelHandle> = (1..=4).map(|id| start(id, dir.path(), &ring, &net)).collect();

    // 2,000 envelopes submitted round-robin to every node.
    let mut accepted = 0;
    for k in 0..2_000u64 {
        let h = &handles[(k % 4) as usize];
        if let SubmitResult::Accepted { .. } = h.submit(make_envelope(7, k, 64)).await {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 2_000);
    let target = {
        let mut last = 0;
        for _ in 0..1_000 {
            let h = handles[0].status().borrow().height;
            let store_count = h;
            if store_count == last && h > 0 {
                break;
            }
            last = h;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        last
    };
    assert!(target > 0);
    let refs: Vec<&ChannelHandle> = handles.iter().collect();
    wait_height(&refs, target, "all four").await;

    // Kill node 4 (its task stops, its data folder stays), order more, restart it.
    handles[3].stop().await;
    net.nodes.lock().unwrap().remove(&4);
    for k in 2_000..2_400u64 {
        let h = &handles[(k % 3) as usize];
        assert!(matches!(h.submit(make_envelope(7, k, 64)).await, SubmitResult::Accepted { .. }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = handles[0].status().borrow().height;
    assert!(before > target, "the three others kept ordering");
    handles[3] = start(4, dir.path(), &ring, &net);
    // Another envelope so the cluster shows its height to the restarted node.
    handles[0].submit(make_envelope(7, 99_999, 8)).await;
    let refs: Vec<&ChannelHandle> = handles.iter().collect();
    wait_height(&refs, before + 1, "after restart").await;
    for h in &handles {
        h.stop().await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    net.nodes.lock().unwrap().clear();

    // The ledgers are byte-identical and hold every envelope exactly once.
    let stores: Vec<Store> =
        (1..=4).map(|id| Store::open(&dir.path().join(format!("node{id}.redb"))).unwrap()).collect();
    let height = stores.iter().map(|s| s.height(CHANNEL).unwrap()).min().unwrap();
    let mut envelopes = 0;
    let mut seen = std::collections::HashSet::new();
    for n in 1..=height {
        let first = stores[0].block(CHANNEL, n).unwrap().unwrap();
        for s in &stores[1..] {
            assert_eq!(s.block(CHANNEL, n).unwrap().unwrap(), first, "block {n} differs");
        }
        for e in &first.envelopes {
            assert!(seen.insert(e.clone()), "envelope twice in block {n}");
        }
        envelopes += first.envelopes.len();
    }
    assert_eq!(envelopes, 2_401, "every accepted envelope is in exactly one block");

    // Every node's signed vote log, exported from its store, verifies (node
    // 4's across its restart), and every certified block has a quorum of
    // matching logged votes.
    let keys = SimKeys::new(CHANNEL, &[1, 2, 3, 4], &ring, 3);
    let mut logs = vec![];
    for (i, s) in stores.iter().enumerate() {
        let signer = ring.signer(i as u32 + 1);
        let bytes =
            export(s, CHANNEL, None, &|_| String::new(), &ExportRange { from: 0, to: None }, Some(&signer)).unwrap();
        logs.push(read_export(&format!("node{}", i + 1), &mut bytes.as_slice()).unwrap());
    }
    let blocks: Vec<BlockVotes> = (1..=height)
        .filter_map(|n| stores[0].certificate(CHANNEL, n).unwrap())
        .map(|c| BlockVotes {
            source: "node1".into(),
            channel: CHANNEL.into(),
            number: c.seq,
            header_hash: c.header_hash,
            epoch: 1,
            shares: c.signatures,
        })
        .collect();
    let report = verify(&keys, &logs, &blocks);
    assert!(report.clean(), "{}", report.text());
    assert!(report.consenters.iter().all(|c| c.blocks_voted > 0), "{}", report.text());
    assert_eq!(report.blocks_with_logged_quorum, blocks.len() as u64, "{}", report.text());
}

//! Four real `orderer` processes over real mutual-TLS sockets: 10,000
//! signed envelopes ordered into byte-identical ledgers; the primary killed
//! with SIGKILL, a view change, ordering continues; the killed node
//! restarted catches up by state transfer.

mod support;

use std::time::Instant;

use ca_tools::Msp;
use orderer::node::client::HttpsClient;
use orderer::storage::Store;
use prost::Message;
use support::{clients, network, wait_until, CHANNEL};

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
    let mut cluster = network(dir.path(), 4);
    let opts = cluster.opts.clone();
    cluster.start_all();

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

//! Scenario tests of one replica and small clusters, driven by hand: each
//! test names what it proves.

use std::collections::VecDeque;

use super::auth::seal;
use super::message::{Body, Certificate, PrePreparedClaim, PreparedClaim, ViewChange};
use super::*;
use crate::sim::identity::{
    make_announcement, make_envelope, make_reconfiguration, Keyring, SimConfig, SimConfigValidator, SimValidator,
};

const CHANNEL: &str = "ch";

fn config(me: ReplicaId, n: u32) -> Config {
    Config {
        channel: CHANNEL.into(),
        epoch: 1,
        me,
        members: (1..=n).collect(),
        epoch_base: 0,
        genesis_hash: [7; 32],
        window: 4,
        checkpoint_interval: 2,
        batch_count_max: 1,
        batch_bytes_max: 4096,
        batch_bytes_preferred: 1,
        batch_timeout_ticks: 1,
        cut_when_idle: true,
        forward_timeout_ticks: 50,
        complain_timeout_ticks: 2000,
        view_change_timeout_ticks: 300,
        heartbeat_interval_ticks: 10,
        heartbeat_timeout_ticks: 400,
        resend_interval_ticks: 50,
        pool_max: 100,
        dedup_window_blocks: 16,
        limits: Limits::default(),
        #[cfg(feature = "mutants")]
        mutant: None,
    }
}

struct Harness {
    ring: std::sync::Arc<Keyring>,
    replicas: Vec<Replica>,
    records: Vec<Vec<Durable>>,
    commits: Vec<Vec<Block>>,
    certified: Vec<Vec<Certificate>>,
    /// The epochs each replica ended: (epoch, last block).
    ended: Vec<Vec<(Epoch, Seq)>>,
    /// The phases each replica's outputs showed, in order.
    phases: Vec<Vec<(Seq, Phase)>>,
    queue: VecDeque<(ReplicaId, ReplicaId, Vec<u8>)>,
    /// Messages to these replicas are lost.
    cut: Vec<ReplicaId>,
}

impl Harness {
    fn new(n: u32) -> Self {
        Self::with(n, |_| {})
    }

    /// `n` replicas whose configuration `tune` changed.
    fn with(n: u32, tune: impl Fn(&mut Config)) -> Self {
        let ring = Keyring::new(&(1..=n).collect::<Vec<_>>(), 9);
        let replicas = (1..=n)
            .map(|id| {
                let mut cfg = config(id, n);
                tune(&mut cfg);
                Self::make(&ring, cfg, &[])
            })
            .collect();
        let k = n as usize;
        Harness {
            ring,
            replicas,
            records: vec![vec![]; k],
            commits: vec![vec![]; k],
            certified: vec![vec![]; k],
            ended: vec![vec![]; k],
            phases: vec![vec![]; k],
            queue: VecDeque::new(),
            cut: vec![],
        }
    }

    fn make(ring: &std::sync::Arc<Keyring>, cfg: Config, records: &[Durable]) -> Replica {
        let id = cfg.me;
        let tip = Tip::genesis(cfg.genesis_hash);
        let validator = Box::new(SimConfigValidator { config_sequence: 0 });
        Replica::new(cfg, Box::new(ring.signer(id)), ring.mac_keys(id), validator, tip, records).unwrap()
    }

    fn input(&mut self, id: ReplicaId, input: Input) -> Vec<Output> {
        let i = (id - 1) as usize;
        let outputs = self.replicas[i].step(input);
        let n = self.replicas.len() as u32;
        for o in &outputs {
            self.phases[i].extend(o.phases());
            match o {
                Output::Send { to, frame } => self.queue.push_back((id, *to, frame.clone())),
                Output::Broadcast { frame } => {
                    for to in (1..=n).filter(|t| *t != id) {
                        self.queue.push_back((id, to, frame.clone()));
                    }
                }
                Output::Persist(r) => self.records[i].extend(r.iter().cloned()),
                Output::Commit(b) => self.commits[i].push(b.clone()),
                Output::Certified(c) => self.certified[i].push(c.clone()),
                Output::EpochEnded { epoch, last_seq } => self.ended[i].push((*epoch, *last_seq)),
                _ => {}
            }
        }
        outputs
    }

    /// Delivers queued messages until none are left (bounded).
    fn pump(&mut self) {
        for _ in 0..100_000 {
            let Some((_, to, frame)) = self.queue.pop_front() else { return };
            if !self.cut.contains(&to) {
                self.input(to, Input::Message(frame));
            }
        }
        panic!("pump did not quiesce");
    }

    fn submit(&mut self, to: ReplicaId, k: u64) {
        self.input(to, Input::Request(make_envelope(1, k, 8)));
        self.tick_all(2);
    }

    fn tick_all(&mut self, ticks: u32) {
        for _ in 0..ticks {
            for id in 1..=self.replicas.len() as u32 {
                self.input(id, Input::Tick);
            }
            self.pump();
        }
    }

    fn replica(&self, id: ReplicaId) -> &Replica {
        &self.replicas[(id - 1) as usize]
    }

    /// A frame from `from` to `to`, authenticated with `from`'s keys.
    fn frame(&self, from: ReplicaId, to: ReplicaId, body: Body) -> Vec<u8> {
        seal(CHANNEL, 1, from, body, &[to], &self.ring.mac_keys(from), &self.ring.signer(from)).encode()
    }
}

fn dropped(outputs: &[Output]) -> Vec<DropReason> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Dropped { reason } => Some(*reason),
            _ => None,
        })
        .collect()
}

fn batch_of(k: u64) -> Batch {
    Batch { envelopes: vec![make_envelope(1, k, 8)] }
}

#[test]
fn four_replicas_commit_the_same_certified_blocks_in_order() {
    let mut h = Harness::new(4);
    for k in 0..6 {
        h.submit(1 + (k % 4) as u32, k);
    }
    h.tick_all(5);
    for i in 0..4 {
        assert_eq!(h.commits[i].len(), 6, "replica {} committed {:?}", i + 1, h.commits[i].len());
        assert_eq!(h.commits[i], h.commits[0]);
        assert_eq!(h.certified[i].len(), 6);
    }
    for w in h.commits[0].windows(2) {
        assert_eq!(w[1].previous_hash, w[0].header_hash);
    }
    assert_eq!(h.commits[0][0].previous_hash, [7; 32], "block 1 chains to genesis");
}

#[test]
fn watermarks_move_when_a_checkpoint_certificate_forms() {
    // K = 2, L = 4: with one replica cut off the other three still form
    // certificates; the low watermark moves to 2, then 4, then 6.
    let mut h = Harness::new(4);
    h.cut = vec![4];
    let mut lows = vec![];
    for k in 0..6 {
        h.submit(1, k);
        lows.push(h.replica(1).stable_seq());
    }
    assert_eq!(lows, vec![0, 2, 2, 4, 4, 6]);
    assert_eq!(h.replica(4).executed(), 0);
}

#[test]
fn pre_prepare_beyond_the_high_watermark_is_dropped() {
    let mut h = Harness::new(4);
    // window 4 above stable 0: seq 5 is outside.
    let frame = h.frame(1, 2, Body::PrePrepare { view: 0, seq: 5, batch: batch_of(1) });
    let out = h.input(2, Input::Message(frame));
    assert_eq!(dropped(&out), vec![DropReason::OutsideWindow]);
    let frame = h.frame(1, 2, Body::PrePrepare { view: 0, seq: 4, batch: batch_of(1) });
    let out = h.input(2, Input::Message(frame));
    assert!(dropped(&out).is_empty());
    assert!(out.iter().any(|o| matches!(o, Output::Broadcast { .. })), "seq 4 is inside the window: prepare sent");
}

#[test]
fn a_checkpoint_is_not_stable_with_fewer_than_a_quorum_of_shares() {
    // Only replicas 1 and 2 run; 3 and 4 are cut: no prepare quorum, no
    // commit, nothing stable. Then 3 rejoins: a quorum of three commits and
    // certifies, and block 2 becomes the stable checkpoint.
    let mut h = Harness::new(4);
    h.cut = vec![3, 4];
    h.submit(1, 1);
    h.submit(1, 2);
    assert_eq!(h.replica(1).executed(), 0);
    assert_eq!(h.replica(1).stable_seq(), 0);
    h.cut = vec![4];
    // The lost messages are re-sent after the resend interval.
    h.tick_all(60);
    assert_eq!(h.replica(1).executed(), 2);
    assert_eq!(h.replica(1).stable_seq(), 2);
}

#[test]
fn messages_from_another_channel_epoch_or_stranger_are_dropped_before_touching_state() {
    let mut h = Harness::new(4);
    let body = Body::Prepare { view: 0, seq: 1, digest: [1; 32] };
    let ring = h.ring.clone();
    let other_channel = seal("other", 1, 2, body.clone(), &[1], &ring.mac_keys(2), &ring.signer(2)).encode();
    let old_epoch = seal(CHANNEL, 0, 2, body.clone(), &[1], &ring.mac_keys(2), &ring.signer(2)).encode();
    let stranger = seal(CHANNEL, 1, 9, body.clone(), &[1], &ring.mac_keys(2), &ring.signer(2)).encode();
    let mut forged = Frame::decode(&h.frame(2, 1, body.clone()), &Limits::default()).unwrap();
    forged.body = Body::Prepare { view: 0, seq: 1, digest: [2; 32] };
    let cases = [
        (other_channel, DropReason::WrongChannel),
        (old_epoch, DropReason::WrongEpoch),
        (stranger, DropReason::UnknownSender),
        (forged.encode(), DropReason::BadMac),
        (vec![1, 2, 3], DropReason::Malformed),
    ];
    for (bytes, reason) in cases {
        let out = h.input(1, Input::Message(bytes));
        assert_eq!(dropped(&out), vec![reason]);
    }
}

#[test]
fn a_far_future_view_change_from_one_replica_does_not_move_anyone() {
    let mut h = Harness::new(4);
    let vc = ViewChange {
        new_view: 1_000_000,
        checkpoint: Certificate { seq: 0, header_hash: [7; 32], signatures: vec![] },
        prepared: vec![],
        preprepared: vec![],
    };
    let frame = h.frame(4, 1, Body::ViewChange(vc));
    let out = h.input(1, Input::Message(frame));
    assert_eq!(dropped(&out), vec![DropReason::WrongView]);
    assert!(!h.replica(1).is_changing_view());
    assert_eq!(h.replica(1).view(), 0);
}

#[test]
fn f_plus_one_view_changes_make_a_replica_join() {
    let mut h = Harness::new(4);
    let vc = |v| ViewChange {
        new_view: v,
        checkpoint: Certificate { seq: 0, header_hash: [7; 32], signatures: vec![] },
        prepared: vec![],
        preprepared: vec![],
    };
    let f1 = h.frame(3, 1, Body::ViewChange(vc(1)));
    h.input(1, Input::Message(f1));
    assert!(!h.replica(1).is_changing_view(), "one view change is not enough (f = 1)");
    let f2 = h.frame(4, 1, Body::ViewChange(vc(2)));
    let out = h.input(1, Input::Message(f2));
    assert!(h.replica(1).is_changing_view());
    // It joins the smallest view the f+1 want.
    assert!(out.iter().any(|o| matches!(o, Output::ViewChangeStarted { view: 1, reason: ViewChangeReason::Joined })));
}

#[test]
fn a_restarted_backup_never_prepares_a_different_batch_for_the_same_view_and_seq() {
    let mut h = Harness::new(4);
    let first = h.frame(1, 2, Body::PrePrepare { view: 0, seq: 1, batch: batch_of(1) });
    h.input(2, Input::Message(first));
    // Crash and restart replica 2 from what it persisted.
    let records = h.records[1].clone();
    assert!(records.iter().any(|r| matches!(r, Durable::Vote { kind: VoteKind::Prepare, seq: 1, .. })));
    h.replicas[1] = Harness::make(&h.ring, config(2, 4), &records);
    // The (Byzantine) primary now proposes something else for seq 1.
    let second = h.frame(1, 2, Body::PrePrepare { view: 0, seq: 1, batch: batch_of(2) });
    let out = h.input(2, Input::Message(second));
    assert!(!out.iter().any(|o| matches!(o, Output::Broadcast { .. })), "no second prepare: {out:?}");
    assert_eq!(dropped(&out), vec![DropReason::Equivocation]);
}

#[test]
fn a_backup_that_crashed_after_its_commit_vote_still_counts_it_after_restart() {
    // n=4, replica 4 unreachable: 1, 2 and 3 are exactly a quorum, so the
    // slot commits only if the restarted replica 2 counts its own persisted
    // commit vote (the others never re-send theirs to make up for it).
    let mut h = Harness::new(4);
    let d = batch_of(1).digest();
    let pp = h.frame(1, 2, Body::PrePrepare { view: 0, seq: 1, batch: batch_of(1) });
    h.input(2, Input::Message(pp));
    let prepare = h.frame(3, 2, Body::Prepare { view: 0, seq: 1, digest: d });
    h.input(2, Input::Message(prepare));
    let records = h.records[1].clone();
    assert!(records.iter().any(|r| matches!(r, Durable::Vote { kind: VoteKind::Commit, seq: 1, .. })));
    h.replicas[1] = Harness::make(&h.ring, config(2, 4), &records);
    for from in [1, 3] {
        let commit = h.frame(from, 2, Body::Commit { view: 0, seq: 1, digest: d });
        h.input(2, Input::Message(commit));
    }
    assert_eq!(h.commits[1].len(), 1, "the restarted replica executes the slot");
    assert_eq!(h.replica(2).executed(), 1);
}

fn sent_view_change(h: &Harness, id: ReplicaId) -> bool {
    h.records[(id - 1) as usize].iter().any(|r| matches!(r, Durable::ViewChangeSent(_)))
}

#[test]
fn a_primary_whose_proposal_never_commits_at_home_gives_up_its_view() {
    // n=4, every message to the primary is lost: the backups commit its
    // proposal among themselves, the primary never does. The primary is
    // exempt from the silence timer, so only the stalled-proposal timer can
    // make it leave the view and join the others.
    let mut h = Harness::new(4);
    h.cut = vec![1];
    h.submit(1, 7);
    h.tick_all(10);
    for id in 2..=4 {
        assert_eq!(h.commits[(id - 1) as usize].len(), 1, "backup {id} committed");
    }
    assert!(h.commits[0].is_empty());
    assert!(!sent_view_change(&h, 1));
    h.tick_all(300);
    assert!(sent_view_change(&h, 1), "the primary asked for a new view");
}

#[test]
fn a_straggler_in_an_old_view_is_not_kept_quiet_by_its_old_primary_voting_as_a_backup() {
    // Replica 4 missed the move to view 1; replica 1 (primary of view 0)
    // now votes as a backup of view 1. Its prepares are not the view-0
    // primary at work: replica 4 must still find view 0 silent and change.
    let mut h = Harness::new(4);
    let d = batch_of(1).digest();
    // (A replica that just started gives the primary one view-change timeout
    // of grace on top of the heartbeat timeout.)
    for t in 0..800u64 {
        if t % 50 == 0 {
            let prepare = h.frame(1, 4, Body::Prepare { view: 1, seq: 1, digest: d });
            h.input(4, Input::Message(prepare));
        }
        h.input(4, Input::Tick);
    }
    assert!(sent_view_change(&h, 4), "replica 4 suspected the silent view-0 primary");
}

#[test]
fn votes_are_persisted_before_the_message_that_reveals_them() {
    let mut h = Harness::new(4);
    let frame = h.frame(1, 2, Body::PrePrepare { view: 0, seq: 1, batch: batch_of(1) });
    let out = h.input(2, Input::Message(frame));
    let persist = out.iter().position(|o| matches!(o, Output::Persist(r) if !r.is_empty()));
    let send = out.iter().position(|o| matches!(o, Output::Broadcast { .. }));
    assert!(persist.is_some() && send.is_some());
    assert!(persist < send, "persist must come first: {out:?}");
}

#[test]
fn duplicate_prepares_from_one_backup_count_once() {
    // Replica 2 accepts the proposal; replica 3's prepare arrives three
    // times: 2 must not reach prepared (needs primary + 2 distinct backups).
    let mut h = Harness::new(4);
    let pp = h.frame(1, 2, Body::PrePrepare { view: 0, seq: 1, batch: batch_of(1) });
    h.input(2, Input::Message(pp));
    let d = batch_of(1).digest();
    let mut commits = 0;
    for _ in 0..3 {
        // Not a replay of the same bytes only: the same vote re-sealed.
        let p = h.frame(3, 2, Body::Prepare { view: 0, seq: 1, digest: d });
        let out = h.input(2, Input::Message(p));
        commits += out.iter().filter(|o| matches!(o, Output::Broadcast { .. })).count();
    }
    // primary + 2 (itself) + 3 = 3 = quorum: prepared exactly once.
    assert_eq!(commits, 1, "one commit broadcast");
    let out = h.input(2, Input::Message(h.frame(4, 2, Body::Prepare { view: 0, seq: 1, digest: d })));
    assert!(!out.iter().any(|o| matches!(o, Output::Broadcast { .. })), "no second commit");
}

#[test]
fn a_new_view_keeps_the_batch_that_may_have_committed() {
    // Replicas 1..3 prepared batch 5 at seq 1 in view 0 and 1 committed it;
    // then the primary (1) is cut off and 2, 3, 4 change view. The new
    // primary (2) must re-propose batch 5 at seq 1, and everyone commits it.
    let mut h = Harness::new(4);
    h.cut = vec![4];
    h.input(1, Input::Request(make_envelope(1, 5, 8)));
    h.tick_all(2);
    assert_eq!(h.commits[0].len(), 1);
    let committed = h.commits[0][0].clone();
    h.cut = vec![1];
    for id in [2, 3, 4] {
        let out = h.input(id, Input::Tick);
        let _ = out;
    }
    // Time out the silent primary on 2, 3, 4.
    for _ in 0..1100 {
        for id in [2, 3, 4] {
            h.input(id, Input::Tick);
        }
        h.pump();
    }
    for id in [2, 3, 4] {
        assert!(h.replica(id).view() >= 1, "replica {id} changed view");
        let c = &h.commits[(id - 1) as usize];
        assert!(!c.is_empty(), "replica {id} committed seq 1 after the view change");
        assert_eq!(c[0], committed, "replica {id} kept the committed batch");
    }
}

#[test]
fn lying_prepared_claims_in_a_new_view_are_refused() {
    // A new-view whose view changes claim nothing, but from only two
    // senders: below a quorum, refused.
    let mut h = Harness::new(4);
    let mk = |sender: ReplicaId, ring: &std::sync::Arc<Keyring>| {
        let vc = ViewChange {
            new_view: 1,
            checkpoint: Certificate { seq: 0, header_hash: [7; 32], signatures: vec![] },
            prepared: vec![PreparedClaim { seq: 1, view: 0, batch: batch_of(9) }],
            preprepared: vec![PrePreparedClaim { seq: 1, view: 0, digest: batch_of(9).digest() }],
        };
        let body = Body::ViewChange(vc.clone());
        let bytes = Frame::authenticated_bytes(CHANNEL, 1, sender, &body);
        message::SignedViewChange { sender, view_change: vc, signature: ring.signer(sender).sign(&bytes) }
    };
    let ring = h.ring.clone();
    let nv = message::NewView { view: 1, view_changes: vec![mk(2, &ring), mk(3, &ring)] };
    let out = h.input(3, Input::Message(h.frame(2, 3, Body::NewView(nv))));
    assert_eq!(dropped(&out), vec![DropReason::InvalidNewView]);
    // A view change whose signature is not its sender's is refused too.
    let mut forged = mk(4, &ring);
    forged.sender = 3;
    let nv = message::NewView { view: 1, view_changes: vec![mk(2, &ring), forged, mk(1, &ring)] };
    let out = h.input(4, Input::Message(h.frame(2, 4, Body::NewView(nv))));
    assert_eq!(dropped(&out), vec![DropReason::InvalidNewView]);
}

#[test]
fn a_primary_that_never_gets_a_backups_request_is_replaced_once_the_backups_complain() {
    // n=4, primary 1 hears nobody (its heartbeats still go out, so no one
    // sees it silent); a client gives the request to backup 2 only.
    let mut h = Harness::new(4);
    h.cut = vec![1];
    h.submit(2, 7);
    assert_eq!(h.replica(3).pool_len(), 0, "only backup 2 holds the request at first");
    // The forward timeout relays it to every replica, so every backup runs a
    // complain timer; their complaints make a quorum of view changes.
    h.tick_all(2_600);
    for id in 2..=4 {
        assert!(h.replica(id).view() >= 1, "backup {id} changed view");
        assert_eq!(h.commits[(id - 1) as usize].len(), 1, "backup {id} committed the request");
    }
}

#[test]
fn a_backup_relays_a_full_pool_a_batch_at_a_time_oldest_first() {
    // n=4, batches of 3, forward timeout 5 ticks. Ten requests reach backup
    // 2 only and nothing reaches the others (the primary still sends its
    // heartbeats): every tick relays at most one batch of the due requests,
    // oldest first, each once per forward timeout, and never scans past the
    // first request that is not yet due.
    let mut h = Harness::with(4, |c| {
        c.batch_count_max = 3;
        c.forward_timeout_ticks = 5;
    });
    h.cut = vec![1, 3, 4];
    for k in 0..10 {
        h.input(2, Input::Request(make_envelope(1, k, 8)));
    }
    h.queue.clear();
    let relayed = |out: &[Output]| -> Vec<Vec<Vec<u8>>> {
        out.iter()
            .filter_map(|o| match o {
                Output::Broadcast { frame } => match Frame::decode(frame, &Limits::default()).map(|f| f.body) {
                    Ok(Body::Forward { envelopes }) => Some(envelopes),
                    _ => None,
                },
                _ => None,
            })
            .collect()
    };
    let mut seen = Vec::new();
    for tick in 1..=8 {
        let out = h.input(2, Input::Tick);
        h.queue.clear();
        for envelopes in relayed(&out) {
            assert!(tick >= 5, "relayed at tick {tick}, before the forward timeout");
            assert!(envelopes.len() <= 3, "a relay holds at most one batch: {}", envelopes.len());
            seen.extend(envelopes);
        }
    }
    let expected: Vec<Vec<u8>> = (0..10).map(|k| make_envelope(1, k, 8)).collect();
    assert_eq!(seen, expected, "all ten relayed once, oldest first, over four ticks");
    // Within the next forward timeout nothing is relayed again; after it,
    // the oldest go out again first.
    let mut again = Vec::new();
    for _ in 0..5 {
        let out = h.input(2, Input::Tick);
        h.queue.clear();
        again.extend(relayed(&out).into_iter().flatten());
    }
    assert_eq!(again.first(), Some(&expected[0]), "the oldest is relayed again first");
    assert_eq!(h.replica(2).pool_len(), 10);
}

#[test]
fn a_request_whose_forward_to_the_primary_was_lost_is_sent_again_and_ordered_in_the_same_view() {
    let mut h = Harness::new(4);
    h.cut = vec![1];
    h.submit(2, 7);
    h.cut.clear();
    // The forward to the primary was lost; the relay after the forward
    // timeout reaches it (and everyone), well before any complaint.
    h.tick_all(120);
    for id in 1..=4 {
        assert_eq!(h.replica(id).view(), 0, "replica {id} stayed in view 0");
        assert_eq!(h.commits[(id - 1) as usize].len(), 1, "replica {id} committed the request");
    }
}

#[test]
fn requests_waiting_at_backups_reach_the_new_primary_as_soon_as_its_view_is_installed() {
    // The primary has crashed (hears nothing, sends nothing); a request
    // reaches backup 3 only, and its forward to the dead primary is lost.
    let mut h = Harness::with(4, |c| c.forward_timeout_ticks = 1_000);
    h.cut = vec![1];
    h.input(3, Input::Request(make_envelope(1, 9, 8)));
    // Heartbeat timeout plus the start-up grace, and the view change.
    for _ in 0..1_200 {
        for id in 2..=4 {
            h.input(id, Input::Tick);
        }
        h.queue.retain(|(from, _, _)| *from != 1);
        h.pump();
        if h.replica(2).view() >= 1 && !h.replica(2).is_changing_view() {
            break;
        }
    }
    assert_eq!(h.replica(2).view(), 1, "backup 2 became primary");
    // Far less than the forward timeout later, the request is committed.
    for _ in 0..20 {
        for id in 2..=4 {
            h.input(id, Input::Tick);
        }
        h.queue.retain(|(from, _, _)| *from != 1);
        h.pump();
    }
    for id in 2..=4 {
        assert_eq!(h.commits[(id - 1) as usize].len(), 1, "replica {id} committed the waiting request");
    }
}

#[test]
fn a_full_pool_refuses_instead_of_growing() {
    let mut h = Harness::new(4);
    let mut cfg = config(2, 4);
    cfg.pool_max = 2;
    h.replicas[1] = Harness::make(&h.ring, cfg, &[]);
    let mut refused = vec![];
    for k in 0..4 {
        let out = h.input(2, Input::Request(make_envelope(3, k, 8)));
        refused.extend(out.into_iter().filter_map(|o| match o {
            Output::Refused { reason } => Some(reason),
            _ => None,
        }));
    }
    assert_eq!(refused, vec![Refusal::PoolFull, Refusal::PoolFull]);
    assert_eq!(h.replica(2).pool_len(), 2);
}

// ----- phases ----------------------------------------------------------------

#[test]
fn a_normal_case_commit_shows_pre_prepared_then_prepared_then_committed_once_at_every_replica() {
    let mut h = Harness::new(4);
    for k in 0..3 {
        h.submit(1 + k as u32, k);
    }
    h.tick_all(5);
    for i in 0..4 {
        assert_eq!(h.commits[i].len(), 3, "replica {} committed", i + 1);
        for seq in 1..=3 {
            let seen: Vec<Phase> = h.phases[i].iter().filter(|(s, _)| *s == seq).map(|(_, p)| *p).collect();
            assert_eq!(
                seen,
                vec![Phase::PrePrepared, Phase::Prepared, Phase::Committed],
                "replica {} seq {seq}",
                i + 1
            );
        }
    }
}

#[test]
fn a_block_applied_by_state_transfer_shows_only_committed() {
    let mut h = Harness::new(4);
    h.cut = vec![4];
    h.submit(1, 1);
    let blocks = certified_blocks(&h, 0);
    assert_eq!(blocks.len(), 1);
    h.input(4, Input::Blocks(blocks));
    assert_eq!(h.phases[3], vec![(1, Phase::Committed)]);
}

// ----- state transfer: every fetched block is verified ------------------------

/// The blocks replica `i` committed, each with its certificate.
fn certified_blocks(h: &Harness, i: usize) -> Vec<CertifiedBlock> {
    h.commits[i]
        .iter()
        .map(|b| {
            let certificate = h.certified[i].iter().find(|c| c.seq == b.number).expect("certified").clone();
            CertifiedBlock { block: b.clone(), certificate }
        })
        .collect()
}

/// Replicas 1–3 order two blocks while replica 4 is cut off: the blocks
/// (with their certificates) that 4 would fetch.
fn two_fetchable_blocks() -> (Harness, Vec<CertifiedBlock>) {
    let mut h = Harness::new(4);
    h.cut = vec![4];
    h.submit(1, 1);
    h.submit(1, 2);
    let blocks = certified_blocks(&h, 0);
    assert_eq!(blocks.len(), 2);
    assert_eq!(h.replica(4).executed(), 0);
    (h, blocks)
}

/// Feeds `blocks` to a fresh replica 4 (built on `ring`); returns its outputs.
fn fetch_into_fresh_replica(
    h: &mut Harness,
    ring: &std::sync::Arc<Keyring>,
    blocks: Vec<CertifiedBlock>,
) -> Vec<Output> {
    h.replicas[3] = Harness::make(ring, config(4, 4), &[]);
    h.commits[3].clear();
    h.certified[3].clear();
    h.input(4, Input::Blocks(blocks))
}

fn invalid_blocks_dropped(r: &Replica) -> u64 {
    r.stats().dropped.get(&DropReason::InvalidBlocks).copied().unwrap_or(0)
}

/// What a refused state transfer must look like: dropped, counted once,
/// nothing committed or certified, the ledger where it was.
fn assert_refused(h: &Harness, out: &[Output], executed: Seq, what: &str) {
    assert_eq!(dropped(out), vec![DropReason::InvalidBlocks], "{what}: {out:?}");
    assert_eq!(invalid_blocks_dropped(h.replica(4)), 1, "{what}: the drop is counted");
    assert_eq!(h.replica(4).executed(), executed, "{what}");
    assert_eq!(h.commits[3].len() as u64, executed, "{what}: committed only the valid prefix");
    assert_eq!(h.certified[3].len() as u64, executed, "{what}");
}

#[test]
fn state_transfer_refuses_a_tampered_block_and_counts_the_drop() {
    let (mut h, good) = two_fetchable_blocks();
    let ring = h.ring.clone();
    let rehash = |b: &mut Block| b.header_hash = channels::block::header_hash(b.number, &b.previous_hash, &b.data_hash);
    let mut cases: Vec<(&str, Vec<CertifiedBlock>)> = Vec::new();
    let mut envelope_changed = good.clone();
    let last = envelope_changed[0].block.envelopes[0].len() - 1;
    envelope_changed[0].block.envelopes[0][last] ^= 1;
    cases.push(("an envelope changed, the data hash kept", envelope_changed));
    let mut wrong_data_hash = good.clone();
    wrong_data_hash[0].block.data_hash[0] ^= 1;
    rehash(&mut wrong_data_hash[0].block);
    cases.push(("a wrong data hash (header rehashed to match it)", wrong_data_hash));
    let mut unlinked = good.clone();
    unlinked[0].block.previous_hash = [0; 32];
    rehash(&mut unlinked[0].block);
    cases.push(("block 1 not linked to genesis", unlinked));
    cases.push(("block 2 without block 1", good[1..].to_vec()));
    let mut wrong_header = good.clone();
    wrong_header[0].block.header_hash[0] ^= 1;
    cases.push(("a header hash that is not the header's", wrong_header));
    for (what, blocks) in cases {
        let out = fetch_into_fresh_replica(&mut h, &ring, blocks);
        assert_refused(&h, &out, 0, what);
    }
    // A valid block 1 is applied; block 2 linked to something else is not.
    let mut second_unlinked = good.clone();
    second_unlinked[1].block.previous_hash[0] ^= 1;
    rehash(&mut second_unlinked[1].block);
    let out = fetch_into_fresh_replica(&mut h, &ring, second_unlinked);
    assert_refused(&h, &out, 1, "block 2 not linked to block 1");
    // Negative control: the untampered blocks are applied.
    let out = fetch_into_fresh_replica(&mut h, &ring, good.clone());
    assert!(dropped(&out).is_empty(), "{out:?}");
    assert_eq!(h.replica(4).executed(), 2);
    assert_eq!(h.commits[3], good.iter().map(|b| b.block.clone()).collect::<Vec<_>>());
}

#[test]
fn state_transfer_refuses_a_certificate_below_quorum_or_signed_by_a_non_member() {
    let (mut h, good) = two_fetchable_blocks();
    assert_eq!(good[0].certificate.signatures.len(), 3, "a quorum of 4 is 3");
    // Replica 4 verifying with a keyring that also holds a fifth replica's
    // key: that replica's signatures verify, but it is not a member.
    let ring5 = Keyring::new(&[1, 2, 3, 4, 5], 9);
    let cert_bytes = |cb: &CertifiedBlock| {
        channels::block::certificate_signing_bytes(CHANNEL, 1, cb.block.number, &cb.block.header_hash)
    };
    let mut cases: Vec<(&str, Vec<CertifiedBlock>)> = Vec::new();
    let mut below_quorum = good.clone();
    below_quorum[0].certificate.signatures.truncate(2);
    cases.push(("two signatures, a quorum is three", below_quorum));
    let mut non_member = good.clone();
    let signature = ring5.signer(5).sign(&cert_bytes(&non_member[0]));
    non_member[0].certificate.signatures[2] = (5, signature);
    cases.push(("the third signature by a non-member", non_member));
    let mut twice = good.clone();
    let first = twice[0].certificate.signatures[0].clone();
    twice[0].certificate.signatures[2] = first;
    cases.push(("one member counted twice", twice));
    let mut forged = good.clone();
    forged[0].certificate.signatures[1].1[0] ^= 1;
    cases.push(("a member's signature forged", forged));
    let mut other_block = good.clone();
    other_block[0].certificate = good[1].certificate.clone();
    cases.push(("the certificate of another block", other_block));
    for (what, blocks) in cases {
        let out = fetch_into_fresh_replica(&mut h, &ring5, blocks);
        assert_refused(&h, &out, 0, what);
    }
    // Negative control: with their own certificates the blocks are applied
    // by the same replica.
    let out = fetch_into_fresh_replica(&mut h, &ring5, good);
    assert!(dropped(&out).is_empty(), "{out:?}");
    assert_eq!(h.replica(4).executed(), 2);
}

// ----- block cutting: one scenario per rule ------------------------------------

/// Submits envelopes of the given paddings to the primary (replica 1)
/// without letting time pass; returns the refusals.
fn submit_to_primary(h: &mut Harness, paddings: &[usize]) -> Vec<Refusal> {
    let mut refused = Vec::new();
    for (k, padding) in paddings.iter().enumerate() {
        let out = h.input(1, Input::Request(make_envelope(2, k as u64, *padding)));
        refused.extend(out.into_iter().filter_map(|o| match o {
            Output::Refused { reason } => Some(reason),
            _ => None,
        }));
        h.pump();
    }
    refused
}

/// Envelopes per committed block at replica 1.
fn block_sizes(h: &Harness) -> Vec<usize> {
    h.commits[0].iter().map(|b| b.envelopes.len()).collect()
}

const BIG: usize = 1 << 20;

#[test]
fn max_message_count_cuts_a_batch() {
    let mut h = Harness::with(4, |c| {
        c.batch_count_max = 3;
        c.batch_bytes_preferred = BIG;
        c.batch_bytes_max = BIG;
        c.batch_timeout_ticks = 1000;
        c.cut_when_idle = false;
    });
    assert!(submit_to_primary(&mut h, &[8; 7]).is_empty());
    assert_eq!(block_sizes(&h), vec![3, 3], "every third envelope cuts a batch");
    assert_eq!(h.replica(1).pool_len(), 1, "the seventh waits for more or for the timeout");
    for i in 0..4 {
        assert_eq!(h.commits[i], h.commits[0]);
    }
}

#[test]
fn preferred_max_bytes_cuts_a_batch_before_the_count() {
    let size = make_envelope(2, 0, 8).len();
    let mut h = Harness::with(4, |c| {
        c.batch_count_max = 100;
        c.batch_bytes_preferred = 2 * size;
        c.batch_bytes_max = BIG;
        c.batch_timeout_ticks = 1000;
        c.cut_when_idle = false;
    });
    assert!(submit_to_primary(&mut h, &[8; 5]).is_empty());
    assert_eq!(block_sizes(&h), vec![2, 2], "two envelopes reach the preferred bytes");
    assert_eq!(h.replica(1).pool_len(), 1);
}

#[test]
fn absolute_max_bytes_is_never_exceeded() {
    // Preferred bytes above the absolute max: the absolute max still bounds
    // every batch, and an envelope over it is refused at the door.
    let max = 200;
    let mut h = Harness::with(4, |c| {
        c.batch_count_max = 100;
        c.batch_bytes_preferred = 10 * max;
        c.batch_bytes_max = max;
        c.batch_timeout_ticks = 5;
        c.cut_when_idle = false;
    });
    let paddings = [8, 60, 30, 8, 60, 30, 8, 300];
    let refused = submit_to_primary(&mut h, &paddings);
    let oversize = make_envelope(2, 7, 300).len();
    assert_eq!(refused, vec![Refusal::TooLarge { bytes: oversize, max }]);
    h.tick_all(10);
    let bytes: Vec<usize> = h.commits[0].iter().map(|b| b.envelopes.iter().map(Vec::len).sum()).collect();
    assert!(bytes.iter().all(|b| *b <= max), "block bytes {bytes:?} over {max}");
    assert!(bytes.len() > 1, "the max split the envelopes: {bytes:?}");
    assert_eq!(block_sizes(&h).iter().sum::<usize>(), 7, "every admitted envelope is ordered");
    assert_eq!(h.replica(1).pool_len(), 0);
}

#[test]
fn batch_timeout_cuts_a_partial_batch() {
    let mut h = Harness::with(4, |c| {
        c.batch_count_max = 10;
        c.batch_bytes_preferred = BIG;
        c.batch_bytes_max = BIG;
        c.batch_timeout_ticks = 5;
        c.cut_when_idle = false;
    });
    assert!(submit_to_primary(&mut h, &[8; 2]).is_empty());
    h.tick_all(4);
    assert!(h.commits[0].is_empty(), "not full and not timed out yet");
    h.tick_all(1);
    assert_eq!(block_sizes(&h), vec![2], "the timeout cuts the partial batch");
}

#[test]
fn an_idle_primary_cuts_at_once_and_a_busy_one_batches() {
    // Batches of up to 10, a batch timeout of 1,000 ticks. The first
    // request finds nothing in flight and is proposed alone at once; the
    // three that arrive while it is being agreed on wait, and go together
    // as soon as it executes.
    let mut h = Harness::with(4, |c| {
        c.batch_count_max = 10;
        c.batch_bytes_preferred = BIG;
        c.batch_bytes_max = BIG;
        c.batch_timeout_ticks = 1000;
    });
    let proposals =
        |out: &[Output]| out.iter().filter(|o| matches!(o, Output::Send { .. } | Output::Broadcast { .. })).count();
    let first = h.input(1, Input::Request(make_envelope(2, 0, 8)));
    assert!(proposals(&first) > 0, "proposed at once: {first:?}");
    for k in 1..4 {
        let out = h.input(1, Input::Request(make_envelope(2, k, 8)));
        assert_eq!(proposals(&out), 0, "request {k} waits while block 1 is in flight: {out:?}");
    }
    h.pump();
    assert_eq!(block_sizes(&h), vec![1, 3], "the first alone, then the three that waited");
    assert_eq!(h.replica(1).pool_len(), 0);
    // Negative control: with the idle cut off, the same requests wait for
    // the batch timeout.
    let mut h = Harness::with(4, |c| {
        c.batch_count_max = 10;
        c.batch_bytes_preferred = BIG;
        c.batch_bytes_max = BIG;
        c.batch_timeout_ticks = 1000;
        c.cut_when_idle = false;
    });
    assert!(submit_to_primary(&mut h, &[8; 4]).is_empty());
    assert!(block_sizes(&h).is_empty());
}

#[test]
fn a_full_pool_refuses_until_a_committed_batch_drains_it() {
    let mut h = Harness::with(4, |c| {
        c.batch_count_max = 10;
        c.batch_bytes_preferred = BIG;
        c.batch_bytes_max = BIG;
        c.batch_timeout_ticks = 5;
        c.cut_when_idle = false;
        c.pool_max = 3;
    });
    let refused = submit_to_primary(&mut h, &[8; 4]);
    assert_eq!(refused, vec![Refusal::PoolFull], "the fourth does not fit");
    assert_eq!(h.replica(1).pool_len(), 3);
    h.tick_all(6);
    assert_eq!(block_sizes(&h), vec![3]);
    assert_eq!(h.replica(1).pool_len(), 0, "committed envelopes leave the pool");
    let out = h.input(1, Input::Request(make_envelope(2, 3, 8)));
    assert!(out.iter().any(|o| matches!(o, Output::Admitted { .. })), "room again: {out:?}");
}

// ----- epochs ------------------------------------------------------------------

/// n=4, one envelope per batch, checkpoint every 2 blocks: two requests make
/// blocks 1-2, then consenters 1-3 announce keys for epoch 2 (blocks 3-5).
fn two_blocks_then_a_quorum_of_announcements() -> Harness {
    let mut h = Harness::new(4);
    h.submit(1, 1);
    h.submit(1, 2);
    for id in 1..=3 {
        h.input(1, Input::Request(make_announcement(id, 2, [id as u8; 32])));
    }
    h.tick_all(20);
    h
}

#[test]
fn a_quorum_of_announcements_ends_the_epoch_at_the_next_checkpoint_everywhere() {
    // n=4 (quorum 3), one envelope per batch, checkpoint every 2 blocks:
    // requests make blocks 1-2, then three consenters' key announcements for
    // epoch 2 make blocks 3-5 (the quorum is complete at 5). The epoch ends
    // at the first checkpoint at or after it, block 6, which nothing fills:
    // the primary pads with an empty block. Every replica ends epoch 1 at
    // block 6 and orders nothing more.
    let mut h = two_blocks_then_a_quorum_of_announcements();
    for i in 0..4 {
        assert_eq!(h.ended[i], vec![(1, 6)], "replica {} ended epoch 1 at block 6", i + 1);
        assert_eq!(h.commits[i].len(), 6);
        assert!(h.commits[i][2..5].iter().all(|b| b.envelopes.len() == 1 && b.envelopes[0].starts_with(b"ann1")));
        assert!(h.commits[i][5].envelopes.is_empty(), "block 6 pads the epoch to its end");
        assert_eq!(h.certified[i].last().map(|c| c.seq), Some(6), "the last block is certified before the end");
    }
    // A finished replica takes nothing more: requests go to the next epoch.
    let out = h.input(1, Input::Request(make_envelope(1, 9, 8)));
    assert!(matches!(out.as_slice(), [Output::Refused { reason: Refusal::EpochEnded }]), "{out:?}");
}

#[test]
fn fewer_than_a_quorum_of_announcements_do_not_end_the_epoch() {
    let mut h = Harness::new(4);
    for id in 1..=2 {
        h.input(1, Input::Request(make_announcement(id, 2, [id as u8; 32])));
    }
    h.tick_all(20);
    h.submit(1, 1);
    h.submit(1, 2);
    h.tick_all(20);
    for i in 0..4 {
        assert!(h.ended[i].is_empty());
        assert_eq!(h.replica(i as u32 + 1).epoch_end(), None);
    }
}

#[test]
fn an_announcement_for_another_epoch_or_from_a_stranger_is_refused_at_admission() {
    let mut h = Harness::new(4);
    for (consenter, epoch) in [(2, 1), (2, 3), (9, 2)] {
        let out = h.input(1, Input::Request(make_announcement(consenter, epoch, [1; 32])));
        assert!(
            matches!(out.as_slice(), [Output::Refused { reason: Refusal::Invalid(_) }]),
            "consenter {consenter} epoch {epoch}: {out:?}"
        );
    }
}

/// The reconfiguration to configuration 1: consenter 4 replaced by 5.
fn reconfiguration() -> Vec<u8> {
    make_reconfiguration(&SimConfig { sequence: 1, members: vec![(1, 0), (2, 0), (3, 0), (5, 0)] })
}

#[test]
fn a_reconfiguration_is_ordered_alone_and_ends_the_epoch_at_the_next_checkpoint() {
    // n=4, batches of up to 8, checkpoint every 2 blocks. The primary gets
    // two transactions, a reconfiguration, and two more at once: the four
    // transactions make block 1, the reconfiguration block 2 alone, and the
    // epoch ends there (2 is a checkpoint) on every replica.
    let mut h = Harness::with(4, |c| {
        c.batch_count_max = 8;
        c.batch_bytes_preferred = 4096;
        c.cut_when_idle = false;
    });
    for k in 0..2 {
        h.input(1, Input::Request(make_envelope(1, k, 8)));
    }
    let out = h.input(1, Input::Request(reconfiguration()));
    assert!(out.iter().any(|o| matches!(o, Output::Admitted { .. })), "{out:?}");
    for k in 2..4 {
        h.input(1, Input::Request(make_envelope(1, k, 8)));
    }
    h.tick_all(20);
    for i in 0..4 {
        let sizes: Vec<usize> = h.commits[i].iter().map(|b| b.envelopes.len()).collect();
        assert_eq!(sizes, vec![4, 1], "replica {}: transactions, then the reconfiguration alone", i + 1);
        assert_eq!(h.commits[i][1].envelopes[0], reconfiguration());
        assert_eq!(h.ended[i], vec![(1, 2)], "replica {} ended epoch 1 at block 2", i + 1);
    }
}

#[test]
fn a_stale_or_forged_reconfiguration_is_refused_and_ends_nothing() {
    let mut h = Harness::new(4);
    let stale = make_reconfiguration(&SimConfig { sequence: 0, members: vec![(1, 0), (2, 0), (3, 0), (4, 0)] });
    let mut forged = reconfiguration();
    forged[20] ^= 1;
    for bad in [stale, forged] {
        let out = h.input(1, Input::Request(bad));
        assert!(matches!(out.as_slice(), [Output::Refused { reason: Refusal::Invalid(_) }]), "{out:?}");
    }
    h.submit(1, 1);
    h.submit(1, 2);
    h.tick_all(10);
    assert!(h.ended.iter().all(Vec::is_empty));
    assert_eq!(h.replica(2).epoch_end(), None);
}

#[test]
fn a_backup_refuses_a_proposal_that_batches_a_reconfiguration_with_a_transaction() {
    // A Byzantine primary hides a reconfiguration among transactions: the
    // backup refuses the batch and starts a view change.
    let mut h = Harness::new(4);
    let batch = Batch { envelopes: vec![reconfiguration(), make_envelope(1, 1, 8)] };
    let frame = h.frame(1, 2, Body::PrePrepare { view: 0, seq: 1, batch });
    let out = h.input(2, Input::Message(frame));
    assert!(
        out.iter().any(|o| matches!(o, Output::ViewChangeStarted { reason: ViewChangeReason::BadProposal, .. })),
        "{out:?}"
    );
    let two = Batch { envelopes: vec![reconfiguration(), reconfiguration()] };
    let frame = h.frame(1, 3, Body::PrePrepare { view: 0, seq: 1, batch: two });
    let out = h.input(3, Input::Message(frame));
    assert!(
        out.iter().any(|o| matches!(o, Output::ViewChangeStarted { reason: ViewChangeReason::BadProposal, .. })),
        "{out:?}"
    );
}

#[test]
fn a_replica_restarted_after_executing_a_reconfiguration_still_ends_the_epoch_there() {
    let ring = Keyring::new(&[1, 2, 3, 4], 9);
    let mut tip = Tip::genesis([7; 32]);
    tip.executed = 3;
    tip.reconfigured = Some(3);
    let validator = Box::new(SimConfigValidator { config_sequence: 0 });
    let r = Replica::new(config(2, 4), Box::new(ring.signer(2)), ring.mac_keys(2), validator, tip, &[]).unwrap();
    assert_eq!(r.epoch_end(), Some(4), "the first checkpoint at or after block 3");
}

#[test]
fn the_next_epoch_starts_from_the_last_block_without_its_signatures() {
    // The replica of epoch 2 takes block 6 (the end of epoch 1) as its base
    // checkpoint, valid by its header hash alone, and orders block 7 on.
    let h = two_blocks_then_a_quorum_of_announcements();
    let base = h.commits[0][5].clone();
    let ring = h.ring.clone();
    let mut next = Harness::with(4, |c| {
        c.epoch = 2;
        c.epoch_base = 6;
        c.genesis_hash = base.header_hash;
    });
    next.ring = ring;
    for id in 1..=4u32 {
        let mut tip = Tip::genesis(base.header_hash);
        tip.executed = 6;
        tip.stable = Certificate { seq: 6, header_hash: base.header_hash, signatures: vec![] };
        let cfg = Config { epoch: 2, epoch_base: 6, genesis_hash: base.header_hash, ..config(id, 4) };
        next.replicas[(id - 1) as usize] =
            Replica::new(cfg, Box::new(next.ring.signer(id)), next.ring.mac_keys(id), Box::new(SimValidator), tip, &[])
                .unwrap();
    }
    next.submit(1, 9);
    next.tick_all(5);
    for i in 0..4 {
        assert_eq!(next.commits[i].len(), 1);
        assert_eq!(next.commits[i][0].number, 7);
        assert_eq!(next.commits[i][0].previous_hash, base.header_hash);
    }
    // Frames of epoch 1 no longer reach the new replicas' state.
    let stale = h.frame(2, 1, Body::Heartbeat { view: 0, executed: 6 });
    let out = next.input(1, Input::Message(stale));
    assert_eq!(dropped(&out), vec![DropReason::WrongEpoch]);
}

#[test]
fn a_block_whose_certificate_never_formed_is_fetched_through_a_later_certified_one() {
    // Block 1 travels without its certificate (its shares never reached a
    // quorum anywhere), block 2 with a valid one: block 2's header hash fixes
    // block 1 through the chain, so the lagging replica applies both, and
    // signs its own share of block 1 (it never had a certificate to show).
    let (mut h, mut blocks) = two_fetchable_blocks();
    blocks[0].certificate.signatures.clear();
    let ring = h.ring.clone();
    let out = fetch_into_fresh_replica(&mut h, &ring, blocks.clone());
    assert!(dropped(&out).is_empty(), "{out:?}");
    assert_eq!(h.replica(4).executed(), 2);
    assert_eq!(h.certified[3].iter().map(|c| c.seq).collect::<Vec<_>>(), vec![2]);
    let shares: Vec<Seq> = out
        .iter()
        .filter_map(|o| match o {
            Output::Broadcast { frame } => match Frame::decode(frame, &Limits::default()).map(|f| f.body) {
                Ok(Body::BlockSig { seq, .. }) => Some(seq),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert!(shares.contains(&1), "its share of block 1 goes out: {shares:?}");
    // Alone, the uncertified block is not applied: nothing vouches for it.
    let out = fetch_into_fresh_replica(&mut h, &ring, blocks[..1].to_vec());
    assert!(dropped(&out).is_empty(), "{out:?}");
    assert_eq!(h.replica(4).executed(), 0);
}

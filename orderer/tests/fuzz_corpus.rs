//! Replays the kept fuzz corpus (`fuzz/corpus/<target>/*`) through the very
//! functions the cargo-fuzz targets call (`fuzz/src/lib.rs`, compiled in
//! here), so CI checks every corpus input without the fuzzer. See
//! docs/fuzzing.md.
//!
//! `cargo test -p orderer --test fuzz_corpus -- --ignored regenerate`
//! rewrites the fixed test channel (`fuzz/fixtures/`) and the seeds
//! (`fuzz/corpus/<target>/seed-*`), made with the real encoders and keys.

#[allow(dead_code)]
#[path = "../../fuzz/src/lib.rs"]
mod fuzz;

use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("orderer/ is in the repository").to_path_buf()
}

/// Every file of `fuzz/corpus/<target>/`, in name order.
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = repo_root().join("fuzz/corpus").join(target);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "{} is empty", dir.display());
    paths.into_iter().map(|p| (p.clone(), std::fs::read(&p).expect("a corpus file"))).collect()
}

fn replay(target: &str, run: impl Fn(&[u8])) {
    let inputs = corpus(target);
    let bytes: usize = inputs.iter().map(|(_, b)| b.len()).sum();
    for (path, data) in &inputs {
        // A failing input names itself before the panic message.
        eprintln!("fuzz corpus: {}", path.display());
        run(data);
    }
    println!("fuzz corpus {target}: {} inputs, {bytes} bytes replayed", inputs.len());
}

#[test]
fn consensus_frame_corpus() {
    replay("consensus_frame", fuzz::consensus_frame);
}

#[test]
fn durable_corpus() {
    replay("durable", fuzz::durable);
}

#[test]
fn link_frame_corpus() {
    replay("link_frame", fuzz::link_frame);
}

#[test]
fn channel_wire_corpus() {
    replay("channel_wire", fuzz::channel_wire);
}

#[test]
fn envelope_corpus() {
    replay("envelope", fuzz::envelope);
}

#[test]
fn block_corpus() {
    replay("block", fuzz::block);
}

#[test]
fn channel_config_corpus() {
    replay("channel_config", fuzz::channel_config);
}

#[test]
fn api_corpus() {
    replay("api", fuzz::api);
}

#[test]
fn replica_corpus() {
    replay("replica", |d| {
        fuzz::replica(d);
    });
}

/// The seed programs reach the states they are meant to reach (so the
/// fuzzer starts deep): commits, certificates, checkpoints, view changes.
#[test]
fn replica_seed_programs_reach_deep_states() {
    for (name, program, check) in seeds::replica_programs() {
        let p = fuzz::run_program(&program).expect("a program");
        check(&p).unwrap_or_else(|e| panic!("seed {name}: {e}"));
    }
}

/// Regression (found with the `durable` target): a stored pre-prepare vote
/// at the last sequence number made the restart overflow computing the next
/// sequence number to propose.
#[test]
fn a_stored_vote_at_the_last_sequence_number_restores() {
    use orderer::consensus::{Durable, VoteKind};
    let record = Durable::Vote { kind: VoteKind::PrePrepare, view: 0, seq: u64::MAX, digest: [1; 32] }.encode();
    let mut data = (record.len() as u16).to_be_bytes().to_vec();
    data.extend(record);
    fuzz::durable(&data);
}

/// Regression (found with the `replica` target): a new view at or near the
/// largest view number, carrying the signed view changes of a quorum, was
/// installed; the next view change (`view + 1`) or a view change received
/// (`view + 64`) then overflowed. Views above `u64::MAX / 2` are dropped.
#[test]
fn new_views_at_the_end_of_the_view_space_are_dropped() {
    for last in [0xFF, 0xF0] {
        // Replica 2; a new view from its primary with the view changes of
        // replicas 1, 3 and 4; a view change for the next view; 32 ticks.
        let mut program = vec![1u8, 8, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, last, 0x07, 0, 0];
        program.extend([7, 0, 0, 0, 0, 0xF0, 0xF0]);
        let p = fuzz::run_program(&program).expect("a program");
        assert_eq!(p.replica.view(), 0, "the new view was dropped");
    }
}

/// Rewrites `fuzz/fixtures/` and every `fuzz/corpus/<target>/seed-*`.
#[test]
#[ignore = "rewrites fuzz/fixtures and the seeds in fuzz/corpus"]
fn regenerate() {
    // FUZZ_SEED_DIR: write somewhere else (to look before overwriting).
    let dir = std::env::var_os("FUZZ_SEED_DIR").map_or_else(|| repo_root().join("fuzz"), PathBuf::from);
    seeds::regenerate(&dir);
}

mod seeds {
    use std::collections::BTreeMap;
    use std::path::Path;

    use ca_tools::{generate_network, Msp, NetworkConfig};
    use channels::block::{build_block, certify_block, BlockCertificate};
    use channels::envelope::build_envelope;
    use channels::genesis::{config_envelope, genesis_block};
    use channels::proto::common::HeaderType;
    use orderer::consensus::auth::seal;
    use orderer::consensus::message::{
        Auth, Body, NewView, PrePreparedClaim, PreparedClaim, SignedViewChange, ViewChange,
    };
    use orderer::consensus::{Batch, Certificate, CertifiedBlock, Durable, Frame, VoteKind};
    use orderer::net::frame::{encode_control, encode_header};
    use orderer::node::Wire;
    use orderer::sim::identity::make_envelope;
    use prost::Message;

    use super::fuzz;

    const CONSORTIUM: &str = r#"
orgs:
  - name: Org1
    msp_id: Org1MSP
    ca_days: 36500
    days: 36000
    orderers: [{ name: orderer0 }, { name: orderer1 }]
    peers: [{ name: peer0 }]
    admins: [{ name: Admin }]
    clients: [{ name: User1 }]
  - name: Org2
    msp_id: Org2MSP
    key_type: ed25519
    ca_days: 36500
    days: 36000
    orderers: [{ name: orderer2 }, { name: orderer3 }]
    admins: [{ name: Admin }]
    clients: [{ name: User1 }]
"#;
    pub const CHANNEL: &str = "fuzzchannel";

    fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
        let d = dir.join("corpus").join(target);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(format!("seed-{name}")), bytes).unwrap();
    }

    fn clear_seeds(dir: &Path, target: &str) {
        let d = dir.join("corpus").join(target);
        if let Ok(entries) = std::fs::read_dir(&d) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with("seed-") {
                    std::fs::remove_file(e.path()).unwrap();
                }
            }
        }
    }

    type Check = fn(&fuzz::Program) -> Result<(), String>;

    fn need(ok: bool, what: &str) -> Result<(), String> {
        if ok {
            Ok(())
        } else {
            Err(what.to_string())
        }
    }

    /// Instructions of the replica target (see `Program::instruction`).
    mod op {
        /// `n` ticks (1..=16).
        pub fn ticks(n: u8) -> Vec<u8> {
            vec![(n - 1) << 4]
        }
        pub fn request(k: u8) -> Vec<u8> {
            vec![2, k]
        }
        /// A pre-prepare from the primary of the current view at stable + `seq`
        /// with envelopes `ks` (at most 3).
        pub fn preprepare(seq: u8, ks: &[u8]) -> Vec<u8> {
            let mut v = vec![3, 0, 0, seq, ks.len() as u8];
            v.extend_from_slice(ks);
            v
        }
        /// Prepares (4) or commits (5) from all others at stable + `seq`
        /// for known digest `d`.
        pub fn votes(kind: u8, seq: u8, d: u8) -> Vec<u8> {
            vec![kind | 0x10, 0, 0, seq, d]
        }
        /// Block signatures of all others for ledger block `index`.
        pub fn block_sigs(index: u8) -> Vec<u8> {
            vec![0x16, 0, index]
        }
        /// A view change from other `s` for view + 1 with the genesis checkpoint.
        pub fn view_change(s: u8, checkpoint: u8) -> Vec<u8> {
            vec![7, s, 0, checkpoint, 0]
        }
        /// A new view for view + 1 from its primary carrying the view changes
        /// of all others (genesis checkpoint or the replica's own, no claims).
        pub fn new_view(checkpoint: u8) -> Vec<u8> {
            vec![8, 0, 0x07, checkpoint, 0]
        }
        pub fn restart() -> Vec<u8> {
            vec![12]
        }
        /// Blocks for state transfer: `count` next certified blocks with `envs` envelopes each.
        pub fn blocks(count: u8, envs: u8) -> Vec<u8> {
            let mut v = vec![11, count - 1];
            for _ in 0..count {
                v.push(envs << 2);
            }
            v
        }
        pub fn heartbeat(executed: u8) -> Vec<u8> {
            vec![10, 0, 0, executed]
        }
    }

    /// (name, program, what it must reach).
    pub fn replica_programs() -> Vec<(&'static str, Vec<u8>, Check)> {
        let mut out: Vec<(&'static str, Vec<u8>, Check)> = Vec::new();
        // Replica 2, a backup: two blocks through the normal case, certified;
        // block 2 is a checkpoint.
        let mut normal = vec![op::request(1)];
        normal.extend([op::preprepare(1, &[1]), op::votes(4, 1, 1), op::votes(5, 1, 1), op::block_sigs(0)]);
        normal.extend([op::preprepare(2, &[2]), op::votes(4, 2, 2), op::votes(5, 2, 2), op::block_sigs(1)]);
        let normal_flat: Vec<u8> = normal.concat();
        out.push(("backup-commits-two-blocks", fuzz::program(1, &[&normal_flat]), |p| {
            need(p.ledger.len() == 2, "two blocks committed")?;
            need(p.certs.contains_key(&2), "block 2 certified")?;
            need(p.replica.stable_seq() == 2, "checkpoint 2 stable")
        }));
        // Then a view change led by others, a new view, a restart, more blocks.
        let mut vc = normal.clone();
        vc.extend([op::view_change(0, 2), op::view_change(1, 2), op::new_view(2), op::ticks(3)]);
        vc.extend([op::restart(), op::heartbeat(3), op::ticks(16)]);
        let vc_flat: Vec<u8> = vc.concat();
        out.push(("backup-view-change-and-restart", fuzz::program(1, &[&vc_flat]), |p| {
            need(p.ledger.len() >= 2, "blocks committed")?;
            need(p.replica.view() >= 1, "a later view installed")
        }));
        // Replica 1, the primary: it proposes client requests itself.
        let mut primary = vec![op::request(3), op::ticks(1), op::votes(4, 1, 1), op::votes(5, 1, 1), op::block_sigs(0)];
        primary.extend([op::request(4), op::ticks(1), op::votes(4, 2, 2), op::votes(5, 2, 2), op::block_sigs(1)]);
        primary.push(op::ticks(16));
        let primary_flat: Vec<u8> = primary.concat();
        out.push(("primary-proposes", fuzz::program(0, &[&primary_flat]), |p| {
            need(!p.ledger.is_empty(), "the primary's proposal committed")
        }));
        // Replica 3 catches up by state transfer, then sits through timeouts.
        let catch_up =
            [op::heartbeat(5), op::ticks(8), op::blocks(3, 1), op::blocks(2, 2), op::ticks(16), op::ticks(16)];
        let catch_up_flat: Vec<u8> = catch_up.concat();
        out.push(("state-transfer", fuzz::program(2, &[&catch_up_flat]), |p| {
            need(p.ledger.len() == 5, "five blocks applied by state transfer")?;
            need(p.replica.stable_seq() == 4, "checkpoint 4 stable")
        }));
        // Replica 4: silent primary, its own view change times out, it joins others.
        let silent = [op::request(5), op::ticks(16), op::ticks(16), op::view_change(0, 0), op::view_change(1, 0)];
        let silent_flat: Vec<u8> = silent.concat();
        out.push(("silent-primary", fuzz::program(3, &[&silent_flat]), |p| {
            need(p.replica.is_changing_view() || p.replica.view() >= 1, "a view change")
        }));
        out
    }

    pub fn regenerate(dir: &Path) {
        let pki = tempfile::tempdir().unwrap();
        let summary = generate_network(&NetworkConfig::from_yaml(CONSORTIUM).unwrap(), pki.path(), false).unwrap();
        let mut config =
            channels::config_from_network(CHANNEL, &summary, |i, _| ("127.0.0.1".to_string(), 7050 + i as u16))
                .unwrap();
        for c in &mut config.consenters {
            let secret = x25519_dalek::StaticSecret::from([c.id as u8; 32]);
            c.mac_public_key = x25519_dalek::PublicKey::from(&secret).as_bytes().to_vec();
        }
        config.validate().unwrap();
        let now = ca_tools::now_unix() + 60;
        let genesis = genesis_block(&config);
        let fixtures = dir.join("fixtures");
        std::fs::create_dir_all(&fixtures).unwrap();
        std::fs::write(fixtures.join("genesis.block"), genesis.encode_to_vec()).unwrap();
        std::fs::write(fixtures.join("now.txt"), format!("{now}\n")).unwrap();
        let client_tls = std::fs::read(pki.path().join("Org1/users/User1/tls/client.crt")).unwrap();
        std::fs::write(fixtures.join("client-tls.der"), ca_tools::pemutil::cert_der(&client_tls).unwrap()).unwrap();

        for target in [
            "consensus_frame",
            "durable",
            "link_frame",
            "channel_wire",
            "envelope",
            "block",
            "channel_config",
            "api",
            "replica",
        ] {
            clear_seeds(dir, target);
        }
        let msp = |org: &str, kind: &str, name: &str| {
            Msp::load(None, &pki.path().join(format!("{org}/{kind}/{name}/msp"))).unwrap()
        };

        // Envelopes: every creator kind and header type, and near misses.
        let client = msp("Org1", "users", "User1");
        let ed_client = msp("Org2", "users", "User1");
        let env = |m: &Msp, ch: &str, t: HeaderType, nonce: &[u8]| {
            build_envelope(ch, m, b"payload data", t, now, nonce).unwrap().encode_to_vec()
        };
        let good = env(&client, CHANNEL, HeaderType::EndorserTransaction, b"nonce-1");
        let envelopes = vec![
            ("client-endorser", good.clone()),
            ("client-message", env(&client, CHANNEL, HeaderType::Message, b"nonce-2")),
            ("ed25519-client", env(&ed_client, CHANNEL, HeaderType::EndorserTransaction, b"nonce-3")),
            ("admin-config-update", env(&msp("Org1", "users", "Admin"), CHANNEL, HeaderType::ConfigUpdate, b"n4")),
            ("peer", env(&msp("Org1", "peers", "peer0"), CHANNEL, HeaderType::EndorserTransaction, b"n5")),
            ("orderer-refused-role", env(&msp("Org2", "orderers", "orderer2"), CHANNEL, HeaderType::Message, b"n6")),
            (
                "orderer-config-update",
                env(&msp("Org1", "orderers", "orderer0"), CHANNEL, HeaderType::ConfigUpdate, b"n7"),
            ),
            ("wrong-channel", env(&client, "otherchannel", HeaderType::EndorserTransaction, b"nonce-8")),
            ("genesis-config", config_envelope(&config).encode_to_vec()),
        ];
        for (name, e) in &envelopes {
            write(dir, "envelope", name, e);
        }

        // Blocks: genesis, certified blocks 1 and 2, a deliver stream.
        let keys: Vec<(u32, Msp)> = [("Org1", "orderer0"), ("Org1", "orderer1"), ("Org2", "orderer2")]
            .iter()
            .enumerate()
            .map(|(i, (org, name))| (i as u32 + 1, msp(org, "orderers", name)))
            .collect();
        let signers: Vec<(u32, &ca_tools::SigningKey)> = keys.iter().map(|(id, m)| (*id, &m.key)).collect();
        let mut b1 = build_block(1, &genesis.header.as_ref().unwrap().hash(), vec![good.clone()]);
        certify_block(&mut b1, CHANNEL, 1, &signers).unwrap();
        let mut b2 =
            build_block(2, &b1.header.as_ref().unwrap().hash(), vec![envelopes[1].1.clone(), envelopes[2].1.clone()]);
        certify_block(&mut b2, CHANNEL, 1, &signers[..2]).unwrap();
        write(dir, "block", "genesis", &genesis.encode_to_vec());
        write(dir, "block", "certified-1", &b1.encode_to_vec());
        write(dir, "block", "under-quorum-2", &b2.encode_to_vec());
        write(dir, "block", "certificate-metadata", &BlockCertificate::from_block(&b1).unwrap().to_metadata());
        let mut stream = Vec::new();
        for b in [&genesis, &b1] {
            let bytes = b.encode_to_vec();
            stream.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            stream.extend_from_slice(&bytes);
        }
        write(dir, "block", "deliver-stream", &stream);

        // Channel configuration: canonical bytes, genesis blocks.
        let mut canonical = vec![0];
        canonical.extend(config.to_canonical_bytes());
        write(dir, "channel_config", "canonical", &canonical);
        let mut gen = vec![1];
        gen.extend(genesis.encode_to_vec());
        write(dir, "channel_config", "genesis", &gen);
        let mut small = config.clone();
        small.consenters.truncate(3);
        small.orgs.truncate(1);
        let mut invalid = vec![2];
        invalid.extend(small.to_canonical_bytes());
        write(dir, "channel_config", "too-few-consenters", &invalid);

        // The peer API: raw HTTP/1.1 requests.
        let host = "Host: 127.0.0.1\r\n";
        let post = |path: &str, body: &[u8], extra: &str| {
            let mut r =
                format!("POST {path} HTTP/1.1\r\n{host}{extra}Content-Length: {}\r\n\r\n", body.len()).into_bytes();
            r.extend_from_slice(body);
            r
        };
        let get = |path: &str| format!("GET {path} HTTP/1.1\r\n{host}\r\n").into_bytes();
        let base = format!("/v1/channels/{CHANNEL}");
        let api: Vec<(&str, Vec<u8>)> = vec![
            ("submit", post(&format!("{base}/envelopes"), &good, "")),
            ("submit-wait", post(&format!("{base}/envelopes?wait=commit"), &envelopes[2].1, "")),
            (
                "submit-bad",
                post(&format!("{base}/envelopes"), b"\x0a\x03abc", "Content-Type: application/octet-stream\r\n"),
            ),
            ("submit-unknown-channel", post("/v1/channels/nochannel/envelopes", &good, "")),
            ("submit-chunked", {
                let mut r =
                    format!("POST {base}/envelopes HTTP/1.1\r\n{host}Transfer-Encoding: chunked\r\n\r\n").into_bytes();
                r.extend(format!("{:x}\r\n", good.len()).as_bytes());
                r.extend_from_slice(&good);
                r.extend_from_slice(b"\r\n0\r\n\r\n");
                r
            }),
            ("block-oldest", get(&format!("{base}/blocks/oldest"))),
            ("block-newest-json", get(&format!("{base}/blocks/newest?format=json"))),
            ("block-number", get(&format!("{base}/blocks/18446744073709551615"))),
            ("block-bad-spec", get(&format!("{base}/blocks/-1"))),
            ("deliver", get(&format!("{base}/deliver?start=oldest&stop=0"))),
            ("deliver-never", get(&format!("{base}/deliver?start=newest&stop=never"))),
            ("deliver-bad", get(&format!("{base}/deliver?start=5&stop=1"))),
            ("pipelined", [get(&format!("{base}/blocks/0")), get(&format!("{base}/deliver"))].concat()),
        ];
        for (name, r) in &api {
            write(dir, "api", name, r);
        }

        // Consensus frames, every body kind, MAC'd and signed, from a sim replica.
        let ring = fuzz::ring();
        let batch = Batch { envelopes: vec![make_envelope(1, 1, 8), make_envelope(1, 2, 8)] };
        let cert = Certificate { seq: 2, header_hash: [3; 32], signatures: vec![(1, vec![9; 32]), (3, vec![8; 32])] };
        let vc = ViewChange {
            new_view: 2,
            checkpoint: cert.clone(),
            prepared: vec![PreparedClaim { seq: 3, view: 1, batch: batch.clone() }],
            preprepared: vec![PrePreparedClaim { seq: 3, view: 1, digest: batch.digest() }],
        };
        let svc = SignedViewChange { sender: 3, view_change: vc.clone(), signature: vec![1; 32] };
        let bodies = vec![
            ("preprepare", Body::PrePrepare { view: 1, seq: 3, batch: batch.clone() }),
            ("prepare", Body::Prepare { view: 1, seq: 3, digest: batch.digest() }),
            ("commit", Body::Commit { view: 1, seq: 3, digest: batch.digest() }),
            ("blocksig", Body::BlockSig { seq: 3, header_hash: [2; 32], signature: vec![7; 32] }),
            ("viewchange", Body::ViewChange(vc.clone())),
            ("newview", Body::NewView(NewView { view: 2, view_changes: vec![svc.clone()] })),
            ("forward", Body::Forward { envelopes: batch.envelopes.clone() }),
            ("heartbeat", Body::Heartbeat { view: 1, executed: 4 }),
        ];
        for (name, body) in &bodies {
            let frame =
                seal(fuzz::CHANNEL, fuzz::EPOCH, 1, body.clone(), &[2, 3, 4], &ring.mac_keys(1), &ring.signer(1));
            write(dir, "consensus_frame", name, &frame.encode());
            let signed = Frame { auth: Auth::Signature(vec![4; 32]), ..frame.clone() };
            write(dir, "consensus_frame", &format!("{name}-signed"), &signed.encode());
            write(dir, "channel_wire", &format!("consensus-{name}"), &Wire::Consensus(frame.encode()).encode());
        }

        // A deep replica run gives real records, blocks and certificates.
        let programs = replica_programs();
        for (name, program, check) in &programs {
            let p = fuzz::run_program(program).unwrap();
            check(&p).unwrap_or_else(|e| panic!("seed {name}: {e}"));
            write(dir, "replica", name, program);
        }
        let deep = fuzz::run_program(&programs[1].1).unwrap();
        let certs: BTreeMap<_, _> = deep.certs.clone();
        let mut records = Vec::new();
        for (i, r) in deep.store.iter().enumerate() {
            let bytes = r.encode();
            write(dir, "durable", &format!("record-{i:02}"), &bytes);
            records.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
            records.extend_from_slice(&bytes);
        }
        for r in [
            Durable::View { view: 3, changing: true },
            Durable::Vote { kind: VoteKind::Commit, view: 0, seq: 1, digest: [5; 32] },
            Durable::Batch { seq: 3, batch: batch.clone() },
            Durable::ViewChangeSent(svc.clone()),
            Durable::NewViewSent(NewView { view: 2, view_changes: vec![svc] }),
            Durable::Stable(cert),
        ] {
            let bytes = r.encode();
            records.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
            records.extend_from_slice(&bytes);
        }
        write(dir, "durable", "restart-records", &records);
        let fetched: Vec<CertifiedBlock> = deep
            .ledger
            .iter()
            .filter_map(|b| certs.get(&b.number).map(|c| CertifiedBlock { block: b.clone(), certificate: c.clone() }))
            .collect();
        for b in &fetched {
            write(dir, "durable", &format!("block-{}", b.block.number), &b.block.encode());
            write(dir, "durable", &format!("certificate-{}", b.block.number), &b.certificate.to_bytes());
        }
        write(dir, "channel_wire", "fetch-request", &Wire::FetchRequest { from: 1, to: 64 }.encode());
        write(dir, "channel_wire", "fetch-response", &Wire::FetchResponse(fetched).encode());

        // Cluster link frames: the first byte picks the size limit.
        let mut links = vec![0u8];
        for f in &deep.frames {
            let mut w = encode_header(fuzz::CHANNEL, f.len(), 256 + 8 * 255).unwrap();
            w.extend_from_slice(f);
            if links.len() + w.len() < 4096 {
                links.extend(w);
            }
        }
        links.extend(encode_control(false, 7));
        links.extend(encode_control(true, u64::MAX));
        write(dir, "link_frame", "frames-and-pings", &links);
        let mut one = vec![255u8];
        one.extend(encode_header(&"c".repeat(249), 3, 256 + 8 * 255).unwrap());
        one.extend(b"abc");
        write(dir, "link_frame", "longest-channel-name", &one);
    }
}

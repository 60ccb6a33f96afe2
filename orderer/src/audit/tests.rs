//! Format and verifier: every kind of tampering is reported, conflicting
//! signed statements become evidence that checks alone, honest logs are
//! never accused.

use std::collections::BTreeMap;
use std::io::BufReader;

use ca_tools::{KeyType, PublicKey, SigningKey};

use super::evidence::{check_evidence, EvidenceFile, Statement};
use super::format::{read_export, write_export, Header, LogFile, FORMAT, VERSION};
use super::record::{Entry, LogWriter, Record};
use super::verify::{verify, BlockVotes, Keys};
use crate::consensus::{Crypto, Digest, ReplicaId, SignedShare};

const CH: &str = "auditch";

struct Signer(SigningKey);

impl Crypto for Signer {
    fn sign(&self, m: &[u8]) -> Vec<u8> {
        self.0.sign(m).unwrap()
    }
    fn verify(&self, _: ReplicaId, _: &[u8], _: &[u8]) -> bool {
        false
    }
}

/// Four consenters with fresh Ed25519 keys (made at test time).
struct Net {
    signers: BTreeMap<ReplicaId, Signer>,
    keys: BTreeMap<ReplicaId, PublicKey>,
}

impl Net {
    fn new() -> Self {
        let mut signers = BTreeMap::new();
        let mut keys = BTreeMap::new();
        for id in 1..=4 {
            let k = SigningKey::generate(KeyType::Ed25519).unwrap();
            keys.insert(id, k.public_key());
            signers.insert(id, Signer(k));
        }
        Net { signers, keys }
    }
}

impl Keys for Net {
    fn knows(&self, channel: &str, c: ReplicaId) -> bool {
        channel == CH && self.keys.contains_key(&c)
    }
    fn verify(&self, channel: &str, c: ReplicaId, m: &[u8], s: &[u8]) -> bool {
        channel == CH && self.keys.get(&c).is_some_and(|k| k.verify(m, s).is_ok())
    }
    fn quorum(&self, _: &str) -> usize {
        3
    }
    fn check_certificate(&self, _: &str, c: ReplicaId, pem: &str) -> Result<(), String> {
        if pem == format!("cert-{c}") {
            Ok(())
        } else {
            Err("not the pinned certificate".into())
        }
    }
    fn certificate(&self, _: &str, c: ReplicaId) -> String {
        format!("cert-{c}")
    }
}

fn hash(seq: u64, variant: u8) -> Digest {
    let mut h = [variant; 32];
    h[..8].copy_from_slice(&seq.to_be_bytes());
    h
}

/// An honest log of consenter `id`: blocks 1..=blocks, a view change after
/// block 5, and `extra` records appended at the end.
fn log(net: &Net, id: ReplicaId, blocks: u64, extra: Vec<Entry>) -> Vec<Record> {
    let mut w = LogWriter::resume(CH, id, None);
    let s = &net.signers[&id];
    let mut out = vec![];
    for seq in 1..=blocks {
        out.push(w.append(Entry::Block { epoch: 0, view: 0, seq, header_hash: hash(seq, 0) }, s));
        if seq == 5 {
            out.push(w.append(Entry::ViewChange { epoch: 0, view: 1, height: 5, digest: [7; 32] }, s));
        }
    }
    for e in extra {
        out.push(w.append(e, s));
    }
    out
}

fn export_text(net: &Net, id: ReplicaId, records: &[Record]) -> String {
    let header = Header {
        format: FORMAT.into(),
        version: VERSION,
        channel: CH.into(),
        consenter: id,
        certificate: format!("cert-{id}"),
        first_index: records.first().map_or(0, |r| r.index),
        records: records.len() as u64,
    };
    let head = records.last().map_or([0; 32], Record::hash);
    let mut out = Vec::new();
    write_export(&mut out, &header, records, records.len() as u64, &head, Some(&net.signers[&id])).unwrap();
    String::from_utf8(out).unwrap()
}

fn parse(text: &str) -> LogFile {
    read_export("test", &mut BufReader::new(text.as_bytes())).unwrap()
}

fn edit_lines(text: &str, f: impl FnOnce(&mut Vec<String>)) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    f(&mut lines);
    lines.join("\n") + "\n"
}

fn honest_exports(net: &Net) -> Vec<String> {
    (1..=4).map(|id| export_text(net, id, &log(net, id, 12, vec![]))).collect()
}

fn certificates(net: &Net, blocks: u64) -> Vec<BlockVotes> {
    (1..=blocks)
        .map(|seq| {
            let bytes = channels::block::certificate_signing_bytes(CH, 0, seq, &hash(seq, 0));
            BlockVotes {
                source: "blocks".into(),
                channel: CH.into(),
                number: seq,
                header_hash: hash(seq, 0),
                epoch: 0,
                shares: (1..=3).map(|id| (id, net.signers[&id].sign(&bytes))).collect(),
            }
        })
        .collect()
}

#[test]
fn records_round_trip_through_storage_bytes_and_json_lines() {
    let net = Net::new();
    let share = SignedShare { signer: 3, epoch: 2, seq: 9, header_hash: [5; 32], signature: vec![1, 2, 3] };
    let records = log(&net, 1, 6, vec![Entry::Observed(share)]);
    for r in &records {
        assert_eq!(&Record::decode(&r.encode()).unwrap(), r);
    }
    let file = parse(&export_text(&net, 1, &records));
    let back: Vec<Record> = file.records.into_iter().map(|(_, r)| r).collect();
    assert_eq!(back, records);
    assert!(file.bad_lines.is_empty() && file.end.is_some());
    assert!(Record::decode(&[1, 2, 3]).is_err(), "garbage is refused");
}

#[test]
fn honest_logs_and_their_blocks_verify_clean() {
    let net = Net::new();
    let logs: Vec<LogFile> = honest_exports(&net).iter().map(|t| parse(t)).collect();
    let report = verify(&net, &logs, &certificates(&net, 12));
    assert!(report.clean(), "{}", report.text());
    assert_eq!(report.blocks_with_logged_quorum, 12);
    assert!(report.consenters.iter().all(|c| c.blocks_voted == 12 && c.view_changes == 1));
}

fn problems_of(net: &Net, text: &str) -> Vec<String> {
    let report = verify(net, &[parse(text)], &[]);
    let c = &report.consenters[0];
    let mut all = c.problems.clone();
    all.extend(c.gaps.iter().map(|g| format!("gap {}..={}", g.first_missing, g.last_missing)));
    all
}

#[test]
fn a_tampered_record_is_reported() {
    let net = Net::new();
    let text = &honest_exports(&net)[0];
    // Record 2 (line 4, block 3) claims another header hash.
    let tampered = edit_lines(text, |l| l[3] = l[3].replace(&hex::encode(hash(3, 0)), &hex::encode(hash(3, 9))));
    assert_ne!(&tampered, text);
    let p = problems_of(&net, &tampered);
    assert!(p.iter().any(|x| x.contains("record 2") && x.contains("invalid signature")), "{p:?}");
    assert!(p.iter().any(|x| x.contains("record 3") && x.contains("does not chain")), "{p:?}");
}

#[test]
fn a_removed_record_is_reported() {
    let net = Net::new();
    let text = &honest_exports(&net)[0];
    let removed = edit_lines(text, |l| {
        l.remove(5);
    });
    let p = problems_of(&net, &removed);
    assert!(p.iter().any(|x| x == "gap 4..=4"), "{p:?}");
    assert!(p.iter().any(|x| x.contains("records removed or the file truncated")), "{p:?}");
}

#[test]
fn a_forged_signature_is_reported() {
    let net = Net::new();
    let text = &honest_exports(&net)[0];
    // Record 2 re-signed by consenter 2's key: a valid signature, not 1's.
    let records = log(&net, 1, 12, vec![]);
    let mut forged = records[2].clone();
    forged.signature = net.signers[&2].sign(&forged.signing_bytes());
    let line = super::format::json_line(&super::format::RecordLine::from_record(&forged));
    let text = edit_lines(text, |l| l[3] = line);
    let p = problems_of(&net, &text);
    assert!(p.iter().any(|x| x.contains("record 2") && x.contains("invalid signature")), "{p:?}");
}

#[test]
fn reordered_records_are_reported() {
    let net = Net::new();
    let text = &honest_exports(&net)[0];
    let swapped = edit_lines(text, |l| l.swap(3, 4));
    let p = problems_of(&net, &swapped);
    assert!(p.iter().any(|x| x.contains("reordered")), "{p:?}");
}

#[test]
fn a_truncated_export_is_reported() {
    let net = Net::new();
    let text = &honest_exports(&net)[0];
    // The end line and the last two records cut off.
    let cut = edit_lines(text, |l| l.truncate(l.len() - 3));
    let p = problems_of(&net, &cut);
    assert!(p.iter().any(|x| x.contains("no end line")), "{p:?}");
    // The last records removed, the signed end line kept.
    let dropped = edit_lines(text, |l| {
        l.remove(l.len() - 2);
    });
    let p = problems_of(&net, &dropped);
    assert!(p.iter().any(|x| x.contains("records removed or the file truncated")), "{p:?}");
    // The header edited to hide it: the end line's signature breaks.
    let n = log(&net, 1, 12, vec![]).len();
    let hidden =
        edit_lines(&dropped, |l| l[0] = l[0].replace(&format!("\"records\":{n}"), &format!("\"records\":{}", n - 1)));
    let p = problems_of(&net, &hidden);
    assert!(p.iter().any(|x| x.contains("end line's signature is invalid")), "{p:?}");
}

#[test]
fn an_altered_line_that_is_no_record_is_reported() {
    let net = Net::new();
    let text = &honest_exports(&net)[0];
    let broken = edit_lines(text, |l| l[2] = "{\"index\": \"x\"}".into());
    let p = problems_of(&net, &broken);
    assert!(p.iter().any(|x| x.contains("line 3 is not a valid record")), "{p:?}");
}

#[test]
fn a_field_of_another_kind_added_to_a_record_is_reported() {
    let net = Net::new();
    let text = &honest_exports(&net)[0];
    // Record 5 is the view change: a header hash added to it is not signed.
    let added = edit_lines(text, |l| {
        assert!(l[6].contains("view-change"));
        l[6] = l[6].replacen('{', &format!("{{\"header_hash\":\"{}\",", "ff".repeat(32)), 1);
    });
    let p = problems_of(&net, &added);
    assert!(p.iter().any(|x| x.contains("line 7") && x.contains("does not belong")), "{p:?}");
}

#[test]
fn a_header_certificate_other_than_the_pinned_one_is_reported() {
    let net = Net::new();
    let text = &honest_exports(&net)[0];
    let other = edit_lines(text, |l| l[0] = l[0].replace("cert-1", "cert-9"));
    let p = problems_of(&net, &other);
    assert!(p.iter().any(|x| x.contains("header certificate")), "{p:?}");
}

/// Consenter 4 signs block 7 with header `hash(7, 0)` (its own log, the
/// truth) and sends consenter 2 a share for `hash(7, 1)`; consenter 2 logs
/// it as observed.
fn equivocation(net: &Net) -> Vec<LogFile> {
    let bytes = channels::block::certificate_signing_bytes(CH, 0, 7, &hash(7, 1));
    let lie =
        SignedShare { signer: 4, epoch: 0, seq: 7, header_hash: hash(7, 1), signature: net.signers[&4].sign(&bytes) };
    (1..=4)
        .map(|id| {
            let extra = if id == 2 { vec![Entry::Observed(lie.clone())] } else { vec![] };
            parse(&export_text(net, id, &log(net, id, 12, extra)))
        })
        .collect()
}

#[test]
fn conflicting_shares_become_evidence_that_checks_alone() {
    let net = Net::new();
    let report = verify(&net, &equivocation(&net), &[]);
    assert_eq!(report.evidence.len(), 1, "{}", report.text());
    let e = &report.evidence[0];
    assert_eq!((e.consenter, e.seq, e.kind.as_str()), (4, Some(7), "block"));
    assert_eq!(report.accused().len(), 1, "only the equivocator is accused");
    // Through its file form.
    let text = serde_json::to_string_pretty(e).unwrap();
    let back: EvidenceFile = serde_json::from_str(&text).unwrap();
    let verdict = check_evidence(&back, &net).unwrap();
    assert!(verdict.contains("consenter 4 signed two different blocks at height 7"), "{verdict}");
}

#[test]
fn evidence_that_proves_nothing_is_refused() {
    let net = Net::new();
    let report = verify(&net, &equivocation(&net), &[]);
    let e = report.evidence[0].clone();
    // Both statements the same.
    let mut same = e.clone();
    same.statements[1] = same.statements[0].clone();
    assert!(check_evidence(&same, &net).unwrap_err().contains("same value"));
    // A statement altered (another hash: its signature no longer verifies).
    let mut altered = e.clone();
    if let Statement::CertificateShare { header_hash, .. } = &mut altered.statements[1] {
        *header_hash = hex::encode(hash(7, 2));
    } else if let Statement::CertificateShare { header_hash, .. } = &mut altered.statements[0] {
        *header_hash = hex::encode(hash(7, 2));
    }
    assert!(check_evidence(&altered, &net).unwrap_err().contains("does not verify"));
    // Blamed on an innocent consenter.
    let mut innocent = e.clone();
    innocent.consenter = 3;
    innocent.certificate = "cert-3".into();
    assert!(check_evidence(&innocent, &net).is_err());
    // Statements about two different heights.
    let mut apart = e;
    let other = certificates(&net, 8).pop().unwrap();
    apart.statements[0] = Statement::share(
        CH,
        4,
        0,
        8,
        &other.header_hash,
        &net.signers[&4].sign(&channels::block::certificate_signing_bytes(CH, 0, 8, &other.header_hash)),
        "x",
    );
    assert!(check_evidence(&apart, &net).is_err());
}

#[test]
fn a_block_certificate_against_a_log_is_evidence() {
    let net = Net::new();
    // Consenter 3's log claims another header at block 4 than the one its
    // share in block 4's certificate signs (a log re-written after the fact).
    let mut w = LogWriter::resume(CH, 3, None);
    let s = &net.signers[&3];
    let mut records = vec![];
    for seq in 1..=6 {
        let v = if seq == 4 { 1 } else { 0 };
        records.push(w.append(Entry::Block { epoch: 0, view: 0, seq, header_hash: hash(seq, v) }, s));
    }
    let logs = vec![parse(&export_text(&net, 3, &records))];
    let report = verify(&net, &logs, &certificates(&net, 6));
    assert_eq!(report.evidence.len(), 1, "{}", report.text());
    assert_eq!(report.evidence[0].consenter, 3);
    assert!(check_evidence(&report.evidence[0], &net).is_ok());
}

#[test]
fn a_share_in_a_certificate_without_its_log_record_is_reported() {
    let net = Net::new();
    let mut records = log(&net, 2, 8, vec![]);
    // The record of block 6 dropped and the log re-chained and re-signed by
    // its owner (a consenter hiding a vote): signatures and links are fine.
    records.retain(|r| !matches!(r.entry, Entry::Block { seq: 6, .. }));
    let mut w = LogWriter::resume(CH, 2, None);
    let rewritten: Vec<Record> = records.into_iter().map(|r| w.append(r.entry, &net.signers[&2])).collect();
    let logs = vec![parse(&export_text(&net, 2, &rewritten))];
    let report = verify(&net, &logs, &certificates(&net, 8));
    let c = &report.consenters[0];
    assert!(
        c.problems.iter().any(|p| p.contains("certificate of block 6") && p.contains("no record")),
        "{:?}",
        c.problems
    );
}

#[test]
fn view_change_equivocation_is_found() {
    let net = Net::new();
    let mut a = log(&net, 1, 3, vec![]);
    let mut w = LogWriter::resume(CH, 1, a.last());
    a.push(w.append(Entry::ViewChange { epoch: 0, view: 1, height: 3, digest: [8; 32] }, &net.signers[&1]));
    let b = log(&net, 1, 6, vec![]); // a second log of consenter 1 (view 1, digest [7; 32])
    let logs = vec![parse(&export_text(&net, 1, &a)), parse(&export_text(&net, 1, &b))];
    let report = verify(&net, &logs, &[]);
    let vc: Vec<&EvidenceFile> = report.evidence.iter().filter(|e| e.kind == "view-change").collect();
    assert_eq!(vc.len(), 1, "{}", report.text());
    assert!(check_evidence(vc[0], &net).is_ok());
}

#[test]
fn a_rolled_back_log_is_reported() {
    let net = Net::new();
    let old = log(&net, 1, 8, vec![]);
    // Restored from a copy taken at block 4, then went on differently.
    let mut w = LogWriter::resume(CH, 1, Some(&old[3]));
    let mut new = old[..4].to_vec();
    new.push(w.append(Entry::ViewChange { epoch: 0, view: 2, height: 4, digest: [3; 32] }, &net.signers[&1]));
    let logs = vec![parse(&export_text(&net, 1, &old)), parse(&export_text(&net, 1, &new))];
    let report = verify(&net, &logs, &[]);
    let c = &report.consenters[0];
    assert!(c.problems.iter().any(|p| p.contains("record 4 differs") && p.contains("rolled back")), "{:?}", c.problems);
}

#[test]
fn blocks_signed_again_after_a_rejoin_count_once_and_accuse_nobody() {
    let net = Net::new();
    let mut records = log(&net, 2, 6, vec![]);
    let mut w = LogWriter::resume(CH, 2, records.last());
    for seq in 1..=6 {
        records.push(w.append(Entry::Block { epoch: 0, view: 0, seq, header_hash: hash(seq, 0) }, &net.signers[&2]));
    }
    let report = verify(&net, &[parse(&export_text(&net, 2, &records))], &certificates(&net, 6));
    assert!(report.clean(), "{}", report.text());
    assert_eq!(report.consenters[0].blocks_voted, 6);
}

#[test]
fn the_log_writer_logs_each_observed_share_once() {
    let net = Net::new();
    let mut w = LogWriter::resume(CH, 1, None);
    let share = SignedShare { signer: 2, epoch: 0, seq: 3, header_hash: [1; 32], signature: vec![9] };
    assert!(w.observe(share.clone(), &net.signers[&1]).is_some());
    assert!(w.observe(share, &net.signers[&1]).is_none());
    assert_eq!(w.next_index(), 1);
}

#[test]
fn the_store_keeps_the_log_contiguous() {
    let net = Net::new();
    let dir = tempfile::tempdir().unwrap();
    let store = crate::storage::Store::open(&dir.path().join("n.redb")).unwrap();
    store.create_channel(CH).unwrap();
    let records = log(&net, 1, 10, vec![]);
    let batch = crate::storage::WriteBatch { audit: records[..4].to_vec(), ..Default::default() };
    store.commit(CH, &batch).unwrap();
    let gap = crate::storage::WriteBatch { audit: records[5..].to_vec(), ..Default::default() };
    assert!(store.commit(CH, &gap).is_err(), "a gap in the log is refused");
    let rest = crate::storage::WriteBatch { audit: records[4..].to_vec(), ..Default::default() };
    store.commit(CH, &rest).unwrap();
    let (length, back) = store.audit_records(CH, 0..=u64::MAX, 1000).unwrap();
    assert_eq!((length, back), (records.len() as u64, records.clone()));
    // A range export: blocks 3..=6 are a contiguous run with the view change.
    let range = super::export::ExportRange { from: 3, to: Some(6) };
    let bytes =
        super::export::export(&store, CH, None, &|id| format!("cert-{id}"), &range, Some(&net.signers[&1])).unwrap();
    let file = parse(std::str::from_utf8(&bytes).unwrap());
    let heights: Vec<u64> = file.records.iter().map(|(_, r)| r.entry.height()).collect();
    assert_eq!(heights, vec![3, 4, 5, 5, 6]);
    let report = verify(&net, &[file], &[]);
    assert!(report.clean(), "{}", report.text());
}

//! `orderer audit export | verify | check-evidence`.

use std::io::BufReader;
use std::path::{Path, PathBuf};

use ca_tools::{Msp, SigningKey};
use channels::BlockCertificate;

use super::evidence::{check_evidence, EvidenceFile};
use super::export::{export, ExportRange};
use super::format::read_export;
use super::trust::{read_block, ConfigKeys};
use super::verify::{verify, BlockVotes, Report};
use super::AuditError;
use crate::consensus::{Crypto, ReplicaId};
use crate::storage::Store;

/// Largest evidence file read.
const EVIDENCE_BYTES_MAX: u64 = 16 * 1024 * 1024;
/// Most block files read by one verify.
const BLOCK_FILES_MAX: usize = 1_000_000;
/// Largest block file read.
const BLOCK_BYTES_MAX: u64 = 256 * 1024 * 1024;

/// Signs with an identity key (the end line of an export); verifies nothing.
pub struct KeySigner(pub SigningKey);

impl Crypto for KeySigner {
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.0.sign(message).unwrap_or_default()
    }

    fn verify(&self, _: ReplicaId, _: &[u8], _: &[u8]) -> bool {
        false
    }
}

/// `orderer audit export` on a stopped node's data folder.
pub struct ExportArgs {
    pub data: PathBuf,
    pub channel: String,
    pub from: u64,
    pub to: Option<u64>,
    pub out: PathBuf,
    /// The node's MSP folder: signs the end line (without it the end of the
    /// export is unsigned and a truncated end cannot be detected).
    pub msp: Option<PathBuf>,
}

pub fn export_offline(a: &ExportArgs) -> Result<String, AuditError> {
    let db = a.data.join("ledger.redb");
    if !db.is_file() {
        return Err(AuditError::Input(format!(
            "{} does not exist: --data must be the node's data folder (node.data_dir)",
            db.display()
        )));
    }
    let store = Store::open(&db).map_err(|e| {
        AuditError::Input(format!(
            "{e} (is the node still running? export offline from a stopped node, or use the admin API)"
        ))
    })?;
    let genesis = a.data.join("channels").join(format!("{}.block", a.channel));
    let config = read_block(&genesis).ok().and_then(|b| channels::config_from_genesis(&b).ok());
    let certificate = |id: ReplicaId| {
        config.as_ref().and_then(|c| c.consenter(id)).map(|c| c.identity_cert.clone()).unwrap_or_default()
    };
    let signer = match &a.msp {
        Some(dir) => Some(KeySigner(
            Msp::load(None, dir).map_err(|e| AuditError::Input(format!("--msp {}: {e}", dir.display())))?.key,
        )),
        None => None,
    };
    let range = ExportRange { from: a.from, to: a.to };
    let bytes = export(&store, &a.channel, None, &certificate, &range, signer.as_ref().map(|s| s as &dyn Crypto))?;
    std::fs::write(&a.out, &bytes).map_err(|e| AuditError::Input(format!("writing {}: {e}", a.out.display())))?;
    let lines = bytes.iter().filter(|b| **b == b'\n').count();
    Ok(format!("wrote {} ({} records)", a.out.display(), lines.saturating_sub(2)))
}

/// `orderer audit verify`.
pub struct VerifyArgs {
    pub roots: PathBuf,
    pub configs: Vec<PathBuf>,
    pub logs: Vec<PathBuf>,
    pub blocks: Vec<PathBuf>,
    pub evidence_dir: Option<PathBuf>,
    pub json: bool,
}

/// Runs the verifier; returns what to print and whether everything was clean.
pub fn verify_cmd(a: &VerifyArgs) -> Result<(String, bool), AuditError> {
    let keys = ConfigKeys::load(&a.roots, &a.configs)?;
    let mut logs = Vec::new();
    for p in &a.logs {
        let f = std::fs::File::open(p).map_err(|e| AuditError::Input(format!("{}: {e}", p.display())))?;
        logs.push(read_export(&p.display().to_string(), &mut BufReader::new(f))?);
    }
    let channel = match logs.first() {
        Some(l) => l.header.channel.clone(),
        None => return Err(AuditError::Input("give at least one vote-log export to verify".into())),
    };
    let blocks = read_blocks(&a.blocks, &channel)?;
    let mut report = verify(&keys, &logs, &blocks);
    for r in &keys.refused {
        report.problems.push(r.clone());
    }
    if let Some(dir) = &a.evidence_dir {
        write_evidence(dir, &report)?;
    }
    let clean = report.clean();
    let text = if a.json {
        serde_json::to_string_pretty(&report).map_err(|e| AuditError::Input(e.to_string()))?
    } else {
        report.text()
    };
    Ok((text, clean))
}

fn write_evidence(dir: &Path, report: &Report) -> Result<(), AuditError> {
    std::fs::create_dir_all(dir).map_err(|e| AuditError::Input(format!("{}: {e}", dir.display())))?;
    for e in &report.evidence {
        let path = dir.join(e.file_name());
        let text = serde_json::to_string_pretty(e).map_err(|e| AuditError::Input(e.to_string()))?;
        std::fs::write(&path, text).map_err(|e| AuditError::Input(format!("{}: {e}", path.display())))?;
    }
    Ok(())
}

/// Block files (or folders of them), for `channel`; block 0 has no
/// certificate and is skipped.
fn read_blocks(paths: &[PathBuf], channel: &str) -> Result<Vec<BlockVotes>, AuditError> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let entries = std::fs::read_dir(p).map_err(|e| AuditError::Input(format!("{}: {e}", p.display())))?;
            for e in entries.take(BLOCK_FILES_MAX) {
                let path = e.map_err(|e| AuditError::Input(format!("{}: {e}", p.display())))?.path();
                if path.is_file() {
                    files.push(path);
                }
            }
        } else {
            files.push(p.clone());
        }
    }
    files.sort();
    let mut out = Vec::new();
    for f in files.iter().take(BLOCK_FILES_MAX) {
        let bytes = channels::files::read_bounded(f, BLOCK_BYTES_MAX)
            .map_err(|e| AuditError::Input(format!("{}: {e}", f.display())))?;
        let block = channels::proto::common::Block::decode_bounded(&bytes, BLOCK_BYTES_MAX as usize)
            .map_err(|e| AuditError::Input(format!("{}: {e}", f.display())))?;
        let header = block.header_checked().map_err(|e| AuditError::Input(format!("{}: {e}", f.display())))?;
        if header.number == 0 {
            continue;
        }
        let cert = BlockCertificate::from_block(&block)
            .map_err(|e| AuditError::Input(format!("{}: block certificate: {e}", f.display())))?;
        out.push(BlockVotes {
            source: f.display().to_string(),
            channel: channel.to_owned(),
            number: header.number,
            header_hash: header.hash(),
            epoch: cert.epoch,
            shares: cert.signatures,
        });
    }
    Ok(out)
}

/// `orderer audit check-evidence`: the verdict, or why the file proves nothing.
pub fn check_evidence_cmd(file: &Path, roots: &Path, configs: &[PathBuf]) -> Result<String, AuditError> {
    let keys = ConfigKeys::load(roots, configs)?;
    let bytes = channels::files::read_bounded(file, EVIDENCE_BYTES_MAX)
        .map_err(|e| AuditError::Input(format!("{}: {e}", file.display())))?;
    let e: EvidenceFile = serde_json::from_slice(&bytes)
        .map_err(|e| AuditError::Input(format!("{}: not an evidence file: {e}", file.display())))?;
    check_evidence(&e, &keys)
        .map(|verdict| format!("VALID evidence: {verdict}"))
        .map_err(|why| AuditError::Input(format!("{}: INVALID evidence: {why}", file.display())))
}

//! The export file: JSON Lines, version 1 (documented in
//! docs/auditor-guide.md).
//!
//! ```text
//! {"format":"bftorderer-vote-log","version":1,"channel":…,"consenter":…,"certificate":PEM,"first_index":…,"records":…}
//! {"index":0,"kind":"block","epoch":…,"view":…,"seq":…,"header_hash":hex,"prev":hex,"signature":hex}
//! …
//! {"end":{"log_length":…,"head_hash":hex,"signature":hex}}
//! ```
//!
//! The JSON is a view: what is signed is each record's canonical bytes
//! ([`Record::signing_bytes`]), rebuilt from the fields, and the end line's
//! [`head_signing_bytes`]. Never sign JSON.

use std::io::{BufRead, Read, Write};

use serde::{Deserialize, Serialize};

use super::record::{Entry, Record, CHANNEL_BYTES_MAX, SIGNATURE_BYTES_MAX};
use crate::consensus::codec::Writer;
use crate::consensus::{Crypto, Digest, ReplicaId, SignedShare};

pub const FORMAT: &str = "bftorderer-vote-log";
pub const VERSION: u32 = 1;
/// Domain separation of the signed end line.
pub const HEAD_DOMAIN: &[u8] = b"bftorderer/vote-log-head/v1\0";
/// Longest line read (a certificate chain in the header is the longest).
pub const LINE_BYTES_MAX: usize = 256 * 1024;
/// Most records one file may hold.
pub const RECORDS_MAX: usize = 2_000_000;

/// Why an export file cannot be read at all (problems of single records
/// are reported by the verifier instead).
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("{path}: {detail}")]
    Io { path: String, detail: String },
    #[error(
        "{path}: the first line is not a vote-log header: {detail} (is this a file written by `orderer audit export`?)"
    )]
    Header { path: String, detail: String },
    #[error("{path}: format version {version} is not supported: this verifier reads version {VERSION}")]
    Version { path: String, version: u32 },
    #[error("{path}: line {line} is longer than {LINE_BYTES_MAX} bytes")]
    LineTooLong { path: String, line: usize },
    #[error("{path}: more than {RECORDS_MAX} records")]
    TooManyRecords { path: String },
}

/// The first line of an export.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub format: String,
    pub version: u32,
    pub channel: String,
    pub consenter: ReplicaId,
    /// The consenter's identity certificate (PEM; may carry its chain).
    pub certificate: String,
    /// Index of the first record in the file.
    pub first_index: u64,
    /// Records in the file.
    pub records: u64,
}

/// One record as a JSON line (fields by kind; hex for bytes).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RecordLine {
    pub index: u64,
    pub kind: String,
    pub epoch: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signer: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_signature: Option<String>,
    pub prev: String,
    pub signature: String,
}

/// The signed end line: how long the log was when exported and its head.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct End {
    pub log_length: u64,
    pub head_hash: String,
    /// Over [`head_signing_bytes`]; empty when exported without the key.
    pub signature: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EndLine {
    end: End,
}

/// The bytes the consenter signs in the end line.
pub fn head_signing_bytes(h: &Header, log_length: u64, head_hash: &Digest) -> Vec<u8> {
    let mut w = Writer::new();
    w.raw(HEAD_DOMAIN)
        .bytes(h.channel.as_bytes())
        .u32(h.consenter)
        .u64(h.first_index)
        .u64(h.records)
        .u64(log_length)
        .digest(head_hash);
    w.finish()
}

fn digest_hex(s: Option<&String>, what: &str) -> Result<Digest, String> {
    let s = s.ok_or_else(|| format!("{what} missing"))?;
    let v = hex::decode(s).map_err(|e| format!("{what} is not hex: {e}"))?;
    v.try_into().map_err(|_| format!("{what} is not 32 bytes"))
}

fn sig_hex(s: &str, what: &str) -> Result<Vec<u8>, String> {
    let v = hex::decode(s).map_err(|e| format!("{what} is not hex: {e}"))?;
    if v.len() > SIGNATURE_BYTES_MAX {
        return Err(format!("{what} is longer than {SIGNATURE_BYTES_MAX} bytes"));
    }
    Ok(v)
}

impl RecordLine {
    pub fn from_record(r: &Record) -> Self {
        let mut line = RecordLine {
            index: r.index,
            kind: r.entry.kind().to_owned(),
            prev: hex::encode(r.prev),
            signature: hex::encode(&r.signature),
            ..Default::default()
        };
        match &r.entry {
            Entry::Block { epoch, view, seq, header_hash } => {
                line.epoch = *epoch;
                line.view = Some(*view);
                line.seq = Some(*seq);
                line.header_hash = Some(hex::encode(header_hash));
            }
            Entry::ViewChange { epoch, view, height, digest } => {
                line.epoch = *epoch;
                line.view = Some(*view);
                line.height = Some(*height);
                line.digest = Some(hex::encode(digest));
            }
            Entry::Observed(s) => {
                line.epoch = s.epoch;
                line.signer = Some(s.signer);
                line.seq = Some(s.seq);
                line.header_hash = Some(hex::encode(s.header_hash));
                line.share_signature = Some(hex::encode(&s.signature));
            }
        }
        line
    }

    /// The record this line shows, for the log of `consenter` on `channel`.
    pub fn to_record(&self, channel: &str, consenter: ReplicaId) -> Result<Record, String> {
        let need = |v: Option<u64>, what: &str| v.ok_or_else(|| format!("{what} missing"));
        // Only the fields of its kind: anything else would not be signed.
        let present = [
            ("view", self.view.is_some()),
            ("seq", self.seq.is_some()),
            ("height", self.height.is_some()),
            ("header_hash", self.header_hash.is_some()),
            ("digest", self.digest.is_some()),
            ("signer", self.signer.is_some()),
            ("share_signature", self.share_signature.is_some()),
        ];
        let allowed: &[&str] = match self.kind.as_str() {
            "block" => &["view", "seq", "header_hash"],
            "view-change" => &["view", "height", "digest"],
            "observed-share" => &["seq", "header_hash", "signer", "share_signature"],
            other => return Err(format!("unknown kind {other:?}")),
        };
        if let Some((field, _)) = present.iter().find(|(f, set)| *set && !allowed.contains(f)) {
            return Err(format!("field {field} does not belong to a {} record", self.kind));
        }
        let entry = match self.kind.as_str() {
            "block" => Entry::Block {
                epoch: self.epoch,
                view: need(self.view, "view")?,
                seq: need(self.seq, "seq")?,
                header_hash: digest_hex(self.header_hash.as_ref(), "header_hash")?,
            },
            "view-change" => Entry::ViewChange {
                epoch: self.epoch,
                view: need(self.view, "view")?,
                height: need(self.height, "height")?,
                digest: digest_hex(self.digest.as_ref(), "digest")?,
            },
            "observed-share" => Entry::Observed(SignedShare {
                signer: self.signer.ok_or("signer missing")?,
                epoch: self.epoch,
                seq: need(self.seq, "seq")?,
                header_hash: digest_hex(self.header_hash.as_ref(), "header_hash")?,
                signature: sig_hex(self.share_signature.as_deref().unwrap_or_default(), "share_signature")?,
            }),
            other => return Err(format!("unknown kind {other:?}")),
        };
        if channel.len() > CHANNEL_BYTES_MAX {
            return Err("channel name too long".into());
        }
        Ok(Record {
            channel: channel.to_owned(),
            consenter,
            index: self.index,
            prev: digest_hex(Some(&self.prev), "prev")?,
            entry,
            signature: sig_hex(&self.signature, "signature")?,
        })
    }
}

/// Writes an export: header, records, end line (signed when `crypto` is
/// given — the node's identity key). `log_length` and `head` describe the
/// whole log at export time.
pub fn write_export(
    out: &mut dyn Write,
    header: &Header,
    records: &[Record],
    log_length: u64,
    head: &Digest,
    crypto: Option<&dyn Crypto>,
) -> std::io::Result<()> {
    writeln!(out, "{}", json_line(header))?;
    for r in records {
        writeln!(out, "{}", json_line(&RecordLine::from_record(r)))?;
    }
    let signature = crypto.map(|c| c.sign(&head_signing_bytes(header, log_length, head))).unwrap_or_default();
    let end = EndLine { end: End { log_length, head_hash: hex::encode(head), signature: hex::encode(signature) } };
    writeln!(out, "{}", json_line(&end))?;
    Ok(())
}

/// One value as one JSON line (serde_json does not fail on these plain
/// structures; an empty object would stand for the impossible).
pub fn json_line<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "{}".into())
}

/// A parsed export file: what could be read, and what could not.
#[derive(Clone, Debug)]
pub struct LogFile {
    /// Where it came from (a path or a node address), for the report.
    pub source: String,
    pub header: Header,
    /// Records in file order, with their line numbers.
    pub records: Vec<(usize, Record)>,
    /// Lines that are not valid records: (line number, what is wrong).
    pub bad_lines: Vec<(usize, String)>,
    pub end: Option<End>,
}

/// Reads an export (bounded line length and record count).
pub fn read_export<R: BufRead>(source: &str, input: &mut R) -> Result<LogFile, FormatError> {
    let io = |e: std::io::Error| FormatError::Io { path: source.to_owned(), detail: e.to_string() };
    let mut lines = Vec::new();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = input.by_ref().take(LINE_BYTES_MAX as u64 + 1).read_until(b'\n', &mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        if buf.len() > LINE_BYTES_MAX {
            return Err(FormatError::LineTooLong { path: source.to_owned(), line: lines.len() + 1 });
        }
        if lines.len() > RECORDS_MAX + 2 {
            return Err(FormatError::TooManyRecords { path: source.to_owned() });
        }
        lines.push(String::from_utf8_lossy(&buf).trim_end().to_owned());
    }
    let first =
        lines.first().ok_or_else(|| FormatError::Header { path: source.into(), detail: "empty file".into() })?;
    let header: Header = serde_json::from_str(first)
        .map_err(|e| FormatError::Header { path: source.to_owned(), detail: e.to_string() })?;
    if header.format != FORMAT {
        return Err(FormatError::Header { path: source.to_owned(), detail: format!("format is {:?}", header.format) });
    }
    if header.version != VERSION {
        return Err(FormatError::Version { path: source.to_owned(), version: header.version });
    }
    let mut file = LogFile { source: source.to_owned(), header, records: vec![], bad_lines: vec![], end: None };
    for (i, line) in lines.iter().enumerate().skip(1) {
        let number = i + 1;
        if line.is_empty() {
            continue;
        }
        if file.end.is_some() {
            file.bad_lines.push((number, "a line after the end line".into()));
            continue;
        }
        if let Ok(end) = serde_json::from_str::<EndLine>(line) {
            file.end = Some(end.end);
            continue;
        }
        match serde_json::from_str::<RecordLine>(line) {
            Ok(r) => match r.to_record(&file.header.channel, file.header.consenter) {
                Ok(record) => file.records.push((number, record)),
                Err(e) => file.bad_lines.push((number, e)),
            },
            Err(e) => file.bad_lines.push((number, format!("not a record: {e}"))),
        }
    }
    Ok(file)
}

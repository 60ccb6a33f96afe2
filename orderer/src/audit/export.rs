//! A consenter's log out of a store, as an export file.

use super::format::{write_export, Header, FORMAT, VERSION};
use super::record::Record;
use super::AuditError;
use crate::consensus::{Crypto, ReplicaId, Seq};
use crate::storage::Store;

/// Most records one export holds: export a longer log in block ranges.
pub const EXPORT_RECORDS_MAX: usize = 200_000;

/// What to export.
#[derive(Clone, Debug)]
pub struct ExportRange {
    /// The first block height (inclusive); view changes and observed
    /// shares between the blocks of the range are included.
    pub from: Seq,
    /// The last block height (inclusive); `None`: up to the log's head.
    pub to: Option<Seq>,
}

/// The records of `range`: the contiguous run of the log from the first
/// record at or above height `from` to the last record at or below `to`
/// (records are in signing order, heights never go down by much, and a
/// contiguous run keeps the chain checkable).
pub fn select(records: Vec<Record>, range: &ExportRange) -> Vec<Record> {
    let to = range.to.unwrap_or(Seq::MAX);
    let Some(start) = records.iter().position(|r| r.entry.height() >= range.from) else { return vec![] };
    let Some(end) = records.iter().rposition(|r| r.entry.height() <= to) else { return vec![] };
    if end < start {
        return vec![];
    }
    records.into_iter().skip(start).take(end - start + 1).collect()
}

/// Reads the log of `channel` from `store` and writes the export of
/// `range`, with `certificate` (the consenter's PEM) in the header and the
/// end line signed by `crypto` when given.
pub fn export(
    store: &Store,
    channel: &str,
    consenter: Option<ReplicaId>,
    certificate: &dyn Fn(ReplicaId) -> String,
    range: &ExportRange,
    crypto: Option<&dyn Crypto>,
) -> Result<Vec<u8>, AuditError> {
    // Read in pages (bounded), keep the range.
    let mut all = Vec::new();
    let mut at = 0u64;
    let (length, _) = store.audit_records(channel, 0..=0, 0)?;
    let to = range.to.unwrap_or(Seq::MAX);
    let mut started = false;
    while at < length {
        let (_, page) = store.audit_records(channel, at..=u64::MAX, 4096)?;
        let Some(last) = page.last() else { break };
        at = last.index + 1;
        // Past the range by a margin: nothing later belongs to it.
        let done = page.iter().any(|r| r.entry.height() > to.saturating_add(4096));
        for r in page {
            // Records below the range are dropped while reading (memory
            // stays bounded by the range, not by the whole log).
            started |= r.entry.height() >= range.from;
            if started {
                all.push(r);
            }
        }
        if all.len() > EXPORT_RECORDS_MAX {
            return Err(AuditError::Input(format!(
                "more than {EXPORT_RECORDS_MAX} records in the range: export smaller block ranges with from/to"
            )));
        }
        if done {
            break;
        }
    }
    let records = select(all, range);
    let head = match length {
        0 => None,
        n => store.audit_records(channel, n - 1..=n - 1, 1)?.1.pop(),
    };
    let id = records
        .first()
        .map(|r| r.consenter)
        .or(head.as_ref().map(|r| r.consenter))
        .or(consenter)
        .ok_or_else(|| AuditError::Input(format!("channel {channel} has no vote-log records in this store yet")))?;
    let header = Header {
        format: FORMAT.into(),
        version: VERSION,
        channel: channel.to_owned(),
        consenter: id,
        certificate: certificate(id),
        first_index: records.first().map_or(0, |r| r.index),
        records: records.len() as u64,
    };
    let head_hash = head.as_ref().map_or([0; 32], Record::hash);
    let mut out = Vec::new();
    write_export(&mut out, &header, &records, length, &head_hash, crypto)
        .map_err(|e| AuditError::Input(format!("writing the export: {e}")))?;
    Ok(out)
}

//! Audit: each consenter's signed, hash-chained vote log, its export, and
//! the offline verifier that finds gaps, tampering and equivocation.
//!
//! - [`record`]: the record, its canonical signed bytes, the hash chain and
//!   the [`LogWriter`] the channel task appends with (records are stored in
//!   the same transaction as the votes they record, before those votes
//!   leave the node);
//! - [`format`]: the export file (JSON Lines, versioned);
//! - [`verify`]: the verifier over logs and blocks, and its report;
//! - [`evidence`]: self-contained equivocation evidence and its check;
//! - [`trust`]: the consenters' keys from CA roots and channel configs;
//! - [`export`]: a log from a store, for the admin API and the CLI.
//!
//! The format and commands are documented in docs/auditor-guide.md.

pub mod cli;
pub mod evidence;
pub mod export;
pub mod format;
pub mod record;
pub mod trust;
pub mod verify;

pub use evidence::{check_evidence, EvidenceFile, Statement};
pub use format::{read_export, LogFile};
pub use record::{Entry, LogWriter, Record};
pub use verify::{verify, BlockVotes, Keys, Report};

/// Why an audit command could not run (findings are in the [`Report`]).
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Store(#[from] crate::storage::StoreError),
    #[error(transparent)]
    Format(#[from] format::FormatError),
}

/// The store's side of the log (used by `storage`).
pub mod store {
    use redb::{ReadableTable, Table};

    use super::Record;

    /// Appends `records` to the log table; they must continue it exactly.
    pub fn append(table: &mut Table<'_, u64, &'static [u8]>, records: &[Record]) -> Result<(), String> {
        let first = table.last().map_err(|e| e.to_string())?.map(|(k, _)| k.value() + 1).unwrap_or(0);
        for (next, r) in (first..).zip(records) {
            if r.index != next {
                return Err(format!("vote-log record {} does not follow the stored log of {next} records", r.index));
            }
            table.insert(r.index, r.encode().as_slice()).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;

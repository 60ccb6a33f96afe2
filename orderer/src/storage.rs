//! Durable storage of a node (redb): per channel, the blocks with their
//! certificates, the transaction-id index, the consensus records a replica
//! must not forget across a crash, and the vote log.
//!
//! Writes are grouped: a [`WriteBatch`] collects what one or more steps of
//! the consensus core asked for and [`Store::commit`] makes it durable in one
//! transaction (one fsync). The node sends the messages those steps produced
//! only after the commit returns: persist before vote.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use thiserror::Error;

use crate::consensus::{compact, Block, Certificate, Durable, Limits, Seq, TxId};

/// Storage failures. An I/O error means the disk is unusable: the node stops
/// rather than vote without durability.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("storage error in {path}: {detail} (check the data folder's disk and permissions)")]
    Database { path: String, detail: String },
    #[error("stored data for channel {channel} is corrupt: {detail} (restore the data folder from a backup)")]
    Corrupt { channel: String, detail: String },
    #[error("channel name {0:?} is not valid: use 1-249 characters of a-z, 0-9, '.', '-' and '_'")]
    BadChannel(String),
}

/// A channel's tables.
struct Tables {
    blocks: String,
    certs: String,
    txids: String,
    durable: String,
    votes: String,
    /// Epoch records (key rotation), by epoch number.
    epochs: String,
    /// The signed vote log (`audit`): index -> record.
    audit: String,
}

impl Tables {
    fn of(channel: &str) -> Result<Self, StoreError> {
        let ok = !channel.is_empty()
            && channel.len() <= 249
            && channel.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
        if !ok {
            return Err(StoreError::BadChannel(channel.to_owned()));
        }
        Ok(Self {
            blocks: format!("{channel}/blocks"),
            certs: format!("{channel}/certs"),
            txids: format!("{channel}/txids"),
            durable: format!("{channel}/durable"),
            votes: format!("{channel}/votes"),
            epochs: format!("{channel}/epochs"),
            audit: format!("{channel}/audit"),
        })
    }
}

type U64Bytes<'a> = TableDefinition<'a, u64, &'static [u8]>;
type BytesU64<'a> = TableDefinition<'a, &'static [u8], u64>;
const CHANNELS: TableDefinition<&str, u64> = TableDefinition::new("channels");

/// What one group commit writes for one channel.
#[derive(Default, Debug)]
pub struct WriteBatch {
    pub blocks: Vec<(Block, Vec<TxId>)>,
    pub certificates: Vec<Certificate>,
    pub durable: Vec<Durable>,
    /// Signed vote-log records, in index order (see `audit`).
    pub audit: Vec<crate::audit::Record>,
}

impl WriteBatch {
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty() && self.certificates.is_empty() && self.durable.is_empty() && self.audit.is_empty()
    }
}

/// The node's database.
pub struct Store {
    db: Database,
    path: String,
    limits: Limits,
}

/// redb's page cache (its default, 1 GiB, would let a node's memory grow
/// with its ledger): recent blocks and the vote records stay cached, older
/// blocks are read from disk when a reader asks for them.
const STORE_CACHE_BYTES: usize = 32 << 20;

impl Store {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let shown = path.display().to_string();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Database { path: shown.clone(), detail: e.to_string() })?;
        }
        let db = Database::builder()
            .set_cache_size(STORE_CACHE_BYTES)
            .create(path)
            .map_err(|e| StoreError::Database { path: shown.clone(), detail: e.to_string() })?;
        Ok(Self { db, path: shown, limits: Limits::default() })
    }

    fn err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Database { path: self.path.clone(), detail: e.to_string() }
    }

    fn corrupt(channel: &str, e: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupt { channel: channel.to_owned(), detail: e.to_string() }
    }

    /// Registers a channel (idempotent).
    pub fn create_channel(&self, channel: &str) -> Result<(), StoreError> {
        let t = Tables::of(channel)?;
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut chans = tx.open_table(CHANNELS).map_err(|e| self.err(e))?;
            if chans.get(channel).map_err(|e| self.err(e))?.is_none() {
                chans.insert(channel, 0).map_err(|e| self.err(e))?;
            }
            for name in [&t.blocks, &t.certs, &t.durable, &t.votes, &t.epochs, &t.audit] {
                tx.open_table(U64Bytes::new(name)).map_err(|e| self.err(e))?;
            }
            tx.open_table(BytesU64::new(&t.txids)).map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Removes a channel and all its data.
    pub fn remove_channel(&self, channel: &str) -> Result<(), StoreError> {
        let t = Tables::of(channel)?;
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut chans = tx.open_table(CHANNELS).map_err(|e| self.err(e))?;
            chans.remove(channel).map_err(|e| self.err(e))?;
            // The signed vote log is kept: it is evidence of what this
            // consenter signed, and a rejoin continues its chain.
            for name in [&t.blocks, &t.certs, &t.durable, &t.votes, &t.epochs] {
                tx.delete_table(U64Bytes::new(name)).map_err(|e| self.err(e))?;
            }
            tx.delete_table(BytesU64::new(&t.txids)).map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    pub fn channels(&self) -> Result<Vec<String>, StoreError> {
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let chans = match tx.open_table(CHANNELS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(vec![]),
            Err(e) => return Err(self.err(e)),
        };
        let mut out = vec![];
        for row in chans.iter().map_err(|e| self.err(e))? {
            let (k, _) = row.map_err(|e| self.err(e))?;
            out.push(k.value().to_owned());
        }
        Ok(out)
    }

    /// Makes everything in `batch` durable in one transaction.
    pub fn commit(&self, channel: &str, batch: &WriteBatch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let t = Tables::of(channel)?;
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut blocks = tx.open_table(U64Bytes::new(&t.blocks)).map_err(|e| self.err(e))?;
            let mut txids = tx.open_table(BytesU64::new(&t.txids)).map_err(|e| self.err(e))?;
            for (block, ids) in &batch.blocks {
                blocks.insert(block.number, block.encode().as_slice()).map_err(|e| self.err(e))?;
                for id in ids {
                    txids.insert(id.as_slice(), block.number).map_err(|e| self.err(e))?;
                }
            }
            let mut certs = tx.open_table(U64Bytes::new(&t.certs)).map_err(|e| self.err(e))?;
            for c in &batch.certificates {
                certs.insert(c.seq, c.to_bytes().as_slice()).map_err(|e| self.err(e))?;
            }
            let mut durable = tx.open_table(U64Bytes::new(&t.durable)).map_err(|e| self.err(e))?;
            let mut votes = tx.open_table(U64Bytes::new(&t.votes)).map_err(|e| self.err(e))?;
            let first = durable.last().map_err(|e| self.err(e))?.map(|(k, _)| k.value() + 1).unwrap_or(0);
            let mut next_vote = votes.last().map_err(|e| self.err(e))?.map(|(k, _)| k.value() + 1).unwrap_or(0);
            let mut stable = false;
            for (key, r) in (first..).zip(&batch.durable) {
                let bytes = r.encode();
                durable.insert(key, bytes.as_slice()).map_err(|e| self.err(e))?;
                if matches!(r, Durable::Vote { .. }) {
                    votes.insert(next_vote, bytes.as_slice()).map_err(|e| self.err(e))?;
                    next_vote += 1;
                }
                stable |= matches!(r, Durable::Stable(_));
            }
            let mut audit = tx.open_table(U64Bytes::new(&t.audit)).map_err(|e| self.err(e))?;
            crate::audit::store::append(&mut audit, &batch.audit).map_err(|e| Self::corrupt(channel, e))?;
            if stable {
                // Rewrite the records without what the checkpoint made obsolete.
                let mut all = Vec::new();
                for row in durable.iter().map_err(|e| self.err(e))? {
                    let (_, v) = row.map_err(|e| self.err(e))?;
                    all.push(Durable::decode(v.value(), &self.limits).map_err(|e| Self::corrupt(channel, e))?);
                }
                compact(&mut all);
                durable.retain(|_, _| false).map_err(|e| self.err(e))?;
                for (i, r) in all.iter().enumerate() {
                    durable.insert(i as u64, r.encode().as_slice()).map_err(|e| self.err(e))?;
                }
            }
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// Number of the last stored block (0 when only genesis is known).
    pub fn height(&self, channel: &str) -> Result<Seq, StoreError> {
        let t = Tables::of(channel)?;
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let blocks = tx.open_table(U64Bytes::new(&t.blocks)).map_err(|e| self.err(e))?;
        let last = blocks.last().map_err(|e| self.err(e))?.map(|(k, _)| k.value()).unwrap_or(0);
        Ok(last)
    }

    pub fn block(&self, channel: &str, number: Seq) -> Result<Option<Block>, StoreError> {
        let t = Tables::of(channel)?;
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let blocks = tx.open_table(U64Bytes::new(&t.blocks)).map_err(|e| self.err(e))?;
        match blocks.get(number).map_err(|e| self.err(e))? {
            None => Ok(None),
            Some(v) => Block::decode(v.value(), &self.limits).map(Some).map_err(|e| Self::corrupt(channel, e)),
        }
    }

    pub fn certificate(&self, channel: &str, number: Seq) -> Result<Option<Certificate>, StoreError> {
        let t = Tables::of(channel)?;
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let certs = tx.open_table(U64Bytes::new(&t.certs)).map_err(|e| self.err(e))?;
        match certs.get(number).map_err(|e| self.err(e))? {
            None => Ok(None),
            Some(v) => {
                Certificate::from_bytes(v.value(), &self.limits).map(Some).map_err(|e| Self::corrupt(channel, e))
            }
        }
    }

    /// The block holding transaction `tx_id`, if any.
    pub fn tx_block(&self, channel: &str, tx_id: &TxId) -> Result<Option<Seq>, StoreError> {
        let t = Tables::of(channel)?;
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let txids = tx.open_table(BytesU64::new(&t.txids)).map_err(|e| self.err(e))?;
        Ok(txids.get(tx_id.as_slice()).map_err(|e| self.err(e))?.map(|v| v.value()))
    }

    /// Envelopes stored on the channel (the size of the tx-id index).
    pub fn tx_count(&self, channel: &str) -> Result<u64, StoreError> {
        let t = Tables::of(channel)?;
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let txids = tx.open_table(BytesU64::new(&t.txids)).map_err(|e| self.err(e))?;
        txids.len().map_err(|e| self.err(e))
    }

    /// The consensus records, oldest first.
    pub fn durable(&self, channel: &str) -> Result<Vec<Durable>, StoreError> {
        self.records(channel, |t| &t.durable)
    }

    /// Every vote this replica cast on the channel, oldest first.
    pub fn votes(&self, channel: &str) -> Result<Vec<Durable>, StoreError> {
        self.records(channel, |t| &t.votes)
    }

    /// Starts epoch `epoch` of the channel: stores its record (opaque bytes,
    /// see `node::epoch::EpochRecord`) and clears the consensus records of
    /// the epoch that ended, in one transaction. The vote log is kept.
    pub fn begin_epoch(&self, channel: &str, epoch: u64, record: &[u8]) -> Result<(), StoreError> {
        let t = Tables::of(channel)?;
        let tx = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut epochs = tx.open_table(U64Bytes::new(&t.epochs)).map_err(|e| self.err(e))?;
            epochs.insert(epoch, record).map_err(|e| self.err(e))?;
            let mut durable = tx.open_table(U64Bytes::new(&t.durable)).map_err(|e| self.err(e))?;
            durable.retain(|_, _| false).map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))
    }

    /// The stored epoch records of the channel, oldest first (empty while
    /// the channel is in its first epoch).
    pub fn epochs(&self, channel: &str) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let t = Tables::of(channel)?;
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let rows = match tx.open_table(U64Bytes::new(&t.epochs)) {
            Ok(rows) => rows,
            // A store written before epochs existed: first epoch.
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(vec![]),
            Err(e) => return Err(self.err(e)),
        };
        let mut out = Vec::new();
        for row in rows.iter().map_err(|e| self.err(e))? {
            let (k, v) = row.map_err(|e| self.err(e))?;
            out.push((k.value(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// The signed vote log: its length, and the records whose index is in
    /// `range` (at most `max` of them), oldest first.
    pub fn audit_records(
        &self,
        channel: &str,
        range: std::ops::RangeInclusive<u64>,
        max: usize,
    ) -> Result<(u64, Vec<crate::audit::Record>), StoreError> {
        let t = Tables::of(channel)?;
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let rows = match tx.open_table(U64Bytes::new(&t.audit)) {
            Ok(rows) => rows,
            // A store written before the vote log existed.
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok((0, vec![])),
            Err(e) => return Err(self.err(e)),
        };
        let length = rows.last().map_err(|e| self.err(e))?.map(|(k, _)| k.value() + 1).unwrap_or(0);
        let mut out = Vec::new();
        for row in rows.range(range).map_err(|e| self.err(e))?.take(max) {
            let (_, v) = row.map_err(|e| self.err(e))?;
            out.push(crate::audit::Record::decode(v.value()).map_err(|e| Self::corrupt(channel, e))?);
        }
        Ok((length, out))
    }

    fn records(&self, channel: &str, table: impl Fn(&Tables) -> &String) -> Result<Vec<Durable>, StoreError> {
        let t = Tables::of(channel)?;
        let tx = self.db.begin_read().map_err(|e| self.err(e))?;
        let rows = tx.open_table(U64Bytes::new(table(&t))).map_err(|e| self.err(e))?;
        let mut out = Vec::with_capacity(rows.len().map_err(|e| self.err(e))? as usize);
        for row in rows.iter().map_err(|e| self.err(e))? {
            let (_, v) = row.map_err(|e| self.err(e))?;
            out.push(Durable::decode(v.value(), &self.limits).map_err(|e| Self::corrupt(channel, e))?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::{Batch, VoteKind};

    fn block(number: Seq, prev: [u8; 32]) -> Block {
        let envelopes = vec![vec![number as u8; 10]];
        let data_hash = channels::block::data_hash(&envelopes);
        let header_hash = channels::block::header_hash(number, &prev, &data_hash);
        Block { number, previous_hash: prev, data_hash, header_hash, envelopes }
    }

    #[test]
    fn blocks_certificates_and_records_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.redb");
        let b1 = block(1, [0; 32]);
        {
            let store = Store::open(&path).unwrap();
            store.create_channel("ch1").unwrap();
            let batch = WriteBatch {
                blocks: vec![(b1.clone(), vec![[9; 32]])],
                certificates: vec![Certificate { seq: 1, header_hash: b1.header_hash, signatures: vec![(1, vec![1])] }],
                durable: vec![
                    Durable::View { view: 3, changing: false },
                    Durable::Vote { kind: VoteKind::Prepare, view: 3, seq: 2, digest: [4; 32] },
                    Durable::Batch { seq: 2, batch: Batch { envelopes: vec![b"x".to_vec()] } },
                ],
                audit: vec![],
            };
            store.commit("ch1", &batch).unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.channels().unwrap(), vec!["ch1".to_string()]);
        assert_eq!(store.height("ch1").unwrap(), 1);
        assert_eq!(store.block("ch1", 1).unwrap(), Some(b1.clone()));
        assert_eq!(store.certificate("ch1", 1).unwrap().unwrap().header_hash, b1.header_hash);
        assert_eq!(store.tx_block("ch1", &[9; 32]).unwrap(), Some(1));
        assert_eq!(store.durable("ch1").unwrap().len(), 3);
        assert_eq!(store.votes("ch1").unwrap().len(), 1);
    }

    #[test]
    fn a_stable_checkpoint_compacts_records_but_not_the_vote_log() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("n.redb")).unwrap();
        store.create_channel("ch").unwrap();
        let votes: Vec<Durable> = (1..=8)
            .map(|seq| Durable::Vote { kind: VoteKind::Commit, view: 0, seq, digest: [seq as u8; 32] })
            .collect();
        store.commit("ch", &WriteBatch { durable: votes, ..Default::default() }).unwrap();
        let stable = Certificate { seq: 4, header_hash: [1; 32], signatures: vec![] };
        store.commit("ch", &WriteBatch { durable: vec![Durable::Stable(stable)], ..Default::default() }).unwrap();
        let left = store.durable("ch").unwrap();
        assert_eq!(left.len(), 5, "votes 5..=8 and the stable record remain: {left:?}");
        assert_eq!(store.votes("ch").unwrap().len(), 8);
    }

    #[test]
    fn beginning_an_epoch_stores_its_record_and_clears_the_consensus_records_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.redb");
        {
            let store = Store::open(&path).unwrap();
            store.create_channel("ch").unwrap();
            assert!(store.epochs("ch").unwrap().is_empty());
            let vote = Durable::Vote { kind: VoteKind::Commit, view: 0, seq: 1, digest: [1; 32] };
            let b1 = block(1, [0; 32]);
            store
                .commit("ch", &WriteBatch { blocks: vec![(b1, vec![])], durable: vec![vote], ..Default::default() })
                .unwrap();
            store.begin_epoch("ch", 2, b"record of epoch 2").unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.epochs("ch").unwrap(), vec![(2, b"record of epoch 2".to_vec())]);
        assert!(store.durable("ch").unwrap().is_empty(), "the old epoch's records are gone");
        assert_eq!(store.votes("ch").unwrap().len(), 1, "the vote log is kept");
        assert_eq!(store.height("ch").unwrap(), 1, "the ledger is kept");
    }

    #[test]
    fn channel_names_are_checked_before_use_as_table_names() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("n.redb")).unwrap();
        assert!(matches!(store.create_channel("../etc"), Err(StoreError::BadChannel(_))));
        assert!(matches!(store.create_channel(""), Err(StoreError::BadChannel(_))));
    }
}

//! The pool's requests that no proposal of the current view holds yet, in
//! arrival order, with their count and bytes per batch kind: the primary
//! cuts a batch from the front without scanning the whole pool.

use std::collections::BTreeMap;

use super::BatchKind;
use crate::consensus::types::TxId;

const KINDS: usize = 3;

fn index(kind: BatchKind) -> usize {
    match kind {
        BatchKind::Transactions => 0,
        BatchKind::Announcements => 1,
        BatchKind::Reconfiguration => 2,
    }
}

/// One waiting request: its id, kind and size.
#[derive(Clone, Copy, Debug)]
pub(super) struct Entry {
    pub id: TxId,
    pub kind: BatchKind,
    pub bytes: usize,
}

/// Requests waiting for a proposal, keyed by their arrival order.
#[derive(Debug, Default)]
pub(super) struct Waiting {
    by_order: BTreeMap<u64, Entry>,
    /// (count, bytes) per kind, always the sums over `by_order`.
    totals: [(usize, usize); KINDS],
}

impl Waiting {
    pub fn insert(&mut self, order: u64, entry: Entry) {
        if let Some(old) = self.by_order.insert(order, entry) {
            self.subtract(&old);
        }
        let t = &mut self.totals[index(entry.kind)];
        t.0 += 1;
        t.1 += entry.bytes;
    }

    pub fn remove(&mut self, order: u64) {
        if let Some(old) = self.by_order.remove(&order) {
            self.subtract(&old);
        }
    }

    fn subtract(&mut self, entry: &Entry) {
        let t = &mut self.totals[index(entry.kind)];
        assert!(t.0 >= 1 && t.1 >= entry.bytes, "waiting totals out of step with the index");
        t.0 -= 1;
        t.1 -= entry.bytes;
    }

    pub fn clear(&mut self) {
        self.by_order.clear();
        self.totals = [(0, 0); KINDS];
    }

    /// The oldest waiting request.
    pub fn first(&self) -> Option<(u64, Entry)> {
        self.by_order.first_key_value().map(|(o, e)| (*o, *e))
    }

    /// How many requests of `kind` wait, and their bytes.
    pub fn totals(&self, kind: BatchKind) -> (usize, usize) {
        self.totals[index(kind)]
    }

    /// Oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (u64, Entry)> + '_ {
        self.by_order.iter().map(|(o, e)| (*o, *e))
    }

    pub fn len(&self) -> usize {
        self.by_order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u8, kind: BatchKind, bytes: usize) -> Entry {
        Entry { id: [n; 32], kind, bytes }
    }

    #[test]
    fn totals_follow_inserts_and_removals_per_kind() {
        let mut w = Waiting::default();
        w.insert(1, entry(1, BatchKind::Transactions, 100));
        w.insert(2, entry(2, BatchKind::Announcements, 30));
        w.insert(3, entry(3, BatchKind::Transactions, 50));
        assert_eq!(w.totals(BatchKind::Transactions), (2, 150));
        assert_eq!(w.totals(BatchKind::Announcements), (1, 30));
        assert_eq!(w.first().map(|(o, e)| (o, e.id)), Some((1, [1; 32])));
        w.remove(1);
        w.remove(1);
        assert_eq!(w.totals(BatchKind::Transactions), (1, 50));
        // Re-inserting an order replaces, never double counts.
        w.insert(3, entry(3, BatchKind::Transactions, 50));
        assert_eq!(w.totals(BatchKind::Transactions), (1, 50));
        assert_eq!(w.iter().map(|(o, _)| o).collect::<Vec<_>>(), vec![2, 3]);
        w.clear();
        assert_eq!((w.len(), w.totals(BatchKind::Transactions)), (0, (0, 0)));
    }
}

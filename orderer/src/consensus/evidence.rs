//! Transferable evidence the core hands to the shell: signed statements of
//! other consenters that contradict each other or the executed ledger.
//!
//! Only identity-key signatures are transferable (anyone holding the channel
//! configuration can check them); MAC-authenticated votes are not, so they
//! are counted (`Stats::conflicting_votes`) but never become evidence.

use super::message::{Digest, Epoch, ReplicaId, Seq};

/// A consenter's block-certificate share: its identity-key signature over
/// `channels::block::certificate_signing_bytes(channel, epoch, seq,
/// header_hash)`, checked by the core before it is reported.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SignedShare {
    pub signer: ReplicaId,
    pub epoch: Epoch,
    pub seq: Seq,
    pub header_hash: Digest,
    pub signature: Vec<u8>,
}

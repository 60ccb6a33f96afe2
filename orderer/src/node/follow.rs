//! Following a channel's configuration along its ledger, as a reader of
//! blocks (a peer, `orderer client`, a test) must: block n is certified by
//! the consenters of the configuration in force at n.
//!
//! The rule is the consenters' own, and it needs nothing but the blocks:
//! the first valid reconfiguration (`identity::valid_reconfiguration`,
//! deterministic) executed in an epoch takes effect after the first
//! checkpoint at or after its block (`consensus::epoch_end_after`). That is
//! the end of its epoch even when a quorum of key announcements fixed the
//! end earlier: that end is a checkpoint at or after the reconfiguration
//! (the epoch was still running), and no checkpoint lies between the two.
//! Later reconfigurations of the same configuration in that epoch are
//! ordered but void, everywhere.

use channels::block::verify_block_certificate;
use channels::config_update::ConfigUpdateVerifier;
use channels::proto::common::Block as PbBlock;
use channels::ChannelConfig;

use super::identity::valid_reconfiguration;
use crate::consensus::{epoch_end_after, Seq};

/// A configuration decided in the ledger, waiting for its epoch.
#[derive(Clone, Debug)]
pub struct Scheduled {
    /// The block holding the reconfiguration.
    pub block: Seq,
    /// The last block under the previous configuration.
    pub last_under_previous: Seq,
    pub config: ChannelConfig,
}

/// The configuration in force along a ledger read in order.
pub struct ConfigFollower {
    config: ChannelConfig,
    updates: ConfigUpdateVerifier,
    scheduled: Option<Scheduled>,
    /// Reconfigurations that took effect so far.
    pub applied: Vec<Scheduled>,
}

impl ConfigFollower {
    /// Starts from the genesis configuration.
    pub fn new(genesis: ChannelConfig) -> Result<Self, String> {
        let updates = ConfigUpdateVerifier::new(&genesis).map_err(|e| e.to_string())?;
        Ok(Self { config: genesis, updates, scheduled: None, applied: Vec::new() })
    }

    /// The configuration that certifies block `number` (blocks are given in
    /// order; a scheduled reconfiguration takes effect past its epoch).
    pub fn config_for(&mut self, number: Seq) -> Result<&ChannelConfig, String> {
        if let Some(s) = self.scheduled.take_if(|s| number > s.last_under_previous) {
            self.updates = ConfigUpdateVerifier::new(&s.config).map_err(|e| e.to_string())?;
            self.config = s.config.clone();
            self.applied.push(s);
        }
        Ok(&self.config)
    }

    /// Verifies block `number > 0`'s certificate under the configuration in
    /// force, then notes a reconfiguration it holds.
    pub fn verify_and_observe(&mut self, block: &PbBlock) -> Result<(), String> {
        let number = block.header.as_ref().map_or(0, |h| h.number);
        let config = self.config_for(number)?;
        verify_block_certificate(block, config).map_err(|e| e.to_string())?;
        self.observe(number, block);
        Ok(())
    }

    /// Notes the first valid reconfiguration of the current configuration
    /// in block `number` (already verified).
    pub fn observe(&mut self, number: Seq, block: &PbBlock) {
        if self.scheduled.is_some() {
            return;
        }
        let envelopes = block.data.as_ref().map_or(&[][..], |d| d.data.as_slice());
        let Some(update) = envelopes.iter().find_map(|e| valid_reconfiguration(&self.updates, e)) else { return };
        let k = self.config.bft.as_ref().map_or(1, |b| b.checkpoint_interval);
        self.scheduled =
            Some(Scheduled { block: number, last_under_previous: epoch_end_after(number, k), config: update.config });
    }

    /// The configuration in force after the last block given.
    pub fn current(&self) -> &ChannelConfig {
        &self.config
    }

    /// A reconfiguration decided but not yet in force.
    pub fn scheduled(&self) -> Option<&Scheduled> {
        self.scheduled.as_ref()
    }
}

//! The PBFT consensus core: a pure, deterministic state machine per channel.
//!
//! No tokio, no clock, no sockets, no disk, no randomness: the shell feeds
//! [`Input`]s to [`Replica::step`] and carries out the returned [`Output`]s
//! in order (a [`Output::Persist`] is durable before anything after it).
//!
//! Layers, each named in PBFT's vocabulary:
//! - [`codec`], [`message`]: canonical encodings of the protocol messages;
//! - [`auth`]: MAC authenticators (fast path) and signatures (slow path);
//! - [`quorum`]: vote keeping, one vote per signer;
//! - [`view_change`]: the decision rules of the new view;
//! - [`replica`]: normal case, checkpoints, view change, state transfer.

pub mod auth;
pub mod codec;
pub mod evidence;
pub mod message;
pub mod quorum;
pub mod replica;
pub mod types;
pub mod view_change;

pub use auth::{Crypto, MacKeys};
pub use evidence::SignedShare;
pub use message::{Batch, Certificate, Digest, Epoch, Frame, Limits, ReplicaId, Seq, View};
pub use replica::{Replica, Stats, Tip};
#[cfg(feature = "mutants")]
pub use types::Mutant;
pub use types::{
    compact, epoch_end_after, Announcement, Block, CertifiedBlock, Config, DropReason, Durable, Input, Output, Phase,
    Refusal, TxId, Validator, ViewChangeReason, VoteKind,
};

#[cfg(test)]
mod tests;

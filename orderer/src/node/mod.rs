//! The node: the runtime around the consensus core (channel tasks, storage,
//! cluster links, API).

pub mod channel;
pub mod identity;

pub use channel::{spawn, ChannelHandle, ChannelParams, Status, SubmitResult, Transport, Wire};

//! The node: the runtime around the consensus core (channel tasks, storage,
//! cluster links, API).

pub mod api;
pub mod channel;
pub mod identity;

pub use channel::{spawn, ChannelHandle, ChannelParams, Status, SubmitResult, Transport, Wire};

//! The node: the runtime around the consensus core (channel tasks, storage,
//! cluster links, API).

pub mod admin;
pub mod api;
pub mod audit_api;
pub mod bench;
pub mod bench_crypto;
pub mod channel;
pub mod client;
pub mod client_cli;
pub mod dev;
pub mod epoch;
pub mod follow;
pub mod identity;
pub mod onboard;
pub mod ops;
pub mod server;

pub use channel::{spawn, ChannelHandle, ChannelParams, Status, SubmitResult, Transport, Wire};

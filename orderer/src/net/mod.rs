//! Cluster links: mutual-TLS transport of opaque consensus frames between
//! consenters.
//!
//! Each node dials every peer once and sends on that outbound link only; it
//! receives on the links its peers dial in. All channels share one link per
//! direction ([`frame`] has the wire format).
//!
//! Identity is the exact TLS certificate the channel configuration lists:
//! - inbound, the client certificate must chain to the consortium roots (the
//!   given `ServerConfig`'s verifier) and equal some peer's `tls_cert_der`;
//!   that match decides [`Inbound::from`]. Any other certificate is refused
//!   and counted ([`LinkStats`]).
//! - outbound, the server certificate must verify (the given `ClientConfig`)
//!   and equal the dialled peer's `tls_cert_der`, else the dialer backs off.
//!
//! Every queue is bounded: a peer's send queue drops (and counts) frames when
//! full, so a dead or slow peer never blocks sends to others; the inbound
//! queue makes readers wait when full (backpressure).

mod backoff;
mod config;
mod dialer;
mod error;
pub mod frame;
mod io;
mod links;
mod listener;
mod registry;
mod rng;
mod stats;

pub use config::{
    ConsenterId, FaultInjection, LinkConfig, PeerEndpoint, ADDR_BYTES_MAX, CERT_BYTES_MAX, FRAME_BYTES_LIMIT,
    PEERS_MAX, QUEUE_FRAMES_LIMIT,
};
pub use error::{FrameError, NetError};
pub use links::{Links, SendOutcome};
pub use stats::{LinkStats, PeerStats};

/// One frame received from a peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inbound {
    /// The sender, decided by its TLS certificate (never by anything it claims).
    pub from: ConsenterId,
    /// The channel the frame belongs to.
    pub channel: String,
    /// The opaque payload.
    pub bytes: Vec<u8>,
}

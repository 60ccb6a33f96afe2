//! Counters of the links, readable while they run.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::config::ConsenterId;

/// Live counters of one peer, shared by its writer, its inbound reader and `send`.
#[derive(Debug, Default)]
pub(crate) struct PeerCounters {
    pub(crate) connected: AtomicBool,
    pub(crate) inbound_connected: AtomicBool,
    pub(crate) sent: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) invalid: AtomicU64,
    pub(crate) fault_dropped: AtomicU64,
    pub(crate) connects: AtomicU64,
    pub(crate) connect_failures: AtomicU64,
    pub(crate) refused_certificates: AtomicU64,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

impl PeerCounters {
    pub(crate) fn snapshot(&self, id: ConsenterId, queue_len: usize) -> PeerStats {
        PeerStats {
            id,
            connected: self.connected.load(Ordering::Relaxed),
            inbound_connected: self.inbound_connected.load(Ordering::Relaxed),
            queue_len,
            sent: read(&self.sent),
            received: read(&self.received),
            dropped: read(&self.dropped),
            invalid: read(&self.invalid),
            fault_dropped: read(&self.fault_dropped),
            connects: read(&self.connects),
            connect_failures: read(&self.connect_failures),
            refused_certificates: read(&self.refused_certificates),
        }
    }
}

/// A snapshot of one peer's link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerStats {
    /// The peer.
    pub id: ConsenterId,
    /// Our outbound link to it is established (TLS done, greeting received).
    pub connected: bool,
    /// It has an authenticated inbound link to us.
    pub inbound_connected: bool,
    /// Frames waiting in its send queue.
    pub queue_len: usize,
    /// Frames written to it.
    pub sent: u64,
    /// Frames received from it.
    pub received: u64,
    /// Frames not delivered because its queue was full or its link broke mid-batch.
    pub dropped: u64,
    /// Frames refused at send time (channel name or size out of bounds).
    pub invalid: u64,
    /// Frames dropped on purpose by fault injection.
    pub fault_dropped: u64,
    /// Outbound links established.
    pub connects: u64,
    /// Outbound attempts that failed (dial, handshake, identity, greeting).
    pub connect_failures: u64,
    /// Outbound attempts where the server presented a valid certificate that
    /// is not the one configured for this peer.
    pub refused_certificates: u64,
}

/// Live counters not tied to one configured peer.
#[derive(Debug, Default)]
pub(crate) struct LinkCounters {
    pub(crate) accepted: AtomicU64,
    pub(crate) handshake_failures: AtomicU64,
    pub(crate) unknown_certificates: AtomicU64,
    pub(crate) protocol_errors: AtomicU64,
    pub(crate) replaced_connections: AtomicU64,
    pub(crate) refused_over_capacity: AtomicU64,
    pub(crate) unknown_peer_sends: AtomicU64,
}

impl LinkCounters {
    pub(crate) fn snapshot(&self) -> LinkStats {
        LinkStats {
            accepted: read(&self.accepted),
            handshake_failures: read(&self.handshake_failures),
            unknown_certificates: read(&self.unknown_certificates),
            protocol_errors: read(&self.protocol_errors),
            replaced_connections: read(&self.replaced_connections),
            refused_over_capacity: read(&self.refused_over_capacity),
            unknown_peer_sends: read(&self.unknown_peer_sends),
        }
    }
}

/// A snapshot of the listener and of sends that matched no peer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Inbound links authenticated as a configured peer.
    pub accepted: u64,
    /// Inbound TLS handshakes that failed (foreign CA, no client certificate, timeout…).
    pub handshake_failures: u64,
    /// Inbound links with a valid certificate that belongs to no configured peer.
    pub unknown_certificates: u64,
    /// Inbound links closed for a bad frame (oversize length, bad channel name…).
    pub protocol_errors: u64,
    /// Inbound links closed because the same peer opened a newer one.
    pub replaced_connections: u64,
    /// Inbound connections refused because too many were open.
    pub refused_over_capacity: u64,
    /// Frames sent to an id that is not a configured peer.
    pub unknown_peer_sends: u64,
}

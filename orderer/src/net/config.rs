//! Configuration of the cluster links and its validation.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use super::error::NetError;
use super::frame::FRAME_BYTES_MIN;

/// Identifier of a consenter, as listed in the channel configuration.
pub type ConsenterId = u32;

/// Hard ceiling on `frame_bytes_max` (the wire length prefix is a u32, and a
/// larger frame would let one peer pin that much memory per connection).
pub const FRAME_BYTES_LIMIT: usize = 256 << 20;
/// Hard ceiling on the per-peer send queue and the inbound queue, in frames.
pub const QUEUE_FRAMES_LIMIT: usize = 1 << 20;
/// Hard ceiling on the number of peers.
pub const PEERS_MAX: usize = 1024;
/// Largest accepted DER certificate.
pub const CERT_BYTES_MAX: usize = 64 << 10;
/// Longest accepted `host:port` address.
pub const ADDR_BYTES_MAX: usize = 512;

/// One remote consenter: where to dial it and which TLS certificate is its identity.
#[derive(Clone, PartialEq, Eq)]
pub struct PeerEndpoint {
    /// The consenter id from the channel configuration.
    pub id: ConsenterId,
    /// `host:port` to dial.
    pub addr: String,
    /// Name checked against the server certificate (DNS name or IP address).
    pub server_name: String,
    /// The exact DER TLS certificate the channel configuration lists for this
    /// consenter: inbound connections presenting it are this consenter, and
    /// the server we dial must present it.
    pub tls_cert_der: Vec<u8>,
}

impl fmt::Debug for PeerEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerEndpoint")
            .field("id", &self.id)
            .field("addr", &self.addr)
            .field("server_name", &self.server_name)
            .field("tls_cert_der_len", &self.tls_cert_der.len())
            .finish()
    }
}

/// Deliberate faults applied on send, for fault tests (there is no `tc netem`
/// here). Only active when explicitly configured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultInjection {
    /// Every frame is written no earlier than this long after it was queued.
    pub delay_ms: u64,
    /// Frames dropped at send time, per thousand.
    pub drop_per_mille: u16,
    /// Seed of the drop decisions, for reproducible runs; random when `None`.
    pub seed: Option<u64>,
}

/// Everything [`super::Links::start`] needs.
#[derive(Clone)]
pub struct LinkConfig {
    /// Our own consenter id; a peer entry with this id is ignored.
    pub me: ConsenterId,
    /// Address to accept inbound links on.
    pub listen: SocketAddr,
    /// The other consenters.
    pub peers: Vec<PeerEndpoint>,
    /// TLS server configuration; must require client certificates chaining
    /// to the consortium TLS roots.
    pub server_config: Arc<rustls::ServerConfig>,
    /// TLS client configuration presenting our TLS certificate and verifying
    /// servers against the consortium TLS roots.
    pub client_config: Arc<rustls::ClientConfig>,
    /// Largest frame (channel name + payload + 1), in bytes.
    pub frame_bytes_max: usize,
    /// Frames queued per peer before further sends to it are dropped.
    pub send_queue_max: usize,
    /// Inbound frames buffered before readers wait (backpressure).
    pub inbound_queue_max: usize,
    /// First reconnect delay.
    pub reconnect_min_ms: u64,
    /// Largest reconnect delay.
    pub reconnect_max_ms: u64,
    /// Limit on a connect, a TLS handshake, or a stalled write.
    pub io_timeout_ms: u64,
    /// Fault injection on send; `None` in production.
    pub fault: Option<FaultInjection>,
}

impl LinkConfig {
    /// Default `frame_bytes_max`: 16 MiB.
    pub const FRAME_BYTES_MAX_DEFAULT: usize = 16 << 20;
    /// Default `send_queue_max`.
    pub const SEND_QUEUE_MAX_DEFAULT: usize = 4096;
    /// Default `inbound_queue_max`.
    pub const INBOUND_QUEUE_MAX_DEFAULT: usize = 4096;
    /// Default `reconnect_min_ms`.
    pub const RECONNECT_MIN_MS_DEFAULT: u64 = 100;
    /// Default `reconnect_max_ms`.
    pub const RECONNECT_MAX_MS_DEFAULT: u64 = 10_000;
    /// Default `io_timeout_ms`.
    pub const IO_TIMEOUT_MS_DEFAULT: u64 = 10_000;

    /// A configuration with every limit at its default and no fault injection.
    pub fn new(
        me: ConsenterId,
        listen: SocketAddr,
        peers: Vec<PeerEndpoint>,
        server_config: Arc<rustls::ServerConfig>,
        client_config: Arc<rustls::ClientConfig>,
    ) -> LinkConfig {
        LinkConfig {
            me,
            listen,
            peers,
            server_config,
            client_config,
            frame_bytes_max: Self::FRAME_BYTES_MAX_DEFAULT,
            send_queue_max: Self::SEND_QUEUE_MAX_DEFAULT,
            inbound_queue_max: Self::INBOUND_QUEUE_MAX_DEFAULT,
            reconnect_min_ms: Self::RECONNECT_MIN_MS_DEFAULT,
            reconnect_max_ms: Self::RECONNECT_MAX_MS_DEFAULT,
            io_timeout_ms: Self::IO_TIMEOUT_MS_DEFAULT,
            fault: None,
        }
    }

    /// Checks every numeric limit (the peer list is checked by the registry).
    pub(crate) fn validate_limits(&self) -> Result<(), NetError> {
        let fault = self.fault.unwrap_or_default();
        let checks: [(&'static str, u64, u64, u64, &'static str); 8] = [
            (
                "frame_bytes_max",
                self.frame_bytes_max as u64,
                FRAME_BYTES_MIN as u64,
                FRAME_BYTES_LIMIT as u64,
                "256..=268435456 bytes",
            ),
            ("send_queue_max", self.send_queue_max as u64, 1, QUEUE_FRAMES_LIMIT as u64, "1..=1048576 frames"),
            ("inbound_queue_max", self.inbound_queue_max as u64, 1, QUEUE_FRAMES_LIMIT as u64, "1..=1048576 frames"),
            ("reconnect_min_ms", self.reconnect_min_ms, 1, self.reconnect_max_ms, "1..=reconnect_max_ms"),
            ("reconnect_max_ms", self.reconnect_max_ms, 1, 600_000, "1..=600000 ms"),
            ("io_timeout_ms", self.io_timeout_ms, 10, 600_000, "10..=600000 ms"),
            ("fault.delay_ms", fault.delay_ms, 0, 60_000, "0..=60000 ms"),
            ("fault.drop_per_mille", u64::from(fault.drop_per_mille), 0, 1000, "0..=1000"),
        ];
        for (field, value, low, high, expected) in checks {
            if value < low || value > high {
                return Err(NetError::OutOfRange { field, value, expected });
            }
        }
        Ok(())
    }
}

//! Typed errors of the cluster links.

use std::net::SocketAddr;

use super::config::ConsenterId;

/// Why the links could not be started or reconfigured. Every message says
/// what was wrong and what to change.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}; check that the address is local and the port is free")]
    Bind {
        /// The configured listen address.
        addr: SocketAddr,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A numeric setting of [`super::LinkConfig`] is outside its allowed range.
    #[error("link setting `{field}` = {value} is out of range: {expected}")]
    OutOfRange {
        /// Name of the [`super::LinkConfig`] field.
        field: &'static str,
        /// The configured value.
        value: u64,
        /// The allowed range, in words.
        expected: &'static str,
    },
    /// More peers than the links support.
    #[error("{count} peers configured, at most {max} are supported; split the cluster or raise the limit")]
    TooManyPeers {
        /// Number of peers given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// Two peers share one consenter id.
    #[error("consenter id {id} appears twice in the peer list; every consenter needs its own id")]
    DuplicatePeerId {
        /// The repeated id.
        id: ConsenterId,
    },
    /// Two peers share one TLS certificate, so inbound identity would be ambiguous.
    #[error("consenters {first} and {second} list the same TLS certificate; each consenter needs its own certificate")]
    DuplicatePeerCertificate {
        /// The first consenter with that certificate.
        first: ConsenterId,
        /// The second consenter with that certificate.
        second: ConsenterId,
    },
    /// A peer has no TLS certificate (or an absurdly large one).
    #[error("consenter {id} has a TLS certificate of {len} bytes; give the DER certificate from the channel configuration (1..={max} bytes)")]
    BadPeerCertificate {
        /// The consenter.
        id: ConsenterId,
        /// Length of the given certificate.
        len: usize,
        /// The largest certificate accepted.
        max: usize,
    },
    /// A peer's TLS server name is not a valid DNS name or IP address.
    #[error("consenter {id} has TLS server name {name:?}, which is not a DNS name or IP address; use the name in its certificate's SAN")]
    BadServerName {
        /// The consenter.
        id: ConsenterId,
        /// The rejected name.
        name: String,
    },
    /// A peer's address is empty or too long.
    #[error("consenter {id} has address {addr:?}; give host:port (at most {max} bytes)")]
    BadPeerAddress {
        /// The consenter.
        id: ConsenterId,
        /// The rejected address.
        addr: String,
        /// The longest address accepted.
        max: usize,
    },
}

/// Why one frame could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The length prefix (or the frame to send) exceeds the limit.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes; the peer misbehaves or `frame_bytes_max` differs between nodes")]
    Oversize {
        /// The announced or requested frame length.
        len: u64,
        /// The configured limit.
        max: usize,
    },
    /// The channel name is empty or longer than allowed.
    #[error("channel name of {len} bytes is invalid; it must be 1..={max} bytes")]
    ChannelName {
        /// Length of the channel name.
        len: usize,
        /// The longest channel name.
        max: usize,
    },
    /// The frame is shorter than its channel name says.
    #[error("frame of {len} bytes is too short for its channel name of {channel_len} bytes")]
    Truncated {
        /// The frame length.
        len: usize,
        /// The announced channel name length.
        channel_len: usize,
    },
    /// The channel name is not UTF-8.
    #[error("channel name is not valid UTF-8")]
    ChannelNotUtf8,
    /// Reading from the connection failed.
    #[error("connection failed while reading a frame: {0}")]
    Io(#[from] std::io::Error),
}

/// Why one connection (inbound or outbound) ended or was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LinkError {
    #[error("timed out after {ms} ms while {during}")]
    Timeout { during: &'static str, ms: u64 },
    #[error("{during}: {source}")]
    Io { during: &'static str, source: std::io::Error },
    #[error("the server presented a certificate other than the one configured for this consenter")]
    WrongServerCertificate,
    #[error("the listener did not confirm the link (bad greeting); it does not know our certificate or speaks another protocol")]
    BadGreeting,
    #[error("the peer sent data on an outbound link, which carries frames in one direction only")]
    UnexpectedData,
    #[error("the peer closed the connection")]
    Closed,
}

impl LinkError {
    pub(crate) fn io(during: &'static str) -> impl FnOnce(std::io::Error) -> LinkError {
        move |source| LinkError::Io { during, source }
    }
}

//! The accept loop: authenticate each inbound link by its exact client
//! certificate, then read frames and hand them to the node (bounded queue:
//! when it is full the reader waits, which pushes back on the sender).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

use super::config::ConsenterId;
use super::error::FrameError;
use super::frame::read_frame;
use super::io::{within, GREETING};
use super::registry::{Admission, Shared};
use super::stats::{bump, PeerCounters};
use super::Inbound;

/// Open inbound connections (authenticated or still in their handshake).
pub(crate) const CONNECTIONS_MAX: usize = 512;
/// Pause after a failed `accept` (e.g. out of file descriptors).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

type Link = TlsStream<TcpStream>;

/// Why an authenticated inbound link ended.
enum End {
    Closed,
    Superseded,
    NodeGone,
    Failed(FrameError),
}

/// The listener's fixed parameters.
pub(crate) struct Listener {
    pub(crate) acceptor: TlsAcceptor,
    pub(crate) shared: Arc<Shared>,
    pub(crate) inbound: mpsc::Sender<Inbound>,
    pub(crate) frame_bytes_max: usize,
    pub(crate) io_timeout_ms: u64,
}

impl Listener {
    /// Accepts until aborted; dropping this future closes every inbound link.
    pub(crate) async fn run(self: Arc<Self>, tcp: TcpListener) {
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = tcp.accept() => match accepted {
                    Ok((stream, remote)) if connections.len() < CONNECTIONS_MAX => {
                        connections.spawn(self.clone().serve(stream, remote));
                    }
                    Ok((_, remote)) => {
                        bump(&self.shared.counters.refused_over_capacity);
                        warn!(%remote, max = CONNECTIONS_MAX, "inbound connection refused: too many open");
                    }
                    Err(e) => {
                        warn!("accepting a connection failed: {e}");
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    }

    async fn serve(self: Arc<Self>, stream: TcpStream, remote: SocketAddr) {
        let Some((mut link, admission)) = self.admit(stream, remote).await else { return };
        let Admission { id, generation, stop, counters, .. } = admission;
        let end = self.receive(&mut link, id, &counters, stop).await;
        self.shared.write().close_session(id, generation);
        match end {
            End::Closed => info!(peer = id, %remote, "inbound cluster link closed by peer"),
            End::Superseded => info!(peer = id, %remote, "inbound cluster link superseded or peer removed"),
            End::NodeGone => info!(peer = id, %remote, "inbound cluster link closed: the node stopped receiving"),
            End::Failed(FrameError::Io(e)) => info!(peer = id, %remote, "inbound cluster link lost: {e}"),
            End::Failed(e) => {
                bump(&self.shared.counters.protocol_errors);
                warn!(peer = id, %remote, "inbound cluster link closed: {e}");
            }
        }
    }

    /// TLS handshake (the server config checks the chain), then identity by
    /// exact certificate match, then the greeting.
    async fn admit(&self, stream: TcpStream, remote: SocketAddr) -> Option<(Link, Admission)> {
        let counters = &self.shared.counters;
        // Latency only; a failure here does not affect correctness.
        let _ = stream.set_nodelay(true);
        let mut link = match within(self.io_timeout_ms, "TLS handshake", self.acceptor.accept(stream)).await {
            Ok(link) => link,
            Err(e) => {
                bump(&counters.handshake_failures);
                warn!(%remote, "inbound TLS handshake refused: {e}");
                return None;
            }
        };
        let presented = link.get_ref().1.peer_certificates().and_then(|chain| chain.first());
        let Some(admission) = presented.and_then(|cert| self.shared.write().admit(cert.as_ref())) else {
            bump(&counters.unknown_certificates);
            warn!(
                %remote,
                "inbound cluster link refused: the client certificate is valid but is no configured consenter's; \
                 add it to the channel configuration if this node should connect"
            );
            return None;
        };
        if admission.replaced {
            bump(&counters.replaced_connections);
        }
        if let Err(e) = within(self.io_timeout_ms, "greeting", link.write_all(GREETING)).await {
            self.shared.write().close_session(admission.id, admission.generation);
            info!(peer = admission.id, %remote, "inbound cluster link lost during greeting: {e}");
            return None;
        }
        bump(&counters.accepted);
        info!(peer = admission.id, %remote, replaced = admission.replaced, "inbound cluster link up");
        Some((link, admission))
    }

    async fn receive(
        &self,
        link: &mut Link,
        from: ConsenterId,
        counters: &PeerCounters,
        mut stop: oneshot::Receiver<()>,
    ) -> End {
        loop {
            // Cancelling `read_frame` is fine here: the other branch ends the link.
            tokio::select! {
                _ = &mut stop => return End::Superseded,
                frame = read_frame(link, self.frame_bytes_max) => match frame {
                    Ok(Some(frame)) => {
                        bump(&counters.received);
                        let inbound = Inbound { from, channel: frame.channel, bytes: frame.payload };
                        if self.inbound.send(inbound).await.is_err() {
                            return End::NodeGone;
                        }
                    }
                    Ok(None) => return End::Closed,
                    Err(e) => return End::Failed(e),
                },
            }
        }
    }
}

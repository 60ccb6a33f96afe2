//! The operations endpoint: `/metrics` (Prometheus text), `/healthz`,
//! `/readyz` and `/version`. Plain HTTP, meant for a loopback or cluster
//! network address; it serves no ledger data.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use prometheus::{Encoder, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};
use serde_json::json;

use super::api::ChannelEntry;
mod metrics;
use crate::consensus::{DropReason, ViewChangeReason};
pub use metrics::{ChannelMetrics, DeliverStream, LATENCY_BUCKETS_SECONDS};

/// Per-peer link figures, supplied by the cluster links.
///
/// `peers` is the original, minimal view; `peer_figures` is what the
/// endpoint renders. Its default derives from `peers` and leaves the
/// figures `peers` does not carry as `None` (not exported). The node's
/// adapter over `net::Links::stats()` should override it (see
/// `docs/metrics.md`, "hooks").
pub trait LinkStats: Send + Sync {
    /// (peer id, connected, send queue length, frames dropped)
    fn peers(&self) -> Vec<(u32, bool, usize, u64)>;

    /// Everything known about each peer's link.
    fn peer_figures(&self) -> Vec<PeerFigures> {
        self.peers()
            .into_iter()
            .map(|(id, connected, queue_len, dropped)| PeerFigures {
                id,
                connected,
                queue_len,
                dropped,
                ..PeerFigures::default()
            })
            .collect()
    }
}

/// One peer's link, as the operations endpoint renders it. `None` means
/// "not supplied by the links adapter": the series is left out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerFigures {
    /// The peer's consenter id.
    pub id: u32,
    /// Our outbound link to it is up.
    pub connected: bool,
    /// It has an authenticated inbound link to us.
    pub inbound_connected: Option<bool>,
    /// Frames waiting in its send queue.
    pub queue_len: usize,
    /// Frames to it dropped (full queue, broken link).
    pub dropped: u64,
    /// Frames written to it.
    pub sent: Option<u64>,
    /// Frames received from it.
    pub received: Option<u64>,
    /// Outbound links established.
    pub connects: Option<u64>,
    /// Outbound attempts that failed.
    pub connect_failures: Option<u64>,
    /// Outbound attempts that met a certificate other than the configured one.
    pub refused_certificates: Option<u64>,
    /// Round-trip time of the last answered keepalive, in microseconds.
    pub rtt_us: Option<u64>,
}

/// What the operations endpoint reads.
#[derive(Clone)]
pub struct OpsState {
    pub channels: Arc<RwLock<HashMap<String, Arc<ChannelEntry>>>>,
    pub links: Arc<dyn LinkStats>,
    pub node_id: u32,
}

pub fn router(state: OpsState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/version", get(version))
        .with_state(state)
}

async fn healthz() -> Response {
    Json(json!({ "status": "OK" })).into_response()
}

async fn version() -> Response {
    Json(json!({ "version": env!("CARGO_PKG_VERSION"), "name": "bftorderer" })).into_response()
}

/// Ready when every joined channel's consenters reachable from this node
/// (counting itself) form a quorum.
async fn readyz(State(s): State<OpsState>) -> Response {
    let connected: std::collections::BTreeSet<u32> =
        s.links.peers().into_iter().filter(|p| p.1).map(|p| p.0).chain([s.node_id]).collect();
    let mut problems = vec![];
    let channels: Vec<Arc<ChannelEntry>> = s.channels.read().map(|c| c.values().cloned().collect()).unwrap_or_default();
    for entry in &channels {
        let reachable = entry.config.consenters.iter().filter(|c| connected.contains(&c.id)).count();
        let quorum = entry.config.quorum();
        if reachable < quorum {
            problems.push(format!(
                "channel {}: {reachable} of {} consenters reachable, quorum is {quorum}",
                entry.config.channel_id,
                entry.config.consenters.len()
            ));
        }
    }
    if problems.is_empty() {
        Json(json!({ "status": "READY", "channels": channels.len() })).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "NOT_READY", "problems": problems }))).into_response()
    }
}

async fn metrics(State(s): State<OpsState>) -> Response {
    match render(&s) {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("metrics: {e}")).into_response(),
    }
}

fn gauge(reg: &Registry, name: &str, help: &str, labels: &[&str]) -> Result<IntGaugeVec, prometheus::Error> {
    let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
    reg.register(Box::new(g.clone()))?;
    Ok(g)
}

fn counter(reg: &Registry, name: &str, help: &str, labels: &[&str]) -> Result<IntCounterVec, prometheus::Error> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    reg.register(Box::new(c.clone()))?;
    Ok(c)
}

/// Every reason a view change can start, so each series exists from the start.
const VIEW_CHANGE_REASONS: [ViewChangeReason; 6] = [
    ViewChangeReason::RequestTimeout,
    ViewChangeReason::LeaderSilent,
    ViewChangeReason::Stalled,
    ViewChangeReason::BadProposal,
    ViewChangeReason::Joined,
    ViewChangeReason::ViewChangeTimeout,
];

/// The drop reasons that mean an authenticator failed to verify, and the
/// `kind` label each gets in `bft_verification_failures_total`.
fn verification_kind(reason: DropReason) -> Option<&'static str> {
    match reason {
        DropReason::BadMac => Some("mac"),
        DropReason::BadSignature => Some("signature"),
        DropReason::Malformed
        | DropReason::WrongChannel
        | DropReason::WrongEpoch
        | DropReason::UnknownSender
        | DropReason::WrongView
        | DropReason::OutsideWindow
        | DropReason::NotFromPrimary
        | DropReason::Equivocation
        | DropReason::InvalidViewChange
        | DropReason::InvalidNewView
        | DropReason::InvalidBlocks => None,
    }
}

/// Not-after times (unix seconds) of this node's certificates pinned in the
/// channel configuration, by kind (`identity`, `tls`).
fn own_certificate_expiry(entry: &ChannelEntry, node_id: u32) -> Vec<(&'static str, i64)> {
    let Some(me) = entry.config.consenters.iter().find(|c| c.id == node_id) else { return vec![] };
    [("identity", &me.identity_cert), ("tls", &me.tls_cert)]
        .into_iter()
        .filter_map(|(kind, pem)| ca_tools::inspect(pem.as_bytes()).ok().map(|info| (kind, info.not_after_unix)))
        .collect()
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Renders the current figures: gauges and cumulative counters rebuilt per
/// scrape from the channels' status and the links' counters (both
/// cumulative), plus each channel's event-fed [`ChannelMetrics`].
fn render(s: &OpsState) -> Result<String, prometheus::Error> {
    let reg = Registry::new();
    let channels: Vec<Arc<ChannelEntry>> = s.channels.read().map(|c| c.values().cloned().collect()).unwrap_or_default();
    render_channels(&reg, &channels, s.node_id)?;
    render_peers(&reg, &s.links.peer_figures())?;
    let mut out = Vec::new();
    TextEncoder::new().encode(&reg.gather(), &mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn render_channels(reg: &Registry, channels: &[Arc<ChannelEntry>], node_id: u32) -> Result<(), prometheus::Error> {
    let ch = &["channel"];
    let height = gauge(reg, "bft_ledger_height", "Number of the last committed block", ch)?;
    let certified = gauge(reg, "bft_certified_height", "Number of the last block with a quorum certificate", ch)?;
    let envelopes = gauge(reg, "bft_ledger_envelopes", "Envelopes in the stored ledger", ch)?;
    let view = gauge(reg, "bft_view", "Current PBFT view", ch)?;
    let leader = gauge(reg, "bft_leader_id", "Consenter id of the current primary", ch)?;
    let is_leader = gauge(reg, "bft_is_leader", "1 if this node is the primary", ch)?;
    let changing = gauge(reg, "bft_view_change_in_progress", "1 while a view change is in progress", ch)?;
    let pool = gauge(reg, "bft_request_pool_size", "Envelopes waiting to be ordered", ch)?;
    let in_flight = gauge(reg, "bft_in_flight_blocks", "Proposals in flight above the last executed block", ch)?;
    let epoch = gauge(reg, "bft_epoch", "Current epoch (MAC keys and consenter set)", ch)?;
    let epoch_height = gauge(reg, "bft_epoch_start_height", "Block number at which the current epoch took effect", ch)?;
    let rotate_blocks = gauge(
        reg,
        "bft_key_rotation_every_blocks",
        "Key rotation policy: a new epoch every this many blocks (0: off)",
        ch,
    )?;
    let rotate_seconds = gauge(
        reg,
        "bft_key_rotation_every_seconds",
        "Key rotation policy: a new epoch every this many seconds (0: off)",
        ch,
    )?;
    let switches =
        counter(reg, "bft_epoch_switches_total", "Epoch switches (MAC key rotations) this process carried out", ch)?;
    let announced = gauge(
        reg,
        "bft_epoch_next_announced",
        "1 once this node's key announcement for the next epoch is in the ledger",
        ch,
    )?;
    let consenters = gauge(reg, "bft_consenters", "Consenters of the channel", ch)?;
    let config_sequence =
        gauge(reg, "bft_config_sequence", "Sequence number of the channel configuration in force here", ch)?;
    let retired =
        gauge(reg, "bft_consenter_removed", "1 once a reconfiguration removed this node from the channel", ch)?;
    let quorum = gauge(reg, "bft_quorum", "Votes needed for a quorum on the channel", ch)?;
    let expiry = gauge(
        reg,
        "bft_certificate_expiry_timestamp_seconds",
        "Not-after time (unix seconds) of this node's certificates pinned in the channel configuration",
        &["channel", "kind"],
    )?;
    let dropped =
        counter(reg, "bft_messages_dropped_total", "Consensus messages dropped, by reason", &["channel", "reason"])?;
    let failures = counter(
        reg,
        "bft_verification_failures_total",
        "Consensus messages whose MAC or signature did not verify",
        &["channel", "kind"],
    )?;
    let vcs = counter(reg, "bft_view_changes_total", "View changes started, by reason", &["channel", "reason"])?;
    let conflicts =
        counter(reg, "bft_conflicting_votes_total", "Second, different votes received from one signer", ch)?;
    for entry in channels {
        let ch = entry.config.channel_id.as_str();
        let st = entry.handle.status().borrow().clone();
        height.with_label_values(&[ch]).set(to_i64(st.height));
        certified.with_label_values(&[ch]).set(to_i64(st.certified));
        envelopes.with_label_values(&[ch]).set(to_i64(st.envelopes));
        view.with_label_values(&[ch]).set(to_i64(st.view));
        leader.with_label_values(&[ch]).set(i64::from(st.primary));
        is_leader.with_label_values(&[ch]).set(i64::from(st.primary == node_id && !st.changing_view));
        changing.with_label_values(&[ch]).set(i64::from(st.changing_view));
        pool.with_label_values(&[ch]).set(st.pool as i64);
        in_flight.with_label_values(&[ch]).set(st.in_flight as i64);
        // A channel task that has not published its status yet shows epoch 0:
        // fall back to the epoch the channel was joined in.
        let current = if st.epoch == 0 { entry.epoch } else { st.epoch };
        epoch.with_label_values(&[ch]).set(to_i64(current));
        epoch_height.with_label_values(&[ch]).set(to_i64(st.epoch_base));
        switches.with_label_values(&[ch]).inc_by(st.epoch_switches);
        announced.with_label_values(&[ch]).set(i64::from(st.announced_next));
        let policy = entry.config.key_rotation.unwrap_or_default();
        rotate_blocks.with_label_values(&[ch]).set(to_i64(policy.every_blocks));
        rotate_seconds.with_label_values(&[ch]).set(to_i64(policy.every_seconds));
        consenters.with_label_values(&[ch]).set(entry.config.consenters.len() as i64);
        let sequence = st.config.as_ref().map_or(entry.config.sequence, |c| c.sequence);
        config_sequence.with_label_values(&[ch]).set(to_i64(sequence));
        retired.with_label_values(&[ch]).set(i64::from(st.retired));
        quorum.with_label_values(&[ch]).set(entry.config.quorum() as i64);
        for (kind, not_after) in own_certificate_expiry(entry, node_id) {
            expiry.with_label_values(&[ch, kind]).set(not_after);
        }
        conflicts.with_label_values(&[ch]).inc_by(st.stats.conflicting_votes);
        for kind in ["mac", "signature"] {
            failures.with_label_values(&[ch, kind]).inc_by(0);
        }
        for (reason, n) in &st.stats.dropped {
            dropped.with_label_values(&[ch, reason.as_str()]).inc_by(*n);
            if let Some(kind) = verification_kind(*reason) {
                failures.with_label_values(&[ch, kind]).inc_by(*n);
            }
        }
        for reason in VIEW_CHANGE_REASONS {
            let n = st.stats.view_changes.get(&reason).copied().unwrap_or(0);
            vcs.with_label_values(&[ch, reason.as_str()]).inc_by(n);
        }
        entry.handle.metrics().register(reg)?;
    }
    Ok(())
}

fn render_peers(reg: &Registry, peers: &[PeerFigures]) -> Result<(), prometheus::Error> {
    let p = &["peer"];
    let up = gauge(reg, "bft_peer_connected", "1 if our outbound link to the peer is up", p)?;
    let inbound = gauge(reg, "bft_peer_inbound_connected", "1 if the peer has an authenticated link to us", p)?;
    let queue = gauge(reg, "bft_peer_send_queue_length", "Frames queued to the peer", p)?;
    let dropped =
        counter(reg, "bft_peer_dropped_frames_total", "Frames to the peer dropped (full queue, broken link)", p)?;
    let sent = counter(reg, "bft_peer_sent_frames_total", "Frames written to the peer", p)?;
    let received = counter(reg, "bft_peer_received_frames_total", "Frames received from the peer", p)?;
    let connects = counter(reg, "bft_peer_connects_total", "Outbound links to the peer established", p)?;
    let failures = counter(reg, "bft_peer_connect_failures_total", "Outbound attempts to the peer that failed", p)?;
    let refused = counter(
        reg,
        "bft_peer_refused_certificates_total",
        "Outbound attempts where the peer's address presented a certificate other than the configured one",
        p,
    )?;
    let rtt = prometheus::GaugeVec::new(
        Opts::new("bft_peer_rtt_seconds", "Round-trip time of the last answered keepalive to the peer"),
        p,
    )?;
    reg.register(Box::new(rtt.clone()))?;
    for f in peers {
        let id = f.id.to_string();
        let l = &[id.as_str()];
        up.with_label_values(l).set(i64::from(f.connected));
        queue.with_label_values(l).set(f.queue_len as i64);
        dropped.with_label_values(l).inc_by(f.dropped);
        if let Some(v) = f.inbound_connected {
            inbound.with_label_values(l).set(i64::from(v));
        }
        let optional = [
            (&sent, f.sent),
            (&received, f.received),
            (&connects, f.connects),
            (&failures, f.connect_failures),
            (&refused, f.refused_certificates),
        ];
        for (vec, value) in optional {
            if let Some(v) = value {
                vec.with_label_values(l).inc_by(v);
            }
        }
        if let Some(us) = f.rtt_us {
            rtt.with_label_values(l).set(us as f64 / 1e6);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct MinimalLinks;

    impl LinkStats for MinimalLinks {
        fn peers(&self) -> Vec<(u32, bool, usize, u64)> {
            vec![(2, true, 3, 7), (3, false, 0, 1)]
        }
    }

    fn scrape_peers(peers: &[PeerFigures]) -> String {
        let reg = Registry::new();
        render_peers(&reg, peers).unwrap();
        let mut out = Vec::new();
        TextEncoder::new().encode(&reg.gather(), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn links_adapter_without_extended_figures_exports_only_what_it_knows() {
        let text = scrape_peers(&MinimalLinks.peer_figures());
        assert!(text.contains("bft_peer_connected{peer=\"2\"} 1\n"), "{text}");
        assert!(text.contains("bft_peer_connected{peer=\"3\"} 0\n"), "{text}");
        assert!(text.contains("bft_peer_send_queue_length{peer=\"2\"} 3\n"), "{text}");
        assert!(text.contains("bft_peer_dropped_frames_total{peer=\"2\"} 7\n"), "{text}");
        assert!(!text.contains("bft_peer_rtt_seconds{"), "{text}");
        assert!(!text.contains("bft_peer_sent_frames_total{"), "{text}");
    }

    #[test]
    fn full_peer_figures_export_rtt_in_seconds_and_link_counters() {
        let figures = PeerFigures {
            id: 4,
            connected: true,
            inbound_connected: Some(true),
            sent: Some(10),
            received: Some(11),
            connects: Some(1),
            connect_failures: Some(2),
            refused_certificates: Some(0),
            rtt_us: Some(1500),
            ..PeerFigures::default()
        };
        let text = scrape_peers(&[figures]);
        assert!(text.contains("bft_peer_rtt_seconds{peer=\"4\"} 0.0015\n"), "{text}");
        assert!(text.contains("bft_peer_inbound_connected{peer=\"4\"} 1\n"), "{text}");
        assert!(text.contains("bft_peer_sent_frames_total{peer=\"4\"} 10\n"), "{text}");
        assert!(text.contains("bft_peer_connect_failures_total{peer=\"4\"} 2\n"), "{text}");
        assert!(text.contains("bft_peer_refused_certificates_total{peer=\"4\"} 0\n"), "{text}");
    }

    #[test]
    fn only_bad_mac_and_bad_signature_count_as_verification_failures() {
        assert_eq!(verification_kind(DropReason::BadMac), Some("mac"));
        assert_eq!(verification_kind(DropReason::BadSignature), Some("signature"));
        assert_eq!(verification_kind(DropReason::WrongEpoch), None);
        assert_eq!(verification_kind(DropReason::Equivocation), None);
    }
}

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

/// Per-peer link figures, supplied by the cluster links.
pub trait LinkStats: Send + Sync {
    /// (peer id, connected, send queue length, frames dropped)
    fn peers(&self) -> Vec<(u32, bool, usize, u64)>;
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

/// Renders the current figures (built per scrape from the channels' status;
/// nothing is kept between scrapes).
fn render(s: &OpsState) -> Result<String, prometheus::Error> {
    let reg = Registry::new();
    let height = gauge(&reg, "bft_ledger_height", "Number of the last committed block", &["channel"])?;
    let certified =
        gauge(&reg, "bft_certified_height", "Number of the last block with a quorum certificate", &["channel"])?;
    let envelopes = gauge(&reg, "bft_ledger_envelopes", "Envelopes in the stored ledger", &["channel"])?;
    let view = gauge(&reg, "bft_view", "Current PBFT view", &["channel"])?;
    let leader = gauge(&reg, "bft_leader_id", "Consenter id of the current primary", &["channel"])?;
    let is_leader = gauge(&reg, "bft_is_leader", "1 if this node is the primary", &["channel"])?;
    let changing = gauge(&reg, "bft_view_change_in_progress", "1 while a view change is in progress", &["channel"])?;
    let pool = gauge(&reg, "bft_request_pool_size", "Envelopes waiting to be ordered", &["channel"])?;
    let in_flight =
        gauge(&reg, "bft_in_flight_blocks", "Proposals in flight above the last executed block", &["channel"])?;
    let dropped =
        counter(&reg, "bft_messages_dropped_total", "Consensus messages dropped, by reason", &["channel", "reason"])?;
    let vcs = counter(&reg, "bft_view_changes_total", "View changes started, by reason", &["channel", "reason"])?;
    let conflicts =
        counter(&reg, "bft_conflicting_votes_total", "Second, different votes received from one signer", &["channel"])?;
    let peer_up = gauge(&reg, "bft_peer_connected", "1 if the link to the peer is up", &["peer"])?;
    let peer_queue = gauge(&reg, "bft_peer_send_queue_length", "Frames queued to the peer", &["peer"])?;
    let peer_dropped =
        counter(&reg, "bft_peer_dropped_frames_total", "Frames to the peer dropped on a full queue", &["peer"])?;
    let channels: Vec<Arc<ChannelEntry>> = s.channels.read().map(|c| c.values().cloned().collect()).unwrap_or_default();
    for entry in channels {
        let ch = entry.config.channel_id.as_str();
        let st = entry.handle.status().borrow().clone();
        height.with_label_values(&[ch]).set(st.height as i64);
        certified.with_label_values(&[ch]).set(st.certified as i64);
        envelopes.with_label_values(&[ch]).set(st.envelopes as i64);
        view.with_label_values(&[ch]).set(st.view as i64);
        leader.with_label_values(&[ch]).set(i64::from(st.primary));
        is_leader.with_label_values(&[ch]).set(i64::from(st.primary == s.node_id && !st.changing_view));
        changing.with_label_values(&[ch]).set(i64::from(st.changing_view));
        pool.with_label_values(&[ch]).set(st.pool as i64);
        in_flight.with_label_values(&[ch]).set(st.in_flight as i64);
        conflicts.with_label_values(&[ch]).inc_by(st.stats.conflicting_votes);
        for (reason, n) in &st.stats.dropped {
            dropped.with_label_values(&[ch, reason.as_str()]).inc_by(*n);
        }
        for (reason, n) in &st.stats.view_changes {
            vcs.with_label_values(&[ch, reason.as_str()]).inc_by(*n);
        }
    }
    for (id, up, queue, drops) in s.links.peers() {
        let p = id.to_string();
        peer_up.with_label_values(&[&p]).set(i64::from(up));
        peer_queue.with_label_values(&[&p]).set(queue as i64);
        peer_dropped.with_label_values(&[&p]).inc_by(drops);
    }
    let mut out = Vec::new();
    TextEncoder::new().encode(&reg.gather(), &mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

//! The vote log on a running node: the channel task's [`AuditLog`] (turns
//! the core's vote records and evidence into signed log records, stored in
//! the same group commit as the votes, before they leave the node), and the
//! export route of the admin API:
//!
//! - `GET /admin/v1/channels/{channel}/votes?from=N&to=M` — this node's
//!   vote log of the channel for block heights `N..=M` (both optional), as
//!   the export file of docs/auditor-guide.md (JSON Lines, end line signed
//!   by this node). Allowed: an admin of this node's organisation, or an
//!   `auditor` of an organisation of the channel (TLS client certificate).

use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use ca_tools::{Msp, OrgTrust, Role};
use serde::Deserialize;
use serde_json::json;

use super::api::Peer;
use super::server::Node;
use crate::audit::export::{export, ExportRange};
use crate::audit::{Entry, LogWriter, Record};
use crate::consensus::{Crypto, Durable, Replica, ReplicaId, SignedShare, VoteKind};
use crate::storage::{Store, StoreError};

/// One consenter's log of one channel, in the channel task.
pub struct AuditLog {
    writer: LogWriter,
    signer: Box<dyn Crypto + Send>,
}

impl AuditLog {
    /// Continues the stored log of `channel`.
    pub fn resume(
        store: &Store,
        channel: &str,
        me: ReplicaId,
        signer: Box<dyn Crypto + Send>,
    ) -> Result<Self, StoreError> {
        let (length, _) = store.audit_records(channel, 0..=0, 0)?;
        let last = match length {
            0 => None,
            n => store.audit_records(channel, n - 1..=n - 1, 1)?.1.pop(),
        };
        Ok(Self { writer: LogWriter::resume(channel, me, last.as_ref()), signer })
    }

    /// The block-certificate shares and view changes among `records` (what
    /// the core is about to make durable), as signed log records.
    pub fn record_votes(&mut self, records: &[Durable], replica: &Replica, out: &mut Vec<Record>) {
        let epoch = replica.config().epoch;
        for r in records {
            let entry = match r {
                Durable::Vote { kind: VoteKind::BlockSig, seq, digest, .. } => {
                    Entry::Block { epoch, view: replica.view(), seq: *seq, header_hash: *digest }
                }
                Durable::Vote { kind: VoteKind::ViewChange, view, digest, .. } => {
                    Entry::ViewChange { epoch, view: *view, height: replica.executed(), digest: *digest }
                }
                Durable::Vote {
                    kind: VoteKind::PrePrepare | VoteKind::Prepare | VoteKind::Commit | VoteKind::NewView,
                    ..
                }
                | Durable::View { .. }
                | Durable::Batch { .. }
                | Durable::ViewChangeSent(_)
                | Durable::NewViewSent(_)
                | Durable::Stable(_) => continue,
            };
            out.push(self.writer.append(entry, &*self.signer));
        }
    }

    /// Conflicting shares of other consenters, kept as evidence.
    pub fn record_evidence(&mut self, shares: Vec<SignedShare>, out: &mut Vec<Record>) {
        for s in shares {
            out.extend(self.writer.observe(s, &*self.signer));
        }
    }
}

#[derive(Clone)]
struct AuditState {
    node: Arc<Node>,
    admins: Arc<OrgTrust>,
}

/// The audit routes of the admin API.
pub fn router(node: Arc<Node>, admins: OrgTrust) -> Router {
    Router::new()
        .route("/admin/v1/channels/{channel}/votes", get(votes))
        .with_state(AuditState { node, admins: Arc::new(admins) })
}

#[derive(Deserialize)]
struct Range {
    from: Option<u64>,
    to: Option<u64>,
}

fn error(code: StatusCode, message: impl Into<String>) -> Response {
    (code, Json(json!({ "error": message.into() }))).into_response()
}

async fn votes(
    State(s): State<AuditState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    Path(channel): Path<String>,
    range: Result<Query<Range>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Some(cert) = &peer.cert_der else {
        return error(StatusCode::FORBIDDEN, "a client certificate is required");
    };
    let Some(entry) = s.node.entries.read().ok().and_then(|m| m.get(&channel).cloned()) else {
        return error(StatusCode::NOT_FOUND, format!("channel {channel:?} is not joined on this node"));
    };
    let now = ca_tools::now_unix();
    let admin = ca_tools::verify_tls_identity(cert, std::slice::from_ref(&s.admins), now, &[Role::Admin]).is_ok();
    if !admin && entry.tls_clients.verify(cert, now, &[Role::Auditor]).is_err() {
        return error(
            StatusCode::FORBIDDEN,
            "an admin certificate of this node's organisation or an auditor certificate of an organisation of the channel is required",
        );
    }
    let Query(range) = match range {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("from and to must be block numbers: {e}")),
    };
    if let (Some(a), Some(b)) = (range.from, range.to) {
        if a > b {
            return error(StatusCode::BAD_REQUEST, format!("from ({a}) is above to ({b})"));
        }
    }
    let me = s.node.config().node.id;
    let certificate = entry.config.consenter(me).map(|c| c.identity_cert.clone()).unwrap_or_default();
    let msp = Msp::load(Some(&s.node.config().node.msp_id), &s.node.config().node.msp_dir);
    let key = match msp {
        Ok(m) => m.key,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, format!("this node's signing key: {e}")),
    };
    let store = s.node.store().clone();
    let range = ExportRange { from: range.from.unwrap_or(0), to: range.to };
    let result = tokio::task::spawn_blocking(move || {
        let signer = crate::audit::cli::KeySigner(key);
        export(&store, &channel, Some(me), &|_| certificate.clone(), &range, Some(&signer))
    })
    .await;
    match result {
        Ok(Ok(bytes)) => ([(header::CONTENT_TYPE, "application/x-ndjson")], bytes).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

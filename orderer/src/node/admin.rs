//! The admin API: Fabric's channel participation shape.
//!
//! - `GET /participation/v1/channels` — the joined channels.
//! - `GET /participation/v1/channels/{channel}` — `name, url,
//!   consensusRelation, status, height`.
//! - `POST /participation/v1/channels` — join with a genesis (config) block:
//!   the body is the block's protobuf bytes (Fabric's osnadmin sends it as
//!   multipart field `config-block`; both are accepted).
//! - `DELETE /participation/v1/channels/{channel}` — leave, deleting the
//!   channel's ledger on this node.
//!
//! - `POST /admin/v1/channels/{channel}/rotate-keys` — announce a fresh MAC
//!   key for the channel's next epoch now (the other consenters follow when
//!   the announcement is ordered); answers `{channel, epoch, next_epoch,
//!   announced}` with the current epoch.
//!
//! Every call needs a TLS client certificate of an admin of this node's own
//! organisation.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ca_tools::{OrgTrust, Role};
use channels::proto::common::Block as PbBlock;
use prost::Message;
use serde_json::json;

use super::api::{ChannelEntry, Peer};
use super::server::{Joined, Node, NodeError};

#[derive(Clone)]
struct AdminState {
    node: Arc<Node>,
    admins: Arc<OrgTrust>,
}

pub fn router(node: Arc<Node>, admins: OrgTrust, body_bytes_max: usize) -> Router {
    Router::new()
        .route("/participation/v1/channels", get(list).post(join))
        .route("/participation/v1/channels/{channel}", get(info).delete(remove))
        .route("/admin/v1/channels/{channel}/rotate-keys", post(rotate_keys))
        .layer(DefaultBodyLimit::max(body_bytes_max))
        .with_state(AdminState { node, admins: Arc::new(admins) })
}

fn error(code: StatusCode, message: impl Into<String>) -> Response {
    (code, Json(json!({ "error": message.into() }))).into_response()
}

fn check_admin(s: &AdminState, peer: &Peer) -> Result<(), Box<Response>> {
    let Some(cert) = &peer.cert_der else {
        return Err(Box::new(error(StatusCode::FORBIDDEN, "a client certificate is required")));
    };
    ca_tools::verify_tls_identity(cert, std::slice::from_ref(&s.admins), ca_tools::now_unix(), &[Role::Admin])
        .map(|_| ())
        .map_err(|e| {
            Box::new(error(
                StatusCode::FORBIDDEN,
                format!("an admin certificate of this node's organisation is required: {e}"),
            ))
        })
}

fn channel_json(entry: &ChannelEntry) -> serde_json::Value {
    let name = &entry.config.channel_id;
    let height = entry.handle.status().borrow().certified + 1;
    json!({
        "name": name,
        "url": format!("/participation/v1/channels/{name}"),
        "consensusRelation": "consenter",
        "status": "active",
        "height": height,
    })
}

async fn list(State(s): State<AdminState>, ConnectInfo(peer): ConnectInfo<Peer>) -> Response {
    if let Err(r) = check_admin(&s, &peer) {
        return *r;
    }
    let mut names: Vec<String> = s.node.entries.read().map(|m| m.keys().cloned().collect()).unwrap_or_default();
    names.sort();
    let channels: Vec<serde_json::Value> =
        names.iter().map(|n| json!({ "name": n, "url": format!("/participation/v1/channels/{n}") })).collect();
    Json(json!({ "systemChannel": null, "channels": channels })).into_response()
}

async fn info(
    State(s): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    Path(channel): Path<String>,
) -> Response {
    if let Err(r) = check_admin(&s, &peer) {
        return *r;
    }
    match s.node.entries.read().ok().and_then(|m| m.get(&channel).cloned()) {
        Some(entry) => Json(channel_json(&entry)).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("channel {channel:?} is not joined on this node")),
    }
}

/// The block bytes from a raw body or from the `config-block` field of a
/// multipart body.
fn block_bytes(headers: &HeaderMap, body: &[u8]) -> Result<Vec<u8>, String> {
    let ctype = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let Some(boundary) = ctype.strip_prefix("multipart/form-data").and_then(|r| r.split("boundary=").nth(1)) else {
        return Ok(body.to_vec());
    };
    let boundary = format!("--{}", boundary.trim_matches('"'));
    let find = |hay: &[u8], needle: &[u8], from: usize| {
        hay.get(from..).and_then(|h| h.windows(needle.len()).position(|w| w == needle)).map(|p| p + from)
    };
    let mut at = 0;
    while let Some(start) = find(body, boundary.as_bytes(), at) {
        let part_start = start + boundary.len();
        let Some(headers_end) = find(body, b"\r\n\r\n", part_start) else { break };
        let part_headers = String::from_utf8_lossy(&body[part_start..headers_end]);
        let Some(next) = find(body, boundary.as_bytes(), headers_end) else { break };
        if part_headers.contains("name=\"config-block\"") {
            let end = next.saturating_sub(2).max(headers_end + 4);
            return Ok(body[headers_end + 4..end].to_vec());
        }
        at = next;
    }
    Err("multipart body without a config-block field".into())
}

async fn join(
    State(s): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    if let Err(r) = check_admin(&s, &peer) {
        return *r;
    }
    let body = match body {
        Ok(b) => b,
        Err(e) => return error(e.status(), e.to_string()),
    };
    let bytes = match block_bytes(&headers, &body) {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let block = match PbBlock::decode(bytes.as_slice()) {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("the body is not a protobuf Block: {e}")),
    };
    match s.node.join_or_onboard(block) {
        Ok(Joined::Active(entry)) => (StatusCode::CREATED, Json(channel_json(&entry))).into_response(),
        Ok(Joined::Onboarding(name)) => (
            StatusCode::CREATED,
            Json(json!({
                "name": name,
                "url": format!("/participation/v1/channels/{name}"),
                "consensusRelation": "consenter",
                "status": "onboarding",
                "height": 0,
            })),
        )
            .into_response(),
        Err(e @ NodeError::AlreadyJoined(_)) => error(StatusCode::CONFLICT, e.to_string()),
        Err(e @ (NodeError::Channel { .. } | NodeError::Identity(_) | NodeError::Retired { .. })) => {
            error(StatusCode::BAD_REQUEST, e.to_string())
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn remove(
    State(s): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    Path(channel): Path<String>,
) -> Response {
    if let Err(r) = check_admin(&s, &peer) {
        return *r;
    }
    match s.node.leave(&channel).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e @ NodeError::NotJoined(_)) => error(StatusCode::NOT_FOUND, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn rotate_keys(
    State(s): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    Path(channel): Path<String>,
) -> Response {
    if let Err(r) = check_admin(&s, &peer) {
        return *r;
    }
    let Some(entry) = s.node.entries.read().ok().and_then(|m| m.get(&channel).cloned()) else {
        return error(StatusCode::NOT_FOUND, format!("channel {channel:?} is not joined on this node"));
    };
    match entry.handle.rotate_keys().await {
        Some(answer) => (
            StatusCode::ACCEPTED,
            Json(json!({
                "channel": channel,
                "epoch": answer.epoch,
                "next_epoch": answer.epoch + 1,
                "announced": answer.announced,
                "info": if answer.announced {
                    "this node's key for the next epoch is already ordered; the switch follows once a quorum announced"
                } else {
                    "this node announces a fresh key for the next epoch; the other consenters follow when it is ordered"
                },
            })),
        )
            .into_response(),
        None => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the channel is shutting down or runs without key rotation; retry later",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_block_is_found_in_an_osnadmin_style_multipart_body() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"config-block\"; filename=\"b\"\r\nContent-Type: application/octet-stream\r\n\r\n\x01\x02\x03\r\n--XyZ--\r\n";
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, "multipart/form-data; boundary=XyZ".parse().unwrap());
        assert_eq!(block_bytes(&headers, body).unwrap(), vec![1, 2, 3]);
        assert_eq!(block_bytes(&HeaderMap::new(), b"raw").unwrap(), b"raw".to_vec());
        let no_field = b"--XyZ\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nx\r\n--XyZ--\r\n";
        assert!(block_bytes(&headers, no_field).is_err());
    }
}

//! The fault tests' clients: each submits signed envelopes continuously over
//! HTTPS with mutual TLS to its home node (elsewhere for a while when that
//! node does not answer), and records every
//! answer. A submission uses `wait=commit`, so SUCCESS (HTTP 200) names the
//! committed block: the acknowledgement the checker holds the cluster to.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use ca_tools::Msp;
use channels::proto::common::HeaderType;
use prost::Message;
use tokio::sync::watch;

use super::check::Ack;
use crate::node::client::HttpsClient;

/// Submissions one client makes, at most (a bound on its records).
const SUBMISSIONS_MAX: usize = 200_000;
/// How long a client waits to connect to a node.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a client waits for one answer; past it the outcome is unknown.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Submissions a client makes elsewhere after its node did not answer.
const AWAY_SUBMISSIONS: usize = 20;
/// Pause after a refusal or a failure before the next submission.
const BACKOFF: Duration = Duration::from_millis(200);

/// Where a client finds node `i + 1`'s peer API.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub addr: String,
    pub host: String,
}

/// What the clients were told.
#[derive(Debug, Default)]
pub struct History {
    pub acks: Vec<Ack>,
    /// Every tx id sent, whatever the answer.
    pub submitted: HashSet<String>,
    /// HTTP 202: accepted, not committed within the server's wait.
    pub accepted_uncommitted: usize,
    /// Refusals (503 while a quorum is missing, 4xx).
    pub refused: usize,
    /// No answer: connection refused or reset, or timed out.
    pub unanswered: usize,
}

impl History {
    pub fn merge(&mut self, other: History) {
        self.acks.extend(other.acks);
        self.submitted.extend(other.submitted);
        self.accepted_uncommitted += other.accepted_uncommitted;
        self.refused += other.refused;
        self.unanswered += other.unanswered;
    }
}

/// The parts of the API's JSON answer a client reads.
#[derive(serde::Deserialize)]
struct Answer {
    block: Option<u64>,
}

/// Runs client `k` until `stop` turns true.
pub async fn client(
    k: usize,
    endpoints: Arc<Vec<Endpoint>>,
    channel: String,
    msp: Arc<Msp>,
    tls: Arc<rustls::ClientConfig>,
    mut stop: watch::Receiver<bool>,
) -> History {
    assert!(!endpoints.is_empty(), "a client needs a node to talk to");
    let mut history = History::default();
    let mut conns: Vec<Option<HttpsClient>> = endpoints.iter().map(|_| None).collect();
    let path = format!("/v1/channels/{channel}/envelopes?wait=commit");
    // A client has a home node (so a node that hangs holds up only its own
    // clients); when it gets no answer it moves to the next node for a
    // while, then goes home again.
    let home = k % endpoints.len();
    let mut node = home;
    let mut away_until = 0;
    for i in 0..SUBMISSIONS_MAX {
        if *stop.borrow() {
            break;
        }
        if i >= away_until {
            node = home;
        }
        let data = format!("faults client {k} envelope {i}");
        let Ok(envelope) =
            channels::envelope::build_envelope_now(&channel, &msp, data.as_bytes(), HeaderType::EndorserTransaction)
        else {
            history.refused += 1;
            continue;
        };
        let bytes = envelope.encode_to_vec();
        let Ok(decoded) = channels::envelope::decode_envelope(&bytes, usize::MAX) else { continue };
        let tx_id = decoded.channel_header.tx_id;
        history.submitted.insert(tx_id.clone());
        let answer = tokio::select! {
            a = submit(&mut conns[node], &endpoints[node], &tls, &path, &bytes) => a,
            _ = stop.changed() => None,
        };
        match answer {
            Some((200, body)) => match serde_json::from_slice::<Answer>(&body).ok().and_then(|a| a.block) {
                Some(block) => history.acks.push(Ack { tx_id, block, node: node + 1 }),
                None => history.refused += 1,
            },
            Some((202, _)) => history.accepted_uncommitted += 1,
            Some(_) => {
                history.refused += 1;
                tokio::time::sleep(BACKOFF).await;
            }
            None => {
                conns[node] = None;
                node = (node + 1) % endpoints.len();
                away_until = i + AWAY_SUBMISSIONS;
                history.unanswered += 1;
                tokio::time::sleep(BACKOFF).await;
            }
        }
    }
    history
}

/// One submission on `conn` (connecting first when needed); `None` when no
/// answer came.
async fn submit(
    conn: &mut Option<HttpsClient>,
    endpoint: &Endpoint,
    tls: &Arc<rustls::ClientConfig>,
    path: &str,
    body: &[u8],
) -> Option<(u16, Vec<u8>)> {
    if conn.is_none() {
        let c =
            tokio::time::timeout(CONNECT_TIMEOUT, HttpsClient::connect(&endpoint.addr, &endpoint.host, tls.clone()))
                .await
                .ok()?
                .ok()?;
        *conn = Some(c);
    }
    let c = conn.as_mut()?;
    match tokio::time::timeout(ANSWER_TIMEOUT, c.request("POST", path, body)).await {
        Ok(Ok(r)) => Some((r.status, r.body)),
        _ => {
            *conn = None;
            None
        }
    }
}

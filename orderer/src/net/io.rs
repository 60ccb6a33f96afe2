//! Helpers shared by the dialer and the listener.

use std::future::Future;
use std::time::Duration;

use super::error::LinkError;

/// What the listener writes once it has authenticated a dialer, so that the
/// dialer knows its certificate was accepted before it sends any frame (with
/// TLS 1.3 the client finishes its handshake before the server has judged
/// the client certificate).
pub(crate) const GREETING: &[u8; 8] = b"BFTLINK1";

/// Runs an I/O step with a time limit.
pub(crate) async fn within<T>(
    limit_ms: u64,
    during: &'static str,
    step: impl Future<Output = std::io::Result<T>>,
) -> Result<T, LinkError> {
    match tokio::time::timeout(Duration::from_millis(limit_ms), step).await {
        Ok(result) => result.map_err(LinkError::io(during)),
        Err(_) => Err(LinkError::Timeout { during, ms: limit_ms }),
    }
}

//! Keepalive bookkeeping of one outbound link: one ping in flight at a time;
//! a ping unanswered for longer than the I/O timeout declares the link dead
//! (a half-open TCP connection would otherwise go unnoticed).

use std::time::Duration;

use tokio::time::Instant;

use super::error::LinkError;

#[derive(Debug, Default)]
pub(crate) struct Keepalive {
    in_flight: Option<(u64, Instant)>,
    nonce: u64,
}

impl Keepalive {
    /// At a keepalive tick: the nonce of a ping to send now, `None` if one is
    /// still in flight, or an error if that one is overdue.
    pub(crate) fn tick(&mut self, now: Instant, timeout_ms: u64) -> Result<Option<u64>, LinkError> {
        match self.in_flight {
            Some((_, sent_at)) if now.duration_since(sent_at) > Duration::from_millis(timeout_ms) => {
                Err(LinkError::Timeout { during: "awaiting a pong", ms: timeout_ms })
            }
            Some(_) => Ok(None),
            None => {
                self.nonce = self.nonce.wrapping_add(1);
                self.in_flight = Some((self.nonce, now));
                Ok(Some(self.nonce))
            }
        }
    }

    /// A pong arrived: the round-trip time, or an error if nothing with this
    /// nonce was in flight.
    pub(crate) fn pong(&mut self, nonce: u64, now: Instant) -> Result<Duration, LinkError> {
        match self.in_flight {
            Some((expected, sent_at)) if expected == nonce => {
                self.in_flight = None;
                Ok(now.duration_since(sent_at))
            }
            _ => Err(LinkError::UnexpectedData),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_ping_in_flight_answered_pong_gives_the_round_trip() {
        let start = Instant::now();
        let mut keepalive = Keepalive::default();
        let nonce = keepalive.tick(start, 1000).unwrap().unwrap();
        assert_eq!(keepalive.tick(start + Duration::from_millis(500), 1000).unwrap(), None);
        let rtt = keepalive.pong(nonce, start + Duration::from_millis(700)).unwrap();
        assert_eq!(rtt, Duration::from_millis(700));
        assert!(keepalive.tick(start + Duration::from_millis(800), 1000).unwrap().is_some());
    }

    #[test]
    fn unanswered_ping_past_the_timeout_declares_the_link_dead() {
        let start = Instant::now();
        let mut keepalive = Keepalive::default();
        keepalive.tick(start, 1000).unwrap();
        assert!(keepalive.tick(start + Duration::from_millis(1000), 1000).is_ok());
        assert!(matches!(keepalive.tick(start + Duration::from_millis(1001), 1000), Err(LinkError::Timeout { .. })));
    }

    #[test]
    fn unsolicited_or_stale_pong_is_refused() {
        let start = Instant::now();
        let mut keepalive = Keepalive::default();
        assert!(keepalive.pong(1, start).is_err());
        let nonce = keepalive.tick(start, 1000).unwrap().unwrap();
        assert!(keepalive.pong(nonce + 1, start).is_err());
    }
}

//! Figures fed by events of one channel (blocks committed, group-commit
//! latency, submit outcomes, deliver streams). They live as long as the
//! channel task and are registered into each scrape's registry, so the
//! counters stay monotonic across scrapes.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prometheus::core::Collector;
use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Latency buckets (seconds): fine from 100 µs, up to one minute.
pub const LATENCY_BUCKETS_SECONDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Envelopes-per-block buckets.
const BLOCK_ENVELOPES_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0];
/// Bytes-per-block buckets (256 B to 64 MiB, ×4).
const BLOCK_BYTES_BUCKETS: &[f64] =
    &[256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0, 67108864.0];

/// A span between two phases of a sequence number on this node, timed by
/// the channel task (the consensus core has no clock).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PhaseSpan {
    /// From accepting the pre-prepare (or proposing it) to prepared.
    PrePrepareToPrepared,
    /// From prepared to the block committed (executed in order).
    PreparedToCommitted,
    /// From the block committed to its group commit (write + fsync) done.
    CommittedToPersisted,
}

impl PhaseSpan {
    const ALL: [PhaseSpan; 3] =
        [PhaseSpan::PrePrepareToPrepared, PhaseSpan::PreparedToCommitted, PhaseSpan::CommittedToPersisted];

    /// The `phase` label.
    fn as_str(self) -> &'static str {
        match self {
            PhaseSpan::PrePrepareToPrepared => "preprepare_to_prepared",
            PhaseSpan::PreparedToCommitted => "prepared_to_committed",
            PhaseSpan::CommittedToPersisted => "committed_to_persisted",
        }
    }
}

/// Event-fed figures of one channel on this node. Shared by the channel
/// task (blocks, fsync, submits), the peer API (broadcast statuses,
/// deliver streams) and the operations endpoint (rendering).
pub struct ChannelMetrics {
    blocks: IntCounter,
    envelopes: IntCounter,
    block_envelopes: Histogram,
    block_bytes: Histogram,
    commit_interval: Histogram,
    store_commit: Histogram,
    commit_latency: Histogram,
    admission: Histogram,
    phases: HistogramVec,
    submits: IntCounterVec,
    broadcasts: IntCounterVec,
    deliver_streams: IntGauge,
    pool_capacity: IntGauge,
    epoch_since: IntGauge,
    last_block: Mutex<Option<Instant>>,
}

fn channel_opts(name: &str, help: &str, channel: &str) -> Opts {
    Opts::new(name, help).const_label("channel", channel)
}

fn histogram(name: &str, help: &str, channel: &str, buckets: &[f64]) -> Result<Histogram, prometheus::Error> {
    let opts = HistogramOpts::new(name, help).const_label("channel", channel).buckets(buckets.to_vec());
    Histogram::with_opts(opts)
}

impl ChannelMetrics {
    /// Figures of `channel`, whose request pool holds at most `pool_capacity` envelopes.
    pub fn new(channel: &str, pool_capacity: usize) -> Result<Self, prometheus::Error> {
        let pool = IntGauge::with_opts(channel_opts(
            "bft_request_pool_capacity",
            "Envelopes the request pool holds at most",
            channel,
        ))?;
        pool.set(i64::try_from(pool_capacity).unwrap_or(i64::MAX));
        let epoch_since = IntGauge::with_opts(channel_opts(
            "bft_epoch_observed_since_timestamp_seconds",
            "Unix time since which this process runs the channel's current epoch (a lower bound of the epoch's age)",
            channel,
        ))?;
        epoch_since.set(unix_now());
        let phases = HistogramVec::new(
            HistogramOpts::new(
                "bft_phase_duration_seconds",
                "Time between two phases of a block on this node: pre-prepare accepted, prepared, committed, persisted",
            )
            .const_label("channel", channel)
            .buckets(LATENCY_BUCKETS_SECONDS.to_vec()),
            &["phase"],
        )?;
        for span in PhaseSpan::ALL {
            phases.with_label_values(&[span.as_str()]);
        }
        Ok(ChannelMetrics {
            blocks: IntCounter::with_opts(channel_opts(
                "bft_blocks_committed_total",
                "Blocks committed (durable) by this node",
                channel,
            ))?,
            envelopes: IntCounter::with_opts(channel_opts(
                "bft_envelopes_committed_total",
                "Envelopes in blocks committed by this node",
                channel,
            ))?,
            block_envelopes: histogram(
                "bft_block_envelopes",
                "Envelopes per committed block",
                channel,
                BLOCK_ENVELOPES_BUCKETS,
            )?,
            block_bytes: histogram(
                "bft_block_bytes",
                "Envelope bytes per committed block",
                channel,
                BLOCK_BYTES_BUCKETS,
            )?,
            commit_interval: histogram(
                "bft_block_commit_interval_seconds",
                "Time between two consecutive block commits on this node",
                channel,
                LATENCY_BUCKETS_SECONDS,
            )?,
            store_commit: histogram(
                "bft_store_commit_duration_seconds",
                "Duration of one group commit (write + fsync) of the channel's store",
                channel,
                LATENCY_BUCKETS_SECONDS,
            )?,
            commit_latency: histogram(
                "bft_envelope_commit_latency_seconds",
                "Envelopes submitted on this node: from submission to its block being committed",
                channel,
                LATENCY_BUCKETS_SECONDS,
            )?,
            admission: histogram(
                "bft_request_admission_duration_seconds",
                "Time the consensus core took to validate and admit (or refuse) one submitted envelope",
                channel,
                LATENCY_BUCKETS_SECONDS,
            )?,
            phases,
            submits: IntCounterVec::new(
                channel_opts("bft_submit_results_total", "Envelopes handed to the channel task, by outcome", channel),
                &["result"],
            )?,
            broadcasts: IntCounterVec::new(
                channel_opts(
                    "bft_broadcast_requests_total",
                    "Broadcast (submit) requests answered by the peer API, by Fabric status",
                    channel,
                ),
                &["status"],
            )?,
            deliver_streams: IntGauge::with_opts(channel_opts(
                "bft_deliver_streams",
                "Deliver streams open on the peer API",
                channel,
            ))?,
            pool_capacity: pool,
            epoch_since,
            last_block: Mutex::new(None),
        })
    }

    /// A block of `envelopes` envelopes totalling `bytes` bytes is durable.
    pub fn block_committed(&self, envelopes: usize, bytes: usize) {
        let now = Instant::now();
        self.blocks.inc();
        self.envelopes.inc_by(envelopes as u64);
        self.block_envelopes.observe(envelopes as f64);
        self.block_bytes.observe(bytes as f64);
        if let Ok(mut last) = self.last_block.lock() {
            if let Some(previous) = last.replace(now) {
                self.commit_interval.observe(now.duration_since(previous).as_secs_f64());
            }
        }
    }

    /// One group commit of the store took `elapsed`.
    pub fn store_committed(&self, elapsed: Duration) {
        self.store_commit.observe(elapsed.as_secs_f64());
    }

    /// An envelope submitted on this node was committed `elapsed` after its submission.
    pub fn envelope_committed(&self, elapsed: Duration) {
        self.commit_latency.observe(elapsed.as_secs_f64());
    }

    /// The core took `elapsed` to admit or refuse one submitted envelope.
    pub fn request_admitted(&self, elapsed: Duration) {
        self.admission.observe(elapsed.as_secs_f64());
    }

    /// A sequence number became prepared `elapsed` after its pre-prepare was accepted here.
    pub fn preprepare_to_prepared(&self, elapsed: Duration) {
        self.phase(PhaseSpan::PrePrepareToPrepared, elapsed);
    }

    /// A block was committed `elapsed` after its sequence number became prepared here.
    pub fn prepared_to_committed(&self, elapsed: Duration) {
        self.phase(PhaseSpan::PreparedToCommitted, elapsed);
    }

    /// A block was durable `elapsed` after it was committed here.
    pub fn committed_to_persisted(&self, elapsed: Duration) {
        self.phase(PhaseSpan::CommittedToPersisted, elapsed);
    }

    fn phase(&self, span: PhaseSpan, elapsed: Duration) {
        self.phases.with_label_values(&[span.as_str()]).observe(elapsed.as_secs_f64());
    }

    /// The channel task answered a submission with `result` (a short snake_case word).
    pub fn submit_result(&self, result: &str) {
        self.submits.with_label_values(&[result]).inc();
    }

    /// The peer API answered a broadcast with the Fabric `status` (e.g.
    /// `SUCCESS`, `BAD_REQUEST`). Hook for `api::submit`.
    pub fn broadcast(&self, status: &str) {
        self.broadcasts.with_label_values(&[status]).inc();
    }

    /// Counts one open deliver stream until the returned guard is dropped.
    /// Hook for `api::deliver`: keep the guard in the streaming task.
    pub fn deliver_stream(self: &Arc<Self>) -> DeliverStream {
        self.deliver_streams.inc();
        DeliverStream(self.clone())
    }

    /// The channel switched to a new epoch now. Hook for the epoch change.
    pub fn epoch_started(&self) {
        self.epoch_since.set(unix_now());
    }

    /// Adds every figure to a scrape's registry.
    pub fn register(&self, reg: &Registry) -> Result<(), prometheus::Error> {
        let collectors: [Box<dyn Collector>; 14] = [
            Box::new(self.blocks.clone()),
            Box::new(self.envelopes.clone()),
            Box::new(self.block_envelopes.clone()),
            Box::new(self.block_bytes.clone()),
            Box::new(self.commit_interval.clone()),
            Box::new(self.store_commit.clone()),
            Box::new(self.commit_latency.clone()),
            Box::new(self.admission.clone()),
            Box::new(self.phases.clone()),
            Box::new(self.submits.clone()),
            Box::new(self.broadcasts.clone()),
            Box::new(self.deliver_streams.clone()),
            Box::new(self.pool_capacity.clone()),
            Box::new(self.epoch_since.clone()),
        ];
        for c in collectors {
            reg.register(c)?;
        }
        Ok(())
    }
}

fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// An open deliver stream; the gauge goes down when it is dropped.
pub struct DeliverStream(Arc<ChannelMetrics>);

impl Drop for DeliverStream {
    fn drop(&mut self) {
        self.0.deliver_streams.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape(m: &ChannelMetrics) -> String {
        let reg = Registry::new();
        m.register(&reg).unwrap();
        let mut out = Vec::new();
        prometheus::Encoder::encode(&prometheus::TextEncoder::new(), &reg.gather(), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn committed_blocks_accumulate_across_scrapes() {
        let m = ChannelMetrics::new("ch", 100).unwrap();
        m.block_committed(3, 300);
        assert!(scrape(&m).contains("bft_blocks_committed_total{channel=\"ch\"} 1\n"));
        m.block_committed(2, 200);
        let text = scrape(&m);
        assert!(text.contains("bft_blocks_committed_total{channel=\"ch\"} 2\n"), "{text}");
        assert!(text.contains("bft_envelopes_committed_total{channel=\"ch\"} 5\n"), "{text}");
        assert!(text.contains("bft_block_commit_interval_seconds_count{channel=\"ch\"} 1\n"), "{text}");
        assert!(text.contains("bft_request_pool_capacity{channel=\"ch\"} 100\n"), "{text}");
    }

    #[test]
    fn latency_histograms_start_at_100_microseconds() {
        let m = ChannelMetrics::new("ch", 1).unwrap();
        m.store_committed(Duration::from_micros(50));
        let text = scrape(&m);
        assert!(text.contains("bft_store_commit_duration_seconds_bucket{channel=\"ch\",le=\"0.0001\"} 1\n"), "{text}");
    }

    #[test]
    fn phase_histograms_are_present_from_the_start_and_count_by_phase() {
        let m = ChannelMetrics::new("ch", 1).unwrap();
        let text = scrape(&m);
        for span in PhaseSpan::ALL {
            let line = format!("bft_phase_duration_seconds_count{{channel=\"ch\",phase=\"{}\"}} 0\n", span.as_str());
            assert!(text.contains(&line), "{line} in {text}");
        }
        m.prepared_to_committed(Duration::from_micros(50));
        let text = scrape(&m);
        let bucket =
            "bft_phase_duration_seconds_bucket{channel=\"ch\",phase=\"prepared_to_committed\",le=\"0.0001\"} 1\n";
        assert!(text.contains(bucket), "{text}");
    }

    #[test]
    fn deliver_stream_gauge_falls_when_the_stream_ends() {
        let m = Arc::new(ChannelMetrics::new("ch", 1).unwrap());
        let a = m.deliver_stream();
        let b = m.deliver_stream();
        assert!(scrape(&m).contains("bft_deliver_streams{channel=\"ch\"} 2\n"));
        drop(a);
        drop(b);
        assert!(scrape(&m).contains("bft_deliver_streams{channel=\"ch\"} 0\n"));
    }
}

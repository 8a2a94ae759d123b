//! Server counters and latency histograms, rendered as Prometheus text for `GET /metrics`.
//!
//! Everything is updated from the loop thread only, so the counters are plain integers:
//! no atomics on the hot path. Histograms are HDR histograms in microseconds, exported as
//! Prometheus summaries (quantiles, sum, count).

use hdrhistogram::Histogram;
use std::fmt::Write;

#[derive(Debug)]
pub struct Metrics {
    pub connections_accepted: u64,
    pub connections_rejected: u64,
    pub connections_closed: u64,
    pub messages_received: u64,
    pub messages_sent: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub events_ingested: u64,
    pub events_rejected: u64,
    pub events_delivered: u64,
    pub events_dropped: u64,
    pub frames_encoded: u64,
    pub rate_limit_hits: u64,
    pub auth_failures: u64,
    pub http_requests: u64,
    pub compressed_in_bytes: u64,
    pub compressed_out_bytes: u64,
    /// Breakpoint hits that paused a subscription (SPEC §7).
    pub breakpoint_hits: u64,
    /// Wall time of one loop turn (poll excluded), µs.
    pub loop_us: Histogram<u64>,
    /// From the turn that ingested an event to the flush of its frames, µs.
    pub deliver_us: Histogram<u64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn histogram() -> Histogram<u64> {
    // 1 µs .. 60 s at 2 significant digits: a few KiB each.
    Histogram::new_with_bounds(1, 60_000_000, 2).expect("constant histogram bounds are valid")
}

/// Live gauges the loop knows at render time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    pub connections: usize,
    pub websocket_connections: usize,
    pub sessions: usize,
    pub queue_bytes: usize,
    pub next_seq: u64,
    /// Storage is failing (an fsync or write error not yet cleared): `/healthz` is 503.
    pub storage_failing: bool,
    /// Write and fsync errors since start.
    pub storage_errors: u64,
}

impl Metrics {
    pub fn new() -> Self {
        Metrics {
            connections_accepted: 0,
            connections_rejected: 0,
            connections_closed: 0,
            messages_received: 0,
            messages_sent: 0,
            bytes_received: 0,
            bytes_sent: 0,
            events_ingested: 0,
            events_rejected: 0,
            events_delivered: 0,
            events_dropped: 0,
            frames_encoded: 0,
            rate_limit_hits: 0,
            auth_failures: 0,
            http_requests: 0,
            compressed_in_bytes: 0,
            compressed_out_bytes: 0,
            breakpoint_hits: 0,
            loop_us: histogram(),
            deliver_us: histogram(),
        }
    }

    pub fn record_loop(&mut self, us: u64) {
        let _ = self.loop_us.record(us.clamp(1, 60_000_000));
    }

    pub fn record_deliver(&mut self, us: u64) {
        let _ = self.deliver_us.record(us.clamp(1, 60_000_000));
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn render(&self, g: &Gauges) -> String {
        let mut out = String::with_capacity(4096);
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = write!(out, "# HELP tracecast_{name} {help}\n# TYPE tracecast_{name} counter\ntracecast_{name} {v}\n");
        };
        counter(
            "connections_accepted_total",
            "Connections accepted.",
            self.connections_accepted,
        );
        counter(
            "connections_rejected_total",
            "Connections refused by limits.",
            self.connections_rejected,
        );
        counter(
            "connections_closed_total",
            "Connections closed.",
            self.connections_closed,
        );
        counter(
            "messages_received_total",
            "WebSocket messages received.",
            self.messages_received,
        );
        counter(
            "messages_sent_total",
            "WebSocket messages queued to clients (replies and event frames).",
            self.messages_sent,
        );
        counter(
            "bytes_received_total",
            "Bytes read from sockets.",
            self.bytes_received,
        );
        counter(
            "bytes_sent_total",
            "Bytes written to sockets.",
            self.bytes_sent,
        );
        counter(
            "events_ingested_total",
            "Events accepted and stored.",
            self.events_ingested,
        );
        counter(
            "events_rejected_total",
            "Events refused at ingest.",
            self.events_rejected,
        );
        counter(
            "events_delivered_total",
            "Events written to subscribers' sockets.",
            self.events_delivered,
        );
        counter(
            "events_dropped_total",
            "Event deliveries never written: dropped by backpressure (each reported to its client in events_dropped) or discarded with a closing connection's queue.",
            self.events_dropped,
        );
        counter(
            "frames_encoded_total",
            "Batch frames encoded (once per audience).",
            self.frames_encoded,
        );
        counter(
            "rate_limit_hits_total",
            "Messages refused by rate limits.",
            self.rate_limit_hits,
        );
        counter(
            "breakpoint_hits_total",
            "Breakpoint hits that paused a subscription.",
            self.breakpoint_hits,
        );
        counter(
            "auth_failures_total",
            "Failed authentications.",
            self.auth_failures,
        );
        counter(
            "http_requests_total",
            "Plain HTTP requests served.",
            self.http_requests,
        );
        let mut gauge = |name: &str, help: &str, v: f64| {
            let _ = write!(out, "# HELP tracecast_{name} {help}\n# TYPE tracecast_{name} gauge\ntracecast_{name} {v}\n");
        };
        gauge("connections", "Open connections.", g.connections as f64);
        gauge(
            "websocket_connections",
            "Open WebSocket connections.",
            g.websocket_connections as f64,
        );
        gauge(
            "sessions",
            "Sessions known to the store.",
            g.sessions as f64,
        );
        gauge(
            "queue_bytes",
            "Bytes waiting in write queues.",
            g.queue_bytes as f64,
        );
        gauge(
            "next_seq",
            "The next seq to be assigned.",
            g.next_seq as f64,
        );
        gauge(
            "storage_failing",
            "1 while storage is failing (fsync or write errors); /healthz answers 503.",
            f64::from(u8::from(g.storage_failing)),
        );
        gauge(
            "storage_errors",
            "Write and fsync errors since start (never goes down).",
            g.storage_errors as f64,
        );
        let ratio = if self.compressed_in_bytes == 0 {
            1.0
        } else {
            self.compressed_out_bytes as f64 / self.compressed_in_bytes as f64
        };
        gauge(
            "compression_ratio",
            "Compressed / uncompressed bytes of deflated frames.",
            ratio,
        );
        summary(
            &mut out,
            "loop_seconds",
            "Time spent in one loop turn.",
            &self.loop_us,
        );
        summary(
            &mut out,
            "publish_deliver_seconds",
            "Ingest to socket flush.",
            &self.deliver_us,
        );
        out
    }
}

fn summary(out: &mut String, name: &str, help: &str, h: &Histogram<u64>) {
    let _ = writeln!(
        out,
        "# HELP tracecast_{name} {help}\n# TYPE tracecast_{name} summary"
    );
    for q in [0.5, 0.9, 0.99, 0.999] {
        let v = h.value_at_quantile(q) as f64 / 1e6;
        let _ = writeln!(out, "tracecast_{name}{{quantile=\"{q}\"}} {v}");
    }
    let sum = h.mean() * h.len() as f64 / 1e6;
    let _ = writeln!(
        out,
        "tracecast_{name}_sum {sum}\ntracecast_{name}_count {}",
        h.len()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let mut m = Metrics::new();
        m.events_ingested = 7;
        m.record_deliver(250);
        let text = m.render(&Gauges {
            connections: 3,
            ..Default::default()
        });
        assert!(text.contains("tracecast_events_ingested_total 7\n"));
        assert!(text.contains("# TYPE tracecast_connections gauge\ntracecast_connections 3\n"));
        assert!(text.contains("tracecast_publish_deliver_seconds_count 1\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let mut parts = line.rsplitn(2, ' ');
            let value = parts.next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "bad sample line: {line}");
        }
    }
}

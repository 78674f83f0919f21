//! Counting and summarising a run.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::verify::Verdict;

/// What one connection (or a whole run, once merged) saw.
#[derive(Debug, Clone)]
pub struct Tally {
    latency: Histogram<u64>,
    /// Replies that were right.
    pub ok: u64,
    /// Replies on a stream we did not send on.
    pub wrong_stream: u64,
    /// Replies with a payload we did not send.
    pub wrong_payload: u64,
    /// Replies out of order within their stream.
    pub reordered: u64,
    /// Error frames or transport errors.
    pub errors: u64,
    /// Messages sent and never answered.
    pub lost: u64,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            // Microseconds, 1 µs to 60 s, 3 significant figures.
            latency: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
            ok: 0,
            wrong_stream: 0,
            wrong_payload: 0,
            reordered: 0,
            errors: 0,
            lost: 0,
        }
    }
}

impl Tally {
    /// Counts a verdict.
    pub fn record(&mut self, verdict: Verdict) {
        match verdict {
            Verdict::Ok(latency) => {
                self.ok += 1;
                let micros = u64::try_from(latency.as_micros())
                    .unwrap_or(u64::MAX)
                    .max(1);
                self.latency.saturating_record(micros);
            }
            Verdict::WrongStream => self.wrong_stream += 1,
            Verdict::WrongPayload => self.wrong_payload += 1,
            Verdict::Reordered => self.reordered += 1,
        }
    }

    /// Adds another tally into this one.
    pub fn merge(&mut self, other: &Tally) {
        self.latency.add(&other.latency).expect("same bounds");
        self.ok += other.ok;
        self.wrong_stream += other.wrong_stream;
        self.wrong_payload += other.wrong_payload;
        self.reordered += other.reordered;
        self.errors += other.errors;
        self.lost += other.lost;
    }

    /// The run's summary, over `elapsed`.
    pub fn summary(&self, elapsed: Duration) -> Summary {
        let q = |p: f64| self.latency.value_at_quantile(p) as f64 / 1000.0;
        Summary {
            messages: self.ok,
            seconds: elapsed.as_secs_f64(),
            throughput: self.ok as f64 / elapsed.as_secs_f64().max(1e-9),
            p50_ms: q(0.5),
            p90_ms: q(0.9),
            p99_ms: q(0.99),
            p999_ms: q(0.999),
            max_ms: self.latency.max() as f64 / 1000.0,
            wrong_stream: self.wrong_stream,
            wrong_payload: self.wrong_payload,
            reordered: self.reordered,
            errors: self.errors,
            lost: self.lost,
        }
    }
}

/// One run's figures; printed as one JSON line for scripts.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Replies received and verified.
    pub messages: u64,
    /// Measured time.
    pub seconds: f64,
    /// Verified replies per second.
    pub throughput: f64,
    /// Round-trip latency percentiles, milliseconds.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Slowest.
    pub max_ms: f64,
    /// Replies on the wrong stream.
    pub wrong_stream: u64,
    /// Replies with a wrong payload.
    pub wrong_payload: u64,
    /// Replies out of order.
    pub reordered: u64,
    /// Error frames and transport errors.
    pub errors: u64,
    /// Messages never answered.
    pub lost: u64,
}

impl Summary {
    /// Whether every reply was right and none was lost.
    pub fn is_clean(&self) -> bool {
        self.wrong_stream + self.wrong_payload + self.reordered + self.errors + self.lost == 0
    }
}

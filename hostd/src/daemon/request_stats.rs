//! How many requests a module sent and how long hostd took to answer them
//! (from the decoded frame to the queued response), kept per loaded module
//! across its restarts, for `hostd metrics` (a Prometheus histogram).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds (`le` labels).
pub const BUCKETS_SECS: [f64; 8] = [0.000_05, 0.000_1, 0.000_25, 0.001, 0.002_5, 0.01, 0.1, 1.0];

#[derive(Default)]
pub struct RequestStats {
    /// Requests per bucket (not cumulative); the last slot is past the
    /// largest bound.
    counts: [AtomicU64; BUCKETS_SECS.len() + 1],
    sum_ns: AtomicU64,
}

/// Cumulative counts per bucket bound, then the total and the sum.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    pub sum_secs: f64,
}

impl RequestStats {
    pub fn record(&self, took: Duration) {
        let secs = took.as_secs_f64();
        let slot = BUCKETS_SECS.iter().position(|b| secs <= *b).unwrap_or(BUCKETS_SECS.len());
        self.counts[slot].fetch_add(1, Relaxed);
        self.sum_ns.fetch_add(took.as_nanos().min(u128::from(u64::MAX)) as u64, Relaxed);
    }

    pub fn histogram(&self) -> Histogram {
        let mut running = 0;
        let buckets = BUCKETS_SECS
            .iter()
            .zip(&self.counts)
            .map(|(b, c)| {
                running += c.load(Relaxed);
                (*b, running)
            })
            .collect();
        let count = running + self.counts[BUCKETS_SECS.len()].load(Relaxed);
        Histogram { buckets, count, sum_secs: self.sum_ns.load(Relaxed) as f64 / 1e9 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_the_slowest_counts_only_in_the_total() {
        let s = RequestStats::default();
        for us in [10, 80, 80, 3000, 5_000_000] {
            s.record(Duration::from_micros(us));
        }
        let h = s.histogram();
        assert_eq!(h.count, 5);
        let at = |le: f64| h.buckets.iter().find(|(b, _)| *b == le).map(|(_, c)| *c);
        assert_eq!((at(0.000_05), at(0.000_1), at(0.002_5), at(0.01), at(1.0)), (Some(1), Some(3), Some(3), Some(4), Some(4)));
        assert!((h.sum_secs - 5.003_17).abs() < 1e-9, "{}", h.sum_secs);
    }
}

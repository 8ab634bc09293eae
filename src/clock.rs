//! Time helpers every layer uses: the wall clock in Unix time, a bounded window of latency
//! samples with nearest-rank percentiles, and a cumulative latency histogram (what `/metrics`
//! exports where a quantile is wanted). Ground layer: imports nothing of ours.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Time since the Unix epoch (zero if the clock is before it).
pub fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    unix_now().as_millis() as u64
}

/// Upper bounds (seconds) of the latency histograms' buckets: 0.5 ms to 10 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Every sample since start, counted into fixed buckets (Prometheus's histogram: cumulative
/// counts per upper bound, a sum and a count).
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Samples per bucket (not cumulative); the last counts those above every bound.
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new(LATENCY_BUCKETS)
    }
}

impl Histogram {
    /// Buckets with these upper bounds (seconds, ascending).
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            buckets: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    /// Counts one sample.
    pub fn record(&mut self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = self.bounds.partition_point(|b| *b < secs);
        self.buckets[i] += 1;
        self.sum += secs;
        self.count += 1;
    }

    /// Cumulative counts per upper bound (the last bound is `+Inf`).
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut total = 0;
        self.bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(&self.buckets)
            .map(|(b, n)| {
                total += n;
                (b, total)
            })
            .collect()
    }

    /// Sum of the samples, seconds.
    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// Samples counted.
    pub fn count(&self) -> u64 {
        self.count
    }
}

/// The `q` quantile (0..=1) of cumulative buckets, interpolated within its bucket as
/// Prometheus's `histogram_quantile` does; 0 with no samples.
pub fn bucket_quantile(cumulative: &[(f64, u64)], q: f64) -> f64 {
    let Some(&(_, total)) = cumulative.last() else {
        return 0.0;
    };
    if total == 0 {
        return 0.0;
    }
    let rank = q.clamp(0.0, 1.0) * total as f64;
    let mut lower = (0.0, 0u64);
    for &(bound, n) in cumulative {
        if n as f64 >= rank {
            if bound.is_infinite() {
                return lower.0;
            }
            let inside = (n - lower.1) as f64;
            let frac = if inside > 0.0 {
                (rank - lower.1 as f64) / inside
            } else {
                0.0
            };
            return lower.0 + (bound - lower.0) * frac;
        }
        lower = (bound, n);
    }
    lower.0
}

/// The `q` quantile (0..=1) of `samples` by nearest rank; 0 with none.
fn nearest_rank(samples: impl Iterator<Item = f64>, q: f64) -> f64 {
    let mut sorted: Vec<f64> = samples.collect();
    if sorted.is_empty() {
        return 0.0;
    }
    sorted.sort_by(f64::total_cmp);
    let rank = ((q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// A bounded window of latency samples with percentiles, and the histogram of every sample.
#[derive(Debug, Clone)]
pub struct LatencyWindow {
    samples: VecDeque<f64>,
    capacity: usize,
    histogram: Histogram,
}

impl Default for LatencyWindow {
    fn default() -> Self {
        Self::with_capacity(4096)
    }
}

impl LatencyWindow {
    /// Keeps the latest `capacity` samples.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            samples: VecDeque::with_capacity(capacity.min(4096)),
            capacity: capacity.max(1),
            histogram: Histogram::new(LATENCY_BUCKETS),
        }
    }

    /// Adds one sample.
    pub fn record(&mut self, d: Duration) {
        self.histogram.record(d);
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back(d.as_secs_f64() * 1000.0);
    }

    /// The `q` quantile (0..=1) in ms, nearest rank; 0 with no samples.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        nearest_rank(self.samples.iter().copied(), q)
    }

    /// The `q` quantile over the most recent `n` samples (all when `n` is 0).
    pub fn recent_quantile_ms(&self, n: usize, q: f64) -> f64 {
        let skip = if n == 0 {
            0
        } else {
            self.samples.len().saturating_sub(n)
        };
        nearest_rank(self.samples.iter().copied().skip(skip), q)
    }

    /// Removes and returns the oldest sample, ms.
    pub fn pop_front_ms(&mut self) -> Option<f64> {
        self.samples.pop_front()
    }

    /// Every sample since start, in buckets.
    pub fn histogram(&self) -> &Histogram {
        &self.histogram
    }

    /// Samples held.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// True with no samples.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Forgets every sample.
    pub fn clear(&mut self) {
        self.samples.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_count_cumulatively_and_interpolate_quantiles() {
        let mut h = Histogram::new(&[0.01, 0.1, 1.0]);
        for ms in [5, 5, 50, 50, 50, 500, 5000] {
            h.record(Duration::from_millis(ms));
        }
        assert_eq!(
            h.cumulative(),
            vec![(0.01, 2), (0.1, 5), (1.0, 6), (f64::INFINITY, 7)]
        );
        assert_eq!(h.count(), 7);
        assert!((h.sum() - 5.66).abs() < 1e-9);
        // Rank 3.5 of 7 falls half way into the (0.01, 0.1] bucket.
        assert!((bucket_quantile(&h.cumulative(), 0.5) - 0.055).abs() < 1e-9);
        // Above every finite bound: the highest finite bound.
        assert_eq!(bucket_quantile(&h.cumulative(), 1.0), 1.0);
        assert_eq!(
            bucket_quantile(&Histogram::new(&[1.0]).cumulative(), 0.5),
            0.0
        );
        let mut w = LatencyWindow::with_capacity(2);
        for ms in [1, 2, 3] {
            w.record(Duration::from_millis(ms));
        }
        assert_eq!(
            (w.len(), w.histogram().count()),
            (2, 3),
            "the window is bounded, the histogram is not"
        );
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let mut w = LatencyWindow::with_capacity(100);
        for ms in 1..=100 {
            w.record(Duration::from_millis(ms));
        }
        assert_eq!(w.quantile_ms(0.5), 50.0);
        assert_eq!(w.quantile_ms(0.99), 99.0);
        assert_eq!(w.quantile_ms(1.0), 100.0);
        w.record(Duration::from_millis(1000));
        assert_eq!(w.len(), 100, "bounded");
        assert_eq!(LatencyWindow::default().quantile_ms(0.5), 0.0);
    }
}

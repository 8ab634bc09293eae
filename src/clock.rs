//! Time helpers every layer uses: the wall clock in Unix time and a bounded window of latency
//! samples with nearest-rank percentiles. Ground layer: imports nothing of ours.

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

/// A bounded window of latency samples with percentiles.
#[derive(Debug, Clone)]
pub struct LatencyWindow {
    samples: VecDeque<f64>,
    capacity: usize,
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
        }
    }

    /// Adds one sample.
    pub fn record(&mut self, d: Duration) {
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back(d.as_secs_f64() * 1000.0);
    }

    /// The `q` quantile (0..=1) in ms, nearest rank; 0 with no samples.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.samples.is_empty() {
            return 0.0;
        }
        let mut sorted: Vec<f64> = self.samples.iter().copied().collect();
        sorted.sort_by(f64::total_cmp);
        let rank =
            ((q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    }

    /// The `q` quantile over the most recent `n` samples (all when `n` is 0).
    pub fn recent_quantile_ms(&self, n: usize, q: f64) -> f64 {
        if n == 0 || n >= self.samples.len() {
            return self.quantile_ms(q);
        }
        let mut recent = Self::with_capacity(n);
        recent
            .samples
            .extend(self.samples.iter().skip(self.samples.len() - n));
        recent.quantile_ms(q)
    }

    /// Removes and returns the oldest sample, ms.
    pub fn pop_front_ms(&mut self) -> Option<f64> {
        self.samples.pop_front()
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

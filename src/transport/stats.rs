//! Network statistics: per client and in total.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

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

/// Counters and link figures for one peer (or the total).
#[derive(Debug, Clone, Default)]
pub struct PeerStats {
    /// Round-trip time, ms (renet's estimate).
    pub rtt_ms: f64,
    /// Packet loss, 0..=1.
    pub packet_loss: f64,
    /// Bytes sent per second.
    pub bytes_out_per_s: f64,
    /// Bytes received per second.
    pub bytes_in_per_s: f64,
    /// Messages received, by kind.
    pub messages_in: BTreeMap<&'static str, u64>,
    /// Messages sent, by kind.
    pub messages_out: BTreeMap<&'static str, u64>,
    /// Messages dropped (channel full, no session).
    pub dropped: u64,
    /// Messages rejected (undecodable, oversized, invalid, tampered, replayed).
    pub rejected: u64,
}

impl PeerStats {
    /// Counts one received message.
    pub fn received(&mut self, kind: &'static str) {
        *self.messages_in.entry(kind).or_default() += 1;
    }

    /// Counts one sent message.
    pub fn sent(&mut self, kind: &'static str) {
        *self.messages_out.entry(kind).or_default() += 1;
    }

    /// Total messages received.
    pub fn total_in(&self) -> u64 {
        self.messages_in.values().sum()
    }
}

/// The transport's statistics resource content.
#[derive(Debug, Clone, Default)]
pub struct NetworkStats {
    /// Per connected client (server) or the one link (client), keyed by client id.
    pub peers: BTreeMap<u64, PeerStats>,
    /// Totals since start (link figures summed over current peers).
    pub total: PeerStats,
    /// Remote function latency (client: round trip; server: time to answer).
    pub rpc_latency: LatencyWindow,
    /// Remote functions that timed out.
    pub rpc_timeouts: u64,
    /// Connections accepted since start.
    pub connections: u64,
    /// Disconnections since start.
    pub disconnections: u64,
}

impl NetworkStats {
    /// RPC latency median, ms.
    pub fn rpc_p50_ms(&self) -> f64 {
        self.rpc_latency.quantile_ms(0.5)
    }

    /// RPC latency 99th percentile, ms.
    pub fn rpc_p99_ms(&self) -> f64 {
        self.rpc_latency.quantile_ms(0.99)
    }

    /// Sums the link figures of the current peers into the total.
    pub fn refresh_totals(&mut self) {
        let n = self.peers.len().max(1) as f64;
        self.total.bytes_in_per_s = self.peers.values().map(|p| p.bytes_in_per_s).sum();
        self.total.bytes_out_per_s = self.peers.values().map(|p| p.bytes_out_per_s).sum();
        self.total.rtt_ms = self.peers.values().map(|p| p.rtt_ms).sum::<f64>() / n;
        self.total.packet_loss = self.peers.values().map(|p| p.packet_loss).sum::<f64>() / n;
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

//! Network statistics: per client and in total.

use std::collections::BTreeMap;

use crate::clock::LatencyWindow;

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

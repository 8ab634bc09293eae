//! Background streaming, in plain Rust: the queue of non-critical assets in priority order
//! (high, then medium, then low), handed out in batches of `assetManager.preloadBatchSize`,
//! and the load figures (count, failures, fallbacks, average load time).

use std::collections::VecDeque;

use crate::protocol::AssetManifest;

/// Rank of a priority name: critical first.
pub fn priority_rank(priority: &str) -> u8 {
    match priority {
        "critical" => 0,
        "high" => 1,
        "medium" => 2,
        _ => 3,
    }
}

/// Professional paths waiting to stream, best priority first.
#[derive(Debug, Clone, Default)]
pub struct StreamQueue {
    pending: VecDeque<String>,
    batch: usize,
    in_flight: usize,
    batches: u64,
}

impl StreamQueue {
    /// Every non-critical asset of the manifest, high before medium before low (and by path
    /// within a priority, so the order is the same on every client).
    pub fn from_manifest(manifest: &AssetManifest, batch: usize) -> Self {
        let mut entries: Vec<(u8, &str)> = manifest
            .entries
            .iter()
            .filter(|e| e.priority != "critical")
            .map(|e| (priority_rank(&e.priority), e.path.as_str()))
            .collect();
        entries.sort();
        Self {
            pending: entries.into_iter().map(|(_, p)| p.to_string()).collect(),
            batch: batch.max(1),
            in_flight: 0,
            batches: 0,
        }
    }

    /// The next batch, only once the previous one has finished (loaded or failed).
    pub fn next_batch(&mut self) -> Vec<String> {
        if self.in_flight > 0 || self.pending.is_empty() {
            return Vec::new();
        }
        let n = self.batch.min(self.pending.len());
        let out: Vec<String> = self.pending.drain(..n).collect();
        self.in_flight = out.len();
        self.batches += 1;
        out
    }

    /// One asset of the current batch finished.
    pub fn finished(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// Assets not yet handed out.
    pub fn queued(&self) -> usize {
        self.pending.len()
    }

    /// Assets of the current batch still loading.
    #[cfg(test)]
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Batches handed out so far.
    #[cfg(test)]
    pub fn batches(&self) -> u64 {
        self.batches
    }

    /// Changes the batch size (a live config update).
    pub fn set_batch(&mut self, batch: usize) {
        self.batch = batch.max(1);
    }
}

/// Load figures.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LoadStats {
    /// Files loaded.
    pub loaded: u64,
    /// Bytes loaded (manifest sizes).
    pub bytes: u64,
    /// Loads that failed (each variant tried counts).
    pub failed: u64,
    /// Of those, files whose bytes did not match the manifest's sha256.
    pub integrity_failures: u64,
    /// Requests answered with the fallback asset.
    pub fallbacks: u64,
    /// Sum of load times, ms.
    pub total_ms: f64,
}

impl LoadStats {
    /// Average load time of the files loaded, ms.
    pub fn average_ms(&self) -> f64 {
        if self.loaded == 0 {
            0.0
        } else {
            self.total_ms / self.loaded as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::AssetEntry;

    fn entry(path: &str, priority: &str) -> AssetEntry {
        AssetEntry {
            path: path.into(),
            category: "Props".into(),
            kind: "model".into(),
            priority: priority.into(),
            variants: vec![],
        }
    }

    #[test]
    fn streams_by_priority_in_batches() {
        let m = AssetManifest {
            entries: vec![
                entry("a", "low"),
                entry("b", "critical"),
                entry("c", "high"),
                entry("d", "medium"),
                entry("e", "high"),
            ],
        };
        let mut q = StreamQueue::from_manifest(&m, 2);
        assert_eq!(q.queued(), 4);
        assert_eq!(q.next_batch(), vec!["c", "e"]);
        // Nothing more until the batch is done.
        assert!(q.next_batch().is_empty());
        q.finished();
        assert!(q.next_batch().is_empty());
        q.finished();
        assert_eq!(q.next_batch(), vec!["d", "a"]);
        q.finished();
        q.finished();
        assert!(q.next_batch().is_empty());
        assert_eq!((q.queued(), q.in_flight(), q.batches()), (0, 0, 2));
    }

    #[test]
    fn average_load_time() {
        let s = LoadStats {
            loaded: 4,
            total_ms: 10.0,
            ..Default::default()
        };
        assert!((s.average_ms() - 2.5).abs() < 1e-9);
        assert_eq!(LoadStats::default().average_ms(), 0.0);
    }
}

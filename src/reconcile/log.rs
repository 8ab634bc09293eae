//! The operation log and checksummed snapshots.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// One recorded operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    /// Unique, increasing.
    pub id: u64,
    /// Wall clock, ms since the Unix epoch.
    pub at_ms: u64,
    /// Who (a player id, "server", an admin).
    pub actor: String,
    /// What kind ("purchase", "feed", ...).
    pub kind: String,
    /// Its data.
    pub payload: Value,
}

/// A bounded in-memory log of operations (`record_operation`).
#[derive(Debug)]
pub struct OperationLog {
    ops: VecDeque<Operation>,
    capacity: usize,
    next_id: u64,
}

impl OperationLog {
    /// Keeps the newest `capacity` operations.
    pub fn new(capacity: usize) -> Self {
        Self {
            ops: VecDeque::new(),
            capacity: capacity.max(1),
            next_id: 1,
        }
    }

    /// Records an operation; returns its id.
    pub fn record_operation(&mut self, actor: &str, kind: &str, payload: Value, at_ms: u64) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        if self.ops.len() == self.capacity {
            self.ops.pop_front();
        }
        self.ops.push_back(Operation {
            id,
            at_ms,
            actor: actor.to_string(),
            kind: kind.to_string(),
            payload,
        });
        id
    }

    /// Operations after `id`, oldest first.
    pub fn since(&self, id: u64) -> impl Iterator<Item = &Operation> {
        self.ops.iter().filter(move |o| o.id > id)
    }

    /// Operations held.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True if none are held.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// A snapshot of one system's data with a sha256 over its canonical encoding (JSON with object
/// keys sorted, as `serde_json`'s map keeps them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The system it belongs to.
    pub system: String,
    /// The data.
    pub data: Value,
    /// Hex sha256 of the canonical encoding.
    pub checksum: String,
}

/// The sha256 (hex) of a value's canonical encoding.
pub fn checksum(data: &Value) -> String {
    let bytes = serde_json::to_vec(data).unwrap_or_default();
    hex::encode(Sha256::digest(&bytes))
}

impl Snapshot {
    /// `create_snapshot(system, data)`.
    pub fn create(system: &str, data: Value) -> Self {
        let checksum = checksum(&data);
        Self {
            system: system.to_string(),
            data,
            checksum,
        }
    }

    /// True if the data still matches its checksum.
    pub fn verify(&self) -> bool {
        checksum(&self.data) == self.checksum
    }
}

/// Figures as the seed lists them, plus integrity failures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReconcileStats {
    /// Snapshots taken.
    pub total_snapshots: u64,
    /// Conflicts waiting for a person.
    pub pending_conflicts: u64,
    /// Conflicts resolved.
    pub resolved_conflicts: u64,
    /// Integrity checks that found a difference.
    pub integrity_failures: u64,
}

impl ReconcileStats {
    /// Resolved / (resolved + pending); 1 when there were none.
    pub fn resolution_rate(&self) -> f64 {
        let all = self.resolved_conflicts + self.pending_conflicts;
        if all == 0 {
            1.0
        } else {
            self.resolved_conflicts as f64 / all as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_log_is_bounded_and_ordered() {
        let mut log = OperationLog::new(3);
        for i in 0..5 {
            log.record_operation("7", "feed", json!({ "pet": i }), 1000 + i);
        }
        assert_eq!(log.len(), 3);
        let ids: Vec<u64> = log.since(0).map(|o| o.id).collect();
        assert_eq!(ids, vec![3, 4, 5]);
        assert_eq!(log.since(4).count(), 1);
    }

    #[test]
    fn snapshots_detect_changes_and_ignore_key_order() {
        let a = Snapshot::create("profiles", json!({"b": 1, "a": [1, 2]}));
        let b = Snapshot::create(
            "profiles",
            serde_json::from_str(r#"{"a":[1,2],"b":1}"#).unwrap(),
        );
        assert_eq!(a.checksum, b.checksum);
        assert!(a.verify());
        let mut c = a.clone();
        c.data["b"] = json!(2);
        assert!(!c.verify());
        let s = ReconcileStats {
            resolved_conflicts: 3,
            pending_conflicts: 1,
            ..Default::default()
        };
        assert_eq!(s.resolution_rate(), 0.75);
    }
}

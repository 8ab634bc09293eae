//! Data reconciliation (the seed's DataReconciliation).
//!
//! - [`merge`]: three-way merge and the strategies `LastWriteWins`, `Merge`, `Manual`,
//!   `Automatic` (with [`merge::profile_policy`] for profiles).
//! - [`log`]: the operation log (`record_operation`), checksummed snapshots
//!   (`create_snapshot`), and the stats.
//! - [`Reconciler`]: the server's resource: the log, the stats, the strategy for profiles
//!   (`reconcile.strategy.profile`), the integrity sweep's interval (`reconcile.interval`), and
//!   the queue of conflicts waiting for a person (listed and settled by the admin commands
//!   `ListConflicts` / `ResolveConflict`, permission `admin.reconcile`).
//!
//! Conflicts are detected in three places: a save that loses the data store's compare-and-swap
//! or its lock (the data store plugin merges it with [`crate::datastore::Datastore::merge_into`]),
//! a client's prediction against the server's state ([`crate::game::predict`]), and the
//! integrity sweep, which compares each live profile's stored copy with the checksum of what
//! the server last saved.

pub mod log;
pub mod merge;

use std::time::Duration;

use bevy::prelude::*;

pub use log::{Operation, OperationLog, ReconcileStats, Snapshot, checksum};
pub use merge::{Conflict, Policy, Resolution, Rule, Strategy, profile_policy, resolve};

use crate::config::{Config, ConfigError};
use crate::datastore::Profile;
use crate::protocol::ConflictReport;

/// A conflict waiting for a person.
#[derive(Debug, Clone)]
pub struct PendingConflict {
    /// Its id.
    pub id: u64,
    /// The player.
    pub player: u64,
    /// The common base.
    pub base: Profile,
    /// The server's in-memory side.
    pub ours: Profile,
    /// The stored side.
    pub theirs: Profile,
    /// The stored version `theirs` is.
    pub theirs_version: u64,
    /// The fields in conflict.
    pub fields: Vec<Conflict>,
}

/// The server's reconciliation state.
#[derive(Resource, Debug)]
pub struct Reconciler {
    /// The operation log.
    pub log: OperationLog,
    /// The figures.
    pub stats: ReconcileStats,
    /// How profiles are reconciled (`reconcile.strategy.profile`).
    pub strategy: Strategy,
    /// The Automatic strategy's rules for profiles.
    pub policy: Policy,
    /// The integrity sweep's period (`reconcile.interval`).
    pub interval: Duration,
    pending: Vec<PendingConflict>,
    next_id: u64,
}

impl Reconciler {
    /// From `reconcile.*`.
    pub fn from_config(config: &Config) -> Result<Self, ConfigError> {
        let strategy = match config.get::<String>("reconcile.strategy.profile")?.as_str() {
            "LastWriteWins" => Strategy::LastWriteWins,
            "Merge" => Strategy::Merge,
            "Manual" => Strategy::Manual,
            _ => Strategy::Automatic,
        };
        Ok(Self {
            log: OperationLog::new(config.get::<usize>("reconcile.maxOperations")?),
            stats: ReconcileStats::default(),
            strategy,
            policy: profile_policy(),
            interval: config.get("reconcile.interval")?,
            pending: Vec::new(),
            next_id: 1,
        })
    }

    /// `create_snapshot(system, data)`: a checksummed snapshot, counted.
    pub fn create_snapshot(&mut self, system: &str, data: serde_json::Value) -> Snapshot {
        self.stats.total_snapshots += 1;
        Snapshot::create(system, data)
    }

    /// Queues a conflict for a person; returns its id.
    pub fn queue(&mut self, mut c: PendingConflict) -> u64 {
        c.id = self.next_id;
        self.next_id += 1;
        let id = c.id;
        warn!(
            player = c.player,
            conflict = id,
            "profile conflict waits for an admin: {} field(s)",
            c.fields.len()
        );
        self.pending.push(c);
        self.stats.pending_conflicts = self.pending.len() as u64;
        id
    }

    /// Conflicts waiting.
    pub fn pending(&self) -> &[PendingConflict] {
        &self.pending
    }

    /// Takes a waiting conflict out of the queue (to settle it).
    pub fn take(&mut self, id: u64) -> Option<PendingConflict> {
        let i = self.pending.iter().position(|c| c.id == id)?;
        let c = self.pending.remove(i);
        self.stats.pending_conflicts = self.pending.len() as u64;
        Some(c)
    }

    /// Counts a conflict settled (by a rule or a person).
    pub fn resolved(&mut self) {
        self.stats.resolved_conflicts += 1;
    }

    /// Whether `player` has a conflict waiting.
    pub fn is_held(&self, player: u64) -> bool {
        self.pending.iter().any(|c| c.player == player)
    }

    /// `resolve_conflicts(strategy)`: tries every waiting conflict again under `strategy`;
    /// those it settles leave the queue and are returned (player, base version, merged
    /// profile) for the caller to write.
    pub fn resolve_conflicts(&mut self, strategy: Strategy) -> Vec<(u64, u64, Profile)> {
        let mut out = Vec::new();
        let mut keep = Vec::new();
        for c in std::mem::take(&mut self.pending) {
            let (Ok(b), Ok(o), Ok(t)) = (
                serde_json::to_value(&c.base),
                serde_json::to_value(&c.ours),
                serde_json::to_value(&c.theirs),
            ) else {
                keep.push(c);
                continue;
            };
            let r = resolve(&b, &o, &t, strategy, &self.policy);
            match serde_json::from_value::<Profile>(r.merged) {
                Ok(p) if r.conflicts.is_empty() => {
                    self.stats.resolved_conflicts += 1;
                    out.push((c.player, c.theirs_version, p));
                }
                _ => keep.push(c),
            }
        }
        self.pending = keep;
        self.stats.pending_conflicts = self.pending.len() as u64;
        out
    }

    /// The queue as an admin sees it.
    pub fn report(&self) -> Vec<ConflictReport> {
        self.pending
            .iter()
            .map(|c| ConflictReport {
                id: c.id,
                record: "profile".into(),
                key: c.player,
                fields: c
                    .fields
                    .iter()
                    .map(|f| {
                        (
                            f.path.clone(),
                            f.base.to_string(),
                            f.ours.to_string(),
                            f.theirs.to_string(),
                        )
                    })
                    .collect(),
            })
            .collect()
    }
}

/// The reconciliation plugin (server): registers reconciliation with the health checks. The
/// server's start-up inserts the [`Reconciler`] from the config (a bad value stops the start);
/// the systems that detect and settle conflicts run in the data store plugin and the admin
/// commands, which own the records.
pub struct ReconcilePlugin;

impl Plugin for ReconcilePlugin {
    fn build(&self, app: &mut App) {
        crate::health::register(app, crate::health::checks::RECONCILE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_and_resolve_conflicts() {
        let mut r = Reconciler {
            log: OperationLog::new(10),
            stats: ReconcileStats::default(),
            strategy: Strategy::Manual,
            policy: profile_policy(),
            interval: Duration::from_secs(30),
            pending: Vec::new(),
            next_id: 1,
        };
        let base = Profile::template(5, 100);
        let mut ours = base.clone();
        ours.stats.coins = 150;
        let mut theirs = base.clone();
        theirs.stats.coins = 90;
        let id = r.queue(PendingConflict {
            id: 0,
            player: 5,
            base,
            ours,
            theirs,
            theirs_version: 3,
            fields: Vec::new(),
        });
        assert_eq!(r.stats.pending_conflicts, 1);
        assert!(r.is_held(5));
        assert_eq!(r.report()[0].id, id);
        let done = r.resolve_conflicts(Strategy::Automatic);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].2.stats.coins, 140, "counter deltas: +50 and -10");
        assert_eq!(r.stats.pending_conflicts, 0);
        assert_eq!(r.stats.resolution_rate(), 1.0);
    }
}

//! Data reconciliation (the seed's DataReconciliation).
//!
//! - [`merge`]: three-way merge and the strategies `LastWriteWins`, `Merge`, `Manual`,
//!   `Automatic` (with the record type's own policy: the game declares its profile's).
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

mod health;
mod log;
mod merge;

use std::time::Duration;

use bevy::prelude::*;

pub use log::{Operation, OperationLog, ReconcileStats, Snapshot, checksum};
pub use merge::{Conflict, Policy, Resolution, Rule, Strategy, resolve};

use serde_json::Value;

use crate::config::{Config, ConfigError};
use crate::protocol::builtin::ConflictReport;
use crate::stages::ServerSystems;

/// A conflict waiting for a person. The three sides are records as JSON (the data store
/// encodes its profiles; reconciliation never needs their type).
#[derive(Debug, Clone)]
pub struct PendingConflict {
    /// Its id.
    pub id: u64,
    /// The player.
    pub player: u64,
    /// The common base.
    pub base: Value,
    /// The server's in-memory side.
    pub ours: Value,
    /// The stored side.
    pub theirs: Value,
    /// The stored version `theirs` is.
    pub theirs_version: u64,
    /// The fields in conflict.
    pub fields: Vec<Conflict>,
}

/// The server's reconciliation state.
#[derive(Resource, Debug)]
pub struct Reconciler {
    /// The operation log (written through [`Reconciler::record_operation`]).
    log: OperationLog,
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
    /// From `reconcile.*`, with the Automatic strategy's rules for profiles (`policy`: the
    /// profile type's, see `datastore::policy_of`).
    pub fn from_config(config: &Config, policy: Policy) -> Result<Self, ConfigError> {
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
            policy,
            interval: config.get("reconcile.interval")?,
            pending: Vec::new(),
            next_id: 1,
        })
    }

    /// `record_operation(key, kind, payload)`: appends to the operation log; returns its id.
    pub fn record_operation(
        &mut self,
        key: &str,
        kind: &str,
        payload: serde_json::Value,
        at_ms: u64,
    ) -> u64 {
        self.log.record_operation(key, kind, payload, at_ms)
    }

    /// Operations held in the log.
    pub fn operations_logged(&self) -> usize {
        self.log.len()
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
    /// record) for the caller to write.
    pub fn resolve_conflicts(&mut self, strategy: Strategy) -> Vec<(u64, u64, Value)> {
        let mut out = Vec::new();
        let mut keep = Vec::new();
        for c in std::mem::take(&mut self.pending) {
            let r = resolve(&c.base, &c.ours, &c.theirs, strategy, &self.policy);
            if r.conflicts.is_empty() {
                self.stats.resolved_conflicts += 1;
                out.push((c.player, c.theirs_version, r.merged));
            } else {
                keep.push(c);
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

/// What the data store saw that reconciliation counts or keeps (reconciliation owns its figures
/// and its queue; the data store, which detects these, reports them).
#[derive(Message, Debug, Clone)]
pub enum Reconciled {
    /// A checksummed snapshot of a stored profile was taken (a load or a save).
    Snapshot,
    /// A conflict was settled by a rule (a merge that needed no person).
    Resolved,
    /// A conflict no rule settles: it waits for an admin.
    Conflict(Box<PendingConflict>),
    /// The integrity sweep found a stored profile changed behind the server's back.
    IntegrityFailure,
}

fn record_reconciled(mut seen: MessageReader<Reconciled>, mut reconciler: ResMut<Reconciler>) {
    for r in seen.read() {
        match r {
            Reconciled::Snapshot => reconciler.stats.total_snapshots += 1,
            Reconciled::Resolved => reconciler.resolved(),
            Reconciled::Conflict(c) => {
                reconciler.queue((**c).clone());
            }
            Reconciled::IntegrityFailure => reconciler.stats.integrity_failures += 1,
        }
    }
}

/// The `reconcile.sweep` optimisation rule changed state: the integrity sweep runs ×4 less
/// often while it is engaged. Sent by the rule engine; reconciliation owns the interval.
#[derive(Message, Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepPace {
    /// Slowed (engaged) or back to `reconcile.interval` (released).
    pub slowed: bool,
}

fn pace_sweep(
    mut paces: MessageReader<SweepPace>,
    config: Res<Config>,
    mut reconciler: ResMut<Reconciler>,
) {
    let Some(p) = paces.read().last() else { return };
    let Ok(base) = config.get::<Duration>("reconcile.interval") else {
        return;
    };
    reconciler.interval = if p.slowed { base * 4 } else { base };
}

/// The reconciliation plugin (server): inserts the [`Reconciler`] (built from the config by
/// [`Self::from_config`]; a bad value stops the start), registers its check and its rule, and
/// paces the integrity sweep. The systems that detect and settle conflicts run in the data
/// store plugin, which owns the records.
pub struct ReconcilePlugin {
    reconciler: crate::process::Carried<Reconciler>,
}

impl ReconcilePlugin {
    /// From `reconcile.*`, with the profile type's merge `policy`.
    pub fn from_config(config: &Config, policy: Policy) -> Result<Self, ConfigError> {
        Ok(Self {
            reconciler: crate::process::Carried::new(Reconciler::from_config(config, policy)?),
        })
    }
}

impl Plugin for ReconcilePlugin {
    fn build(&self, app: &mut App) {
        crate::process::insert_carried(app, "the reconcile plugin", &self.reconciler);
        crate::stages::server(app);
        crate::integration::register(app, health::INTEGRATION);
        crate::integration::register_rule(app, health::sweep_rule());
        app.add_message::<SweepPace>()
            .add_message::<Reconciled>()
            .add_systems(Update, pace_sweep.in_set(ServerSystems::Handle))
            // After the data store's jobs of this tick (Persist) have reported.
            .add_systems(Last, record_reconciled.in_set(ServerSystems::Report));
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
            policy: [("points".to_string(), Rule::Counter)]
                .into_iter()
                .collect(),
            interval: Duration::from_secs(30),
            pending: Vec::new(),
            next_id: 1,
        };
        let record = |points: i64| serde_json::json!({"player_id": 5, "points": points});
        let (base, ours, theirs) = (record(100), record(150), record(90));
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
        assert_eq!(done[0].2["points"], 140, "counter deltas: +50 and -10");
        assert_eq!(r.stats.pending_conflicts, 0);
        assert_eq!(r.stats.resolution_rate(), 1.0);
    }
}

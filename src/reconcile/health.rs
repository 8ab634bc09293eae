//! Reconciliation's integration: its health check, its figures, and the rule that slows the
//! integrity sweep while conflicts come fast.

use bevy::prelude::*;

use super::{Reconciler, SweepPace};
use crate::integration::{
    Direction, Figure, HealthStatus, Integration, Measure, OptimisationRule, Transition, TuningRule,
};

/// Registered by [`super::ReconcilePlugin`].
pub(super) const INTEGRATION: Integration = Integration {
    name: "reconcile",
    version: env!("CARGO_PKG_VERSION"),
    depends_on: &["datastore"],
    check,
    figures,
};

/// Slows the integrity sweep (×4) while conflicts come faster than 10 a minute (back under 2).
pub(super) fn sweep_rule() -> TuningRule {
    TuningRule::new(
        OptimisationRule::new("reconcile.sweep", Direction::High, 10.0, 2.0),
        |world| {
            world.get_resource::<Reconciler>().map(|r| {
                Measure::PerMinute(
                    r.stats.resolved_conflicts
                        + r.stats.pending_conflicts
                        + r.stats.integrity_failures,
                )
            })
        },
        |world, t| {
            world.write_message(SweepPace {
                slowed: t == Transition::Engaged,
            });
        },
    )
}

/// Degraded while conflicts wait for an admin.
fn check(world: &World) -> HealthStatus {
    match world.get_resource::<Reconciler>() {
        None => HealthStatus::Degraded("reconciliation is off".into()),
        Some(r) if r.stats.pending_conflicts > 0 => HealthStatus::Degraded(format!(
            "{} conflict(s) wait for an admin",
            r.stats.pending_conflicts
        )),
        Some(_) => HealthStatus::Healthy,
    }
}

fn figures(world: &World, out: &mut Vec<Figure>) {
    let Some(rc) = world.get_resource::<Reconciler>() else {
        return;
    };
    out.extend([
        Figure::counter(
            "bloxquarium_reconcile_snapshots_total",
            "Checksummed snapshots taken.",
            rc.stats.total_snapshots,
        ),
        Figure::gauge(
            "bloxquarium_reconcile_pending_conflicts",
            "Conflicts waiting for an admin.",
            rc.stats.pending_conflicts as f64,
        ),
        Figure::counter(
            "bloxquarium_reconcile_resolved_conflicts_total",
            "Conflicts settled, by a rule or a person.",
            rc.stats.resolved_conflicts,
        ),
        Figure::gauge(
            "bloxquarium_reconcile_resolution_ratio",
            "Share of conflicts settled so far (0 to 1).",
            rc.stats.resolution_rate(),
        ),
        Figure::counter(
            "bloxquarium_reconcile_integrity_failures_total",
            "Stored profiles found changed behind the server's back by the integrity sweep.",
            rc.stats.integrity_failures,
        ),
        Figure::gauge(
            "bloxquarium_reconcile_operations_logged",
            "Operations held in the operation log.",
            rc.operations_logged() as f64,
        ),
        Figure::gauge(
            "bloxquarium_reconcile_sweep_interval_seconds",
            "Period of the integrity sweep now, seconds.",
            rc.interval.as_secs_f64(),
        ),
    ]);
}

//! The data store's integration: its health check, its figures, and the rule that spaces
//! auto-saves out while storage fails often.

use bevy::prelude::*;

use super::{AutosavePace, DataStore, DataStoreState, PlayerData};
use crate::integration::{
    Direction, Figure, HealthStatus, Integration, Measure, OptimisationRule, Transition, TuningRule,
};

/// Registered by [`super::DataStorePlugin`], for the game's data `D`.
pub(super) fn integration<D: PlayerData>() -> Integration {
    Integration {
        name: "datastore",
        version: env!("CARGO_PKG_VERSION"),
        depends_on: &["transport", "config"],
        check: check::<D>,
        figures: figures::<D>,
    }
}

/// Spaces auto-saves (×2) while fewer than 90% of data store operations succeed (back above
/// 98%).
pub(super) fn autosave_rule() -> TuningRule {
    TuningRule::new(
        OptimisationRule::new("datastore.autosave", Direction::Low, 0.9, 0.98),
        |world| {
            world.get_resource::<DataStore>().map(|s| {
                let st = s.stats();
                Measure::SuccessShare {
                    total: st.operations,
                    failed: st.failed,
                }
            })
        },
        |world, t| {
            world.write_message(AutosavePace {
                slowed: t == Transition::Engaged,
            });
        },
    )
}

/// Unready while `datastore.saveQueueMax` profiles wait for a failed save, and in its critical
/// state (alive: players in play keep playing and their saves are retried until the storage is
/// back; no new players), degraded with saves piling up or a
/// slowed auto-save.
fn check<D: PlayerData>(world: &World) -> HealthStatus {
    let Some(state) = world.get_resource::<DataStoreState<D>>() else {
        return HealthStatus::Unhealthy("no data store".into());
    };
    if state.unsaved() >= state.save_queue_max {
        HealthStatus::Unready(format!(
            "{} profiles wait for the storage (datastore.saveQueueMax {}): no new players",
            state.unsaved(),
            state.save_queue_max
        ))
    } else if state.critical {
        HealthStatus::Unready(format!(
            "critical: repeated storage errors ({} in all)",
            state.errors_total
        ))
    } else if state.pending_saves > 1000 {
        HealthStatus::Degraded(format!("{} saves waiting", state.pending_saves))
    } else if state.autosave_slowdown > 1 {
        HealthStatus::Degraded("auto-saves slowed while storage fails often".into())
    } else {
        HealthStatus::Healthy
    }
}

fn figures<D: PlayerData>(world: &World, out: &mut Vec<Figure>) {
    if let Some(store) = world.get_resource::<DataStore>() {
        let s = store.stats();
        out.extend([
            Figure::counter(
                "bloxquarium_datastore_profiles_saved_total",
                "Profiles saved (every save of a group commit counts).",
                s.profiles_saved,
            ),
            Figure::counter(
                "bloxquarium_datastore_operations_total",
                "Data store operations (loads, saves, heartbeats, releases, offline messages).",
                s.operations,
            ),
            Figure::counter(
                "bloxquarium_datastore_failed_operations_total",
                "Data store operations that failed.",
                s.failed,
            ),
            Figure::gauge(
                "bloxquarium_datastore_success_ratio",
                "Share of data store operations that succeeded (0 to 1).",
                s.success_rate(),
            ),
            Figure::counter(
                "bloxquarium_datastore_rollbacks_total",
                "Versions restored over the current one.",
                s.rollbacks,
            ),
            Figure::gauge(
                "bloxquarium_datastore_compression_ratio",
                "Stored size over encoded size of saved profiles.",
                s.compression_ratio(),
            ),
            Figure::histogram(
                "bloxquarium_datastore_save_duration_seconds",
                "Durable saves (a group commit each), seconds.",
                &s.save_durations,
            ),
        ]);
    }
    if let Some(state) = world.get_resource::<DataStoreState<D>>() {
        let backups = state.backups_ok + state.backups_failed;
        out.extend([
            Figure::gauge(
                "bloxquarium_datastore_live_profiles",
                "Profiles loaded for play on this server.",
                state.players().count() as f64,
            ),
            Figure::gauge(
                "bloxquarium_datastore_pending_saves",
                "Saves and releases in flight.",
                state.pending_saves as f64,
            ),
            Figure::gauge(
                "bloxquarium_datastore_pending_backups",
                "Backups in flight.",
                state.pending_backups as f64,
            ),
            Figure::counter(
                "bloxquarium_datastore_backups_total",
                "Backups made.",
                state.backups_ok,
            ),
            Figure::counter(
                "bloxquarium_datastore_backups_failed_total",
                "Backups that failed.",
                state.backups_failed,
            ),
            Figure::gauge(
                "bloxquarium_datastore_backup_success_ratio",
                "Share of backups that succeeded (0 to 1; 1 before the first).",
                if backups == 0 {
                    1.0
                } else {
                    state.backups_ok as f64 / backups as f64
                },
            ),
            Figure::counter(
                "bloxquarium_datastore_save_retries_total",
                "Saves that failed transiently and were retried.",
                state.save_retries,
            ),
            Figure::gauge(
                "bloxquarium_datastore_critical",
                "Whether the data store is in its critical state (1) or not (0).",
                f64::from(u8::from(state.critical)),
            ),
            Figure::gauge(
                "bloxquarium_datastore_autosave_slowdown",
                "Auto-save interval multiplier set by the optimisation rule.",
                f64::from(state.autosave_slowdown),
            ),
        ]);
    }
}

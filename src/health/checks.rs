//! Each subsystem's health check and figures.

use bevy::prelude::*;

use super::registry::{HealthStatus, Integration};
use crate::config::{Config, ConfigSource};
use crate::datastore::{DataStore, DataStoreState};
use crate::reconcile::Reconciler;
use crate::security::Security;
use crate::transport::{ServerNet, TickTimes};

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The transport: degraded when the tick's p99 runs past its budget.
pub const TRANSPORT: Integration = Integration {
    name: "transport",
    version: VERSION,
    depends_on: &[],
    check: |world| {
        if world.get_resource::<ServerNet>().is_none() {
            return HealthStatus::Unhealthy("no network service".into());
        }
        let budget_ms = world
            .get_resource::<crate::server::ServerSettings>()
            .map_or(33.3, |s| 1000.0 / f64::from(s.tick_hz.max(1)));
        let p99 = world
            .get_resource::<TickTimes>()
            .map_or(0.0, |t| t.window.quantile_ms(0.99));
        if p99 > budget_ms {
            HealthStatus::Degraded(format!(
                "tick p99 {p99:.1} ms is over the {budget_ms:.1} ms budget"
            ))
        } else {
            HealthStatus::Healthy
        }
    },
};

/// The config: degraded while the config dir's last reload was refused.
pub const CONFIG: Integration = Integration {
    name: "config",
    version: VERSION,
    depends_on: &[],
    check: |world| match world.get_resource::<ConfigSource>() {
        Some(s) if s.last_reload_failed => HealthStatus::Degraded(format!(
            "the last reload of {} was refused; the previous config stays",
            s.dir.display()
        )),
        _ => HealthStatus::Healthy,
    },
};

/// The data store: unhealthy in its critical state, degraded with saves piling up or a
/// slowed auto-save.
pub const DATASTORE: Integration = Integration {
    name: "datastore",
    version: VERSION,
    depends_on: &["transport", "config"],
    check: |world| {
        let Some(state) = world.get_resource::<DataStoreState>() else {
            return HealthStatus::Unhealthy("no data store".into());
        };
        if state.critical {
            HealthStatus::Unhealthy(format!(
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
    },
};

/// Security: degraded when the audit log cannot be written.
pub const SECURITY: Integration = Integration {
    name: "security",
    version: VERSION,
    depends_on: &["transport", "config"],
    check: |world| match world.get_resource::<Security>() {
        None => HealthStatus::Unhealthy("no security gate: no message is admitted".into()),
        Some(s) if s.audit.failed > 0 => HealthStatus::Degraded(format!(
            "{} audit record(s) could not be written",
            s.audit.failed
        )),
        Some(_) => HealthStatus::Healthy,
    },
};

/// Reconciliation: degraded while conflicts wait for an admin.
pub const RECONCILE: Integration = Integration {
    name: "reconcile",
    version: VERSION,
    depends_on: &["datastore"],
    check: |world| match world.get_resource::<Reconciler>() {
        None => HealthStatus::Degraded("reconciliation is off".into()),
        Some(r) if r.stats.pending_conflicts > 0 => HealthStatus::Degraded(format!(
            "{} conflict(s) wait for an admin",
            r.stats.pending_conflicts
        )),
        Some(_) => HealthStatus::Healthy,
    },
};

/// The game: unhealthy if the shop's catalog cannot be read from the config.
pub const GAME: Integration = Integration {
    name: "game",
    version: VERSION,
    depends_on: &["datastore", "security", "reconcile"],
    check: |world| match world.get_resource::<crate::game::Shop>() {
        Some(shop) => match shop.error() {
            None => HealthStatus::Healthy,
            Some(e) => HealthStatus::Unhealthy(format!("the shop's catalog: {e}")),
        },
        None => HealthStatus::Unhealthy("no shop".into()),
    },
};

/// One figure for the metrics.
#[derive(Debug, Clone)]
pub struct Figure {
    /// Metric name.
    pub name: &'static str,
    /// Labels.
    pub labels: Vec<(&'static str, String)>,
    /// Value.
    pub value: f64,
    /// A monotonic total (else a gauge).
    pub counter: bool,
}

fn g(name: &'static str, value: f64) -> Figure {
    Figure {
        name,
        labels: Vec::new(),
        value,
        counter: false,
    }
}

fn c(name: &'static str, value: u64) -> Figure {
    Figure {
        name,
        labels: Vec::new(),
        value: value as f64,
        counter: true,
    }
}

/// CPU time this process has used, seconds (Linux; 0 elsewhere).
pub fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line: 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// An optimisation rule's figures: times fired, and whether it is engaged now.
fn rule_figures(rule: &super::OptimisationRule, out: &mut Vec<Figure>) {
    out.push(Figure {
        name: "bloxquarium_optimisation_fired_total",
        labels: vec![("rule", rule.name.to_string())],
        value: rule.fired as f64,
        counter: true,
    });
    out.push(Figure {
        name: "bloxquarium_optimisation_engaged",
        labels: vec![("rule", rule.name.to_string())],
        value: f64::from(u8::from(rule.engaged)),
        counter: false,
    });
}

/// Every subsystem's figures, and the process's.
pub fn collect(world: &World) -> Vec<Figure> {
    let mut out = vec![
        g("bloxquarium_process_rss_mib", crate::transport::rss_mb()),
        g("bloxquarium_process_cpu_seconds", cpu_seconds()),
        g(
            "bloxquarium_process_entities",
            world.entities().len() as f64,
        ),
    ];
    if let Some(t) = world.get_resource::<TickTimes>() {
        out.push(g("bloxquarium_tick_p50_ms", t.window.quantile_ms(0.5)));
        out.push(g("bloxquarium_tick_p99_ms", t.window.quantile_ms(0.99)));
        out.push(c("bloxquarium_ticks_total", t.ticks));
    }
    if let Some(net) = world.get_resource::<ServerNet>() {
        let s = &net.stats;
        out.extend([
            g("bloxquarium_network_sessions", net.session_count() as f64),
            g(
                "bloxquarium_network_bytes_in_per_second",
                s.total.bytes_in_per_s,
            ),
            g(
                "bloxquarium_network_bytes_out_per_second",
                s.total.bytes_out_per_s,
            ),
            g("bloxquarium_network_rpc_p50_ms", s.rpc_p50_ms()),
            g("bloxquarium_network_rpc_p99_ms", s.rpc_p99_ms()),
            c("bloxquarium_network_rpc_timeouts_total", s.rpc_timeouts),
            c("bloxquarium_network_connections_total", s.connections),
            c("bloxquarium_network_disconnections_total", s.disconnections),
            c(
                "bloxquarium_network_messages_rejected_total",
                s.total.rejected,
            ),
        ]);
    }
    if let Some(gate) = world.get_resource::<crate::transport::GatedServerTransport>() {
        let w = gate.counts();
        out.extend([
            c("bloxquarium_network_datagrams_in_total", w.datagrams_in),
            c("bloxquarium_network_packets_in_total", w.packets_in),
            c("bloxquarium_network_datagrams_out_total", w.datagrams_out),
            c("bloxquarium_network_packets_out_total", w.packets_out),
            c("bloxquarium_network_malformed_payloads_total", w.malformed),
        ]);
    }
    if let Some(sec) = world.get_resource::<Security>() {
        let s = sec.stats();
        out.extend([
            c(
                "bloxquarium_security_failed_validations_total",
                s.failed_validations,
            ),
            c("bloxquarium_security_rate_limited_total", s.rate_limited),
            c(
                "bloxquarium_security_connect_attempts_refused_total",
                s.connect_attempts_refused,
            ),
            c("bloxquarium_security_strikes_total", s.strikes),
            c("bloxquarium_security_kicks_total", s.kicks),
            c("bloxquarium_security_bans_total", s.bans),
            g("bloxquarium_security_active_bans", s.active_bans as f64),
            c(
                "bloxquarium_security_denied_permissions_total",
                s.denied_permissions,
            ),
            c(
                "bloxquarium_security_audit_records_total",
                sec.audit.written,
            ),
        ]);
        for (kind, n) in s.suspicious {
            out.push(Figure {
                name: "bloxquarium_security_suspicious_total",
                labels: vec![("kind", kind)],
                value: n as f64,
                counter: true,
            });
        }
    }
    if let Some(config) = world.get_resource::<Config>() {
        let s = config.stats();
        out.extend([
            g("bloxquarium_config_version", config.version() as f64),
            c("bloxquarium_config_changes_total", s.changes),
            c(
                "bloxquarium_config_validation_failures_total",
                s.validation_failures,
            ),
            g(
                "bloxquarium_config_active_overrides",
                s.active_overrides as f64,
            ),
        ]);
    }
    if let Some(src) = world.get_resource::<ConfigSource>() {
        out.push(c("bloxquarium_config_reloads_total", src.reloads));
        out.push(c(
            "bloxquarium_config_reload_failures_total",
            src.reload_failures,
        ));
    }
    if let Some(rc) = world.get_resource::<Reconciler>() {
        out.extend([
            c(
                "bloxquarium_reconcile_snapshots_total",
                rc.stats.total_snapshots,
            ),
            g(
                "bloxquarium_reconcile_pending_conflicts",
                rc.stats.pending_conflicts as f64,
            ),
            c(
                "bloxquarium_reconcile_resolved_conflicts_total",
                rc.stats.resolved_conflicts,
            ),
            g(
                "bloxquarium_reconcile_resolution_rate",
                rc.stats.resolution_rate(),
            ),
            c(
                "bloxquarium_reconcile_integrity_failures_total",
                rc.stats.integrity_failures,
            ),
            g(
                "bloxquarium_reconcile_operations_logged",
                rc.log.len() as f64,
            ),
            g(
                "bloxquarium_reconcile_sweep_interval_seconds",
                rc.interval.as_secs_f64(),
            ),
        ]);
    }
    if let Some(store) = world.get_resource::<DataStore>() {
        let s = store.stats();
        out.extend([
            c("bloxquarium_datastore_operations_total", s.operations),
            c("bloxquarium_datastore_failed_operations_total", s.failed),
            g("bloxquarium_datastore_success_rate", s.success_rate()),
            c("bloxquarium_datastore_rollbacks_total", s.rollbacks),
            g(
                "bloxquarium_datastore_compression_ratio",
                s.compression_ratio(),
            ),
            g("bloxquarium_datastore_save_p50_ms", s.save_p50_ms),
            g("bloxquarium_datastore_save_p99_ms", s.save_p99_ms),
        ]);
    }
    if let Some(state) = world.get_resource::<DataStoreState>() {
        let backups = state.backups_ok + state.backups_failed;
        out.extend([
            g(
                "bloxquarium_datastore_live_profiles",
                state.players().count() as f64,
            ),
            g(
                "bloxquarium_datastore_pending_saves",
                state.pending_saves as f64,
            ),
            g(
                "bloxquarium_datastore_pending_backups",
                state.pending_backups as f64,
            ),
            c("bloxquarium_datastore_backups_total", state.backups_ok),
            c(
                "bloxquarium_datastore_backups_failed_total",
                state.backups_failed,
            ),
            g(
                "bloxquarium_datastore_backup_success_rate",
                if backups == 0 {
                    1.0
                } else {
                    state.backups_ok as f64 / backups as f64
                },
            ),
            c(
                "bloxquarium_datastore_save_retries_total",
                state.save_retries,
            ),
            g(
                "bloxquarium_datastore_critical",
                f64::from(u8::from(state.critical)),
            ),
            g(
                "bloxquarium_datastore_autosave_slowdown",
                f64::from(state.autosave_slowdown),
            ),
        ]);
    }
    if let Some(reg) = world.get_resource::<crate::assets::AssetRegistry>() {
        let s = reg.stats();
        out.push(g("bloxquarium_assets_manifest_entries", s.total as f64));
        out.push(g("bloxquarium_assets_manifest_bytes", s.bytes as f64));
        for (category, n) in s.per_category {
            out.push(Figure {
                name: "bloxquarium_assets_per_category",
                labels: vec![("category", category)],
                value: n as f64,
                counter: false,
            });
        }
    }
    // The client's loader (play mode and clients): loads, cache, streaming, quality.
    if let Some(streamer) = world.get_resource::<crate::assets::AssetStreamer>() {
        let s = streamer.stats();
        out.extend([
            c("bloxquarium_assets_loaded_total", s.loads.loaded),
            c("bloxquarium_assets_failed_total", s.loads.failed),
            c(
                "bloxquarium_assets_integrity_failures_total",
                s.loads.integrity_failures,
            ),
            c("bloxquarium_assets_fallbacks_total", s.loads.fallbacks),
            g("bloxquarium_assets_load_avg_ms", s.loads.average_ms()),
            g("bloxquarium_assets_cache_hit_rate", s.cache.hit_rate()),
            g("bloxquarium_assets_cache_entries", s.cache.entries as f64),
            g("bloxquarium_assets_cache_bytes", s.cache.bytes as f64),
            g(
                "bloxquarium_assets_cache_max_bytes",
                s.cache.max_bytes as f64,
            ),
            g("bloxquarium_assets_streaming_queue", s.queued as f64),
            g("bloxquarium_assets_quality_level", f64::from(s.quality)),
        ]);
        rule_figures(streamer.cache().rule(), &mut out);
    }
    if let Some(opt) = world.get_resource::<super::Optimiser>() {
        for rule in [&opt.reconcile_sweep, &opt.datastore_autosave] {
            rule_figures(rule, &mut out);
        }
    }
    if let Some(reg) = world.get_resource::<super::IntegrationRegistry>()
        && let Some(last) = &reg.last
    {
        for s in &last.systems {
            out.push(Figure {
                name: "bloxquarium_health_status",
                labels: vec![("system", s.name.clone())],
                value: match s.health {
                    HealthStatus::Healthy => 0.0,
                    HealthStatus::Degraded(_) => 1.0,
                    HealthStatus::Unhealthy(_) => 2.0,
                },
                counter: false,
            });
        }
    }
    out
}

//! The configuration's integration: its health check and its figures.

use bevy::prelude::*;

use super::{Config, ConfigSource};
use crate::integration::{Figure, HealthStatus, Integration};

/// Registered by the config plugin.
pub(super) const INTEGRATION: Integration = Integration {
    name: "config",
    version: env!("CARGO_PKG_VERSION"),
    depends_on: &[],
    check,
    figures,
};

/// Degraded while the config dir's last reload was refused.
fn check(world: &World) -> HealthStatus {
    match world.get_resource::<ConfigSource>() {
        Some(s) if s.last_reload_failed => HealthStatus::Degraded(format!(
            "the last reload of {} was refused; the previous config stays",
            s.dir.display()
        )),
        _ => HealthStatus::Healthy,
    }
}

fn figures(world: &World, out: &mut Vec<Figure>) {
    if let Some(config) = world.get_resource::<Config>() {
        let s = config.stats();
        out.extend([
            Figure::gauge(
                "bloxquarium_config_version",
                "Version of the configuration in use (rises with every applied change).",
                config.version() as f64,
            ),
            Figure::counter(
                "bloxquarium_config_changes_total",
                "Configuration values changed.",
                s.changes,
            ),
            Figure::counter(
                "bloxquarium_config_validation_failures_total",
                "Configuration values refused by validation.",
                s.validation_failures,
            ),
            Figure::gauge(
                "bloxquarium_config_active_overrides",
                "Configuration keys set away from their schema default.",
                s.active_overrides as f64,
            ),
        ]);
    }
    if let Some(src) = world.get_resource::<ConfigSource>() {
        out.push(Figure::counter(
            "bloxquarium_config_reloads_total",
            "Reloads of the config directory applied.",
            src.reloads,
        ));
        out.push(Figure::counter(
            "bloxquarium_config_reload_failures_total",
            "Reloads of the config directory refused.",
            src.reload_failures,
        ));
    }
}

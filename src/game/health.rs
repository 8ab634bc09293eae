//! The game's integration: its health check.

use bevy::prelude::*;

use super::Shop;
use crate::integration::{HealthStatus, Integration, no_figures};

/// Registered by [`super::GameServerPlugin`].
pub(super) const INTEGRATION: Integration = Integration {
    name: "game",
    version: env!("CARGO_PKG_VERSION"),
    depends_on: &["datastore", "security", "reconcile"],
    check,
    figures: no_figures,
};

/// Unhealthy if the shop's catalog cannot be read from the config.
fn check(world: &World) -> HealthStatus {
    match world.get_resource::<Shop>() {
        Some(shop) => match shop.error() {
            None => HealthStatus::Healthy,
            Some(e) => HealthStatus::Unhealthy(format!("the shop's catalog: {e}")),
        },
        None => HealthStatus::Unhealthy("no shop".into()),
    }
}

//! Security's integration: its health check and its figures.

use bevy::prelude::*;

use super::Security;
use crate::integration::{Figure, HealthStatus, Integration};

/// Registered by [`super::SecurityPlugin`].
pub(super) const INTEGRATION: Integration = Integration {
    name: "security",
    version: env!("CARGO_PKG_VERSION"),
    depends_on: &["transport", "config"],
    check,
    figures,
};

/// Degraded when the audit log cannot be written.
fn check(world: &World) -> HealthStatus {
    match world.get_resource::<Security>() {
        None => HealthStatus::Unhealthy("no security gate: no message is admitted".into()),
        Some(s) if s.audit.failed > 0 => HealthStatus::Degraded(format!(
            "{} audit record(s) could not be written",
            s.audit.failed
        )),
        Some(_) => HealthStatus::Healthy,
    }
}

fn figures(world: &World, out: &mut Vec<Figure>) {
    let Some(sec) = world.get_resource::<Security>() else {
        return;
    };
    let s = sec.stats();
    out.extend([
        Figure::counter(
            "bloxquarium_security_failed_validations_total",
            "Client messages that failed validation.",
            s.failed_validations,
        ),
        Figure::counter(
            "bloxquarium_security_rate_limited_total",
            "Client messages dropped by a rate limit.",
            s.rate_limited,
        ),
        Figure::counter(
            "bloxquarium_security_connect_attempts_refused_total",
            "Connection requests dropped by the per-address limit.",
            s.connect_attempts_refused,
        ),
        Figure::counter(
            "bloxquarium_security_strikes_total",
            "Strikes counted against players.",
            s.strikes,
        ),
        Figure::counter(
            "bloxquarium_security_kicks_total",
            "Players kicked.",
            s.kicks,
        ),
        Figure::counter("bloxquarium_security_bans_total", "Players banned.", s.bans),
        Figure::gauge(
            "bloxquarium_security_active_bans",
            "Bans in force now.",
            s.active_bans as f64,
        ),
        Figure::counter(
            "bloxquarium_security_denied_permissions_total",
            "Requests refused for want of a permission.",
            s.denied_permissions,
        ),
        Figure::counter(
            "bloxquarium_security_audit_records_total",
            "Audit records written.",
            sec.audit.written,
        ),
    ]);
    for (kind, n) in s.suspicious {
        out.push(
            Figure::counter(
                "bloxquarium_security_suspicious_total",
                "Suspicious activity reported by the detectors, by kind.",
                n,
            )
            .label("kind", kind),
        );
    }
}

//! The transport's integration: its health check (the tick against its budget) and its figures.

use bevy::prelude::*;

use super::{GatedServerTransport, ServerNet, TickTimes};
use crate::integration::{Figure, HealthStatus, Integration};
use crate::server::ServerSettings;

/// Registered by [`super::TransportServerPlugin`].
pub(super) const INTEGRATION: Integration = Integration {
    name: "transport",
    version: env!("CARGO_PKG_VERSION"),
    depends_on: &[],
    check,
    figures,
};

/// Degraded when the tick's p99 runs past its budget.
fn check(world: &World) -> HealthStatus {
    if world.get_resource::<ServerNet>().is_none() {
        return HealthStatus::Unhealthy("no network service".into());
    }
    let budget_ms = world
        .get_resource::<ServerSettings>()
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
}

fn figures(world: &World, out: &mut Vec<Figure>) {
    if let Some(t) = world.get_resource::<TickTimes>() {
        out.extend([
            Figure::histogram(
                "bloxquarium_tick_duration_seconds",
                "Server tick durations, seconds.",
                t.window.histogram(),
            ),
            Figure::counter("bloxquarium_ticks_total", "Server ticks run.", t.ticks),
            Figure::histogram(
                "bloxquarium_between_ticks_pass_duration_seconds",
                "Passes between ticks (requests answered as they arrive), seconds.",
                t.between.histogram(),
            ),
            Figure::counter(
                "bloxquarium_between_ticks_passes_total",
                "Passes between ticks run.",
                t.passes,
            ),
        ]);
    }
    if let Some(net) = world.get_resource::<ServerNet>() {
        let s = &net.stats;
        out.extend([
            Figure::gauge(
                "bloxquarium_network_sessions",
                "Clients in session now.",
                net.session_count() as f64,
            ),
            Figure::gauge(
                "bloxquarium_network_receive_bytes_per_second",
                "Bytes received per second, all clients.",
                s.total.bytes_in_per_s,
            ),
            Figure::gauge(
                "bloxquarium_network_transmit_bytes_per_second",
                "Bytes sent per second, all clients.",
                s.total.bytes_out_per_s,
            ),
            Figure::histogram(
                "bloxquarium_network_rpc_duration_seconds",
                "Remote function calls from request to answer, seconds.",
                s.rpc_latency.histogram(),
            ),
            Figure::counter(
                "bloxquarium_network_rpc_timeouts_total",
                "Remote function calls that timed out.",
                s.rpc_timeouts,
            ),
            Figure::counter(
                "bloxquarium_network_connections_total",
                "Client connections accepted.",
                s.connections,
            ),
            Figure::counter(
                "bloxquarium_network_disconnections_total",
                "Client disconnections.",
                s.disconnections,
            ),
            Figure::counter(
                "bloxquarium_network_messages_rejected_total",
                "Client messages rejected by validation.",
                s.total.rejected,
            ),
        ]);
    }
    if let Some(gate) = world.get_resource::<GatedServerTransport>() {
        let w = gate.counts();
        out.extend([
            Figure::counter(
                "bloxquarium_network_datagrams_in_total",
                "UDP datagrams received.",
                w.datagrams_in,
            ),
            Figure::counter(
                "bloxquarium_network_packets_in_total",
                "renet packets received.",
                w.packets_in,
            ),
            Figure::counter(
                "bloxquarium_network_datagrams_out_total",
                "UDP datagrams sent.",
                w.datagrams_out,
            ),
            Figure::counter(
                "bloxquarium_network_packets_out_total",
                "renet packets sent.",
                w.packets_out,
            ),
            Figure::counter(
                "bloxquarium_network_malformed_payloads_total",
                "Payloads from authenticated clients that could not be split into packets.",
                w.malformed,
            ),
        ]);
    }
}

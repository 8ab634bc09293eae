//! Integration, health and metrics (the seed's IntegrationManager and performance monitoring).
//!
//! Every server plugin registers with the [`IntegrationRegistry`] (name, version, dependencies,
//! health check); a missing dependency stops start-up naming both plugins. Checks run every
//! `health.checkInterval` and on demand (the `Health` admin command). Metrics go through the
//! `metrics` facade into a Prometheus recorder (`metrics-exporter-prometheus`, without its own
//! HTTP stack); the dedicated server serves `/health` (JSON, 200 or 503) and `/metrics`
//! (Prometheus text) on `--metrics-bind` from a small `tiny_http` thread. A performance report
//! goes to the log every `performance.logInterval`, and the seed's automatic optimisations are
//! explicit rules with hysteresis ([`rules`]).
//!
//! Not built yet (issue #9): the asset figures and the asset-cache rule (there are no assets
//! yet), and the client's F3 overlay.

pub mod checks;
pub mod registry;
pub mod rules;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bevy::prelude::*;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};

pub use registry::{HealthReport, HealthStatus, Integration, IntegrationRegistry, register};
pub use rules::{Direction, OptimisationRule, Transition};

use crate::config::Config;
use crate::datastore::{DataStore, DataStoreState};
use crate::protocol::{RequestId, SealedResponse};
use crate::reconcile::Reconciler;
use crate::security::Security;
use crate::transport::{ServerNet, TickTimes};

/// What the HTTP thread serves, refreshed by the App every second.
#[derive(Debug, Default)]
pub struct Exposed {
    /// `/health` body.
    pub health_json: String,
    /// `/health` status: healthy or not.
    pub healthy: bool,
    /// `/metrics` body.
    pub metrics_text: String,
}

/// The HTTP endpoint of a dedicated server.
#[derive(Resource)]
pub struct MetricsEndpoint {
    /// The address it listens on.
    pub addr: SocketAddr,
    server: Arc<tiny_http::Server>,
    exposed: Arc<Mutex<Exposed>>,
}

impl Drop for MetricsEndpoint {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

/// Why the endpoint could not open.
#[derive(Debug, thiserror::Error)]
#[error("cannot serve metrics on {addr}: {reason} (choose another --metrics-bind)")]
pub struct EndpointError {
    /// The address.
    pub addr: SocketAddr,
    /// What failed.
    pub reason: String,
}

impl MetricsEndpoint {
    /// Binds `addr` and serves `/health` and `/metrics` from a thread.
    pub fn open(addr: SocketAddr) -> Result<Self, EndpointError> {
        let server = tiny_http::Server::http(addr).map_err(|e| EndpointError {
            addr,
            reason: e.to_string(),
        })?;
        let bound = server.server_addr().to_ip().ok_or_else(|| EndpointError {
            addr,
            reason: "not an IP address".into(),
        })?;
        let server = Arc::new(server);
        let exposed = Arc::new(Mutex::new(Exposed {
            health_json: r#"{"status":"Unhealthy","reason":"starting"}"#.into(),
            healthy: false,
            metrics_text: String::new(),
        }));
        let (srv, shared) = (server.clone(), exposed.clone());
        std::thread::Builder::new()
            .name("metrics-http".into())
            .spawn(move || serve(&srv, &shared))
            .map_err(|e| EndpointError {
                addr,
                reason: e.to_string(),
            })?;
        info!("health and metrics on http://{bound}/health and /metrics");
        Ok(Self {
            addr: bound,
            server,
            exposed,
        })
    }
}

fn serve(server: &tiny_http::Server, exposed: &Mutex<Exposed>) {
    for req in server.incoming_requests() {
        let (code, body, kind) = {
            let Ok(e) = exposed.lock() else { return };
            match (req.method(), req.url()) {
                (tiny_http::Method::Get, "/health") => (
                    if e.healthy { 200 } else { 503 },
                    e.health_json.clone(),
                    "application/json",
                ),
                (tiny_http::Method::Get, "/metrics") => (
                    200,
                    e.metrics_text.clone(),
                    "text/plain; version=0.0.4; charset=utf-8",
                ),
                _ => (
                    404,
                    "not found: try /health or /metrics\n".into(),
                    "text/plain",
                ),
            }
        };
        let mut response = tiny_http::Response::from_string(body).with_status_code(code);
        if let Ok(h) = tiny_http::Header::from_bytes(&b"Content-Type"[..], kind.as_bytes()) {
            response = response.with_header(h);
        }
        let _ = req.respond(response);
    }
}

/// The Prometheus recorder of this App (local to it, so several Apps in one process keep their
/// own figures).
#[derive(Resource)]
pub struct Metrics {
    recorder: PrometheusRecorder,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            recorder: PrometheusBuilder::new().build_recorder(),
        }
    }
}

impl Metrics {
    /// The figures in Prometheus text format.
    pub fn render(&self) -> String {
        self.recorder.handle().render()
    }
}

/// An admin asked for a health check now.
#[derive(Message, Debug, Clone)]
pub struct HealthCheckRequested {
    /// The client.
    pub client: u64,
    /// Its request.
    pub id: RequestId,
}

/// The optimisation rules and what they adjust.
#[derive(Resource, Debug)]
pub struct Optimiser {
    /// Slows the integrity sweep (×4) while conflicts come fast.
    pub reconcile_sweep: OptimisationRule,
    /// Spaces auto-saves (×2) while the data store's success rate is low.
    pub datastore_autosave: OptimisationRule,
    last_conflicts: u64,
    last_ops: (u64, u64),
}

impl Default for Optimiser {
    fn default() -> Self {
        Self {
            // Conflicts per minute.
            reconcile_sweep: OptimisationRule::new("reconcile.sweep", Direction::High, 10.0, 2.0),
            // Share of data store operations that succeeded in the last window.
            datastore_autosave: OptimisationRule::new(
                "datastore.autosave",
                Direction::Low,
                0.9,
                0.98,
            ),
            last_conflicts: 0,
            last_ops: (0, 0),
        }
    }
}

#[derive(Resource, Default)]
struct Clocks {
    last_check: Duration,
    last_publish: Duration,
    last_report: Duration,
}

/// The health plugin (server).
pub struct HealthPlugin;

impl Plugin for HealthPlugin {
    fn build(&self, app: &mut App) {
        register(
            app,
            Integration {
                name: "health",
                version: env!("CARGO_PKG_VERSION"),
                depends_on: &[],
                check: |_| HealthStatus::Healthy,
            },
        );
        app.init_resource::<Metrics>()
            .init_resource::<Optimiser>()
            .init_resource::<Clocks>()
            .add_message::<HealthCheckRequested>()
            .add_systems(Last, (run_checks, publish, performance_report).chain());
    }
}

fn now_ms() -> u64 {
    crate::transport::unix_now().as_millis() as u64
}

/// Runs the checks every `health.checkInterval` and for each admin request; evaluates the
/// optimisation rules at the same pace.
fn run_checks(world: &mut World) {
    let now = world.resource::<Time<Real>>().elapsed();
    let every = world
        .get_resource::<Config>()
        .and_then(|c| c.get::<Duration>("health.checkInterval").ok())
        .unwrap_or(Duration::from_secs(10));
    let requests: Vec<HealthCheckRequested> = world
        .get_resource_mut::<Messages<HealthCheckRequested>>()
        .map(|mut m| m.drain().collect())
        .unwrap_or_default();
    let due = now.saturating_sub(world.resource::<Clocks>().last_check) >= every;
    if !due && requests.is_empty() {
        return;
    }
    let Some(registry) = world.get_resource::<IntegrationRegistry>() else {
        return;
    };
    // Checks only read the World, so the registry is borrowed beside it, not cloned.
    let report = registry.check_all(world, now_ms());
    if let Some(prev) = &registry.last
        && prev.overall != report.overall
    {
        match &report.overall {
            HealthStatus::Healthy => info!("health: healthy again"),
            other => warn!("health: {} ({other:?})", other.name()),
        }
    }
    if let Some(mut net) = world.get_resource_mut::<ServerNet>() {
        for r in &requests {
            net.respond_sealed(
                r.client,
                r.id,
                Ok(SealedResponse::Health {
                    overall: report.overall.name().into(),
                    systems: report
                        .systems
                        .iter()
                        .map(|s| {
                            let reason = match &s.health {
                                HealthStatus::Healthy => String::new(),
                                HealthStatus::Degraded(r) | HealthStatus::Unhealthy(r) => r.clone(),
                            };
                            (s.name.clone(), s.health.name().into(), reason)
                        })
                        .collect(),
                }),
            );
        }
    }
    world.resource_mut::<IntegrationRegistry>().last = Some(report);
    if due {
        world.resource_mut::<Clocks>().last_check = now;
        optimise(world, every);
    }
}

/// Evaluates the rules over the last window and applies what they decide.
fn optimise(world: &mut World, window: Duration) {
    let conflicts = world.get_resource::<Reconciler>().map(|r| {
        r.stats.resolved_conflicts + r.stats.pending_conflicts + r.stats.integrity_failures
    });
    let ops = world.get_resource::<DataStore>().map(|s| {
        let st = s.stats();
        (st.operations, st.failed)
    });
    let base_sweep = world
        .get_resource::<Config>()
        .and_then(|c| c.get::<Duration>("reconcile.interval").ok());
    let mut opt = world.resource_mut::<Optimiser>();
    let mut sweep = None;
    if let Some(c) = conflicts {
        let per_minute =
            c.saturating_sub(opt.last_conflicts) as f64 * 60.0 / window.as_secs_f64().max(1.0);
        opt.last_conflicts = c;
        if let Some(t) = opt.reconcile_sweep.evaluate(per_minute) {
            log_rule(&opt.reconcile_sweep, t, per_minute);
            sweep = Some(t);
        }
    }
    let mut autosave = None;
    if let Some((total, failed)) = ops {
        let (t0, f0) = opt.last_ops;
        opt.last_ops = (total, failed);
        let n = total.saturating_sub(t0);
        if n >= 5 {
            let rate = 1.0 - failed.saturating_sub(f0) as f64 / n as f64;
            if let Some(t) = opt.datastore_autosave.evaluate(rate) {
                log_rule(&opt.datastore_autosave, t, rate);
                autosave = Some(t);
            }
        }
    }
    if let (Some(t), Some(base)) = (sweep, base_sweep)
        && let Some(mut rc) = world.get_resource_mut::<Reconciler>()
    {
        rc.interval = match t {
            Transition::Engaged => base * 4,
            Transition::Released => base,
        };
    }
    if let Some(t) = autosave
        && let Some(mut ds) = world.get_resource_mut::<DataStoreState>()
    {
        ds.autosave_slowdown = match t {
            Transition::Engaged => 2,
            Transition::Released => 1,
        };
    }
}

fn log_rule(rule: &OptimisationRule, t: Transition, value: f64) {
    match t {
        Transition::Engaged => warn!(
            "optimisation {} fired at {value:.3} (fired {} times)",
            rule.name, rule.fired
        ),
        Transition::Released => info!(
            "optimisation {} settled at {value:.3} (settled {} times)",
            rule.name, rule.settled
        ),
    }
}

/// Every second: every subsystem's figures into the recorder, and the endpoint's bodies.
fn publish(world: &mut World) {
    let now = world.resource::<Time<Real>>().elapsed();
    {
        let mut clocks = world.resource_mut::<Clocks>();
        if now.saturating_sub(clocks.last_publish) < Duration::from_secs(1)
            && clocks.last_publish != Duration::ZERO
        {
            return;
        }
        clocks.last_publish = now;
    }
    let figures = checks::collect(world);
    let text = {
        let metrics = world.resource::<Metrics>();
        metrics::with_local_recorder(&metrics.recorder, || {
            for f in &figures {
                let labels: Vec<metrics::Label> = f
                    .labels
                    .iter()
                    .map(|(k, v)| metrics::Label::new(*k, v.clone()))
                    .collect();
                if f.counter {
                    metrics::counter!(f.name, labels).absolute(f.value.max(0.0) as u64);
                } else {
                    metrics::gauge!(f.name, labels).set(f.value);
                }
            }
        });
        metrics.render()
    };
    let report = world
        .get_resource::<IntegrationRegistry>()
        .and_then(|r| r.last.clone());
    if let Some(endpoint) = world.get_resource::<MetricsEndpoint>()
        && let Ok(mut e) = endpoint.exposed.lock()
    {
        e.metrics_text = text;
        if let Some(report) = report {
            e.healthy = report.is_healthy();
            e.health_json = serde_json::to_string(&report).unwrap_or_default();
        }
    }
}

/// A performance report in the log every `performance.logInterval`.
fn performance_report(world: &mut World) {
    let now = world.resource::<Time<Real>>().elapsed();
    let every = world
        .get_resource::<Config>()
        .and_then(|c| c.get::<Duration>("performance.logInterval").ok())
        .unwrap_or(Duration::from_secs(30));
    if now.saturating_sub(world.resource::<Clocks>().last_report) < every {
        return;
    }
    world.resource_mut::<Clocks>().last_report = now;
    let (p50, p99) = world.get_resource::<TickTimes>().map_or((0.0, 0.0), |t| {
        (t.window.quantile_ms(0.5), t.window.quantile_ms(0.99))
    });
    let sessions = world
        .get_resource::<ServerNet>()
        .map_or(0, |n| n.session_count());
    let store = world.get_resource::<DataStore>().map(|s| s.stats());
    let security = world.get_resource::<Security>().map(|s| s.stats());
    let health = world
        .get_resource::<IntegrationRegistry>()
        .and_then(|r| r.last.as_ref().map(|l| l.overall.name()))
        .unwrap_or("unchecked");
    info!(
        "performance: tick p50 {p50:.2} ms p99 {p99:.2} ms, {sessions} sessions, rss {:.1} MiB, cpu {:.1} s, entities {}, store ops {} ({:.1}% ok, save p99 {:.1} ms), strikes {}, health {health}",
        crate::transport::rss_mb(),
        checks::cpu_seconds(),
        world.entities().len(),
        store.as_ref().map_or(0, |s| s.operations),
        store.as_ref().map_or(100.0, |s| s.success_rate() * 100.0),
        store.as_ref().map_or(0.0, |s| s.save_p99_ms),
        security.as_ref().map_or(0, |s| s.strikes),
    );
}

//! Health and metrics (the seed's IntegrationManager and performance monitoring): the endpoint,
//! the check runner and the optimisation-rule engine over the [`crate::integration`] registry.
//!
//! Every plugin registers itself with the registry in its own `build` (name, version,
//! dependencies, health check, figures, rules); this plugin names no subsystem. Checks run every
//! `health.checkInterval` and on demand (a `Call<Health>`, the `Health` admin
//! command). Figures go through the `metrics` facade into a Prometheus recorder
//! (`metrics-exporter-prometheus`, without its own HTTP stack), each with its help text; the
//! dedicated server serves `/health` (liveness: 200 unless a check is Unhealthy), `/ready`
//! (readiness: 503 while starting, draining or with a check Unhealthy) and `/metrics`
//! (Prometheus text) on `--metrics-bind` from a small `tiny_http` thread. A performance report goes to the log every
//! `performance.logInterval`. The rules registered with the registry are evaluated at each
//! scheduled check; what they decide reaches their owners as the owners' own messages.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bevy::prelude::*;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};

use crate::config::Config;
use crate::integration::{
    ApplyTransition, Figure, FigureKind, HealthStatus, Integration, IntegrationRegistry,
    OptimisationRule, Transition, register,
};
use crate::protocol::builtin::{Health, HealthReport};
use crate::transport::Call;
use crate::transport::ServerNet;

/// What the HTTP thread serves, refreshed by the App every second (and at once when the
/// first report is in or draining begins).
#[derive(Debug, Default)]
pub struct Exposed {
    /// `/health` body.
    pub health_json: String,
    /// `/health` answers 200: the process works (Healthy or Degraded, or still starting).
    pub live: bool,
    /// `/ready` body.
    pub ready_json: String,
    /// `/ready` answers 200: the server takes players.
    pub ready: bool,
    /// `/metrics` body.
    pub metrics_text: String,
}

/// Whether a server takes players: not before its first health report, not while draining,
/// not while a check is Unhealthy (a critical store). The reason when not.
pub fn readiness(
    report: Option<&crate::integration::HealthReport>,
    draining: bool,
) -> Result<(), String> {
    let Some(report) = report else {
        return Err("starting: no health report yet".into());
    };
    if draining {
        return Err("draining: the server is shutting down".into());
    }
    match report.systems.iter().find_map(|s| match &s.health {
        HealthStatus::Unhealthy(r) | HealthStatus::Unready(r) => Some(format!("{}: {r}", s.name)),
        _ => None,
    }) {
        Some(why) => Err(why),
        None => Ok(()),
    }
}

/// Whether the process works (`/health` 200): anything but an Unhealthy check. A Degraded
/// check (a refused config reload, a slow tick) is no reason to restart a working server.
pub fn liveness(report: Option<&crate::integration::HealthReport>) -> bool {
    !report.is_some_and(|r| matches!(r.overall, HealthStatus::Unhealthy(_)))
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
            health_json: r#"{"overall":{"status":"Starting"}}"#.into(),
            live: true,
            ready_json: r#"{"ready":false,"reason":"starting: no health report yet"}"#.into(),
            ready: false,
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
        info!("health and metrics on http://{bound}/health, /ready and /metrics");
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
                    if e.live { 200 } else { 503 },
                    e.health_json.clone(),
                    "application/json",
                ),
                (tiny_http::Method::Get, "/ready") => (
                    if e.ready { 200 } else { 503 },
                    e.ready_json.clone(),
                    "application/json",
                ),
                (tiny_http::Method::Get, "/metrics") => (
                    200,
                    e.metrics_text.clone(),
                    "text/plain; version=0.0.4; charset=utf-8",
                ),
                _ => (
                    404,
                    "not found: try /health, /ready or /metrics\n".into(),
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
    /// Names whose help text the recorder has (described once, not at every publish).
    described: std::collections::HashSet<&'static str>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            recorder: PrometheusBuilder::new().build_recorder(),
            described: std::collections::HashSet::new(),
        }
    }
}

impl Metrics {
    /// The figures in Prometheus text format.
    pub fn render(&self) -> String {
        self.recorder.handle().render()
    }
}

#[derive(Resource, Default)]
struct Clocks {
    /// `None` until the first check, which runs on the first frame.
    last_check: Option<Duration>,
    last_publish: Duration,
    last_report: Duration,
    /// What the endpoint was last told: (a report existed, draining).
    published: Option<(bool, bool)>,
}

/// The health plugin (server): the check runner, the rule engine, and (on a dedicated server)
/// the HTTP endpoint it carries.
#[derive(Default)]
pub struct HealthPlugin {
    endpoint: Option<crate::process::Carried<MetricsEndpoint>>,
}

impl HealthPlugin {
    /// Serves `/health` and `/metrics` on `addr` (port 0: any free port).
    pub fn serving(addr: SocketAddr) -> Result<Self, EndpointError> {
        Ok(Self {
            endpoint: Some(crate::process::Carried::new(MetricsEndpoint::open(addr)?)),
        })
    }
}

impl Plugin for HealthPlugin {
    fn build(&self, app: &mut App) {
        if let Some(endpoint) = &self.endpoint {
            crate::process::insert_carried(app, "the health plugin", endpoint);
        }
        crate::stages::server(app);
        register(
            app,
            Integration {
                name: "health",
                version: env!("CARGO_PKG_VERSION"),
                depends_on: &[],
                check: |_| HealthStatus::Healthy,
                figures: process_figures,
            },
        );
        app.init_resource::<Metrics>()
            .init_resource::<Clocks>()
            .add_systems(
                Last,
                (run_checks, publish, performance_report)
                    .chain()
                    .in_set(crate::stages::ServerSystems::Report),
            );
    }
}

/// The process's own figures and the last health report.
fn process_figures(world: &World, out: &mut Vec<Figure>) {
    let (rss_bytes, cpu_seconds) = crate::process::sampled();
    out.extend([
        Figure::gauge(
            "bloxquarium_process_resident_memory_bytes",
            "Resident set size of the process, bytes (sampled about once a second).",
            rss_bytes as f64,
        ),
        Figure::gauge(
            "bloxquarium_process_cpu_seconds",
            "CPU time the process has used, user and system, seconds (sampled about once a second).",
            cpu_seconds,
        ),
        Figure::gauge(
            "bloxquarium_process_entities",
            "Entities in the server's World.",
            world.entities().len() as f64,
        ),
    ]);
    if let Some(reg) = world.get_resource::<IntegrationRegistry>() {
        for rule in &reg.rules {
            crate::integration::rule_figures(&rule.rule, out);
        }
        if let Some(last) = &reg.last {
            for s in &last.systems {
                out.push(
                    Figure::gauge(
                        "bloxquarium_health_status",
                        "Health of each registered system: 0 healthy, 1 degraded, 2 unhealthy, 3 unready (alive, taking no new players).",
                        match s.health {
                            HealthStatus::Healthy => 0.0,
                            HealthStatus::Degraded(_) => 1.0,
                            HealthStatus::Unhealthy(_) => 2.0,
                            HealthStatus::Unready(_) => 3.0,
                        },
                    )
                    .label("system", s.name.clone()),
                );
            }
        }
    }
}

/// Runs the checks every `health.checkInterval` and for each admin request; evaluates the
/// optimisation rules at the same pace.
fn run_checks(world: &mut World) {
    let now = world.resource::<Time<Real>>().elapsed();
    let every = world
        .get_resource::<Config>()
        .and_then(|c| c.get::<Duration>("health.checkInterval").ok())
        .unwrap_or(Duration::from_secs(10));
    let requests: Vec<Call<Health>> = world
        .get_resource_mut::<Messages<Call<Health>>>()
        .map(|mut m| m.drain().collect())
        .unwrap_or_default();
    let due = world
        .resource::<Clocks>()
        .last_check
        .is_none_or(|t| now.saturating_sub(t) >= every);
    if !due && requests.is_empty() {
        return;
    }
    let Some(registry) = world.get_resource::<IntegrationRegistry>() else {
        return;
    };
    // Checks only read the World, so the registry is borrowed beside it, not cloned.
    let report = registry.check_all(world, crate::clock::now_ms());
    if let Some(prev) = &registry.last
        && prev.overall != report.overall
    {
        let contact = admin_contact(world);
        match &report.overall {
            HealthStatus::Healthy => info!("health: healthy again"),
            other => warn!(
                "health: {} ({other:?}); operator contact: {contact}",
                other.name()
            ),
        }
    }
    if let Some(mut net) = world.get_resource_mut::<ServerNet>() {
        for r in &requests {
            net.reply(
                r,
                Ok(HealthReport {
                    overall: report.overall.name().into(),
                    systems: report
                        .systems
                        .iter()
                        .map(|s| {
                            let reason = match &s.health {
                                HealthStatus::Healthy => String::new(),
                                HealthStatus::Degraded(r)
                                | HealthStatus::Unready(r)
                                | HealthStatus::Unhealthy(r) => r.clone(),
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
        world.resource_mut::<Clocks>().last_check = Some(now);
        optimise(world, every);
    }
}

/// Evaluates every registered rule over the last window; each transition is handed to the
/// rule's owner through the rule's `apply` (the owner's own message).
fn optimise(world: &mut World, window: Duration) {
    let mut rules = std::mem::take(&mut world.resource_mut::<IntegrationRegistry>().rules);
    let transitions: Vec<(ApplyTransition, Transition)> = rules
        .iter_mut()
        .filter_map(|r| {
            let (t, value) = r.sample(world, window)?;
            log_rule(&r.rule, t, value);
            Some((r.apply, t))
        })
        .collect();
    world.resource_mut::<IntegrationRegistry>().rules = rules;
    for (apply, t) in transitions {
        apply(world, t);
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

/// Every registered plugin's figures.
pub fn collect(world: &World) -> Vec<Figure> {
    let mut out = Vec::new();
    if let Some(reg) = world.get_resource::<IntegrationRegistry>() {
        for source in reg.figure_sources() {
            source(world, &mut out);
        }
    }
    out
}

/// Every second: every subsystem's figures into the recorder, and the endpoint's bodies.
fn publish(world: &mut World) {
    let now = world.resource::<Time<Real>>().elapsed();
    let draining = world
        .get_resource::<crate::shutdown::Shutdown>()
        .is_some_and(|s| s.is_shutting_down());
    let reported = world
        .get_resource::<IntegrationRegistry>()
        .is_some_and(|r| r.last.is_some());
    {
        let mut clocks = world.resource_mut::<Clocks>();
        // The probes change at once when the first report is in or draining begins.
        let news = clocks.published != Some((reported, draining));
        if now.saturating_sub(clocks.last_publish) < Duration::from_secs(1)
            && clocks.last_publish != Duration::ZERO
            && !news
        {
            return;
        }
        clocks.last_publish = now;
        clocks.published = Some((reported, draining));
    }
    let text = if monitoring(world) {
        metrics_text(world)
    } else {
        "# monitoring is off (performance.enableMonitoring: false): no figures are collected\n"
            .to_string()
    };
    let report = world
        .get_resource::<IntegrationRegistry>()
        .and_then(|r| r.last.clone());
    let contact = admin_contact(world);
    if let Some(endpoint) = world.get_resource::<MetricsEndpoint>()
        && let Ok(mut e) = endpoint.exposed.lock()
    {
        e.metrics_text = text;
        let ready = readiness(report.as_ref(), draining);
        e.ready = ready.is_ok();
        e.ready_json = match &ready {
            Ok(()) => serde_json::json!({ "ready": true }),
            Err(why) => serde_json::json!({ "ready": false, "reason": why }),
        }
        .to_string();
        e.live = liveness(report.as_ref());
        if let Some(report) = report {
            let mut json = serde_json::to_value(&report).unwrap_or_default();
            if let Some(obj) = json.as_object_mut() {
                obj.insert("admin_contact".into(), contact.into());
            }
            e.health_json = json.to_string();
        }
    }
}

/// `performance.enableMonitoring` (live; on without a config).
fn monitoring(world: &World) -> bool {
    world
        .get_resource::<Config>()
        .and_then(|c| c.get::<bool>("performance.enableMonitoring").ok())
        .unwrap_or(true)
}

/// Every registered figure, through the recorder, as Prometheus text.
fn metrics_text(world: &mut World) -> String {
    let figures = collect(world);
    {
        let mut metrics = world.resource_mut::<Metrics>();
        let Metrics {
            recorder,
            described,
        } = &mut *metrics;
        metrics::with_local_recorder(&*recorder, || {
            for f in &figures {
                let labels: Vec<metrics::Label> = f
                    .labels
                    .iter()
                    .map(|(k, v)| metrics::Label::new(*k, v.clone()))
                    .collect();
                let new = described.insert(f.name);
                match &f.kind {
                    FigureKind::Counter => {
                        if new {
                            metrics::describe_counter!(f.name, f.help);
                        }
                        metrics::counter!(f.name, labels).absolute(f.value.max(0.0) as u64);
                    }
                    FigureKind::Gauge => {
                        if new {
                            metrics::describe_gauge!(f.name, f.help);
                        }
                        metrics::gauge!(f.name, labels).set(f.value);
                    }
                    // Rendered below: the figures already hold the buckets.
                    FigureKind::Histogram { .. } => {}
                }
            }
        });
        let mut text = metrics.render();
        for f in &figures {
            render_histogram(f, &mut text);
        }
        text
    }
}

/// Who operators call (`security.adminContact`), for `/health` and the health log lines.
fn admin_contact(world: &World) -> String {
    world
        .get_resource::<Config>()
        .and_then(|c| c.get::<String>("security.adminContact").ok())
        .unwrap_or_default()
}

/// A histogram figure in Prometheus text: `# HELP`, `# TYPE`, cumulative `_bucket` lines, `_sum`
/// and `_count`. (The recorder takes samples one by one; these are counted already.)
fn render_histogram(f: &Figure, out: &mut String) {
    use std::fmt::Write;
    let FigureKind::Histogram { buckets, sum } = &f.kind else {
        return;
    };
    let labels: String = f
        .labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\",", v.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
    let _ = writeln!(out, "# TYPE {} histogram", f.name);
    for (bound, n) in buckets {
        let le = if bound.is_infinite() {
            "+Inf".to_string()
        } else {
            bound.to_string()
        };
        let _ = writeln!(out, "{}_bucket{{{labels}le=\"{le}\"}} {n}", f.name);
    }
    let plain = labels.trim_end_matches(',');
    let braces = if plain.is_empty() {
        String::new()
    } else {
        format!("{{{plain}}}")
    };
    let _ = writeln!(out, "{}_sum{braces} {sum}", f.name);
    let _ = writeln!(out, "{}_count{braces} {}", f.name, f.value);
}

/// The `q` quantile of the histogram figure called `name` (0 if none).
fn quantile(figures: &[Figure], name: &str, q: f64) -> f64 {
    figures
        .iter()
        .find(|f| f.name == name)
        .and_then(|f| f.quantile(q))
        .unwrap_or(0.0)
}

/// The value of the first figure called `name` (0 if none).
fn figure(figures: &[Figure], name: &str) -> f64 {
    figures
        .iter()
        .find(|f| f.name == name)
        .map_or(0.0, |f| f.value)
}

/// A performance report in the log every `performance.logInterval`, from the registered figures.
fn performance_report(world: &mut World) {
    let now = world.resource::<Time<Real>>().elapsed();
    let every = world
        .get_resource::<Config>()
        .and_then(|c| c.get::<Duration>("performance.logInterval").ok())
        .unwrap_or(Duration::from_secs(30));
    if now.saturating_sub(world.resource::<Clocks>().last_report) < every || !monitoring(world) {
        return;
    }
    world.resource_mut::<Clocks>().last_report = now;
    let f = collect(world);
    let health = world
        .get_resource::<IntegrationRegistry>()
        .and_then(|r| r.last.as_ref().map(|l| l.overall.name()))
        .unwrap_or("unchecked");
    let ok_share = if f
        .iter()
        .any(|x| x.name == "bloxquarium_datastore_success_ratio")
    {
        figure(&f, "bloxquarium_datastore_success_ratio")
    } else {
        1.0
    };
    info!(
        "performance: tick p50 {:.2} ms p99 {:.2} ms, {} sessions, rss {:.1} MiB, cpu {:.1} s, entities {}, store ops {} ({:.1}% ok, save p99 {:.1} ms), strikes {}, health {health}",
        quantile(&f, "bloxquarium_tick_duration_seconds", 0.5) * 1000.0,
        quantile(&f, "bloxquarium_tick_duration_seconds", 0.99) * 1000.0,
        figure(&f, "bloxquarium_network_sessions"),
        figure(&f, "bloxquarium_process_resident_memory_bytes") / (1024.0 * 1024.0),
        figure(&f, "bloxquarium_process_cpu_seconds"),
        figure(&f, "bloxquarium_process_entities"),
        figure(&f, "bloxquarium_datastore_operations_total"),
        ok_share * 100.0,
        quantile(&f, "bloxquarium_datastore_save_duration_seconds", 0.99) * 1000.0,
        figure(&f, "bloxquarium_security_strikes_total"),
    );
}
